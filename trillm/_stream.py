"""``Stream``: a streamed answer as an async generator *class* and async context manager.

It is a class rather than an ``async def ... yield`` function so that no cancel
scope is ever open across a ``yield`` (PATTERNS.md, pitfall 1): every scope
(the idle timeout, the stream-wide deadline) opens and closes inside one
``__anext__`` call.  The response is closed on exhaustion, on error, on
``aclose()``, on leaving ``async with``, and when the caller is cancelled while
waiting for the next chunk.  A stream garbage-collected while open emits a
``ResourceWarning`` and closes its response (and gives back its concurrency
slot) from a system task of the run it was opened in.

Where chunks come from is a :class:`ChunkSource`: an HTTP response fed through
the SSE decoder and the provider's parser, or the mock provider's script.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from collections import deque
from collections.abc import AsyncGenerator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, NoReturn, Protocol

import trio

from . import errors
from .accumulate import stream_chunk_builder
from .sse import SSEDecoder

if TYPE_CHECKING:
    from ._transport import ResponseStream
    from .providers.base import StreamParser
    from .types import ModelResponse, StreamChunk

__all__ = ["ChunkSource", "HTTPChunkSource", "ScriptedChunkSource", "Stream"]

_CLOSE_TIMEOUT = 5.0  # seconds a shielded close may take before it is abandoned


class ChunkSource(Protocol):
    """Fills a queue of chunks; I/O happens here, parsing in the provider."""

    headers: dict[str, str]

    async def fill(self, pending: deque[StreamChunk]) -> bool:
        """Add at least zero chunks to *pending*; return False once the source is exhausted."""
        ...

    async def aclose(self) -> None:
        """Release the underlying response; idempotent and safe under cancellation."""
        ...


class HTTPChunkSource:
    """Chunks parsed from a streaming HTTP response (SSE framing)."""

    __slots__ = ("_decoder", "_ended", "_model", "_parser", "_provider", "_response", "headers")

    def __init__(
        self, response: ResponseStream, parser: StreamParser, *, provider: str, model: str,
        headers: dict[str, str],
    ) -> None:
        self._response = response
        self._parser = parser
        self._decoder = SSEDecoder()
        self._provider = provider
        self._model = model
        self._ended = False
        self.headers = headers

    async def fill(self, pending: deque[StreamChunk]) -> bool:
        if self._ended:
            return False
        try:
            data = await self._response.receive_some()
        except errors.APIConnectionError as exc:
            raise errors.StreamError(
                f"the connection broke in the middle of the stream: {exc.message}",
                provider=self._provider, model=self._model,
            ) from exc
        feed = self._parser.feed
        if data:
            for event in self._decoder.feed(data):
                chunk = feed(event)
                if chunk is not None:
                    pending.append(chunk)
            return True
        # End of the body: a complete trailing event still counts; a partial one does not.
        for event in self._decoder.close():
            chunk = feed(event)
            if chunk is not None:
                pending.append(chunk)
        self._ended = True
        if self._decoder.in_event or not self._parser.done:
            raise errors.StreamError(
                "the stream ended before the provider's end marker: the answer is truncated",
                provider=self._provider, model=self._model,
            )
        return bool(pending)

    async def aclose(self) -> None:
        await self._response.aclose()


class ScriptedChunkSource:
    """Chunks known in advance (the mock provider), each after an optional delay."""

    __slots__ = ("_chunks", "_delay", "headers")

    def __init__(self, chunks: tuple[StreamChunk, ...], delay: float) -> None:
        self._chunks = deque(chunks)
        self._delay = delay
        self.headers: dict[str, str] = {}

    async def fill(self, pending: deque[StreamChunk]) -> bool:
        if not self._chunks:
            return False
        if self._delay > 0:
            await trio.sleep(self._delay)
        pending.append(self._chunks.popleft())
        return True

    async def aclose(self) -> None:
        self._chunks.clear()


class _Closer:
    """What closing a stream takes, held apart so a finalizer need not keep the Stream."""

    __slots__ = ("on_close", "source")

    def __init__(self, source: ChunkSource, on_close: Callable[[], None] | None) -> None:
        self.source = source
        self.on_close = on_close

    async def close(self) -> None:
        on_close, self.on_close = self.on_close, None
        try:
            if on_close is not None:
                on_close()  # give back the concurrency slot first: it is synchronous
        finally:
            await self.source.aclose()


class Stream(AsyncGenerator["StreamChunk", None]):
    """A streamed chat answer: ``async for chunk in stream`` yields :class:`StreamChunk`.

    Use it as ``async with client.stream(...) as stream:`` (the always-safe
    form), or ``async with await client.acompletion(..., stream=True) as s:``.
    ``await stream.final_response()`` reads the rest and returns the whole
    answer as a :class:`ModelResponse`.  Plain ``for`` raises a ``TypeError``:
    use ``async for`` (or the sync API's ``completion(stream=True)``).
    """

    __slots__ = (
        "__weakref__",
        "_closed",
        "_closer",
        "_deadline_at",
        "_idle_timeout",
        "_pending",
        "_received",
        "_token",
        "model",
        "provider",
    )

    def __init__(
        self,
        source: ChunkSource,
        *,
        provider: str,
        model: str,
        idle_timeout: float = math.inf,
        deadline_at: float = math.inf,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self._closer = _Closer(source, on_close)
        self._idle_timeout = idle_timeout
        self._deadline_at = deadline_at
        self._pending: deque[StreamChunk] = deque()
        self._received: list[StreamChunk] = []
        self._closed = False
        self._token = trio.lowlevel.current_trio_token()

    @property
    def headers(self) -> dict[str, str]:
        """The redacted response headers."""
        return self._closer.source.headers

    @property
    def closed(self) -> bool:
        """True once the response was released."""
        return self._closed

    # -------------------------------------------------------------- iteration

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> StreamChunk:
        # One checkpoint per chunk, *before* taking anything, so a cancellation never
        # loses a chunk (the take below does not await).
        await trio.lowlevel.checkpoint()
        pending = self._pending
        if not pending:
            if self._closed:
                raise StopAsyncIteration
            await self._fill()
        chunk = pending.popleft()
        self._received.append(chunk)
        return chunk

    async def _fill(self) -> None:
        """Read until a chunk is pending, under the idle timeout and the deadline."""
        pending = self._pending
        until = self._deadline_at
        if self._idle_timeout != math.inf:
            until = min(until, trio.current_time() + self._idle_timeout)
        fill = self._closer.source.fill
        failed = True
        try:
            if until == math.inf:  # no limit: no cancel scope to pay for on each read
                while not pending and await fill(pending):
                    pass
                timed_out = False
            else:
                with trio.move_on_at(until) as scope:
                    while not pending and await fill(pending):
                        pass
                timed_out = scope.cancelled_caught
            failed = False
        finally:
            if failed:  # an error or the caller's cancellation: release the response now
                await self._close_now()  # noqa: ASYNC102 - shielded inside, with a time limit
        if timed_out:
            await self._close_now()
            raise self._timeout()
        if not pending:
            await self._close_now()
            raise StopAsyncIteration

    def _timeout(self) -> errors.Timeout:
        if trio.current_time() >= self._deadline_at:
            msg = "the stream's deadline passed before it ended"
        else:
            msg = f"no stream event within idle_timeout={self._idle_timeout:g} s"
        return errors.Timeout(msg, provider=self.provider, model=self.model)

    async def asend(self, value: None) -> StreamChunk:
        """Generator protocol: only ``None`` can be sent."""
        if value is not None:
            raise TypeError("a trillm Stream can only be sent None")
        return await self.__anext__()

    async def athrow(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
    ) -> NoReturn:
        """Generator protocol: close the stream, then raise the exception here."""
        await self.aclose()
        if isinstance(typ, BaseException):
            raise typ.with_traceback(tb) if tb is not None else typ
        exc = val if isinstance(val, BaseException) else typ() if val is None else typ(val)
        raise exc.with_traceback(tb) if tb is not None else exc

    async def aclose(self) -> None:
        """Close the response and give back the concurrency slot (idempotent)."""
        await self._close_now()
        await trio.lowlevel.checkpoint()

    async def _close_now(self) -> None:
        """Release everything at once; runs even when the caller is being cancelled."""
        if not self._closed:
            self._closed = True
            self._pending.clear()
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await self._closer.close()

    # -------------------------------------------------------------- whole answer

    async def final_response(self) -> ModelResponse:
        """Read what is left and return the whole answer as the plain call would."""
        async for _ in self:
            pass
        return stream_chunk_builder(self._received)

    # -------------------------------------------------------------- context manager

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close_now()  # noqa: ASYNC102 - shielded inside, with a time limit

    def __iter__(self) -> NoReturn:
        raise TypeError(
            "a trillm Stream is asynchronous: iterate it with `async for chunk in stream` "
            "(or use trillm.completion(..., stream=True) outside async code)"
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<trillm.Stream {self.provider}/{self.model} {state}>"

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        warnings.warn(
            f"{self!r} was garbage-collected while open; use `async with` so it closes at once",
            ResourceWarning,
            stacklevel=1,
            source=self,
        )
        closer = self._closer
        with contextlib.suppress(trio.RunFinishedError):  # the run is over: nothing to close
            self._token.run_sync_soon(_spawn_close, closer)


def _spawn_close(closer: _Closer) -> None:
    trio.lowlevel.spawn_system_task(_close_quietly, closer, name="trillm-stream-finalizer")


async def _close_quietly(closer: _Closer) -> None:
    # A system task that raises crashes the run (TrioInternalError): never let it.
    try:
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await closer.close()
    except Exception:
        logging.getLogger("trillm").exception("closing a garbage-collected stream failed")
