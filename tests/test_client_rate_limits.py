"""``Client(rate_limits=...)``: even pacing, 429 pauses, no slot held while waiting."""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.testing import FakeLLM, FakeRequest

MSGS = [{"role": "user", "content": "x"}]


def ok(req: FakeRequest) -> dict[str, Any]:
    """A hand-written answer to *req* that used 2 tokens."""
    return {
        "id": "1", "object": "chat.completion", "created": 0, "model": req.model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


async def test_600_requests_at_300_rpm_take_two_minutes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []
    async with trillm.Client(rate_limits={"mock/echo": trillm.RateLimit(rpm=300)}) as client:

        async def one() -> None:
            await client.acompletion("mock/echo", MSGS)
            starts.append(trio.current_time())

        await trillm.gather(*([one] * 600))
    assert len(starts) == 600
    assert starts[0] == 0.0
    assert starts[-1] == pytest.approx(119.8)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert max(gaps) == pytest.approx(0.2) and min(gaps) == pytest.approx(0.2)


async def test_a_429_with_retry_after_pauses_every_queued_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM(strict=True)
    fake.on(model="gpt-4o-mini").fail(429, retry_after=10).respond(ok)
    limits = {"openai/gpt-4o-mini": trillm.RateLimit(rpm=600)}  # one every 0.1 s
    async with trillm.Client(transport=fake.transport(), api_key="sk-test",
                             rate_limits=limits) as client:
        calls = [partial(client.acompletion, "openai/gpt-4o-mini", MSGS) for _ in range(10)]
        await trillm.gather(*calls)
    sent = [q.started_at for q in fake.requests]
    assert [q.status for q in fake.requests] == [429] + [200] * 10
    assert sent[0] == 0.0
    assert len(sent) == 11  # 10 calls, one of them retried
    assert min(sent[1:]) >= 10.0  # nobody went while the key was paused


async def test_model_and_provider_limits_both_apply(autojump_clock: trio.testing.MockClock) -> None:
    starts: dict[str, list[float]] = {"mock/a": [], "mock/b": []}
    limits = {"mock/a": trillm.RateLimit(rpm=60), "mock": trillm.RateLimit(rpm=120)}
    async with trillm.Client(rate_limits=limits) as client:

        async def one(model: str) -> None:
            await client.acompletion(model, MSGS)
            starts[model].append(trio.current_time())

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one, "mock/a")
                nursery.start_soon(one, "mock/b")
    a = starts["mock/a"]
    assert min(y - x for x, y in itertools.pairwise(a)) >= 1.0 - 1e-9  # its own 1 s
    all_starts = sorted(starts["mock/a"] + starts["mock/b"])
    gaps = [b - a for a, b in itertools.pairwise(all_starts)]
    assert min(gaps) >= 0.5 - 1e-9  # the provider's 0.5 s spacing holds across models


async def test_no_concurrency_slot_is_held_while_waiting_for_the_rate_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    done: dict[str, float] = {}
    limits = {"mock/slow-lane": trillm.RateLimit(rpm=1)}  # the second call waits 60 s
    async with trillm.Client(max_concurrency=1, rate_limits=limits) as client:

        async def call(name: str, model: str, at: float) -> None:
            await trio.sleep(at)
            await client.acompletion(model, MSGS, mock_latency=1)
            done[name] = trio.current_time()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "first", "mock/slow-lane", 0)
            nursery.start_soon(call, "second", "mock/slow-lane", 2)
            nursery.start_soon(call, "other", "mock/fast-lane", 3)
    assert done == {"first": 1.0, "other": 4.0, "second": 61.0}


async def test_rate_limit_wait_past_the_deadline_is_a_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trillm.Client(rate_limits={"mock/x": trillm.RateLimit(rpm=1)}) as client:
        await client.acompletion("mock/x", MSGS)
        with pytest.raises(errors.Timeout, match="rate limit"):
            await client.acompletion("mock/x", MSGS, deadline=5)
    assert trio.current_time() == 0.0  # refused at once, nothing booked


async def test_token_limits_use_the_estimate_then_the_usage(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM(strict=True)
    fake.on(model="m").respond(ok)  # uses 2 tokens, far below the 601 estimated
    limits = {"openai": trillm.RateLimit(tpm=600)}
    async with trillm.Client(transport=fake.transport(), api_key="k",
                             rate_limits=limits) as client:
        for _ in range(2):
            await client.acompletion("openai/m", MSGS, max_tokens=600)
    assert [q.params["max_tokens"] for q in fake.requests] == [600, 600]
    seen = [q.started_at for q in fake.requests]
    # the first booking of 601 tokens was corrected to 2: the second goes ~0.2 s later, not 60 s
    assert seen[0] == 0.0
    assert seen[1] < 1.0


def test_rate_limits_must_be_rate_limit_values() -> None:
    with pytest.raises(TypeError, match="RateLimit"):
        trillm.Client(rate_limits={"mock/x": 300})  # type: ignore[dict-item]


async def test_a_pause_also_holds_requests_waiting_for_a_concurrency_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Regression: requests paced before the 429 but still queued for the one slot went
    # out during the pause (at 2, 3, 4 s) as soon as they got the slot.
    fake = FakeLLM(strict=True)
    fake.on(model="gpt-4o-mini").fail(429, retry_after=10, delay=1).respond(ok, delay=1)
    limits = {"openai/gpt-4o-mini": trillm.RateLimit(rpm=6000)}
    async with trillm.Client(transport=fake.transport(), api_key="k",
                             max_concurrency=1, rate_limits=limits) as client:
        calls = [partial(client.acompletion, "openai/gpt-4o-mini", MSGS) for _ in range(4)]
        await trillm.gather(*calls)
    sent = [q.started_at for q in fake.requests]  # each answered 1 s after it was sent
    assert sent[0] == 0.0 and fake.requests[0].status == 429
    assert min(sent[1:]) >= 11.0  # the 429 came at 1.0 with Retry-After: 10


async def test_two_clients_on_one_rate_store_share_the_pace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from trillm.limits import InMemoryRateStore

    store = InMemoryRateStore()
    limits = {"mock/echo": trillm.RateLimit(rpm=60)}
    starts: list[tuple[int, float]] = []

    async def worker(n: int) -> None:
        async with trillm.Client(rate_limits=limits, rate_store=store) as client:
            for _ in range(3):
                await client.acompletion("mock/echo", MSGS)
                starts.append((n, trio.current_time()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker, 0)
        nursery.start_soon(worker, 1)
    assert sorted(t for _, t in starts) == [0, 1, 2, 3, 4, 5]  # one pace for both
    assert {n for n, _ in starts} == {0, 1}


def test_rate_store_without_rate_limits_is_refused() -> None:
    from trillm.limits import InMemoryRateStore

    with pytest.raises(ValueError, match="rate_store= holds the state of rate_limits="):
        trillm.Client(rate_store=InMemoryRateStore())
