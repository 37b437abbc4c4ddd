"""``ResponseStream``: a streamed Responses API answer, one :class:`ResponseEvent` at a time.

It is a :class:`~trillm._stream.ChunkStream` like the chat ``Stream``, so it
has the same guarantees: an async generator class and async context manager
with no cancel scope open across a ``yield``, closed on exhaustion, on error,
on ``aclose()``, on leaving ``async with`` and on cancellation, under the idle
timeout and the deadline, and warning (``ResourceWarning``) when collected open.

It ends at ``response.completed`` or ``response.incomplete``: after yielding
that event it reads on to the end of the body for at most :data:`DRAIN_GRACE`
seconds (so the connection goes back to the pool; what follows is ignored),
then closes.  ``response.failed`` and ``error`` events raise the mapped error,
and the end of the body before a terminal event is a ``StreamError`` (the
provider's parser and the chunk source see to those).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import attrs
import trio

from . import errors
from ._stream import ChunkStream
from .response_types import TERMINAL_EVENTS, Response, ResponseEvent
from .structured import parse_response_output

if TYPE_CHECKING:
    from ._stream import ChunkSource

__all__ = ["DRAIN_GRACE", "ResponseStream"]

#: Seconds a stream reads on after its terminal event, for the body's end.
DRAIN_GRACE = 1.0


class ResponseStream(ChunkStream[ResponseEvent]):
    """A streamed response: ``async for event in stream`` yields :class:`ResponseEvent`.

    Use it as ``async with client.responses_stream(...) as stream:`` (the
    always-safe form), or ``async with await client.aresponses(..., stream=True)
    as stream:``.  ``event.type`` says what happened
    (``"response.output_text.delta"``: ``event.delta`` is the new text);
    ``stream.output_text`` is the text received so far, and ``await
    stream.final_response()`` reads what is left and returns the whole
    :class:`Response` (the terminal event's).
    """

    __slots__ = ("_final", "_text", "_text_format")

    def __init__(self, source: ChunkSource[ResponseEvent], *, text_format: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(source, **kwargs)
        self._final: Response | None = None
        self._text_format = text_format
        self._text: list[str] = []
        self._on_chunk = self._watch(self._seen)

    def _summary(self) -> Response | None:
        return self._final

    async def _close_now(self, error: BaseException | None = None) -> None:
        # After the terminal event the answer is whole: what ends the drain is no error.
        await super()._close_now(None if self._final is not None else error)

    def _seen(self, event: ResponseEvent) -> None:
        if event.type == "response.output_text.delta" and event.delta:
            self._text.append(event.delta)
        elif event.type in TERMINAL_EVENTS:
            self._final = event.response

    @property
    def output_text(self) -> str:
        """The output text received so far (every ``response.output_text.delta``)."""
        return "".join(self._text)

    async def __anext__(self) -> ResponseEvent:
        if self._final is not None or self.closed:
            await self._end()
            raise StopAsyncIteration
        return await super().__anext__()

    def take_ready(self) -> ResponseEvent | None:
        """As :meth:`ChunkStream.take_ready`; nothing after the terminal event."""
        if self._final is not None:
            return None
        return super().take_ready()

    async def _end(self) -> None:
        """After the terminal event: read to the end of the body (briefly), then close."""
        await trio.lowlevel.checkpoint()
        if self.closed:
            return
        with trio.move_on_after(DRAIN_GRACE), \
                contextlib.suppress(StopAsyncIteration, errors.Timeout):
            await super().__anext__()  # the parser gives nothing after the terminal event
        await self._close_now()

    async def final_response(self) -> Response:
        """Read what is left and return the whole :class:`Response`, as the plain call
        would (its ``headers`` are the stream's; with ``text_format=``, ``output_parsed``
        set or the structured-output error of the plain call raised).  A stream closed
        before its terminal event has none: ``RuntimeError``."""
        async for _ in self:
            pass
        if self._final is None:
            raise RuntimeError(
                "this ResponseStream was closed before its final event (response.completed "
                "or response.incomplete): there is no final response"
            )
        final = self._priced(attrs.evolve(self._final, headers=self.headers))
        if self._text_format is None:
            return final
        return parse_response_output(final, self._text_format, provider=self.provider)
