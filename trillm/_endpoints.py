"""The Client's non-chat endpoints: embeddings (in provider-sized batches) and images.

An embeddings call is split into the provider's batch size; each batch is one
call with the Client's usual guarantees (timeout, deadline, retries, rate
limits, the concurrency limit); the batches run at once in a nursery and are
put back in input order.  This is a single call, so it raises one bare
exception, never a group: the first batch that fails cancels the others, and
any other failures that happened are added to its ``__notes__``.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs
import trio

from . import errors
from ._stream import AudioStream
from .providers import mock
from .types import (
    ChatRequest,
    EmbeddingResponse,
    ImageResponse,
    TranscriptionResponse,
    Usage,
)

if TYPE_CHECKING:
    from ._wire import ProviderConfig
    from .client import CallSetup, Client, _Call
    from .retry import RetryPolicy

_P = TypeVar("_P")
_R = TypeVar("_R")

__all__ = [
    "EndpointMethods", "SpeechResponse", "load_file", "prepare", "prepare_image", "prepare_speech",
    "prepare_transcription", "run",
]

#: Inputs per batch for the mock provider (as OpenAI's limit).
_MOCK_BATCH = 2048


def _check_inputs(value: Any) -> tuple[Any, ...]:
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


def _setup(
    client: Client, model: Any, params: dict[str, Any], options: Mapping[str, Any]
) -> CallSetup:
    return client._setup(
        model, params, timeout=options["timeout"], deadline=options["deadline"],
        idle_timeout=None, max_retries=options["max_retries"], retry=options["retry"],
        headers=options["headers"], extra_headers=options["extra_headers"],
        mock_response=options["mock_response"],
    )


def _route(
    client: Client, model: str, params: dict[str, Any], options: Mapping[str, Any],
    setup: CallSetup, build_name: str, what: str,
) -> tuple[ChatRequest, Any, ProviderConfig]:
    """The request carrier, the provider (which must offer *build_name*) and its config."""
    from .client import _provider_for

    api_base = client._api_base if options["api_base"] is None else options["api_base"]
    route, cfg = client._resolve(model, options["api_key"], api_base, options["api_version"])
    provider = _provider_for(route.preset.kind)
    if provider is None or not hasattr(provider, build_name):
        raise errors.BadRequestError(
            f"{what} are not available for {route.provider!r} in this version of trillm",
            provider=route.provider, model=route.model,
        )
    req = ChatRequest(route.provider, route.model, (), False, params, options["extra_body"],
                      setup.headers)
    return req, provider, cfg


def prepare(
    client: Client,
    model: Any,
    inputs: Any,
    params: dict[str, Any],
    *,
    options: Mapping[str, Any],
) -> list[_Call]:
    """One embeddings call per batch, all validated and routed before anything is sent."""
    from .client import _Call

    setup = _setup(client, model, params, options)
    texts = _check_inputs(inputs)
    if setup.mock_name is not None:
        req = ChatRequest("mock", setup.mock_name, (), False, params, options["extra_body"],
                          setup.headers)
        return [
            client._paced(_Call(req, setup.limits, setup.deadline_at, plan=mock.plan_embedding(
                setup.mock_name, texts[start:start + _MOCK_BATCH], offset=start,
                dimensions=params.get("dimensions"), mock_response=options["mock_response"],
                latency=options["mock_latency"],
            )))
            for start in range(0, len(texts), _MOCK_BATCH)
        ]
    req, provider, cfg = _route(client, model, params, options, setup, "build_embedding",
                                "embeddings")
    size = provider.embedding_batch_size
    return [
        client._paced(_Call(
            req, setup.limits, setup.deadline_at, provider=provider, cfg=cfg,
            spec=provider.build_embedding(req, texts[start:start + size], cfg),
            parse=functools.partial(provider.parse_embedding, req=req, cfg=cfg, offset=start),
        ))
        for start in range(0, len(texts), size)
    ]


def prepare_image(
    client: Client, model: Any, prompt: Any, params: dict[str, Any], *,
    options: Mapping[str, Any],
) -> _Call:
    """The one image-generation call, validated and routed before anything is sent."""
    from .client import _Call

    setup = _setup(client, model, params, options)
    if not isinstance(prompt, str) or not prompt.strip():
        raise errors.BadRequestError("prompt must be a non-empty string")
    if setup.mock_name is not None:
        req = ChatRequest("mock", setup.mock_name, (), False, params, options["extra_body"],
                          setup.headers)
        plan = mock.plan_image(prompt, n=params.get("n", 1),
                               response_format=params.get("response_format", "url"),
                               mock_response=options["mock_response"],
                               latency=options["mock_latency"])
        return client._paced(_Call(req, setup.limits, setup.deadline_at, plan=plan))
    req, provider, cfg = _route(client, model, params, options, setup, "build_image", "images")
    return client._paced(_Call(
        req, setup.limits, setup.deadline_at, provider=provider, cfg=cfg,
        spec=provider.build_image(req, prompt, cfg),
        parse=functools.partial(provider.parse_image, req=req, cfg=cfg),
    ))


@attrs.frozen
class SpeechResponse:
    """Generated speech: ``content`` (the audio bytes) and ``await write_to_file(path)``."""

    content: bytes = attrs.field(repr=False)
    response_format: str = "mp3"

    async def write_to_file(self, path: str | os.PathLike[str]) -> None:
        """Write the audio to *path* (in a worker thread, as trio's file I/O does)."""
        await trio.Path(path).write_bytes(self.content)


async def load_file(file: Any) -> tuple[str, bytes, str]:
    """(filename, bytes, content type) of a path, bytes, or a binary file object, read whole
    now, so every attempt sends the same bytes."""
    if isinstance(file, str | os.PathLike):
        name = os.path.basename(os.fspath(file))
        data = await trio.Path(file).read_bytes()
    elif isinstance(file, bytes | bytearray | memoryview):
        name, data = "audio", bytes(file)
    elif hasattr(file, "read"):
        name = os.path.basename(str(getattr(file, "name", "audio")))
        data = await trio.to_thread.run_sync(file.read)
        if not isinstance(data, bytes):
            raise errors.BadRequestError("file must be opened in binary mode ('rb')")
    else:
        raise errors.BadRequestError(
            f"file must be a path, bytes or a binary file object, not {type(file).__name__}"
        )
    if not data:
        raise errors.BadRequestError(f"the audio file {name!r} is empty")
    import mimetypes  # only for uploads: keeps `import trillm` cheap

    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return name, data, ctype


def prepare_transcription(
    client: Client, model: Any, file: tuple[str, bytes, str], params: dict[str, Any], *,
    options: Mapping[str, Any],
) -> _Call:
    """The transcription call (the file already read), validated and routed."""
    from .client import _Call

    setup = _setup(client, model, params, options)
    if setup.mock_name is not None:
        req = ChatRequest("mock", setup.mock_name, (), False, params, None, setup.headers)
        plan = mock.plan_transcription(file[0], mock_response=options["mock_response"],
                                       latency=options["mock_latency"])
        return _Call(req, setup.limits, setup.deadline_at, plan=plan)
    req, provider, cfg = _route(client, model, params, options, setup, "build_transcription",
                                "transcriptions")
    return _Call(req, setup.limits, setup.deadline_at, provider=provider, cfg=cfg,
                 spec=provider.build_transcription(req, file, cfg),
                 parse=functools.partial(provider.parse_transcription, req=req, cfg=cfg))


def prepare_speech(
    client: Client, model: Any, text: Any, params: dict[str, Any], *,
    options: Mapping[str, Any], stream: bool = False,
) -> _Call:
    """The text-to-speech call, validated and routed."""
    from .client import _Call

    setup = _setup(client, model, params, options)
    if not isinstance(text, str) or not text:
        raise errors.BadRequestError("input must be a non-empty string")
    if not isinstance(params.get("voice"), str):
        raise errors.BadRequestError("voice must be given, e.g. voice='alloy'")
    fmt = str(params.get("response_format", "mp3"))
    if setup.mock_name is not None:
        req = ChatRequest("mock", setup.mock_name, (), False, params, None, setup.headers)
        plan = mock.plan_speech(mock_response=options["mock_response"],
                                latency=options["mock_latency"])
        if plan.response is not None:
            audio = plan.response
            plan = attrs.evolve(plan, response=SpeechResponse(audio, "wav"), chunks=tuple(
                audio[i:i + 1024] for i in range(0, len(audio), 1024)))
        return _Call(req, setup.limits, setup.deadline_at, plan=plan, audio=stream)
    req, provider, cfg = _route(client, model, params, options, setup, "build_speech", "speech")
    return _Call(req, setup.limits, setup.deadline_at, provider=provider, cfg=cfg,
                 spec=provider.build_speech(req, text, cfg),
                 parse=lambda body: SpeechResponse(body, fmt), audio=stream)


async def run(client: Client, calls: list[_Call]) -> EmbeddingResponse:
    """Run every batch at once; the answers in input order, usage summed."""
    once = client._complete_once
    if len(calls) == 1:
        return await client._with_retries(calls[0], once)
    results: list[EmbeddingResponse | None] = [None] * len(calls)
    failures: list[Exception] = []

    async def batch(i: int, cancel: trio.CancelScope) -> None:
        try:
            results[i] = await client._with_retries(calls[i], once)
        except Exception as exc:  # noqa: BLE001 - kept and raised by the parent, never lost
            failures.append(exc)
            cancel.cancel()

    async with trio.open_nursery() as nursery:
        for i in range(len(calls)):
            nursery.start_soon(batch, i, nursery.cancel_scope)
    if failures:
        first = failures[0]
        for other in failures[1:]:
            first.add_note(f"another batch failed too: {type(other).__name__}: {other}")
        raise first
    done = [r for r in results if r is not None]
    usages = [r.usage for r in done if r.usage is not None]
    usage = None
    if usages:
        prompt = sum(u.prompt_tokens for u in usages)
        usage = Usage(prompt_tokens=prompt, completion_tokens=0,
                      total_tokens=sum(u.total_tokens for u in usages))
    return EmbeddingResponse(
        tuple(e for r in done for e in r.data), done[0].model, usage,
        raw=[r.raw for r in done],
    )


# The keywords every non-chat endpoint (aembedding, aimage_generation) takes besides its own.
_ENDPOINT_OPTIONS = frozenset({
    "timeout", "deadline", "max_retries", "retry", "api_key", "api_base", "api_version",
    "headers", "extra_headers", "extra_body", "mock_response", "mock_latency",
})


async def _checked(
    ready: Callable[[], _P | Awaitable[_P]], execute: Callable[[_P], Awaitable[_R]]
) -> _R:
    """Prepare (checks, routing, reading files), then execute; a refusal before any traffic
    is still a checkpoint, and so is the start of every call that goes ahead."""
    try:
        prepared = ready()
        if inspect.isawaitable(prepared):
            prepared = await prepared
    except (errors.APIError, RuntimeError) as exc:
        failure: BaseException = exc
    else:
        await trio.lowlevel.checkpoint()
        return await execute(prepared)
    await trio.lowlevel.checkpoint()
    raise failure


def _client(methods: EndpointMethods) -> Client:
    return cast("Client", methods)  # the mixin is only ever part of a Client


class EndpointMethods:
    """The Client's non-chat calls (a mixin: :class:`~trillm.Client` inherits them)."""

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
        options = {k: v for k, v in locals().items() if k in _ENDPOINT_OPTIONS}
        client = _client(self)

        def ready() -> list[_Call]:
            return prepare(client, model, input, params, options=options)

        return await _checked(ready, functools.partial(run, client))

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
        options = {k: v for k, v in locals().items() if k in _ENDPOINT_OPTIONS}
        client = _client(self)

        def ready() -> _Call:
            return prepare_image(client, model, prompt, params, options=options)

        return await _checked(ready, client._send)

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
        options = {k: v for k, v in locals().items() if k in _ENDPOINT_OPTIONS}
        client = _client(self)

        async def ready() -> _Call:
            loaded = await load_file(file)  # read whole before the first attempt
            return prepare_transcription(client, model, loaded, params, options=options)

        return await _checked(ready, client._send)

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
        options = {k: v for k, v in locals().items() if k in _ENDPOINT_OPTIONS}
        client = _client(self)

        def ready() -> _Call:
            return prepare_speech(client, model, input, params, options=options, stream=stream)

        return await _checked(ready, client._send)
