"""providers/anthropic.py as pure functions on recorded-style payloads.

The payloads are in tests/fixtures/anthropic/.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trillm import errors
from trillm.accumulate import stream_chunk_builder
from trillm.providers.anthropic import PROVIDER, AnthropicProvider
from trillm.providers.base import Provider, ProviderConfig
from trillm.sse import SSEDecoder, SSEEvent
from trillm.types import (
    ChatRequest,
    Choice,
    FunctionCall,
    Message,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
KEY = "sk-ant-test-abcdefghijklmnop"
CFG = ProviderConfig(name="anthropic", api_base="https://api.anthropic.com", api_key=KEY,
                     key_var="ANTHROPIC_API_KEY")
MODEL = "claude-3-5-sonnet-20241022"
MESSAGES = ({"role": "user", "content": "Hi"},)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def request(messages: Any = MESSAGES, **kw: Any) -> ChatRequest:
    return ChatRequest("anthropic", MODEL, tuple(messages), **kw)


def body_of(messages: Any = MESSAGES, **kw: Any) -> dict[str, Any]:
    body = PROVIDER.build_chat(request(messages, **kw), CFG).json
    assert isinstance(body, dict)
    return body


def decode(raw: bytes) -> list[SSEEvent]:
    dec = SSEDecoder()
    return dec.feed(raw) + dec.close()


def run_stream(raw: bytes, req: ChatRequest | None = None) -> tuple[list[StreamChunk], bool]:
    parser = PROVIDER.stream_parser(req or request(stream=True), CFG)
    chunks = [c for e in decode(raw) if (c := parser.feed(e)) is not None]
    return chunks, parser.done


def test_provider_instance_satisfies_the_protocol() -> None:
    provider: Provider = PROVIDER
    assert isinstance(PROVIDER, AnthropicProvider)
    assert provider.name == "anthropic"


# ---------------------------------------------------------------- build_chat


def test_build_chat_plain() -> None:
    spec = PROVIDER.build_chat(request(), CFG)
    assert spec.method == "POST"
    assert spec.url == "https://api.anthropic.com/v1/messages"
    assert spec.headers == (("x-api-key", KEY), ("anthropic-version", "2023-06-01"))
    assert spec.json == {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                         "max_tokens": 4096}
    assert (spec.provider, spec.model) == ("anthropic", MODEL)
    assert KEY not in repr(spec)


def test_headers_without_key_and_extra_headers_replace() -> None:
    cfg = ProviderConfig(name="anthropic", api_base="http://localhost:8080/")
    req = request(extra_headers={"anthropic-beta": "prompt-caching-2024-07-31",
                                 "Anthropic-Version": "2024-01-01"})
    spec = PROVIDER.build_chat(req, cfg)
    assert spec.url == "http://localhost:8080/v1/messages"
    assert spec.headers == (("anthropic-beta", "prompt-caching-2024-07-31"),
                            ("Anthropic-Version", "2024-01-01"))


def test_system_messages_moved_to_system() -> None:
    msgs = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "system", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Again"},
    ]
    body = body_of(msgs)
    assert body["system"] == "You are terse.\n\nAnswer in French."
    # the two user turns, no longer separated, are merged
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Hi"}, {"type": "text", "text": "Again"}]}]


def test_system_with_cache_control_kept_as_blocks() -> None:
    cached = {"type": "text", "text": "Big doc", "cache_control": {"type": "ephemeral"}}
    body = body_of([{"role": "system", "content": [cached]}, *MESSAGES])
    assert body["system"] == [cached]


def test_system_rejects_images() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
    with pytest.raises(errors.BadRequestError, match="system"):
        body_of([{"role": "system", "content": [part]}, *MESSAGES])


def test_consecutive_same_role_messages_merged() -> None:
    msgs = [
        {"role": "user", "content": "a"},
        {"role": "user", "content": [{"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "c"},
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": "e"},
    ]
    assert body_of(msgs)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant",
         "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}]},
        {"role": "user", "content": "e"},
    ]


def test_images_translated() -> None:
    msgs = [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg",
                                            "detail": "high"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.gif"}},
    ]}]
    assert body_of(msgs)["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image",
         "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.gif"}},
    ]


def test_non_base64_data_url_refused() -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}
    with pytest.raises(errors.BadRequestError, match="base64"):
        body_of([{"role": "user", "content": [part]}])


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]}}}


def test_tools_and_tool_choice_translated() -> None:
    bare = {"type": "function", "function": {"name": "now"}}
    native = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    body = body_of(params={"tools": [WEATHER_TOOL, bare, native], "tool_choice": "required"})
    assert body["tools"] == [
        {"name": "get_weather", "description": "Get the weather",
         "input_schema": WEATHER_TOOL["function"]["parameters"]},  # type: ignore[index]
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
        native,
    ]
    assert body["tool_choice"] == {"type": "any"}


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", {"type": "auto"}),
    ("required", {"type": "any"}),
    ("none", {"type": "none"}),
    ({"type": "function", "function": {"name": "get_weather"}},
     {"type": "tool", "name": "get_weather"}),
    ({"type": "tool", "name": "x"}, {"type": "tool", "name": "x"}),
])
def test_tool_choice_mapping(choice: Any, expected: dict[str, Any]) -> None:
    assert body_of(params={"tools": [WEATHER_TOOL], "tool_choice": choice})["tool_choice"] == (
        expected)


def test_parallel_tool_calls_false() -> None:
    body = body_of(params={"tools": [WEATHER_TOOL], "parallel_tool_calls": False})
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert "tool_choice" not in body_of(params={"parallel_tool_calls": False})


def test_tool_call_follow_up_turn() -> None:
    msgs = [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in SF and the time?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location": "SF"}'}},
            {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "15 degrees"},
        {"role": "tool", "tool_call_id": "toolu_2",
         "content": [{"type": "text", "text": "12:00"}]},
        {"role": "user", "content": "Thanks, and tomorrow?"},
    ]
    body = body_of(msgs, params={"tools": [WEATHER_TOOL]})
    assert body["system"] == "Use tools."
    assert body["messages"] == [
        {"role": "user", "content": "Weather in SF and the time?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"location": "SF"}},
            {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "15 degrees"},
            {"type": "tool_result", "tool_use_id": "toolu_2",
             "content": [{"type": "text", "text": "12:00"}]},
            {"type": "text", "text": "Thanks, and tomorrow?"},
        ]},
    ]


def test_assistant_tool_calls_without_content() -> None:
    msgs = [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]
    assert body_of(msgs)["messages"][1] == {
        "role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                          "input": {}}]}


def test_bad_tool_arguments_refused() -> None:
    msgs = [*MESSAGES, {"role": "assistant", "tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]
    with pytest.raises(errors.BadRequestError, match="not JSON"):
        body_of(msgs)


def test_params_mapped() -> None:
    body = body_of(stream=True, params={
        "temperature": 0.3, "top_p": 0.9, "top_k": 40, "stop": "END", "user": "u-1",
        "max_completion_tokens": 300, "n": 1, "stream_options": {"include_usage": True},
        "response_format": {"type": "text"},
    })
    assert body == {
        "model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.3,
        "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"], "metadata": {"user_id": "u-1"},
        "max_tokens": 300, "stream": True,
    }
    assert body_of(params={"stop": ["a", "b"], "max_tokens": 7})["stop_sequences"] == ["a", "b"]
    assert body_of(params={"max_tokens": 7})["max_tokens"] == 7


def test_max_tokens_default_exceeds_thinking_budget() -> None:
    thinking = {"type": "enabled", "budget_tokens": 8000}
    body = body_of(params={"thinking": thinking})
    assert body["thinking"] == thinking
    assert body["max_tokens"] == 4096 + 8000
    assert body_of(params={"thinking": thinking, "max_tokens": 9000})["max_tokens"] == 9000


def test_extra_body_merged_last() -> None:
    body = body_of(params={"temperature": 0.3},
                   extra_body={"temperature": 1.0, "thinking": {"type": "enabled",
                                                                "budget_tokens": 1024}})
    assert body["temperature"] == 1.0
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize("param", [
    {"n": 2}, {"logprobs": True}, {"frequency_penalty": 0.5}, {"presence_penalty": 0.1},
    {"seed": 42}, {"response_format": {"type": "json_object"}}, {"logit_bias": {"1": 2}},
    {"some_future_param": 1},
])
def test_unsupported_params_refused_or_dropped(param: dict[str, Any]) -> None:
    (name,) = param
    with pytest.raises(errors.BadRequestError, match="drop_params=True") as info:
        body_of(params={"temperature": 0.5, **param})
    assert repr(name) in str(info.value)
    assert info.value.provider == "anthropic"
    body = body_of(params={"temperature": 0.5, **param}, drop_params=True)
    assert name not in body
    assert body["temperature"] == 0.5


def test_build_chat_does_not_mutate_the_request() -> None:
    msgs = [{"role": "user", "content": [{"type": "text", "text": "a"}]},
            {"role": "user", "content": "b"}]
    snapshot = json.dumps(msgs)
    params = {"tools": [WEATHER_TOOL], "tool_choice": "auto", "parallel_tool_calls": False,
              "metadata": {"user_id": "x"}}
    params_snapshot = json.dumps(params)
    body_of(msgs, params=params)
    assert json.dumps(msgs) == snapshot
    assert json.dumps(params) == params_snapshot


# ---------------------------------------------------------------- parse_chat


def test_parse_plain_answer() -> None:
    r = PROVIDER.parse_chat(fixture_bytes("message_text.json"), request(), CFG,
                            {"request-id": "req_1"})
    assert r.id == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert r.model == MODEL
    assert r.object == "chat.completion"
    assert r.choices == (Choice(0, Message("assistant", "Hi! My name is Claude."), "stop"),)
    assert r.usage == Usage(2095, 503, 2598, {"cached_tokens": 0, "cache_creation_tokens": 0})
    assert r.raw["content"][0]["type"] == "text"
    assert r.headers == {"request-id": "req_1"}
    assert r["choices"][0]["message"]["content"] == "Hi! My name is Claude."


def test_parse_tool_call_with_cache_usage() -> None:
    r = PROVIDER.parse_chat(fixture_bytes("message_tool_use.json"), request())
    m = r.choices[0].message
    assert m.content == "I'll check the current weather in San Francisco for you."
    assert m.tool_calls == (
        ToolCall("toolu_01A09q90qw90lq917835lq9",
                 FunctionCall("get_weather",
                              '{"location": "San Francisco, CA", "unit": "celsius"}')),
        ToolCall("toolu_01B19q90qw90lq917835lq0", FunctionCall("get_time", "{}")),
    )
    assert r.choices[0].finish_reason == "tool_calls"
    assert r.usage == Usage(472 + 1024 + 2048, 91, 472 + 1024 + 2048 + 91,
                            {"cached_tokens": 2048, "cache_creation_tokens": 1024})


def test_parse_thinking() -> None:
    r = PROVIDER.parse_chat(fixture_bytes("message_thinking.json"), request())
    m = r.choices[0].message
    assert m.content == "Based on my analysis, the answer is 42."
    assert m.reasoning_content == "Let me analyze this step by step..."
    assert r.choices[0].finish_reason == "length"
    assert r.usage == Usage(50, 100, 150, {"cached_tokens": 0, "cache_creation_tokens": 0})


@pytest.mark.parametrize(("stop", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"), (None, None),
])
def test_stop_reason_mapping(stop: str | None, finish: str | None) -> None:
    body = json.dumps({"id": "m", "type": "message", "role": "assistant", "model": MODEL,
                       "content": [{"type": "text", "text": "x"}], "stop_reason": stop,
                       "usage": {"input_tokens": 1, "output_tokens": 1}}).encode()
    assert PROVIDER.parse_chat(body, request()).choices[0].finish_reason == finish


def test_parse_error_body_in_200_and_garbage() -> None:
    with pytest.raises(errors.ServiceUnavailableError):
        PROVIDER.parse_chat(fixture_bytes("error_529.json"), request(), CFG)
    with pytest.raises(errors.APIError, match="not valid JSON"):
        PROVIDER.parse_chat(b"<html>", request(), CFG)
    with pytest.raises(errors.APIError, match="unexpected answer"):
        PROVIDER.parse_chat(b'{"content": "oops"}', request(), CFG)


# ---------------------------------------------------------------- parse_error


@pytest.mark.parametrize(("status", "name", "cls"), [
    (400, "error_400.json", errors.BadRequestError),
    (401, "error_401.json", errors.AuthenticationError),
    (429, "error_429.json", errors.RateLimitError),
    (500, "error_500.json", errors.InternalServerError),
    (529, "error_529.json", errors.ServiceUnavailableError),
    (400, "error_prompt_too_long.json", errors.ContextWindowExceededError),
])
def test_parse_error(status: int, name: str, cls: type[errors.APIError]) -> None:
    headers = {"request-id": "req_011CSHoEeqs5C35K2UUqR7Fy", "retry-after": "7",
               "anthropic-ratelimit-requests-remaining": "0",
               "anthropic-ratelimit-tokens-reset": "2024-10-22T12:00:00Z"}
    err = PROVIDER.parse_error(status, headers, fixture_bytes(name), request(), CFG)
    assert type(err) is cls
    assert err.status_code == status
    assert err.provider == "anthropic"
    assert err.model == MODEL
    assert err.request_id == "req_011CSHoEeqs5C35K2UUqR7Fy"
    assert err.retry_after == 7.0
    assert err.headers["anthropic-ratelimit-requests-remaining"] == "0"
    message = json.loads(fixture_bytes(name))["error"]["message"]
    assert message in str(err)
    assert err.body["error"]["message"] == message


def test_overloaded_type_with_other_status_is_service_unavailable() -> None:
    err = PROVIDER.parse_error(500, {}, fixture_bytes("error_529.json"), request(), CFG)
    assert type(err) is errors.ServiceUnavailableError
    assert err.status_code == 500


def test_parse_error_scrubs_key_and_handles_non_json() -> None:
    body = json.dumps({"type": "error", "error": {
        "type": "authentication_error", "message": f"bad key {KEY}"}}).encode()
    err = PROVIDER.parse_error(401, {}, body, request(), CFG)
    assert KEY not in str(err)
    assert KEY not in json.dumps(err.body)
    assert "ANTHROPIC_API_KEY" in str(err)
    err = PROVIDER.parse_error(502, {}, b"<html>Bad gateway</html>", request(), CFG)
    assert type(err) is errors.InternalServerError


# ---------------------------------------------------------------- streams


def test_stream_text() -> None:
    chunks, done = run_stream(fixture_bytes("stream_text.sse"))
    assert done
    assert all(len(c.choices) == 1 for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == ["Hello", "!",
                                                                  " How can I help?"]
    assert {c.id for c in chunks} == {"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"}
    assert {c.model for c in chunks} == {MODEL}
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.usage == Usage(25, 15, 40, {"cached_tokens": 0, "cache_creation_tokens": 0})
    r = stream_chunk_builder(chunks)
    assert r.choices == (Choice(0, Message("assistant", "Hello! How can I help?"), "stop"),)


def test_stream_tool_call_arguments_split_across_deltas() -> None:
    chunks, done = run_stream(fixture_bytes("stream_tool_use.sse"))
    assert done
    deltas = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or ()]
    assert deltas[0] == ToolCallDelta(0, "toolu_01A09q90qw90lq917835lq9", "function",
                                      deltas[0].function)
    assert deltas[0].function is not None and deltas[0].function.name == "get_weather"
    assert sum(1 for d in deltas if d.index == 0) == 9  # start + 8 non-empty fragments
    assert all(d.id is None for d in deltas[1:] if d.index == 0)
    r = stream_chunk_builder(chunks)
    plain = PROVIDER.parse_chat(fixture_bytes("message_tool_use.json"), request())
    assert r == plain
    assert json.loads(r.choices[0].message.tool_calls[0].function.arguments) == {  # type: ignore[index]
        "location": "San Francisco, CA", "unit": "celsius"}


def test_stream_thinking_ignores_signature_citations_unknown() -> None:
    chunks, done = run_stream(fixture_bytes("stream_thinking.sse"))
    assert done
    assert [c.choices[0].delta.reasoning_content for c in chunks
            if c.choices[0].delta.reasoning_content] == ["Let me analyze", " this step by step..."]
    assert all(c.choices[0].delta.content is None for c in chunks
               if c.choices[0].delta.reasoning_content)
    assert stream_chunk_builder(chunks) == PROVIDER.parse_chat(
        fixture_bytes("message_thinking.json"), request())


def test_ping_and_unknown_events_give_none() -> None:
    parser = PROVIDER.stream_parser(request(stream=True))
    assert parser.feed(SSEEvent('{"type": "ping"}', "ping")) is None
    assert parser.feed(SSEEvent('{"type": "brand_new", "x": 1}', "brand_new")) is None
    assert parser.feed(SSEEvent('{"type": "content_block_stop", "index": 0}',
                                "content_block_stop")) is None
    assert not parser.done
    assert parser.feed(SSEEvent('{"type": "message_stop"}', "message_stop")) is None
    assert parser.done


def test_in_stream_error_event() -> None:
    parser = PROVIDER.stream_parser(request(stream=True), CFG)
    evs = decode(fixture_bytes("stream_error.sse"))
    for e in evs[:-1]:
        parser.feed(e)
    with pytest.raises(errors.ServiceUnavailableError) as info:
        parser.feed(evs[-1])
    assert info.value.status_code == 529
    assert "Overloaded" in str(info.value)


@pytest.mark.parametrize(("kind", "cls"), [
    ("rate_limit_error", errors.RateLimitError),
    ("overloaded_error", errors.ServiceUnavailableError),
    ("api_error", errors.InternalServerError),
    ("invalid_request_error", errors.BadRequestError),
    ("authentication_error", errors.AuthenticationError),
    ("permission_error", errors.PermissionDeniedError),
    ("not_found_error", errors.NotFoundError),
    ("something_new", errors.InternalServerError),
])
def test_in_stream_error_classes(kind: str, cls: type[errors.APIError]) -> None:
    parser = PROVIDER.stream_parser(request(stream=True), CFG)
    data = json.dumps({"type": "error", "error": {"type": kind, "message": "m"}})
    with pytest.raises(cls) as info:
        parser.feed(SSEEvent(data, "error"))
    assert type(info.value) is cls


def test_malformed_stream_event() -> None:
    parser = PROVIDER.stream_parser(request(stream=True), CFG)
    with pytest.raises(errors.StreamError):
        parser.feed(SSEEvent("{not json", "message_start"))
    with pytest.raises(errors.StreamError):
        parser.feed(SSEEvent('{"type": "content_block_delta", "index": 0}'))
    with pytest.raises(errors.StreamError):
        parser.feed(SSEEvent("[1, 2]"))


# ---------------------------------------------------------------- agreement

_text = st.text(max_size=30)
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8,
)
_block = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, _text),
    st.builds(lambda t: {"type": "thinking", "thinking": t, "signature": "sig"}, _text),
    st.builds(lambda n, i: {"type": "tool_use", "name": n, "input": i},
              st.text("abcdefgh_", min_size=1, max_size=10),
              st.dictionaries(st.text(max_size=6), _json_value, max_size=4)),
)
_usage = st.fixed_dictionaries({
    "input_tokens": st.integers(0, 10**6),
    "output_tokens": st.integers(0, 10**5),
    "cache_read_input_tokens": st.none() | st.integers(0, 10**6),
    "cache_creation_input_tokens": st.none() | st.integers(0, 10**6),
})
_answer = st.fixed_dictionaries({
    "content": st.lists(_block, max_size=5),
    "stop_reason": st.sampled_from(
        ["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal", "pause_turn"]),
    "usage": _usage,
})


def _split(s: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(s) + 1) for c in cuts} | {0, len(s)})
    return [s[a:b] for a, b in itertools.pairwise(points)]


def _render(answer: dict[str, Any], cuts: list[int]) -> tuple[bytes, bytes]:
    """The same generated answer as a Messages JSON body and as its SSE event stream."""
    content = []
    for i, b in enumerate(answer["content"]):
        b = dict(b)
        if b["type"] == "tool_use":
            b = {"type": "tool_use", "id": f"toolu_{i:04d}", **b}
        content.append(b)
    usage = answer["usage"]
    message = {"id": "msg_gen", "type": "message", "role": "assistant", "model": MODEL,
               "content": content, "stop_reason": answer["stop_reason"],
               "stop_sequence": None, "usage": usage}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": {
        **message, "content": [], "stop_reason": None,
        "usage": {**usage, "output_tokens": 1}}}]
    for i, b in enumerate(content):
        if b["type"] == "text":
            events.append({"type": "content_block_start", "index": i,
                           "content_block": {"type": "text", "text": ""}})
            events += [{"type": "content_block_delta", "index": i,
                        "delta": {"type": "text_delta", "text": p}}
                       for p in _split(b["text"], cuts)]
        elif b["type"] == "thinking":
            events.append({"type": "content_block_start", "index": i,
                           "content_block": {"type": "thinking", "thinking": ""}})
            events += [{"type": "content_block_delta", "index": i,
                        "delta": {"type": "thinking_delta", "thinking": p}}
                       for p in _split(b["thinking"], cuts)]
            events.append({"type": "content_block_delta", "index": i,
                           "delta": {"type": "signature_delta", "signature": "sig"}})
        else:
            events.append({"type": "content_block_start", "index": i, "content_block": {
                "type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}})
            args = json.dumps(b["input"]) if b["input"] else ""
            events += [{"type": "content_block_delta", "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": p}}
                       for p in _split(args, cuts)]
        events.append({"type": "ping"})
        events.append({"type": "content_block_stop", "index": i})
    events.append({"type": "message_delta",
                   "delta": {"stop_reason": answer["stop_reason"], "stop_sequence": None},
                   "usage": {"output_tokens": usage["output_tokens"]}})
    events.append({"type": "message_stop"})
    sse = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    return json.dumps(message).encode(), sse.encode()


@settings(max_examples=200, deadline=None)
@given(_answer, st.lists(st.integers(0, 1000), max_size=6))
def test_streamed_and_plain_answers_agree(answer: dict[str, Any], cuts: list[int]) -> None:
    body, sse = _render(answer, cuts)
    plain = PROVIDER.parse_chat(body, request())
    chunks, done = run_stream(sse)
    assert done
    assert all(len(c.choices) >= 1 for c in chunks)
    streamed = stream_chunk_builder(chunks)
    assert streamed == plain
    assert streamed.usage == plain.usage
    assert streamed.choices[0].message == plain.choices[0].message


# ---------------------------------------------------------------- undecodable bodies

DEEP = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError on it


@pytest.mark.parametrize(
    ("status", "cls"),
    [(500, errors.InternalServerError), (429, errors.RateLimitError),
     (529, errors.ServiceUnavailableError)],
)
def test_error_body_nested_too_deeply_is_the_error_of_its_status(
    status: int, cls: type[errors.APIError]
) -> None:
    err = PROVIDER.parse_error(status, {}, DEEP, request(), CFG)
    assert type(err) is cls
    assert err.status_code == status
    assert isinstance(err.body, str) and err.body.startswith("[[[") and len(err.body) <= 2000


def test_answer_nested_too_deeply_is_an_unexpected_answer() -> None:
    for body in (DEEP, b'{"content": ' + DEEP + b"}"):
        with pytest.raises(errors.APIError, match="nested too deeply") as info:
            PROVIDER.parse_chat(body, request(), CFG)
        assert type(info.value) is errors.APIError


def test_stream_of_an_answer_without_text_gives_the_plain_empty_content() -> None:
    # The plain answer's content is "" when it holds no text and no tool call; the
    # stream says so in its finishing chunk (the accumulator leaves content None
    # unless some delta carried a content string).
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL,
               "content": [], "stop_reason": "end_turn", "stop_sequence": None,
               "usage": {"input_tokens": 5, "output_tokens": 0}}
    events = [
        {"type": "message_start", "message": {**message, "stop_reason": None}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 0}},
        {"type": "message_stop"},
    ]
    sse = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    chunks, done = run_stream(sse.encode())
    plain = PROVIDER.parse_chat(json.dumps(message).encode(), request())
    assert done
    assert plain.choices[0].message.content == ""
    assert stream_chunk_builder(chunks) == plain


def test_finished_only_at_the_stop_reason() -> None:
    parser = PROVIDER.stream_parser(request(stream=True), CFG)
    parser.feed(SSEEvent(json.dumps({"type": "message_start", "message": {
        "id": "m", "model": MODEL, "usage": {"input_tokens": 1}}}), "message_start"))
    parser.feed(SSEEvent('{"type": "message_stop"}', "message_stop"))
    assert parser.done and not parser.finished  # an end marker without a stop reason
    parser = PROVIDER.stream_parser(request(stream=True), CFG)
    finished = []
    for event in decode(fixture_bytes("stream_text.sse")):
        parser.feed(event)
        finished.append((event.event, parser.finished))
    assert next(name for name, f in finished if f) == "message_delta"
    assert finished[-1] == ("message_stop", True)
