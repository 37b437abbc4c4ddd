"""providers/openai.py as pure functions on recorded-style payloads (tests/fixtures/openai/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trillm import errors
from trillm.providers.azure import PROVIDER as AZURE
from trillm.providers.base import Provider, ProviderConfig
from trillm.providers.openai import PROVIDER, OpenAIProvider, OpenAIStreamParser
from trillm.routing import parse_model, resolve_config
from trillm.sse import SSEDecoder, SSEEvent
from trillm.types import (
    EMPTY_STREAM_CHOICES,
    ChatRequest,
    Choice,
    FunctionCall,
    FunctionDelta,
    Message,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)

FIXTURES = Path(__file__).parent / "fixtures" / "openai"
KEY = "sk-test-abcdefghijklmnop"
CFG = ProviderConfig(name="openai", api_base="https://api.openai.com/v1", api_key=KEY,
                     key_var="OPENAI_API_KEY")
MESSAGES = ({"role": "user", "content": "Hi"},)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def request(provider: str = "openai", model: str = "gpt-4o-mini", **kw: Any) -> ChatRequest:
    return ChatRequest(provider, model, MESSAGES, **kw)


def events(name: str) -> list[SSEEvent]:
    dec = SSEDecoder()
    return dec.feed(fixture_bytes(name)) + dec.close()


def run_stream(name: str, req: ChatRequest | None = None) -> tuple[list[StreamChunk], bool]:
    parser = PROVIDER.stream_parser(req or request(stream=True))
    chunks = [c for e in events(name) if (c := parser.feed(e)) is not None]
    return chunks, parser.done


def accumulate_tool_calls(chunks: list[StreamChunk]) -> tuple[ToolCall, ...]:
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for tc in chunk.choices[0].delta.tool_calls or ():
            call = calls.setdefault(tc.index, {"id": "", "type": "", "name": "", "arguments": ""})
            call["id"] = tc.id or call["id"]
            call["type"] = tc.type or call["type"]
            if tc.function is not None:
                call["name"] += tc.function.name or ""
                call["arguments"] += tc.function.arguments or ""
    return tuple(
        ToolCall(c["id"], FunctionCall(c["name"], c["arguments"]), c["type"])
        for _, c in sorted(calls.items())
    )


def test_provider_instance_satisfies_the_protocol() -> None:
    provider: Provider = PROVIDER
    assert isinstance(PROVIDER, OpenAIProvider)
    assert provider.name == "openai"


# ---------------------------------------------------------------- build_chat

ALL_PARAMS: dict[str, Any] = {
    "temperature": 0.7,
    "max_tokens": 100,
    "max_completion_tokens": 200,
    "top_p": 0.9,
    "stop": ["\n\n", "END"],
    "n": 2,
    "seed": 42,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "response_format": {"type": "json_object"},
    "stream_options": {"include_usage": False},
    "user": "user-1234",
    "frequency_penalty": 0.5,
    "presence_penalty": -0.5,
    "logprobs": True,
    "top_logprobs": 3,
    "logit_bias": {"50256": -100},
    "parallel_tool_calls": False,
    "reasoning_effort": "low",
    "service_tier": "flex",
    "metadata": {"k": "v"},
    "some_future_param": {"nested": [1, 2]},
}


def test_build_chat_plain() -> None:
    spec = PROVIDER.build_chat(request(params={"temperature": 0.2}), CFG)
    assert spec.method == "POST"
    assert spec.url == "https://api.openai.com/v1/chat/completions"
    assert spec.headers == (("authorization", f"Bearer {KEY}"),)
    assert spec.json == {"model": "gpt-4o-mini", "messages": list(MESSAGES), "temperature": 0.2}
    assert spec.provider == "openai"
    assert spec.model == "gpt-4o-mini"
    assert KEY not in repr(spec)


def test_build_chat_passes_every_param_through_unchanged() -> None:
    req = request("groq", "llama-3.1-8b-instant", stream=True, params=ALL_PARAMS)
    cfg = ProviderConfig(name="groq", api_base="https://api.groq.com/openai/v1", api_key="gsk_1")
    body = PROVIDER.build_chat(req, cfg).json
    assert body == {"model": "llama-3.1-8b-instant", "messages": list(MESSAGES), **ALL_PARAMS,
                    "stream": True}
    assert body["stream_options"] == {"include_usage": False}  # the caller's, untouched


def test_extra_body_is_merged_on_top_and_extra_headers_added() -> None:
    req = request(
        params={"temperature": 0.2, "top_p": 1.0},
        extra_body={"temperature": 0.9, "guided_json": {"type": "object"}},
        extra_headers={"X-Title": "my app", "OpenAI-Organization": "org-1"},
    )
    spec = PROVIDER.build_chat(req, CFG)
    assert spec.json["temperature"] == 0.9
    assert spec.json["top_p"] == 1.0
    assert spec.json["guided_json"] == {"type": "object"}
    assert spec.headers == (
        ("authorization", f"Bearer {KEY}"),
        ("X-Title", "my app"),
        ("OpenAI-Organization", "org-1"),
    )


def test_extra_headers_can_replace_authorization() -> None:
    req = request(extra_headers={"Authorization": "Bearer other-token"})
    assert PROVIDER.build_chat(req, CFG).headers == (("Authorization", "Bearer other-token"),)


def test_no_authorization_header_without_a_key() -> None:
    cfg = ProviderConfig(name="ollama", api_base="http://localhost:11434/v1")
    spec = PROVIDER.build_chat(request("ollama", "llama3.1", extra_headers={"x-a": "b"}), cfg)
    assert spec.url == "http://localhost:11434/v1/chat/completions"
    assert spec.headers == (("x-a", "b"),)
    assert "None" not in repr(spec.headers)


def test_requests_share_their_url_and_auth_header_per_base_and_key() -> None:
    # built once per base URL and key: a request in flight holds no copy of its own
    first, second = PROVIDER.build_chat(request(), CFG), PROVIDER.build_chat(request(), CFG)
    assert first.url is second.url and first.headers is second.headers
    other = ProviderConfig(name="openai", api_base="https://example.test/v1", api_key="sk-other")
    spec = PROVIDER.build_chat(request(), other)
    assert spec.url == "https://example.test/v1/chat/completions"
    assert spec.headers == (("authorization", "Bearer sk-other"),)
    assert PROVIDER.build_chat(request(), CFG).headers == (("authorization", f"Bearer {KEY}"),)


def test_stream_body_for_openai_asks_for_usage() -> None:
    body = PROVIDER.build_chat(request(stream=True), CFG).json
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_stream_body_for_other_presets_adds_no_stream_options() -> None:
    cfg = ProviderConfig(name="vllm", api_base="http://localhost:8000/v1")
    body = PROVIDER.build_chat(request("vllm", "m", stream=True), cfg).json
    assert body == {"model": "m", "messages": list(MESSAGES), "stream": True}


def test_non_stream_body_has_no_stream_fields() -> None:
    req = request(params={"stream": True, "stream_options": {"include_usage": True}})
    body = PROVIDER.build_chat(req, CFG).json
    assert "stream" not in body
    assert "stream_options" not in body


def test_build_chat_does_not_mutate_the_request() -> None:
    params = {"temperature": 0.1}
    extra = {"a": 1}
    req = request(stream=True, params=params, extra_body=extra)
    PROVIDER.build_chat(req, CFG)
    assert params == {"temperature": 0.1}
    assert extra == {"a": 1}


# ---------------------------------------------------------------- parse_chat


def test_parse_plain_answer() -> None:
    body = fixture_bytes("chat_completion.json")
    r = PROVIDER.parse_chat(body, request())
    assert r.id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert r.created == 1741569952
    assert r.model == "gpt-4o-mini-2024-07-18"
    assert r.object == "chat.completion"
    assert r.system_fingerprint == "fp_06737a9306"
    assert r.choices == (
        Choice(0, Message("assistant", "Hello! How can I assist you today?"), "stop"),
    )
    assert r.usage == Usage(
        19, 10, 29,
        {"cached_tokens": 0, "audio_tokens": 0},
        {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0,
         "rejected_prediction_tokens": 0},
    )
    assert r.raw == json.loads(body)  # unknown fields (service_tier, annotations) kept here
    assert r["choices"][0]["message"]["content"] == "Hello! How can I assist you today?"


def test_parse_tool_call() -> None:
    r = PROVIDER.parse_chat(fixture_bytes("chat_tool_call.json"), request())
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls == (
        ToolCall("call_abc123", FunctionCall(
            "get_current_weather", '{\n"location": "Boston, MA",\n"unit": "celsius"\n}')),
        ToolCall("call_def456", FunctionCall(
            "get_current_time", '{"timezone": "America/New_York"}')),
    )
    assert json.loads(choice.message.tool_calls[0].function.arguments)["unit"] == "celsius"


def test_parse_tolerates_a_minimal_compatible_answer() -> None:
    body = json.dumps({"choices": [{"message": {"content": "hi", "reasoning": "thought"}}]})
    r = PROVIDER.parse_chat(body.encode(), request("ollama", "llama3.1"))
    assert (r.id, r.created, r.model, r.usage, r.system_fingerprint) == (
        "", 0, "llama3.1", None, None)
    assert r.choices == (Choice(0, Message(content="hi", reasoning_content="thought")),)


def test_parse_fills_total_tokens_and_odd_tool_calls() -> None:
    body = {
        "id": "x", "created": 1, "model": "m",
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "reasoning_content": "why",
            "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}}],
    }
    r = PROVIDER.parse_chat(json.dumps(body).encode(), request())
    assert r.usage == Usage(3, 4, 7)
    assert r.choices[0].message.reasoning_content == "why"
    assert r.choices[0].message.tool_calls == (ToolCall("call_0", FunctionCall("f", '{"a": 1}')),)


@pytest.mark.parametrize(
    ("usage", "total"),
    [
        ({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 0}, 0),
        ({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 9}, 9),
        ({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": None}, 7),
        ({"prompt_tokens": 3, "completion_tokens": 4}, 7),
    ],
)
def test_usage_keeps_the_servers_total_tokens(usage: dict[str, Any], total: int) -> None:
    body = {"choices": [{"message": {"content": "hi"}}], "usage": usage}
    r = PROVIDER.parse_chat(json.dumps(body).encode(), request())
    assert r.usage == Usage(3, 4, total)
    chunk = OpenAIStreamParser("openai", "gpt-4o-mini").feed(
        SSEEvent(json.dumps({"choices": [], "usage": usage})))
    assert chunk is not None and chunk.usage == Usage(3, 4, total)


def test_error_inside_a_200_body_raises_the_mapped_error() -> None:
    body = json.dumps({"error": {"message": "Rate limit exceeded: free-models-per-min",
                                 "code": 429}}).encode()
    with pytest.raises(errors.RateLimitError, match="free-models-per-min") as info:
        PROVIDER.parse_chat(body, request("openrouter", "m"))
    assert info.value.provider == "openrouter"
    assert info.value.model == "m"


def test_non_json_200_body_is_an_api_error() -> None:
    with pytest.raises(errors.APIError, match="not valid JSON"):
        PROVIDER.parse_chat(b"<html>gateway</html>", request())
    with pytest.raises(errors.APIError, match="not a JSON object"):
        PROVIDER.parse_chat(b"[1, 2]", request())


# ---------------------------------------------------------------- streams


def test_stream_text() -> None:
    chunks, done = run_stream("stream_text.sse")
    assert done
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "Hello! How can I assist you today?"
    first = chunks[0]
    assert first.id == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert first.object == "chat.completion.chunk"
    assert first.system_fingerprint == "fp_06737a9306"
    assert first.choices[0].delta.role == "assistant"
    assert first.usage is None
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-2].choices[0].delta.content is None
    assert all(c.raw is not None for c in chunks)


def test_usage_only_chunk_has_one_empty_choice() -> None:
    chunks, _ = run_stream("stream_text.sse")
    last = chunks[-1]
    assert last.choices is EMPTY_STREAM_CHOICES
    assert last.choices[0].delta.content is None
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (
        19, 10, 29)
    assert last.usage.completion_tokens_details == {
        "reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0}


def test_streamed_tool_call_equals_the_plain_one() -> None:
    chunks, done = run_stream("stream_tool_call.sse")
    assert done
    assert len(chunks) > 20  # the arguments really arrive in many pieces
    plain = PROVIDER.parse_chat(fixture_bytes("chat_tool_call.json"), request())
    assert accumulate_tool_calls(chunks) == plain.choices[0].message.tool_calls
    assert chunks[0].choices[0].delta.tool_calls == (
        ToolCallDelta(0, "call_abc123", "function", FunctionDelta("get_current_weather", "")),
    )
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage == plain.usage


def test_done_marker_sets_done() -> None:
    parser = PROVIDER.stream_parser(request(stream=True))
    assert not parser.done
    assert parser.feed(SSEEvent('{"id":"a","created":1,"model":"m","choices":'
                                '[{"index":0,"delta":{"content":"x"}}]}')) is not None
    assert not parser.done
    assert parser.feed(SSEEvent("[DONE]")) is None
    assert parser.done


def test_finish_reason_sets_done_before_the_marker() -> None:
    parser = PROVIDER.stream_parser(request(stream=True))
    parser.feed(SSEEvent('{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}'))
    assert parser.done


def test_truncated_stream_is_not_done() -> None:
    evs = events("stream_text.sse")
    parser = PROVIDER.stream_parser(request(stream=True))
    for e in evs[:5]:
        parser.feed(e)
    assert not parser.done


def test_choices_less_event_without_usage_is_skipped() -> None:
    parser = OpenAIStreamParser("azure", "gpt-4o")
    assert parser.feed(SSEEvent('{"choices":[],"prompt_filter_results":[]}')) is None


def test_minimal_compatible_chunk_gets_defaults() -> None:
    parser = PROVIDER.stream_parser(request("ollama", "llama3.1", stream=True))
    chunk = parser.feed(SSEEvent('{"choices":[{"delta":{"reasoning":"hmm"}}]}'))
    assert chunk is not None
    assert (chunk.id, chunk.created, chunk.model) == ("", 0, "llama3.1")
    assert chunk.choices[0].delta.reasoning_content == "hmm"


def test_groq_usage_in_x_groq_is_read() -> None:
    parser = PROVIDER.stream_parser(request("groq", "llama3", stream=True))
    chunk = parser.feed(SSEEvent(json.dumps({
        "id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "x_groq": {"id": "req_1", "usage": {"prompt_tokens": 5, "completion_tokens": 2,
                                            "total_tokens": 7}}})))
    assert chunk is not None
    assert chunk.usage == Usage(5, 2, 7)


@pytest.mark.parametrize(
    ("error", "cls", "status"),
    [
        ({"message": "Upstream overloaded", "code": 502}, errors.InternalServerError, 502),
        ({"message": "slow down", "code": "429"}, errors.RateLimitError, 429),
        ({"message": "too long", "type": "invalid_request_error",
          "code": "context_length_exceeded"}, errors.ContextWindowExceededError, 400),
        ({"message": "Rate limit", "type": "rate_limit_error"}, errors.RateLimitError, 429),
        ({"message": "something broke"}, errors.InternalServerError, 500),
    ],
)
def test_in_stream_error_raises_the_mapped_error(
    error: dict[str, Any], cls: type[errors.APIError], status: int
) -> None:
    parser = PROVIDER.stream_parser(request(stream=True))
    parser.feed(SSEEvent('{"choices":[{"index":0,"delta":{"content":"partial"}}]}'))
    with pytest.raises(cls) as info:
        parser.feed(SSEEvent(json.dumps({"error": error})))
    assert type(info.value) is cls
    assert info.value.status_code == status
    assert info.value.provider == "openai"
    assert info.value.model == "gpt-4o-mini"
    assert error["message"] in info.value.message


def test_error_event_type_raises() -> None:
    parser = PROVIDER.stream_parser(request("vllm", "m", stream=True))
    with pytest.raises(errors.InternalServerError, match="engine died"):
        parser.feed(SSEEvent('{"message":"engine died"}', event="error"))


@pytest.mark.parametrize("data", ['{"choices": [', "not json", "[1, 2]", "42", ""])
def test_malformed_event_is_a_stream_error_naming_the_provider(data: str) -> None:
    parser = PROVIDER.stream_parser(request("deepseek", "deepseek-chat", stream=True))
    with pytest.raises(errors.StreamError, match="deepseek") as info:
        parser.feed(SSEEvent(data))
    assert info.value.provider == "deepseek"
    assert info.value.model == "deepseek-chat"


# ---------------------------------------------------------------- parse_error


def parse_error(
    status: int, body: bytes, headers: dict[str, str] | None = None,
    cfg: ProviderConfig = CFG, req: ChatRequest | None = None,
) -> errors.APIError:
    return PROVIDER.parse_error(status, headers or {}, body, req or request(), cfg)


@pytest.mark.parametrize(
    ("status", "name", "cls"),
    [
        (400, "error_400.json", errors.BadRequestError),
        (401, "error_401.json", errors.AuthenticationError),
        (404, "error_404.json", errors.NotFoundError),
        (429, "error_429.json", errors.RateLimitError),
        (500, "error_500.json", errors.InternalServerError),
        (400, "error_context_length_exceeded.json", errors.ContextWindowExceededError),
        (400, "error_content_filter.json", errors.ContentPolicyViolationError),
    ],
)
def test_error_fixtures_map_to_classes(status: int, name: str, cls: type[errors.APIError]) -> None:
    body = fixture_bytes(name)
    err = parse_error(status, body, {"x-request-id": "req_123"})
    assert type(err) is cls
    assert err.status_code == status
    assert err.provider == "openai"
    assert err.model == "gpt-4o-mini"
    assert err.request_id == "req_123"
    assert json.loads(body)["error"]["message"] in err.message
    assert err.body == json.loads(body)


def test_auth_error_hint_names_the_key_variable() -> None:
    err = parse_error(401, fixture_bytes("error_401.json"))
    assert "OPENAI_API_KEY" in err.message


def test_rate_limit_carries_retry_after() -> None:
    err = parse_error(429, fixture_bytes("error_429.json"), {"retry-after": "20"})
    assert isinstance(err, errors.RateLimitError)
    assert err.retry_after == 20.0


@pytest.mark.parametrize(
    ("status", "cls"),
    [(403, errors.PermissionDeniedError), (408, errors.RequestTimeoutError),
     (409, errors.ConflictError), (422, errors.UnprocessableEntityError),
     (418, errors.BadRequestError), (502, errors.InternalServerError),
     (503, errors.ServiceUnavailableError), (529, errors.ServiceUnavailableError)],
)
def test_status_classes(status: int, cls: type[errors.APIError]) -> None:
    err = parse_error(status, b'{"error": {"message": "nope", "type": "x", "code": null}}')
    assert type(err) is cls
    assert err.message.startswith("nope")


def test_structured_code_wins_over_message_text() -> None:
    body = json.dumps({"error": {"message": "Request rejected.", "type": "invalid_request_error",
                                 "code": "context_length_exceeded"}}).encode()
    assert type(parse_error(400, body)) is errors.ContextWindowExceededError
    # the code says context window even though the text smells of content policy
    body = json.dumps({"error": {"message": "flagged by the content policy",
                                 "code": "context_length_exceeded"}}).encode()
    assert type(parse_error(400, body)) is errors.ContextWindowExceededError
    body = json.dumps({"error": {"message": "Your request was rejected.",
                                 "code": "content_policy_violation"}}).encode()
    assert type(parse_error(400, body)) is errors.ContentPolicyViolationError


def test_message_text_is_the_last_resort() -> None:
    body = json.dumps({"error": {"message": "This model's maximum context length is 8192 tokens",
                                 "code": None}}).encode()
    assert type(parse_error(400, body)) is errors.ContextWindowExceededError


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'{"error": "model llama9 not found"}', "model llama9 not found"),
        (b'{"detail": "Not authenticated"}', "Not authenticated"),
        (b'{"detail": [{"loc": ["body", "messages"], "msg": "field required"}]}',
         "field required"),
        (b'{"message": "Bad gateway upstream"}', "Bad gateway upstream"),
        (b"<html><body>502 Bad Gateway</body></html>", "502 Bad Gateway"),
        (b"", "HTTP 400"),
    ],
)
def test_other_error_shapes(body: bytes, text: str) -> None:
    err = parse_error(400, body)
    assert isinstance(err, errors.BadRequestError)
    assert text in err.message


def test_echoed_key_is_redacted_everywhere() -> None:
    key = "my-local-proxy-key-0042"  # no well-known key shape: only cfg.secrets can catch it
    cfg = ProviderConfig(name="openai_compatible", api_base="http://gpu-box:8000/v1", api_key=key)
    body = json.dumps({"error": {"message": f"Invalid API key provided: {key}",
                                 "type": "invalid_request_error", "code": "invalid_api_key"}})
    headers = {"x-request-id": "r1", "www-authenticate": f"Bearer realm={key}",
               "authorization": f"Bearer {key}"}
    err = parse_error(401, body.encode(), headers, cfg=cfg, req=request("openai_compatible", "m"))
    assert isinstance(err, errors.AuthenticationError)
    for text in (err.message, str(err), repr(err), json.dumps(err.body), json.dumps(err.headers)):
        assert key not in text
    assert "[REDACTED]" in err.message


@pytest.mark.parametrize(
    "data",
    ['{"choices": ["x"]}', '{"choices": [{"delta": "text"}]}', '{"usage": "lots"}',
     '{"choices": [{"delta": {"tool_calls": [1]}}]}'],
)
def test_event_of_the_wrong_shape_is_a_stream_error(data: str) -> None:
    parser = PROVIDER.stream_parser(request(stream=True))
    with pytest.raises(errors.StreamError, match="unexpected shape"):
        parser.feed(SSEEvent(data))


def test_answer_of_the_wrong_shape_is_an_api_error() -> None:
    with pytest.raises(errors.APIError, match="unexpected answer"):
        PROVIDER.parse_chat(b'{"choices": [{"message": "hi"}]}', request())


def test_stream_error_scrubs_the_configured_key() -> None:
    key = "proxy-key-777777"
    cfg = ProviderConfig(name="vllm", api_base="http://x/v1", api_key=key)
    parser = OpenAIStreamParser("vllm", "m", cfg)
    with pytest.raises(errors.APIError) as info:
        parser.feed(SSEEvent(json.dumps({"error": {"message": f"bad key {key}", "code": 401}})))
    assert isinstance(info.value, errors.AuthenticationError)
    assert key not in str(info.value)
    with pytest.raises(errors.StreamError) as info2:
        parser.feed(SSEEvent(f"oops {key}"))
    assert key not in str(info2.value)


# ---------------------------------------------------------------- embeddings


def embedding_body(indices: list[Any]) -> bytes:
    data = [{"object": "embedding", "embedding": [float(k), 0.5],
             **({} if i is None else {"index": i})} for k, i in enumerate(indices)]
    return json.dumps({"object": "list", "model": "text-embedding-3-small", "data": data}).encode()


def test_embeddings_in_index_order_numbered_from_the_offset() -> None:
    req = request(model="text-embedding-3-small")
    r = PROVIDER.parse_embedding(embedding_body([1, 0]), req, CFG, offset=10, count=2)
    assert [(e.index, e.embedding) for e in r.data] == [(10, (1.0, 0.5)), (11, (0.0, 0.5))]
    r = PROVIDER.parse_embedding(embedding_body([None, None]), req, CFG, count=2)
    assert [(e.index, e.embedding) for e in r.data] == [(0, (0.0, 0.5)), (1, (1.0, 0.5))]
    # count=None (the default) checks nothing
    assert len(PROVIDER.parse_embedding(embedding_body([0]), req, CFG).data) == 1


@pytest.mark.parametrize("provider", [PROVIDER, AZURE], ids=["openai", "azure"])
@pytest.mark.parametrize(("got", "count"), [(1, 2), (0, 3), (3, 2)])
def test_fewer_or_more_vectors_than_inputs_is_an_unexpected_answer(
    provider: OpenAIProvider, got: int, count: int
) -> None:
    # seen against a LiteLLM proxy: one vector for two inputs
    req = request(provider.name, "text-embedding-3-small")
    with pytest.raises(errors.APIError, match="unexpected answer") as info:
        provider.parse_embedding(embedding_body(list(range(got))), req, CFG, count=count)
    assert type(info.value) is errors.APIError
    assert f"{got} embedding" in info.value.message
    assert f"for {count} input" in info.value.message


@pytest.mark.parametrize(
    "indices", [[0, 0], [1, 2], [0, 2], [0, None], [0, "1"], [0, True], [0, 1.0]]
)
def test_embedding_indices_must_be_each_of_0_to_n_minus_1_once(indices: list[Any]) -> None:
    req = request(model="text-embedding-3-small")
    with pytest.raises(errors.APIError, match="index") as info:
        PROVIDER.parse_embedding(embedding_body(indices), req, CFG)  # checked without count=
    assert type(info.value) is errors.APIError


# ---------------------------------------------------------------- undecodable bodies

DEEP = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError on it


@pytest.mark.parametrize("provider", [PROVIDER, AZURE], ids=["openai", "azure"])
@pytest.mark.parametrize(
    ("status", "cls"), [(500, errors.InternalServerError), (429, errors.RateLimitError)]
)
def test_error_body_nested_too_deeply_is_the_error_of_its_status(
    provider: OpenAIProvider, status: int, cls: type[errors.APIError]
) -> None:
    err = provider.parse_error(status, {}, DEEP, request(provider.name), CFG)
    assert type(err) is cls
    assert err.status_code == status
    assert isinstance(err.body, str) and err.body.startswith("[[[") and len(err.body) <= 2000


@pytest.mark.parametrize("provider", [PROVIDER, AZURE], ids=["openai", "azure"])
@pytest.mark.parametrize("body", [DEEP, b'{"choices": ' + DEEP + b"}"])
def test_answer_nested_too_deeply_is_an_unexpected_answer(
    provider: OpenAIProvider, body: bytes
) -> None:
    req = request(provider.name)
    calls = [
        lambda: provider.parse_chat(body, req, CFG),
        lambda: provider.parse_embedding(body, req, CFG, count=1),
        lambda: provider.parse_image(body, req, CFG),
        lambda: provider.parse_transcription(body, req, CFG),
    ]
    for call in calls:
        with pytest.raises(errors.APIError, match="nested too deeply") as info:
            call()
        assert type(info.value) is errors.APIError


# ---------------------------------------------------------------- 401 hints


@pytest.mark.parametrize(
    ("api_base", "environ"),
    [("http://localhost:4000/v1", {}),
     (None, {"OPENAI_BASE_URL": "https://litellm.internal/v1", "OPENAI_API_KEY": "sk-proxy-1"})],
)
def test_401_from_a_custom_server_says_this_server_wants_a_key(
    api_base: str | None, environ: dict[str, str]
) -> None:
    route = parse_model("openai/gpt-4o-mini", api_base=api_base)
    cfg = resolve_config(route, api_key=None, api_base=api_base, environ=environ)
    err = PROVIDER.parse_error(401, {}, fixture_bytes("error_401.json"), request(), cfg)
    assert type(err) is errors.AuthenticationError
    assert "(this server wants a key: pass api_key= (or set OPENAI_API_KEY))" in err.message
    default = PROVIDER.parse_error(401, {}, fixture_bytes("error_401.json"), request(), CFG)
    assert "check the API key: set OPENAI_API_KEY or pass api_key=" in default.message


def test_finished_needs_a_finish_reason_on_every_choice_seen() -> None:
    parser = PROVIDER.stream_parser(request(stream=True))
    assert not parser.finished
    parser.feed(SSEEvent('{"choices":[{"index":0,"delta":{"content":"a"}},'
                         '{"index":1,"delta":{"content":"b"}}]}'))
    parser.feed(SSEEvent('{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'))
    assert parser.done and not parser.finished  # choice 1 has not finished
    parser.feed(SSEEvent('{"choices":[{"index":1,"delta":{},"finish_reason":"length"}]}'))
    assert parser.finished


def test_done_marker_without_a_finish_reason_is_not_finished() -> None:
    # llama.cpp's server, interrupted mid-answer, sends [DONE] without a finish reason.
    parser = PROVIDER.stream_parser(request(stream=True))
    parser.feed(SSEEvent('{"choices":[{"index":0,"delta":{"content":"Hel"}}]}'))
    parser.feed(SSEEvent("[DONE]"))
    assert parser.done
    assert not parser.finished


def test_embeddings_data_that_is_not_a_list_says_so() -> None:
    from trillm.types import EmbeddingRequest

    req = EmbeddingRequest("openai", "text-embedding-3-small", ("a", "b"))
    with pytest.raises(errors.APIError, match="data is not a list"):
        PROVIDER.parse_embedding(b'{"data": "nope"}', req, count=2)
