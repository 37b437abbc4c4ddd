"""Rate limits: even pacing of requests and tokens per model or provider.

A :class:`RateLimit` says how fast one key may go; a :class:`RateLimiter`
holds the limits of several keys (``"openai/gpt-4o-mini"``, ``"openai"``) and
is what the Client calls: it *books* a slot on every configured key, then
sleeps until the slot comes, outside any lock or ``CapacityLimiter`` slot.

Pacing is the generic cell rate algorithm (GCRA), the "virtual scheduling"
form of a token bucket.  Each (key, dimension) keeps one number, the
theoretical arrival time ``TAT``: when its bucket will be empty.  With an
emission interval ``T = 60 / rate`` seconds per unit and a tolerance ``L``
(the bucket's capacity, in seconds), a request of cost ``c`` booked at
``now`` starts at, and moves ``TAT`` to::

    start = max(now, max(TAT, now) + min(0, c*T - L))
    TAT   = max(TAT, start) + c*T

At ``rpm=300`` (``T = 0.2 s``, ``L = burst*T``) request *i* goes at ``0.2*i``
s: 600 take two minutes, never a minute's worth at once; ``burst=b`` lets *b*
go back to back first.  A request larger than the bucket (``c*T > L``) is
never refused: it waits until the bucket is empty, then goes.  Every bucket
of a key holds the same time, ``burst`` requests' worth (``burst * tpm/rpm``
tokens); with ``tpm`` alone, ``burst`` tokens, so each request waits for the
tokens booked before it to drain.  With ``rpm`` and ``tpm`` a request waits
for the later of the two and is booked in both; on one key start times never
decrease in booking order (first come, first served), and none is before
the end of a :meth:`~RateStore.pause`.

The state lives behind :class:`RateStore`, an async protocol in relative
seconds and in reservation form (``reserve`` books and answers "wait this
long"; ``reserve_many`` books one request on several keys at once, all at the
slowest key's slot), so a store shared by many processes
(:class:`trillm.redis.RedisRateStore`: a Lua script doing the arithmetic above
on the server's clock) can replace :class:`InMemoryRateStore` without touching
callers.  The in-process store reads :func:`trio.current_time` (a
``MockClock`` drives it); its methods never block and never checkpoint, so a
booking is atomic and no cancellation can land between booking a slot and
reporting it.  :class:`RateLimiter`'s methods are the checkpoints.

The Client, per attempt::

    keys = (f"{provider}/{model}", provider)
    res = await limiter.acquire(keys, estimate_tokens(messages, max_tokens),
                                deadline=call_deadline)       # RateLimitTimeout: too late
    try:
        async with capacity_limiter:                           # only now take a slot
            response = await send(...)
    except RateLimitError as exc:                              # 429: pause the queue,
        await limiter.pause(keys, exc.retry_after or backoff)  # then acquire again
        ...
    await res.settle(response.usage.total_tokens if response.usage else None)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import attrs
import trio

from ._records import record_repr

__all__ = [
    "REQUESTS", "TOKENS", "RateLimit", "RateStore", "InMemoryRateStore",
    "RateLimiter", "Reservation", "RateLimitTimeout", "estimate_tokens",
]  # fmt: skip

#: Bucket dimensions: the keys of ``costs`` and ``delta`` in :class:`RateStore`.
REQUESTS = "requests"
TOKENS = "tokens"

# How long a refund may take when a booking is abandoned (under cancellation).
_CLEANUP_TIMEOUT = 2.0


def _check_rate(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"RateLimit {name} must be a number or None, not {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"RateLimit {name} must be a positive, finite number, not {value!r}")


def _check_seconds(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")


@attrs.frozen(repr=False)
class RateLimit:
    """How fast one key may go: ``rpm`` requests and/or ``tpm`` tokens per minute.

    At least one of them is required.  Requests are paced evenly (``rpm=300``:
    one every 0.2 s), not sent as a minute's worth at once; ``burst`` lets that
    many go back to back first.  Raises :exc:`ValueError` for a missing,
    non-positive or infinite rate or a ``burst`` below 1, and :exc:`TypeError`
    for something that is not a number.
    """

    __repr__ = record_repr

    rpm: float | None = None
    tpm: float | None = None
    burst: int = 1

    def __attrs_post_init__(self) -> None:
        _check_rate("rpm", self.rpm)
        _check_rate("tpm", self.tpm)
        if self.rpm is None and self.tpm is None:
            raise ValueError("RateLimit needs rpm= or tpm= (or both)")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int):
            raise TypeError(f"RateLimit burst must be an int, not {type(self.burst).__name__}")
        if self.burst < 1:
            raise ValueError(f"RateLimit burst must be at least 1, not {self.burst}")

    def intervals(self) -> dict[str, float]:
        """Seconds per unit of each limited dimension (``{"requests": 0.2}`` at rpm=300)."""
        out: dict[str, float] = {}
        if self.rpm is not None:
            out[REQUESTS] = 60.0 / self.rpm
        if self.tpm is not None:
            out[TOKENS] = 60.0 / self.tpm
        return out

    @property
    def tolerance(self) -> float:
        """Each bucket's capacity in seconds: ``burst`` requests' worth (or tokens, tpm alone)."""
        rate = self.rpm if self.rpm is not None else self.tpm
        assert rate is not None
        return self.burst * 60.0 / rate


class RateStore(Protocol):
    """Where pacing state lives; all times are relative seconds.

    Keys are opaque strings; each process tells its store the limit of a key
    with :meth:`configure` (a shared store keeps only the ``TAT`` values, each
    process passes the same limits).  A dimension a key has no limit for is
    free; a key never configured has no limits, but can still be paused.
    """

    def configure(self, key: str, limit: RateLimit) -> None:
        """Set (or replace) *key*'s limit; bookings already made are kept."""
        ...

    async def reserve(
        self, key: str, costs: Mapping[str, float], max_wait: float, *, not_before: float = 0.0
    ) -> float | None:
        """Book a slot now; how long to wait before sending (0: at once).

        The slot is never earlier than *not_before* seconds from now (a request
        counted against several keys starts when the slowest of them allows).

        *costs* maps a dimension to its cost (``{"requests": 1, "tokens": 850}``).
        Returns ``None`` and books nothing when the wait would exceed *max_wait*.
        With empty *costs* nothing is booked and the answer is the time left on
        a :meth:`pause` (a caller checks that after sleeping).
        """
        ...

    async def reserve_many(
        self, keys: Sequence[str], costs: Mapping[str, float], max_wait: float
    ) -> float | None:
        """Book one request on every key of *keys* at one slot, atomically; the wait.

        The slot is the earliest that every key allows (the slowest key's), and
        each key is booked at it, so a key that alone would have let the request
        go sooner does not count a start that never happened.  Repeated keys
        count once.  Returns ``None`` and books nothing when the wait would
        exceed *max_wait*.  With empty *costs* nothing is booked and the answer
        is the longest time left on a :meth:`pause` of any of the keys.
        """
        ...

    async def adjust(self, key: str, delta: Mapping[str, float]) -> None:
        """Correct a booking: add ``delta[dim]`` units (negative gives capacity back).

        ``{"requests": -1, "tokens": -c}`` gives a whole booking back (the
        caller never sent it); a store that can undoes the latest one exactly.
        """
        ...

    async def pause(self, key: str, seconds: float) -> None:
        """Let nothing on *key* start before *seconds* from now (a 429's Retry-After)."""
        ...


@attrs.define(repr=False)
class _Booking:

    __repr__ = record_repr

    start: float
    tokens: float
    moved: dict[str, float]  # how far it moved each TAT: its cost, plus any idle gap skipped
    prev_last_start: float


@attrs.define(repr=False)
class _KeyState:

    __repr__ = record_repr

    intervals: dict[str, float] = attrs.Factory(dict)
    tolerance: float = 0.0
    tat: dict[str, float] = attrs.Factory(dict)
    paused_until: float = -math.inf
    last_start: float = -math.inf
    queued: deque[_Booking] = attrs.Factory(deque)  # bookings whose start has not come

    def forget_started(self, now: float) -> None:
        while self.queued and self.queued[0].start < now:
            self.queued.popleft()


_UNCONFIGURED = _KeyState()


class InMemoryRateStore:
    """The default :class:`RateStore`: GCRA per (key, dimension) on :func:`trio.current_time`.

    Its methods compute and return without blocking or checkpointing, so
    each call is atomic with respect to other tasks (like a Lua script in a
    shared store).  It remembers the bookings whose start has not come, so
    that a give-back (``adjust`` with ``requests`` below 0) undoes the latest
    one exactly: a queue cancelled as a whole leaves no trace.  Its times are
    those of one trio run: use a store (and a limiter) within one run only.
    """

    def __init__(self) -> None:
        self._keys: dict[str, _KeyState] = {}

    def configure(self, key: str, limit: RateLimit) -> None:
        state = self._keys.setdefault(key, _KeyState())
        state.intervals = limit.intervals()
        state.tolerance = limit.tolerance

    async def reserve(
        self, key: str, costs: Mapping[str, float], max_wait: float, *, not_before: float = 0.0
    ) -> float | None:
        return self._reserve((key,), costs, max_wait, not_before)

    async def reserve_many(
        self, keys: Sequence[str], costs: Mapping[str, float], max_wait: float
    ) -> float | None:
        if isinstance(keys, str):
            raise TypeError("keys must be a sequence of strings, not one string")
        return self._reserve(tuple(dict.fromkeys(keys)), costs, max_wait, 0.0)

    def _reserve(
        self, keys: Sequence[str], costs: Mapping[str, float], max_wait: float, not_before: float
    ) -> float | None:
        # Never blocks: the whole booking, on every key, is one atomic step.
        for dim, cost in costs.items():
            if not (cost >= 0 and math.isfinite(cost)):
                raise ValueError(f"cost of {dim!r} must be a finite number >= 0, not {cost!r}")
        if math.isnan(max_wait):
            raise ValueError("max_wait must be a number of seconds, not nan")
        states = [self._keys.get(key, _UNCONFIGURED) for key in keys]
        now = trio.current_time()
        start = max([now, *(state.paused_until for state in states)])
        if not costs:
            return start - now  # a probe: the pause alone, nothing booked
        start = max(start, now + not_before)
        for state in states:
            start = max(start, state.last_start)
            for dim, cost in costs.items():
                interval = state.intervals.get(dim)
                if interval is not None:
                    tat = max(state.tat.get(dim, -math.inf), now)
                    start = max(start, tat + min(0.0, cost * interval - state.tolerance))
        wait = start - now
        if wait > max_wait:
            return None
        for key, state in zip(keys, states, strict=True):
            if state is _UNCONFIGURED:
                state = self._keys[key] = _KeyState()
            state.forget_started(now)
            moved: dict[str, float] = {}
            for dim, cost in costs.items():
                interval = state.intervals.get(dim)
                if interval is not None:
                    tat = max(state.tat.get(dim, -math.inf), now)
                    state.tat[dim] = max(tat, start) + cost * interval
                    moved[dim] = state.tat[dim] - tat
            state.queued.append(_Booking(start, costs.get(TOKENS, 0.0), moved, state.last_start))
            state.last_start = start
        return wait

    async def adjust(self, key: str, delta: Mapping[str, float]) -> None:
        for dim, units in delta.items():
            if not math.isfinite(units):
                raise ValueError(f"delta of {dim!r} must be a finite number, not {units!r}")
        state = self._keys.get(key)
        if state is None:
            return
        now = trio.current_time()
        state.forget_started(now)
        rest = dict(delta)
        while rest.get(REQUESTS, 0.0) <= -1 and state.queued:
            # A give-back: undo the latest booking exactly, then correct for the
            # difference when the one given back was another (a gap stays there).
            booking = state.queued.pop()
            for dim, moved in booking.moved.items():
                state.tat[dim] = max(state.tat[dim] - moved, now)
            state.last_start = booking.prev_last_start
            rest[REQUESTS] += 1
            rest[TOKENS] = rest.get(TOKENS, 0.0) + booking.tokens
        for dim, units in rest.items():
            interval = state.intervals.get(dim)
            if interval is not None and units:
                tat = max(state.tat.get(dim, -math.inf), now) + units * interval
                state.tat[dim] = max(tat, now)  # a bucket is never less than empty

    async def pause(self, key: str, seconds: float) -> None:
        _check_seconds("pause seconds", seconds)
        state = self._keys.setdefault(key, _KeyState())
        state.paused_until = max(state.paused_until, trio.current_time() + seconds)


class RateLimitTimeout(TimeoutError):
    """A rate limit would hold the request past its deadline; nothing was booked.

    Raised at once, before any waiting (the Client turns it into
    :class:`trillm.errors.Timeout`).  ``keys`` are the keys the request was
    being booked on (``key``, the first of them, names the one key when
    there is only one).
    """

    def __init__(self, key: str | Sequence[str], deadline: float) -> None:
        keys = (key,) if isinstance(key, str) else tuple(key)
        names = " and ".join(repr(k) for k in keys)
        limits = "limit" if len(keys) == 1 else "limits"
        super().__init__(f"the rate {limits} of {names} would delay this request past its "
                         f"deadline")
        self.keys = keys
        self.key = ", ".join(keys)
        self.deadline = deadline


@attrs.define(eq=False, repr=False)
class Reservation:
    """A booked, reached slot: what :meth:`RateLimiter.acquire` returns.

    ``keys`` are the configured keys it was booked on (empty when no limit
    applied), ``tokens`` the estimate booked, ``start`` the trio time it was
    cleared to go and ``waited`` how long :meth:`~RateLimiter.acquire` took.
    """

    __repr__ = record_repr

    keys: tuple[str, ...]
    tokens: float
    start: float
    waited: float
    _store: RateStore = attrs.field(repr=False)
    settled: bool = attrs.field(default=False, init=False)

    async def settle(self, actual_tokens: float | None) -> None:
        """Correct the token estimate with the usage reported (``None``: keep the estimate).

        Only the first call counts; later ones only checkpoint.  The booking
        of the request itself is kept: the request was sent.
        """
        if actual_tokens is not None and not (actual_tokens >= 0 and math.isfinite(actual_tokens)):
            raise ValueError(f"actual_tokens must be a finite number >= 0, not {actual_tokens!r}")
        if not self.settled:
            self.settled = True
            if actual_tokens is not None and actual_tokens != self.tokens:
                for key in self.keys:
                    await self._store.adjust(key, {TOKENS: actual_tokens - self.tokens})
        await trio.lowlevel.checkpoint()


class RateLimiter:
    """Paces requests on the keys of *limits*; *store* defaults to :class:`InMemoryRateStore`.

    Keys name a model (``"openai/gpt-4o-mini"``: its own bucket) or a provider
    (``"openai"``: one bucket for all its models); a caller passes every key
    that may apply and the configured ones are booked, in the order given.
    """

    def __init__(self, limits: Mapping[str, RateLimit], store: RateStore | None = None) -> None:
        for key, limit in limits.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"rate limit keys must be non-empty strings, not {key!r}")
            if not isinstance(limit, RateLimit):
                raise TypeError(f"rate_limits[{key!r}] must be a RateLimit, not {limit!r}")
        self._limits = dict(limits)
        self._store: RateStore = InMemoryRateStore() if store is None else store
        for key, limit in self._limits.items():
            self._store.configure(key, limit)

    @property
    def limits(self) -> Mapping[str, RateLimit]:
        return MappingProxyType(self._limits)

    @property
    def store(self) -> RateStore:
        return self._store

    def configured(self, keys: Iterable[str]) -> tuple[str, ...]:
        """The keys among *keys* that have a limit, in order, without repeats."""
        if isinstance(keys, str):
            raise TypeError("keys must be a sequence of strings, not one string")
        return tuple(k for k in dict.fromkeys(keys) if k in self._limits)

    async def acquire(
        self, keys: Sequence[str], tokens: float, *, deadline: float = math.inf
    ) -> Reservation:
        """Book one request of *tokens* (an estimate) on every configured key; wait for it.

        Books on every key at once, at the slowest key's slot
        (:meth:`RateStore.reserve_many`), then sleeps until it, holding no
        lock.  If a key was paused meanwhile (a 429), the request books again
        on that key, behind the queue, and waits for that slot.

        *deadline* is absolute, on :func:`trio.current_time`: when a slot would
        come after it, :exc:`RateLimitTimeout` is raised at once and every
        booking is given back.  Cancellation while waiting propagates and
        gives the bookings back too: a whole queue cancelled leaves no trace;
        one cancelled inside a queue leaves its slot unused and its capacity
        at the end (the next request may go together with the last queued).
        Always a checkpoint.
        """
        tokens = float(tokens)
        if not (tokens >= 0 and math.isfinite(tokens)):
            raise ValueError(f"tokens must be a finite number >= 0, not {tokens!r}")
        active = self.configured(keys)
        await trio.lowlevel.checkpoint_if_cancelled()
        costs = {REQUESTS: 1.0, TOKENS: tokens}
        begin = trio.current_time()
        booked: list[str] = []
        try:
            start = await self._book(active, costs, deadline, booked)
            while True:
                slept = start > trio.current_time()
                await trio.sleep_until(start)  # the checkpoint, even when no limit applies
                booked.clear()  # their time has come: nothing left to give back
                if not (slept and active):
                    break
                paused = await self._paused(active, deadline)
                if not paused:
                    break
                start = await self._book(paused, costs, deadline, booked)
        except BaseException:
            with trio.move_on_after(_CLEANUP_TIMEOUT, shield=True):
                for key in booked:
                    await self._store.adjust(key, {REQUESTS: -1.0, TOKENS: -tokens})
            raise
        now = trio.current_time()
        return Reservation(active, tokens, now, now - begin, self._store)

    async def _book(
        self, keys: Sequence[str], costs: Mapping[str, float], deadline: float, booked: list[str]
    ) -> float:
        # One atomic booking on every key, at the slowest key's slot: a key booked
        # at its own earlier slot would count a start that never happened and let
        # the next request through too early.
        wait = await self._store.reserve_many(keys, costs, deadline - trio.current_time())
        if wait is None:
            raise RateLimitTimeout(keys, deadline)
        booked.extend(k for k in keys if k not in booked)
        # The wait counts from the answer: a shared store's "now" lies between the
        # question and the answer, so this is never early, and a slow round trip (a
        # connection being made) does not turn queued slots into a burst.
        return trio.current_time() + wait

    async def _paused(self, keys: Sequence[str], deadline: float) -> list[str]:
        # One probe for all the keys; only when one of them is paused, one per key.
        if await self._pause_left(keys, deadline) <= 0:
            return []
        return [k for k in keys if await self._pause_left((k,), deadline) > 0]

    async def _pause_left(self, keys: Sequence[str], deadline: float) -> float:
        left = await self._store.reserve_many(keys, {}, deadline - trio.current_time())
        if left is None:
            raise RateLimitTimeout(keys, deadline)
        return left

    async def paused_for(self, keys: Iterable[str]) -> float:
        """Seconds left on the longest pause among the configured *keys* (0: none).

        For a caller that waited elsewhere after its turn came (for a concurrency
        slot, say) and must not go out during a pause that began meanwhile.
        """
        active = self.configured(keys)
        if not active:
            return 0.0
        return await self._store.reserve_many(active, {}, math.inf) or 0.0

    async def pause(self, keys: Iterable[str], seconds: float) -> None:
        """Hold every configured key among *keys* for *seconds* (a 429's Retry-After).

        Requests already waiting on them wait until then and go out paced, not
        all at once; so do later ones.  Always a checkpoint.
        """
        _check_seconds("pause seconds", seconds)
        for key in self.configured(keys):
            await self._store.pause(key, seconds)
        await trio.lowlevel.checkpoint()


def _text_chars(content: object) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, Sequence):
        total = 0
        for part in content:
            if isinstance(part, str):
                total += len(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                total += len(part["text"])
        return total
    return 0


def estimate_tokens(messages: Iterable[Any], max_tokens: int | None = None) -> int:
    """A request's token cost before sending: prompt characters / 4 (rounded up) + *max_tokens*.

    Counts text only: string contents and the text parts of list contents
    (``{"type": "text", "text": ...}``); images, audio and tool calls count
    nothing.  Messages are dicts or objects with a ``content`` attribute.
    The Client corrects the estimate with :meth:`Reservation.settle`.
    """
    chars = 0
    for message in messages:
        if isinstance(message, Mapping):
            content = message.get("content")
        else:
            content = getattr(message, "content", None)
        chars += _text_chars(content)
    return -(-chars // 4) + (max_tokens or 0)
