"""providers/gemini.py as pure functions on recorded-style payloads (tests/fixtures/gemini/)."""

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
from trillm.providers.base import Provider, ProviderConfig
from trillm.providers.gemini import PROVIDER, GeminiProvider, parse_retry_delay
from trillm.sse import SSEDecoder, SSEEvent
from trillm.types import ChatRequest, FunctionCall, StreamChunk, ToolCall, Usage

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
KEY = "AIzaSyTEST-abcdefghijklmnopqrstuvwx"
BASE = "https://generativelanguage.googleapis.com"
CFG = ProviderConfig(name="gemini", api_base=BASE, api_key=KEY, key_var="GEMINI_API_KEY")
MESSAGES: tuple[dict[str, Any], ...] = ({"role": "user", "content": "Hi"},)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a place.",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
            "additionalProperties": False,
        },
    },
}


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def request(messages: Any = MESSAGES, model: str = "gemini-2.0-flash", **kw: Any) -> ChatRequest:
    return ChatRequest("gemini", model, tuple(messages), **kw)


def events_of(raw: bytes) -> list[SSEEvent]:
    dec = SSEDecoder()
    return dec.feed(raw) + dec.close()


def run_stream(raw: bytes, req: ChatRequest | None = None) -> tuple[list[StreamChunk], bool]:
    parser = PROVIDER.stream_parser(req or request(stream=True), CFG)
    chunks = [c for e in events_of(raw) if (c := parser.feed(e)) is not None]
    return chunks, parser.done


def build(req: ChatRequest) -> dict[str, Any]:
    body = PROVIDER.build_chat(req, CFG).json
    assert isinstance(body, dict)
    return body


def test_protocol() -> None:
    provider: Provider = PROVIDER
    assert provider.name == "gemini"
    assert isinstance(PROVIDER, GeminiProvider)


# ---------------------------------------------------------------- answers


def test_plain_answer() -> None:
    r = PROVIDER.parse_chat(fixture_bytes("generate_content.json"), request(), CFG,
                            {"x-test": "1"})
    assert r.id == "gS5VaNqNLY2gz7IPzL3X2Ak"
    assert r.model == "gemini-2.0-flash"
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.index == 0 and c.finish_reason == "stop"
    assert c.message.role == "assistant"
    assert c.message.content == "The capital of France is Paris."
    assert c.message.tool_calls is None and c.message.reasoning_content is None
    assert r.usage == Usage(8, 8, 16, {"cached_tokens": 4}, None)
    assert r.raw["modelVersion"] == "gemini-2.0-flash"
    assert r.headers == {"x-test": "1"}
    assert r["choices"][0]["message"]["content"] == "The capital of France is Paris."


def test_defaults_when_fields_missing() -> None:
    body = json.dumps({"candidates": [{"content": {"parts": [{"text": "x"}]}}]}).encode()
    r = PROVIDER.parse_chat(body, request())
    assert r.id == "" and r.model == "gemini-2.0-flash" and r.usage is None
    assert r.choices[0].finish_reason is None


def test_function_call_answer() -> None:
    r = PROVIDER.parse_chat(fixture_bytes("function_call.json"), request(), CFG)
    m = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls"
    assert m.content == "Let me check both cities."
    assert m.tool_calls == (
        ToolCall("call_0_0", FunctionCall(
            "get_weather", json.dumps({"location": "Boston, MA", "unit": "celsius"}))),
        ToolCall("call_0_1", FunctionCall("get_weather", json.dumps({"location": "Paris"}))),
    )
    assert r.usage == Usage(52, 31, 83)


def test_thinking_parts() -> None:
    r = PROVIDER.parse_chat(fixture_bytes("thinking.json"), request(model="gemini-2.5-flash"))
    m = r.choices[0].message
    assert m.content == "2 + 2 = 4."
    assert m.reasoning_content == "**Adding numbers**\n\nThe user wants 2 + 2, which is 4."
    assert r.usage == Usage(10, 35, 45, None, {"reasoning_tokens": 28})


@pytest.mark.parametrize(
    ("total", "expected"), [(0, 0), (50, 50), (None, 12), ("absent", 12)]
)
def test_usage_keeps_the_servers_total_token_count(total: Any, expected: int) -> None:
    usage: dict[str, Any] = {"promptTokenCount": 5, "candidatesTokenCount": 7}
    if total != "absent":
        usage["totalTokenCount"] = total
    body = {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]},
                            "finishReason": "STOP"}], "usageMetadata": usage}
    r = PROVIDER.parse_chat(json.dumps(body).encode(), request())
    assert r.usage == Usage(5, 7, expected)
    chunk = PROVIDER.stream_parser(request(stream=True)).feed(SSEEvent(json.dumps(body)))
    assert chunk is not None and chunk.usage == Usage(5, 7, expected)


def test_prompt_blocked() -> None:
    with pytest.raises(errors.ContentPolicyViolationError, match="SAFETY") as info:
        PROVIDER.parse_chat(fixture_bytes("prompt_blocked.json"), request(), CFG)
    assert info.value.provider == "gemini"


def test_candidate_safety_finish() -> None:
    r = PROVIDER.parse_chat(fixture_bytes("candidate_safety.json"), request())
    assert r.choices[0].finish_reason == "content_filter"
    assert r.choices[0].message.content == "I can describe the"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
     ("RECITATION", "content_filter"), ("BLOCKLIST", "content_filter"),
     ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
     ("OTHER", "stop"), ("MALFORMED_FUNCTION_CALL", "stop")],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    r = PROVIDER.parse_chat(json.dumps(body).encode(), request())
    assert r.choices[0].finish_reason == expected


def test_error_in_200_body_and_malformed() -> None:
    with pytest.raises(errors.RateLimitError):
        PROVIDER.parse_chat(fixture_bytes("error_429.json"), request(), CFG)
    with pytest.raises(errors.APIError, match="not valid JSON"):
        PROVIDER.parse_chat(b"<html>", request(), CFG)
    with pytest.raises(errors.APIError, match="unexpected answer"):
        PROVIDER.parse_chat(b'{"candidates": ["x"]}', request(), CFG)


# ---------------------------------------------------------------- streams


def test_streamed_text() -> None:
    chunks, done = run_stream(fixture_bytes("stream_text.sse"))
    assert done
    assert [c.choices[0].delta.content for c in chunks] == ["The capital", " of France is",
                                                            " Paris."]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:])
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, "stop"]
    assert all(c.id == "gS5VaNqNLY2gz7IPzL3X2Ak" and c.object == "chat.completion.chunk"
               for c in chunks)
    final = stream_chunk_builder(chunks)
    plain = PROVIDER.parse_chat(fixture_bytes("generate_content.json"), request())
    assert final.choices == plain.choices
    assert final.usage == plain.usage


def test_streamed_function_call() -> None:
    chunks, done = run_stream(fixture_bytes("stream_function_call.sse"))
    assert done
    deltas = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or ()]
    assert [(d.index, d.id, d.function and d.function.name) for d in deltas] == [
        (0, "call_0_0", "get_weather"), (1, "call_0_1", "get_weather")]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    final = stream_chunk_builder(chunks)
    plain = PROVIDER.parse_chat(fixture_bytes("function_call.json"), request())
    assert final.choices == plain.choices
    assert final.usage == plain.usage


def test_streamed_thinking() -> None:
    chunks, done = run_stream(fixture_bytes("stream_thinking.sse"))
    assert done
    assert chunks[0].choices[0].delta.reasoning_content is not None
    assert chunks[0].choices[0].delta.content is None
    final = stream_chunk_builder(chunks)
    plain = PROVIDER.parse_chat(fixture_bytes("thinking.json"), request())
    assert final.choices == plain.choices and final.usage == plain.usage


def test_stream_not_done_before_finish_reason() -> None:
    raw = fixture_bytes("stream_text.sse")
    first_two = b"".join(raw.split(b"\r\n\r\n")[i] + b"\r\n\r\n" for i in range(2))
    chunks, done = run_stream(first_two)
    assert len(chunks) == 2 and not done  # an EOF here is truncation


def test_stream_prompt_blocked() -> None:
    with pytest.raises(errors.ContentPolicyViolationError, match="PROHIBITED_CONTENT"):
        run_stream(fixture_bytes("stream_prompt_blocked.sse"))


def test_stream_error_event_and_malformed() -> None:
    parser = PROVIDER.stream_parser(request(stream=True), CFG)
    with pytest.raises(errors.ServiceUnavailableError):
        parser.feed(SSEEvent(fixture_bytes("error_503.json").decode()))
    with pytest.raises(errors.StreamError, match="malformed"):
        parser.feed(SSEEvent("{not json"))
    with pytest.raises(errors.StreamError, match="unexpected shape"):
        parser.feed(SSEEvent('{"candidates": [1]}'))


def test_stream_usage_only_event_has_a_choice() -> None:
    parser = PROVIDER.stream_parser(request(stream=True))
    chunk = parser.feed(SSEEvent('{"usageMetadata": {"promptTokenCount": 3}}'))
    assert chunk is not None and len(chunk.choices) == 1
    assert chunk.usage == Usage(3, 0, 3)
    assert parser.feed(SSEEvent('{"modelVersion": "x"}')) is None


def test_stream_done_waits_for_every_candidate() -> None:
    parser = PROVIDER.stream_parser(request(stream=True))
    parser.feed(SSEEvent(json.dumps({"candidates": [
        {"content": {"parts": [{"text": "a"}]}, "index": 0, "finishReason": "STOP"},
        {"content": {"parts": [{"text": "b"}]}, "index": 1}]})))
    assert not parser.done
    parser.feed(SSEEvent(json.dumps({"candidates": [
        {"content": {"parts": [{"text": "c"}]}, "index": 1, "finishReason": "MAX_TOKENS"}]})))
    assert parser.done


# ---------------------------------------------------------------- errors


def parse_error(name: str, status: int, headers: dict[str, str] | None = None) -> errors.APIError:
    return PROVIDER.parse_error(status, headers or {}, fixture_bytes(name), request(), CFG)


@pytest.mark.parametrize(
    ("name", "status", "cls"),
    [("error_400.json", 400, errors.BadRequestError),
     ("error_400_api_key.json", 400, errors.AuthenticationError),
     ("error_403.json", 403, errors.PermissionDeniedError),
     ("error_404.json", 404, errors.NotFoundError),
     ("error_429.json", 429, errors.RateLimitError),
     ("error_500.json", 500, errors.InternalServerError),
     ("error_503.json", 503, errors.ServiceUnavailableError),
     ("error_context_window.json", 400, errors.ContextWindowExceededError)],
)
def test_error_classes(name: str, status: int, cls: type[errors.APIError]) -> None:
    exc = parse_error(name, status)
    assert type(exc) is cls
    assert exc.status_code == status
    assert exc.provider == "gemini" and exc.model == "gemini-2.0-flash"
    message = json.loads(fixture_bytes(name))["error"]["message"]
    assert message.strip()[:30] in str(exc)
    assert KEY not in str(exc) and KEY not in repr(exc)


def test_error_auth_hint_names_variable() -> None:
    assert "GEMINI_API_KEY" in str(parse_error("error_400_api_key.json", 400))


def test_retry_info_sets_retry_after() -> None:
    exc = parse_error("error_429.json", 429)
    assert exc.retry_after == 37.0
    assert parse_error("error_500.json", 500).retry_after is None
    assert parse_error("error_500.json", 500, {"retry-after": "2"}).retry_after == 2.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("37s", 37.0), ("1.5s", 1.5), ("0s", 0.0), ({"seconds": 2, "nanos": 500000000}, 2.5),
     ("soon", None), (None, None), ("-1s", None)],
)
def test_parse_retry_delay(value: Any, seconds: float | None) -> None:
    assert parse_retry_delay(value) == seconds


def test_error_key_scrubbed_from_body() -> None:
    body = json.dumps({"error": {"code": 400, "message": f"bad key {KEY}",
                                 "status": "INVALID_ARGUMENT"}}).encode()
    exc = PROVIDER.parse_error(400, {}, body, request(), CFG)
    assert KEY not in str(exc) and KEY not in json.dumps(exc.body)


def test_error_unparseable_body() -> None:
    exc = PROVIDER.parse_error(502, {}, b"<html>Bad Gateway</html>", request(), CFG)
    assert isinstance(exc, errors.InternalServerError) and exc.status_code == 502


# ---------------------------------------------------------------- requests


def test_url_and_headers() -> None:
    spec = PROVIDER.build_chat(request(extra_headers={"x-extra": "1"}), CFG)
    assert spec.method == "POST"
    assert spec.url == f"{BASE}/v1beta/models/gemini-2.0-flash:generateContent"
    assert dict(spec.headers) == {"x-goog-api-key": KEY, "x-extra": "1"}
    assert KEY not in spec.url and "key=" not in spec.url
    assert spec.provider == "gemini" and spec.model == "gemini-2.0-flash"
    stream = PROVIDER.build_chat(request(stream=True), CFG)
    assert stream.url == f"{BASE}/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    assert KEY not in repr(stream)


def test_roles_system_and_merging() -> None:
    body = build(request([
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Hello"},
        {"role": "user", "content": [{"type": "text", "text": "Are you there?"}]},
        {"role": "assistant", "content": "Oui."},
        {"role": "assistant", "content": "Bonjour."},
        {"role": "user", "content": "Thanks"},
    ]))
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."},
                                                   {"text": "Answer in French."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hello"}, {"text": "Are you there?"}]},
        {"role": "model", "parts": [{"text": "Oui."}, {"text": "Bonjour."}]},
        {"role": "user", "parts": [{"text": "Thanks"}]},
    ]
    assert "generationConfig" not in body and "tools" not in body


def test_images() -> None:
    body = build(request([{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]}]))
    assert body["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
    ]
    with pytest.raises(errors.BadRequestError, match="input_audio"):
        build(request([{"role": "user", "content": [{"type": "input_audio"}]}]))


def test_tools_and_tool_choice() -> None:
    body = build(request(params={"tools": [WEATHER_TOOL, {"googleSearch": {}}],
                                 "tool_choice": "required"}))
    assert body["tools"] == [
        {"functionDeclarations": [{
            "name": "get_weather", "description": "Current weather for a place.",
            "parametersJsonSchema": WEATHER_TOOL["function"]["parameters"]}]},  # type: ignore[index]
        {"googleSearch": {}},
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    for choice, mode in (("auto", "AUTO"), ("none", "NONE")):
        cfg = build(request(params={"tools": [WEATHER_TOOL], "tool_choice": choice}))
        assert cfg["toolConfig"] == {"functionCallingConfig": {"mode": mode}}
    named = build(request(params={"tools": [WEATHER_TOOL], "tool_choice": {
        "type": "function", "function": {"name": "get_weather"}}}))
    assert named["toolConfig"] == {"functionCallingConfig": {
        "mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    empty = {"type": "function", "function": {"name": "now", "parameters": {
        "type": "object", "properties": {}}}}
    assert build(request(params={"tools": [empty]}))["tools"] == [
        {"functionDeclarations": [{"name": "now"}]}]


def test_tool_follow_up() -> None:
    body = build(request([
        {"role": "user", "content": "Weather in Boston and Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_0_0", "type": "function", "function": {
                "name": "get_weather", "arguments": '{"location": "Boston"}'}},
            {"id": "call_0_1", "type": "function", "function": {
                "name": "get_time", "arguments": ""}},
        ]},
        {"role": "tool", "tool_call_id": "call_0_0", "content": '{"temp": 20}'},
        {"role": "tool", "tool_call_id": "call_0_1", "content": "noon"},
        {"role": "user", "content": "And tomorrow?"},
    ], params={"tools": [WEATHER_TOOL]}))
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Boston and Paris?"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "get_weather", "args": {"location": "Boston"}}},
            {"functionCall": {"name": "get_time", "args": {}}},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 20}}},
            {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
            {"text": "And tomorrow?"},
        ]},
    ]
    with pytest.raises(errors.BadRequestError, match="tool_call_id"):
        build(request([{"role": "tool", "tool_call_id": "nope", "content": "x"}]))


def test_generation_config() -> None:
    body = build(request(params={
        "temperature": 0.2, "max_tokens": 100, "top_p": 0.9, "top_k": 40, "stop": "END",
        "n": 2, "seed": 7, "presence_penalty": 0.1, "frequency_penalty": 0.3,
    }))
    assert body["generationConfig"] == {
        "temperature": 0.2, "maxOutputTokens": 100, "topP": 0.9, "topK": 40,
        "stopSequences": ["END"], "candidateCount": 2, "seed": 7,
        "presencePenalty": 0.1, "frequencyPenalty": 0.3,
    }
    gen = build(request(params={"max_completion_tokens": 50, "stop": ["a", "b"]}))
    assert gen["generationConfig"] == {"maxOutputTokens": 50, "stopSequences": ["a", "b"]}
    think = build(request(params={"reasoning_effort": "low"}))["generationConfig"]
    assert think == {"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}}


def test_response_format() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}},
              "required": ["name"], "additionalProperties": False}
    body = build(request(params={"response_format": {
        "type": "json_schema", "json_schema": {"name": "person", "schema": schema,
                                               "strict": True}}}))
    assert body["generationConfig"] == {"responseMimeType": "application/json",
                                        "responseJsonSchema": schema}
    obj = build(request(params={"response_format": {"type": "json_object"}}))
    assert obj["generationConfig"] == {"responseMimeType": "application/json"}


def test_unsupported_params() -> None:
    with pytest.raises(errors.BadRequestError, match=r"logit_bias.*drop_params=True"):
        build(request(params={"logit_bias": {"1": 2}, "temperature": 0}))
    with pytest.raises(errors.BadRequestError, match="logprobs, parallel_tool_calls"):
        build(request(params={"parallel_tool_calls": False, "logprobs": True}))
    body = build(request(params={"logit_bias": {"1": 2}, "temperature": 0}, drop_params=True))
    assert body["generationConfig"] == {"temperature": 0}
    assert "logit_bias" not in json.dumps(body)


def test_extra_body_merged_last() -> None:
    body = build(request(params={"temperature": 1},
                         extra_body={"generationConfig": {"temperature": 0},
                                     "cachedContent": "cachedContents/abc"}))
    assert body["generationConfig"] == {"temperature": 0}
    assert body["cachedContent"] == "cachedContents/abc"


def test_no_key_no_header() -> None:
    spec = PROVIDER.build_chat(request(), ProviderConfig(name="gemini", api_base=BASE))
    assert spec.headers == ()


# ---------------------------------------------------------------- agreement


@st.composite
def answers(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A plain generateContent body and the SSE events a stream of it would give."""
    n = draw(st.integers(1, 2))
    text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
    args = st.dictionaries(st.sampled_from(["a", "b", "city"]),
                           st.one_of(st.integers(), text, st.booleans()), max_size=3)
    cands_full, cand_events = [], []
    for i in range(n):
        parts: list[dict[str, Any]] = draw(st.lists(st.one_of(
            text.map(lambda t: {"text": t}),
            text.map(lambda t: {"text": t, "thought": True}),
            st.builds(lambda nm, a: {"functionCall": {"name": nm, "args": a}},
                      st.sampled_from(["f", "g"]), args),
        ), max_size=6))
        reason = draw(st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "OTHER"]))
        cands_full.append({"content": {"role": "model", "parts": parts}, "finishReason": reason,
                           "index": i})
        # split the parts into consecutive groups, one event each; the last has the reason
        cuts = sorted(draw(st.lists(st.integers(0, len(parts)), max_size=3)))
        bounds = [0, *cuts, len(parts)]
        groups = [parts[a:b] for a, b in itertools.pairwise(bounds)]
        events = [{"content": {"role": "model", "parts": g}, "index": i} for g in groups]
        events[-1]["finishReason"] = reason
        cand_events.append(events)
    prompt, out, thoughts = (draw(st.integers(0, 500)) for _ in range(3))
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": out,
             "totalTokenCount": prompt + out + thoughts}
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    meta = {"modelVersion": "gemini-2.0-flash", "responseId": "r1"}
    full = {"candidates": cands_full, "usageMetadata": usage, **meta}
    stream = []
    for step in range(max(len(e) for e in cand_events)):
        cands = [e[step] for e in cand_events if step < len(e)]
        partial = {"promptTokenCount": prompt, "totalTokenCount": prompt}
        stream.append({"candidates": cands, "usageMetadata": partial, **meta})
    stream[-1]["usageMetadata"] = usage
    return full, stream


@settings(max_examples=200, deadline=None)
@given(answers())
def test_stream_agrees_with_plain(answer: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    full, stream = answer
    req = request(stream=True)
    raw = b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in stream)
    chunks, done = run_stream(raw, req)
    assert done
    assert all(len(c.choices) >= 1 for c in chunks)
    plain = PROVIDER.parse_chat(json.dumps(full).encode(), request())
    streamed = stream_chunk_builder(chunks)
    assert streamed.choices == plain.choices
    assert streamed.usage == plain.usage
    assert (streamed.id, streamed.model) == (plain.id, plain.model)


# ---------------------------------------------------------------- embeddings


def test_embeddings_in_order_numbered_from_the_offset() -> None:
    body = json.dumps({"embeddings": [{"values": [1.0]}, {"values": [2.0]}]}).encode()
    r = PROVIDER.parse_embedding(body, request(model="text-embedding-004"), CFG, 4, count=2)
    assert [(e.index, e.embedding) for e in r.data] == [(4, (1.0,)), (5, (2.0,))]


@pytest.mark.parametrize(("got", "count"), [(1, 2), (0, 3), (3, 2)])
def test_fewer_or_more_vectors_than_inputs_is_an_unexpected_answer(got: int, count: int) -> None:
    body = json.dumps({"embeddings": [{"values": [float(k)]} for k in range(got)]}).encode()
    with pytest.raises(errors.APIError, match="unexpected answer") as info:
        PROVIDER.parse_embedding(body, request(model="text-embedding-004"), CFG, count=count)
    assert type(info.value) is errors.APIError
    assert f"{got} embedding" in info.value.message
    assert f"for {count} input" in info.value.message


# ---------------------------------------------------------------- undecodable bodies

DEEP = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError on it


@pytest.mark.parametrize(
    ("status", "cls"),
    [(500, errors.InternalServerError), (429, errors.RateLimitError),
     (503, errors.ServiceUnavailableError)],
)
def test_error_body_nested_too_deeply_is_the_error_of_its_status(
    status: int, cls: type[errors.APIError]
) -> None:
    # the RetryInfo lookup reads the same body
    body = b'{"error": {"code": 429, "details": ' + DEEP + b"}}"
    for raw in (DEEP, body):
        err = PROVIDER.parse_error(status, {}, raw, request(), CFG)
        assert type(err) is cls
        assert err.status_code == status
        assert err.retry_after is None
        assert isinstance(err.body, str) and len(err.body) <= 2000


def test_answer_nested_too_deeply_is_an_unexpected_answer() -> None:
    for body in (DEEP, b'{"candidates": ' + DEEP + b"}"):
        for call in (PROVIDER.parse_chat, PROVIDER.parse_embedding):
            with pytest.raises(errors.APIError, match="nested too deeply") as info:
                call(body, request(), CFG)
            assert type(info.value) is errors.APIError


def test_stream_of_a_candidate_without_text_gives_the_plain_empty_content() -> None:
    # The plain answer's content is "" when a candidate holds no text and no call; the
    # stream says so in that candidate's finishing chunk.
    answer = {"candidates": [{"content": {"role": "model", "parts": []},
                              "finishReason": "SAFETY", "index": 0}],
              "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
              "modelVersion": "gemini-2.0-flash", "responseId": "r1"}
    chunks, done = run_stream(b"data: " + json.dumps(answer).encode() + b"\r\n\r\n")
    plain = PROVIDER.parse_chat(json.dumps(answer).encode(), request())
    assert done
    assert plain.choices[0].message.content == ""
    assert stream_chunk_builder(chunks).choices == plain.choices


def test_finished_once_every_candidate_has_its_finish_reason() -> None:
    parser = PROVIDER.stream_parser(request(stream=True), CFG)
    part = {"content": {"role": "model", "parts": [{"text": "a"}]}}
    parser.feed(SSEEvent(json.dumps({"candidates": [{**part, "index": 0}, {**part, "index": 1}]})))
    assert not parser.finished
    parser.feed(SSEEvent(json.dumps({"candidates": [{"index": 0, "finishReason": "STOP"}]})))
    assert not parser.finished
    parser.feed(SSEEvent(json.dumps({"candidates": [{"index": 1, "finishReason": "STOP"}]})))
    assert parser.finished and parser.done
