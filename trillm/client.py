"""``Client``: the one orchestrator — routing, time limits, the retry loop, the limiter.

Everything with a clock or a socket happens here or below: providers only
translate (``providers/``), ``_transport`` only moves bytes, ``_stream`` only
iterates.  One call is::

    validate + route (before any traffic) -> for each attempt:
        take a concurrency slot (bounded by the deadline only)
        -> send under the attempt's cancel scope (timeout, and the deadline)
        -> give the slot back -> parse, or decide a retry (pure) and sleep outside `except`

Only scopes trillm opened turn into :class:`~trillm.errors.Timeout`; the
caller's cancellation passes through untouched, is never retried, and closes
the connection on its way out (the transport's responses close on every exit).
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

import attrs
import trio

from . import _batch, _endpoints, _mockio, errors
from ._options import CallLimits, check_messages, retries, seconds
from ._stream import AudioStream, BytesSource, HTTPChunkSource, ScriptedChunkSource, Stream
from ._transport import Transport
from .accumulate import chunks_from_response
from .providers import mock, openai
from .retry import RetryPolicy, is_retryable
from .routing import Route, parse_model, resolve_config
from .types import (
    ChatRequest,
    ModelResponse,
)

if TYPE_CHECKING:
    import httpx

    from ._wire import HTTPRequestSpec, ProviderConfig
    from .limits import RateLimit, RateLimiter, Reservation
    from .providers.base import Provider

__all__ = ["Client", "ClientStatistics"]

_log = logging.getLogger("trillm")
_CLOSE_TIMEOUT = 10.0  # seconds closing the pool may take, even while being cancelled
_T = TypeVar("_T")

# Provider modules by the `kind` of a routing preset.  Only openai's is imported with
# trillm; the others on first use, to keep `import trillm` cheap.
_PROVIDERS: dict[str, Provider] = {"openai": openai.PROVIDER}
_LAZY_PROVIDERS = frozenset({"anthropic", "azure", "gemini"})


def _provider_for(kind: str) -> Provider | None:
    provider = _PROVIDERS.get(kind)
    if provider is None and kind in _LAZY_PROVIDERS:
        module = importlib.import_module(f"{__package__}.providers.{kind}")
        provider = _PROVIDERS[kind] = module.PROVIDER
    return provider

_NOT_OPEN = (
    "this trillm.Client is not open: use it as `async with trillm.Client(...) as client:`, "
    "or call the module-level trillm.acompletion() / trillm.stream(), which manage a client "
    "for you"
)


@attrs.frozen
class ClientStatistics:
    """A snapshot of what a Client holds, to check that nothing leaked."""

    requests_in_flight: int
    open_streams: int
    idle_connections: int
    active_connections: int


@attrs.define(eq=False)
class _Call:
    """One prepared call: what to send (or what the mock will do) and within which limits."""

    req: ChatRequest
    limits: CallLimits
    deadline_at: float
    provider: Provider | None = None
    cfg: ProviderConfig | None = None
    spec: HTTPRequestSpec | None = None
    plan: mock.MockPlan | None = None
    rate_keys: tuple[str, ...] = ()  # the configured rate-limit keys this call counts against
    tokens: int = 0  # its token estimate, booked before each attempt
    parse: Callable[[bytes], Any] | None = None  # for non-chat endpoints: how to read a 2xx body
    audio: bool = False  # a streamed download of bytes (aspeech(stream=True)), not SSE


@attrs.frozen
class CallSetup:
    """What every call settles before it is routed (see :meth:`Client._setup`)."""

    limits: CallLimits
    deadline_at: float
    headers: Mapping[str, str] | None  # the Client's, the call's and extra headers, merged
    mock_name: str | None  # the model's name when the mock answers


class _Slot:
    """A borrower token for one attempt or one open stream (never the task itself)."""

    __slots__ = ()


class Client(_endpoints.EndpointMethods):
    """A trio-native client for chat models of every provider.

    ``async with trillm.Client(...) as client:`` opens the connection pool and
    closes it on exit; a Client holds no I/O resource before that, so one may
    be built at import time.  Every keyword is a default that each call may
    override; ``None`` inherits and ``math.inf`` means no limit:

    * ``timeout`` bounds one attempt (for a stream: until the response headers),
      ``deadline`` the whole call across retries (a stream until it closes),
      ``idle_timeout`` each gap between stream events;
    * ``max_retries`` and ``retry`` (a :class:`~trillm.retry.RetryPolicy`)
      govern retries; ``max_concurrency`` caps requests on the wire and open
      streams with a ``trio.CapacityLimiter``, never held during back-off;
    * ``transport`` takes any ``httpx.AsyncBaseTransport`` (e.g.
      ``httpx.MockTransport`` in tests; it stays the caller's to close);
      ``proxy`` and the environment's ``HTTPS_PROXY`` / ``NO_PROXY`` apply
      otherwise; ``headers`` are sent with every request.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        api_base: str | None = None,
        timeout: float | None = 600.0,
        deadline: float | None = None,
        idle_timeout: float | None = None,
        max_retries: int = 2,
        retry: RetryPolicy | None = None,
        max_concurrency: int | None = None,
        rate_limits: Mapping[str, RateLimit] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        proxy: str | None = None,
        headers: Mapping[str, str] | None = None,
        trust_env: bool = True,
    ) -> None:
        self._api_key = api_key
        self._api_base = api_base
        self._limits = CallLimits(
            timeout=seconds("timeout", timeout, math.inf),
            deadline=seconds("deadline", deadline, math.inf),
            idle_timeout=seconds("idle_timeout", idle_timeout, math.inf),
            max_retries=retries(max_retries, 2),
            retry=RetryPolicy() if retry is None else retry,
        )
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise ValueError(f"max_concurrency must be an int >= 1, not {max_concurrency!r}")
        self._max_concurrency = max_concurrency
        if rate_limits:
            from .limits import RateLimit  # only with rate limits: keeps `import trillm` cheap
        for key, limit in (rate_limits or {}).items():
            if not isinstance(limit, RateLimit):
                raise TypeError(f"rate_limits[{key!r}] must be a trillm.RateLimit, not {limit!r}")
        self._rate_limits = dict(rate_limits) if rate_limits else None
        self._rate: RateLimiter | None = None
        self._user_transport = transport
        self._proxy = proxy
        self._trust_env = trust_env
        self._headers = dict(headers) if headers else None
        self._transport: Transport | None = None
        self._limiter: trio.CapacityLimiter | None = None
        self._rng = random.Random()
        self._routes: dict[tuple[str, str | None], Route] = {}
        self._in_flight = 0
        self._open_streams = 0

    def __repr__(self) -> str:
        state = "open" if self._transport is not None else "not open"
        return f"<trillm.Client {state}>"

    # -------------------------------------------------------------- lifetime

    def _open(self) -> None:
        if self._transport is not None:
            raise RuntimeError("this trillm.Client is already open")
        self._transport = Transport(
            transport=self._user_transport, proxy=self._proxy, trust_env=self._trust_env
        )
        if self._max_concurrency is not None:
            self._limiter = trio.CapacityLimiter(self._max_concurrency)
        if self._rate_limits is not None:  # pacing state lives on this run's clock
            from .limits import RateLimiter

            self._rate = RateLimiter(self._rate_limits)

    async def __aenter__(self) -> Client:
        self._open()
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # no checkpoint: it must not replace an exception on its way out
        await self._close()  # noqa: ASYNC102 - shielded inside, with a time limit

    async def aclose(self) -> None:
        """Close every pooled connection; the Client may be entered again later."""
        await self._close()
        await trio.lowlevel.checkpoint()  # closed first, then a checkpoint, as trio's own aclose

    async def _close(self) -> None:
        transport, self._transport = self._transport, None
        self._limiter = None
        self._rate = None
        if transport is not None:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await transport.aclose()

    def statistics(self) -> ClientStatistics:
        """Requests in flight, open streams and pooled connections right now."""
        idle = active = 0
        if self._transport is not None:
            t = self._transport.statistics()
            idle, active = t.idle_connections, t.active_connections
        return ClientStatistics(self._in_flight, self._open_streams, idle, active)

    def _require_open(self) -> Transport:
        if self._transport is None:
            raise RuntimeError(_NOT_OPEN)
        return self._transport

    # -------------------------------------------------------------- public calls

    @overload
    async def acompletion(
        self, model: str, messages: Sequence[Mapping[str, Any]], *,
        stream: Literal[False] = False, **kwargs: Any,
    ) -> ModelResponse: ...

    @overload
    async def acompletion(
        self, model: str, messages: Sequence[Mapping[str, Any]], *,
        stream: Literal[True], **kwargs: Any,
    ) -> Stream: ...

    async def acompletion(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - LiteLLM's spelling; a cancel scope
        deadline: float | None = None,
        idle_timeout: float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        api_key: str | None = None,
        api_base: str | None = None,
        api_version: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        mock_response: str | BaseException | None = None,
        mock_latency: float | None = None,
        mock_chunk_delay: float | None = None,
        fallbacks: Sequence[str] | None = None,
        **params: Any,
    ) -> ModelResponse | Stream:
        """Ask *model* to continue *messages*; a :class:`ModelResponse`, or a
        :class:`Stream` with ``stream=True`` (returned once the headers arrived).

        Any other keyword (``temperature``, ``max_tokens``, ``tools``, ...) is
        passed to the provider; ``num_retries`` and ``request_timeout`` are
        accepted as LiteLLM's names for ``max_retries`` and ``timeout``.
        ``fallbacks=[...]`` names models to try, in order, when the previous one
        failed with a retryable or context-window error after its own retries;
        every model is validated before anything is sent, and ``deadline`` spans them all.
        """
        models = [model, *fallbacks] if fallbacks else [model]
        try:
            calls = [
                self._prepare(
                    m, messages, stream, dict(params),
                    timeout=timeout, deadline=deadline, idle_timeout=idle_timeout,
                    max_retries=max_retries, retry=retry, api_key=api_key, api_base=api_base,
                    api_version=api_version, headers=headers, extra_headers=extra_headers,
                    extra_body=extra_body, mock_response=mock_response,
                    mock_latency=mock_latency, mock_chunk_delay=mock_chunk_delay,
                )
                for m in models
            ]
        except (errors.APIError, RuntimeError) as exc:
            failure: BaseException = exc
        else:
            # A checkpoint before anything is sent (an in-memory transport may never block);
            # never after a stream opened, where a cancellation would orphan it.
            await trio.lowlevel.checkpoint()
            once = self._open_stream_once if stream else self._complete_once
            if len(calls) == 1:
                return await self._with_retries(calls[0], once)
            return await self._with_fallbacks(calls, once)
        await trio.lowlevel.checkpoint()  # a checkpoint even when refusing at once
        raise failure

    def stream(
        self, model: str, messages: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> StreamOpener:
        """``async with client.stream(model=..., messages=...) as stream:`` — the
        stream is open inside the block and closed when it is left, however it is left.
        Takes the keywords of :meth:`acompletion`."""
        return StreamOpener(self, model, messages, kwargs)

    async def abatch_completion(
        self,
        requests: Sequence[Mapping[str, Any]],
        *,
        limit: int | None = None,
        return_exceptions: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Any]:
        """Answer every request (a dict of :meth:`acompletion` keywords), in order.

        At most *limit* at a time (the batch's own limit; ``max_concurrency``
        still applies).  The first failure cancels the rest and every failure is
        raised in one ``ExceptionGroup``; with ``return_exceptions=True`` a failed
        request's place holds its exception instead.  ``progress(done, total)``
        is called as each request finishes.
        """
        return await _batch.abatch_completion(
            self, requests, limit=limit, return_exceptions=return_exceptions, progress=progress
        )

    async def abatch_completion_models(
        self, *, models: Sequence[str], messages: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> ModelResponse:
        """Ask every model at once; the first answer wins and the others are cancelled."""
        return await _batch.abatch_completion_models(
            self, models=models, messages=messages, **kwargs
        )

    async def abatch_completion_models_all_responses(
        self, *, models: Sequence[str], messages: Sequence[Mapping[str, Any]],
        return_exceptions: bool = False, **kwargs: Any,
    ) -> list[Any]:
        """Every model's answer to the same messages, in the order of *models*."""
        return await _batch.abatch_completion_models_all_responses(
            self, models=models, messages=messages, return_exceptions=return_exceptions,
            **kwargs,
        )

    # -------------------------------------------------------------- preparation

    def _prepare(
        self,
        model: Any,
        messages: Any,
        stream: bool,
        params: dict[str, Any],
        *,
        timeout: float | None,
        deadline: float | None,
        idle_timeout: float | None,
        max_retries: int | None,
        retry: RetryPolicy | None,
        api_key: str | None,
        api_base: str | None,
        api_version: str | None,
        headers: Mapping[str, str] | None,
        extra_headers: Mapping[str, str] | None,
        extra_body: Mapping[str, Any] | None,
        mock_response: str | BaseException | None,
        mock_latency: float | None,
        mock_chunk_delay: float | None,
    ) -> _Call:
        setup = self._setup(model, params, timeout=timeout, deadline=deadline,
                            idle_timeout=idle_timeout, max_retries=max_retries, retry=retry,
                            headers=headers, extra_headers=extra_headers,
                            mock_response=mock_response)
        msgs = check_messages(messages)
        drop_params = bool(params.pop("drop_params", False))
        limits, deadline_at, extra_headers = setup.limits, setup.deadline_at, setup.headers
        if setup.mock_name is not None:
            req = ChatRequest("mock", setup.mock_name, msgs, stream, params, extra_body,
                              extra_headers, drop_params)
            plan = mock.plan(req, mock_response=mock_response, latency=mock_latency,
                             chunk_delay=mock_chunk_delay)
            return self._paced(_Call(req, limits, deadline_at, plan=plan))
        base_url = self._api_base if api_base is None else api_base
        route, cfg = self._resolve(model, api_key, base_url, api_version)
        provider = _provider_for(route.preset.kind)
        if provider is None:
            raise errors.BadRequestError(
                f"the {route.provider!r} provider is not available in this version of trillm; "
                "use an OpenAI-compatible endpoint with api_base=, or the mock/ provider",
                provider=route.provider, model=route.model,
            )
        req = ChatRequest(route.provider, route.model, msgs, stream, params, extra_body,
                          extra_headers, drop_params)
        spec = provider.build_chat(req, cfg)
        return self._paced(_Call(req, limits, deadline_at, provider=provider, cfg=cfg, spec=spec))

    def _setup(
        self, model: Any, params: dict[str, Any], *, timeout: float | None,
        deadline: float | None, idle_timeout: float | None, max_retries: int | None,
        retry: RetryPolicy | None, headers: Mapping[str, str] | None,
        extra_headers: Mapping[str, str] | None, mock_response: Any,
    ) -> CallSetup:
        """What every call (chat or not) checks and settles before it is routed."""
        self._require_open()
        limits = self._call_limits(params, timeout, deadline, idle_timeout, max_retries, retry)
        if not isinstance(model, str) or not model:
            raise errors.BadRequestError(
                f"model must be a non-empty string like 'openai/gpt-4o-mini', not {model!r}"
            )
        for k in [k for k, v in params.items() if v is None]:
            del params[k]
        merged = extra_headers
        if self._headers or headers:  # the Client's, then this call's, then extra_headers
            merged = {**(self._headers or {}), **(headers or {}), **(extra_headers or {})}
        mock_name = None
        if mock_response is not None or model.startswith("mock/"):
            mock_name = model.partition("/")[2] if model.startswith("mock/") else model
        return CallSetup(limits, trio.current_time() + limits.deadline, merged or None,
                         mock_name)

    def _call_limits(
        self, params: dict[str, Any], timeout: float | None, deadline: float | None,
        idle_timeout: float | None, max_retries: int | None, retry: RetryPolicy | None,
    ) -> CallLimits:
        """This call's limits: the Client's, overridden by the call's (LiteLLM aliases too)."""
        if "num_retries" in params:
            alias = params.pop("num_retries")
            max_retries = alias if max_retries is None else max_retries
        if "request_timeout" in params:
            alias = params.pop("request_timeout")
            timeout = alias if timeout is None else timeout
        base = self._limits
        if timeout is None and deadline is None and idle_timeout is None \
                and max_retries is None and retry is None:
            return base
        return CallLimits(
            timeout=seconds("timeout", timeout, base.timeout),
            deadline=seconds("deadline", deadline, base.deadline),
            idle_timeout=seconds("idle_timeout", idle_timeout, base.idle_timeout),
            max_retries=retries(max_retries, base.max_retries),
            retry=base.retry if retry is None else retry,
        )

    def _paced(self, call: _Call) -> _Call:
        """Note which configured rate limits *call* counts against, and its token estimate."""
        if self._rate is not None:
            req = call.req
            call.rate_keys = self._rate.configured((f"{req.provider}/{req.model}", req.provider))
            if call.rate_keys:
                max_tokens = req.params.get("max_tokens") or req.params.get(
                    "max_completion_tokens")
                from .limits import estimate_tokens

                call.tokens = estimate_tokens(req.messages, max_tokens)
        return call

    def _resolve(
        self, model: str, api_key: str | None, api_base: str | None, api_version: str | None
    ) -> tuple[Route, ProviderConfig]:
        # The parsed name is cached; keys and bases are read again on every call (about
        # 2 us), so a changed OPENAI_API_KEY or OPENAI_BASE_URL is seen at once.
        route = self._routes.get((model, api_base))
        if route is None:
            if len(self._routes) >= 256:
                self._routes.clear()
            route = self._routes[(model, api_base)] = parse_model(model, api_base=api_base)
        cfg = resolve_config(route, api_key=api_key or self._api_key, api_base=api_base,
                             environ=os.environ, api_version=api_version)
        return route, cfg

    # -------------------------------------------------------------- the retry loop

    async def _with_retries(
        self, call: _Call, once: Callable[[_Call, Reservation | None], Awaitable[_T]]
    ) -> _T:
        attempt = 0
        while True:
            attempt += 1
            reservation = await self._pace(call)  # outside `try`: a refusal is final
            try:
                result = await once(call, reservation)
            except errors.APIError as exc:  # Exception only: Cancelled / KeyboardInterrupt pass
                delay = self._retry_delay(call, attempt, exc)
                if _log.isEnabledFor(logging.DEBUG):
                    _log.debug("%s/%s attempt %d failed (status %s); %s", call.req.provider,
                               call.req.model, attempt, exc.status_code,
                               "giving up" if delay is None else f"retrying in {delay:.3f} s")
                pause = None
                if call.rate_keys and isinstance(exc, errors.RateLimitError):
                    # hold back every queued request for this model, retried or not
                    pause = exc.retry_after if exc.retry_after is not None else (
                        call.limits.retry.backoff(attempt, self._rng) if delay is None else delay)
                if delay is None and pause is None:
                    raise
                failure = exc
            else:
                if _log.isEnabledFor(logging.DEBUG):
                    _log.debug("%s/%s attempt %d succeeded", call.req.provider, call.req.model,
                               attempt)
                return result
            if pause is not None and self._rate is not None:
                await self._rate.pause(call.rate_keys, pause)
            if delay is None:
                raise failure
            await trio.sleep(delay)  # outside `except`: the slot was given back already

    async def _with_fallbacks(
        self, calls: list[_Call], once: Callable[[_Call, Reservation | None], Awaitable[_T]]
    ) -> _T:
        failed: list[tuple[_Call, errors.APIError]] = []
        for call in calls:
            try:
                return await self._with_retries(call, once)
            except errors.APIError as exc:
                worth_another = is_retryable(exc) or isinstance(
                    exc, errors.ContextWindowExceededError
                )
                if call is calls[-1] or not worth_another:
                    for earlier, error in failed:
                        exc.add_note(
                            f"before it, {earlier.req.provider}/{earlier.req.model} failed: "
                            f"{type(error).__name__}: {error}"
                        )
                    raise
                failed.append((call, exc))
                _log.debug("%s/%s failed; falling back to the next model", call.req.provider,
                           call.req.model)
        raise AssertionError("unreachable: the last call returns or raises")

    def _retry_delay(self, call: _Call, attempt: int, exc: errors.APIError) -> float | None:
        if attempt > call.limits.max_retries:
            return None
        delay = call.limits.retry.delay(attempt, exc, self._rng)
        if delay is None or trio.current_time() + delay >= call.deadline_at:
            return None
        return delay

    def _timeout(self, call: _Call, timed_out_at: float) -> errors.Timeout:
        if timed_out_at >= call.deadline_at:
            msg = f"the call's deadline of {call.limits.deadline:g} s passed"
        else:
            msg = f"no response within timeout={call.limits.timeout:g} s"
        return errors.Timeout(msg, provider=call.req.provider, model=call.req.model)

    async def _take_slot(self, call: _Call) -> _Slot:
        """A concurrency slot, taken only when the call's rate limits are not paused.

        A request may wait for a slot after its paced turn came; if a 429 paused its
        model meanwhile, it gives the slot back and waits out the pause (holding none).
        """
        slot = _Slot()
        while True:
            if self._limiter is not None:
                await self._acquire(call, slot)
            if self._rate is None or not call.rate_keys:
                return slot
            if await self._rate.paused_for(call.rate_keys) <= 0:
                return slot
            if self._limiter is not None:
                self._limiter.release_on_behalf_of(slot)
            await self._pace(call)  # books again, behind the pause

    async def _acquire(self, call: _Call, slot: _Slot) -> None:
        """Wait for a concurrency slot, bounded by the call's deadline only."""
        assert self._limiter is not None
        with trio.move_on_at(call.deadline_at) as scope:
            await self._limiter.acquire_on_behalf_of(slot)
        if scope.cancelled_caught:
            raise self._timeout(call, call.deadline_at)

    async def _pace(self, call: _Call) -> Reservation | None:
        """Wait for this attempt's turn under the rate limits (no slot is held meanwhile)."""
        if not call.rate_keys or self._rate is None:
            return None
        from .limits import RateLimitTimeout

        try:
            return await self._rate.acquire(call.rate_keys, call.tokens,
                                            deadline=call.deadline_at)
        except RateLimitTimeout as exc:
            raise errors.Timeout(
                f"the call's deadline of {call.limits.deadline:g} s would pass before its turn "
                f"under the rate limit for {exc.key!r}",
                provider=call.req.provider, model=call.req.model,
            ) from None

    async def _send(self, call: _Call) -> Any:
        """A prepared non-chat call through the retry loop (a stream for streamed audio)."""
        once = self._open_stream_once if call.audio else self._complete_once
        return await self._with_retries(call, once)

    async def _complete_once(self, call: _Call, reservation: Reservation | None) -> Any:
        """One attempt of a call whose answer is one body (chat, or ``call.parse``'s kind)."""
        transport = self._require_open()
        limiter = self._limiter
        slot = await self._take_slot(call)
        self._in_flight += 1
        try:
            until = min(trio.current_time() + call.limits.timeout, call.deadline_at)
            with trio.move_on_at(until) as scope:
                if call.plan is not None:
                    answer = await _mockio.answer(call.plan)
                else:
                    assert call.spec is not None
                    raw = await transport.send(call.spec)
        finally:
            self._in_flight -= 1
            if limiter is not None:
                limiter.release_on_behalf_of(slot)
        if scope.cancelled_caught:
            raise self._timeout(call, until)
        if call.plan is not None:
            response = answer
        else:
            provider, cfg = call.provider, call.cfg
            assert provider is not None and cfg is not None
            if raw.status >= 300:
                raise provider.parse_error(raw.status, raw.headers, raw.content, call.req, cfg)
            if call.parse is not None:
                response = call.parse(raw.content)
            else:
                response = provider.parse_chat(raw.content, call.req, cfg,
                                               errors.public_headers(raw.headers))
        if reservation is not None and response.usage is not None:
            await reservation.settle(response.usage.total_tokens)  # correct the estimate
        return response

    async def _open_stream_once(self, call: _Call, reservation: Reservation | None) -> Any:
        # (a stream's token estimate stands: its usage arrives only at the end)
        transport = self._require_open()
        limiter = self._limiter
        slot = await self._take_slot(call)
        self._in_flight += 1
        opened: HTTPChunkSource | ScriptedChunkSource[Any] | BytesSource | None = None
        try:
            until = min(trio.current_time() + call.limits.timeout, call.deadline_at)
            with trio.move_on_at(until) as scope:
                if call.plan is not None:
                    opened = await _mockio.open_stream(call.plan)
                else:
                    assert call.spec is not None and call.provider is not None
                    response = await transport.open_stream(call.spec)
                    try:
                        if response.status >= 300:
                            body = await response.aread()
                            assert call.cfg is not None
                            raise call.provider.parse_error(
                                response.status, response.headers, body, call.req, call.cfg
                            )
                        headers = errors.public_headers(response.headers)
                        if call.audio:
                            opened = BytesSource(response, provider=call.req.provider,
                                                 model=call.req.model, headers=headers)
                        elif headers.get("content-type", "").startswith("application/json"):
                            # A server that ignores stream=True: its whole answer, as chunks.
                            whole = call.provider.parse_chat(
                                await response.aread(), call.req, call.cfg
                            )
                            await response.aclose()
                            opened = ScriptedChunkSource(chunks_from_response(whole), 0.0,
                                                         headers=headers)
                        else:
                            opened = HTTPChunkSource(
                                response, call.provider.stream_parser(call.req, call.cfg),
                                provider=call.req.provider, model=call.req.model,
                                headers=headers,
                            )
                    finally:
                        if opened is None:
                            await response.aclose()
        finally:
            self._in_flight -= 1
            if opened is None and limiter is not None:
                limiter.release_on_behalf_of(slot)
        if opened is None:
            assert scope.cancelled_caught
            raise self._timeout(call, until)
        self._open_streams += 1

        def release() -> None:
            self._open_streams -= 1
            if limiter is not None:
                limiter.release_on_behalf_of(slot)

        kind: type[AudioStream] | type[Stream] = AudioStream if call.audio else Stream
        return kind(
            cast("Any", opened), provider=call.req.provider, model=call.req.model,
            idle_timeout=call.limits.idle_timeout, deadline_at=call.deadline_at,
            on_close=release,
        )


class StreamOpener:
    """What :meth:`Client.stream` returns: ``async with`` it to get an open :class:`Stream`."""

    __slots__ = ("_client", "_kwargs", "_messages", "_model", "_stream")

    def __init__(
        self, client: Client | Callable[[], Client], model: str,
        messages: Sequence[Mapping[str, Any]], kwargs: dict[str, Any],
    ) -> None:
        self._client = client  # or, for the module-level trillm.stream(), how to get one
        self._model = model
        self._messages = messages
        self._kwargs = kwargs
        self._stream: Stream | None = None

    async def __aenter__(self) -> Stream:
        if self._stream is not None:
            raise RuntimeError("this stream() block was already entered")
        client = self._client if isinstance(self._client, Client) else self._client()
        self._stream = await client.acompletion(
            self._model, self._messages, stream=True, **self._kwargs
        )
        return self._stream

    async def __aexit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            await self._stream._close_now()  # noqa: ASYNC102 - shielded inside, time-limited
