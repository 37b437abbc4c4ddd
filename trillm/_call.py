"""The one call pipeline: every operation of every provider, the mock included, goes here.

One call is::

    prepare (before any traffic): route the model -> check the provider offers the
        operation -> the provider builds the request -> note the rate-limit keys
    then, for each attempt:
        wait for the rate-limit turn (no slot held) -> take a concurrency slot
        -> send under the attempt's cancel scope (timeout, and the deadline)
        -> give the slot back (a stream keeps it until it closes)
        -> parse, or decide a retry (pure) and sleep outside `except`
    and, when a model fails for good with a retryable or context-window error,
    the next of its fallbacks.

Only scopes opened here turn into :class:`~trillm.errors.Timeout`; the caller's
cancellation passes through untouched, is never retried, and closes the
connection on its way out.  Which operation a call is only changes which
provider step builds and parses it (:class:`Operation`, a table); the mock is
not a branch here: its requests carry an in-process answer (``spec.local``)
that the transport serves in place of a server.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs
import trio

from . import errors
from ._cancel import only_cancelled, raise_bare
from ._records import record_repr
from .providers import openai
from .retry import is_retryable
from .routing import Route, mock_route, parse_model, resolve_config
from .types import ChatRequest, ModelResponse, Usage

if TYPE_CHECKING:
    from ._files import SpeechResponse
    from ._mock_wire import MockOptions
    from ._options import CallOptions
    from ._stream import BytesSource, HTTPChunkSource, ScriptedChunkSource
    from ._transport import Transport
    from ._wire import HTTPRequestSpec, ProviderConfig, RawResponse
    from .hooks import Observation, Observer
    from .limits import RateLimiter, Reservation
    from .providers.base import Provider
    from .response_types import Response, ResponsesRequest
    from .types import EmbeddingResponse

__all__ = ["BATCHES", "CHAT", "EMBEDDINGS", "IMAGES", "MODELS", "RESPONSES", "SPEECH",
           "TRANSCRIPTION", "Call", "Operation", "Pipeline", "provider_for"]

_log = logging.getLogger("trillm")

NOT_OPEN = (
    "this trillm.Client is not open: use it as `async with trillm.Client(...) as client:`, "
    "or call the module-level trillm.acompletion() / trillm.stream(), which manage a client "
    "for you"
)

# Provider modules by the `kind` of a routing preset.  Only openai's is imported with
# trillm; the others on first use, to keep `import trillm` cheap.
_PROVIDERS: dict[str, Provider] = {"openai": openai.PROVIDER}
_LAZY_PROVIDERS = frozenset({"anthropic", "azure", "gemini"})


def provider_for(kind: str) -> Provider | None:
    """The provider module's instance for a preset's ``kind`` (None: no such provider)."""
    provider = _PROVIDERS.get(kind)
    if provider is None and kind in _LAZY_PROVIDERS:
        module = importlib.import_module(f"{__package__}.providers.{kind}")
        provider = _PROVIDERS[kind] = module.PROVIDER
    return provider


# ---------------------------------------------------------------- operations


@attrs.frozen(eq=False, repr=False)
class Operation:
    """One kind of call: the provider steps that build and parse it.

    ``name`` is its key in a provider's ``operations`` table; ``what`` names it
    in errors; ``combine`` joins the answers of a call split into batches; ``finish``
    is the provider-neutral last step on a whole answer (structured output);
    ``elsewhere`` says what to use instead with a provider that does not offer it.
    """

    __repr__ = record_repr

    name: str
    what: str
    build: Callable[[Any, Any, ProviderConfig], HTTPRequestSpec]
    parse: Callable[[Any, bytes, Any, ProviderConfig, Mapping[str, str]], Any]
    combine: Callable[[list[Any]], Any] | None = None
    finish: Callable[[Any, Any], Any] | None = None  # (answer, request) -> answer, once parsed
    #: How the mock answers this operation, when not as ``providers/mock.answer`` does.
    mock_answer: Callable[[Any, Any, HTTPRequestSpec], Any] | None = None
    elsewhere: str = ("use an OpenAI-compatible endpoint with api_base=, "
                      "or the mock/ provider")


def _join_embeddings(parts: list[EmbeddingResponse]) -> EmbeddingResponse:
    """The batches' answers as one, in input order, usage summed."""
    if len(parts) == 1:
        return parts[0]
    from .types import EmbeddingResponse
    usage = None
    if all(r.usage is not None for r in parts):
        total = [sum(getattr(r.usage, f) for r in parts)
                 for f in ("prompt_tokens", "completion_tokens", "total_tokens")]
        usage = Usage(*total)
    return EmbeddingResponse(tuple(e for r in parts for e in r.data), parts[0].model, usage,
                             raw=[r.raw for r in parts])


def _speech(provider: Any, body: bytes, req: Any, cfg: ProviderConfig,
            headers: Mapping[str, str]) -> SpeechResponse:
    """Speech needs no parsing: the body is the audio (its format as asked, or as labelled)."""
    from ._files import SpeechResponse
    fmt = req.params.get("response_format")
    if not isinstance(fmt, str):
        ctype = headers.get("content-type", "")
        fmt = ctype.split("/")[-1].split(";")[0] if ctype.startswith("audio/") else "mp3"
    return SpeechResponse(body, fmt)


def _structured(response: ModelResponse, req: ChatRequest) -> ModelResponse:
    """``message.parsed`` from the answer, when the call has a ``response_format``."""
    fmt = req.params.get("response_format")
    if fmt is None:  # the hot path pays this one lookup
        return response
    from .structured import parse_response  # structured output: imported on first use

    return parse_response(response, fmt, provider=req.provider)


def _structured_output(response: Response, req: ResponsesRequest) -> Response:
    """``output_parsed`` from the answer, when the call has a ``text_format``."""
    if req.text_format is None:
        return response
    from .structured import parse_response_output

    return parse_response_output(response, req.text_format, provider=req.provider)


CHAT = Operation(
    "chat", "chat completions",
    lambda p, req, cfg: p.build_chat(req, cfg),
    lambda p, body, req, cfg, headers: p.parse_chat(body, req, cfg, headers),
    finish=_structured,
)
EMBEDDINGS = Operation(
    "embeddings", "embeddings",
    lambda p, req, cfg: p.build_embedding(req, cfg),
    lambda p, body, req, cfg, headers: p.parse_embedding(body, req, cfg, offset=req.offset,
                                                         count=len(req.inputs)),
    combine=_join_embeddings,
)
IMAGES = Operation(
    "images", "image generation",
    lambda p, req, cfg: p.build_image(req, cfg),
    lambda p, body, req, cfg, headers: p.parse_image(body, req, cfg),
)
TRANSCRIPTION = Operation(
    "transcription", "transcriptions",
    lambda p, req, cfg: p.build_transcription(req, cfg),
    lambda p, body, req, cfg, headers: p.parse_transcription(body, req, cfg),
)
SPEECH = Operation("speech", "speech", lambda p, req, cfg: p.build_speech(req, cfg), _speech)
MODELS = Operation(
    "models", "model lists",
    lambda p, req, cfg: p.build_models(req, cfg),
    lambda p, body, req, cfg, headers: p.parse_models(body, req, cfg),
)
RESPONSES = Operation(
    "responses", "Responses API calls",
    lambda p, req, cfg: p.build_responses(req, cfg),
    lambda p, body, req, cfg, headers: p.parse_responses(body, req, cfg, headers),
    finish=_structured_output,
    elsewhere=("the Responses API is OpenAI's (openai/, azure/ and OpenAI-compatible "
               "servers): use trillm.acompletion(model, messages) with this provider"),
)

def _mock_answer(*args: Any) -> Any:
    """``providers/mock.answer``, imported with the first mocked call."""
    from .providers.mock import answer

    return answer(*args)


def _no_mock() -> MockOptions:
    """The knobs of a ``mock/`` call that set none (imported with the first mocked call)."""
    from ._mock_wire import NO_MOCK

    return NO_MOCK


def _batch_mock_answer(*args: Any) -> Any:
    """``_batch_mock.answer``, imported with the first mocked batch call."""
    from ._batch_mock import answer

    return answer(*args)


BATCHES = Operation(
    "batch", "provider batch APIs",
    lambda p, step, cfg: p.batches.build(p, step, cfg),
    lambda p, body, step, cfg, headers: p.batches.parse(p, body, step, cfg),
    mock_answer=_batch_mock_answer,  # the mock keeps its batches in the trio run
    elsewhere="batches are offered by openai/, azure/, anthropic/, gemini/ and mock/",
)


@attrs.define(eq=False, repr=False)
class Call:
    """One prepared call to one model: what to send, within which limits, and how to read it.

    ``stream`` is None for a whole body, ``"sse"`` for an event stream (chat),
    ``"responses"`` for a Responses API event stream, ``"bytes"`` for a streamed
    download (speech).
    """

    __repr__ = record_repr

    op: Operation
    req: Any
    provider: Any
    cfg: ProviderConfig
    spec: HTTPRequestSpec
    options: CallOptions
    deadline_at: float
    stream: str | None = None
    rate_keys: tuple[str, ...] = ()  # the configured rate-limit keys it counts against
    tokens: int = 0  # its token estimate, booked before each attempt
    # Only when the call is observed (hooks or prices): its logical call, and what the
    # last attempt saw (its HTTP status, its wait for a slot).
    obs: Observation | None = None
    status: int | None = None
    slot_wait: float = 0.0


class _Slot:
    """A borrower token for one attempt or one open stream (never the task itself)."""

    __slots__ = ()


def _took_free_slot(limiter: trio.CapacityLimiter, slot: _Slot) -> bool:
    """Take a slot of *limiter* for *slot* if one is free and nobody waits for one (FIFO)."""
    try:
        limiter.acquire_on_behalf_of_nowait(slot)
    except trio.WouldBlock:
        return False
    return True


Requests = Callable[[Route, Any], Sequence[Any]]
Prepared = Callable[[], "list[Call] | Awaitable[list[Call]]"]


class Pipeline:
    """Prepares and runs the calls of one Client; open between ``open()`` and ``close()``."""

    def __init__(self) -> None:
        self.transport: Transport | None = None
        self._limiter: trio.CapacityLimiter | None = None
        self._rate: RateLimiter | None = None
        self._rng = random.Random()
        self._routes: dict[tuple[str, str | None], Route] = {}
        self.in_flight = 0
        self.open_streams = 0

    def open(self, transport: Transport, limiter: trio.CapacityLimiter | None,
             rate: RateLimiter | None) -> None:
        """Start sending through *transport*, within *limiter* and *rate*."""
        self.transport, self._limiter, self._rate = transport, limiter, rate

    def close(self) -> Transport | None:
        """Stop; returns the transport, for the owner to close."""
        transport, self.transport = self.transport, None
        self._limiter = self._rate = None
        return transport

    # -------------------------------------------------------------- prepare

    def prepare(self, op: Operation, model: str, options: CallOptions, requests: Requests,
                *, stream: str | None = None) -> list[Call]:
        """Route *model*, check its provider offers *op*, and build every request
        (*requests* gives one per batch); nothing is sent."""
        if self.transport is None:
            raise RuntimeError(NOT_OPEN)
        if not isinstance(model, str) or not model:
            raise errors.BadRequestError(
                f"model must be a non-empty string like 'openai/gpt-4o-mini', not {model!r}"
            )
        knobs = options.mock
        mocked = model.startswith("mock/") or (knobs is not None and (
            knobs.response is not None or knobs.tool_calls is not None))
        if mocked:
            route, cfg = mock_route(model), _MOCK_CONFIG
        else:
            route, cfg = self._resolve(model, options)
        provider = provider_for(route.preset.kind)
        if provider is None or op.name not in provider.operations:
            offered = ", ".join(sorted(provider.operations)) if provider else "nothing"
            raise errors.BadRequestError(
                f"{op.what} are not available for {route.provider!r} in this version of trillm "
                f"(it offers: {offered}); {op.elsewhere}",
                provider=route.provider, model=route.model,
            )
        deadline_at = trio.current_time() + options.deadline
        calls = []
        for req in requests(route, provider):
            spec = op.build(provider, req, cfg)
            if mocked:  # answered in-process: the one place the mock is named
                answer = op.mock_answer or _mock_answer
                spec = attrs.evolve(spec, local=functools.partial(answer, knobs or _no_mock(), req))
            call = Call(op, req, provider, cfg, spec, options, deadline_at, stream)
            calls.append(self._note_rate_keys(call))
        return calls

    def _resolve(self, model: str, options: CallOptions) -> tuple[Route, ProviderConfig]:
        # The parsed name is cached; keys and bases are read again on every call (about
        # 2 us), so a changed OPENAI_API_KEY or OPENAI_BASE_URL is seen at once.
        base = options.api_base
        route = self._routes.get((model, base))
        if route is None:
            if len(self._routes) >= 256:
                self._routes.clear()
            route = self._routes[(model, base)] = parse_model(model, api_base=base)
        cfg = resolve_config(route, api_key=options.api_key, api_base=base,
                             environ=os.environ, api_version=options.api_version)
        return route, cfg

    def _note_rate_keys(self, call: Call) -> Call:
        """Note which configured rate limits *call* counts against, and its token estimate."""
        if self._rate is not None:
            req = call.req
            call.rate_keys = self._rate.configured((f"{req.provider}/{req.model}", req.provider))
            messages = getattr(req, "messages", None)
            if call.rate_keys and messages:
                from .limits import estimate_tokens

                max_tokens = req.params.get("max_tokens") or req.params.get(
                    "max_completion_tokens")
                call.tokens = estimate_tokens(messages, max_tokens)
        return call

    # -------------------------------------------------------------- run

    async def run(self, prepare: Prepared) -> Any:
        """Prepare (checks, routing, reading files), then send.  Always a checkpoint, also
        when refusing before any traffic; never one after a stream opened."""
        try:
            prepared = prepare()
            if not isinstance(prepared, list):
                prepared = await prepared
        except (errors.APIError, RuntimeError) as exc:
            failure: BaseException = exc
        else:
            # This frame lives as long as the call: what only preparing needed (the call's
            # arguments, in *prepare*) is not kept alive with it.
            del prepare
            await trio.lowlevel.checkpoint()
            first = prepared[0]
            observer = first.options.observer
            if observer is not None:  # hooks or prices: the one check on the hot path
                return await self._observed(prepared, observer)
            if len(prepared) == 1 and first.op.combine is None:
                del prepared  # nor the list of one call
                return await self._with_retries(first)  # _dispatch's usual case, one frame less
            return await self._dispatch(prepared)
        await trio.lowlevel.checkpoint()
        raise failure

    async def _dispatch(self, prepared: list[Call]) -> Any:
        if prepared[0].op.combine is not None:
            return prepared[0].op.combine(await self._batches(prepared))
        if len(prepared) == 1:
            return await self._with_retries(prepared[0])
        return await self._with_fallbacks(prepared)

    async def _observed(self, prepared: list[Call], observer: Observer) -> Any:
        """One logical call under its hooks: one start, then one end however it ends (a
        stream's when it closes), the cancellation included."""
        first = prepared[0]
        # the run's clock itself: what trio.current_time() reads, three calls fewer each time
        obs = observer.start(first.op.name, prepared, trio.lowlevel.current_clock().current_time,
                             batched=first.op.combine is not None)
        for call in prepared:
            call.obs = obs
        try:
            result = await self._dispatch(prepared)
        except BaseException as exc:
            obs.end(None, exc)
            raise
        if first.stream is not None:
            return result  # it ends when the stream closes
        return obs.end(result, None)

    async def _batches(self, calls: list[Call]) -> list[Any]:
        """Every batch at once; answers in order.  One bare error, never a group: the first
        failure cancels the rest, and the others are added to its ``__notes__``."""
        if len(calls) == 1:
            return [await self._with_retries(calls[0])]
        results: list[Any] = [None] * len(calls)
        failures: list[Exception] = []

        async def batch(i: int, cancel: trio.CancelScope) -> None:
            try:
                results[i] = await self._with_retries(calls[i])
            except Exception as exc:  # noqa: BLE001 - kept and raised; Cancelled/KI pass
                failures.append(exc)
                cancel.cancel()

        cancelled = None
        try:
            async with trio.open_nursery() as nursery:
                for i in range(len(calls)):
                    nursery.start_soon(batch, i, nursery.cancel_scope)
        except BaseExceptionGroup as group:
            # Only cancellations escape `batch`: the caller's, reaching every batch.
            cancelled = only_cancelled(group)
            if cancelled is None:
                raise
        if cancelled is not None:
            raise_bare(cancelled)  # one bare Cancelled: a single call never raises a group
        if failures:
            first = failures[0]
            for other in failures[1:]:
                first.add_note(f"another batch failed too: {type(other).__name__}: {other}")
            raise first
        return results

    async def _with_fallbacks(self, calls: list[Call]) -> Any:
        failed: list[tuple[Call, errors.APIError]] = []
        for call in calls:
            try:
                return await self._with_retries(call)
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

    async def _with_retries(self, call: Call) -> Any:
        attempt = 0
        obs = call.obs
        waited = started = 0.0
        while True:
            attempt += 1
            if obs is not None:
                started = obs.now()
            # outside `try`: a refusal is final (no rate limit for this call: no wait at all)
            reservation = await self._wait_for_turn(call) if call.rate_keys else None
            if obs is not None and call.rate_keys:  # else it returned at once: no wait
                waited = obs.now() - started
            try:
                if call.stream is not None:
                    # (no bound method kept in this frame for the whole call)
                    result = await self._open_stream(call, reservation)
                else:
                    # One attempt of a call whose answer is one whole body, inline: no frame
                    # of its own held for every request in flight (~300 bytes each).
                    transport, limiter, slot, until = await self._go_on_the_wire(call)
                    try:
                        with trio.move_on_at(until) as scope:
                            raw = await transport.send(call.spec)
                    finally:
                        self.in_flight -= 1
                        if limiter is not None:
                            limiter.release_on_behalf_of(slot)
                    del transport, limiter, slot
                    if scope.cancelled_caught:
                        raise self._timeout(call, until)
                    try:
                        result = self._parse_whole(call, raw)
                    finally:
                        del raw  # not kept through a retry's wait
                    if reservation is not None:
                        # Usage, or the Responses API's ResponseUsage (not imported here)
                        total = getattr(getattr(result, "usage", None), "total_tokens", None)
                        if isinstance(total, int):
                            await reservation.settle(total)  # correct the estimate
                    if call.op.finish is not None:
                        result = call.op.finish(result, call.req)
            except errors.APIError as exc:  # Exception only: Cancelled / KeyboardInterrupt pass
                delay = self._retry_delay(call, attempt, exc)
                # a retry at INFO, the last failure at DEBUG (the error is raised anyway)
                level = logging.DEBUG if delay is None else logging.INFO
                if _log.isEnabledFor(level):
                    _log.log(level, "%s/%s attempt %d failed (status %s, %s); %s",
                             call.req.provider, call.req.model, attempt, exc.status_code,
                             type(exc).__name__,
                             "giving up" if delay is None else f"retrying in {delay:.3f} s")
                if obs is not None:
                    obs.attempt(call, attempt, exc.status_code, exc, delay, waited,
                                call.slot_wait, started + waited)
                pause = None
                if call.rate_keys and isinstance(exc, errors.RateLimitError):
                    # hold back every queued request for this model, retried or not
                    pause = exc.retry_after if exc.retry_after is not None else (
                        call.options.retry.backoff(attempt, self._rng) if delay is None
                        else delay)
                if delay is None and pause is None:
                    raise
                failure = exc
            except BaseException as exc:  # cancelled (or a bug): the attempt ends here too
                if obs is not None:
                    obs.attempt(call, attempt, None, exc, None, waited, call.slot_wait,
                                started + waited)
                raise
            else:
                if _log.isEnabledFor(logging.DEBUG):
                    _log.debug("%s/%s attempt %d succeeded", call.req.provider, call.req.model,
                               attempt)
                if obs is not None:
                    obs.attempt(call, attempt, call.status, None, None, waited, call.slot_wait,
                                started + waited)
                return result
            if pause is not None and self._rate is not None:
                await self._rate.pause(call.rate_keys, pause)
            if delay is None:
                raise failure
            await trio.sleep(delay)  # outside `except`: the slot was given back already

    def _retry_delay(self, call: Call, attempt: int, exc: errors.APIError) -> float | None:
        if attempt > call.options.max_retries:
            return None
        delay = call.options.retry.delay(attempt, exc, self._rng)
        if delay is None or trio.current_time() + delay >= call.deadline_at:
            return None
        return delay

    def _timeout(self, call: Call, timed_out_at: float) -> errors.Timeout:
        if timed_out_at >= call.deadline_at:
            msg = f"the call's deadline of {call.options.deadline:g} s passed"
        else:
            msg = f"no response within timeout={call.options.timeout:g} s"
        return errors.Timeout(msg, provider=call.req.provider, model=call.req.model)

    # -------------------------------------------------------------- pacing and slots

    async def _wait_for_turn(self, call: Call) -> Reservation | None:
        """Wait for this attempt's turn under the rate limits (no slot is held meanwhile)."""
        if not call.rate_keys or self._rate is None:
            return None
        from .limits import RateLimitTimeout

        try:
            return await self._rate.acquire(call.rate_keys, call.tokens,
                                            deadline=call.deadline_at)
        except RateLimitTimeout as exc:
            raise errors.Timeout(
                f"the call's deadline of {call.options.deadline:g} s would pass before its "
                f"turn under the rate limit for {exc.key!r}",
                provider=call.req.provider, model=call.req.model,
            ) from None

    async def _take_slot(self, call: Call) -> _Slot:
        """A concurrency slot, taken only when the call's rate limits are not paused.

        A request may wait for a slot after its paced turn came; if a 429 paused its
        model meanwhile, it gives the slot back and waits out the pause (holding none).
        """
        slot = _Slot()
        while True:
            # A free slot with nobody queued before us is taken at once, without a cancel
            # scope to pay for (one costs about as much as parsing a stream chunk).
            if self._limiter is not None and not _took_free_slot(self._limiter, slot):
                with trio.move_on_at(call.deadline_at) as scope:  # bounded by the deadline only
                    await self._limiter.acquire_on_behalf_of(slot)
                if scope.cancelled_caught:
                    raise self._timeout(call, call.deadline_at)
            if self._rate is None or not call.rate_keys or self._limiter is None:
                return slot  # no wait since the turn came (a shared store: no round trip)
            if await self._rate.paused_for(call.rate_keys) <= 0:
                return slot
            if self._limiter is not None:
                self._limiter.release_on_behalf_of(slot)
            await self._wait_for_turn(call)  # books again, behind the pause

    # -------------------------------------------------------------- attempts

    async def _go_on_the_wire(
        self, call: Call
    ) -> tuple[Transport, trio.CapacityLimiter | None, _Slot, float]:
        """What every attempt starts with: the transport, a concurrency slot (counted in
        flight; the caller gives it back), and when the attempt's time is up."""
        transport = self.transport
        if transport is None:
            raise RuntimeError(NOT_OPEN)
        limiter = self._limiter
        if call.obs is None:
            slot = await self._take_slot(call)
        else:
            asked = call.obs.now()
            slot = await self._take_slot(call)
            call.slot_wait = call.obs.now() - asked
        self.in_flight += 1
        return transport, limiter, slot, min(trio.current_time() + call.options.timeout,
                                             call.deadline_at)

    @staticmethod
    def _parse_whole(call: Call, raw: RawResponse) -> Any:
        """A whole answer's status checked and its body parsed (before ``Operation.finish``)."""
        if call.obs is not None:
            call.status = raw.status
        if raw.status >= 300:
            raise call.provider.parse_error(raw.status, raw.headers, raw.content, call.req,
                                            call.cfg)
        return call.op.parse(call.provider, raw.content, call.req, call.cfg,
                             errors.public_headers(raw.headers, call.cfg.secrets))

    async def _open_stream(self, call: Call, reservation: Reservation | None) -> Any:
        """One attempt at opening a stream: returned once the headers arrived (a stream's
        token estimate stands: its usage arrives only at the end)."""
        transport, limiter, slot, until = await self._go_on_the_wire(call)
        source: HTTPChunkSource | ScriptedChunkSource[Any] | BytesSource | None = None
        try:
            with trio.move_on_at(until) as scope:
                response = await transport.open_stream(call.spec)
                try:
                    source = await self._source(call, response)
                finally:
                    if source is None:
                        await response.aclose()
        finally:
            self.in_flight -= 1
            if source is None and limiter is not None:
                limiter.release_on_behalf_of(slot)
        if source is None:
            assert scope.cancelled_caught
            raise self._timeout(call, until)
        self.open_streams += 1

        def release() -> None:
            self.open_streams -= 1
            if limiter is not None:
                limiter.release_on_behalf_of(slot)

        common: dict[str, Any] = {
            "provider": call.req.provider, "model": call.req.model,
            "idle_timeout": call.options.idle_timeout, "deadline_at": call.deadline_at,
            "on_close": release,
        }
        if call.obs is not None:  # only then: the per-chunk path stays as it is
            common["on_first_chunk"] = call.obs.first_chunk
            common["on_end"] = call.obs.stream_end
        from . import _stream as streaming  # the stream machinery: with the first stream

        if call.stream == "bytes":
            return streaming.AudioStream(cast("Any", source), **common)
        if call.stream == "responses":
            from ._response_stream import ResponseStream

            return ResponseStream(cast("Any", source), text_format=call.req.text_format,
                                  **common)
        # final_response() parses the whole answer as a plain call's is parsed
        return streaming.Stream(cast("Any", source), response_format=call.req.params.get(
            "response_format"), **common)

    async def _source(
        self, call: Call, response: Any
    ) -> HTTPChunkSource | ScriptedChunkSource[Any] | BytesSource:
        """Where an opened stream's chunks come from (its status checked first)."""
        if call.obs is not None:
            call.status = response.status
        if response.status >= 300:
            body = await response.aread()
            raise call.provider.parse_error(response.status, response.headers, body, call.req,
                                            call.cfg)
        headers = errors.public_headers(response.headers, call.cfg.secrets)
        from . import _stream as streaming  # the stream machinery: with the first stream

        if call.stream == "bytes":
            return streaming.BytesSource(response, provider=call.req.provider, model=call.req.model,
                               headers=headers)
        responses = call.stream == "responses"
        if headers.get("content-type", "").startswith("application/json"):
            # A server that ignores stream=True: its whole answer, as chunks (or events).
            body = await response.aread()
            await response.aclose()
            if responses:
                return streaming.ScriptedChunkSource(
                    call.provider.parse_responses_as_events(body, call.req, call.cfg, headers),
                    headers=headers)
            whole = call.provider.parse_chat(body, call.req, call.cfg)
            from .accumulate import chunks_from_response  # (imported by _stream already)

            return streaming.ScriptedChunkSource(chunks_from_response(whole), headers=headers)
        parser = (call.provider.responses_stream_parser(call.req, call.cfg) if responses
                  else call.provider.stream_parser(call.req, call.cfg))
        return streaming.HTTPChunkSource(
            response, parser, provider=call.req.provider, model=call.req.model,
            headers=headers,
        )


_MOCK_CONFIG = resolve_config(mock_route("mock/x"), api_key=None, api_base=None, environ={})
