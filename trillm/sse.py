"""An incremental Server-Sent Events decoder: a pure state machine over bytes.

``feed(data)`` takes whatever bytes arrived (any split: inside a line, between
``\\r`` and ``\\n``, inside a UTF-8 sequence) and returns the events that are now
complete; ``close()`` is called at end of stream.  It follows the WHATWG
"event stream" rules: ``\\r\\n``, ``\\n`` and ``\\r`` all end a line, lines
starting with ``:`` are comments (keep-alives), several ``data:`` lines join with
``\\n``, and a blank line dispatches the event.  Events without data are not
dispatched, nor is an event that the end of the stream cut off before its
blank line ("the incomplete event is not dispatched"); :attr:`SSEDecoder.in_event`
then tells the caller that the stream stopped inside an event.

An unterminated line is kept as the pieces that brought it, and only new bytes
are searched for line ends, so a long line arriving in small reads costs time
linear in its length.  One event (its data so far plus an unterminated line)
may hold at most ``max_event_bytes`` (16 MiB by default): past that ``feed``
raises :class:`~trillm.errors.StreamError`, so a server cannot make the decoder
hold memory without bound.
"""

from __future__ import annotations

from typing import cast

import attrs

from ._records import positional_builder, record_repr
from .errors import StreamError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "SSEEvent"]

#: The most bytes one event may hold: its data lines plus an unterminated line.
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


@attrs.frozen(repr=False)
class SSEEvent:
    """One dispatched event: ``event`` defaults to ``"message"``."""

    __repr__ = record_repr

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


#: ``SSEEvent(data, event, id, retry)`` by position, built faster (the stream's hot path).
_message = positional_builder(SSEEvent)
# The fast path of _whole_events builds one event per chunk inline (one call fewer per
# event), with the slot setters positional_builder uses.
_new = object.__new__
_set_data, _set_event, _set_id, _set_retry = (
    SSEEvent.__dict__[f.name].__set__ for f in attrs.fields(SSEEvent))


class SSEDecoder:
    """Feed it bytes, get complete :class:`SSEEvent` values back.

    *max_event_bytes* bounds one event; past it :meth:`feed` raises
    :class:`~trillm.errors.StreamError`.
    """

    __slots__ = ("_bom_checked", "_data", "_event", "_last_id", "_max", "_partial", "_pieces",
                 "_retry", "_size", "_skip_lf")

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._pieces: list[bytes] = []  # an unterminated line, as the feeds brought it
        self._partial = 0  # its length
        self._skip_lf = False  # the last byte seen was \r: a following \n is part of it
        self._data: list[bytes] = []
        self._size = 0  # the length of the data buffer _data makes: its bytes and line ends
        self._event: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None
        self._bom_checked = False  # one leading U+FEFF is dropped (WHATWG UTF-8 decode)
        self._max = max_event_bytes

    @property
    def in_event(self) -> bool:
        """True while part of an event (a line or data lines) waits for its end."""
        return bool(self._pieces or self._data or self._event is not None)

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Take the next bytes of the stream; return the events they complete.

        Raises :class:`~trillm.errors.StreamError` when one event grows past
        ``max_event_bytes``.
        """
        return cast("list[SSEEvent]", self._feed(data, False))

    def feed_plain(self, data: bytes) -> list[str | SSEEvent]:
        """:meth:`feed`, except that a plain message event (``event`` is ``"message"``,
        no ``id`` or ``retry`` was ever set) is given as its ``data`` string alone, not
        as an :class:`SSEEvent`: the stream's hot path, where most events are plain.
        """
        return self._feed(data, True)

    def _feed(self, data: bytes, plain: bool) -> list[str | SSEEvent]:
        if not data:  # keep _skip_lf: the "\n" of a "\r\n" may still come
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 10:
                data = data[1:]
                if not data:
                    return []
        if self._bom_checked and len(data) <= self._max and b"\r" not in data:
            # The common case: whole events, decoded together.  Anything held from
            # before is completed by the line rules first, up to the first blank line.
            if self._pieces or self._data or self._event is not None:
                first = data.find(b"\n\n")
                if 0 <= first < len(data) - 2:
                    events = self._feed_lines(data[:first + 2], plain)
                    return events + self._feed(data[first + 2:], plain)
            else:
                end = data.rfind(b"\n\n")
                if end >= 0:
                    events = self._whole_events(data[:end], plain)
                    rest = data[end + 2:]
                    return events + self._feed_lines(rest, plain) if rest else events
        return self._feed_lines(data, plain)

    def _feed_lines(self, data: bytes, plain: bool) -> list[str | SSEEvent]:
        """:meth:`feed` by the line rules (``data`` is not empty)."""
        pieces = self._pieces
        if pieces:  # a line is unterminated
            pieces.append(data)
            if b"\n" not in data and b"\r" not in data:  # it goes on: look at no old byte
                self._partial += len(data)
                if self._partial > self._max - self._size:
                    raise self._too_big()
                return []
            data = b"".join(pieces)
            pieces.clear()
            self._partial = 0
        # What this feed completes or leaves held fits in the bytes held before plus
        # those of data: only when that passes the limit must the events be measured.
        careful = len(data) > self._max - self._size
        lines = data.splitlines()  # bytes.splitlines splits on \r\n, \n and \r only
        last = data[-1]
        if last == 13:  # b"\r": the \n may come in the next feed
            self._skip_lf = True
        elif last != 10:
            tail = lines.pop()
            pieces.append(tail)
            self._partial = len(tail)
        events = self._lines(lines, careful, plain) if lines else []
        if careful and self._partial > self._max - self._size:
            raise self._too_big()
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: nothing more is dispatched (always ``[]``).

        An event not yet ended by its blank line is incomplete and, as WHATWG
        says, is not dispatched; :attr:`in_event` stays true so that the
        caller can tell the stream stopped inside an event.
        """
        return []

    def _whole_events(self, block: bytes, plain: bool) -> list[str | SSEEvent]:
        """The events of *block*: whole events, nothing held before, no ``\\r``.

        A line end cannot fall inside a UTF-8 sequence, so the block is decoded once
        and split on blank lines: the same text as decoding event by event.  An event
        that is more than one ``data: `` line goes through the line rules.
        """
        last_id, retry = self._last_id, self._retry
        whole = block.decode("utf-8", "replace")
        events: list[str | SSEEvent]
        if whole[:6] == "data: ":
            # The usual stream: every event one "data: " line.  Split where each next
            # event begins; if no line end is left in the pieces, they are the events' data.
            datas: list[str] = whole[6:].split("\n\ndata: ")
            if "\n" not in "".join(datas):
                if plain and last_id is None and retry is None:
                    return datas  # type: ignore[return-value]  # list is invariant
                events = []
                append = events.append
                for data in datas:  # _message, inlined: one call fewer per event
                    e: SSEEvent = _new(SSEEvent)
                    _set_data(e, data)
                    _set_event(e, "message")
                    _set_id(e, last_id)
                    _set_retry(e, retry)
                    append(e)
                return events
        events = []
        append = events.append
        for text in whole.split("\n\n"):
            if text[:6] == "data: " and "\n" not in text:
                if plain and last_id is None and retry is None:
                    append(text[6:])
                else:
                    append(_message(text[6:], "message", last_id, retry))
            else:
                events.extend(self._lines([*text.encode().split(b"\n"), b""], False, plain))
                last_id, retry = self._last_id, self._retry
        return events

    def _too_big(self) -> StreamError:
        return StreamError(
            f"a server-sent event grew past max_event_bytes={self._max}: "
            "the stream is malformed or hostile"
        )

    def _lines(self, lines: list[bytes], careful: bool, plain: bool) -> list[str | SSEEvent]:
        events: list[str | SSEEvent] = []
        if not self._bom_checked:
            self._bom_checked = True
            if lines[0].startswith(b"\xef\xbb\xbf"):
                lines[0] = lines[0][3:]
        data = held = self._data
        start = len(held)  # lines of an event begun in an earlier feed
        for line in lines:
            if line[:6] == b"data: ":  # the common case first: one slice, no partition
                data.append(line[6:])
                continue
            if not line:
                if data:
                    raw = data[0] if len(data) == 1 else b"\n".join(data)
                    if careful and len(raw) > self._max:
                        raise self._too_big()
                    text = raw.decode("utf-8", "replace")
                    kind = self._event or "message"
                    if (plain and kind == "message" and self._last_id is None
                            and self._retry is None):
                        events.append(text)
                    else:
                        events.append(SSEEvent(text, kind, self._last_id, self._retry))
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
        if not data:
            self._size = 0
        elif data is held:  # the event held before goes on: count its new lines
            self._size += sum(map(len, data[start:])) + len(data) - start
        else:
            self._size = sum(map(len, data)) + len(data)
        return events
