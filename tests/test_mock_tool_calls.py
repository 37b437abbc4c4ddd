"""``mock_tool_calls=``: the offline mock answers with tool calls (LiteLLM's knob), so a
whole tool loop runs offline; on virtual time (in-process, no socket)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

import trillm
from trillm import errors

ASK = [{"role": "user", "content": "Weather in Paris and Tokyo?"}]
CALLS = [
    {"id": "call_a", "type": "function",
     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
    {"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}},  # id, JSON made
]


async def test_answer_plain_and_streamed_agree(autojump_clock: trio.testing.MockClock) -> None:
    async with trillm.Client() as client:
        plain = await client.acompletion("mock/x", ASK, mock_tool_calls=CALLS)
        async with client.stream("mock/x", ASK, mock_tool_calls=CALLS,
                                 mock_chunk_delay=0.1) as s:
            chunks = [c async for c in s]
    message = plain.choices[0].message
    assert plain.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert [(tc.id, tc.function.name, json.loads(tc.function.arguments))
            for tc in message.tool_calls or ()] == [
        ("call_a", "get_weather", {"city": "Paris"}), ("call_1", "get_weather", {"city": "Tokyo"})]
    assert len(chunks) == 4  # role, one chunk per call, the finish
    assert trillm.stream_chunk_builder(chunks) == plain


async def test_any_model_with_text_too() -> None:
    """Like ``mock_response``, any model is answered offline (no key, no traffic)."""
    r = await trillm.acompletion("anthropic/claude-x", ASK, mock_tool_calls=CALLS[:1],
                                 mock_response="Checking.")
    assert r.choices[0].message.content == "Checking."
    assert r.choices[0].message.tool_calls is not None
    assert r.choices[0].message.tool_calls[0].id == "call_a"


@pytest.mark.parametrize("bad", [
    "get_weather", [{"name": "f"}], [{"function": {"name": ""}}],
    [{"function": {"name": "f", "arguments": 3}}], [None],
])
async def test_bad_values_are_refused_before_sending(bad: Any) -> None:
    with pytest.raises(errors.BadRequestError, match="mock_tool_calls must be a list"):
        await trillm.acompletion("mock/x", ASK, mock_tool_calls=bad)


@pytest.mark.parametrize("stream", [False, True])
async def test_three_round_tool_loop_offline(
    autojump_clock: trio.testing.MockClock, stream: bool,
) -> None:
    """The test plays the model: each round says which calls the mock answers with."""
    running = most = 0

    async def get_weather(city: str) -> dict[str, Any]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await trio.sleep(1)
        running -= 1
        return {"city": city, "temp_c": len(city)}

    def to_fahrenheit(celsius: float) -> float:
        return celsius * 9 / 5 + 32

    script: list[dict[str, Any]] = [
        {"mock_tool_calls": CALLS},
        {"mock_tool_calls": [{"id": "call_f", "function": {
            "name": "to_fahrenheit", "arguments": '{"celsius": 5}'}}]},
        {"mock_response": "Paris 5 C (41 F), Tokyo 5 C."},
    ]
    messages: list[Any] = list(ASK)
    async with trillm.Client() as client:
        for round_ in script:
            if stream:
                async with client.stream("mock/loop", messages, **round_) as s:
                    answer = await s.final_response()
            else:
                answer = await client.acompletion("mock/loop", messages, **round_)
            message = answer.choices[0].message
            if not message.tool_calls:
                break
            start = trio.current_time()
            results = await trillm.run_tool_calls(message, [get_weather, to_fahrenheit])
            assert trio.current_time() - start == (1 if message.tool_calls[0].id == "call_a"
                                                   else 0)
            messages += [message, *results]
    assert most == 2
    assert message.content == "Paris 5 C (41 F), Tokyo 5 C."
    assert [m["content"] for m in messages if isinstance(m, dict) and m["role"] == "tool"] == [
        '{"city": "Paris", "temp_c": 5}', '{"city": "Tokyo", "temp_c": 5}', "41.0"]
    assert [m["tool_call_id"] for m in messages if isinstance(m, dict) and m["role"] == "tool"
            ] == ["call_a", "call_1", "call_f"]
