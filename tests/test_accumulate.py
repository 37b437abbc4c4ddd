"""Accumulating chunks gives the plain answer; a plain answer as chunks gives itself back."""

from __future__ import annotations

from pathlib import Path

import pytest

from trillm import stream_chunk_builder
from trillm.accumulate import ChunkAccumulator, chunks_from_response
from trillm.providers.openai import PROVIDER
from trillm.sse import SSEDecoder
from trillm.types import ChatRequest

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
