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
the SSE decoder and the provider's parser (the mock's answers too), its raw
bytes (streamed audio), or a whole answer turned into chunks.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import warnings
from collections import deque
from collections.abc import AsyncGenerator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar, cast

import attrs
import trio

from . import errors
from .accumulate import ChunkAccumulator
from .sse import SSEDecoder, SSEEvent
from .structured import parse_response

if TYPE_CHECKING:
    from ._stream_body import StreamingBody
    from ._wire import StreamParser
    from .types import ModelResponse, StreamChunk

__all__ = [
    "AudioStream", "BytesSource", "ChunkSource", "ChunkStream", "HTTPChunkSource",
    "ScriptedChunkSource", "Stream",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
_Answer = TypeVar("_Answer", bound=attrs.AttrsInstance)  # ModelResponse, Response

_CLOSE_TIMEOUT = 5.0  # seconds a shielded close may take before it is abandoned

#: The longest a stream's consumer runs on chunks already received before other tasks
#: get to run (seconds of real time: a scheduling quantum, not a deadline, so it is
#: read from ``time.perf_counter`` and not from trio's clock, which a MockClock stops).
#: trio may run a task twice in a row between two turns of another (it varies the
#: order within a batch), so another task waits at most about twice this: under 1 ms.
YIELD_QUANTUM = 0.0002

#: The most bytes of one read decoded at once (about 25 OpenAI chunk events, 50 µs).
FEED_SLICE = 8 * 1024

_now = time.perf_counter
_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_cancel_shielded_checkpoint = trio.lowlevel.cancel_shielded_checkpoint


class ChunkSource(Protocol[T_co]):
    """Where chunks come from: I/O in :meth:`fill`, parsing (lazily) in :meth:`take`.

    Parsing happens one chunk at a time as the caller asks for it, so a read
    that brings hundreds of events keeps them as strings until then, and not as
    hundreds of records for the garbage collector to scan.
    """

    headers: dict[str, str]

    def take(self) -> T_co | None:
        """The next chunk from what was received already, or None when more I/O is needed."""
        ...

    async def fill(self) -> bool:
        """Receive more; return False once the source is exhausted (and ended cleanly)."""
        ...

    async def aclose(self) -> None:
        """Release the underlying response; idempotent and safe under cancellation: it
        is awaited by a task that may be cancelled, with no cancel scope around it, so
        whatever it awaits is shielded and bounded in time (as ``StreamingBody.aclose``)."""
        ...


class HTTPChunkSource:
    """Chunks parsed from a streaming HTTP response (SSE framing).

    A read is decoded a slice of at most ``FEED_SLICE`` bytes at a time, as chunks
    are asked for, so a big read (a whole buffered answer, as an in-memory
    transport gives) never holds the consumer's task for longer than one slice.
    """

    __slots__ = ("_at", "_decode", "_decoder", "_ended", "_events", "_feed", "_feed_data",
                 "_model", "_parser", "_pending", "_provider", "_response", "headers")

    def __init__(
        self, response: StreamingBody, parser: StreamParser, *, provider: str, model: str,
        headers: dict[str, str],
    ) -> None:
        self._response = response
        self._parser = parser
        self._decoder = decoder = SSEDecoder()
        feed = self._feed = parser.feed
        # A parser with feed_data (StreamParser) is handed a plain message event's data
        # string alone: the decoder builds no SSEEvent for it.
        feed_data: Callable[[str], StreamChunk | None] | None = getattr(
            parser, "feed_data", None)
        if feed_data is None:
            self._decode: Callable[[bytes], list[str | SSEEvent]] = cast(
                "Callable[[bytes], list[str | SSEEvent]]", decoder.feed)

            def feed_data(data: str) -> StreamChunk | None:  # unused: feed() gives no str
                return feed(SSEEvent(data))
        else:
            self._decode = decoder.feed_plain
        self._feed_data = feed_data
        self._events: deque[str | SSEEvent] = deque()
        self._pending = b""  # received, not yet decoded from offset _at on
        self._at = 0
        self._provider = provider
        self._model = model
        self._ended = False
        self.headers = headers

    def take(self) -> StreamChunk | None:
        events = self._events
        while True:
            while events:
                event = events.popleft()
                chunk = self._feed_data(event) if isinstance(event, str) else self._feed(event)
                if chunk is not None:
                    return chunk
            if not self._pending:
                return None
            self._decode_slice()

    def _decode_slice(self) -> None:
        data, at = self._pending, self._at
        if at or len(data) > FEED_SLICE:  # slices, copying only themselves
            end = at + FEED_SLICE
            if end < len(data):
                # Cut after the slice's last blank line: whole events for the decoder's
                # fast path (any cut decodes the same; without a blank line, at the size).
                cut = data.rfind(b"\n\n", at, end)
                if cut > at:
                    end = cut + 2
                self._at = end
            else:
                self._pending, self._at = b"", 0
            data = data[at:end]
        else:
            self._pending = b""
        try:
            self._events.extend(self._decode(data))
        except errors.StreamError as exc:  # an event past the decoder's size limit
            exc.provider, exc.model = self._provider, self._model
            raise

    async def fill(self) -> bool:
        if self._ended:
            # Everything received was parsed: a partial event or no end marker is truncation.
            if self._decoder.in_event or not self._parser.done:
                raise errors.StreamError(
                    "the stream ended before the provider's end marker: the answer is truncated",
                    provider=self._provider, model=self._model,
                )
            return False
        try:
            data = await self._response.receive_some()
        except errors.APIConnectionError as exc:
            # The answer was whole (its finish reason came): a dropped connection loses
            # nothing.  An end marker alone is not enough: llama.cpp's server, cut off
            # mid-answer, sends [DONE] without a finish reason and then breaks off.
            if self._parser.finished and not self._decoder.in_event:
                self._ended = True
                return True
            raise errors.StreamError(
                f"the connection broke in the middle of the stream: {exc.message}",
                provider=self._provider, model=self._model,
            ) from exc
        if data:
            self._pending = data  # take() found nothing pending: decoded as chunks are asked for
        else:  # the end of the body: an event still without its blank line is incomplete
            self._ended = True
        return True

    async def aclose(self) -> None:
        self._events.clear()
        self._pending, self._at = b"", 0
        await self._response.aclose()


class ScriptedChunkSource(Generic[T]):
    """Chunks known in advance (a whole answer to ``stream=True``, turned into chunks)."""

    __slots__ = ("_chunks", "headers")

    def __init__(self, chunks: tuple[T, ...], headers: dict[str, str] | None = None) -> None:
        self._chunks = deque(chunks)
        self.headers = {} if headers is None else headers

    def take(self) -> T | None:
        return self._chunks.popleft() if self._chunks else None

    async def fill(self) -> bool:
        return False

    async def aclose(self) -> None:
        self._chunks.clear()


class BytesSource:
    """A response body as it arrives, one read at a time (streamed audio)."""

    __slots__ = ("_ended", "_model", "_pending", "_provider", "_response", "headers")

    def __init__(
        self, response: StreamingBody, *, provider: str, model: str, headers: dict[str, str]
    ) -> None:
        self._response = response
        self._pending: bytes | None = None
        self._ended = False
        self._provider = provider
        self._model = model
        self.headers = headers

    def take(self) -> bytes | None:
        data, self._pending = self._pending, None
        return data

    async def fill(self) -> bool:
        if self._ended:
            return False
        try:
            data = await self._response.receive_some()
        except errors.APIConnectionError as exc:
            raise errors.StreamError(
                f"the connection broke in the middle of the download: {exc.message}",
                provider=self._provider, model=self._model,
            ) from exc
        if not data:
            self._ended = True
            return False
        self._pending = data
        return True

    async def aclose(self) -> None:
        self._pending = None
        await self._response.aclose()


_OnEnd = Callable[[BaseException | None, Callable[[], Any] | None], float | None]


class _Closer:
    """What closing a stream takes, held apart so a finalizer need not keep the Stream.

    ``on_end`` (hooks or prices only) is told how the stream ended once it is closed:
    the error it ended with, or None, and how to build the answer its chunks made; it
    returns what that answer cost (kept in ``cost`` for ``final_response()``).
    """

    __slots__ = ("cost", "on_close", "on_end", "source")

    def __init__(self, source: ChunkSource[Any], on_close: Callable[[], None] | None,
                 on_end: _OnEnd | None = None) -> None:
        self.source = source
        self.on_close = on_close
        self.on_end = on_end
        self.cost: float | None = None

    async def close(self, error: BaseException | None = None,
                    summary: Callable[[], Any] | None = None) -> None:
        on_close, self.on_close = self.on_close, None
        try:
            if on_close is not None:
                on_close()  # give back the concurrency slot first: it is synchronous
        finally:
            try:
                await self.source.aclose()
            finally:
                on_end, self.on_end = self.on_end, None
                if on_end is not None:
                    self.cost = on_end(error, summary)


class _ChunkStream(AsyncGenerator[T, None], Generic[T]):
    """What every trillm stream shares: closing, time limits, and the finalizer."""

    __slots__ = (
        "__weakref__",
        "_closed",
        "_closer",
        "_deadline_at",
        "_first_chunk",
        "_idle_timeout",
        "_on_chunk",
        "_take",
        "_token",
        "_yield_at",
        "model",
        "provider",
    )

    def __init__(
        self,
        source: ChunkSource[T],
        *,
        provider: str,
        model: str,
        idle_timeout: float = math.inf,
        deadline_at: float = math.inf,
        on_close: Callable[[], None] | None = None,
        on_first_chunk: Callable[[], None] | None = None,
        on_end: _OnEnd | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self._closer = _Closer(source, on_close, on_end)
        self._idle_timeout = idle_timeout
        self._deadline_at = deadline_at
        self._take = source.take
        self._first_chunk = on_first_chunk
        self._on_chunk: Callable[[T], object] | None = self._watch(None)
        self._closed = False
        self._token = trio.lowlevel.current_trio_token()
        self._yield_at = 0.0  # when __anext__ next lets other tasks run (perf_counter)

    def _watch(self, on_chunk: Callable[[T], object] | None) -> Callable[[T], object] | None:
        """*on_chunk*, which each chunk is given to; with an ``on_first_chunk`` callback
        (hooks), wrapped to call it once first.  Without one, *on_chunk* as it is."""
        first = self._first_chunk
        if first is None:
            return on_chunk

        def once(chunk: T) -> None:
            self._on_chunk = on_chunk
            self._first_chunk = None
            first()
            if on_chunk is not None:
                on_chunk(chunk)

        return once

    def _summary(self) -> Any:
        """The answer the chunks so far make, for the hooks (None: a stream kind without one)."""
        return None

    def _priced(self, response: _Answer) -> _Answer:
        """*response* (the whole answer) with the ``cost`` the stream's close priced it
        at (``prices=``); as it is without a price, or before the stream closed."""
        cost = self._closer.cost
        if cost is None:
            return response
        return cast("_Answer", attrs.evolve(cast("Any", response), cost=cost))

    @property
    def headers(self) -> dict[str, str]:
        """The redacted response headers."""
        return self._closer.source.headers

    @property
    def closed(self) -> bool:
        """True once the response was released."""
        return self._closed

    # -------------------------------------------------------------- iteration

    def __aiter__(self) -> _ChunkStream[T]:
        return self

    async def __anext__(self) -> T:
        # A cancel point on every chunk, *before* taking anything, so a cancellation never
        # loses a chunk: nothing below can raise Cancelled once a chunk is taken.
        await _checkpoint_if_cancelled()
        try:
            chunk = self._take()
        except BaseException as exc:  # a malformed event or an in-stream error: release, raise
            await self._close_now(exc)  # noqa: ASYNC102 - shielded inside, with a time limit
            raise
        if chunk is None:
            chunk = await self._fill()
        elif _now() >= self._yield_at:
            # A schedule point (never a cancel point: the chunk is already taken) once per
            # quantum, not on every chunk: a full trio checkpoint costs about as much as
            # parsing a chunk.  _fill makes one after every read.
            await _cancel_shielded_checkpoint()
            self._yield_at = _now() + YIELD_QUANTUM
        on_chunk = self._on_chunk
        if on_chunk is not None:
            on_chunk(chunk)
        return chunk

    def take_ready(self) -> T | None:
        """The next chunk if it was received already (no I/O, no checkpoint), else None.

        For handing chunks over in batches (the asyncio bridge); a malformed event
        raises here as it would from ``__anext__``, and the caller then closes the stream.
        """
        if self._closed:
            return None
        chunk = self._take()
        if chunk is not None and self._on_chunk is not None:
            self._on_chunk(chunk)
        return chunk

    async def _fill(self) -> T:
        """Receive until a chunk can be taken, under the idle timeout and the deadline."""
        if self._closed:
            raise StopAsyncIteration
        until = self._deadline_at
        if self._idle_timeout != math.inf:
            until = min(until, trio.current_time() + self._idle_timeout)
        fill, take = self._closer.source.fill, self._take
        chunk = None
        try:
            if until == math.inf:  # no limit: no cancel scope to pay for on each read
                while await fill():
                    chunk = take()
                    if chunk is not None:
                        break
                timed_out = False
            else:
                with trio.move_on_at(until) as scope:
                    while await fill():
                        chunk = take()
                        if chunk is not None:
                            break
                timed_out = scope.cancelled_caught
        except BaseException as exc:  # an error or the caller's cancellation: release now
            await self._close_now(exc)  # noqa: ASYNC102 - shielded inside, with a time limit
            raise
        if chunk is None:
            if timed_out:
                timeout = self._timeout()
                await self._close_now(timeout)
                raise timeout
            await self._close_now()
            raise StopAsyncIteration
        # Other tasks run once per read, whatever the transport's reads do: a schedule
        # point, never a cancel point, so the chunk taken is not lost.
        await _cancel_shielded_checkpoint()
        self._yield_at = _now() + YIELD_QUANTUM
        return chunk

    def _timeout(self) -> errors.Timeout:
        if trio.current_time() >= self._deadline_at:
            msg = "the stream's deadline passed before it ended"
        else:
            msg = f"no stream event within idle_timeout={self._idle_timeout:g} s"
        return errors.Timeout(msg, provider=self.provider, model=self.model)

    async def asend(self, value: None) -> T:
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

    async def _close_now(self, error: BaseException | None = None) -> None:
        """Release everything at once; runs even when the caller is being cancelled.
        *error* is what the stream ends with (for the hooks; None: it ended well)."""
        if not self._closed:
            self._closed = True
            # No cancel scope here (one costs about as much as parsing a chunk): every
            # source's aclose() shields itself and bounds its time (ChunkSource.aclose).
            await self._closer.close(error, self._summary)

    # -------------------------------------------------------------- context manager

    async def __aenter__(self: _S) -> _S:
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close_now()  # noqa: ASYNC102 - shielded inside, with a time limit

    def __iter__(self) -> NoReturn:
        raise TypeError(
            f"a trillm {type(self).__name__} is asynchronous: use `async for`, not `for` "
            "(`async for chunk in stream: ...`; outside async code, "
            "trillm.completion(..., stream=True) gives a plain iterator)"
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<trillm.{type(self).__name__} {self.provider}/{self.model} {state}>"

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        try:  # close first: the warning may be an error (python -W error) and raise here
            with contextlib.suppress(trio.RunFinishedError):  # the run is over: nothing to close
                self._token.run_sync_soon(_spawn_close, self._closer)
        finally:
            warnings.warn(
                f"<trillm.{type(self).__name__} {self.provider}/{self.model}> was "
                "garbage-collected while "
                "open; use `async with` so it closes at once",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )


_S = TypeVar("_S", bound="_ChunkStream[Any]")

#: The base of every trillm stream, for the stream kinds of other modules (``_response_stream``).
ChunkStream = _ChunkStream


class Stream(_ChunkStream["StreamChunk"]):
    """A streamed chat answer: ``async for chunk in stream`` yields :class:`StreamChunk`.

    Use it as ``async with client.stream(...) as stream:`` (the always-safe
    form), or ``async with await client.acompletion(..., stream=True) as s:``.
    ``await stream.final_response()`` reads the rest and returns the whole
    answer as a :class:`ModelResponse`.  Plain ``for`` raises a ``TypeError``:
    use ``async for`` (or the sync API's ``completion(stream=True)``).
    """

    __slots__ = ("_received", "_response_format")

    def __init__(self, source: ChunkSource[StreamChunk], *, response_format: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        self._received = ChunkAccumulator()
        self._on_chunk = self._watch(self._received.add)
        self._response_format = response_format

    def _summary(self) -> ModelResponse:
        return self._received.build()

    # -------------------------------------------------------------- whole answer

    async def final_response(self) -> ModelResponse:
        """Read what is left and return the whole answer as the plain call would: with a
        ``response_format``, ``message.parsed`` is set (or the structured-output error of
        the plain call is raised)."""
        async for _ in self:
            pass
        response = self._priced(self._received.build())
        if self._response_format is None:
            return response
        return parse_response(response, self._response_format, provider=self.provider)



class AudioStream(_ChunkStream[bytes]):
    """Streamed audio (``aspeech(..., stream=True)``): ``async for data in stream`` yields
    bytes as they arrive; closed like every trillm stream (exhaustion, error, ``aclose()``,
    leaving ``async with``, cancellation)."""

    __slots__ = ()

    async def write_to_file(self, path: str | os.PathLike[str]) -> None:
        """Write what is left of the audio to *path* as it arrives."""
        async with await trio.open_file(path, "wb") as f:
            async for data in self:
                await f.write(data)


def _spawn_close(closer: _Closer) -> None:
    # Runs in the trio thread (run_sync_soon).  Late in a run's shutdown, system tasks
    # can no longer start: then give the slot back here, and let the sockets die with the run.
    try:
        trio.lowlevel.spawn_system_task(_close_quietly, closer, name="trillm-stream-finalizer")
    except RuntimeError:
        on_close, closer.on_close = closer.on_close, None
        if on_close is not None:
            on_close()


async def _close_quietly(closer: _Closer) -> None:
    # A system task that raises crashes the run (TrioInternalError): never let it.
    try:
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await closer.close()
    except Exception:
        logging.getLogger("trillm").exception("closing a garbage-collected stream failed")
