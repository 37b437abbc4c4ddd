"""Accumulating chunks gives the plain answer; a plain answer as chunks gives itself back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trillm import stream_chunk_builder
from trillm.accumulate import ChunkAccumulator, chunks_from_response
from trillm.providers.openai import PROVIDER
from trillm.sse import SSEDecoder, SSEEvent
from trillm.types import ChatRequest, StreamChunk

FIXTURES = Path(__file__).parent / "fixtures" / "openai"
REQ = ChatRequest("openai", "gpt-4o-mini", ({"role": "user", "content": "x"},))


@pytest.mark.parametrize("name", ["chat_completion.json", "chat_tool_call.json"])
def test_plain_answer_round_trips_through_chunks(name: str) -> None:
    plain = PROVIDER.parse_chat((FIXTURES / name).read_bytes(), REQ)
    built = stream_chunk_builder(chunks_from_response(plain))
    assert built.choices == plain.choices
    assert built.usage == plain.usage
    assert (built.id, built.model, built.created) == (plain.id, plain.model, plain.created)


def test_streamed_tool_call_fixture_accumulates_to_the_plain_one() -> None:
    parser = PROVIDER.stream_parser(REQ)
    events = SSEDecoder().feed((FIXTURES / "stream_tool_call.sse").read_bytes())
    chunks = [c for c in map(parser.feed, events) if c is not None]
    plain = PROVIDER.parse_chat((FIXTURES / "chat_tool_call.json").read_bytes(), REQ)
    built = stream_chunk_builder(chunks)
    assert built.choices[0].message.tool_calls == plain.choices[0].message.tool_calls
    assert built.choices[0].finish_reason == plain.choices[0].finish_reason == "tool_calls"


def test_empty_stream_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty stream"):
        ChunkAccumulator().build()


def _fixture_chunks(name: str) -> list[StreamChunk]:
    parser = PROVIDER.stream_parser(REQ)
    events = SSEDecoder().feed((FIXTURES / name).read_bytes())
    return [c for e in events if (c := parser.feed(e)) is not None]


def _token(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode()), "top_logprobs": []}


def _plain(message: dict[str, Any], logprobs: Any, usage: dict[str, Any]) -> bytes:
    """The non-streamed body of the recorded answer (the official SDK's final completion)."""
    return json.dumps({
        "id": "chatcmpl-x", "object": "chat.completion", "created": 1727346173,
        "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_5050236cbd",
        "choices": [{"index": 0, "message": {"role": "assistant", **message},
                     "logprobs": logprobs, "finish_reason": "stop"}],
        "usage": usage,
    }).encode()


def test_streamed_content_logprobs_are_kept() -> None:
    # Regression: stream_chunk_builder (and so Stream.final_response) gave logprobs=None.
    built = stream_chunk_builder(_fixture_chunks("stream_content_logprobs.sse"))
    logprobs = {"content": [_token("Foo", -0.0025094282), _token("!", -0.26638845)],
                "refusal": None}
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
             "completion_tokens_details": {"reasoning_tokens": 0}}
    plain = PROVIDER.parse_chat(_plain({"content": "Foo!", "refusal": None}, logprobs, usage), REQ)
    assert built.choices == plain.choices
    assert built.choices[0].logprobs == logprobs


def test_streamed_refusal_and_its_logprobs_equal_the_plain_answer() -> None:
    # Regression: content came out "" (the plain answer and the SDK say None) and the
    # refusal's logprobs were dropped.
    built = stream_chunk_builder(_fixture_chunks("stream_refusal_logprobs.sse"))
    (choice,) = built.choices
    refusal = "I'm very sorry, but I can't assist with that."
    assert choice.message.content is None
    assert choice.message.refusal == refusal
    assert choice.logprobs["content"] is None
    assert "".join(t["token"] for t in choice.logprobs["refusal"]) == refusal
    assert choice.logprobs["refusal"][0] == _token("I'm", -0.0012038043)
    usage = {"prompt_tokens": 79, "completion_tokens": 12, "total_tokens": 91,
             "completion_tokens_details": {"reasoning_tokens": 0}}
    body = _plain({"content": None, "refusal": refusal}, choice.logprobs, usage)
    assert built.choices == PROVIDER.parse_chat(body, REQ).choices


def _chunks_of(*deltas: dict[str, Any], finish: str = "stop") -> list[StreamChunk]:
    parser = PROVIDER.stream_parser(REQ)
    choices = [{"index": 0, "delta": d, "finish_reason": None} for d in deltas]
    choices.append({"index": 0, "delta": {}, "finish_reason": finish})
    events = [SSEEvent(json.dumps({"id": "c", "choices": [c]})) for c in choices]
    return [c for e in events if (c := parser.feed(e)) is not None]


@pytest.mark.parametrize(
    ("deltas", "content"),
    [
        (({"role": "assistant"},), None),  # nothing but a role and a finish reason
        (({"role": "assistant", "content": None, "refusal": ""}, {"refusal": "No."}), None),
        (({"role": "assistant", "content": None},
          {"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                           "function": {"name": "f", "arguments": "{}"}}]}), None),
        (({"role": "assistant", "content": ""},), ""),  # an empty content string came
        (({"role": "assistant", "content": ""}, {"content": "Hi"}), "Hi"),
    ],
)
def test_content_is_none_unless_a_delta_carried_content(
    deltas: tuple[dict[str, Any], ...], content: str | None
) -> None:
    # Regression: an answer whose deltas carried no content string had content "".
    built = stream_chunk_builder(_chunks_of(*deltas))
    assert built.choices[0].message.content == content
    assert stream_chunk_builder(chunks_from_response(built)) == built


def test_building_twice_gives_independent_logprobs() -> None:
    chunks = _fixture_chunks("stream_content_logprobs.sse")
    acc = ChunkAccumulator()
    acc.add(chunks[0])
    acc.add(chunks[1])
    early = acc.build()
    for chunk in chunks[2:]:
        acc.add(chunk)
    assert [t["token"] for t in early.choices[0].logprobs["content"]] == ["Foo"]
    assert [t["token"] for t in acc.build().choices[0].logprobs["content"]] == ["Foo", "!"]


_PIECES = st.none() | st.lists(st.text(max_size=4), max_size=5)


@st.composite
def _answers(draw: st.DrawFn) -> tuple[bytes, list[StreamChunk]]:
    """A plain OpenAI body and the chunks its stream gives, as OpenAI streams an answer:
    a first delta opening content (or refusal), one delta and logprobs entry per token."""
    content, refusal = draw(_PIECES), draw(_PIECES)
    if content is not None:
        refusal = None  # OpenAI answers one or the other
    with_logprobs = draw(st.booleans())
    n = iter(range(1000))

    def entries(pieces: list[str] | None) -> list[dict[str, Any]] | None:
        return None if pieces is None else [_token(t, -next(n) / 8) for t in pieces]

    plain_lp = {"content": entries(content), "refusal": entries(refusal)}
    first: dict[str, Any] = {"role": "assistant"}
    if content is not None:
        first |= {"content": "", "refusal": None}
    elif refusal is not None:
        first |= {"content": None, "refusal": ""}
    lps = [{"content": [] if content is not None else None,
            "refusal": [] if refusal is not None else None}]
    deltas = [first]
    for key, pieces, tokens in (("content", content, plain_lp["content"]),
                                ("refusal", refusal, plain_lp["refusal"])):
        for piece, token in zip(pieces or (), tokens or (), strict=True):
            deltas.append({key: piece})
            lps.append({"content": [token] if key == "content" else None,
                        "refusal": [token] if key == "refusal" else None})
    choices = [{"index": 0, "delta": d, "logprobs": lp if with_logprobs else None,
                "finish_reason": None} for d, lp in zip(deltas, lps, strict=True)]
    choices.append({"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"})
    parser = PROVIDER.stream_parser(REQ)
    head = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o-2024-08-06"}
    chunks = [parser.feed(SSEEvent(json.dumps({**head, "choices": [c]}))) for c in choices]
    message = {"content": None if content is None else "".join(content),
               "refusal": None if refusal is None else "".join(refusal)}
    body = json.dumps({**head, "object": "chat.completion", "choices": [{
        "index": 0, "message": {"role": "assistant", **message},
        "logprobs": plain_lp if with_logprobs else None, "finish_reason": "stop"}]})
    return body.encode(), [c for c in chunks if c is not None]


@given(_answers())
def test_streamed_answer_equals_the_plain_one(answer: tuple[bytes, list[StreamChunk]]) -> None:
    body, chunks = answer
    plain = PROVIDER.parse_chat(body, REQ)
    assert stream_chunk_builder(chunks) == plain
    assert stream_chunk_builder(chunks_from_response(plain)) == plain
