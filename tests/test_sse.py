"""SSEDecoder: WHATWG event-stream semantics, and chunking that never matters."""

from __future__ import annotations

import base64
import itertools
import json
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trillm.errors import StreamError
from trillm.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder, SSEEvent

VECTORS = json.loads(
    (Path(__file__).parent / "fixtures" / "sse" / "whatwg-vectors.json").read_text("utf-8")
)["cases"]


def decode(wire: bytes) -> list[SSEEvent]:
    dec = SSEDecoder()
    return dec.feed(wire) + dec.close()


def decode_chunks(chunks: list[bytes]) -> list[SSEEvent]:
    dec = SSEDecoder()
    events = [e for chunk in chunks for e in dec.feed(chunk)]
    return events + dec.close()


def split_at(wire: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *sorted(cuts), len(wire)]
    return [wire[a:b] for a, b in itertools.pairwise(edges)]


# ------------------------------------------------------------------ basic semantics


def test_single_event() -> None:
    assert decode(b"data: hello\n\n") == [SSEEvent("hello")]


def test_event_defaults() -> None:
    (event,) = decode(b"data: x\n\n")
    assert (event.data, event.event, event.id, event.retry) == ("x", "message", None, None)


def test_sse_event_is_frozen() -> None:
    event = SSEEvent("x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.data = "y"  # type: ignore[misc]


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_line_endings(eol: bytes) -> None:
    wire = b"event: e" + eol + b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    assert decode(wire) == [SSEEvent("a\nb", "e"), SSEEvent("c")]


def test_mixed_line_endings() -> None:
    wire = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r"
    assert decode(wire) == [SSEEvent("a\nb\nc"), SSEEvent("d")]


def test_crlf_is_one_line_end_not_two() -> None:
    # "\r\n" must not be read as "\r" (end of line) followed by "\n" (blank line).
    assert decode(b"data: a\r\ndata: b\r\n\r\n") == [SSEEvent("a\nb")]


def test_cr_cr_is_a_blank_line() -> None:
    assert decode(b"data: a\r\rdata: b\r\r") == [SSEEvent("a"), SSEEvent("b")]


def test_multiline_data_joined_with_newline() -> None:
    assert decode(b"data: one\ndata: two\ndata: three\n\n") == [SSEEvent("one\ntwo\nthree")]


def test_empty_data_lines_kept() -> None:
    assert decode(b"data:\ndata\ndata: x\ndata:\n\n") == [SSEEvent("\n\nx\n")]


def test_data_with_only_empty_value_is_dispatched() -> None:
    # WHATWG: "data:" makes the data buffer "\n", which is not empty, so the event fires.
    assert decode(b"data:\n\n") == [SSEEvent("")]


def test_comments_are_ignored() -> None:
    wire = b": keep-alive\ndata: a\n:another\ndata: b\n\n:\n\n: ping\n\n"
    assert decode(wire) == [SSEEvent("a\nb")]


def test_comment_only_stream_gives_nothing() -> None:
    dec = SSEDecoder()
    assert dec.feed(b": ping\n\n: ping\r\n\r\n") == []
    assert not dec.in_event
    assert dec.close() == []


def test_space_after_colon_stripped_once() -> None:
    assert decode(b"data:  two spaces\n\n") == [SSEEvent(" two spaces")]
    assert decode(b"data:no space\n\n") == [SSEEvent("no space")]
    assert decode(b"event:  x\ndata: d\n\n") == [SSEEvent("d", " x")]


def test_only_first_colon_splits() -> None:
    assert decode(b'data: {"a": "b:c"}\n\n') == [SSEEvent('{"a": "b:c"}')]
    assert decode(b"data:: x\n\n") == [SSEEvent(": x")]


def test_field_without_colon() -> None:
    # The whole line is the field name and the value is empty.
    assert decode(b"data\n\n") == [SSEEvent("")]
    assert decode(b"event\ndata: x\n\n") == [SSEEvent("x", "message")]
    assert decode(b"id\ndata: x\n\n") == [SSEEvent("x", id="")]


def test_unknown_fields_ignored() -> None:
    assert decode(b"foo: bar\ndata: x\nDATA: y\nData: z\n\n") == [SSEEvent("x")]


def test_field_names_are_case_sensitive() -> None:
    assert decode(b"Data: x\n\n") == []


def test_event_type() -> None:
    assert decode(b"event: message_start\ndata: {}\n\n") == [SSEEvent("{}", "message_start")]


def test_empty_event_type_means_message() -> None:
    assert decode(b"event:\ndata: x\n\n") == [SSEEvent("x", "message")]


def test_event_type_resets_after_dispatch() -> None:
    wire = b"event: a\ndata: 1\n\ndata: 2\n\n"
    assert decode(wire) == [SSEEvent("1", "a"), SSEEvent("2", "message")]


def test_event_type_resets_on_blank_line_without_data() -> None:
    wire = b"event: lost\n\ndata: 2\n\n"
    assert decode(wire) == [SSEEvent("2", "message")]


def test_last_event_type_wins() -> None:
    assert decode(b"event: a\nevent: b\ndata: x\n\n") == [SSEEvent("x", "b")]


def test_events_without_data_not_dispatched() -> None:
    assert decode(b"event: ping\n\n") == []
    assert decode(b"id: 7\n\n") == []
    assert decode(b"retry: 10\n\n") == []
    assert decode(b"\n\n\n") == []


def test_id_persists_across_events() -> None:
    wire = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\nid\ndata: d\n\n"
    assert [(e.data, e.id) for e in decode(wire)] == [("a", "1"), ("b", "1"), ("c", "2"), ("d", "")]


def test_id_set_by_event_without_data_still_applies() -> None:
    assert decode(b"id: 5\n\ndata: x\n\n") == [SSEEvent("x", id="5")]


def test_id_with_null_is_ignored() -> None:
    wire = b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"
    assert [e.id for e in decode(wire)] == ["1", "1"]


def test_retry_field() -> None:
    events = decode(b"retry: 1500\ndata: a\n\ndata: b\n\n")
    assert [e.retry for e in events] == [1500, 1500]


@pytest.mark.parametrize("value", [b"", b"abc", b"1.5", b"-1", b" 5", b"5s", b"\xd9\xa3"])
def test_retry_field_invalid_is_ignored(value: bytes) -> None:
    assert decode(b"retry: 1\n\nretry: " + value + b"\ndata: x\n\n") == [SSEEvent("x", retry=1)]


def test_utf8_data() -> None:
    text = "héllo \u2013 世界 🎉"
    assert decode(f"data: {text}\n\n".encode()) == [SSEEvent(text)]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode(b"data: a\xffb\n\n") == [SSEEvent("a\ufffdb")]


def test_leading_bom_is_ignored() -> None:
    # WHATWG: the stream is UTF-8 decoded, which drops one leading U+FEFF.
    assert decode(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent("x")]
    assert decode_chunks([b"\xef", b"\xbb", b"\xbfdata: x\n\n"]) == [SSEEvent("x")]
    # Only at the very start of the stream.
    assert decode(b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [SSEEvent("a")]


def test_openai_style_stream() -> None:
    wire = (
        b'data: {"id":"1","choices":[{"delta":{"content":"Hi"}}]}\n\n'
        b": OPENROUTER PROCESSING\n\n"
        b'data: {"id":"1","choices":[{"delta":{"content":"!"}}]}\n\n'
        b"data: [DONE]\n\n"
    )
    assert [e.data for e in decode(wire)] == [
        '{"id":"1","choices":[{"delta":{"content":"Hi"}}]}',
        '{"id":"1","choices":[{"delta":{"content":"!"}}]}',
        "[DONE]",
    ]


def test_anthropic_style_stream() -> None:
    wire = (
        b'event: message_start\r\ndata: {"type":"message_start"}\r\n\r\n'
        b'event: ping\r\ndata: {"type": "ping"}\r\n\r\n'
        b'event: message_stop\r\ndata: {"type":"message_stop"}\r\n\r\n'
    )
    assert [e.event for e in decode(wire)] == ["message_start", "ping", "message_stop"]


# ------------------------------------------------------------------ feed() incrementality


def test_feed_returns_events_as_soon_as_complete() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\n") == []
    assert dec.feed(b"\n") == [SSEEvent("a")]
    assert dec.feed(b"data: b\n\ndata: c\n\nda") == [SSEEvent("b"), SSEEvent("c")]
    assert dec.feed(b"ta: d\n\n") == [SSEEvent("d")]


def test_feed_empty_bytes_is_harmless() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"") == []
    assert not dec.in_event
    assert dec.feed(b"data: x\n") == []
    assert dec.feed(b"") == []
    assert dec.feed(b"\n") == [SSEEvent("x")]


def test_feed_empty_bytes_between_cr_and_lf() -> None:
    # Regression: feed(b"") after a trailing "\r" forgot that a following "\n"
    # belongs to it, so the "\n" became a blank line and dispatched too early.
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"") == []
    assert dec.feed(b"\ndata: b\r\n\r\n") == [SSEEvent("a\nb")]


def test_cr_at_end_of_feed_then_lf() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\n") == []
    assert dec.feed(b"\r") == [SSEEvent("a")]
    assert dec.feed(b"\n") == []  # the LF of that CRLF, not another blank line
    assert dec.feed(b"data: b\n\n") == [SSEEvent("b")]


def test_cr_at_end_of_feed_then_cr() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\r") == [SSEEvent("a")]


def test_split_inside_utf8_character() -> None:
    wire = "data: 世界🎉\n\n".encode()
    for i in range(len(wire) + 1):
        assert decode_chunks([wire[:i], wire[i:]]) == [SSEEvent("世界🎉")], i


def test_every_two_way_split() -> None:
    wire = (
        b"event: e\r\ndata: a\xc3\xa9\r\n: c\r\rid: 1\ndata: b\r\n\r\n"
        b"retry: 5\rdata: \xf0\x9f\x8e\x89\r\r"
    )
    expected = decode(wire)
    assert expected == [
        SSEEvent("a\u00e9", "e"),
        SSEEvent("b", id="1"),
        SSEEvent("🎉", id="1", retry=5),
    ]
    for i in range(len(wire) + 1):
        assert decode_chunks([wire[:i], wire[i:]]) == expected, i


def test_byte_at_a_time() -> None:
    wire = b"event: e\r\ndata: a\r\ndata: b\r\r: x\ndata: \xe4\xb8\x96\n\n"
    chunks = [wire[i : i + 1] for i in range(len(wire))]
    assert decode_chunks(chunks) == decode(wire) == [SSEEvent("a\nb", "e"), SSEEvent("世")]


@pytest.mark.parametrize("wire", [
    b"data: a\n\ndata: b\n\ndata: c\n\n",  # one "data: " line each: split at once
    b"data: a\n\ndata: b\ndata: c\n\ndata: d\n\n",  # a two-line event among them
    b"data: a\n\ndata: x data: y\n\ndata: \n\ndata: \xc3\xa9\n\n",  # "data: " in the data
    b"data: a\n\nid: 7\ndata: b\n\ndata: c\n\n",  # an id for the next events
    b"data: a\n\n\ndata: b\n\n",  # an extra blank line
    b"data: a\n\ndata:b\n\nevent: e\ndata: c\n\n",  # no space; an event type
])
def test_a_block_of_whole_events_decodes_as_line_by_line(wire: bytes) -> None:
    # After the first feed, a block of whole events takes the fast path (split at the
    # "\n\ndata: " that begin the next events); byte at a time, every line goes
    # through the line rules: the same events either way.
    dec = SSEDecoder()
    first = dec.feed(b"data: 0\n\n")
    fast = first + dec.feed(wire) + dec.close()
    slow = decode_chunks([b"data: 0\n\n", *(wire[i : i + 1] for i in range(len(wire)))])
    assert fast == slow
    assert fast[0] == SSEEvent("0") and len(fast) > 2


# ------------------------------------------------------------------ in_event and close()


def test_in_event_tracks_partial_events() -> None:
    dec = SSEDecoder()
    assert not dec.in_event
    dec.feed(b"da")
    assert dec.in_event  # an unterminated line
    dec.feed(b"ta: x\n")
    assert dec.in_event  # data waiting for its blank line
    dec.feed(b"\n")
    assert not dec.in_event
    dec.feed(b"event: e\n")
    assert dec.in_event  # an event type waiting for data
    dec.feed(b"\n")
    assert not dec.in_event


def test_in_event_false_after_comments() -> None:
    dec = SSEDecoder()
    dec.feed(b": keep-alive\n")
    assert not dec.in_event


def test_close_does_not_dispatch_an_event_without_its_blank_line() -> None:
    # Regression: close() dispatched "b\nc", though WHATWG says "If the file ends in
    # the middle of an event, before the final empty line, the incomplete event is
    # not dispatched".
    dec = SSEDecoder()
    assert dec.feed(b"data: a\n\ndata: b\ndata: c\n") == [SSEEvent("a")]
    assert dec.in_event
    assert dec.close() == []
    assert dec.in_event  # the caller can tell the stream stopped inside an event


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_close_after_complete_last_line_dispatches_nothing(eol: bytes) -> None:
    dec = SSEDecoder()
    assert dec.feed(b"event: e" + eol + b"data: x" + eol) == []
    assert dec.close() == []
    assert dec.in_event


def _vector_chunks(case: dict[str, Any]) -> list[bytes]:
    return [base64.b64decode(c["b64"]) if "b64" in c else c["text"].encode()
            for c in case["chunks"]]


def _as_asserted(event: SSEEvent, expected: dict[str, Any]) -> dict[str, Any]:
    """*event*'s fields that the source test asserts (its unnamed event type is null)."""
    got = {k: getattr(event, k) for k in expected}
    if got.get("event") == "message":
        got["event"] = None
    return got


@pytest.mark.parametrize("case", VECTORS, ids=[c["id"] for c in VECTORS])
def test_whatwg_vectors(case: dict[str, Any]) -> None:
    # eventsource-parser and web-platform-tests vectors, fed as their tests fed them
    # (wpt/format-data-before-final-empty-line is the EOF-inside-an-event case).
    events = decode_chunks(_vector_chunks(case))
    expected = case["expected"]
    assert [_as_asserted(e, x) for e, x in zip(events, expected, strict=True)] == expected


@pytest.mark.parametrize("case", VECTORS, ids=[c["id"] for c in VECTORS])
def test_whatwg_vectors_byte_at_a_time(case: dict[str, Any]) -> None:
    wire = b"".join(_vector_chunks(case))
    events = decode_chunks([wire[i : i + 1] for i in range(len(wire))])
    expected = case["expected"]
    assert [_as_asserted(e, x) for e, x in zip(events, expected, strict=True)] == expected


def test_close_with_unterminated_last_line_drops_it() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: partial") == []
    assert dec.in_event
    assert dec.close() == []
    assert dec.in_event  # the caller can tell the stream stopped inside an event


def test_close_never_dispatches_an_event_cut_inside_a_line() -> None:
    # Regression: "data: a\ndata: b<EOF>" dispatched "a" as though it were the
    # whole event; the real data was "a\nb..." and the stream was truncated.
    dec = SSEDecoder()
    assert dec.feed(b"data: a\ndata: b") == []
    assert dec.close() == []
    assert dec.in_event


def test_close_after_complete_event() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: x\n\n") == [SSEEvent("x")]
    assert dec.close() == []
    assert not dec.in_event


def test_close_with_event_type_but_no_data() -> None:
    dec = SSEDecoder()
    dec.feed(b"event: message_stop\n")
    assert dec.close() == []
    assert dec.in_event


def test_close_on_fresh_decoder() -> None:
    dec = SSEDecoder()
    assert dec.close() == []
    assert not dec.in_event


def test_close_twice() -> None:
    dec = SSEDecoder()
    dec.feed(b"data: x\n\ndata: y\n")
    assert dec.close() == []
    assert dec.close() == []
    assert dec.in_event


# ------------------------------------------------------------------ long lines, big events


def _feed_in_reads(dec: SSEDecoder, wire: bytes, size: int) -> list[SSEEvent]:
    return [e for i in range(0, len(wire), size) for e in dec.feed(wire[i : i + size])]


def test_one_long_line_in_small_reads_takes_linear_time() -> None:
    # Regression: each feed copied the whole unterminated line (buf + data), so a
    # 4 MiB data line in 1 KiB reads took seconds.  Compare with the same bytes
    # as short events: linear work keeps the two within a small factor.
    size = 4 << 20
    long_line = b"data: " + b"x" * size + b"\n\n"
    short_lines = b"data: " + b"x" * 1018 + b"\n\n"
    short = short_lines * (len(long_line) // len(short_lines))

    def timed(wire: bytes) -> tuple[float, list[SSEEvent]]:
        start = time.perf_counter()
        events = _feed_in_reads(SSEDecoder(), wire, 1024)
        return time.perf_counter() - start, events

    t_short, _ = timed(short)
    t_long, events = min(timed(long_line) for _ in range(2))
    assert [len(e.data) for e in events] == [size]
    assert t_long < 10 * t_short + 0.05, (t_long, t_short)


def test_default_event_limit_is_16_mib() -> None:
    assert DEFAULT_MAX_EVENT_BYTES == 16 * 1024 * 1024
    dec = SSEDecoder()
    piece = b"x" * (1 << 20)
    dec.feed(b"data: ")
    with pytest.raises(StreamError, match="max_event_bytes"):
        for _ in range(17):  # an endless line: refused once it passes 16 MiB
            dec.feed(piece)
    ok = SSEDecoder()
    assert [len(e.data) for e in ok.feed(b"data: " + piece * 15 + b"\n\n")] == [15 << 20]


@pytest.mark.parametrize("read", [1, 7, 100, 10_000])
@pytest.mark.parametrize(
    "wire",
    [
        b"data: " + b"x" * 1500 + b"\n\n",  # one long data line
        b"data: " + b"x" * 1500,  # one that never ends
        b"data: xxxxxxxxx\n" * 200 + b"\n",  # many data lines in one event
        b"data: xxxxxxxxx\n" * 200,  # ... that never ends
        b"data:\n" * 2000,  # empty data lines: each adds a line end to the data
        b": " + b"x" * 1500,  # an endless comment
        b"event: " + b"x" * 1500,  # an endless field
    ],
)
def test_event_over_max_event_bytes_is_a_stream_error(wire: bytes, read: int) -> None:
    dec = SSEDecoder(max_event_bytes=1000)
    assert dec.feed(b"data: ok\n\n") == [SSEEvent("ok")]
    with pytest.raises(StreamError, match="max_event_bytes=1000"):
        _feed_in_reads(dec, wire, read)


@pytest.mark.parametrize("read", [1, 7, 100, 10_000])
def test_events_under_max_event_bytes_pass(read: int) -> None:
    event = b"data: " + b"x" * 400 + b"\ndata: " + b"y" * 400 + b"\n\n"
    dec = SSEDecoder(max_event_bytes=1000)
    events = _feed_in_reads(dec, event * 50 + b": " + b"z" * 900, read)
    assert events == [SSEEvent("x" * 400 + "\n" + "y" * 400)] * 50


@settings(deadline=None)
@given(st.lists(st.integers(1, 3000), min_size=1, max_size=40), st.integers(1, 500))
def test_an_endless_line_is_refused_within_one_read_of_the_limit(
    reads: list[int], limit: int
) -> None:
    dec = SSEDecoder(max_event_bytes=limit)
    held = 0
    with pytest.raises(StreamError):
        for n in itertools.cycle(reads):
            dec.feed(b"y" * n)
            held += n
            assert held <= limit


# ------------------------------------------------------------------ properties

_LINE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=12,
)
_ID_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\0"),
    max_size=8,
)


@attrs.frozen
class _Spec:
    data: list[str]
    event: str | None
    id: str | None
    retry: int | None


_SPECS = st.builds(
    _Spec,
    data=st.lists(_LINE_TEXT, max_size=4),
    event=st.none() | _LINE_TEXT,
    id=st.none() | _ID_TEXT,
    retry=st.none() | st.integers(0, 10**6),
)


def _expected(specs: list[_Spec]) -> list[SSEEvent]:
    out: list[SSEEvent] = []
    last_id: str | None = None
    retry: int | None = None
    for spec in specs:
        if spec.id is not None:
            last_id = spec.id
        if spec.retry is not None:
            retry = spec.retry
        if spec.data:
            out.append(SSEEvent("\n".join(spec.data), spec.event or "message", last_id, retry))
    return out


@st.composite
def _wires(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent]]:
    """A stream of generated events with random line ends, comments and field spellings."""
    specs = draw(st.lists(_SPECS, max_size=6))
    lines: list[str] = []

    def field(name: str, value: str) -> None:
        if value == "" and draw(st.booleans()):
            lines.append(name)  # a field with no colon: empty value
        elif value.startswith(" ") or draw(st.booleans()):
            lines.append(f"{name}: {value}")  # exactly one space is stripped
        else:
            lines.append(f"{name}:{value}")

    def maybe_comment() -> None:
        if draw(st.integers(0, 3)) == 0:
            lines.append(":" + draw(_LINE_TEXT))

    for n, spec in enumerate(specs):
        maybe_comment()
        fields: list[tuple[str, str]] = [("data", d) for d in spec.data]
        if spec.event is not None:
            fields.append(("event", spec.event))
        if spec.id is not None:
            fields.append(("id", spec.id))
        if spec.retry is not None:
            fields.append(("retry", str(spec.retry)))
        # data lines keep their order; the other fields go anywhere among them
        order = draw(st.permutations(range(len(fields))))
        data_positions = sorted(i for i in order if fields[i][0] == "data")
        it = iter(data_positions)
        for i in order:
            name, value = fields[next(it)] if fields[i][0] == "data" else fields[i]
            field(name, value)
            maybe_comment()
        if n < len(specs) - 1 or draw(st.booleans()):
            lines.append("")  # the blank line
        else:
            specs = specs[:-1]  # without one the last event is incomplete: not dispatched

    out: list[str] = []
    prev_eol = ""
    for line in lines:
        eol = draw(st.sampled_from(["\n", "\r", "\r\n"]))
        if prev_eol == "\r" and line == "" and eol == "\n":
            eol = "\r\n"  # "\r" + "\n" would read as one CRLF: pick an unambiguous spelling
        out.append(line + eol)
        prev_eol = eol
    return "".join(out).encode("utf-8"), _expected(specs)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_wires())
def test_generated_stream_decodes_to_its_events(case: tuple[bytes, list[SSEEvent]]) -> None:
    wire, expected = case
    assert decode(wire) == expected


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_wires(), st.data())
def test_sse_ignores_chunking(case: tuple[bytes, list[SSEEvent]], data: st.DataObject) -> None:
    wire, expected = case
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12), label="cuts")
    assert decode_chunks(split_at(wire, cuts)) == expected


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_wires())
def test_sse_byte_at_a_time(case: tuple[bytes, list[SSEEvent]]) -> None:
    wire, expected = case
    assert decode_chunks([wire[i : i + 1] for i in range(len(wire))]) == expected


_TRICKY = (
    b"data: \xe4\xb8\x96\xf0\x9f\x8e\x89\r\n"  # multi-byte characters before a CRLF
    b"event: \xc3\xa9\r"
    b"\r\n"  # a blank line spelled CRLF after a lone CR
    b": \xf0\x9f\x92\xa4\r\n"
    b"data: a\r\rdata: b\n\r\n"
)


@given(st.lists(st.integers(0, len(_TRICKY)), max_size=10))
def test_tricky_wire_ignores_chunking(cuts: list[int]) -> None:
    expected = [SSEEvent("世🎉", "é"), SSEEvent("a"), SSEEvent("b")]
    assert decode(_TRICKY) == expected
    assert decode_chunks(split_at(_TRICKY, cuts)) == expected


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=10))
def test_arbitrary_bytes_chunking_invariant(wire: bytes, cuts: list[int]) -> None:
    # Whatever the bytes (garbage included), splitting never changes the result,
    # nor the in_event state at the end.
    whole = SSEDecoder()
    got_whole = whole.feed(wire)
    parts = SSEDecoder()
    chunks = split_at(wire, [c % (len(wire) + 1) for c in cuts])
    got_parts = [e for c in chunks for e in parts.feed(c)]
    assert got_parts == got_whole
    assert parts.in_event == whole.in_event
    assert parts.close() == whole.close()
    assert parts.in_event == whole.in_event


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_wires(), st.data())
def test_max_event_bytes_does_not_depend_on_chunking(
    case: tuple[bytes, list[SSEEvent]], data: st.DataObject
) -> None:
    # Whatever the reads, a limit no event can reach (the whole wire) lets every event
    # pass, and a limit below the longest event refuses it.  (What an event holds while
    # it is read, comments and unterminated data lines included, may pass its data's
    # size, so a tighter "roomy" limit would depend on the wire's shape.)
    wire, expected = case
    longest = max((len(e.data.encode()) for e in expected), default=0)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12), label="cuts")
    chunks = split_at(wire, cuts)
    roomy = SSEDecoder(max_event_bytes=len(wire) + 64)
    assert [e for c in chunks for e in roomy.feed(c)] == expected
    if longest:
        tight = SSEDecoder(max_event_bytes=longest - 1)
        with pytest.raises(StreamError):
            for c in chunks:
                tight.feed(c)


def test_fast_path_events_are_the_constructors_records() -> None:
    """The whole-event fast path builds the same SSEEvent as the constructor (every field)."""
    import attrs

    events = SSEDecoder().feed(b"id: 7\nretry: 30\n\n" + b"data: {}\n\n" + b"data: x\n\n")
    assert events == [SSEEvent("{}", "message", "7", 30), SSEEvent("x", "message", "7", 30)]
    for e in events:
        assert attrs.asdict(e) == attrs.asdict(SSEEvent(e.data, "message", "7", 30))
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            e.data = "y"  # type: ignore[misc]


# ------------------------------------------------------------------ feed_plain()


def _plain(events: list[SSEEvent]) -> list[str | SSEEvent]:
    """What feed_plain gives for *events*: a plain message event as its data alone."""
    return [e.data if (e.event, e.id, e.retry) == ("message", None, None) else e for e in events]


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_wires(), st.data())
def test_feed_plain_is_feed_with_plain_events_as_their_data(
    case: tuple[bytes, list[SSEEvent]], data: st.DataObject
) -> None:
    wire, expected = case
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12), label="cuts")
    dec = SSEDecoder()
    got = [e for c in split_at(wire, cuts) for e in dec.feed_plain(c)]
    assert got == _plain(expected)
    assert [type(e) for e in got] == [type(e) for e in _plain(expected)]


def test_feed_plain_on_the_fast_path() -> None:
    # Whole one-line data events (the decoder's fast path) are handed over as strings,
    # until an id or a retry is set: every later event carries it, so it is an SSEEvent.
    dec = SSEDecoder()
    assert dec.feed_plain(b"data: a\n\n") == ["a"]  # the first read: the line rules
    assert dec.feed_plain(b"data: b\n\ndata: c\n\n") == ["b", "c"]
    assert dec.feed_plain(b"data: d\n\nevent: x\ndata: e\n\ndata: f\n\n") == [
        "d", SSEEvent("e", "x"), "f"]
    assert dec.feed_plain(b"event: message\ndata: g\n\n") == ["g"]
    assert dec.feed_plain(b"id: 7\ndata: h\n\ndata: i\n\n") == [
        SSEEvent("h", id="7"), SSEEvent("i", id="7")]
    assert dec.feed_plain(b"data: j\n\ndata: k\n\n") == [SSEEvent("j", id="7"),
                                                          SSEEvent("k", id="7")]
    dec = SSEDecoder()
    assert dec.feed_plain(b"retry: 5\n\n") == []
    assert dec.feed_plain(b"data: a\n\ndata: b\n\n") == [SSEEvent("a", retry=5),
                                                          SSEEvent("b", retry=5)]
