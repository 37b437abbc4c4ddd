"""Properties of ``trillm.concurrency`` over random tasks, limits and outside cancellations.

Each example is its own ``trio.run`` on a fresh autojump ``MockClock`` (PATTERNS.md,
pitfall 18).  Tasks sleep a random multiple of 0.25 virtual seconds (exact in
floating point, so times are compared with ``==``) and then return their index
or raise their own ``Boom``.  A ``move_on_after`` at a random time may cancel
the helper from outside.  The issue's acceptance properties:

(a) results come in input order;
(b) never more than ``limit`` tasks run at once (and, beyond the issue, each
    call starts in input order as soon as a slot is free: a model computes the
    exact start times);
(c) every exception a task raised is in the ``ExceptionGroup`` (``gather``,
    ``amap``, ``race``/``hedge`` when all fail) or its ``Outcome``
    (``gather_settled``, ``as_completed``), none lost, when not cancelled
    from outside;
(d) after the helper returns or raises, no task it started is still running,
    and every coroutine object passed in is closed;
(e) ``race``/``hedge``: exactly one winner, the earliest success, and every
    other task that started was cancelled (it observed ``Cancelled``) at the
    winner's time, had already failed, or finished at the very same instant
    as the winner (a tie, which nothing can cancel any more).
"""

from __future__ import annotations

import functools
import heapq
import inspect
import math
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import outcome
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trillm.concurrency import amap, as_completed, gather, gather_settled, hedge, race

SETTINGS = settings(max_examples=150, deadline=None)

DURATIONS = st.integers(0, 8).map(lambda k: k * 0.25)
#: (duration, fails, passed as a coroutine object)
SPECS = st.lists(st.tuples(DURATIONS, st.booleans(), st.booleans()), max_size=8)
LIMITS = st.none() | st.integers(1, 5)
CANCEL = st.none() | st.integers(0, 10).map(lambda k: k * 0.25)

Spec = tuple[float, bool, bool]


class Boom(Exception):
    """A task's own failure."""


class Tracker:
    """What each task did: start and end times, and how it ended."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}
        self.ended: dict[int, tuple[str, float]] = {}  # "returned" | "raised" | "cancelled"
        self.raised: dict[int, Boom] = {}
        self.running = 0
        self.peak = 0
        self.coros: list[Any] = []

    async def task(self, i: int, duration: float, fails: bool) -> int:
        assert i not in self.started, "started twice"
        self.started[i] = trio.current_time()
        self.running += 1
        self.peak = max(self.peak, self.running)
        how = "?"
        try:
            try:
                await trio.sleep(duration)
            except trio.Cancelled:
                how = "cancelled"  # observed
                raise
            if fails:
                how = "raised"
                self.raised[i] = Boom(i)
                raise self.raised[i]
            how = "returned"
            return i
        finally:
            self.running -= 1
            self.ended[i] = (how, trio.current_time())

    def jobs(self, specs: list[Spec]) -> list[Any]:
        jobs: list[Any] = []
        for i, (duration, fails, as_coro) in enumerate(specs):
            if as_coro:
                coro = self.task(i, duration, fails)
                self.coros.append(coro)
                jobs.append(coro)
            else:
                jobs.append(functools.partial(self.task, i, duration, fails))
        return jobs

    def check_quiet(self) -> None:
        """(d): nothing still running, every start ended, every coroutine object closed."""
        assert self.running == 0
        assert set(self.started) == set(self.ended)
        for coro in self.coros:
            assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


def leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def same(excs: list[BaseException], expected: list[Boom]) -> bool:
    """The same exception objects (not merely equal ones)."""
    return sorted(map(id, excs)) == sorted(map(id, expected))


def model_starts(durations: list[float], limit: int | None) -> list[float]:
    """When each call starts: in input order, each as soon as one of *limit* slots is free."""
    slots = [0.0] * (limit or len(durations) or 1)
    starts = []
    for duration in durations:
        start = heapq.heappop(slots)
        starts.append(start)
        heapq.heappush(slots, start + duration)
    return starts


def check_starts(t: Tracker, specs: list[Spec], limit: int | None, until: float) -> None:
    """(b): the limit holds, and calls start exactly as the model says, before *until*."""
    if limit is not None:
        assert t.peak <= limit
    for i, start in enumerate(model_starts([d for d, _, _ in specs], limit)):
        if i in t.started:
            assert t.started[i] == start
        elif start < until:
            raise AssertionError(f"call {i} should have started at {start}")


def run(body: Callable[[], Awaitable[None]]) -> None:
    trio.run(body, clock=trio.testing.MockClock(autojump_threshold=0))


def first_failure(specs: list[Spec], limit: int | None) -> float:
    starts = model_starts([d for d, _, _ in specs], limit)
    ends = [s + d for s, (d, fails, _) in zip(starts, specs, strict=True) if fails]
    return min(ends, default=math.inf)


@SETTINGS
@given(specs=SPECS, limit=LIMITS, cancel_at=CANCEL)
def test_gather(specs: list[Spec], limit: int | None, cancel_at: float | None) -> None:
    async def body() -> None:
        t = Tracker()
        result: list[Any] | None = None
        error: BaseExceptionGroup[Any] | None = None
        try:
            with trio.move_on_after(math.inf if cancel_at is None else cancel_at) as cs:
                result = await gather(*t.jobs(specs), limit=limit)
        except ExceptionGroup as group:
            error = group
        t.check_quiet()  # (d)
        failed_at = first_failure(specs, limit)
        check_starts(t, specs, limit, min(failed_at, math.inf if cancel_at is None else cancel_at))
        if result is not None:
            assert result == list(range(len(specs)))  # (a)
            assert not t.raised
        if error is not None:
            found = leaves(error)
            assert all(isinstance(e, Boom) for e in found)
            assert set(map(id, found)) <= set(map(id, t.raised.values()))
            if not cs.cancelled_caught:
                assert same(found, list(t.raised.values()))  # (c)
        if not cs.cancelled_caught:
            assert (error is not None) == any(fails for _, fails, _ in specs)
            assert (error is not None) == bool(t.raised)
        else:
            assert result is None

    run(body)


@SETTINGS
@given(specs=SPECS, limit=LIMITS, cancel_at=CANCEL)
def test_gather_settled(specs: list[Spec], limit: int | None, cancel_at: float | None) -> None:
    async def body() -> None:
        t = Tracker()
        result: list[outcome.Outcome[int]] | None = None
        with trio.move_on_after(math.inf if cancel_at is None else cancel_at) as cs:
            result = await gather_settled(*t.jobs(specs), limit=limit)
        t.check_quiet()  # (d)
        check_starts(t, specs, limit, math.inf if cancel_at is None else cancel_at)
        if cs.cancelled_caught:
            return  # Cancelled propagated: never stored in a result
        assert result is not None
        assert len(result) == len(specs)
        for i, settled in enumerate(result):  # (a) and (c)
            if specs[i][1]:
                assert isinstance(settled, outcome.Error)
                assert settled.error is t.raised[i]
            else:
                assert settled == outcome.Value(i)
        assert set(t.started) == set(range(len(specs)))  # never fails fast

    run(body)


@SETTINGS
@given(specs=SPECS, limit=LIMITS, cancel_at=CANCEL, stop_after=st.none() | st.integers(0, 8))
def test_as_completed(
    specs: list[Spec], limit: int | None, cancel_at: float | None, stop_after: int | None
) -> None:
    async def body() -> None:
        t = Tracker()
        seen: list[tuple[int, outcome.Outcome[int], float]] = []
        left_at: float | None = None
        with trio.move_on_after(math.inf if cancel_at is None else cancel_at) as cs:
            async with as_completed(t.jobs(specs), limit=limit) as results:
                async for index, settled in results:
                    if len(seen) == stop_after:
                        left_at = trio.current_time()
                        break
                    seen.append((index, settled, trio.current_time()))
        t.check_quiet()  # (d), after an early break or cancellation too
        if left_at is not None:  # leaving early cancelled the rest at once
            assert trio.current_time() == left_at
            assert all(when <= left_at for _, when in t.ended.values())
        assert len({i for i, _, _ in seen}) == len(seen)
        times = [when for _, _, when in seen]
        assert times == sorted(times)  # in finishing order
        for index, settled, when in seen:
            assert t.ended[index][1] == when
            if specs[index][1]:
                assert isinstance(settled, outcome.Error)
                assert settled.error is t.raised[index]  # (c)
            else:
                assert settled == outcome.Value(index)
        if not cs.cancelled_caught and stop_after is None:
            assert sorted(i for i, _, _ in seen) == list(range(len(specs)))
            check_starts(t, specs, limit, math.inf)

    run(body)


@SETTINGS
@given(
    specs=SPECS,
    limit=st.integers(1, 5),
    ordered=st.booleans(),
    cancel_at=CANCEL,
    stop_after=st.none() | st.integers(0, 8),
    slow_reader=st.sampled_from([0, 0.25, 1]),
)
def test_amap(
    specs: list[Spec],
    limit: int,
    ordered: bool,
    cancel_at: float | None,
    stop_after: int | None,
    slow_reader: float,
) -> None:
    async def body() -> None:
        t = Tracker()
        pulled = consumed = 0

        def source() -> Iterator[int]:
            nonlocal pulled
            for i in range(len(specs)):
                pulled += 1
                assert pulled - consumed <= limit + 1  # memory bounded by the limit
                yield i

        async def fn(i: int) -> int:
            duration, fails, _ = specs[i]
            return await t.task(i, duration, fails)

        got: list[int] = []
        error: BaseExceptionGroup[Any] | None = None
        left_at: float | None = None
        try:
            with trio.move_on_after(math.inf if cancel_at is None else cancel_at) as cs:
                async with amap(fn, source(), limit=limit, ordered=ordered) as results:
                    async for r in results:
                        consumed += 1
                        if len(got) == stop_after:
                            left_at = trio.current_time()
                            break
                        got.append(r)
                        await trio.sleep(slow_reader)  # finished results pile up meanwhile
        except ExceptionGroup as group:
            error = group
        t.check_quiet()  # (d)
        if left_at is not None:  # leaving early cancelled the workers at once
            assert trio.current_time() == left_at
            assert all(when <= left_at for _, when in t.ended.values())
        assert t.peak <= limit  # (b)
        if ordered:
            assert got == list(range(len(got)))  # (a)
        elif not slow_reader:
            ends = [t.ended[r][1] for r in got]
            assert ends == sorted(ends)  # in finishing order
        assert all(t.ended[r][0] == "returned" for r in got)
        if error is not None:
            found = leaves(error)
            assert set(map(id, found)) <= set(map(id, t.raised.values()))
            if not cs.cancelled_caught:
                assert same(found, list(t.raised.values()))  # (c)
        elif not cs.cancelled_caught and stop_after is None:
            assert not t.raised
            assert sorted(got) == list(range(len(specs)))

    run(body)


@SETTINGS
@given(
    specs=st.lists(st.tuples(DURATIONS, st.booleans(), st.booleans()), min_size=1, max_size=6),
    cancel_at=CANCEL,
)
def test_race(specs: list[Spec], cancel_at: float | None) -> None:
    async def body() -> None:
        t = Tracker()
        winner: int | None = None
        error: BaseExceptionGroup[Any] | None = None
        try:
            with trio.move_on_after(math.inf if cancel_at is None else cancel_at) as cs:
                winner = await race(*t.jobs(specs))
        except ExceptionGroup as group:
            error = group
        t.check_quiet()  # (d)
        successes = [d for d, fails, _ in specs if not fails]
        if winner is not None:  # (e)
            won_at = specs[winner][0]
            assert not specs[winner][1]
            assert won_at == min(successes)
            assert trio.current_time() == won_at
            assert t.ended[winner] == ("returned", won_at)
            for j in t.started:
                if j != winner:
                    how, when = t.ended[j]
                    assert (how, when) in {
                        ("cancelled", won_at),
                        ("raised", specs[j][0]),
                        ("returned", won_at),  # a tie: finished at the winner's instant
                    }
                    assert how != "raised" or specs[j][0] <= won_at
            if won_at > 0:
                assert set(t.started) == set(range(len(specs)))
        elif error is not None:
            assert not cs.cancelled_caught
            assert not successes
            assert error.message == f"all {len(specs)} attempts failed"
            assert list(map(id, error.exceptions)) == [id(t.raised[i]) for i in range(len(specs))]
        else:
            assert cs.cancelled_caught
            assert cancel_at is not None
            assert not successes or cancel_at <= min(successes)

    run(body)


@SETTINGS
@given(
    specs=st.lists(st.tuples(DURATIONS, st.booleans(), st.just(False)), min_size=1, max_size=5),
    delay=DURATIONS,
    cancel_at=CANCEL,
)
def test_hedge(specs: list[Spec], delay: float, cancel_at: float | None) -> None:
    # The model: attempt k+1 starts `delay` after attempt k did, or when k fails, if earlier.
    starts = [0.0]
    for duration, fails, _ in specs[:-1]:
        starts.append(starts[-1] + (min(delay, duration) if fails else delay))
    finishes = [s + d for s, (d, _, _) in zip(starts, specs, strict=True)]
    first_win = min(
        (f for f, (_, fails, _) in zip(finishes, specs, strict=True) if not fails), default=math.inf
    )

    async def body() -> None:
        t = Tracker()
        attempts = iter(range(len(specs)))

        async def attempt() -> int:
            k = next(attempts)
            duration, fails, _ = specs[k]
            return await t.task(k, duration, fails)

        winner: int | None = None
        error: BaseExceptionGroup[Any] | None = None
        try:
            with trio.move_on_after(math.inf if cancel_at is None else cancel_at) as cs:
                winner = await hedge(attempt, delay=delay, max_attempts=len(specs))
        except ExceptionGroup as group:
            error = group
        t.check_quiet()  # (d)
        for k, start in enumerate(starts):
            if k in t.started:
                assert t.started[k] == start
            elif start < min(first_win, math.inf if cancel_at is None else cancel_at):
                raise AssertionError(f"attempt {k} should have started at {start}")
        if winner is not None:  # (e)
            assert finishes[winner] == first_win
            assert trio.current_time() == first_win
            for j in t.started:
                if j != winner:
                    how, when = t.ended[j]
                    assert how in {"cancelled", "raised", "returned"}
                    assert how != "cancelled" or when == first_win
                    assert how != "raised" or finishes[j] <= first_win
                    assert how != "returned" or finishes[j] == first_win  # a tie
        elif error is not None:
            assert not cs.cancelled_caught
            assert first_win == math.inf
            assert error.message == f"all {len(specs)} attempts failed"
            assert list(map(id, error.exceptions)) == [id(t.raised[i]) for i in range(len(specs))]
        else:
            assert cs.cancelled_caught

    run(body)
