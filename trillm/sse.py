"""An incremental Server-Sent Events decoder: a pure state machine over bytes.

``feed(data)`` takes whatever bytes arrived (any split: inside a line, between
``\\r`` and ``\\n``, inside a UTF-8 sequence) and returns the events that are now
complete; ``close()`` is called at end of stream.  It follows the WHATWG
"event stream" rules: ``\\r\\n``, ``\\n`` and ``\\r`` all end a line, lines
starting with ``:`` are comments (keep-alives), several ``data:`` lines join with
``\\n``, and a blank line dispatches the event.  Events without data are not
dispatched.
"""

from __future__ import annotations

import attrs

__all__ = ["SSEDecoder", "SSEEvent"]


@attrs.frozen
class SSEEvent:
    """One dispatched event: ``event`` defaults to ``"message"``."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed it bytes, get complete :class:`SSEEvent` values back."""

    __slots__ = ("_bom_checked", "_buf", "_data", "_event", "_last_id", "_retry", "_skip_lf")

    def __init__(self) -> None:
        self._buf = b""  # an unterminated line
        self._skip_lf = False  # the last byte seen was \r: a following \n is part of it
        self._data: list[bytes] = []
        self._event: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None
        self._bom_checked = False  # one leading U+FEFF is dropped (WHATWG UTF-8 decode)

    @property
    def in_event(self) -> bool:
        """True while part of an event (a line or data lines) waits for its end."""
        return bool(self._buf or self._data or self._event is not None)

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Take the next bytes of the stream; return the events they complete."""
        if not data:  # keep _skip_lf: the "\n" of a "\r\n" may still come
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        if self._buf:
            data = self._buf + data
        if not data:
            return []
        lines = data.splitlines()  # bytes.splitlines splits on \r\n, \n and \r only
        last = data[-1]
        if last == 13:  # b"\r": the \n may come in the next feed
            self._skip_lf = True
            self._buf = b""
        elif last == 10:
            self._buf = b""
        else:
            self._buf = lines.pop()
        return self._lines(lines) if lines else []

    def close(self) -> list[SSEEvent]:
        """End of stream: dispatch a last event whose lines were all terminated.

        If the stream stopped inside a line, that event is truncated and is not
        dispatched; :attr:`in_event` tells the caller that it stopped inside one.
        """
        events = self._lines([b""]) if self._data and not self._buf else []
        return events

    def _lines(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if not self._bom_checked:
            self._bom_checked = True
            if lines[0].startswith(b"\xef\xbb\xbf"):
                lines[0] = lines[0][3:]
        data = self._data
        for line in lines:
            if line[:6] == b"data: ":  # the common case first: one slice, no partition
                data.append(line[6:])
                continue
            if not line:
                if data:
                    events.append(
                        SSEEvent(
                            (data[0] if len(data) == 1 else b"\n".join(data)).decode(
                                "utf-8", "replace"
                            ),
                            self._event or "message",
                            self._last_id,
                            self._retry,
                        )
                    )
                    data = self._data = []
                self._event = None
                continue
            if line[0] == 58:  # b":": a comment (keep-alive)
                continue
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
            elif name == b"id":
                if b"\0" not in value:
                    self._last_id = value.decode("utf-8", "replace")
            elif name == b"retry" and value.isdigit():
                self._retry = int(value)
        return events
