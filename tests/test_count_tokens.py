"""trillm.acount_tokens: each provider's own endpoint, the mock's word count, a 404."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import trillm
from trillm import errors

MSGS = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


def recorder(seen: list[httpx.Request], answer: dict[str, Any],
             status: int = 200) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return httpx.Response(status, json=answer)
    return httpx.MockTransport(handler)


async def count(transport: httpx.MockTransport, model: str, **kw: Any) -> int:
    async with trillm.Client(transport=transport, api_key="sk-count") as c:
        return await c.acount_tokens(model, MSGS, **kw)


async def test_openai_posts_responses_input_tokens() -> None:
    seen: list[httpx.Request] = []
    n = await count(recorder(seen, {"object": "response.input_tokens", "input_tokens": 42}),
                    "openai/gpt-4o-mini", tools=TOOLS, system="Be brief.")
    assert n == 42
    (req,) = seen
    assert str(req.url) == "https://api.openai.com/v1/responses/input_tokens"
    assert req.headers["authorization"] == "Bearer sk-count"
    body = json.loads(req.content)
    assert body == {
        "model": "gpt-4o-mini",
        "input": [{"role": "system", "content": "Be brief."}, *MSGS],
        "tools": [{"type": "function", **TOOLS[0]["function"]}],  # the flat form
    }


async def test_openai_tool_turns_become_input_items() -> None:
    seen: list[httpx.Request] = []
    messages = [
        *MSGS,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": [{"type": "text", "text": "and?"}]},
    ]
    async with trillm.Client(transport=recorder(seen, {"input_tokens": 9}), api_key="k") as c:
        assert await c.acount_tokens("openai/gpt-4o", messages) == 9
    assert json.loads(seen[0].content)["input"] == [
        *MSGS,
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"role": "user", "content": [{"type": "input_text", "text": "and?"}]},
    ]


async def test_anthropic_posts_messages_count_tokens() -> None:
    seen: list[httpx.Request] = []
    n = await count(recorder(seen, {"input_tokens": 17}), "anthropic/claude-3-5-haiku-latest",
                    tools=TOOLS, system="Be brief.")
    assert n == 17
    (req,) = seen
    assert str(req.url) == "https://api.anthropic.com/v1/messages/count_tokens"
    assert req.headers["x-api-key"] == "sk-count"
    body = json.loads(req.content)
    assert set(body) == {"model", "messages", "system", "tools"}  # no max_tokens
    assert body["system"] == "Be brief."
    assert body["tools"][0]["name"] == "get_weather"
    assert body["tools"][0]["input_schema"]["properties"] == {"city": {"type": "string"}}


async def test_gemini_posts_count_tokens() -> None:
    seen: list[httpx.Request] = []
    n = await count(recorder(seen, {"totalTokens": 11}), "gemini/gemini-2.0-flash",
                    system="Be brief.")
    assert n == 11
    (req,) = seen
    assert req.url.path == "/v1beta/models/gemini-2.0-flash:countTokens"
    body = json.loads(req.content)["generateContentRequest"]
    assert body["model"] == "models/gemini-2.0-flash"
    assert body["contents"] == [{"role": "user",
                                 "parts": [{"text": "What is the weather in Paris?"}]}]
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]


async def test_mock_counts_words() -> None:
    assert await trillm.acount_tokens("mock/x", MSGS) == 6
    assert await trillm.acount_tokens("mock/x", MSGS, system="Be brief.") == 8


async def test_a_server_without_the_endpoint_is_a_clear_not_found() -> None:
    seen: list[httpx.Request] = []
    transport = recorder(seen, {"error": {"message": "Not Found"}}, status=404)
    async with trillm.Client(transport=transport) as c:
        with pytest.raises(errors.NotFoundError, match="no token-counting endpoint") as caught:
            await c.acount_tokens("vllm/llama", MSGS, api_base="http://127.0.0.1:8000/v1")
    assert str(seen[0].url) == "http://127.0.0.1:8000/v1/responses/input_tokens"
    assert caught.value.status_code == 404 and len(seen) == 1  # never retried


async def test_a_provider_without_one_is_refused_before_traffic() -> None:
    async with trillm.Client() as c:
        with pytest.raises(errors.BadRequestError, match="token counts are not available"):
            await c.acount_tokens("azure/my-deployment", MSGS, api_key="k",
                                  api_base="https://x.openai.azure.com", api_version="2024-10-21")


async def test_retried_and_observed_like_any_call(autojump_clock: trio.testing.MockClock) -> None:
    statuses = [503]

    def handler(request: httpx.Request) -> httpx.Response:
        if statuses:
            return httpx.Response(statuses.pop(), json={"error": {"message": "busy"}})
        return httpx.Response(200, json={"input_tokens": 5})

    ends: list[Any] = []

    class Hook:
        def on_call_end(self, state: Any, result: Any) -> None:
            ends.append(result)

    async with trillm.Client(transport=httpx.MockTransport(handler), api_key="k",
                             hooks=[Hook()], retry=trillm.RetryPolicy(jitter=0)) as c:
        assert await c.acount_tokens("openai/gpt-4o", MSGS) == 5
    assert ends[0].attempts == 2 and ends[0].duration == 0.5 and ends[0].response == 5


async def test_bad_messages_are_refused() -> None:
    with pytest.raises(errors.BadRequestError):
        await trillm.acount_tokens("mock/x", [])
