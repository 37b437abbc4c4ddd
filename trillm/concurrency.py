"""Structured-concurrency helpers over any async callable: the trio forms of asyncio's recipes.

``gather``, ``gather_settled``, ``as_completed``, ``amap``, ``race`` and ``hedge``
know nothing about HTTP: they run zero-argument async callables (use
:func:`functools.partial` for arguments) in a nursery and keep the design's
promises (DESIGN.md, "Cancellation and errors: the promises" 3, 4, 5 and 8):

* **Nothing is lost.**  ``gather`` fails fast: the first failure cancels the
  siblings, and every failure that happened comes out together in the
  nursery's :class:`ExceptionGroup` (``except* SomeError:`` works; a group is
  never unwrapped).  ``gather_settled`` and ``as_completed`` never fail fast:
  they hand back one :class:`outcome.Outcome` per call.  They capture
  :class:`Exception` only, so ``Cancelled`` and ``KeyboardInterrupt`` still
  cancel everything and propagate; they are never stored as a result.
* **Nothing leaks.**  When a helper returns or raises (or its ``async with``
  block is left, early or not), no task it started is still running, and
  every limiter token it borrowed has been given back.
* **Every call is a checkpoint**, even on the fast paths (no work, bad
  arguments), so a loop of calls can always be cancelled.

Limits
------
``limit=`` is an ``int`` (the helper makes its own :class:`trio.CapacityLimiter`),
a caller's :class:`trio.CapacityLimiter`, or any object with
``acquire_on_behalf_of``/``release_on_behalf_of`` (:class:`LimiterLike`).
Tokens are borrowed on behalf of a small per-call borrower object, never a
task, so a task that already holds a token of the same limiter can still pass
it (trio refuses a second token to the same *borrower*).  Tokens are taken in
input order *before* a call is started, so calls start in input order and a
call waiting for a slot never starts after a failure (or after the block was
left).  Do not pass a limiter that the calls themselves acquire (a
:class:`~trillm.Client`'s ``max_concurrency``): all tokens could be held by
calls waiting for one.

Coroutine objects
-----------------
``gather``, ``gather_settled``, ``as_completed`` and ``race`` also accept
coroutine objects (``gather(fetch(1), fetch(2))``).  One that was never
started (a failure came first, or the caller cancelled) is closed, so there is
no "coroutine was never awaited" warning.  ``hedge`` needs a callable: it may
call it several times.

Context managers
----------------
``as_completed`` and ``amap`` are async context managers: their nursery lives
in the ``async with`` block and the results are read through an async
iterator, so no cancel scope is ever open across a ``yield`` that the caller
iterates (PATTERNS.md, pitfall 1).  Leaving the block, by ``break``, an error
or normally, cancels whatever is still running.  An error raised by the
block's own code comes out unchanged (not in a group: it is the caller's, not
a task's), unless a task failed as well, in which case both are in the group.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
)
from contextlib import asynccontextmanager
from typing import Any, Generic, Protocol, TypeAlias, TypeVar, cast

import outcome
import trio

from ._cancel import only_cancelled, raise_bare  # re-exported: they used to live here

__all__ = ["LimiterLike", "amap", "as_completed", "gather", "gather_settled", "hedge",
           "only_cancelled", "race", "raise_bare", "require_trio"]

T = TypeVar("T")
X = TypeVar("X")
R = TypeVar("R")

#: What the helpers run: a zero-argument async callable, or a coroutine object.
Job: TypeAlias = Callable[[], Awaitable[T]] | Coroutine[Any, Any, T]


class LimiterLike(Protocol):
    """What ``limit=`` accepts besides an ``int``: :class:`trio.CapacityLimiter`'s borrowing API."""

    async def acquire_on_behalf_of(self, borrower: Any, /) -> None:
        """Block until a token is lent to *borrower*."""

    def release_on_behalf_of(self, borrower: Any, /) -> None:
        """Give back the token lent to *borrower*."""


class _Borrower:
    """The borrower of one limiter token for one call: never a task (PATTERNS.md, pitfall 8)."""

    __slots__ = ("_helper", "_index")

    def __init__(self, helper: str, index: int) -> None:
        self._helper, self._index = helper, index

    def __repr__(self) -> str:
        return f"<trillm.{self._helper} call {self._index}>"


def _as_limiter(limit: object, *, required: bool = False) -> LimiterLike | None:
    """The limiter for ``limit=``: a new one for an int, the caller's own otherwise."""
    if limit is None and not required:
        return None
    if isinstance(limit, int) and not isinstance(limit, bool):
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        return trio.CapacityLimiter(limit)
    if callable(getattr(limit, "acquire_on_behalf_of", None)) and callable(
        getattr(limit, "release_on_behalf_of", None)
    ):
        return cast(LimiterLike, limit)
    raise TypeError(
        "limit must be an int, a trio.CapacityLimiter or an object with "
        f"acquire_on_behalf_of/release_on_behalf_of, not {limit!r}"
    )


class _Calls(Generic[T]):
    """The jobs of one helper call; coroutine objects are handed out once, the rest closed.

    Used as ``with _Calls(fns) as calls:`` around everything, so a coroutine
    object that was never started (bad arguments, a failure first, the caller
    cancelled) is closed on the way out instead of warning "never awaited".
    """

    __slots__ = ("_jobs",)

    def __init__(self, jobs: Iterable[Job[T]]) -> None:
        self._jobs: list[Job[T] | None] = list(jobs)

    def __enter__(self) -> _Calls[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for i, job in enumerate(self._jobs):
            if isinstance(job, Coroutine):
                self._jobs[i] = None
                job.close()

    def __len__(self) -> int:
        return len(self._jobs)

    def check(self) -> None:
        for i, job in enumerate(self._jobs):
            if not isinstance(job, Coroutine) and not callable(job):
                raise TypeError(
                    f"argument {i} is {job!r}: pass a zero-argument async callable "
                    "(functools.partial for arguments) or a coroutine object"
                )

    def name(self, i: int) -> object:
        """A task name for call *i* (trio turns a callable into its qualified name)."""
        job = self._jobs[i]
        return getattr(job, "__qualname__", repr(job)) if isinstance(job, Coroutine) else job

    def start(self, i: int) -> Awaitable[T]:
        """Call *i*'s awaitable; for a coroutine object, at most once."""
        job = self._jobs[i]
        if isinstance(job, Coroutine):
            self._jobs[i] = None
            return job
        if job is None:
            raise RuntimeError(f"call {i} was already started")
        return job()


def require_trio(name: str, instead: str, jobs: Iterable[object] = ()) -> None:
    """These helpers are trio's (nurseries, cancel scopes): under asyncio, say what to use.

    Coroutine objects among *jobs* are closed, so none is left never awaited.
    """
    if trio.lowlevel.in_trio_run():
        return
    for job in jobs:
        if isinstance(job, Coroutine):
            job.close()
    raise RuntimeError(
        f"trillm.{name}() runs under trio (trio.run, or anyio on its trio backend); "
        f"under asyncio use {instead} (trillm's calls themselves work under asyncio)"
    )


async def _run_slot(
    body: Callable[[int], Awaitable[None]], i: int, limiter: LimiterLike | None, token: object
) -> None:
    try:
        # Cancelled (a sibling failed, the block was left, the caller gave up)
        # between getting a slot and running: don't start at all.
        await trio.lowlevel.checkpoint_if_cancelled()
        await body(i)
    finally:
        if limiter is not None:
            limiter.release_on_behalf_of(token)


async def _start_all(
    nursery: trio.Nursery,
    calls: _Calls[Any],
    limiter: LimiterLike | None,
    body: Callable[[int], Awaitable[None]],
    helper: str,
) -> None:
    """Start ``body(i)`` for every call in input order, each once it has a slot."""
    for i in range(len(calls)):
        token: object = None
        if limiter is not None:
            token = _Borrower(helper, i)
            await limiter.acquire_on_behalf_of(token)  # released by _run_slot, whatever happens
        nursery.start_soon(_run_slot, body, i, limiter, token, name=calls.name(i))


async def gather(*fns: Job[T], limit: int | LimiterLike | None = None) -> list[T]:
    """Run every job concurrently, at most *limit* at a time; their results in input order.

    Each job is a zero-argument async callable (``functools.partial(f, x)``) or
    a coroutine object.  The first failure cancels the jobs still running,
    and jobs still waiting for a slot are never started; every failure that
    happened is raised together in an :class:`ExceptionGroup`, so
    ``except* trillm.errors.RateLimitError:`` works.  A cancellation from
    outside propagates.  When ``gather`` returns or raises, no job is still
    running.  ``gather()`` returns ``[]`` (after a checkpoint).

    *limit* is an ``int``, a :class:`trio.CapacityLimiter` or any
    :class:`LimiterLike`; jobs take their slots in input order (module docs).
    """
    require_trio("gather", "asyncio.TaskGroup, or asyncio.gather() with an asyncio.Semaphore "
                  "as the limit", fns)
    with _Calls(fns) as calls:
        await trio.lowlevel.checkpoint()
        calls.check()
        limiter = _as_limiter(limit)
        results: list[Any] = [None] * len(calls)

        async def run(i: int) -> None:
            results[i] = await calls.start(i)

        async with trio.open_nursery() as nursery:
            await _start_all(nursery, calls, limiter, run, "gather")
        return results


async def gather_settled(
    *fns: Job[T], limit: int | LimiterLike | None = None
) -> list[outcome.Outcome[T]]:
    """Run every job to its end, at most *limit* at a time; one :class:`outcome.Outcome` each.

    The trio form of ``asyncio.gather(..., return_exceptions=True)``: never
    fails fast; the list is in input order, ``outcome.Value(result)`` or
    ``outcome.Error(exception)`` (``.unwrap()`` returns or raises, once only).
    Only :class:`Exception` is captured: a cancellation from outside and
    ``KeyboardInterrupt`` cancel every job and propagate, never stored.
    """
    require_trio("gather_settled", "asyncio.gather(..., return_exceptions=True)", fns)
    with _Calls(fns) as calls:
        await trio.lowlevel.checkpoint()
        calls.check()
        limiter = _as_limiter(limit)
        settled: list[Any] = [None] * len(calls)

        async def run(i: int) -> None:
            settled[i] = await _settle(calls.start(i))

        async with trio.open_nursery() as nursery:
            await _start_all(nursery, calls, limiter, run, "gather_settled")
        return settled


async def _settle(awaitable: Awaitable[T]) -> outcome.Outcome[T]:
    # Not outcome.acapture: it catches BaseException and would store
    # Cancelled or KeyboardInterrupt (PATTERNS.md, pitfall 11).
    try:
        return outcome.Value(await awaitable)
    except Exception as exc:  # noqa: BLE001 - stored in the Outcome, never dropped
        return outcome.Error(exc)


@asynccontextmanager
async def _cancel_on_exit() -> AsyncGenerator[trio.Nursery, None]:
    """A nursery around the caller's ``async with`` block, cancelled when the block is left.

    The block's own error, when it is the only one, comes out as it went in:
    it is the caller's, not a task's, so wrapping it in a group would only
    hide it (as :func:`trio.as_safe_channel` does).  With a task's failure
    beside it, the nursery's group holds both.
    """
    own: BaseException | None = None
    bare: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                yield nursery
            except BaseException as exc:
                own = exc
                raise
            finally:
                nursery.cancel_scope.cancel("left the async with block")
    except BaseExceptionGroup as group:
        if own is None or len(group.exceptions) != 1 or group.exceptions[0] is not own:
            raise
        bare = own
    finally:
        own = None  # no frame -> exception -> traceback -> frame cycle
    if bare is not None:
        try:
            raise bare
        finally:
            del bare


class _Completed(Generic[T]):
    """``as_completed``'s results: ``(index, outcome)`` pairs as the calls finish."""

    __slots__ = ("_left", "_receive")

    def __init__(self, receive: trio.MemoryReceiveChannel[tuple[int, outcome.Outcome[T]]], n: int):
        self._receive, self._left = receive, n

    def __aiter__(self) -> _Completed[T]:
        return self

    async def __anext__(self) -> tuple[int, outcome.Outcome[T]]:
        if self._left == 0:
            await trio.lowlevel.checkpoint()
            raise StopAsyncIteration
        item = await self._receive.receive()  # cancel-safe: nothing is lost
        self._left -= 1
        return item


@asynccontextmanager
async def as_completed(
    fns: Iterable[Job[T]], *, limit: int | LimiterLike | None = None
) -> AsyncGenerator[AsyncIterator[tuple[int, outcome.Outcome[T]]], None]:
    """Run the jobs, at most *limit* at a time; iterate ``(index, outcome)`` as each finishes.

    ::

        async with trillm.as_completed(fns, limit=3) as results:
            async for index, result in results:
                print(index, result.unwrap())   # unwrap() raises a failed call's error

    Never fails fast: a failure is an ``outcome.Error`` like any other result
    (only :class:`Exception` is captured; cancellation and KeyboardInterrupt
    propagate).  Leaving the block early (``break``, an error) cancels the
    calls still running; calls never started are not started.
    """
    fns = list(fns)
    require_trio("as_completed", "asyncio.as_completed()", fns)
    with _Calls(fns) as calls:
        await trio.lowlevel.checkpoint()
        calls.check()
        limiter = _as_limiter(limit)
        n = len(calls)
        send, receive = trio.open_memory_channel[tuple[int, outcome.Outcome[T]]](n)

        async def run(i: int) -> None:
            result = await _settle(calls.start(i))
            send.send_nowait((i, result))  # room for every call: never blocks

        with send, receive:
            async with _cancel_on_exit() as nursery:
                nursery.start_soon(_start_all, nursery, calls, limiter, run, "as_completed")
                yield _Completed(receive, n)


class _Pending(Generic[R]):
    """One ``amap`` item taken from the input; also the borrower of its token."""

    __slots__ = ("done", "index", "value")

    def __init__(self, index: int, ordered: bool) -> None:
        self.index = index
        self.done = trio.Event() if ordered else None
        self.value: R | None = None

    def __repr__(self) -> str:
        return f"<trillm.amap item {self.index}>"


class _Mapped(Generic[R]):
    """``amap``'s results; delivering one gives its slot back, so input may be pulled again."""

    __slots__ = ("_head", "_limiter", "_outstanding", "_receive")

    def __init__(
        self,
        receive: trio.MemoryReceiveChannel[_Pending[R]],
        limiter: LimiterLike,
        outstanding: set[_Pending[R]],
    ) -> None:
        self._receive, self._limiter, self._outstanding = receive, limiter, outstanding
        self._head: _Pending[R] | None = None

    def __aiter__(self) -> _Mapped[R]:
        return self

    async def __anext__(self) -> R:
        head = self._head
        if head is None:
            try:
                head = self._head = await self._receive.receive()
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
        if head.done is not None:
            await head.done.wait()  # ordered; if cancelled here, the head stays for the next call
        self._head = None
        self._outstanding.discard(head)
        self._limiter.release_on_behalf_of(head)
        return cast(R, head.value)


async def _map_one(
    async_fn: Callable[[X], Awaitable[R]],
    item: X,
    pending: _Pending[R],
    send: trio.MemorySendChannel[_Pending[R]] | None,
) -> None:
    await trio.lowlevel.checkpoint_if_cancelled()  # the block was left or a worker failed
    if send is None:
        pending.value = await async_fn(item)
        assert pending.done is not None
        pending.done.set()
    else:
        with send:
            pending.value = await async_fn(item)
            send.send_nowait(pending)


async def _feed(
    nursery: trio.Nursery,
    async_fn: Callable[[X], Awaitable[R]],
    iterable: Iterable[X] | AsyncIterable[X],
    limiter: LimiterLike,
    ordered: bool,
    send: trio.MemorySendChannel[_Pending[R]],
    outstanding: set[_Pending[R]],
) -> None:
    """Take one item from the input each time a slot is free; start a worker for it."""
    source: AsyncIterator[X] | None = None
    items: Iterator[X] | None = None
    if isinstance(iterable, AsyncIterable):
        source = aiter(iterable)
    else:
        items = iter(iterable)
    with send:
        for index in itertools.count():  # an endless input is fine: the block's exit cancels us
            pending = _Pending[R](index, ordered)
            await limiter.acquire_on_behalf_of(pending)
            outstanding.add(pending)  # given back on delivery, or when amap exits
            try:
                item = await anext(source) if source is not None else next(cast(Iterator[X], items))
            except (StopIteration, StopAsyncIteration):
                outstanding.discard(pending)
                limiter.release_on_behalf_of(pending)
                return
            if ordered:
                send.send_nowait(pending)  # in input order: the results come out in that order
                nursery.start_soon(_map_one, async_fn, item, pending, None)
            else:
                nursery.start_soon(_map_one, async_fn, item, pending, send.clone())


@asynccontextmanager
async def amap(
    async_fn: Callable[[X], Awaitable[R]],
    iterable: Iterable[X] | AsyncIterable[X],
    *,
    limit: int | LimiterLike,
    ordered: bool = False,
) -> AsyncGenerator[AsyncIterator[R], None]:
    """Map *async_fn* over a (sync or async, possibly endless) iterable, *limit* items at a time.

    ::

        async with trillm.amap(summarize, documents, limit=10) as summaries:
            async for summary in summaries:
                ...

    Memory is bounded by *limit*, not by the input: an item is taken from the
    input only when one of the *limit* slots is free, and a slot is held from
    taking the item until its result was delivered to you (so at most *limit*
    calls run, and at most *limit* items are in flight).  Results come in
    finishing order, or with ``ordered=True`` in input order: then finished
    results wait for an earlier one in a buffer of fewer than *limit*, and no
    input is taken while all slots are busy.

    A failure (of *async_fn* or of the input's iterator) cancels the other
    workers and is raised out of the ``async with`` block in the nursery's
    :class:`ExceptionGroup` (with any other failure at the same moment), as
    from :func:`gather`: ``except* SomeError:`` works.  Leaving the block
    early cancels the workers.  The input iterator is not closed: wrap an
    async generator in :func:`contextlib.aclosing` to finalize it at once.
    """
    require_trio("amap", "asyncio.TaskGroup with an asyncio.Semaphore as the limit")
    await trio.lowlevel.checkpoint()
    if not callable(async_fn):
        raise TypeError(f"async_fn must be an async callable, not {async_fn!r}")
    if not isinstance(iterable, Iterable | AsyncIterable):
        raise TypeError(f"amap needs an iterable or an async iterable, not {iterable!r}")
    limiter = _as_limiter(limit, required=True)
    assert limiter is not None
    outstanding: set[_Pending[R]] = set()
    send, receive = trio.open_memory_channel[_Pending[R]](math.inf)  # < limit items, by the slots
    try:
        with receive:
            async with _cancel_on_exit() as nursery:
                nursery.start_soon(
                    _feed, nursery, async_fn, iterable, limiter, ordered, send, outstanding
                )
                yield _Mapped(receive, limiter, outstanding)
    finally:
        for pending in outstanding:  # taken, never delivered: every worker has ended by now
            limiter.release_on_behalf_of(pending)
        outstanding.clear()


class _FirstSuccess(Generic[T]):
    """Attempts in one nursery: the first to succeed cancels the others; failures are kept."""

    __slots__ = ("_nursery", "failures", "won")

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.won: list[T] = []
        self.failures: list[tuple[int, Exception]] = []

    async def attempt(
        self, i: int, start: Callable[[], Awaitable[T]], failed: trio.Event | None = None
    ) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()  # someone already won: don't start
        try:
            value = await start()
        except Exception as exc:  # noqa: BLE001 - kept for the group raised when all fail
            self.failures.append((i, exc))
            if failed is not None:
                failed.set()
            return
        if not self.won:  # a loser finishing at the same instant is discarded
            self.won.append(value)
            self._nursery.cancel_scope.cancel("another attempt succeeded")

    def result(self) -> T:
        if self.won:
            return self.won[0]
        self.failures.sort(key=lambda failure: failure[0])
        raise ExceptionGroup(
            f"all {len(self.failures)} attempts failed", [exc for _, exc in self.failures]
        )


async def race(*fns: Job[T]) -> T:
    """Run the jobs concurrently; the first to succeed wins and the others are cancelled at once.

    A failure does not end the race; when every job fails, an
    :class:`ExceptionGroup` ("all N attempts failed") holds every failure in
    input order.  Once one job has won, the losers' errors (if any arise while
    they are being cancelled) are dropped with them.  A cancellation from
    outside propagates.  Jobs are callables or coroutine objects, as for
    :func:`gather`.  ``race()`` with no job raises :class:`ValueError`.
    """
    require_trio("race", "asyncio.wait(..., return_when=asyncio.FIRST_COMPLETED)", fns)
    with _Calls(fns) as calls:
        await trio.lowlevel.checkpoint()
        calls.check()
        if not len(calls):
            raise ValueError("race() needs at least one job")
        async with trio.open_nursery() as nursery:
            race = _FirstSuccess[T](nursery)
            for i in range(len(calls)):
                start = functools.partial(calls.start, i)
                nursery.start_soon(race.attempt, i, start, name=calls.name(i))
        return race.result()


async def hedge(fn: Callable[[], Awaitable[T]], *, delay: float, max_attempts: int = 2) -> T:
    """Call *fn*; if it has not succeeded after *delay* seconds, call it again, and so on.

    Attempt 1 starts at once.  Attempt k+1 starts *delay* seconds after
    attempt k started, or as soon as attempt k fails, whichever is first (as
    in happy eyeballs, ``trio.open_tcp_stream``), up to *max_attempts*
    attempts.  The first success wins and cancels the others at once; when
    every attempt fails, an :class:`ExceptionGroup` ("all N attempts failed")
    holds every failure in attempt order (a loser's error while it is being
    cancelled is dropped, as in :func:`race`).  A cancellation from outside
    propagates.  *fn* is a zero-argument async callable (not a coroutine
    object: it is called once per attempt).
    """
    require_trio("hedge", "asyncio.wait(..., timeout=delay) then a second task")
    job: object = fn  # a coroutine object by mistake: close it, then refuse it below
    if isinstance(job, Coroutine):
        job.close()
    await trio.lowlevel.checkpoint()
    if not callable(fn):
        raise TypeError(f"hedge needs a zero-argument async callable, not {fn!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be an int >= 1, not {max_attempts!r}")
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not delay >= 0:
        raise ValueError(f"delay must be a number of seconds >= 0, not {delay!r}")
    async with trio.open_nursery() as nursery:
        race = _FirstSuccess[T](nursery)
        for k in range(max_attempts):
            failed = trio.Event()
            nursery.start_soon(race.attempt, k, fn, failed, name=f"trillm.hedge attempt {k + 1}")
            if k + 1 < max_attempts:
                with trio.move_on_after(delay):
                    await failed.wait()
    return race.result()
