"""The OpenAI SDK's call shape over a trillm :class:`~trillm.Client`: ``AsyncOpenAI``, ``OpenAI``.

Code written against the official SDK runs with its import changed::

    from trillm import AsyncOpenAI          # was: from openai import AsyncOpenAI

    client = AsyncOpenAI()
    r = await client.chat.completions.create(model="gpt-4o-mini", messages=[...])
    async for chunk in await client.chat.completions.create(..., stream=True): ...

under asyncio (through the bridge to trillm's background trio run) and under
trio alike.  Each facade owns one Client, so its ``max_concurrency`` and
connection pool hold across every call made through it.  ``async with`` opens
it and closes it; without ``async with`` the first call opens it, in the trio
run it is made in (closed when that run ends) or, under asyncio, in the
background run (closed by ``await client.close()`` or at exit).

With ``base_url=`` every model goes, named as given, to that OpenAI-compatible
server; without it trillm's routing applies (``claude-*`` reaches Anthropic,
``mock/...`` the offline mock, and ``OPENAI_BASE_URL`` moves OpenAI's models
only).  The answers are trillm's records (``r.choices[0].message.content``,
``r["usage"]``), not the SDK's pydantic models.  Structured output:
``chat.completions.parse(..., response_format=Model)`` gives an answer whose
``choices[0].message.parsed`` is the validated instance, as the SDK's does.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

import trio

from . import _sync
from ._stream import AudioStream
from .client import Client

if TYPE_CHECKING:
    import os

    from ._files import SpeechResponse
    from ._response_stream import ResponseStream
    from ._stream import Stream
    from ._sync import SyncResponseStream, SyncStream
    from .response_types import Response
    from .types import (
        EmbeddingResponse,
        ImageResponse,
        ModelInfo,
        ModelList,
        ModelResponse,
        TranscriptionResponse,
    )

__all__ = ["AsyncOpenAI", "OpenAI", "SyncSpeechResponse"]

T = TypeVar("T")
Messages = Sequence[Mapping[str, Any]]

_CLOSE_TIMEOUT = 5.0  # seconds closing the Client may take when its run ends
_TEXT_FORMATS = ("text", "srt", "vtt")  # transcriptions the SDK returns as a plain str


def _params(params: dict[str, Any]) -> dict[str, Any]:
    if "extra_query" in params:
        raise TypeError("extra_query= is not supported by trillm's AsyncOpenAI/OpenAI facade")
    return params


def _upload(file: Any) -> Any:
    """The SDK's ``(filename, bytes[, content type])`` form as a named file object."""
    if isinstance(file, tuple) and len(file) >= 2 and isinstance(file[1], bytes | bytearray):
        named = io.BytesIO(bytes(file[1]))
        named.name = str(file[0])
        return named
    return file


class AsyncOpenAI:
    """``AsyncOpenAI(api_key=None, base_url=None, timeout=600, max_retries=2,
    default_headers=None, max_concurrency=None)``: the SDK's async client over one Client.

    ``.chat.completions.create`` (and ``.parse``), ``.embeddings.create``,
    ``.images.generate``, ``.audio.transcriptions.create``, ``.audio.speech.create``,
    ``.models.list()``, ``.responses.create`` (OpenAI's Responses API); ``async with`` it,
    or ``await client.close()`` when done.  ``timeout`` bounds one attempt, as in the SDK;
    every other keyword of :class:`~trillm.Client` calls (``deadline=``, ``fallbacks=``,
    ``mock_response=``, ...) passes through ``create``.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = 600.0,
        max_retries: int = 2,
        default_headers: Mapping[str, str] | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self.base_url = base_url
        self._inner = Client(api_key=api_key, api_base=base_url, timeout=timeout,
                             max_retries=max_retries, headers=default_headers,
                             max_concurrency=max_concurrency)
        self._run: trio.lowlevel.TrioToken | None = None  # the run the Client is open in
        self._closer: trio.CancelScope | None = None
        self.chat = _AsyncChat(self)
        self.embeddings = _AsyncEmbeddings(self)
        self.images = _AsyncImages(self)
        self.audio = _AsyncAudio(self)
        self.models = _AsyncModels(self)
        self.responses = _AsyncResponses(self)

    def __repr__(self) -> str:
        where = f" base_url={self.base_url!r}" if self.base_url else ""
        return f"<trillm.AsyncOpenAI{where} {'open' if self._run else 'not open'}>"

    def _model(self, model: str) -> str:
        """With ``base_url``, the name goes whole to that server (``openai/`` routes it there
        and is stripped); without it, trillm's routing applies."""
        if self.base_url and isinstance(model, str) and model:
            return f"openai/{model}"
        return model

    # -------------------------------------------------------------- lifetime

    async def _client(self) -> Client:
        """The Client, opened on first use: in this trio run, or (under asyncio) in the
        background run the bridge sends the calls to."""
        if trio.lowlevel.in_trio_run():
            self._open_here()
        elif self._run is None or self._run is not _sync.background_run().token:
            from ._bridge import call_in_trio

            await call_in_trio(self._open_async)
        return self._inner

    async def _open_async(self) -> None:
        self._open_here()
        await trio.lowlevel.checkpoint()

    def _open_here(self) -> None:
        """Open the Client in the current trio run, once (no checkpoint: concurrent first
        calls see it open), and close it when the run ends unless closed before."""
        token = trio.lowlevel.current_trio_token()
        if self._run is token:
            return
        if self._run is not None:
            raise RuntimeError(
                "this AsyncOpenAI is open in another trio run (or under asyncio): use one per "
                "run, or `await client.close()` where it was used first"
            )
        self._inner.open()
        self._run, self._closer = token, trio.CancelScope()
        trio.lowlevel.spawn_system_task(self._close_at_exit, token, self._closer,
                                        name="trillm-openai-facade")

    async def _close_at_exit(self, token: trio.lowlevel.TrioToken,
                             scope: trio.CancelScope) -> None:
        try:
            with scope:  # cancelled by close(): nothing left to do
                await trio.sleep_forever()
        finally:
            if self._run is token:  # the run ends with the Client open
                self._run = self._closer = None
                try:  # a system task that raises would crash the run: log instead
                    with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                        await self._inner.aclose()
                except Exception:
                    logging.getLogger("trillm").exception("closing an AsyncOpenAI failed")

    async def _close_here(self) -> None:
        if self._run is not None and self._run is not trio.lowlevel.current_trio_token():
            raise RuntimeError("this AsyncOpenAI is open in another trio run: close it there")
        if self._closer is not None:
            self._closer.cancel()
        self._run = self._closer = None
        await self._inner.aclose()

    async def close(self) -> None:
        """Close the connection pool (a later call opens it again)."""
        if trio.lowlevel.in_trio_run():
            await self._close_here()
        elif self._run is not None:
            from ._bridge import call_in_trio

            await call_in_trio(self._close_here)

    async def __aenter__(self) -> AsyncOpenAI:
        await self._client()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()  # noqa: ASYNC102 - the Client's close is shielded and time-limited


class _AsyncResource:
    __slots__ = ("_owner",)

    def __init__(self, owner: AsyncOpenAI) -> None:
        self._owner = owner


class _AsyncCompletions(_AsyncResource):
    """``client.chat.completions``: ``create`` (and, with structured output, ``parse``)."""

    __slots__ = ()

    @overload
    async def create(self, *, model: str, messages: Messages, stream: Literal[False] = False,
                     **params: Any) -> ModelResponse: ...

    @overload
    async def create(self, *, model: str, messages: Messages, stream: Literal[True],
                     **params: Any) -> Stream: ...

    async def create(self, *, model: str, messages: Messages, stream: bool = False,
                     **params: Any) -> ModelResponse | Stream:
        """A :class:`~trillm.ModelResponse`, or with ``stream=True`` a stream to ``async for``
        over (returned once the headers arrived); keywords as :meth:`Client.acompletion`."""
        owner = self._owner
        client = await owner._client()
        return await client.acompletion(  # type: ignore[call-overload,no-any-return]
            owner._model(model), messages, stream=stream, **_params(params))

    async def parse(self, *, model: str, messages: Messages, response_format: Any,
                    **params: Any) -> ModelResponse:
        """The SDK's ``parse``: ``response_format=Model`` (a pydantic model class, or OpenAI's
        dict forms) and ``choices[0].message.parsed`` holds the validated instance; the
        structured-output errors as :meth:`Client.acompletion` raises them."""
        if params.get("stream"):
            raise TypeError("chat.completions.parse() does not stream: use create(stream=True, "
                            "response_format=...) and `await stream.final_response()`")
        params.pop("stream", None)
        return await self.create(model=model, messages=messages, stream=False,
                                 response_format=response_format, **params)


class _AsyncChat(_AsyncResource):
    __slots__ = ("completions",)

    def __init__(self, owner: AsyncOpenAI) -> None:
        super().__init__(owner)
        self.completions = _AsyncCompletions(owner)


class _AsyncEmbeddings(_AsyncResource):
    __slots__ = ()

    async def create(self, *, model: str, input: str | Sequence[str],
                     **params: Any) -> EmbeddingResponse:
        """Vectors for *input* (``data[i].embedding``); keywords as :meth:`Client.aembedding`."""
        client = await self._owner._client()
        return await client.aembedding(self._owner._model(model), input, **_params(params))


class _AsyncImages(_AsyncResource):
    __slots__ = ()

    async def generate(self, *, prompt: str, model: str = "dall-e-2",
                       **params: Any) -> ImageResponse:
        """Images for *prompt* (``data[i].url`` or ``.b64_json``); the API's default model."""
        client = await self._owner._client()
        return await client.aimage_generation(self._owner._model(model), prompt,
                                              **_params(params))


class _AsyncTranscriptions(_AsyncResource):
    __slots__ = ()

    async def create(self, *, model: str, file: Any,
                     **params: Any) -> TranscriptionResponse | str:
        """The transcription of *file* (a path, bytes, a binary file, or the SDK's
        ``(name, bytes)``); a plain ``str`` for ``response_format`` text, srt or vtt, as the
        SDK gives."""
        client = await self._owner._client()
        r = await client.atranscription(self._owner._model(model), _upload(file),
                                        **_params(params))
        return r.text if params.get("response_format") in _TEXT_FORMATS else r


class _AsyncSpeech(_AsyncResource):
    __slots__ = ()

    async def create(self, *, model: str, input: str, voice: str,
                     **params: Any) -> SpeechResponse | AudioStream:
        """Speech for *input*: ``.content`` (bytes); ``stream=True`` gives an audio stream."""
        client = await self._owner._client()
        return await client.aspeech(self._owner._model(model), input, voice, **_params(params))


class _AsyncAudio(_AsyncResource):
    __slots__ = ("speech", "transcriptions")

    def __init__(self, owner: AsyncOpenAI) -> None:
        super().__init__(owner)
        self.transcriptions = _AsyncTranscriptions(owner)
        self.speech = _AsyncSpeech(owner)


class _AsyncResponses(_AsyncResource):
    """``client.responses``: ``create`` and ``parse`` (``text_format=``)."""

    __slots__ = ()

    @overload
    async def create(self, *, model: str, input: Any, stream: Literal[False] = False,
                     **params: Any) -> Response: ...

    @overload
    async def create(self, *, model: str, input: Any, stream: Literal[True],
                     **params: Any) -> ResponseStream: ...

    async def create(self, *, model: str, input: Any, stream: bool = False,
                     **params: Any) -> Response | ResponseStream:
        """A :class:`~trillm.Response`, or with ``stream=True`` a stream of events to
        ``async for`` over (returned once the headers arrived); keywords as
        :meth:`Client.aresponses`."""
        owner = self._owner
        client = await owner._client()
        return await client.aresponses(  # type: ignore[call-overload,no-any-return]
            owner._model(model), input, stream=stream, **_params(params))

    async def parse(self, *, model: str, input: Any, text_format: Any,
                    **params: Any) -> Response:
        """The SDK's ``responses.parse``: ``text_format=Model`` (a pydantic model class) and
        ``output_parsed`` holds the validated instance; the structured-output errors as
        :meth:`Client.aresponses` raises them."""
        if params.pop("stream", False):
            raise TypeError("responses.parse() does not stream: use create(stream=True, "
                            "text_format=...) and `await stream.final_response()`")
        return cast("Response", await self.create(model=model, input=input,
                                                  text_format=text_format, **params))


class _AsyncModels(_AsyncResource):
    __slots__ = ()

    def list(self, **params: Any) -> ModelsPage:
        """The server's models: ``(await client.models.list()).data``, or ``async for``
        over it.  ``provider="mock"`` (trillm's own keyword) lists the mock's."""
        return ModelsPage(self._owner, params)


class ModelsPage:
    """What ``models.list()`` gives: ``await`` it for a :class:`~trillm.types.ModelList`
    (``.data``), or ``async for model in client.models.list():``, as with the SDK's page."""

    __slots__ = ("_items", "_owner", "_params")

    def __init__(self, owner: AsyncOpenAI, params: dict[str, Any]) -> None:
        self._owner, self._params = owner, params
        self._items: Iterator[ModelInfo] | None = None

    async def _fetch(self) -> ModelList:
        owner, params = self._owner, dict(self._params)
        provider = params.pop("provider", "openai")
        client = await owner._client()
        return await client.alist_models(provider, **_params(params))

    def __await__(self) -> Generator[Any, None, ModelList]:
        return self._fetch().__await__()

    def __aiter__(self) -> ModelsPage:
        return self

    async def __anext__(self) -> ModelInfo:
        if self._items is None:
            self._items = iter((await self._fetch()).data)
        for item in self._items:
            return item
        raise StopAsyncIteration


# ------------------------------------------------------------------ the sync twin


class SyncSpeechResponse:
    """Speech for sync code: ``.content``, ``.read()`` and ``.write_to_file(path)``."""

    __slots__ = ("content", "response_format")

    def __init__(self, content: bytes, response_format: str) -> None:
        self.content, self.response_format = content, response_format

    def read(self) -> bytes:
        """The audio bytes."""
        return self.content

    def write_to_file(self, path: str | os.PathLike[str]) -> None:
        """Write the audio to *path*."""
        with open(path, "wb") as f:
            f.write(self.content)


class OpenAI:
    """``OpenAI(...)``: the SDK's sync client, with :class:`AsyncOpenAI`'s keywords.

    Each call runs on trillm's background trio run (the sync API's), so it works
    anywhere except inside a running trio loop; ``stream=True`` gives a
    :class:`~trillm.SyncStream` to iterate with ``for``.  ``with`` it, or ``close()``.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = 600.0,
        max_retries: int = 2,
        default_headers: Mapping[str, str] | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self._async = AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout,
                                  max_retries=max_retries, default_headers=default_headers,
                                  max_concurrency=max_concurrency)
        self.base_url = self._async.base_url
        self.chat = _SyncChat(self)
        self.embeddings = _SyncEmbeddings(self)
        self.images = _SyncImages(self)
        self.audio = _SyncAudio(self)
        self.models = _SyncModels(self)
        self.responses = _SyncResponses(self)

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncOpenAI", "OpenAI")

    def _run(self, what: str) -> _sync.BackgroundRun:
        """The background run the calls go to (refused inside a trio run: it would block)."""
        if trio.lowlevel.in_trio_run():
            raise RuntimeError(
                f"trillm.OpenAI().{what}() is synchronous and would block the running trio "
                "loop: inside async code use trillm.AsyncOpenAI and await it"
            )
        return _sync.background_run()

    def _wait(self, what: str, afn: Callable[[], Awaitable[T]]) -> T:
        return self._run(what).call(afn)

    def close(self) -> None:
        """Close the connection pool (a later call opens it again)."""
        if self._async._run is not None:
            self._wait("close", self._async.close)

    def __enter__(self) -> OpenAI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _SyncResource:
    __slots__ = ("_owner",)

    def __init__(self, owner: OpenAI) -> None:
        self._owner = owner


class _SyncCompletions(_SyncResource):
    __slots__ = ()

    @overload
    def create(self, *, model: str, messages: Messages, stream: Literal[False] = False,
               **params: Any) -> ModelResponse: ...

    @overload
    def create(self, *, model: str, messages: Messages, stream: Literal[True],
               **params: Any) -> SyncStream: ...

    def create(self, *, model: str, messages: Messages, stream: bool = False,
               **params: Any) -> ModelResponse | SyncStream:
        """A :class:`~trillm.ModelResponse`, or with ``stream=True`` a ``SyncStream``."""
        facade = self._owner._async.chat.completions
        if not stream:
            return cast("ModelResponse", self._owner._wait(
                "chat.completions.create",
                lambda: facade.create(model=model, messages=messages, **params)))
        run = self._owner._run("chat.completions.create")

        async def open_() -> Stream:
            return run.track(await facade.create(model=model, messages=messages, stream=True,
                                                 **params))

        return _sync.SyncStream(run, run.call(open_))

    def parse(self, *, model: str, messages: Messages, response_format: Any,
              **params: Any) -> ModelResponse:
        """The SDK's ``parse``: ``choices[0].message.parsed`` holds the validated instance."""
        facade = self._owner._async.chat.completions
        return self._owner._wait(
            "chat.completions.parse",
            lambda: facade.parse(model=model, messages=messages,
                                 response_format=response_format, **params))


class _SyncChat(_SyncResource):
    __slots__ = ("completions",)

    def __init__(self, owner: OpenAI) -> None:
        super().__init__(owner)
        self.completions = _SyncCompletions(owner)


class _SyncEmbeddings(_SyncResource):
    __slots__ = ()

    def create(self, *, model: str, input: str | Sequence[str],
               **params: Any) -> EmbeddingResponse:
        """Vectors for *input* (``data[i].embedding``)."""
        facade = self._owner._async.embeddings
        return self._owner._wait("embeddings.create", lambda: facade.create(
            model=model, input=input, **params))


class _SyncImages(_SyncResource):
    __slots__ = ()

    def generate(self, *, prompt: str, model: str = "dall-e-2", **params: Any) -> ImageResponse:
        """Images for *prompt*."""
        facade = self._owner._async.images
        return self._owner._wait("images.generate", lambda: facade.generate(
            prompt=prompt, model=model, **params))


class _SyncTranscriptions(_SyncResource):
    __slots__ = ()

    def create(self, *, model: str, file: Any, **params: Any) -> TranscriptionResponse | str:
        """The transcription of *file* (a ``str`` for text, srt or vtt)."""
        facade = self._owner._async.audio.transcriptions
        return self._owner._wait("audio.transcriptions.create", lambda: facade.create(
            model=model, file=file, **params))


class _SyncSpeech(_SyncResource):
    __slots__ = ()

    def create(self, *, model: str, input: str, voice: str,
               **params: Any) -> SyncSpeechResponse:
        """Speech for *input*, read whole: ``.content``, ``.write_to_file(path)``."""
        if params.get("stream"):
            raise TypeError("the sync speech reads the whole audio: drop stream=True")
        facade = self._owner._async.audio.speech
        r = self._owner._wait("audio.speech.create", lambda: facade.create(
            model=model, input=input, voice=voice, **params))
        assert not isinstance(r, AudioStream)
        return SyncSpeechResponse(r.content, r.response_format)


class _SyncAudio(_SyncResource):
    __slots__ = ("speech", "transcriptions")

    def __init__(self, owner: OpenAI) -> None:
        super().__init__(owner)
        self.transcriptions = _SyncTranscriptions(owner)
        self.speech = _SyncSpeech(owner)


class _SyncResponses(_SyncResource):
    __slots__ = ()

    def parse(self, *, model: str, input: Any, text_format: Any, **params: Any) -> Response:
        """The SDK's ``responses.parse``: ``output_parsed`` holds the validated instance."""
        facade = self._owner._async.responses
        return self._owner._wait(
            "responses.parse",
            lambda: facade.parse(model=model, input=input, text_format=text_format, **params))

    @overload
    def create(self, *, model: str, input: Any, stream: Literal[False] = False,
               **params: Any) -> Response: ...

    @overload
    def create(self, *, model: str, input: Any, stream: Literal[True],
               **params: Any) -> SyncResponseStream: ...

    def create(self, *, model: str, input: Any, stream: bool = False,
               **params: Any) -> Response | SyncResponseStream:
        """A :class:`~trillm.Response`, or with ``stream=True`` a ``SyncResponseStream``."""
        facade = self._owner._async.responses
        if not stream:
            return cast("Response", self._owner._wait(
                "responses.create", lambda: facade.create(model=model, input=input, **params)))
        run = self._owner._run("responses.create")

        async def open_() -> ResponseStream:
            return run.track(await facade.create(model=model, input=input, stream=True,
                                                 **params))

        return _sync.SyncResponseStream(run, run.call(open_))


class _SyncModels(_SyncResource):
    __slots__ = ()

    def list(self, **params: Any) -> ModelList:
        """The server's models (``.data``); ``provider="mock"`` lists the mock's."""
        page = self._owner._async.models.list(**params)

        async def fetch() -> ModelList:
            return await page

        return self._owner._wait("models.list", fetch)
