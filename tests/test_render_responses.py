"""The Responses API's render steps are the inverse of its parse steps (property tests).

``parse_responses(render_responses(x)) == x`` for every response *x* the parser can
give; the rendered event stream, cut at arbitrary byte boundaries and read by the real
SSE decoder and ``ResponsesStreamParser``, ends with a terminal event whose response is
*x*, after deltas that add up to each text, refusal, argument string and summary.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trillm import errors
from trillm.providers import openai
from trillm.providers.base import ProviderConfig
from trillm.response_types import (
    Response,
    ResponseEvent,
    ResponseFunctionCall,
    ResponseInputTokensDetails,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseOutputText,
    ResponseOutputTokensDetails,
    ResponseReasoning,
    ResponsesRequest,
    ResponseUsage,
)
from trillm.sse import SSEDecoder

P = openai.PROVIDER
CFG = ProviderConfig(name="openai", api_base="http://x")
REQ = ResponsesRequest("openai", "requested-model", "hi")
TEXT = st.text(max_size=30)
ID = st.text("abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=10)
SMALL = st.integers(0, 10_000)
JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-9, 9), TEXT),
                       lambda inner: st.lists(inner, max_size=2) | st.dictionaries(
                           ID, inner, max_size=2), max_leaves=4)

PARTS = st.one_of(
    st.builds(ResponseOutputText, TEXT, st.lists(st.dictionaries(ID, JSONISH, max_size=2),
                                                 max_size=2).map(tuple)),
    st.builds(ResponseOutputRefusal, TEXT),
)
ITEMS = st.one_of(
    st.builds(ResponseOutputMessage, ID.map("msg_".__add__), st.lists(PARTS, max_size=3).map(
        tuple), st.just("assistant"), st.sampled_from([None, "completed", "incomplete"])),
    st.builds(ResponseFunctionCall, ID.map("call_".__add__), ID,
              st.dictionaries(ID, JSONISH, max_size=3).map(json.dumps),
              st.one_of(st.none(), ID.map("fc_".__add__)), st.sampled_from([None, "completed"])),
    st.builds(ResponseReasoning, ID.map("rs_".__add__), st.lists(
        TEXT.map(lambda t: {"type": "summary_text", "text": t}), max_size=2).map(tuple),
        st.none(), st.one_of(st.none(), ID)),
    st.builds(lambda i, q: {"type": "web_search_call", "id": i, "status": "completed",
                            "action": {"query": q}}, ID, TEXT),
)
USAGE = st.one_of(st.none(), st.builds(
    lambda a, b, c, d: ResponseUsage(a, b, a + b, *_details(c, d)), SMALL, SMALL, SMALL, SMALL))


def _details(cached: int, reasoning: int) -> tuple[Any, Any]:
    return ResponseInputTokensDetails(cached), ResponseOutputTokensDetails(reasoning)


@st.composite
def responses(draw: st.DrawFn, statuses: Sequence[str | None] = (
        None, "completed", "incomplete", "failed", "in_progress")) -> Response:
    status = draw(st.sampled_from(list(statuses)))
    return Response(
        draw(ID.map("resp_".__add__)), draw(ID), tuple(draw(st.lists(ITEMS, max_size=4))),
        status, draw(USAGE),
        {"reason": "max_output_tokens"} if status == "incomplete" else None,
        {"code": "server_error", "message": "boom"} if status == "failed" else None,
        draw(st.one_of(st.none(), st.integers(0, 2**31))),
        draw(st.one_of(st.none(), ID.map("resp_".__add__))),
    )


def _cut(text: str, cuts: Sequence[int]) -> list[str]:
    edges = [0, *sorted(c % (len(text) + 1) for c in cuts), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(edges) if b > a]


def read(wire: bytes, cuts: Sequence[int] = ()) -> list[ResponseEvent]:
    """The events a real stream reader gets from *wire* delivered in pieces cut at *cuts*."""
    edges = [0, *sorted(c % (len(wire) + 1) for c in cuts), len(wire)]
    decoder, parser = SSEDecoder(), P.responses_stream_parser(REQ, CFG)
    sse = [e for a, b in itertools.pairwise(edges) for e in decoder.feed(wire[a:b])]
    return [e for e in map(parser.feed, sse + decoder.close()) if e is not None]


@settings(max_examples=200, deadline=None)
@given(responses())
def test_parse_of_render_is_identity(x: Response) -> None:
    assert P.parse_responses(P.render_responses(x), REQ, CFG) == x


@settings(max_examples=200, deadline=None)
@given(responses(("completed", "incomplete", None)),
       st.lists(st.integers(0, 10**6), max_size=12), st.lists(st.integers(0, 10**6), max_size=5))
def test_rendered_stream_ends_with_the_response(x: Response, wire_cuts: list[int],
                                                text_cuts: list[int]) -> None:
    wire = b"".join(P.render_responses_stream(x, lambda t: _cut(t, text_cuts)))
    events = read(wire, wire_cuts)
    assert events[-1].type == ("response.incomplete" if x.status == "incomplete"
                               else "response.completed")
    assert events[-1].response == x
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta or "" for e in events if e.type == "response.output_text.delta")
    assert text == x.output_text
    args = [e.data["arguments"] for e in events
            if e.type == "response.function_call_arguments.done"]
    assert args == [i.arguments for i in x.output if isinstance(i, ResponseFunctionCall)]
    for kind in ("response.function_call_arguments", "response.refusal",
                 "response.reasoning_summary_text"):
        deltas: dict[tuple[Any, ...], str] = {}
        for e in events:
            at = (e.data.get("output_index"), e.data.get("content_index"),
                  e.data.get("summary_index"))
            if e.type == kind + ".delta":
                deltas[at] = deltas.get(at, "") + (e.delta or "")
            elif e.type == kind + ".done":
                said = e.data.get("arguments", e.data.get("refusal", e.data.get("text")))
                assert deltas.get(at, "") == said


def test_the_event_sequence_of_a_message_and_a_function_call() -> None:
    x = Response("resp_1", "gpt-4o", (
        ResponseOutputMessage("msg_1", (ResponseOutputText("Hi there"),), status="completed"),
        ResponseFunctionCall("call_1", "get", '{"a": 1}', "fc_1", "completed"),
    ), "completed", ResponseUsage(3, 4, 7), created_at=5)
    events = P.render_responses_stream(x)
    names = [e.split(b"\n", 1)[0].decode().removeprefix("event: ") for e in events]
    assert names == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done", "response.completed"]
    created = json.loads(events[0].split(b"data: ", 1)[1])
    assert created["response"]["status"] == "in_progress" and created["response"]["output"] == []
    added = json.loads(events[9].split(b"data: ", 1)[1])
    assert added["item"]["arguments"] == "" and added["item"]["status"] == "in_progress"
    cut = P.render_responses_stream(x, end=False)
    assert cut == events[:-1]


def test_a_failed_response_raises_from_the_parser() -> None:
    x = Response("resp_1", "m", (), "failed",
                 error={"code": "rate_limit_exceeded", "message": "slow down"})
    with pytest.raises(errors.RateLimitError, match="slow down"):
        read(b"".join(P.render_responses_stream(x)))


@pytest.mark.parametrize(("status", "cls"), [
    (400, errors.BadRequestError), (401, errors.AuthenticationError),
    (404, errors.NotFoundError), (429, errors.RateLimitError),
    (500, errors.InternalServerError), (503, errors.ServiceUnavailableError),
    (418, errors.BadRequestError),
])
def test_stream_error_events_raise_their_class(status: int, cls: type[errors.APIError]) -> None:
    with pytest.raises(cls, match="went wrong") as caught:
        read(P.render_responses_stream_error(status, "it went wrong"))
    assert caught.value.status_code == status
