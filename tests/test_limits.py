"""Rate limits on virtual time: even pacing, bursts, tokens, pauses, deadlines, cancellation.

Every timed test runs on the autojump ``MockClock`` and asserts exact virtual
times; nothing here opens a socket.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trillm.limits import (
    REQUESTS,
    TOKENS,
    InMemoryRateStore,
    RateLimit,
    RateLimiter,
    RateLimitTimeout,
    Reservation,
    estimate_tokens,
)

APPROX = 1e-9


def approx(values: Sequence[float]) -> object:
    return pytest.approx(list(values), abs=APPROX)


class RecordingStore(InMemoryRateStore):
    """The in-memory store, logging each real booking as (task, start time)."""

    def __init__(self) -> None:
        super().__init__()
        self.bookings: list[tuple[trio.lowlevel.Task, float]] = []

    async def reserve(
        self, key: str, costs: Mapping[str, float], max_wait: float, *, not_before: float = 0.0
    ) -> float | None:
        wait = await super().reserve(key, costs, max_wait, not_before=not_before)
        if costs and wait is not None:
            self.bookings.append((trio.lowlevel.current_task(), trio.current_time() + wait))
        return wait

    async def reserve_many(
        self, keys: Sequence[str], costs: Mapping[str, float], max_wait: float
    ) -> float | None:
        wait = await super().reserve_many(keys, costs, max_wait)
        if costs and wait is not None:
            self.bookings.append((trio.lowlevel.current_task(), trio.current_time() + wait))
        return wait


async def _acquire_at(
    limiter: RateLimiter, keys: Sequence[str], tokens: float, at: float, out: list[float]
) -> None:
    await trio.sleep_until(at)
    await limiter.acquire(keys, tokens)
    out.append(trio.current_time())


async def _run_concurrently(
    limiter: RateLimiter, requests: Sequence[tuple[Sequence[str], float]], at: float = 0.0
) -> list[float]:
    """Start the requests one after another (booking order = list order); their start times."""
    starts = [math.nan] * len(requests)

    async def one(i: int, keys: Sequence[str], tokens: float, task_status: trio.TaskStatus) -> None:
        await trio.sleep_until(at)
        task_status.started()  # booked before the next one starts: reserve never checkpoints
        await limiter.acquire(keys, tokens)
        starts[i] = trio.current_time()

    async with trio.open_nursery() as nursery:
        for i, (keys, tokens) in enumerate(requests):
            await nursery.start(one, i, keys, tokens)
    return starts


# -- even pacing ---------------------------------------------------------------------------


async def test_600_concurrent_requests_at_rpm_300_take_two_minutes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = RecordingStore()
    limiter = RateLimiter({"openai": RateLimit(rpm=300)}, store)
    starts: list[float] = []
    async with trio.open_nursery() as nursery:
        for _ in range(600):
            nursery.start_soon(_acquire_at, limiter, ["openai"], 0, 0.0, starts)
    assert trio.current_time() == pytest.approx(119.8, abs=APPROX)
    # In booking order, request i goes at exactly 0.2 * i: evenly, never a burst.
    assert [t for _, t in store.bookings] == approx([0.2 * i for i in range(600)])
    assert sorted(starts) == approx([0.2 * i for i in range(600)])


async def test_600_sequential_requests_at_rpm_300(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter({"openai": RateLimit(rpm=300)})
    starts = []
    for _ in range(600):
        res = await limiter.acquire(["openai"], 0)
        starts.append(trio.current_time())
        assert res.start == starts[-1]
    assert starts == approx([0.2 * i for i in range(600)])


async def test_burst_lets_that_many_go_at_once_then_paces(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter({"k": RateLimit(rpm=300, burst=5)})
    starts = await _run_concurrently(limiter, [(["k"], 0)] * 10)
    assert starts == approx([0, 0, 0, 0, 0, 0.2, 0.4, 0.6, 0.8, 1.0])
    # An idle bucket refills: after 1 s of quiet, a burst of 5 again.
    await trio.sleep_until(3.0)
    starts = await _run_concurrently(limiter, [(["k"], 0)] * 6, at=3.0)
    assert starts == approx([3, 3, 3, 3, 3, 3.2])


async def test_tpm_paces_by_token_cost(autojump_clock: trio.testing.MockClock) -> None:
    # 60,000 tokens a minute = 1 ms a token; with tpm alone each request starts
    # once the tokens booked before it have drained.
    limiter = RateLimiter({"k": RateLimit(tpm=60_000)})
    starts = await _run_concurrently(limiter, [(["k"], c) for c in (1000, 2000, 500, 3000, 1)])
    assert starts == approx([0, 1.0, 3.0, 3.5, 6.5])


async def test_request_larger_than_the_bucket_waits_for_it_to_empty(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Bucket: burst 2 requests' worth of time = 2 s = 200 tokens; 1,000 tokens never fit.
    limiter = RateLimiter({"k": RateLimit(rpm=60, tpm=6000, burst=2)})
    starts = await _run_concurrently(limiter, [(["k"], 100), (["k"], 1000), (["k"], 50)])
    # 100 tokens fill 1 s of the 2 s bucket; 1,000 tokens wait until it is empty
    # (t=1) and then go; the next waits for 10 s of tokens minus its 2 s of room.
    assert starts == approx([0, 1.0, 11.0 + 0.5 - 2.0])


async def test_rpm_and_tpm_both_apply(autojump_clock: trio.testing.MockClock) -> None:
    # rpm=60: 1 s a request; tpm=6000: 10 ms a token; bucket 1 s = 100 tokens.
    limiter = RateLimiter({"k": RateLimit(rpm=60, tpm=6000)})
    starts = await _run_concurrently(limiter, [(["k"], c) for c in (50, 50, 300, 10, 10)])
    # rpm paces the first three; then the 300 tokens (3 s) hold the fourth until 4.1.
    assert starts == approx([0, 1, 2, 4.1, 5.1])


# -- corrections from usage ----------------------------------------------------------------


async def test_settle_gives_capacity_back(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter({"k": RateLimit(tpm=60_000)})
    res = await limiter.acquire(["k"], 1000)  # estimate: 1 s of tokens
    await res.settle(200)  # used 200: 0.8 s given back
    assert res.settled
    await limiter.acquire(["k"], 100)
    assert trio.current_time() == pytest.approx(0.2)


async def test_settle_takes_more(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter({"k": RateLimit(tpm=60_000)})
    res = await limiter.acquire(["k"], 1000)
    await res.settle(3000)
    await res.settle(10)  # only the first settle counts
    await limiter.acquire(["k"], 100)
    assert trio.current_time() == pytest.approx(3.0)


async def test_settle_none_keeps_the_estimate(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter({"k": RateLimit(tpm=60_000)})
    res = await limiter.acquire(["k"], 1000)
    await res.settle(None)
    await limiter.acquire(["k"], 100)
    assert trio.current_time() == pytest.approx(1.0)


async def test_adjust_never_makes_a_bucket_less_than_empty(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = InMemoryRateStore()
    store.configure("k", RateLimit(rpm=60))
    assert await store.reserve("k", {REQUESTS: 1}, math.inf) == 0
    await store.adjust("k", {REQUESTS: -50})  # far more than was booked
    assert await store.reserve("k", {REQUESTS: 1}, math.inf) == 0
    assert await store.reserve("k", {REQUESTS: 1}, math.inf) == pytest.approx(1.0)
    await store.adjust("unknown", {TOKENS: 5})  # no limit, nothing to correct


# -- pause (429) ---------------------------------------------------------------------------


async def test_pause_holds_every_queued_request(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter({"openai/gpt-4o-mini": RateLimit(rpm=300)})
    keys = ["openai/gpt-4o-mini", "openai"]
    starts: list[float] = []
    async with trio.open_nursery() as nursery:
        for _ in range(20):
            nursery.start_soon(_acquire_at, limiter, keys, 0, 0.0, starts)
        await trio.sleep(0.5)  # three went out (0, 0.2, 0.4); then a 429, Retry-After: 10
        await limiter.pause(keys, 10)
        nursery.start_soon(_acquire_at, limiter, keys, 0, 1.0, starts)  # a newcomer
    starts.sort()
    assert starts[:3] == approx([0, 0.2, 0.4])
    # Everyone queued waits until 10.5, then they go paced, not all at once;
    # the newcomer joins the end of the queue.
    assert starts[3:] == approx([10.5 + 0.2 * i for i in range(18)])


async def test_pause_with_a_long_queue_keeps_the_pacing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter({"k": RateLimit(rpm=300)})
    starts: list[float] = []
    async with trio.open_nursery() as nursery:
        for _ in range(100):  # booked for 0 .. 19.8 s
            nursery.start_soon(_acquire_at, limiter, ["k"], 0, 0.0, starts)
        await trio.sleep(0.5)
        await limiter.pause(["k"], 10)
    starts.sort()
    assert starts[:3] == approx([0, 0.2, 0.4])
    assert min(starts[3:]) >= 10.5 - APPROX
    gaps = [b - a for a, b in itertools.pairwise(starts[3:])]
    assert min(gaps) >= 0.2 - APPROX  # no burst after the pause
    # The slots the pause swallowed (0.6 .. 10.4 s) go at the end of the queue.
    assert starts[-1] == pytest.approx(20.0 + 0.2 * 49)


async def test_pause_applies_to_later_requests(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter({"k": RateLimit(rpm=60, burst=3)})
    await limiter.pause(["k", "other"], 7)
    starts = await _run_concurrently(limiter, [(["k"], 0)] * 4)
    assert starts == approx([7, 7, 7, 8])
    res = await limiter.acquire(["other"], 0)  # not configured: not paused
    assert res.keys == ()


# -- keys ----------------------------------------------------------------------------------


async def test_model_and_provider_keys_both_apply(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter({"openai/gpt-4o-mini": RateLimit(rpm=60), "openai": RateLimit(rpm=120)})
    mini = ["openai/gpt-4o-mini", "openai"]
    other = ["openai/gpt-4o", "openai"]
    free = ["anthropic/claude-3-5-haiku", "anthropic"]
    starts = await _run_concurrently(limiter, [(mini, 0), (other, 0), (free, 0)] * 4)
    assert starts[0::3] == approx([0, 1, 2, 3])  # the model's own 1 s pacing
    assert starts[1::3] == approx([0.5, 1.5, 2.5, 3.5])  # the provider's 0.5 s pacing
    assert starts[2::3] == approx([0, 0, 0, 0])  # no limit configured
    assert limiter.configured([*mini, "openai"]) == ("openai/gpt-4o-mini", "openai")


# -- deadlines and cancellation ------------------------------------------------------------


async def test_deadline_refusal_books_nothing(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter({"m": RateLimit(rpm=60), "p": RateLimit(rpm=6)})
    await limiter.acquire(["m", "p"], 0)
    # "m" could take this one at 1 s, "p" only at 10 s: refused at once, "m"'s
    # booking given back.
    with pytest.raises(RateLimitTimeout, match="'p'") as info:
        await limiter.acquire(["m", "p"], 0, deadline=5.0)
    assert isinstance(info.value, TimeoutError)
    assert trio.current_time() == 0
    res = await limiter.acquire(["m"], 0, deadline=1.0)
    assert res.start == pytest.approx(1.0)
    res = await limiter.acquire(["p"], 0)
    assert res.start == pytest.approx(10.0)


async def test_store_refusal_books_nothing(autojump_clock: trio.testing.MockClock) -> None:
    store = InMemoryRateStore()
    store.configure("k", RateLimit(rpm=60, tpm=600))
    assert await store.reserve("k", {REQUESTS: 1, TOKENS: 10}, 0) == 0
    assert await store.reserve("k", {REQUESTS: 1, TOKENS: 10}, 0.5) is None
    assert await store.reserve("k", {REQUESTS: 1, TOKENS: 10}, 1.0) == pytest.approx(1.0)


async def test_pause_past_the_deadline_raises_while_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter({"k": RateLimit(rpm=60)})
    await limiter.acquire(["k"], 0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(limiter.pause, ["k"], 30)
        with pytest.raises(RateLimitTimeout):
            await limiter.acquire(["k"], 0, deadline=20.0)  # slot at 1 s, then paused
    assert trio.current_time() == pytest.approx(1.0)
    res = await limiter.acquire(["k"], 0)
    assert res.start == pytest.approx(30.0)


async def test_cancelled_while_waiting_propagates_and_gives_the_slot_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter({"k": RateLimit(rpm=300)})
    starts: list[float] = []
    cancelled = []

    async def request(patience: float, task_status: trio.TaskStatus) -> None:
        task_status.started()  # booked before the next one starts: reserve never checkpoints
        with trio.move_on_after(patience) as scope:
            await limiter.acquire(["k"], 0)
            starts.append(trio.current_time())
        if scope.cancelled_caught:
            cancelled.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for i in range(10):  # booked for 0, 0.2, ... 1.8; the one at 1.0 gives up at 0.5
            await nursery.start(request, 0.5 if i == 5 else math.inf)
        await trio.sleep(0.6)
        for _ in range(3):
            await nursery.start(request, math.inf)
    assert cancelled == [0.5]
    starts.sort()
    # The queue is untouched; the freed slot goes to the end (1.8 twice), then pacing resumes.
    assert starts == approx([0, 0.2, 0.4, 0.6, 0.8, 1.2, 1.4, 1.6, 1.8, 1.8, 2.0, 2.2])


@pytest.mark.parametrize(("tokens", "next_start"), [(10, 1.0), (500, 5.0)])  # rpm, tpm bind
async def test_outside_cancellation_of_a_queue_leaves_the_bucket_clean(
    autojump_clock: trio.testing.MockClock, tokens: int, next_start: float
) -> None:
    limiter = RateLimiter({"k": RateLimit(rpm=60, tpm=6000)})  # 1 s a request, 10 ms a token
    with trio.move_on_after(0.5):
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(limiter.acquire, ["k"], tokens)
    # One went at 0; the nine cancelled ones gave their slots back, in any
    # order, and left nothing behind: the next goes as if they never were.
    res = await limiter.acquire(["k"], tokens)
    assert res.start == pytest.approx(next_start)


# -- checkpoints, validation, estimates ----------------------------------------------------


async def test_every_method_is_a_checkpoint() -> None:
    limiter = RateLimiter({"k": RateLimit(rpm=60_000)})
    with trio.testing.assert_checkpoints():
        res = await limiter.acquire(["unconfigured"], 0)
    with trio.testing.assert_checkpoints():
        res = await limiter.acquire(["k"], 10)
    assert isinstance(res, Reservation)
    assert res.keys == ("k",)
    with trio.testing.assert_checkpoints():
        await res.settle(5)
    with trio.testing.assert_checkpoints():
        await limiter.pause(["k"], 0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "needs rpm= or tpm="),
        ({"rpm": 0}, ValueError, "positive"),
        ({"rpm": -5}, ValueError, "positive"),
        ({"tpm": math.inf}, ValueError, "finite"),
        ({"rpm": math.nan}, ValueError, "positive"),
        ({"rpm": 60, "burst": 0}, ValueError, "at least 1"),
        ({"rpm": "60"}, TypeError, "number"),
        ({"rpm": True}, TypeError, "number"),
        ({"rpm": 60, "burst": 2.5}, TypeError, "int"),
    ],
)
def test_rate_limit_validation(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        RateLimit(**kwargs)  # type: ignore[arg-type]


def test_rate_limit_values() -> None:
    limit = RateLimit(rpm=300, tpm=60_000, burst=4)
    assert limit.intervals() == {REQUESTS: 0.2, TOKENS: 0.001}
    assert limit.tolerance == pytest.approx(0.8)
    assert RateLimit(tpm=6000).tolerance == pytest.approx(0.01)


async def test_argument_validation() -> None:
    limiter = RateLimiter({"k": RateLimit(rpm=60)})
    with pytest.raises(ValueError, match="tokens"):
        await limiter.acquire(["k"], -1)
    with pytest.raises(TypeError, match="one string"):
        await limiter.acquire("k", 0)
    with pytest.raises(ValueError, match="seconds"):
        await limiter.pause(["k"], -1)
    with pytest.raises(TypeError, match="RateLimit"):
        RateLimiter({"k": 300})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="cost"):
        await limiter.store.reserve("k", {REQUESTS: -1}, math.inf)
    with pytest.raises(ValueError, match="seconds"):
        await limiter.store.pause("k", math.nan)


def test_estimate_tokens() -> None:
    assert estimate_tokens([], None) == 0
    assert estimate_tokens([{"role": "user", "content": "abcd"}], None) == 1
    assert estimate_tokens([{"role": "user", "content": "abcde"}], 100) == 102
    messages = [
        {"role": "system", "content": "x" * 10},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "y" * 6},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 999}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]},
    ]
    assert estimate_tokens(messages, 0) == 4  # 16 characters of text

    class Message:
        content = "z" * 9

    assert estimate_tokens([Message()], 1) == 4


# -- properties: never more than rpm + burst in any minute ---------------------------------


@attrs.frozen
class Outcome:
    booked: list[float]  # start times in booking order, of the requests that went
    started: list[tuple[float, int]]  # (start time, tokens), of the requests that went
    gave_up: list[int]  # tokens of the requests cancelled while waiting


def _simulate(
    limit: RateLimit,
    requests: Sequence[tuple[float, int, float | None]],
    pauses: Sequence[tuple[float, float]] = (),
) -> Outcome:
    """Each request arrives, acquires (giving up after its patience, if any); one fresh run.

    At each ``(time, seconds)`` of *pauses* the key is paused (a 429).
    """
    store = RecordingStore()
    limiter = RateLimiter({"k": limit}, store)
    started: list[tuple[float, int]] = []
    went: set[trio.lowlevel.Task] = set()
    gave_up: list[int] = []

    async def one(arrival: float, tokens: int, patience: float | None) -> None:
        await trio.sleep_until(arrival)
        with trio.move_on_after(math.inf if patience is None else patience) as scope:
            await limiter.acquire(["k"], tokens)
            started.append((trio.current_time(), tokens))
            went.add(trio.lowlevel.current_task())
        if scope.cancelled_caught:
            gave_up.append(tokens)

    async def pause(at: float, seconds: float) -> None:
        await trio.sleep_until(at)
        await limiter.pause(["k"], seconds)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for arrival, tokens, patience in requests:
                nursery.start_soon(one, arrival, tokens, patience)
            for at, seconds in pauses:
                nursery.start_soon(pause, at, seconds)
        # Whatever was given back, a newcomer once the queue has drained goes at once.
        await trio.sleep_until(max([0.0, *(at + seconds for at, seconds in pauses)]))
        await trio.sleep(limit.tolerance + 60 * max(c for _, c, _ in requests) / (limit.tpm or 1))
        res = await limiter.acquire(["k"], 0)
        assert res.waited == 0

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    booked = [t for task, t in store.bookings if task in went]
    for at, seconds in pauses:  # nothing starts during a pause
        assert not [t for t, _ in started if at + APPROX < t < at + seconds - APPROX]
    return Outcome(booked, started, gave_up)


def _max_in_a_minute(
    started: Sequence[tuple[float, int]],
) -> tuple[int, int]:
    """The most requests, and the most tokens, that started within any 60 s."""
    most_requests = most_tokens = 0
    for t0, _ in started:
        window = [c for t, c in started if t0 - APPROX <= t < t0 + 60 - APPROX]
        most_requests = max(most_requests, len(window))
        most_tokens = max(most_tokens, sum(window))
    return most_requests, most_tokens


_RATES = {
    "rpm": st.sampled_from([6, 30, 60, 300]),
    "tpm": st.one_of(st.none(), st.sampled_from([600, 6000, 60_000])),
    "burst": st.integers(1, 5),
}


@settings(max_examples=80, deadline=None)
@given(
    **_RATES,
    requests=st.lists(
        st.tuples(st.floats(0, 30, allow_nan=False), st.integers(0, 3000), st.none()),
        min_size=1,
        max_size=80,
    ),
    pauses=st.lists(st.tuples(st.floats(0, 60), st.floats(0, 30)), max_size=3),
)
def test_property_paced_and_first_come_first_served(
    rpm: int,
    tpm: int | None,
    burst: int,
    requests: list[tuple[float, int, None]],
    pauses: list[tuple[float, float]],
) -> None:
    out = _simulate(RateLimit(rpm=rpm, tpm=tpm, burst=burst), requests, pauses)
    assert len(out.started) == len(requests)
    # Start times never decrease in booking order (up to float rounding).
    assert all(b >= a - APPROX for a, b in itertools.pairwise(out.booked))
    most_requests, most_tokens = _max_in_a_minute(out.started)
    assert most_requests <= rpm + burst
    if tpm is not None:  # a minute's worth, the bucket (burst requests' time), one request
        max_cost = max(c for _, c, _ in requests)
        assert most_tokens <= tpm + burst * tpm / rpm + max_cost + 1e-6


@settings(max_examples=80, deadline=None)
@given(
    **_RATES,
    requests=st.lists(
        st.tuples(
            st.floats(0, 30, allow_nan=False),
            st.integers(0, 3000),
            st.one_of(st.none(), st.floats(0, 20, allow_nan=False)),
        ),
        min_size=1,
        max_size=80,
    ),
    pauses=st.lists(st.tuples(st.floats(0, 60), st.floats(0, 30)), max_size=2),
)
def test_property_giving_slots_back(
    rpm: int,
    tpm: int | None,
    burst: int,
    requests: list[tuple[float, int, float | None]],
    pauses: list[tuple[float, float]],
) -> None:
    out = _simulate(RateLimit(rpm=rpm, tpm=tpm, burst=burst), requests, pauses)
    assert len(out.started) + len(out.gave_up) == len(requests)
    # A slot given back goes to the end of the queue, so a minute may hold at
    # most what was given back more (never more than if those had been sent).
    most_requests, most_tokens = _max_in_a_minute(out.started)
    assert most_requests <= rpm + burst + len(out.gave_up)
    if tpm is not None:
        max_cost = max(c for _, c, _ in requests)
        assert most_tokens <= tpm + burst * tpm / rpm + max_cost + sum(out.gave_up) + 1e-6


async def test_a_request_on_two_keys_is_booked_on_both_at_the_later_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Regression: the model key was booked at its own (earlier) slot while the
    # provider key held the request back, so the next request on the model went
    # out too soon (1.0, 1.5 instead of 1.0, 2.0).
    limiter = RateLimiter({"p/a": RateLimit(rpm=60), "p": RateLimit(rpm=120)})
    starts: list[tuple[str, float]] = []

    async def one(model: str, delay: float) -> None:
        await trio.sleep(delay)
        await limiter.acquire((model, "p"), 0)
        starts.append((model, trio.current_time()))

    async with trio.open_nursery() as nursery:
        for i, model in enumerate(["p/b", "p/b", "p/a", "p/a", "p/a"]):
            nursery.start_soon(one, model, i * 0.001)
    a = [t for m, t in starts if m == "p/a"]
    assert [round(t, 3) for t in a] == [1.0, 2.0, 3.0]


# -- reserve_many: one request on several keys, booked at once -----------------------------


async def test_reserve_many_books_every_key_at_the_slowest_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = InMemoryRateStore()
    store.configure("m", RateLimit(rpm=60))
    store.configure("p", RateLimit(rpm=20))
    assert await store.reserve_many(["m", "p"], {REQUESTS: 1}, math.inf) == 0
    # "m" alone would allow 1 s, "p" 3 s: both are booked at 3 s
    assert await store.reserve_many(["m", "p"], {REQUESTS: 1}, math.inf) == pytest.approx(3.0)
    # so "m"'s next slot is a second after that, not at 2 s
    assert await store.reserve("m", {REQUESTS: 1}, math.inf) == pytest.approx(4.0)
    assert await store.reserve("p", {REQUESTS: 1}, math.inf) == pytest.approx(6.0)


async def test_reserve_many_refusal_books_nothing_on_any_key(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = InMemoryRateStore()
    store.configure("m", RateLimit(rpm=60))
    store.configure("p", RateLimit(rpm=6))
    assert await store.reserve_many(["m", "p"], {REQUESTS: 1}, 0) == 0
    assert await store.reserve_many(["m", "p"], {REQUESTS: 1}, 5.0) is None
    assert await store.reserve("m", {REQUESTS: 1}, math.inf) == pytest.approx(1.0)
    assert await store.reserve("p", {REQUESTS: 1}, math.inf) == pytest.approx(10.0)


async def test_reserve_many_counts_a_repeated_key_once_and_probes_pauses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = InMemoryRateStore()
    store.configure("k", RateLimit(rpm=60))
    assert await store.reserve_many(["k", "k"], {REQUESTS: 1}, math.inf) == 0
    assert await store.reserve("k", {REQUESTS: 1}, math.inf) == pytest.approx(1.0)
    await store.pause("k", 4)
    await store.pause("other", 7)  # never configured: still paused
    assert await store.reserve_many(["k", "other"], {}, math.inf) == pytest.approx(7.0)
    assert await store.reserve_many(["k"], {}, math.inf) == pytest.approx(4.0)
    assert await store.reserve_many([], {}, math.inf) == 0
    with pytest.raises(TypeError, match="not one string"):
        await store.reserve_many("k", {REQUESTS: 1}, math.inf)


async def test_a_refusal_on_two_keys_names_both(autojump_clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter({"m": RateLimit(rpm=60), "p": RateLimit(rpm=6)})
    await limiter.acquire(["m", "p"], 0)
    with pytest.raises(RateLimitTimeout) as info:
        await limiter.acquire(["m", "p"], 0, deadline=5.0)
    assert info.value.keys == ("m", "p")
    assert "rate limits of 'm' and 'p'" in str(info.value)


class OneCallStore(InMemoryRateStore):
    """Counts the store's calls, as a shared store counts round trips."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def reserve(
        self, key: str, costs: Mapping[str, float], max_wait: float, *, not_before: float = 0.0
    ) -> float | None:
        self.calls.append("reserve")
        return await super().reserve(key, costs, max_wait, not_before=not_before)

    async def reserve_many(
        self, keys: Sequence[str], costs: Mapping[str, float], max_wait: float
    ) -> float | None:
        self.calls.append("reserve_many" if costs else "probe")
        return await super().reserve_many(keys, costs, max_wait)

    async def adjust(self, key: str, delta: Mapping[str, float]) -> None:
        self.calls.append("adjust")
        await super().adjust(key, delta)


async def test_a_request_on_two_keys_is_one_store_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = OneCallStore()
    limiter = RateLimiter({"p/a": RateLimit(rpm=60), "p": RateLimit(rpm=30)}, store)
    await limiter.acquire(["p/a", "p"], 0)
    assert store.calls == ["reserve_many"]  # no wait: no pause probe either
    store.calls.clear()
    res = await limiter.acquire(["p/a", "p"], 0)
    assert res.start == pytest.approx(2.0)
    # one booking, then one probe for a pause begun while it waited; no undo-and-rebook
    assert store.calls == ["reserve_many", "probe"]
