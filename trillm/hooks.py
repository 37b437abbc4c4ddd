"""Call hooks: what the pipeline tells observers about every logical call.

A hook is any object with some of these **synchronous** methods (each optional)::

    on_call_start(info: CallInfo) -> state      # anything; handed back below
    on_attempt_end(state, attempt: AttemptInfo)
    on_first_chunk(state)                       # streams only
    on_call_end(state, result: CallResult)

One logical call (its retries, fallbacks and embedding sub-batches inside) is
one ``on_call_start`` and one ``on_call_end``, also when it fails or is
cancelled (``result.error`` then holds the exception, ``trio.Cancelled``
included).  A stream's call ends when the stream closes, with the usage its
chunks carried.  The methods run in the calling task (so ``contextvars`` such as
the current trace flow into them) and must not block; one that raises is logged
at WARNING on the ``trillm`` logger and changes nothing.  A hook with
``capture_content = True`` gets the call's content (messages, input, prompt) in
``CallInfo.content``; others get None there.

Calls refused before any traffic (bad arguments, an unknown provider, a missing
API key) fire no hook: no request was made.

This module is pure: the pipeline passes its clock in.  Nothing here runs, and
no record is built, when a Client has no hooks and no ``prices=``.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import attrs

from ._records import record_repr
from .types import positional_builder
from .usage import Prices, TokenCounts, UsageTotals, cost, token_counts, usage_of

__all__ = ["AttemptInfo", "CallInfo", "CallResult", "Hook", "Observation", "Observer"]

_log = logging.getLogger("trillm")
#: A call's id: 64 random bits from the ``random`` module's generator (reseeded in a forked
#: child, so two workers of one server do not repeat each other's ids); no system call.
_random_bits = random.getrandbits

#: The request parameters that are content, kept out of ``CallInfo.params``.
_CONTENT_PARAMS = frozenset({"instructions", "input", "messages", "prompt", "system"})


@attrs.frozen(repr=False)
class CallInfo:
    """What a call asks for, given to ``on_call_start``.

    ``operation`` is ``"chat"``, ``"embeddings"``, ``"images"``, ``"transcription"``,
    ``"speech"``, ``"responses"``, ``"models"``, ``"count_tokens"`` (and ``"batch"``);
    ``provider`` and ``model`` are the first model's (``fallbacks`` the others, in
    order); ``params`` the request's parameters (``temperature``, ``max_tokens``, ...;
    never content); ``content`` the messages / input / prompt, only for a hook that
    asks (``capture_content = True``).
    """

    __repr__ = record_repr

    call_id: str
    operation: str
    provider: str
    model: str
    stream: bool
    params: Mapping[str, Any]
    server_address: str | None = None
    server_port: int | None = None
    fallbacks: tuple[str, ...] = ()
    content: Any = None


@attrs.frozen(repr=False)
class AttemptInfo:
    """One attempt, given to ``on_attempt_end``.

    ``number`` counts from 1 for each model (and each embedding sub-batch);
    ``status_code`` is the HTTP status when one came; ``error`` the exception
    (``error_type`` its class name) or None on success; ``will_retry`` and
    ``retry_delay`` (seconds) say what happens next; ``rate_limit_wait`` and
    ``slot_wait`` are the seconds spent waiting for the rate-limit turn and for a
    concurrency slot before it went out; ``duration`` is the attempt's own time.
    """

    __repr__ = record_repr

    number: int
    provider: str
    model: str
    status_code: int | None
    error: BaseException | None
    error_type: str | None
    will_retry: bool
    retry_delay: float | None
    rate_limit_wait: float
    slot_wait: float
    duration: float


@attrs.frozen(repr=False)
class CallResult:
    """How a call ended, given to ``on_call_end``.

    ``response`` is the answer (for a stream, the whole answer its chunks made,
    when there is one); ``provider`` / ``model`` the model that answered or
    failed last (a fallback's, when one took over); ``response_id``,
    ``response_model`` (the model name the server reported) and
    ``finish_reasons`` come from the answer; ``usage`` is normalized to
    :class:`~trillm.types.Usage`; ``attempts`` counts every attempt of every
    model; ``duration`` and ``time_to_first_chunk`` are seconds from the start;
    ``error`` is the exception the call ended with (``trio.Cancelled`` when
    cancelled), ``error_type`` its class name; ``cost`` is set when the Client
    has a price for the model.
    """

    __repr__ = record_repr

    provider: str
    model: str
    response: Any
    response_id: str | None
    response_model: str | None
    finish_reasons: tuple[str, ...]
    usage: Any
    attempts: int
    duration: float
    error: BaseException | None = None
    error_type: str | None = None
    time_to_first_chunk: float | None = None
    cost: float | None = None


class Hook(Protocol):
    """The hook protocol, for type checkers; every method is optional in practice."""

    def on_call_start(self, info: CallInfo) -> Any:
        """A call starts; the return value is handed to the other methods."""

    def on_attempt_end(self, state: Any, attempt: AttemptInfo) -> None:
        """One attempt ended (answered, failed, or cancelled)."""

    def on_first_chunk(self, state: Any) -> None:
        """A stream's first chunk reached the caller."""

    def on_call_end(self, state: Any, result: CallResult) -> None:
        """The call ended (for a stream: the stream closed)."""


def _failed(hook: Any, what: str) -> None:
    _log.warning("trillm hook %r failed in %s; the call goes on", hook, what, exc_info=True)


def error_type(exc: BaseException) -> str:
    """The name an error is reported by (its class name: ``RateLimitError``, ``Cancelled``)."""
    return type(exc).__name__


_Clock = Callable[[], float]


_call_info = positional_builder(CallInfo)
_attempt_info = positional_builder(AttemptInfo)
_call_result = positional_builder(CallResult)


class Observer:
    """A Client's hooks and prices, and the totals they feed; ``None`` on a Client that
    has neither, so the pipeline's one check finds nothing to do."""

    __slots__ = (
        "_attempts",
        "_capture",
        "_ends",
        "_firsts",
        "_starts",
        "_tell_attempts",
        "hooks",
        "prices",
        "totals",
    )

    def __init__(self, hooks: Sequence[Any] = (), prices: Mapping[str, Prices] | None = None,
                 totals: UsageTotals | None = None) -> None:
        for hook in hooks:
            if not any(callable(getattr(hook, m, None)) for m in
                       ("on_call_start", "on_attempt_end", "on_first_chunk", "on_call_end")):
                raise TypeError(f"{hook!r} is not a trillm hook: it has none of on_call_start, "
                                "on_attempt_end, on_first_chunk, on_call_end")
        for key, price in (prices or {}).items():
            if not isinstance(price, Prices):
                raise TypeError(f"prices[{key!r}] must be a trillm.Prices, not {price!r}")
        self.hooks = tuple(hooks)
        self.prices = dict(prices) if prices is not None else None
        self.totals = totals
        self._starts = [getattr(h, "on_call_start", None) for h in self.hooks]
        self._attempts = [getattr(h, "on_attempt_end", None) for h in self.hooks]
        self._firsts = [getattr(h, "on_first_chunk", None) for h in self.hooks]
        self._ends = [getattr(h, "on_call_end", None) for h in self.hooks]
        # no AttemptInfo is built when no hook has an on_attempt_end
        self._tell_attempts = any(m is not None for m in self._attempts)
        self._capture = any(getattr(h, "capture_content", False) is True for h in self.hooks)

    def with_hooks(self, hooks: Sequence[Any]) -> Observer:
        """This observer with a call's own *hooks* after the Client's (same totals)."""
        return Observer((*self.hooks, *hooks), self.prices, self.totals)

    def start(self, operation: str, calls: Sequence[Any], clock: _Clock, *,
              batched: bool = False) -> Observation:
        """A logical call over *calls* (its model then its fallbacks, or its *batched*
        parts) starts now: ``on_call_start`` of every hook."""
        return Observation(self, operation, calls, clock, batched=batched)


def _content(req: Any) -> Any:
    for name in ("messages", "input", "inputs", "prompt"):
        value = getattr(req, name, None)
        if value is not None:
            return value
    return None


@functools.lru_cache(maxsize=256)
def _server(url: str) -> tuple[str | None, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None, None
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme)
    return parts.hostname, port


def _summary(response: Any) -> tuple[str | None, str | None, tuple[str, ...], Any]:
    """``(id, model, finish reasons, usage)`` of any answer (what it has of them)."""
    if response is None:
        return None, None, (), None
    rid = getattr(response, "id", None)
    model = getattr(response, "model", None)
    reasons: tuple[str, ...] = ()
    choices = getattr(response, "choices", None)
    if choices:
        reasons = tuple([c.finish_reason for c in choices if c.finish_reason])
    else:
        status = getattr(response, "status", None)  # a Responses API answer
        if isinstance(status, str):
            details = getattr(response, "incomplete_details", None) or {}
            reasons = (details.get("reason") or status,)
    return (rid if isinstance(rid, str) else None, model if isinstance(model, str) else None,
            reasons, usage_of(getattr(response, "usage", None)))


class Observation:
    """One logical call under observation: the hooks' states, the attempts, the clock."""

    __slots__ = ("_attempts", "_ended", "_first_at", "_model", "_observer", "_provider",
                 "_started", "_states", "now")

    def __init__(self, observer: Observer, operation: str, calls: Sequence[Any],
                 clock: _Clock, *, batched: bool = False) -> None:
        self._observer = observer
        self.now = clock  # the pipeline times the attempts' waits with it too
        self._started = clock()
        self._attempts = 0
        self._first_at: float | None = None
        self._ended = False
        first = calls[0]
        # The model being tried (a fallback's, when one takes over), by name: holding the
        # call itself would make a reference cycle (the call holds its observation), which
        # only the cyclic garbage collector frees.
        self._provider: str = first.req.provider
        self._model: str = first.req.model
        self._states: list[Any] = [None] * len(observer.hooks)
        if not observer.hooks:
            return
        req = first.req
        address, port = _server(first.spec.url)
        params = req.params
        if not _CONTENT_PARAMS.isdisjoint(params):
            params = {k: v for k, v in params.items() if k not in _CONTENT_PARAMS}
        fallbacks: tuple[str, ...] = ()
        if len(calls) > 1 and not batched:
            fallbacks = tuple(f"{c.req.provider}/{c.req.model}" for c in calls[1:])
        info = _call_info(
            f"{_random_bits(64):016x}", operation, req.provider, req.model,
            first.stream is not None, params, address, port, fallbacks,
            _content(req) if observer._capture else None,
        )
        for i, (hook, start) in enumerate(zip(observer.hooks, observer._starts, strict=True)):
            if start is not None:
                try:
                    self._states[i] = start(info)
                except Exception:  # noqa: BLE001 - a hook never breaks the call
                    _failed(hook, "on_call_start")

    def attempt(self, call: Any, number: int, status: int | None, error: BaseException | None,
                delay: float | None, rate_limit_wait: float, slot_wait: float,
                started: float) -> None:
        """One attempt of *call* ended: ``on_attempt_end`` of every hook."""
        self._attempts += 1
        req = call.req
        self._provider, self._model = req.provider, req.model
        observer = self._observer
        if not observer._tell_attempts:
            return
        info = _attempt_info(
            number, req.provider, req.model, status, error,
            None if error is None else error_type(error), delay is not None, delay,
            rate_limit_wait, slot_wait, self.now() - started,
        )
        for hook, state, method in zip(observer.hooks, self._states, observer._attempts,
                                       strict=True):
            if method is not None:
                try:
                    method(state, info)
                except Exception:  # noqa: BLE001 - a hook never breaks the call
                    _failed(hook, "on_attempt_end")

    def first_chunk(self) -> None:
        """A stream's first chunk reached the caller."""
        if self._first_at is not None:
            return
        self._first_at = self.now()
        observer = self._observer
        for hook, state, method in zip(observer.hooks, self._states, observer._firsts,
                                       strict=True):
            if method is not None:
                try:
                    method(state)
                except Exception:  # noqa: BLE001 - a hook never breaks the call
                    _failed(hook, "on_first_chunk")

    def end(self, response: Any, error: BaseException | None) -> Any:
        """The call ended with *response* or *error*: price it, count it, and tell every
        hook.  Returns the response, with its ``cost`` set when there is a price."""
        if self._ended:
            return response
        self._ended = True
        observer = self._observer
        provider, model = self._provider, self._model
        key = f"{provider}/{model}"
        rid, rmodel, reasons, usage = _summary(response)
        counts: TokenCounts | None = None
        if usage is not None and observer.totals is not None:
            counts = token_counts(usage)
        price = None
        if observer.prices is not None and counts is not None:
            prices = observer.prices.get(key)
            if prices is not None:
                price = cost(counts, prices)
                if response is not None and hasattr(response, "cost"):
                    response = attrs.evolve(response, cost=price)
        if observer.totals is not None:
            observer.totals.add(key, counts, price, error is not None)
        if not observer.hooks:
            return response
        result = _call_result(
            provider, model, response, rid, rmodel, reasons, usage, self._attempts,
            self.now() - self._started, error,
            None if error is None else error_type(error),
            None if self._first_at is None else self._first_at - self._started, price,
        )
        for hook, state, method in zip(observer.hooks, self._states, observer._ends,
                                       strict=True):
            if method is not None:
                try:
                    method(state, result)
                except Exception:  # noqa: BLE001 - a hook never breaks the call
                    _failed(hook, "on_call_end")
        return response

    def stream_end(self, error: BaseException | None,
                   summary: Callable[[], Any] | None) -> float | None:
        """A stream closed (after *error*, or None): the call ends with what its chunks
        made (*summary* builds it; an empty stream has none).  Returns what that answer
        cost (None without a price), for the stream's ``final_response()``."""
        response = None
        if summary is not None:
            try:
                response = summary()
            except Exception:  # noqa: BLE001 - nothing arrived: no answer to report
                response = None
        priced = self.end(response, error)
        return getattr(priced, "cost", None) if priced is not None else None
