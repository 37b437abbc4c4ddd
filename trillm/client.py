"""``Client``: the public face.  Each method names its operation and hands over to the pipeline.

A method checks what only it knows (messages, inputs, a prompt, a file),
settles the call's options (:func:`~trillm._options.call_options`), says how to
make the provider's request record once the model is routed, and gives that
to :class:`~trillm._call.Pipeline`, which does everything else for every
operation alike: routing, the provider step, rate limits, the concurrency
slot, time limits, retries and fallbacks (see ``docs/architecture.md``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NoReturn, overload

import trio

from . import errors, types
from ._call import CHAT, EMBEDDINGS, IMAGES, MODELS, SPEECH, TRANSCRIPTION, Call, Pipeline
from ._options import ClientDefaults, call_options, check_messages, retries, seconds
from ._outside import run_outside_trio_with
from ._outside import trio_or_bridge as _trio_or_bridge
from ._transport import Transport
from .retry import RetryPolicy
from .routing import rate_limit_keys
from .types import ChatRequest, ModelResponse

if TYPE_CHECKING:
    import httpx

    from ._files import SpeechResponse
    from ._response_stream import ResponseStream
    from ._responses import ResponseStreamOpener
    from ._statistics import ClientStatistics as ClientStatistics
    from ._stream import AudioStream, Stream
    from .batch import Batches
    from .limits import RateLimit, RateStore
    from .response_types import Response
    from .routing import Route
    from .types import (
        EmbeddingRequest,
        EmbeddingResponse,
        ImageRequest,
        ImageResponse,
        ModelList,
        ModelsRequest,
        SpeechRequest,
        TranscriptionRequest,
        TranscriptionResponse,
    )
    from .usage import ModelTotals, Prices

__all__ = ["Client", "ClientStatistics", "StreamOpener", "run_outside_trio_with"]


def __getattr__(name: str) -> Any:
    if name == "ClientStatistics":  # in _statistics, imported on first use
        from ._statistics import ClientStatistics

        return ClientStatistics
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

_CLOSE_TIMEOUT = 10.0  # seconds closing the pool may take, even while being cancelled
#: The most one response may hold, unless ``max_response_bytes=`` says otherwise.
MAX_RESPONSE_BYTES = 256 * 2**20


class Client:
    """A trio-native client for the models of every provider.

    ``async with trillm.Client(...) as client:`` opens the connection pool and
    closes it on exit; a Client holds no I/O resource before that, so one may
    be built at import time.  Every keyword is a default that each call may
    override; ``None`` inherits and ``math.inf`` means no limit:

    * ``timeout`` bounds one attempt (for a stream: until the response headers),
      ``deadline`` the whole call across retries (a stream until it closes),
      ``idle_timeout`` each gap between stream events (by default the
      ``timeout``, so a stream that stalls after its headers ends too);
    * ``max_retries`` and ``retry`` (a :class:`~trillm.retry.RetryPolicy`)
      govern retries; ``max_concurrency`` caps requests on the wire and open
      streams with a ``trio.CapacityLimiter``, never held during back-off;
      ``rate_limits`` paces requests per model or provider, on ``rate_store``
      (a :class:`~trillm.limits.RateStore`; by default one in this process,
      :class:`trillm.redis.RedisRateStore` to share the limits between workers);
    * ``transport`` takes any ``httpx.AsyncBaseTransport`` (e.g.
      ``httpx.MockTransport`` in tests; it stays the caller's to close);
      ``proxy`` and the environment's ``HTTPS_PROXY`` / ``NO_PROXY`` apply
      otherwise; ``headers`` are sent with every request;
      ``max_response_bytes`` bounds what one response may hold (256 MiB);
    * ``hooks`` observe every call (see :mod:`trillm.hooks`; a call's own
      ``hooks=`` run after these); ``prices`` (``{"openai/gpt-4o-mini":
      trillm.Prices(...)}``) put ``cost`` on every answer of those models and
      turn on :meth:`usage_totals`.
      ``connect_timeout`` bounds opening a connection (by default only the call's
      ``timeout`` / ``deadline`` do, so a process busy opening thousands fails none).
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
        rate_store: RateStore | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        proxy: str | None = None,
        headers: Mapping[str, str] | None = None,
        trust_env: bool = True,
        max_response_bytes: float = MAX_RESPONSE_BYTES,
        hooks: Sequence[Any] | None = None,
        prices: Mapping[str, Prices] | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        observer = None
        if hooks or prices is not None:  # else nothing observes: the pipeline's one check
            from .hooks import Observer  # only with hooks or prices: keeps `import trillm` cheap
            from .usage import UsageTotals

            observer = Observer(list(hooks or ()), prices,
                                UsageTotals() if prices is not None else None)
        self._defaults = ClientDefaults(
            timeout=seconds("timeout", timeout, math.inf),
            deadline=seconds("deadline", deadline, math.inf),
            idle_timeout=None if idle_timeout is None else seconds(
                "idle_timeout", idle_timeout, math.inf),
            max_retries=retries(max_retries, 2),
            retry=RetryPolicy() if retry is None else retry,
            api_key=api_key,
            api_base=api_base,
            headers=dict(headers) if headers else None,
            observer=observer,
        )
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise ValueError(f"max_concurrency must be an int >= 1, not {max_concurrency!r}")
        if isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int | float) \
                or not max_response_bytes >= 1:
            raise ValueError(
                f"max_response_bytes must be a number of bytes >= 1 (math.inf for no bound), "
                f"not {max_response_bytes!r}")
        self._max_concurrency = max_concurrency
        self._connect_timeout = None if connect_timeout is None else seconds(
            "connect_timeout", connect_timeout, math.inf)
        if rate_limits:
            from .limits import RateLimit  # only with rate limits: keeps `import trillm` cheap
        for key, limit in (rate_limits or {}).items():
            if not isinstance(limit, RateLimit):
                raise TypeError(f"rate_limits[{key!r}] must be a trillm.RateLimit, not {limit!r}")
        self._rate_limits = rate_limit_keys(rate_limits, api_base=api_base) if rate_limits else None
        if rate_store is not None and not rate_limits:
            raise ValueError("rate_store= holds the state of rate_limits=: give both, or neither")
        self._rate_store = rate_store
        self._user_transport = transport
        self._proxy = proxy
        self._trust_env = trust_env
        self._max_response_bytes = max_response_bytes
        self._pipeline = Pipeline()

    def __repr__(self) -> str:
        state = "open" if self._pipeline.transport is not None else "not open"
        return f"<trillm.Client {state}>"

    # -------------------------------------------------------------- lifetime

    def open(self) -> None:
        """Open the connection pool now, without ``async with`` (inside a trio run); the
        owner closes it with :meth:`aclose`.  ``async with`` is the form to prefer."""
        if self._pipeline.transport is not None:
            raise RuntimeError("this trillm.Client is already open")
        transport = Transport(transport=self._user_transport, proxy=self._proxy,
                              trust_env=self._trust_env,
                              max_response_bytes=self._max_response_bytes,
                              connect_timeout=self._connect_timeout)
        limiter = None
        if self._max_concurrency is not None:
            limiter = trio.CapacityLimiter(self._max_concurrency)
        rate = None
        if self._rate_limits is not None:  # pacing state lives on this run's clock
            from .limits import RateLimiter

            rate = RateLimiter(self._rate_limits, self._rate_store)
        self._pipeline.open(transport, limiter, rate)

    @_trio_or_bridge
    async def __aenter__(self) -> Client:
        self.open()
        await trio.lowlevel.checkpoint()
        return self

    @_trio_or_bridge
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # no checkpoint: it must not replace an exception on its way out
        await self._close()  # noqa: ASYNC102 - shielded inside, with a time limit

    @_trio_or_bridge
    async def aclose(self) -> None:
        """Close every pooled connection; the Client may be opened again later."""
        await self._close()
        await trio.lowlevel.checkpoint()  # closed first, then a checkpoint, as trio's own aclose

    async def _close(self) -> None:
        transport = self._pipeline.close()
        if transport is not None:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await transport.aclose()

    def statistics(self) -> ClientStatistics:
        """Requests in flight, open streams and pooled connections right now."""
        pipeline = self._pipeline
        idle = active = 0
        if pipeline.transport is not None:
            t = pipeline.transport.statistics()
            idle, active = t.idle_connections, t.active_connections
        from ._statistics import ClientStatistics  # imported with the first snapshot

        return ClientStatistics(pipeline.in_flight, pipeline.open_streams, idle, active)

    def usage_totals(self) -> dict[str, ModelTotals]:
        """Per ``"provider/model"``: calls, errors, tokens by kind and cost so far (with
        ``prices=``; an empty dict without)."""
        observer = self._defaults.observer
        totals = observer.totals if observer is not None else None
        return totals.snapshot() if totals is not None else {}

    # -------------------------------------------------------------- chat

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

    @_trio_or_bridge
    def acompletion(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        stream: bool = False,
        timeout: float | None = None,  # LiteLLM's spelling; a cancel scope
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
        mock_response: str | BaseException | Mapping[str, Any] | ModelResponse | None = None,
        mock_latency: float | None = None,
        mock_chunk_delay: float | None = None,
        mock_tool_calls: Sequence[Mapping[str, Any]] | None = None,
        fallbacks: Sequence[str] | None = None,
        **params: Any,
    ) -> Coroutine[Any, Any, ModelResponse | Stream]:
        """Ask *model* to continue *messages*; a :class:`ModelResponse`, or a
        :class:`Stream` with ``stream=True`` (returned once the headers arrived).

        Any other keyword (``temperature``, ``max_tokens``, ``tools``, ...) is
        passed to the provider; ``num_retries`` and ``request_timeout`` are
        accepted as LiteLLM's names for ``max_retries`` and ``timeout``.
        ``fallbacks=[...]`` names models to try, in order, when the previous one
        failed with a retryable or context-window error after its own retries;
        every model is validated before anything is sent, and ``deadline`` spans them all.
        ``mock_response``, ``mock_tool_calls``, ``mock_latency`` and ``mock_chunk_delay``
        answer offline (``providers/mock.py``).
        """
        # Not an async def: the coroutine returned is the pipeline's own, so no frame of
        # this method (its ~20 arguments, its `params` dict) stays alive, suspended, for the
        # whole call (about 700 bytes a call in flight).  The arguments go to the pipeline
        # as a partial, not a closure (a closure over ~20 arguments would keep ~20 cells
        # alive, objects the cyclic collector walks again and again when 10,000 calls are
        # in flight), positional only (a partial with keywords costs ~10,000 instructions
        # more a call); `params` is this call's own dict, handed over as it is.
        return self._pipeline.run(functools.partial(
            self._prepare_chat, model, messages, stream, fallbacks, params,
            (timeout, deadline, idle_timeout, max_retries, retry, api_key, api_base,
             api_version, headers, extra_headers, extra_body, mock_response, mock_latency,
             mock_chunk_delay, mock_tool_calls),
        ))

    def _prepare_chat(
        self, model: str, messages: Sequence[Mapping[str, Any]], stream: bool,
        fallbacks: Sequence[str] | None, params: dict[str, Any], overrides: tuple[Any, ...],
    ) -> list[Call]:
        """:meth:`acompletion`'s checks and routing: its Calls, one per model."""
        (timeout, deadline, idle_timeout, max_retries, retry, api_key, api_base, api_version,
         headers, extra_headers, extra_body, mock_response, mock_latency, mock_chunk_delay,
         mock_tool_calls) = overrides
        options = call_options(
            self._defaults, params, timeout=timeout, deadline=deadline,
            idle_timeout=idle_timeout, max_retries=max_retries, retry=retry,
            api_key=api_key, api_base=api_base, api_version=api_version, headers=headers,
            extra_headers=extra_headers, extra_body=extra_body, mock_response=mock_response,
            mock_latency=mock_latency, mock_chunk_delay=mock_chunk_delay,
            mock_tool_calls=mock_tool_calls,
        )
        msgs = check_messages(messages)
        drop_params = bool(params.pop("drop_params", False))

        def request(route: Route, provider: Any) -> list[ChatRequest]:
            return [ChatRequest(route.provider, route.model, msgs, stream, params,
                                options.extra_body, options.headers, drop_params)]

        kind = "sse" if stream else None
        calls = []
        for m in [model, *(fallbacks or ())]:  # every model checked before any is asked
            calls += self._pipeline.prepare(CHAT, m, options, request, stream=kind)
        return calls

    def stream(
        self, model: str, messages: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> StreamOpener:
        """``async with client.stream(model=..., messages=...) as stream:`` — the
        stream is open inside the block and closed when it is left, however it is left.
        Takes the keywords of :meth:`acompletion`."""
        return StreamOpener(self, model, messages, kwargs)

    # -------------------------------------------------------------- the Responses API

    @overload
    async def aresponses(
        self, model: str, input: str | Sequence[Mapping[str, Any]], *,
        stream: Literal[False] = False, **kwargs: Any,
    ) -> Response: ...

    @overload
    async def aresponses(
        self, model: str, input: str | Sequence[Mapping[str, Any]], *,
        stream: Literal[True], **kwargs: Any,
    ) -> ResponseStream: ...

    @_trio_or_bridge
    async def aresponses(
        self,
        model: str,
        input: str | Sequence[Mapping[str, Any]],
        *,
        instructions: str | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        text: Mapping[str, Any] | None = None,
        text_format: Any = None,
        max_output_tokens: int | None = None,
        reasoning: Mapping[str, Any] | None = None,
        previous_response_id: str | None = None,
        store: bool | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> Response | ResponseStream:
        """Ask *model* through OpenAI's Responses API (OpenAI, Azure, OpenAI-compatible
        servers, the mock): a :class:`~trillm.Response`, or with ``stream=True`` a
        :class:`~trillm.ResponseStream` of events (returned once the headers arrived).

        *input* is a string or a list of input items; *tools* take the flat form
        (``{"type": "function", "name": ..., "parameters": {...}}``).  Every other
        keyword is sent in the body, except :meth:`acompletion`'s options
        (``timeout``, ``max_retries``, ``api_base``, ``mock_response``,
        ``fallbacks``, ...), which work as there.
        """
        named = {"instructions": instructions, "tools": tools, "text": text,
                 "text_format": text_format, "max_output_tokens": max_output_tokens,
                 "reasoning": reasoning, "previous_response_id": previous_response_id,
                 "store": store}
        from ._responses import prepare_responses  # the Responses API: loaded on first use

        return await self._pipeline.run(functools.partial(  # type: ignore[no-any-return]
            prepare_responses, self._pipeline, self._defaults, model, input, stream=stream,
            named=named, kwargs=kwargs))

    def responses_stream(
        self, model: str, input: str | Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> ResponseStreamOpener:
        """``async with client.responses_stream(model, input) as stream:`` — the stream is
        open inside the block and closed when it is left.  Keywords of :meth:`aresponses`."""
        from ._responses import ResponseStreamOpener

        return ResponseStreamOpener(lambda: self, model, input, kwargs)

    # -------------------------------------------------------------- many at once

    @_trio_or_bridge
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
        from . import _fanout

        return await _fanout.abatch_completion(
            self.acompletion, requests, limit=limit, return_exceptions=return_exceptions,
            progress=progress,
        )

    @_trio_or_bridge
    async def abatch_completion_models(
        self, *, models: Sequence[str], messages: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> ModelResponse:
        """Ask every model at once; the first answer wins and the others are cancelled."""
        from . import _fanout

        return await _fanout.abatch_completion_models(
            self.acompletion, models=models, messages=messages, **kwargs
        )

    @_trio_or_bridge
    async def abatch_completion_models_all_responses(
        self, *, models: Sequence[str], messages: Sequence[Mapping[str, Any]],
        return_exceptions: bool = False, **kwargs: Any,
    ) -> list[Any]:
        """Every model's answer to the same messages, in the order of *models*."""
        from . import _fanout

        return await _fanout.abatch_completion_models_all_responses(
            self.acompletion, models=models, messages=messages, return_exceptions=return_exceptions,
            **kwargs,
        )

    @property
    def batches(self) -> Batches:
        """The providers' batch APIs on this Client: ``submit``, ``status``, ``cancel``,
        ``wait``, ``results`` (:class:`trillm.batch.Batches`)."""
        from .batch import Batches  # the batch APIs: loaded on first use

        return Batches(self._pipeline, self._defaults)
    @_trio_or_bridge
    async def acount_tokens(
        self, model: str, messages: Sequence[Mapping[str, Any]], *,
        tools: Sequence[Mapping[str, Any]] | None = None, system: str | None = None,
        **kwargs: Any,
    ) -> int:
        """How many input tokens *messages* (with *tools*, and a *system* prompt) are for
        *model*, counted by its provider's endpoint (openai, anthropic, gemini; ``mock/``
        counts words).  A server without one: ``NotFoundError``.  Options as for
        :meth:`acompletion` (``api_key``, ``api_base``, ``timeout``, ``hooks``, ...)."""
        from . import _count_tokens

        return await _count_tokens.acount_tokens(
            self._pipeline, self._defaults, model, messages, tools=tools, system=system,
            kwargs=kwargs)

    # -------------------------------------------------------------- beyond chat

    @_trio_or_bridge
    async def aembedding(
        self,
        model: str,
        input: str | Sequence[str],
        *,
        dimensions: int | None = None,
        encoding_format: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - LiteLLM's spelling; a cancel scope
        deadline: float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        api_key: str | None = None,
        api_base: str | None = None,
        api_version: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        mock_response: BaseException | None = None,
        mock_latency: float | None = None,
        **params: Any,
    ) -> EmbeddingResponse:
        """Vectors for *input* (a string or a list), ``data[i].embedding`` in input order.

        Large inputs are split into the provider's batch size and sent at once,
        within the Client's limits; ``encoding_format="base64"`` answers are
        decoded to floats for you.
        """
        params = {**params, "dimensions": dimensions, "encoding_format": encoding_format}

        def prepare() -> list[Call]:
            options = call_options(
                self._defaults, params, timeout=timeout, deadline=deadline,
                max_retries=max_retries, retry=retry, api_key=api_key, api_base=api_base,
                api_version=api_version, headers=headers, extra_headers=extra_headers,
                extra_body=extra_body, mock_response=mock_response, mock_latency=mock_latency,
            )
            texts = _check_inputs(input)

            def batches(route: Route, provider: Any) -> list[EmbeddingRequest]:
                size = provider.embedding_batch_size
                return [
                    types.EmbeddingRequest(route.provider, route.model, texts[start:start + size],
                                     params, options.extra_body, options.headers, start)
                    for start in range(0, len(texts), size)
                ]

            return self._pipeline.prepare(EMBEDDINGS, model, options, batches)

        return await self._pipeline.run(prepare)  # type: ignore[no-any-return]

    @_trio_or_bridge
    async def aimage_generation(
        self,
        model: str,
        prompt: str,
        *,
        n: int | None = None,
        size: str | None = None,
        quality: str | None = None,
        response_format: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - LiteLLM's spelling; a cancel scope
        deadline: float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        api_key: str | None = None,
        api_base: str | None = None,
        api_version: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        mock_response: BaseException | None = None,
        mock_latency: float | None = None,
        **params: Any,
    ) -> ImageResponse:
        """Generate images from *prompt*: ``data[i].url`` or ``data[i].b64_json``."""
        params = {**params, "n": n, "size": size, "quality": quality,
                  "response_format": response_format}

        def prepare() -> list[Call]:
            options = call_options(
                self._defaults, params, timeout=timeout, deadline=deadline,
                max_retries=max_retries, retry=retry, api_key=api_key, api_base=api_base,
                api_version=api_version, headers=headers, extra_headers=extra_headers,
                extra_body=extra_body, mock_response=mock_response, mock_latency=mock_latency,
            )
            if not isinstance(prompt, str) or not prompt.strip():
                raise errors.BadRequestError("prompt must be a non-empty string")
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise errors.BadRequestError(f"n must be an int >= 1, not {n!r}")

            def request(route: Route, provider: Any) -> list[ImageRequest]:
                return [types.ImageRequest(route.provider, route.model, prompt, params,
                                     options.extra_body, options.headers)]

            return self._pipeline.prepare(IMAGES, model, options, request)

        return await self._pipeline.run(prepare)  # type: ignore[no-any-return]

    @_trio_or_bridge
    async def atranscription(
        self,
        model: str,
        file: Any,
        *,
        language: str | None = None,
        prompt: str | None = None,
        response_format: str | None = None,
        temperature: float | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - LiteLLM's spelling; a cancel scope
        deadline: float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        api_key: str | None = None,
        api_base: str | None = None,
        api_version: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        mock_response: BaseException | str | None = None,
        mock_latency: float | None = None,
        **params: Any,
    ) -> TranscriptionResponse:
        """Transcribe *file* (a path, bytes or a binary file object, read whole first, so a
        retry sends it again in full); ``text``, plus ``segments`` with ``verbose_json``."""
        params = {**params, "language": language, "prompt": prompt,
                  "response_format": response_format, "temperature": temperature}

        async def prepare() -> list[Call]:
            options = call_options(
                self._defaults, params, timeout=timeout, deadline=deadline,
                max_retries=max_retries, retry=retry, api_key=api_key, api_base=api_base,
                api_version=api_version, headers=headers, extra_headers=extra_headers,
                extra_body=extra_body, mock_response=mock_response, mock_latency=mock_latency,
            )
            from ._files import load_file

            loaded = await load_file(file)  # read whole before the first attempt

            def request(route: Route, provider: Any) -> list[TranscriptionRequest]:
                return [types.TranscriptionRequest(route.provider, route.model, loaded, params,
                                             options.extra_body, options.headers)]

            return self._pipeline.prepare(TRANSCRIPTION, model, options, request)

        return await self._pipeline.run(prepare)  # type: ignore[no-any-return]

    @_trio_or_bridge
    async def aspeech(
        self,
        model: str,
        input: str,
        voice: str | None = None,
        *,
        response_format: str | None = None,
        speed: float | None = None,
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
        mock_response: BaseException | None = None,
        mock_latency: float | None = None,
        **params: Any,
    ) -> SpeechResponse | AudioStream:
        """Speak *input* with *voice*: ``.content`` bytes, ``await .write_to_file(path)``.

        ``stream=True`` returns an :class:`AudioStream` once the headers arrived
        (``async with`` it, and ``async for data in it``) instead of reading it all.
        """
        params = {**params, "voice": voice, "response_format": response_format, "speed": speed}

        def prepare() -> list[Call]:
            options = call_options(
                self._defaults, params, timeout=timeout, deadline=deadline,
                idle_timeout=idle_timeout, max_retries=max_retries, retry=retry,
                api_key=api_key, api_base=api_base, api_version=api_version, headers=headers,
                extra_headers=extra_headers, extra_body=extra_body,
                mock_response=mock_response, mock_latency=mock_latency,
            )
            if not isinstance(input, str) or not input:
                raise errors.BadRequestError("input must be a non-empty string")
            if not isinstance(voice, str):
                raise errors.BadRequestError("voice must be given, e.g. voice='alloy'")

            def request(route: Route, provider: Any) -> list[SpeechRequest]:
                return [types.SpeechRequest(route.provider, route.model, input, params,
                                      options.extra_body, options.headers)]

            kind = "bytes" if stream else None
            return self._pipeline.prepare(SPEECH, model, options, request, stream=kind)

        return await self._pipeline.run(prepare)  # type: ignore[no-any-return]

    @_trio_or_bridge
    async def alist_models(
        self, provider: str = "openai", *,
        timeout: float | None = None,  # noqa: ASYNC109 - LiteLLM's spelling; a cancel scope
        deadline: float | None = None, max_retries: int | None = None,
        retry: RetryPolicy | None = None, api_key: str | None = None,
        api_base: str | None = None, headers: Mapping[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        mock_response: BaseException | None = None, mock_latency: float | None = None,
    ) -> ModelList:
        """The models *provider* offers (``GET {base}/models``): ``data[i].id``.  With
        ``api_base=``, those of that OpenAI-compatible server; ``"mock"`` lists the mock's."""

        def prepare() -> list[Call]:
            options = call_options(
                self._defaults, {}, timeout=timeout, deadline=deadline, max_retries=max_retries,
                retry=retry, api_key=api_key, api_base=api_base, headers=headers,
                extra_headers=extra_headers, mock_response=mock_response,
                mock_latency=mock_latency,
            )

            def request(route: Route, _: Any) -> list[ModelsRequest]:
                return [types.ModelsRequest(route.provider, route.model, {}, None, options.headers)]

            return self._pipeline.prepare(MODELS, f"{provider}/*", options, request)

        return await self._pipeline.run(prepare)  # type: ignore[no-any-return]


def _check_inputs(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not value:
        raise errors.BadRequestError("input must be a string or a non-empty list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise errors.BadRequestError(
                f"input[{i}] must be a non-empty string, not {type(item).__name__}"
            )
    return tuple(value)


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
            await self._stream.__aexit__(*exc_info)  # noqa: ASYNC102 - shielded, time-limited

    # Wrong ways to use it, each a TypeError that shows the right one.  At run time only:
    # to a type checker these stay what they are, errors.
    if not TYPE_CHECKING:

        def _misuse(self, what: str, *, awaited: bool = False) -> TypeError:
            name = "client" if isinstance(self._client, Client) else "trillm"
            right = f"`async with {name}.stream(...) as s: async for chunk in s: ...`"
            if awaited:
                right = (f"`async with {name}.stream(...) as s:` or "
                         f"`s = await {name}.acompletion(..., stream=True)`")
            return TypeError(f"{name}.stream(...) {what}: write {right}")

        def __aiter__(self) -> NoReturn:
            raise self._misuse("opens the stream only in `async with`")

        def __iter__(self) -> NoReturn:
            raise self._misuse("is asynchronous, and opens the stream only in `async with`")

        def __await__(self) -> NoReturn:
            raise self._misuse("cannot be awaited", awaited=True)
