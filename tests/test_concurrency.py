"""``trillm.concurrency`` behaviour on the autojump MockClock: exact virtual times, no sockets."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import outcome
import pytest
import trio
import trio.testing

from trillm.concurrency import amap, as_completed, gather, gather_settled, hedge, race


class Boom(Exception):
    """A task's own failure."""


class Log:
    """What the tasks did, and when (virtual seconds)."""

    def __init__(self) -> None:
        self.started: dict[Any, float] = {}
        self.finished: dict[Any, float] = {}
        self.cancelled: dict[Any, float] = {}
        self.running = 0
        self.peak = 0

    async def task(self, key: Any, duration: float, fail: bool = False) -> Any:
        self.started[key] = trio.current_time()
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await trio.sleep(duration)
            if fail:
                raise Boom(key)
            return key
        except trio.Cancelled:
            self.cancelled[key] = trio.current_time()
            raise
        finally:
            self.running -= 1
            self.finished[key] = trio.current_time()

    def job(self, key: Any, duration: float, fail: bool = False) -> Callable[[], Awaitable[Any]]:
        return functools.partial(self.task, key, duration, fail)


def all_closed(coros: list[Any]) -> bool:
    return all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in coros)


# --- gather -----------------------------------------------------------------------------


async def test_gather_results_in_input_order(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()
    results = await gather(log.job("a", 3), log.job("b", 1), log.job("c", 2))
    assert results == ["a", "b", "c"]
    assert trio.current_time() == 3
    assert log.finished == {"a": 3, "b": 1, "c": 2}


async def test_gather_respects_limit_and_starts_in_input_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    results = await gather(*(log.job(i, 1) for i in range(5)), limit=2)
    assert results == [0, 1, 2, 3, 4]
    assert log.peak == 2
    assert log.started == {0: 0, 1: 0, 2: 1, 3: 1, 4: 2}
    assert trio.current_time() == 3


async def test_gather_fails_fast_and_siblings_observe_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    with pytest.RaisesGroup(Boom):
        await gather(log.job(0, 10), log.job(1, 1, fail=True), log.job(2, 10))
    assert trio.current_time() == 1
    assert log.cancelled == {0: 1, 2: 1}
    assert log.running == 0


async def test_gather_except_star_and_every_failure_kept(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    go = trio.Event()

    async def fail_on_go(key: int) -> None:
        await go.wait()  # woken together: both fail before either sees a cancellation
        raise Boom(key)

    async def starter() -> None:
        await trio.sleep(2)
        go.set()

    caught: list[BaseException] = []
    try:
        await gather(functools.partial(fail_on_go, 0), functools.partial(fail_on_go, 1),
                     log.job(2, 5), starter)
    except* Boom as group:
        caught.extend(group.exceptions)
    assert sorted(str(e) for e in caught) == ["0", "1"]
    assert log.cancelled == {2: 2}


async def test_gather_waiting_tasks_never_start_after_a_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    with pytest.RaisesGroup(Boom):
        await gather(log.job(0, 1, fail=True), log.job(1, 1), log.job(2, 1), limit=1)
    assert list(log.started) == [0]


async def test_gather_accepts_coroutine_objects(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()
    assert await gather(log.task("x", 1), log.job("y", 2)) == ["x", "y"]


async def test_gather_closes_coroutines_never_started(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    coros = [log.task(0, 1, fail=True), log.task(1, 1), log.task(2, 1)]
    with pytest.RaisesGroup(Boom):
        await gather(*coros, limit=1)
    assert list(log.started) == [0]
    assert all_closed(coros)  # and filterwarnings=error saw no "never awaited"


async def test_gather_closes_coroutines_on_bad_arguments_and_outside_cancel() -> None:
    log = Log()
    coros = [log.task(0, 1), log.task(1, 1)]
    with pytest.raises(TypeError, match="argument 1"):
        await gather(coros[0], 42)  # type: ignore[arg-type]
    coros2 = [log.task(2, 1)]
    with pytest.raises(ValueError, match="at least 1"):
        await gather(*coros2, limit=0)
    coros3 = [log.task(3, 1)]
    with trio.CancelScope() as cs:
        cs.cancel()
        await gather(*coros3)
    assert cs.cancelled_caught
    assert all_closed([coros[0], *coros2, *coros3])
    assert not log.started
    coros[1].close()


@pytest.mark.parametrize("bad", ["2", 2.0, True, object()])
async def test_gather_rejects_bad_limits(bad: object) -> None:
    with pytest.raises(TypeError, match="limit must be"):
        await gather(limit=bad)  # type: ignore[arg-type]


async def test_gather_accepts_a_callers_capacity_limiter_even_while_holding_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = trio.CapacityLimiter(3)
    log = Log()
    borrowed: list[int] = []

    async def watch() -> None:
        await trio.sleep(0.5)
        borrowed.append(limiter.borrowed_tokens)

    async with limiter:  # this task holds a token: gather borrows for its own objects
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            assert await gather(*(log.job(i, 1) for i in range(4)), limit=limiter) == [0, 1, 2, 3]
    assert borrowed == [3]  # ours + two of gather's
    assert log.peak == 2
    assert trio.current_time() == 2
    assert limiter.borrowed_tokens == 0


async def test_gather_accepts_any_limiter_like_object(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events: list[tuple[str, object]] = []
    inner = trio.CapacityLimiter(1)

    class Recording:
        async def acquire_on_behalf_of(self, borrower: object) -> None:
            events.append(("acquire", borrower))
            await inner.acquire_on_behalf_of(borrower)

        def release_on_behalf_of(self, borrower: object) -> None:
            events.append(("release", borrower))
            inner.release_on_behalf_of(borrower)

    log = Log()
    assert await gather(log.job(0, 1), log.job(1, 1), limit=Recording()) == [0, 1]
    # gather waits for the second token while the first call runs.
    assert [kind for kind, _ in events] == ["acquire", "acquire", "release", "release"]
    borrowers = {id(b) for _, b in events}
    assert len(borrowers) == 2
    assert not any(isinstance(b, trio.lowlevel.Task) for _, b in events)
    assert log.started == {0: 0, 1: 1}


async def test_gather_outside_cancellation_propagates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    with trio.move_on_after(1.5) as cs:
        await gather(log.job(0, 1), log.job(1, 5), log.job(2, 5), limit=2)
    assert cs.cancelled_caught
    assert trio.current_time() == 1.5
    assert log.cancelled == {1: 1.5, 2: 1.5}
    assert log.running == 0


async def test_every_helper_is_a_checkpoint() -> None:
    async def instant() -> int:
        return 1

    with trio.testing.assert_checkpoints():
        assert await gather() == []
    with trio.testing.assert_checkpoints():
        assert await gather(instant) == [1]
    with trio.testing.assert_checkpoints():
        assert await gather_settled() == []
    with trio.testing.assert_checkpoints():
        assert await race(instant) == 1
    with trio.testing.assert_checkpoints():
        assert await hedge(instant, delay=1) == 1
    with trio.testing.assert_checkpoints():
        no_jobs: list[Callable[[], Awaitable[int]]] = []
        async with as_completed(no_jobs) as results:
            assert [r async for r in results] == []
    with trio.testing.assert_checkpoints():
        async with amap(lambda x: instant(), [], limit=1) as mapped:
            assert [r async for r in mapped] == []


async def test_bad_arguments_are_still_checkpoints() -> None:
    async def instant() -> int:
        return 1

    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: gather(limit=0),
        lambda: gather_settled(42),  # type: ignore[arg-type]
        lambda: race(),
        lambda: hedge(instant, delay=-1),
    ]
    for call in calls:
        with trio.CancelScope() as cs:
            cs.cancel()
            await call()  # cancelled before the argument error
        assert cs.cancelled_caught
        with pytest.raises((TypeError, ValueError)):
            await call()


# --- gather_settled -----------------------------------------------------------------------


async def test_gather_settled_never_fails_fast(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()
    settled = await gather_settled(log.job(0, 3), log.job(1, 1, fail=True), log.task(2, 2))
    assert trio.current_time() == 3
    assert not log.cancelled
    assert settled[0] == outcome.Value(0)
    assert settled[2] == outcome.Value(2)
    assert isinstance(settled[1], outcome.Error)
    assert isinstance(settled[1].error, Boom)
    with pytest.raises(Boom):
        settled[1].unwrap()


async def test_gather_settled_respects_limit(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()
    settled = await gather_settled(*(log.job(i, 1, fail=i % 2 == 0) for i in range(4)), limit=3)
    assert [type(s) for s in settled] == [outcome.Error, outcome.Value] * 2
    assert log.peak == 3
    assert log.started == {0: 0, 1: 0, 2: 0, 3: 1}


async def test_gather_settled_never_stores_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    settled: list[Any] | None = None
    with trio.move_on_after(1) as cs:
        settled = await gather_settled(log.job(0, 5), log.job(1, 5))
    assert cs.cancelled_caught
    assert settled is None
    assert log.cancelled == {0: 1, 1: 1}


async def test_gather_settled_keyboard_interrupt_propagates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()

    async def interrupted() -> None:
        await trio.sleep(1)
        raise KeyboardInterrupt

    with pytest.RaisesGroup(KeyboardInterrupt):
        await gather_settled(log.job(0, 5), interrupted, log.job(2, 0.5, fail=True))
    assert log.cancelled == {0: 1}
    assert trio.current_time() == 1


async def test_gather_settled_stores_an_exception_group_of_exceptions() -> None:
    async def inner() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(trio.sleep, 0))
            raise Boom("inner")

    (result,) = await gather_settled(inner)
    assert isinstance(result, outcome.Error)
    assert isinstance(result.error, ExceptionGroup)


# --- as_completed -------------------------------------------------------------------------


async def test_as_completed_yields_in_finish_order(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()
    seen: list[tuple[int, float, str]] = []
    async with as_completed([log.job(0, 3), log.job(1, 1, fail=True), log.job(2, 2)]) as results:
        async for index, result in results:
            seen.append((index, trio.current_time(), type(result).__name__))
    assert seen == [(1, 1, "Error"), (2, 2, "Value"), (0, 3, "Value")]


async def test_as_completed_with_limit(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()
    async with as_completed([log.job(i, 1) for i in range(3)], limit=1) as results:
        order = [(i, trio.current_time()) async for i, _ in results]
    assert order == [(0, 1), (1, 2), (2, 3)]
    assert log.peak == 1


async def test_as_completed_early_break_cancels_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    coros = [log.task(i, i + 1) for i in range(5)]
    async with as_completed(coros, limit=3) as results:
        async for index, result in results:
            assert (index, result.unwrap()) == (0, 0)
            break
    assert trio.current_time() == 1
    # 3 may or may not have taken 0's slot before the break: never started after it.
    assert {0, 1, 2} <= set(log.started) <= {0, 1, 2, 3}
    assert log.cancelled == {i: 1 for i in log.started if i != 0}
    assert log.running == 0
    assert all_closed(coros)


async def test_as_completed_body_error_comes_out_bare(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    with pytest.raises(KeyError, match="mine"):
        async with as_completed([log.job(0, 1), log.job(1, 5)]) as results:
            async for _ in results:
                raise KeyError("mine")
    assert log.cancelled == {1: 1}


async def test_as_completed_outside_cancel(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()
    seen = []
    with trio.move_on_after(1.5) as cs:
        async with as_completed([log.job(0, 1), log.job(1, 2)]) as results:
            async for index, _ in results:
                seen.append(index)
    assert cs.cancelled_caught
    assert seen == [0]
    assert log.cancelled == {1: 1.5}


# --- amap ---------------------------------------------------------------------------------


async def test_amap_unordered_gives_finish_order(autojump_clock: trio.testing.MockClock) -> None:
    durations = [3, 1, 2, 0.5]
    log = Log()

    async def fn(i: int) -> int:
        return await log.task(i, durations[i])  # type: ignore[no-any-return]

    async with amap(fn, range(4), limit=2) as results:
        got = [(r, trio.current_time()) async for r in results]
    # 0 and 1 start at 0; 1 ends at 1, 2 starts; 2 ends at 3 as 0 does; 3 starts at 3.
    assert got[0] == (1, 1.0)
    assert sorted(got[1:3]) == [(0, 3), (2, 3)]
    assert got[3] == (3, 3.5)
    assert log.peak == 2


async def test_amap_ordered_keeps_input_order_and_pauses_input(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pulled: list[tuple[int, float]] = []

    def source() -> Iterator[int]:
        for i in range(6):
            pulled.append((i, trio.current_time()))
            yield i

    async def fn(i: int) -> int:
        await trio.sleep(10 if i == 0 else 1)
        return i * 10

    async with amap(fn, source(), limit=3, ordered=True) as results:
        got = [(r, trio.current_time()) async for r in results]
    assert [r for r, _ in got] == [0, 10, 20, 30, 40, 50]
    # The head is pending for 10 s: 1 and 2 are done at 1 s and wait; nothing else is taken.
    assert pulled[:3] == [(0, 0), (1, 0), (2, 0)]
    assert pulled[3][1] == 10
    assert got[:3] == [(0, 10), (10, 10), (20, 10)]
    assert got[-1] == (50, 11)


async def test_amap_results_survive_a_cancelled_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def fn(i: int) -> int:
        await trio.sleep(1 + i)
        return i

    for ordered in (False, True):
        async with amap(fn, range(3), limit=3, ordered=ordered) as results:
            with trio.move_on_after(0.5):
                await results.__anext__()  # gives up before anything is ready
            assert [r async for r in results] == [0, 1, 2]


async def test_amap_async_iterable(autojump_clock: trio.testing.MockClock) -> None:
    async def source() -> AsyncIterator[int]:
        for i in range(5):
            await trio.sleep(0.1)
            yield i

    async def double(i: int) -> int:
        await trio.sleep(1)
        return 2 * i

    async with amap(double, source(), limit=5, ordered=True) as results:
        assert [r async for r in results] == [0, 2, 4, 6, 8]
    assert trio.current_time() == pytest.approx(1.5)


async def test_amap_failure_cancels_workers_and_propagates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    got: list[int] = []

    async def fn(i: int) -> int:
        duration = {0: 1, 1: 2}.get(i, 5)
        return await log.task(i, duration, fail=i == 1)  # type: ignore[no-any-return]

    with pytest.RaisesGroup(Boom):
        async with amap(fn, range(10), limit=3) as results:
            async for r in results:
                got.append(r)
    assert got == [0]
    assert trio.current_time() == 2
    assert set(log.started) == {0, 1, 2, 3}  # 3 took 0's slot when 0 was delivered
    assert log.cancelled == {2: 2, 3: 2}
    assert log.running == 0


async def test_amap_input_failure_propagates(autojump_clock: trio.testing.MockClock) -> None:
    def source() -> Iterator[int]:
        yield 1
        raise Boom("input")

    async def fn(i: int) -> int:
        await trio.sleep(1)
        return i

    with pytest.RaisesGroup(pytest.RaisesExc(Boom, match="input")):
        async with amap(fn, source(), limit=2) as results:
            async for _ in results:
                pass


async def test_amap_body_error_comes_out_bare(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()

    async def fn(i: int) -> int:
        return await log.task(i, 1 + i)  # type: ignore[no-any-return]

    with pytest.raises(KeyError):
        async with amap(fn, range(3), limit=3) as results:
            async for _ in results:
                raise KeyError("mine")
    assert log.cancelled == {1: 1, 2: 1}


async def test_amap_gives_back_a_callers_limiter_tokens(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = trio.CapacityLimiter(4)

    async def fn(i: int) -> int:
        await trio.sleep(1)
        return i

    async with amap(fn, range(100), limit=limiter, ordered=True) as results:
        async for r in results:
            if r == 5:
                break
    assert limiter.borrowed_tokens == 0


@pytest.mark.parametrize("bad", [0, -1])
async def test_amap_rejects_bad_limits(bad: int) -> None:
    async def fn(i: int) -> int:
        return i

    with pytest.raises(ValueError, match="at least 1"):
        async with amap(fn, range(3), limit=bad):
            pass
    with pytest.raises(TypeError, match="limit must be"):
        async with amap(fn, range(3), limit=None):  # type: ignore[arg-type]
            pass
    with pytest.raises(TypeError, match="iterable"):
        async with amap(fn, 3, limit=2):  # type: ignore[arg-type]
            pass


async def test_amap_over_a_million_items_keeps_memory_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limit, total = 50, 1_000_000
    pulled = consumed = 0
    peak_in_flight = 0
    running: set[int] = set()
    cancelled: set[int] = set()

    def source() -> Iterator[int]:
        nonlocal pulled, peak_in_flight
        for i in range(total):
            pulled += 1
            peak_in_flight = max(peak_in_flight, pulled - consumed)
            yield i

    async def fn(i: int) -> int:
        running.add(i)
        try:
            await trio.sleep(0.01 * (1 + i % 7))
            return i
        except trio.Cancelled:
            cancelled.add(i)
            raise
        finally:
            running.discard(i)

    async with amap(fn, source(), limit=limit) as results:
        async for _ in results:
            consumed += 1
            peak_in_flight = max(peak_in_flight, pulled - consumed)
            assert len(running) <= limit
            if consumed == 300:
                in_flight_at_break = set(running)
                break
            if consumed % 10 == 0:
                await trio.sleep(0.1)  # a slow reader: finished results must not pile up
    assert peak_in_flight <= limit + 1
    assert pulled <= consumed + limit + 1
    assert in_flight_at_break
    assert in_flight_at_break <= cancelled  # the workers still running observed Cancelled
    assert not running


# --- race and hedge -----------------------------------------------------------------------


async def test_race_first_success_wins_and_cancels_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    winner = await race(log.job("slow", 3), log.job("fails", 0.5, fail=True), log.task("fast", 1))
    assert winner == "fast"
    assert trio.current_time() == 1
    assert log.cancelled == {"slow": 1}


async def test_race_all_failing_raises_every_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    with pytest.RaisesGroup(
        pytest.RaisesExc(Boom, match="^0$"),
        pytest.RaisesExc(Boom, match="^1$"),
        pytest.RaisesExc(Boom, match="^2$"),
        match="all 3 attempts failed",
    ):
        await race(*(log.job(i, 3 - i, fail=True) for i in range(3)))
    assert trio.current_time() == 3
    caught = []
    try:
        await race(log.job("x", 1, fail=True))
    except* Boom as group:
        caught = list(group.exceptions)
    assert len(caught) == 1


async def test_race_outside_cancellation_propagates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    with trio.move_on_after(1) as cs:
        await race(log.job(0, 2), log.job(1, 3))
    assert cs.cancelled_caught
    assert log.cancelled == {0: 1, 1: 1}


async def test_hedge_fast_first_attempt_is_alone(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()
    calls = iter(range(10))

    async def attempt() -> Any:
        return await log.task(next(calls), 0.5)

    assert await hedge(attempt, delay=1) == 0
    assert log.started == {0: 0}
    assert trio.current_time() == 0.5


async def test_hedge_second_attempt_starts_exactly_at_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    durations = iter([5.0, 0.25])
    calls = iter(range(10))

    async def attempt() -> Any:
        return await log.task(next(calls), next(durations))

    assert await hedge(attempt, delay=1) == 1
    assert log.started == {0: 0, 1: 1}
    assert log.cancelled == {0: 1.25}
    assert trio.current_time() == 1.25


async def test_hedge_next_attempt_starts_when_the_previous_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    plan = iter([(0.25, True), (5.0, False), (0.5, False)])
    calls = iter(range(10))

    async def attempt() -> Any:
        duration, fail = next(plan)
        return await log.task(next(calls), duration, fail)

    assert await hedge(attempt, delay=1, max_attempts=3) == 2
    assert log.started == {0: 0, 1: 0.25, 2: 1.25}
    assert log.cancelled == {1: 1.75}


async def test_hedge_all_failing(autojump_clock: trio.testing.MockClock) -> None:
    log = Log()
    calls = iter(range(10))

    async def attempt() -> Any:
        return await log.task(next(calls), 2, fail=True)

    with pytest.RaisesGroup(Boom, Boom, Boom, match="all 3 attempts failed"):
        await hedge(attempt, delay=0.5, max_attempts=3)
    assert log.started == {0: 0, 1: 0.5, 2: 1}
    assert trio.current_time() == 3


async def test_hedge_rejects_coroutine_objects_and_bad_arguments() -> None:
    log = Log()
    coro = log.task(0, 1)
    with pytest.raises(TypeError, match="callable"):
        await hedge(coro, delay=1)  # type: ignore[arg-type]
    assert all_closed([coro])
    with pytest.raises(ValueError, match="max_attempts"):
        await hedge(log.job(0, 1), delay=1, max_attempts=0)
    with pytest.raises(ValueError, match="delay"):
        await hedge(log.job(0, 1), delay=float("nan"))
    assert not log.started
