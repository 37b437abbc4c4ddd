"""``mock_response=`` takes a whole answer too, as LiteLLM's does: a chat completion dict or
a ``ModelResponse`` (several choices, tool calls, usage), plain and streamed (the chunks
that answer amounts to), with any model and nothing sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.accumulate import stream_chunk_builder
from trillm.types import Choice, FunctionCall, Message, ModelResponse, ToolCall, Usage

MESSAGES = [{"role": "user", "content": "hi"}]
WHOLE: dict[str, Any] = {
    "id": "chatcmpl-scripted", "object": "chat.completion", "created": 42, "model": "gpt-4o",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "First answer here"},
         "finish_reason": "stop"},
        {"index": 1, "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_a", "type": "function",
             "function": {"name": "lookup", "arguments": '{"q": "x"}'}},
            {"id": "call_b", "type": "function",
             "function": {"name": "fetch", "arguments": '{"url": "u"}'}}]},
         "finish_reason": "tool_calls"},
    ],
    "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
}


def check_whole(r: ModelResponse) -> None:
    assert (r.id, r.created, r.model) == ("chatcmpl-scripted", 42, "gpt-4o")
    first, second = r.choices
    assert first.message.content == "First answer here" and first.finish_reason == "stop"
    calls = second.message.tool_calls
    assert calls is not None and second.finish_reason == "tool_calls"
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("call_a", "lookup", {"q": "x"}), ("call_b", "fetch", {"url": "u"})]
    assert r.usage == Usage(11, 7, 18)


async def test_a_dict_answers_as_given_with_any_model() -> None:
    r = await trillm.acompletion(model="anthropic/claude-3-5-haiku-latest", messages=MESSAGES,
                                 mock_response=WHOLE)
    check_whole(r)


async def test_a_dict_streamed_gives_the_chunks_of_that_answer(
    autojump_clock: trio.testing.MockClock
) -> None:
    chunks = []
    async with trillm.stream(model="gpt-4o", messages=MESSAGES, mock_response=WHOLE,
                             mock_chunk_delay=0.5) as s:
        async for chunk in s:
            chunks.append(chunk)
    built = stream_chunk_builder(chunks)
    check_whole(built)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].index == 0]
    assert [p for p in pieces if p] == ["First", " answer", " here"]
    assert chunks[-1].usage == Usage(11, 7, 18)
    assert trio.current_time() == 0.5 * len(chunks)  # one event per chunk, on virtual time
    assert await s.final_response() == built


async def test_a_model_response_and_what_is_filled_in() -> None:
    given = ModelResponse("", 0, "", (Choice(0, Message(content="only this"), "stop"),))
    r = await trillm.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES,
                                 mock_response=given)
    assert r.choices[0].message.content == "only this"
    assert r.model == "openai/gpt-4o-mini"  # the model asked for, as the echo says it
    assert r.id.startswith("mock-") and r.created > 0
    async with trillm.stream(model="openai/gpt-4o-mini", messages=MESSAGES,
                             mock_response=given) as s:
        streamed = await s.final_response()
    assert streamed == r


async def test_a_minimal_dict_finishes_by_what_it_holds() -> None:
    r = await trillm.acompletion(model="gpt-4o", messages=MESSAGES, mock_response={
        "choices": [{"message": {"content": "hi"}},
                    {"message": {"tool_calls": [{"id": "c", "function": {
                        "name": "f", "arguments": "{}"}}]}}]})
    assert [c.finish_reason for c in r.choices] == ["stop", "tool_calls"]
    assert [c.index for c in r.choices] == [0, 1]
    assert r.usage is None


def test_the_sync_api_takes_a_dict() -> None:
    check_whole(trillm.completion(model="gpt-4o", messages=MESSAGES, mock_response=WHOLE))


async def test_the_responses_api_answers_the_first_choices_text() -> None:
    r = await trillm.aresponses("gpt-4o", "hi", mock_response=ModelResponse(
        "", 0, "", (Choice(0, Message(content="from the whole answer"), "stop"),)))
    assert r.output_text == "from the whole answer"


@pytest.mark.parametrize(("given", "match"), [
    ({"content": "x"}, "is a chat completion"),
    ({"choices": []}, "is a chat completion"),
    ({"choices": ["x"]}, "is a chat completion"),
    ({"choices": [{"message": {"content": 5}}], "usage": {"prompt_tokens": "many"}},
     "not a chat completion"),
    (3.5, "must be a string, an exception instance, a ModelResponse or a chat completion dict"),
])
async def test_bad_whole_answers_are_refused_before_anything_is_sent(given: Any,
                                                                      match: str) -> None:
    with pytest.raises(errors.BadRequestError, match=match):
        await trillm.acompletion(model="gpt-4o", messages=MESSAGES, mock_response=given)


async def test_tool_calls_go_in_the_whole_answer_not_beside_it() -> None:
    whole = ModelResponse("x", 1, "m", (Choice(0, Message(tool_calls=(
        ToolCall("c", FunctionCall("f", "{}")),)), "tool_calls"),))
    with pytest.raises(errors.BadRequestError, match="in the response's message"):
        await trillm.acompletion(model="gpt-4o", messages=MESSAGES, mock_response=whole,
                                 mock_tool_calls=[{"function": {"name": "g"}}])
