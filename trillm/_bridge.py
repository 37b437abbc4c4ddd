"""The async API under asyncio: calls and streams run on trillm's one background trio run.

When a :class:`~trillm.Client` method is awaited where no trio run is running
(``asyncio.run``, anyio's asyncio backend, a notebook cell, uvicorn), the Client
hands the call to :func:`call_in_trio`: the call runs, unchanged, as a task of
the background trio run that the sync API keeps (its own thread), and the
asyncio task awaits a future that the trio side settles.  Same results, same
bare exception classes, and the same Client limits, since every call through
one Client runs in the one trio run that holds its pool and limiters.

Cancelling the asyncio task cancels the trio-side work, waits (a few seconds at
most) until it has finished closing, and only then lets ``CancelledError``
propagate: no trio task outlives its asyncio caller, and the server sees the
connection closed.

A stream crosses as an :class:`AsyncioStream`: each ``__anext__`` that finds
its buffer empty fetches, in one hop, the next chunk and whatever else has
already arrived (a bounded batch), so a slow consumer applies backpressure
(nothing is read ahead of it) and a fast one does not pay a hop per chunk.

Under trio none of this is touched; ``asyncio`` is imported only when used.
"""

from __future__ import annotations

import collections
import functools
import sys
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import outcome
import trio

from . import _sync, client
from ._response_stream import ResponseStream
from ._stream import AudioStream, ChunkStream, Stream

__all__ = ["AsyncioStream", "call_in_trio"]

T = TypeVar("T")

#: Seconds a cancelled call may take to finish closing on the trio side.
CLOSE_GRACE = 5.0
#: The most chunks one hop across the threads carries.
BATCH = 256


def _asyncio_loop() -> Any:
    """The running asyncio loop, or a RuntimeError that says what works."""
    asyncio = sys.modules.get("asyncio")
    loop = None
    if asyncio is not None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
    if loop is None:
        raise RuntimeError(
            "trillm's async API needs a running trio loop (trio.run) or asyncio loop "
            "(asyncio.run); outside async code use trillm.completion() and the other sync calls"
        )
    return loop


async def call_in_trio(job: Callable[[], Awaitable[T]]) -> T:
    """``await job()`` on the background trio run, awaited from asyncio's loop."""
    import asyncio

    loop = _asyncio_loop()
    run = _sync.background_run()
    done: asyncio.Future[outcome.Outcome[Any]] = loop.create_future()

    def settle(result: outcome.Outcome[Any]) -> None:  # in the trio thread
        loop.call_soon_threadsafe(_set, done, result)

    scope = run.submit(job, settle)
    try:
        result = await asyncio.shield(done)
    except asyncio.CancelledError:
        run.cancel_soon(scope)
        await _until_settled(done, loop)  # noqa: ASYNC102 - bounded; re-raised next line
        raise
    value = result.unwrap()
    if isinstance(value, ChunkStream):
        return AsyncioStream(run, value)  # type: ignore[return-value]
    return value  # type: ignore[no-any-return]


async def _until_settled(done: Any, loop: Any) -> None:
    """Wait, at most CLOSE_GRACE seconds, until the cancelled trio side has finished closing.

    Cancellation may be delivered again meanwhile (anyio's cancel scopes on asyncio
    repeat it until the scope exits): it is held back here, and the caller re-raises
    the first one once nothing of the call is left running.
    """
    import asyncio

    end = loop.time() + CLOSE_GRACE
    while not done.done() and loop.time() < end:
        try:  # asyncio.wait never cancels `done`
            await asyncio.wait({done}, timeout=end - loop.time())
        except asyncio.CancelledError:  # noqa: ASYNC103 - the caller re-raises the first one
            continue  # noqa: ASYNC104


def _set(future: Any, result: outcome.Outcome[Any]) -> None:
    if not future.done():
        future.set_result(result)


async def _next_batch(stream: ChunkStream[Any]) -> tuple[list[Any], Exception | None]:
    """On the trio side: the next chunk and whatever else has arrived (at most BATCH);
    an empty list at the end.  A malformed event after the first closes the stream and
    comes back beside the chunks before it."""
    try:
        first = await stream.__anext__()
    except StopAsyncIteration:
        return [], None
    batch = [first]
    try:
        while len(batch) < BATCH:
            chunk = stream.take_ready()
            if chunk is None:
                break
            batch.append(chunk)
    except Exception as exc:  # noqa: BLE001 - raised on the asyncio side, after the batch
        await stream.aclose()
        return batch, exc
    return batch, None


async def _write_rest(stream: AudioStream, path: Any, already: list[bytes]) -> None:
    """On the trio side: *already* (chunks that crossed), then the rest of *stream*."""
    async with await trio.open_file(path, "wb") as f:
        for data in already:
            await f.write(data)
        async for data in stream:
            await f.write(data)


class AsyncioStream:
    """A trillm stream seen from asyncio: ``async with`` it, ``async for`` over it.

    Leaving ``async with``, ``aclose()``, an exception, exhaustion or the task's
    cancellation closes the response on the trio side.  ``final_response()``,
    ``headers``, ``provider`` and ``model`` are the trio-side stream's.
    """

    def __init__(self, run: _sync.BackgroundRun, stream: ChunkStream[Any]) -> None:
        self._run = run
        self._stream = run.track(stream)
        self._buffer: collections.deque[Any] = collections.deque()
        self._error: Exception | None = None
        self._ended = False

    @property
    def headers(self) -> dict[str, str]:
        """The redacted response headers."""
        return self._stream.headers

    @property
    def provider(self) -> str:
        """The provider that answers."""
        return self._stream.provider

    @property
    def model(self) -> str:
        """The model that answers."""
        return self._stream.model

    @property
    def closed(self) -> bool:
        """True once the response was released."""
        return self._stream.closed

    @property
    def output_text(self) -> str:
        """The output text received so far (Responses API streams)."""
        stream = self._stream
        if not isinstance(stream, ResponseStream):
            raise AttributeError("output_text is for Responses API streams")
        return stream.output_text

    def __aiter__(self) -> AsyncioStream:
        return self

    async def __anext__(self) -> Any:
        if self._buffer:
            return self._buffer.popleft()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._ended:
            raise StopAsyncIteration
        stream = self._stream
        try:
            got: tuple[list[Any], Exception | None] = await call_in_trio(
                functools.partial(_next_batch, stream))
        except BaseException:
            self._ended = True  # it failed or was cancelled: the trio side closed it
            self._run.forget(self._stream)
            raise
        if not got[0]:
            self._ended = True
            self._run.forget(self._stream)
            raise StopAsyncIteration
        batch, self._error = got
        self._buffer.extend(batch[1:])
        return batch[0]

    async def aclose(self) -> None:
        """Close the response (idempotent)."""
        self._ended = True
        self._buffer.clear()
        if not self._stream.closed:
            await call_in_trio(self._stream.aclose)
        self._run.forget(self._stream)

    async def __aenter__(self) -> AsyncioStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def final_response(self) -> Any:
        """Read what is left and return the whole answer (chat and Responses API streams)."""
        stream = self._stream
        if not isinstance(stream, Stream | ResponseStream):
            raise TypeError("final_response() is for chat and Responses API streams")
        self._buffer.clear()  # already folded into the trio side's answer
        try:
            return await call_in_trio(stream.final_response)
        finally:
            self._ended = True
            self._run.forget(stream)

    async def write_to_file(self, path: Any) -> None:
        """Write what is left of streamed audio to *path* (audio streams), on the trio side."""
        stream = self._stream
        if not isinstance(stream, AudioStream):
            raise TypeError("write_to_file() is for audio streams")
        already, self._ended = list(self._buffer), True
        self._buffer.clear()
        try:
            await call_in_trio(functools.partial(_write_rest, stream, path, already))
        finally:
            self._run.forget(stream)

    def __iter__(self) -> AsyncIterator[Any]:
        """A plain ``for`` cannot read it: the stream is closed (nothing reads it after this
        mistake) and a TypeError shows the right form."""
        self._ended = True
        self._buffer.clear()
        if not self._stream.closed:
            self._run.close_soon(self._stream)
        raise TypeError(
            "a trillm stream is asynchronous: use `async for`, not `for` (`async for chunk in "
            "stream: ...`; outside async code, trillm.completion(..., stream=True) gives a "
            "plain iterator)")

    def __repr__(self) -> str:
        return f"<trillm stream {self.provider}/{self.model} (asyncio side)>"

    def __del__(self) -> None:
        stream = getattr(self, "_stream", None)
        if stream is not None and not stream.closed:
            self._run.close_soon(stream)  # first: the warning may be an error and raise
            warnings.warn(f"{self!r} was garbage-collected while open; use `async with` so it "
                          "closes at once", ResourceWarning, stacklevel=1, source=self)


client.run_outside_trio_with(call_in_trio)
