"""providers/openai_responses.py (through the openai and azure providers) as pure functions on
recorded-style Responses API payloads (tests/fixtures/openai/responses_*)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trillm import errors
from trillm.providers import mock_responses
from trillm.providers.anthropic import PROVIDER as ANTHROPIC
from trillm.providers.azure import PROVIDER as AZURE
from trillm.providers.base import ProviderConfig
from trillm.providers.gemini import PROVIDER as GEMINI
from trillm.providers.openai import PROVIDER
from trillm.providers.openai_responses import ResponsesStreamParser
from trillm.response_types import (
    Response,
    ResponseEvent,
    ResponseFunctionCall,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseOutputText,
    ResponseReasoning,
    ResponsesRequest,
)
from trillm.sse import SSEDecoder, SSEEvent
from trillm.types import ChatRequest

FIXTURES = Path(__file__).parent / "fixtures" / "openai"
KEY = "sk-test-abcdefghijklmnop"
CFG = ProviderConfig(name="openai", api_base="https://api.openai.com/v1", api_key=KEY,
                     key_var="OPENAI_API_KEY")
AZURE_CFG = ProviderConfig(name="azure", api_base="https://res.openai.azure.com",
                           api_key="azure-key-123456", key_var="AZURE_API_KEY",
                           api_version="2024-10-21")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def request(input: Any = "Hi", **kw: Any) -> ResponsesRequest:
    kw.setdefault("provider", "openai")
    kw.setdefault("model", "gpt-4.1")
    return ResponsesRequest(kw.pop("provider"), kw.pop("model"), input, **kw)


def sse_events(data: bytes) -> list[SSEEvent]:
    dec = SSEDecoder()
    return dec.feed(data) + dec.close()


def run_stream(name: str, req: ResponsesRequest | None = None) -> tuple[list[ResponseEvent], bool]:
    parser = PROVIDER.responses_stream_parser(req or request(stream=True), CFG)
    out = [e for ev in sse_events(fixture(name)) if (e := parser.feed(ev)) is not None]
    return out, parser.done


def event(data: dict[str, Any] | str, name: str | None = None) -> SSEEvent:
    text = data if isinstance(data, str) else json.dumps(data)
    return SSEEvent(data=text, event=name or "message")


# ------------------------------------------------------------------ requests


def test_build_sends_model_input_and_every_parameter() -> None:
    req = request([{"role": "user", "content": "Hi"}], params={
        "instructions": "Be brief.", "max_output_tokens": 50, "store": False,
        "tools": [{"type": "function", "name": "f", "parameters": {}}],
        "reasoning": {"effort": "low"}, "previous_response_id": "resp_1",
        "text": {"format": {"type": "text"}}, "metadata": {"k": "v"}, "stream": True,
    }, extra_body={"store": True, "custom": 1}, extra_headers={"x-trace": "t"})
    spec = PROVIDER.build_responses(req, CFG)
    assert (spec.method, spec.url) == ("POST", "https://api.openai.com/v1/responses")
    assert spec.json == {
        "model": "gpt-4.1", "input": [{"role": "user", "content": "Hi"}],
        "instructions": "Be brief.", "max_output_tokens": 50, "store": True, "custom": 1,
        "tools": [{"type": "function", "name": "f", "parameters": {}}],
        "reasoning": {"effort": "low"}, "previous_response_id": "resp_1",
        "text": {"format": {"type": "text"}}, "metadata": {"k": "v"},
    }  # not streaming: a stray stream parameter is dropped; extra_body wins
    assert dict(spec.headers) == {"authorization": f"Bearer {KEY}", "x-trace": "t"}
    assert (spec.provider, spec.model) == ("openai", "gpt-4.1")


def test_build_stream_and_a_string_input() -> None:
    spec = PROVIDER.build_responses(request("Tell me a story", stream=True), CFG)
    assert spec.json == {"model": "gpt-4.1", "input": "Tell me a story", "stream": True}


def test_build_for_a_compatible_server_without_a_key() -> None:
    cfg = ProviderConfig(name="vllm", api_base="http://localhost:8000/v1")
    spec = PROVIDER.build_responses(request(provider="vllm", model="qwen"), cfg)
    assert spec.url == "http://localhost:8000/v1/responses"
    assert spec.headers == ()


@pytest.mark.parametrize(("version", "url"), [
    ("2024-10-21", "https://res.openai.azure.com/openai/v1/responses"),  # dated: not sent
    (None, "https://res.openai.azure.com/openai/v1/responses"),
    ("preview", "https://res.openai.azure.com/openai/v1/responses?api-version=preview"),
    ("latest", "https://res.openai.azure.com/openai/v1/responses?api-version=latest"),
])
def test_azure_uses_the_v1_route_with_the_deployment_in_the_body(
    version: str | None, url: str
) -> None:
    cfg = ProviderConfig(name="azure", api_base="https://res.openai.azure.com",
                         api_key="azure-key-123456", api_version=version)
    spec = AZURE.build_responses(request(provider="azure", model="my-gpt4o"), cfg)
    assert spec.url == url
    assert spec.json["model"] == "my-gpt4o"
    assert dict(spec.headers) == {"api-key": "azure-key-123456"}


def test_only_openai_style_providers_offer_responses() -> None:
    assert "responses" in PROVIDER.operations
    assert "responses" in AZURE.operations
    assert "responses" not in ANTHROPIC.operations
    assert "responses" not in GEMINI.operations


# ------------------------------------------------------------------ whole answers


def test_parse_a_text_answer() -> None:
    body = fixture("responses_text.json")
    r = PROVIDER.parse_responses(body, request(), CFG, {"x-request-id": "req_1"})
    assert isinstance(r, Response)
    assert r.id == "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b"
    assert (r.status, r.model, r.object) == ("completed", "gpt-4.1-2025-04-14", "response")
    assert r.created_at == 1741476542
    assert r.output_text.startswith("In a peaceful grove beneath a silver moon")
    (item,) = r.output
    assert isinstance(item, ResponseOutputMessage)
    assert (item.role, item.status) == ("assistant", "completed")
    assert isinstance(item.content[0], ResponseOutputText)
    assert item.content[0].annotations == ()
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (36, 87, 123)
    assert r.usage.input_tokens_details.cached_tokens == 0
    assert r.headers == {"x-request-id": "req_1"}
    assert r.raw == json.loads(body)
    # Mapping access, as the JSON has it; raw and headers are not part of it
    assert r["output"][0]["content"][0]["text"] == r.output_text
    assert r["usage"]["output_tokens_details"]["reasoning_tokens"] == 0
    assert "raw" not in r and "headers" not in r and "error" not in r
    json.dumps(r.to_dict())


def test_parse_a_function_call() -> None:
    r = PROVIDER.parse_responses(fixture("responses_function_call.json"), request(), CFG)
    (call,) = r.output
    assert isinstance(call, ResponseFunctionCall)
    assert call.call_id == "call_unLAR8MvFNptuiZK6K6HCy5k"
    assert call.id == "fc_67ca09c6bedc8190a7abfec07b1a1332096610f474011cc0"
    assert call.name == "get_current_weather"
    assert json.loads(call.arguments) == {"location": "Boston, MA", "unit": "celsius"}
    assert call.status == "completed"
    assert r.output_text == ""
    # sent back as an input item, it is the item the API gave
    assert call.to_dict() == json.loads(fixture("responses_function_call.json"))["output"][0]


def test_parse_reasoning_and_usage_details() -> None:
    r = PROVIDER.parse_responses(fixture("responses_reasoning.json"), request(), CFG)
    reasoning, message = r.output
    assert isinstance(reasoning, ResponseReasoning)
    assert reasoning.id.startswith("rs_")
    assert reasoning.summary[0]["text"].startswith("**Answering a simple question**")
    assert isinstance(message, ResponseOutputMessage)
    assert r.output_text == "The capital of France is Paris."
    assert r.usage is not None
    assert r.usage.input_tokens_details.cached_tokens == 896
    assert r.usage.output_tokens_details.reasoning_tokens == 128
    assert r.usage.total_tokens == 1174


def test_parse_a_refusal() -> None:
    r = PROVIDER.parse_responses(fixture("responses_refusal.json"), request(), CFG)
    (message,) = r.output
    assert isinstance(message, ResponseOutputMessage)
    (part,) = message.content
    assert isinstance(part, ResponseOutputRefusal)
    assert part.refusal == "I'm sorry, but I can't help with that."
    assert r.output_text == ""


def test_parse_an_incomplete_answer() -> None:
    r = PROVIDER.parse_responses(fixture("responses_incomplete.json"), request(), CFG)
    assert r.status == "incomplete"
    assert r.incomplete_details == {"reason": "max_output_tokens"}
    assert r.output_text == "Once upon a time, in a land"


def test_unknown_items_are_kept_raw_and_annotations_kept() -> None:
    data = json.loads(fixture("responses_web_search.json"))
    r = PROVIDER.parse_responses(fixture("responses_web_search.json"), request(), CFG)
    search, message = r.output
    assert search == data["output"][0]  # a web_search_call: its dict, as sent
    assert isinstance(message, ResponseOutputMessage)
    part = message.content[0]
    assert isinstance(part, ResponseOutputText)
    assert part.annotations[0]["type"] == "url_citation"
    assert r.to_dict()["output"][0] == data["output"][0]


def test_lenient_shapes_of_compatible_servers() -> None:
    body = json.dumps({"output": [
        {"type": "message", "content": [{"type": "output_text", "text": "hi"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": {"a": 1}},
    ]}).encode()
    r = PROVIDER.parse_responses(body, request(model="llama"), CFG)
    assert (r.id, r.model, r.status, r.usage) == ("", "llama", None, None)
    assert r.output_text == "hi"
    assert isinstance(r.output[1], ResponseFunctionCall)
    assert json.loads(r.output[1].arguments) == {"a": 1}


def test_an_error_body_raises_what_it_names() -> None:
    body = json.dumps({"error": {"message": f"slow down {KEY}", "type": "requests",
                                 "code": "rate_limit_exceeded"}}).encode()
    with pytest.raises(errors.RateLimitError) as info:
        PROVIDER.parse_responses(body, request(), CFG)
    assert KEY not in str(info.value) and KEY not in json.dumps(info.value.body)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"output": "nope"}',
                                  b'{"output": [{"type": "message", "content": [7]}]}'])
def test_a_body_of_the_wrong_shape_is_an_unexpected_answer(body: bytes) -> None:
    with pytest.raises(errors.APIError):
        PROVIDER.parse_responses(body, request(), CFG)


def test_a_404_says_the_server_may_have_no_responses_api() -> None:
    body = b'{"detail": "Not Found"}'
    exc = PROVIDER.parse_error(404, {}, body, request(), CFG)
    assert isinstance(exc, errors.NotFoundError)
    assert "no Responses API" in str(exc)
    assert "POST https://api.openai.com/v1/responses" in str(exc)
    assert "Not Found" in str(exc)
    chat = PROVIDER.parse_error(404, {}, body, ChatRequest("openai", "m", ()), CFG)
    assert "Responses API" not in str(chat)  # chat's 404 is unchanged
    exc = AZURE.parse_error(404, {}, b"", request(provider="azure"), AZURE_CFG)
    assert "https://res.openai.azure.com/openai/v1/responses" in str(exc)


def test_a_whole_answer_to_a_stream_request_is_its_terminal_event() -> None:
    (done,) = PROVIDER.parse_responses_as_events(fixture("responses_text.json"), request(), CFG)
    assert done.type == "response.completed"
    assert done.response is not None and done.response.output_text.startswith("In a peaceful")
    (inc,) = PROVIDER.parse_responses_as_events(fixture("responses_incomplete.json"),
                                                request(), CFG)
    assert inc.type == "response.incomplete"
    failed = json.dumps({"id": "r", "status": "failed", "output": [],
                         "error": {"code": "server_error", "message": "boom"}}).encode()
    with pytest.raises(errors.InternalServerError, match="the response failed: boom"):
        PROVIDER.parse_responses_as_events(failed, request(), CFG)


# ------------------------------------------------------------------ streams


def test_a_text_stream() -> None:
    events, done = run_stream("responses_stream_text.sse")
    assert done
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created"
    assert events[0].response is not None and events[0].response.status == "in_progress"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(d or "" for d in deltas) == "Hi there! How can I help?"
    assert all(e.delta is None for e in events if not e.type.endswith(".delta"))
    last = events[-1]
    assert last.type == "response.completed"
    # the final response is what the non-streamed call gives
    whole = PROVIDER.parse_responses(fixture("responses_stream_text.json"), request(), CFG)
    assert last.response == whole
    assert last["data"]["response"]["usage"]["total_tokens"] == 48
    assert set(last) == {"type", "sequence_number", "data"}  # delta None: not in the view


def test_a_function_call_stream() -> None:
    events, done = run_stream("responses_stream_function_call.sse")
    assert done
    args = "".join(e.delta or "" for e in events
                   if e.type == "response.function_call_arguments.delta")
    final = events[-1].response
    assert final is not None
    (call,) = final.output
    assert isinstance(call, ResponseFunctionCall)
    assert args == call.arguments == '{"location":"Boston, MA","unit":"celsius"}'
    assert events[-2].data["item"]["call_id"] == call.call_id


def test_a_reasoning_stream_passes_unknown_events_through() -> None:
    events, _ = run_stream("responses_stream_reasoning.sse")
    summary = "".join(e.delta or "" for e in events
                      if e.type == "response.reasoning_summary_text.delta")
    assert summary == "**Answering a simple question**"
    (unknown,) = [e for e in events if e.type == "response.future_feature.announced"]
    assert unknown.data["detail"] == {"x": 1}
    final = events[-1].response
    assert final is not None and final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens == 128


def test_an_incomplete_stream_ends_at_response_incomplete() -> None:
    events, done = run_stream("responses_stream_incomplete.sse")
    assert done and events[-1].type == "response.incomplete"
    assert events[-1].response is not None
    assert events[-1].response.incomplete_details == {"reason": "max_output_tokens"}


def test_response_failed_raises_the_mapped_error() -> None:
    with pytest.raises(errors.RateLimitError, match="the response failed: Request too large"):
        run_stream("responses_stream_failed.sse")


def test_an_error_event_raises_the_mapped_error() -> None:
    with pytest.raises(errors.ContextWindowExceededError, match="exceeds the context window"):
        run_stream("responses_stream_error.sse")


@pytest.mark.parametrize(("err", "cls"), [
    ({"code": "server_error", "message": "x"}, errors.InternalServerError),
    ({"code": "rate_limit_exceeded", "message": "x"}, errors.RateLimitError),
    ({"code": "invalid_prompt", "message": "x"}, errors.BadRequestError),
    ({"code": "invalid_image_url", "message": "x"}, errors.BadRequestError),
    ({"code": "image_content_policy_violation", "message": "x"},
     errors.ContentPolicyViolationError),
    ({"code": "bio_policy", "message": "x"}, errors.ContentPolicyViolationError),
    ({"code": "503", "message": "x"}, errors.ServiceUnavailableError),
    ({"code": "never-heard-of-it", "message": "x"}, errors.InternalServerError),
    ({"code": None, "message": "x", "type": "invalid_request_error"}, errors.BadRequestError),
])
def test_error_codes(err: dict[str, Any], cls: type[errors.APIError]) -> None:
    parser = ResponsesStreamParser(request(stream=True), CFG)
    with pytest.raises(cls) as info:
        parser.feed(event({"type": "error", "sequence_number": 1, "error": err}, "error"))
    assert type(info.value) is cls
    if "type" not in err:  # the flat shape too: code and message beside the event's type
        with pytest.raises(cls):
            ResponsesStreamParser(request(stream=True), CFG).feed(
                event({"type": "error", "sequence_number": 1, **err}))
    failed = {"type": "response.failed", "response": {"id": "r", "status": "failed",
                                                      "output": [], "error": err}}
    with pytest.raises(cls):
        ResponsesStreamParser(request(stream=True), CFG).feed(event(failed))


def test_errors_scrub_the_key() -> None:
    parser = ResponsesStreamParser(request(stream=True), CFG)
    with pytest.raises(errors.APIError) as info:
        parser.feed(event({"type": "error", "code": "server_error",
                           "message": f"bad key {KEY}"}))
    assert KEY not in str(info.value) and KEY not in json.dumps(info.value.body)


def test_done_lines_and_events_after_the_terminal_one_are_ignored() -> None:
    parser = ResponsesStreamParser(request(stream=True), CFG)
    assert parser.feed(event("[DONE]")) is None  # some compatible servers send one
    assert not parser.done
    done = parser.feed(event({"type": "response.completed", "sequence_number": 3,
                              "response": {"id": "r", "status": "completed", "output": []}}))
    assert done is not None and parser.done and parser.finished
    assert parser.feed(event({"type": "response.output_text.delta", "delta": "late"})) is None
    assert parser.feed(event("[DONE]")) is None
    assert parser.feed(event({"type": "error", "message": "after the end"})) is None


def test_the_event_name_stands_in_for_a_missing_type() -> None:
    parser = ResponsesStreamParser(request(stream=True), CFG)
    e = parser.feed(event({"delta": "hi"}, "response.output_text.delta"))
    assert e is not None and (e.type, e.delta, e.sequence_number) == (
        "response.output_text.delta", "hi", None)


@pytest.mark.parametrize("data", [
    "not json", "[1]", '{"type": 7}', '{"type": "response.output_text.delta", '
    '"sequence_number": "3"}', '{"type": "response.completed"}',
    '{"type": "response.created", "response": {"output": [{"type": "message", '
    '"content": ["x"]}]}}',
])
def test_malformed_events_are_stream_errors(data: str) -> None:
    with pytest.raises(errors.StreamError, match="malformed stream event"):
        ResponsesStreamParser(request(stream=True), CFG).feed(event(data))


def test_chunk_boundaries_never_change_the_events() -> None:
    wire = fixture("responses_stream_function_call.sse")
    whole, _ = run_stream("responses_stream_function_call.sse")
    for size in (1, 7, 64):
        dec = SSEDecoder()
        parser = ResponsesStreamParser(request(stream=True), CFG)
        got = []
        for i in range(0, len(wire), size):
            got += [e for ev in dec.feed(wire[i:i + size]) if (e := parser.feed(ev))]
        got += [e for ev in dec.close() if (e := parser.feed(ev))]
        assert got == whole


# ------------------------------------------------------------------ the mock's rendering


def test_the_mock_renders_a_stream_the_parser_reads_as_the_whole_answer() -> None:
    req = request("one two three", model="m", stream=True, params={"instructions": "Be brief"})
    parser = ResponsesStreamParser(req)
    events = [e for chunk in mock_responses.response_events(req, "one two three", 1)
              for ev in sse_events(chunk) if (e := parser.feed(ev)) is not None]
    assert parser.done
    assert [e.type for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert [e.delta for e in events if e.delta] == ["one", " two", " three"]
    assert [e.sequence_number for e in events] == list(range(11))
    whole = PROVIDER.parse_responses(mock_responses.response_json(req, "one two three", 1), req)
    assert events[-1].response == whole
    assert whole.output_text == "one two three"
    assert whole.usage is not None
    assert (whole.usage.input_tokens, whole.usage.output_tokens) == (6, 3)  # 13+8 chars / 4
