"""The sync API: ``completion()``, ``embedding()``, ... for code without a loop.

Every sync call runs on one background trio run in a daemon thread, started on
first use and kept, so its :class:`Client` (opened inside that run) reuses its
connection pool from one call to the next.  A call is submitted with
``trio.from_thread.run(job, trio_token=token)``, the token captured inside that
run, and runs in its own cancel scope: a ``KeyboardInterrupt`` in the waiting
thread cancels that scope (the run stays healthy) and then propagates.

The calls work anywhere except inside a running trio loop (they would block it),
where they raise a ``RuntimeError`` saying to ``await`` the async form; a
notebook cell inside asyncio's loop just works, since the work happens on the
background thread.  ``completion(stream=True)`` returns a :class:`SyncStream`,
a plain iterator: each ``next()`` pulls one chunk from the background run, so
chunks arrive as the server sends them.  It is closed on exhaustion, on an
error, by ``close()``, on leaving ``with``, and when garbage-collected (its
``__del__`` only schedules the close: it never blocks or joins a thread).
An ``atexit`` hook stops the run, closing what is still open, within a few
seconds at most.

A new sync call is a one-liner over :func:`_wait_for` (or :func:`_open_stream`)::

    def embedding(model, input, **kw):
        return _wait_for("embedding", lambda c: c.aembedding(model, input, **kw))
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar, cast, overload

import outcome
import trio

from ._files import SpeechResponse
from ._response_stream import ResponseStream
from ._stream import ChunkStream, Stream
from .client import Client
from .response_types import Response, ResponseEvent
from .types import (
    EmbeddingResponse,
    ImageResponse,
    ModelResponse,
    StreamChunk,
    TranscriptionResponse,
)

__all__ = [
    "BackgroundRun", "background_run",
    "SyncChunkStream", "SyncResponseStream", "SyncStream",
    "completion", "embedding", "image_generation", "responses", "speech", "transcription",
]

T = TypeVar("T")
_C = TypeVar("_C")
_S = TypeVar("_S", bound="ChunkStream[Any]")

_START_TIMEOUT = 30.0  # seconds the background run may take to start
_STOP_TIMEOUT = 5.0  # seconds closing the client (and joining the thread) may take at exit


def _refuse_inside_trio(name: str, hint: str | None = None) -> None:
    """A sync call inside a trio run would block its loop: point at the async form."""
    if trio.lowlevel.in_trio_run():
        hint = hint or f"`await trillm.a{name}(...)`"
        raise RuntimeError(
            f"trillm.{name}() is synchronous and would block the running trio loop: "
            f"inside async code use {hint} instead"
        )


class BackgroundRun:
    """One background trio run: its daemon thread, its token (captured inside it), its Client."""

    def __init__(self) -> None:
        self.client = Client()  # holds no I/O until open(), which happens inside the run
        self.token: trio.lowlevel.TrioToken | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._stop: trio.Event | None = None
        self._scopes: set[trio.CancelScope] = set()
        # Open streams, held here so that one is never collected while open (its own
        # __del__ would warn), even when its SyncStream is dropped in a reference cycle.
        self._streams: set[ChunkStream[Any]] = set()
        self._thread = threading.Thread(target=self._thread_main, name="trillm-sync", daemon=True)

    # -------------------------------------------------------------- lifetime

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT) or self.token is None:
            raise RuntimeError("trillm's background trio run did not start") from self.error

    def alive(self) -> bool:
        # (after a fork, the child sees the thread as stopped, and starts a new run)
        return self.token is not None and self._thread.is_alive()

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except Exception as exc:
            self.error = exc
            logging.getLogger("trillm").exception("trillm's background trio run failed")
        finally:
            self.token = None
            self._ready.set()

    async def _main(self) -> None:
        self._stop = trio.Event()
        self.client.open()
        try:
            self.token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()
        finally:
            for scope in list(self._scopes):
                scope.cancel()  # calls still in flight end with a RuntimeError
            with trio.move_on_after(_STOP_TIMEOUT, shield=True):
                for stream in list(self._streams):
                    await stream.aclose()
                await self.client.aclose()

    def shutdown(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop the run gracefully: close open streams and the Client; wait *timeout* at most."""
        if self._stop is not None:
            self._soon(self._stop.set)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -------------------------------------------------------------- calls

    def _soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` in the run's thread, without waiting (a no-op once it ended)."""
        token = self.token
        if token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(fn, *args)

    def call(self, afn: Callable[[], Awaitable[T]]) -> T:
        """``await afn()`` in the background run and return its result here, in this thread."""
        token = self.token
        if token is None:
            raise RuntimeError("trillm's background trio run has stopped")
        scope = trio.CancelScope()
        scopes = self._scopes

        async def job() -> T:
            scopes.add(scope)
            try:
                with scope:
                    return await afn()
            finally:
                scopes.discard(scope)
            raise RuntimeError("the call was cancelled: trillm's background trio run stopped")

        try:
            return trio.from_thread.run(job, trio_token=token)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # KeyboardInterrupt while waiting: cancel the call
                self._soon(scope.cancel)
            raise

    def submit(self, afn: Callable[[], Awaitable[T]],
               done: Callable[[outcome.Outcome[T]], object]) -> trio.CancelScope:
        """Start ``await afn()`` in the background run without waiting for it; *done* gets
        its outcome (in the run's thread) when it ends.  Cancel the returned scope (through
        :meth:`cancel_soon`) to cancel it; *done* then gets a ``RuntimeError``."""
        token = self.token
        if token is None:
            raise RuntimeError("trillm's background trio run has stopped")
        scope = trio.CancelScope()
        scopes = self._scopes

        async def job() -> None:
            result: outcome.Outcome[T] | None = None
            scopes.add(scope)
            try:
                with scope:
                    try:
                        result = outcome.Value(await afn())
                    except Exception as exc:  # noqa: BLE001 - handed over, not swallowed
                        result = outcome.Error(exc)
            finally:
                scopes.discard(scope)
                if result is None:  # cancelled: by the caller, or the run is stopping
                    result = outcome.Error(RuntimeError("the call was cancelled"))
                try:
                    done(result)
                except Exception:  # a system task that raises would crash the run
                    logging.getLogger("trillm").exception("handing back a bridged result failed")

        def start() -> None:
            try:
                trio.lowlevel.spawn_system_task(job, name="trillm-bridged-call")
            except RuntimeError as exc:  # the run is shutting down
                done(outcome.Error(RuntimeError(f"trillm's background trio run stopped: {exc}")))

        try:
            token.run_sync_soon(start)
        except trio.RunFinishedError:
            raise RuntimeError("trillm's background trio run has stopped") from None
        return scope

    def cancel_soon(self, scope: trio.CancelScope) -> None:
        """Cancel *scope* (from :meth:`submit`) from any thread, without waiting."""
        self._soon(scope.cancel)

    def track(self, stream: _S) -> _S:
        """Hold an open stream until it is released, and close it if the run stops first."""
        self._streams.add(stream)
        return stream

    def forget(self, stream: ChunkStream[Any]) -> None:
        self._streams.discard(stream)

    def close_soon(self, stream: ChunkStream[Any]) -> None:
        """Close *stream* from a system task of the run, without waiting (``__del__`` safe)."""
        self._soon(_spawn_close, self, stream)


def _spawn_close(run: BackgroundRun, stream: ChunkStream[Any]) -> None:
    # Late in the run's shutdown no system task can start: its _main closes what is left.
    with contextlib.suppress(RuntimeError):
        trio.lowlevel.spawn_system_task(_close_quietly, run, stream,
                                        name="trillm-sync-stream-close")


async def _close_quietly(run: BackgroundRun, stream: ChunkStream[Any]) -> None:
    # A system task that raises crashes the run (TrioInternalError): log instead.
    try:
        await stream.aclose()
        run.forget(stream)
    except Exception:
        logging.getLogger("trillm").exception("closing a dropped trillm SyncStream failed")


class _Runner:
    """Holds the current :class:`BackgroundRun`, started on first use (again after a fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._run: BackgroundRun | None = None

    def get(self) -> BackgroundRun:
        with self._lock:
            run = self._run
            if run is None or not run.alive():
                run = BackgroundRun()
                run.start()
                self._run = run
            return run

    def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Stop the background run (the atexit hook); the next sync call starts a new one."""
        with self._lock:
            run, self._run = self._run, None
        if run is not None:
            run.shutdown(timeout)


_RUNNER = _Runner()
atexit.register(_RUNNER.stop)


def background_run() -> BackgroundRun:
    """The background trio run, started on first use (and again after a fork)."""
    return _RUNNER.get()


def _wait_for(name: str, fn: Callable[[Client], Awaitable[T]]) -> T:
    """The sync form of one Client call: ``fn(client)`` awaited in the background run."""
    _refuse_inside_trio(name)
    run = _RUNNER.get()
    return run.call(lambda: fn(run.client))


def _open_stream(
    name: str, hint: str, fn: Callable[[Client], Awaitable[_S]]
) -> tuple[BackgroundRun, _S]:
    """Open a stream in the background run (errors before the headers raise here)."""
    _refuse_inside_trio(name, hint)
    run = _RUNNER.get()

    async def open_() -> _S:
        return run.track(await fn(run.client))

    return run, run.call(open_)


class SyncChunkStream(Iterator[_C]):
    """A trillm stream for sync code, read with ``for``: what :class:`SyncStream` (chat
    chunks) and :class:`SyncResponseStream` (Responses API events) share.

    Chunks are delivered as they arrive.  The response is released (and the
    Client's slot given back) on exhaustion, on an error, by :meth:`close`, on
    leaving ``with``, and when the object is garbage-collected.  Like a
    generator, one stream is meant to be read by one thread at a time.
    """

    __slots__ = ("__weakref__", "_ended", "_run", "_stream")

    def __init__(self, run: BackgroundRun, stream: ChunkStream[_C]) -> None:
        self._run = run
        self._stream: ChunkStream[_C] | None = stream
        self._ended: ChunkStream[_C] | None = None  # read to its end: final_response reads it

    @property
    def closed(self) -> bool:
        """True once the response was released."""
        return self._stream is None or self._stream.closed

    @property
    def headers(self) -> dict[str, str]:
        """The redacted response headers."""
        return {} if self._stream is None else self._stream.headers

    def __iter__(self: _I) -> _I:
        return self

    def _release(self) -> ChunkStream[_C] | None:
        """Take the stream out of this object and out of the run's keeping."""
        stream, self._stream = self._stream, None
        if stream is not None:
            self._run.forget(stream)
        return stream

    def __next__(self) -> _C:
        stream = self._stream
        if stream is None or stream.closed:
            self._release()
            raise StopIteration
        try:
            return self._run.call(stream.__anext__)
        except StopAsyncIteration:
            self._ended = self._release()
            raise StopIteration from None
        finally:
            self._release_if_closed(stream)  # exhausted, failed, or cancelled (Ctrl+C)

    def _release_if_closed(self, stream: ChunkStream[_C]) -> None:
        if stream.closed:
            self._release()

    def _read_final(self, final: Callable[[Any], Awaitable[T]]) -> T:
        """``await final(stream)`` in the background run (a final_response of the stream)."""
        stream = self._stream or self._ended
        if stream is None:
            raise RuntimeError(f"this {type(self).__name__} was closed before its end")
        try:
            result = self._run.call(lambda: final(stream))
        finally:
            self._release_if_closed(stream)
        self._ended = stream  # asked again, it answers the same
        return result

    def close(self) -> None:
        """Release the response now (idempotent)."""
        stream = self._stream
        if stream is None:
            return
        if stream.closed:
            self._release()
        elif trio.lowlevel.in_trio_run():  # never block a loop: close in the background
            self._stream = None
            self._run.close_soon(stream)
        else:
            self._run.call(stream.aclose)
            self._release()

    def __enter__(self: _I) -> _I:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<trillm.{type(self).__name__} {state}>"

    def __del__(self) -> None:
        stream = getattr(self, "_stream", None)
        if stream is not None:
            self._stream = None
            if stream.closed:
                self._run.forget(stream)
            else:
                self._run.close_soon(stream)  # schedules only: never blocks, never joins


_I = TypeVar("_I", bound="SyncChunkStream[Any]")


class SyncStream(SyncChunkStream[StreamChunk]):
    """A streamed chat answer for sync code: ``for chunk in completion(..., stream=True):``."""

    __slots__ = ()

    def final_response(self) -> ModelResponse:
        """Read what is left and return the whole answer, as the non-streamed call would."""
        return self._read_final(Stream.final_response)


class SyncResponseStream(SyncChunkStream[ResponseEvent]):
    """A streamed Responses API answer for sync code: ``for event in responses(...,
    stream=True):`` yields :class:`~trillm.ResponseEvent` values."""

    __slots__ = ()

    def final_response(self) -> Response:
        """Read what is left and return the whole :class:`~trillm.Response`."""
        return self._read_final(ResponseStream.final_response)


@overload
def completion(
    model: str, messages: Sequence[Mapping[str, Any]], *,
    stream: Literal[False] = False, **kwargs: Any,
) -> ModelResponse: ...


@overload
def completion(
    model: str, messages: Sequence[Mapping[str, Any]], *, stream: Literal[True], **kwargs: Any,
) -> SyncStream: ...


def completion(
    model: str, messages: Sequence[Mapping[str, Any]], *, stream: bool = False, **kwargs: Any
) -> ModelResponse | SyncStream:
    """The sync twin of :func:`trillm.acompletion`; ``stream=True`` gives a :class:`SyncStream`.

    Not allowed inside a running trio loop (use ``await trillm.acompletion(...)``).
    """
    if stream:
        return SyncStream(*_open_stream(
            "completion",
            "`await trillm.acompletion(..., stream=True)` or `async with trillm.stream(...)`",
            lambda c: c.acompletion(model, messages, stream=True, **kwargs),
        ))
    return _wait_for("completion", lambda c: cast(
        "Awaitable[ModelResponse]", c.acompletion(model, messages, **kwargs)))


def embedding(model: str, input: str | Sequence[str], **kwargs: Any) -> EmbeddingResponse:
    """The sync twin of :func:`trillm.aembedding` (not inside a running trio loop)."""
    return _wait_for("embedding", lambda c: c.aembedding(model, input, **kwargs))


def image_generation(model: str, prompt: str, **kwargs: Any) -> ImageResponse:
    """The sync twin of :func:`trillm.aimage_generation` (not inside a running trio loop)."""
    return _wait_for("image_generation", lambda c: c.aimage_generation(model, prompt, **kwargs))


def transcription(model: str, file: Any, **kwargs: Any) -> TranscriptionResponse:
    """The sync twin of :func:`trillm.atranscription` (not inside a running trio loop)."""
    return _wait_for("transcription", lambda c: c.atranscription(model, file, **kwargs))


def speech(model: str, input: str, voice: str | None = None, **kwargs: Any) -> SpeechResponse:
    """The sync twin of :func:`trillm.aspeech` (not inside a running trio loop)."""
    if kwargs.get("stream"):
        raise TypeError("the sync speech() reads the whole audio: drop stream=True, or use "
                        "`async with await trillm.aspeech(..., stream=True)` in async code")
    return cast(SpeechResponse, _wait_for("speech", lambda c: c.aspeech(model, input, voice,
                                                                      **kwargs)))


@overload
def responses(
    model: str, input: str | Sequence[Mapping[str, Any]], *,
    stream: Literal[False] = False, **kwargs: Any,
) -> Response: ...


@overload
def responses(
    model: str, input: str | Sequence[Mapping[str, Any]], *, stream: Literal[True],
    **kwargs: Any,
) -> SyncResponseStream: ...


def responses(
    model: str, input: str | Sequence[Mapping[str, Any]], *, stream: bool = False,
    **kwargs: Any,
) -> Response | SyncResponseStream:
    """The sync twin of :func:`trillm.aresponses`; ``stream=True`` gives a
    :class:`SyncResponseStream` of events (not inside a running trio loop)."""
    if stream:
        return SyncResponseStream(*_open_stream(
            "responses",
            "`await trillm.aresponses(..., stream=True)` or "
            "`async with trillm.responses_stream(...)`",
            lambda c: c.aresponses(model, input, stream=True, **kwargs),
        ))
    return _wait_for("responses", lambda c: cast(
        "Awaitable[Response]", c.aresponses(model, input, **kwargs)))
