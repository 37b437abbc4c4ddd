"""Structured output end to end: OpenAI, Anthropic and Gemini servers on 127.0.0.1 (plain and
streamed, real sockets, real clock), the sync API and the OpenAI facades against a threaded
server, the mock offline; the pipeline's rules (never retried, no fallback) on virtual time."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any, Literal

import httpx
import pytest
import trio
import trio.testing
from pydantic import BaseModel

import trillm
from tests.fakeserver import Reply, Request, open_fake_server
from trillm import errors
from trillm.structured import strict_json_schema

GUARD = 10
MSGS = [{"role": "user", "content": "Plan a trip to Lisbon."}]


class Stop(BaseModel):
    city: str
    nights: int


class Trip(BaseModel):
    title: str
    kind: Literal["city", "beach"]
    stops: list[Stop]
    budget: float | None


TRIP = Trip(title="Lisbon", kind="city", stops=[Stop(city="Lisbon", nights=3)], budget=None)
TEXT = TRIP.model_dump_json()
PIECES = [TEXT[i:i + 7] for i in range(0, len(TEXT), 7)]


def sse(events: list[tuple[str | None, dict[str, Any]]]) -> bytes:
    return "".join((f"event: {name}\n" if name else "") + f"data: {json.dumps(data)}\n\n"
                   for name, data in events).encode()


def openai_answer(body: dict[str, Any], text: str, finish: str) -> tuple[bytes, str]:
    model = body["model"]
    if not body.get("stream"):
        return json.dumps({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                         "message": {"role": "assistant", "content": text, "refusal": None}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29},
        }).encode(), "application/json"

    def chunk(delta: dict[str, Any], reason: str | None = None) -> tuple[None, dict[str, Any]]:
        return None, {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                      "model": model, "choices": [{"index": 0, "delta": delta,
                                                   "finish_reason": reason}]}

    pieces = [text[i:i + 7] for i in range(0, len(text), 7)]
    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": p}) for p in pieces]
    events.append(chunk({}, finish))
    return sse(events) + b"data: [DONE]\n\n", "text/event-stream"


def anthropic_answer(body: dict[str, Any], text: str, finish: str) -> tuple[bytes, str]:
    stop = {"stop": "end_turn", "length": "max_tokens"}[finish]
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
               "stop_sequence": None}
    if not body.get("stream"):
        return json.dumps({**message, "content": [{"type": "text", "text": text}],
                           "stop_reason": stop,
                           "usage": {"input_tokens": 9, "output_tokens": 20}}).encode(), \
            "application/json"
    events: list[tuple[str | None, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {
            **message, "content": [], "stop_reason": None,
            "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
    ]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": p}})
               for p in (text[i:i + 7] for i in range(0, len(text), 7))]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop},
                           "usage": {"output_tokens": 20}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return sse(events), "text/event-stream"


def gemini_answer(body: dict[str, Any], text: str, finish: str, stream: bool) -> tuple[bytes, str]:
    reason = {"stop": "STOP", "length": "MAX_TOKENS"}[finish]

    def response(part: str, last: bool) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": part}]},
                                "index": 0}
        out: dict[str, Any] = {"candidates": [cand], "modelVersion": "gemini-2.5-flash"}
        if last:
            cand["finishReason"] = reason
            out["usageMetadata"] = {"promptTokenCount": 9, "candidatesTokenCount": 20,
                                    "totalTokenCount": 29}
        return out

    if not stream:
        return json.dumps(response(text, True)).encode(), "application/json"
    pieces = [text[i:i + 7] for i in range(0, len(text), 7)]
    return sse([(None, response(p, i == len(pieces) - 1)) for i, p in enumerate(pieces)]), \
        "text/event-stream"


def answer(path: str, body: dict[str, Any], text: str = TEXT,
           finish: str = "stop") -> tuple[bytes, str]:
    """What the provider that *path* belongs to answers with *text* as the model's output."""
    if path.endswith("/chat/completions"):
        return openai_answer(body, text, finish)
    if path.endswith("/v1/messages"):
        return anthropic_answer(body, text, finish)
    return gemini_answer(body, text, finish, "streamGenerateContent" in path)


def check_sent(provider: str, body: dict[str, Any]) -> None:
    """The request body carries the schema where the provider reads it."""
    if provider == "openai":
        assert body["response_format"] == {"type": "json_schema", "json_schema": {
            "name": "Trip", "schema": strict_json_schema(Trip, "openai"), "strict": True}}
    elif provider == "anthropic":
        assert body["output_config"] == {"format": {
            "type": "json_schema", "schema": strict_json_schema(Trip, "anthropic")}}
        assert "response_format" not in body and "tools" not in body
    else:
        assert body["generationConfig"] == {"responseMimeType": "application/json",
                                            "responseJsonSchema": Trip.model_json_schema()}


MODELS = {"openai": "openai/gpt-4o-mini", "anthropic": "anthropic/claude-sonnet-4-5",
          "gemini": "gemini/gemini-2.5-flash"}


def handler(text: str = TEXT, finish: str = "stop") -> Any:
    def handle(request: Request) -> Reply:
        payload, ctype = answer(request.path, request.json(), text, finish)
        if ctype == "application/json":
            return Reply(200, [("content-type", ctype)], payload)
        return Reply.sse([payload])

    return handle


# ------------------------------------------------------------------ fake servers, trio


@pytest.mark.parametrize("provider", MODELS)
async def test_plain_and_streamed_answers_parsed(provider: str) -> None:
    model = MODELS[provider]
    with trio.fail_after(GUARD):
        async with open_fake_server(handler()) as server, \
                trillm.Client(api_base=server.base_url, api_key="test-key") as client:
            plain = await client.acompletion(model, MSGS, response_format=Trip)
            async with client.stream(model, MSGS, response_format=Trip) as s:
                chunks = [c async for c in s]
            async with client.stream(model, MSGS, response_format=Trip) as s:
                final = await s.final_response()
            assert client.statistics().active_connections == 0
    assert plain.choices[0].message.parsed == TRIP
    assert final.choices[0].message.parsed == TRIP
    assert final.choices[0].message.content == TEXT
    built = trillm.stream_chunk_builder(chunks, response_format=Trip)
    assert built.choices[0].message.parsed == TRIP
    assert trillm.stream_chunk_builder(chunks).choices[0].message.parsed is None
    for sent in server.requests:
        check_sent(provider, sent.json())
    assert len(server.requests) == 3


@pytest.mark.parametrize("provider", MODELS)
async def test_dict_forms_give_dicts(provider: str) -> None:
    fmt = {"type": "json_schema", "json_schema": {
        "name": "trip", "schema": Trip.model_json_schema(), "strict": True}}
    with trio.fail_after(GUARD):
        async with open_fake_server(handler()) as server, \
                trillm.Client(api_base=server.base_url, api_key="test-key") as client:
            r = await client.acompletion(MODELS[provider], MSGS, response_format=fmt)
            async with client.stream(MODELS[provider], MSGS, response_format=fmt) as s:
                final = await s.final_response()
    assert r.choices[0].message.parsed == final.choices[0].message.parsed == json.loads(TEXT)
    if provider == "openai":
        assert server.requests[0].json()["response_format"] == fmt


@pytest.mark.parametrize("provider", MODELS)
@pytest.mark.parametrize("stream", [False, True])
async def test_length_cut_off_raises_and_is_not_retried(provider: str, stream: bool) -> None:
    with trio.fail_after(GUARD):
        async with open_fake_server(handler(TEXT[:20], "length")) as server, \
                trillm.Client(api_base=server.base_url, api_key="k", max_retries=3) as client:
            with pytest.raises(errors.LengthFinishReasonError) as info:
                if stream:
                    async with client.stream(MODELS[provider], MSGS, response_format=Trip,
                                             fallbacks=[MODELS[provider]]) as s:
                        await s.final_response()
                else:
                    await client.acompletion(MODELS[provider], MSGS, response_format=Trip,
                                             fallbacks=[MODELS[provider]])
    assert len(server.requests) == 1  # neither retried nor handed to the fallback
    assert info.value.text == TEXT[:20]
    assert info.value.provider == provider


# ------------------------------------------------------------------ the mock, offline


async def test_mock_answers_valid_instances_plain_and_streamed() -> None:
    r = await trillm.acompletion(model="mock/planner", messages=MSGS, response_format=Trip)
    parsed = r.choices[0].message.parsed
    assert parsed == Trip(title="", kind="city", stops=[], budget=None)
    async with trillm.stream(model="mock/planner", messages=MSGS, response_format=Trip,
                             mock_chunk_delay=0.001) as s:
        chunks = [c async for c in s]
    assert len(chunks) > 2
    assert trillm.stream_chunk_builder(chunks, response_format=Trip) \
        .choices[0].message.parsed == parsed
    obj = await trillm.acompletion(model="mock/x", messages=MSGS,
                                   response_format={"type": "json_object"})
    assert obj.choices[0].message.parsed == {}


async def test_mock_response_is_parsed_too() -> None:
    r = await trillm.acompletion(model="openai/gpt-4o-mini", messages=MSGS,
                                 response_format=Trip, mock_response=TEXT)
    assert r.choices[0].message.parsed == TRIP
    with pytest.raises(errors.StructuredOutputError) as info:
        await trillm.acompletion(model="mock/x", messages=MSGS, response_format=Trip,
                                 mock_response="Sure! Here is your trip.")
    assert info.value.text == "Sure! Here is your trip."
    assert info.value.completion.choices[0].message.content == "Sure! Here is your trip."


async def test_bad_format_refused_before_any_traffic() -> None:
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(500))
    async with trillm.Client(transport=transport, api_key="k") as client:
        for model in MODELS.values():
            with pytest.raises(errors.BadRequestError, match="response_format must be"):
                await client.acompletion(model, MSGS, response_format={"type": "yaml"})
            with trio.testing.assert_checkpoints():
                with pytest.raises(errors.BadRequestError):
                    await client.acompletion(model, MSGS, response_format=str)
    assert sent == []


# ------------------------------------------------------------------ the pipeline, virtual time


def counting(text: str, finish: str = "stop", headers: dict[str, str] | None = None) -> Any:
    seen: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(trio.current_time())
        payload, ctype = answer(request.url.path, json.loads(request.content), text, finish)
        return httpx.Response(200, content=payload,
                              headers={"content-type": ctype, **(headers or {})})

    return handle, seen


@pytest.mark.parametrize(("text", "finish", "error"), [
    ('{"title": "x"}', "stop", errors.StructuredOutputError),
    ("I would love to help!", "stop", errors.StructuredOutputError),
    (TEXT[:9], "length", errors.LengthFinishReasonError),
])
async def test_never_retried_even_when_the_server_says_retry(
    autojump_clock: trio.testing.MockClock, text: str, finish: str, error: type[Exception]
) -> None:
    handle, seen = counting(text, finish, {"x-should-retry": "true"})
    async with trillm.Client(transport=httpx.MockTransport(handle), api_key="k",
                             max_retries=5) as client:
        with pytest.raises(error) as info:
            await client.acompletion("gpt-4o-mini", MSGS, response_format=Trip,
                                     fallbacks=["gpt-4o", "claude-sonnet-4-5"])
    assert seen == [0.0]
    assert info.value.headers == {}
    assert info.value.text == text


async def test_content_filter_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    handle, seen = counting("", "content_filter")
    async with trillm.Client(transport=httpx.MockTransport(handle), api_key="k") as client:
        with pytest.raises(errors.ContentFilterFinishReasonError):
            await client.acompletion("gpt-4o-mini", MSGS, response_format=Trip)
    assert seen == [0.0]


async def test_a_fallback_answer_is_parsed(autojump_clock: trio.testing.MockClock) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["model"] == "gpt-4o-mini":
            return httpx.Response(503, json={"error": {"message": "busy"}})
        payload, ctype = answer(request.url.path, body)
        return httpx.Response(200, content=payload, headers={"content-type": ctype})

    async with trillm.Client(transport=httpx.MockTransport(handle), api_key="k",
                             max_retries=0) as client:
        r = await client.acompletion("gpt-4o-mini", MSGS, response_format=Trip,
                                     fallbacks=["gpt-4o"])
    assert (r.model, r.choices[0].message.parsed) == ("gpt-4o", TRIP)


async def test_no_format_no_parsing(autojump_clock: trio.testing.MockClock) -> None:
    handle, _ = counting("not JSON at all")
    async with trillm.Client(transport=httpx.MockTransport(handle), api_key="k") as client:
        r = await client.acompletion("gpt-4o-mini", MSGS)
        async with client.stream("gpt-4o-mini", MSGS) as s:
            final = await s.final_response()
    assert r.choices[0].message.parsed is final.choices[0].message.parsed is None
    assert "parsed" not in r.choices[0].message


async def test_facade_parse_under_trio() -> None:
    with trio.fail_after(GUARD):
        async with open_fake_server(handler()) as server, \
                trillm.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="k") as client:
            r = await client.chat.completions.parse(model="gpt-4o-mini", messages=MSGS,
                                                    response_format=Trip)
            with pytest.raises(TypeError, match="does not stream"):
                await client.chat.completions.parse(model="gpt-4o-mini", messages=MSGS,
                                                    response_format=Trip, stream=True)
    assert r.choices[0].message.parsed == TRIP
    check_sent("openai", server.requests[0].json())


# ------------------------------------------------------------------ sync, threaded server


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with self.server.lock:
            self.server.bodies.append(body)
        payload, ctype = answer(self.path, body)
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.bodies: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def threaded_server() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("provider", MODELS)
def test_sync_completion_plain_and_streamed(provider: str) -> None:
    with threaded_server() as server:
        r = trillm.completion(MODELS[provider], MSGS, response_format=Trip,
                              api_base=server.url, api_key="k", timeout=GUARD)
        stream = trillm.completion(MODELS[provider], MSGS, response_format=Trip, stream=True,
                                   api_base=server.url, api_key="k", timeout=GUARD)
        with stream:
            final = stream.final_response()
        mocked = trillm.completion("mock/x", MSGS, response_format=Trip)
    assert r.choices[0].message.parsed == final.choices[0].message.parsed == TRIP
    assert mocked.choices[0].message.parsed == Trip(title="", kind="city", stops=[], budget=None)
    for body in server.bodies:
        check_sent(provider, body)


def test_sync_facade_parse() -> None:
    with threaded_server() as server, \
            trillm.OpenAI(base_url=server.url + "/v1", api_key="k") as client:
        r = client.chat.completions.parse(model="gpt-4o-mini", messages=MSGS,
                                          response_format=Trip)
    assert r.choices[0].message.parsed == TRIP
    check_sent("openai", server.bodies[0])
