"""trillm.acount_tokens: each provider's own endpoint, the mock's word count, a 404."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.testing import FakeLLM

MSGS = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def counter(answer: dict[str, Any], status: int = 200) -> FakeLLM:
    """A fake answering *answer* (with *status*) to every request."""
    fake = FakeLLM()
    fake.on().respond(answer, status=status)
    return fake


async def count(fake: FakeLLM, model: str, **kw: Any) -> int:
    async with trillm.Client(transport=fake.transport(), api_key="sk-count") as c:
        return await c.acount_tokens(model, MSGS, **kw)


async def test_openai_posts_responses_input_tokens() -> None:
    fake = counter({"object": "response.input_tokens", "input_tokens": 42})
    n = await count(fake, "openai/gpt-4o-mini", tools=TOOLS, system="Be brief.")
    assert n == 42
    (req,) = fake.requests
    assert req.url == "https://api.openai.com/v1/responses/input_tokens"
    assert req.sent_secret("authorization", "Bearer sk-count")
    body = json.loads(req.body)
    assert body == {
        "model": "gpt-4o-mini",
        "input": [{"role": "system", "content": "Be brief."}, *MSGS],
        "tools": [{"type": "function", **TOOLS[0]["function"]}],  # the flat form
    }


async def test_openai_tool_turns_become_input_items() -> None:
    fake = counter({"input_tokens": 9})
    messages = [
        *MSGS,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": [{"type": "text", "text": "and?"}]},
    ]
    async with trillm.Client(transport=fake.transport(), api_key="k") as c:
        assert await c.acount_tokens("openai/gpt-4o", messages) == 9
    assert json.loads(fake.requests[0].body)["input"] == [
        *MSGS,
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"role": "user", "content": [{"type": "input_text", "text": "and?"}]},
    ]


async def test_anthropic_posts_messages_count_tokens() -> None:
    fake = counter({"input_tokens": 17})
    n = await count(fake, "anthropic/claude-3-5-haiku-latest", tools=TOOLS, system="Be brief.")
    assert n == 17
    (req,) = fake.requests
    assert req.url == "https://api.anthropic.com/v1/messages/count_tokens"
    assert req.sent_secret("x-api-key", "sk-count")
    body = json.loads(req.body)
    assert set(body) == {"model", "messages", "system", "tools"}  # no max_tokens
    assert body["system"] == "Be brief."
    assert body["tools"][0]["name"] == "get_weather"
    assert body["tools"][0]["input_schema"]["properties"] == {"city": {"type": "string"}}


async def test_gemini_posts_count_tokens() -> None:
    fake = counter({"totalTokens": 11})
    n = await count(fake, "gemini/gemini-2.0-flash", system="Be brief.")
    assert n == 11
    (req,) = fake.requests
    assert req.path == "/v1beta/models/gemini-2.0-flash:countTokens"
    body = json.loads(req.body)["generateContentRequest"]
    assert body["model"] == "models/gemini-2.0-flash"
    assert body["contents"] == [{"role": "user",
                                 "parts": [{"text": "What is the weather in Paris?"}]}]
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]


async def test_mock_counts_words() -> None:
    assert await trillm.acount_tokens("mock/x", MSGS) == 6
    assert await trillm.acount_tokens("mock/x", MSGS, system="Be brief.") == 8


async def test_a_server_without_the_endpoint_is_a_clear_not_found() -> None:
    fake = counter({"error": {"message": "Not Found"}}, status=404)
    async with trillm.Client(transport=fake.transport()) as c:
        with pytest.raises(errors.NotFoundError, match="no token-counting endpoint") as caught:
            await c.acount_tokens("vllm/llama", MSGS, api_base="http://127.0.0.1:8000/v1")
    assert fake.requests[0].url == "http://127.0.0.1:8000/v1/responses/input_tokens"
    assert caught.value.status_code == 404 and len(fake.requests) == 1  # never retried


async def test_a_provider_without_one_is_refused_before_traffic() -> None:
    async with trillm.Client() as c:
        with pytest.raises(errors.BadRequestError, match="token counts are not available"):
            await c.acount_tokens("azure/my-deployment", MSGS, api_key="k",
                                  api_base="https://x.openai.azure.com", api_version="2024-10-21")


async def test_retried_and_observed_like_any_call(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().fail(503, body={"error": {"message": "busy"}}).respond({"input_tokens": 5})
    ends: list[Any] = []

    class Hook:
        def on_call_end(self, state: Any, result: Any) -> None:
            ends.append(result)

    async with trillm.Client(transport=fake.transport(), api_key="k",
                             hooks=[Hook()], retry=trillm.RetryPolicy(jitter=0)) as c:
        assert await c.acount_tokens("openai/gpt-4o", MSGS) == 5
    assert ends[0].attempts == 2 and ends[0].duration == 0.5 and ends[0].response == 5
    assert [(r.started_at, r.status) for r in fake.requests] == [(0, 503), (0.5, 200)]


async def test_bad_messages_are_refused() -> None:
    with pytest.raises(errors.BadRequestError):
        await trillm.acount_tokens("mock/x", [])
