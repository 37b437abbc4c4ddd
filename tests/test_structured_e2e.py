"""Structured output end to end: OpenAI, Anthropic and Gemini answers from a FakeLLM served on
127.0.0.1 (plain and streamed, real sockets, real clock), the sync API and the OpenAI facades
against the same fake served from a thread, the mock offline; the pipeline's rules (never
retried, no fallback) on virtual time with the fake in memory."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
import trio
import trio.testing
from pydantic import BaseModel

import trillm
from tests.fake_openai import serving_in_thread
from trillm import errors
from trillm.structured import strict_json_schema
from trillm.testing import FakeLLM, FakeRequest

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


def body_of(request: FakeRequest, text: str = TEXT, finish: str = "stop") -> bytes | list[bytes]:
    """The provider's answer to *request* (one JSON body, or a one-chunk SSE stream)."""
    payload, ctype = answer(request.path, json.loads(request.body), text, finish)
    return payload if ctype == "application/json" else [payload]


def scripted(text: str = TEXT, finish: str = "stop",
             headers: dict[str, str] | None = None) -> FakeLLM:
    """A fake answering every request with *text* as the model's output, in its format."""
    fake = FakeLLM()
    fake.on().respond(lambda request: body_of(request, text, finish), headers=headers)
    return fake


def bodies(fake: FakeLLM) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in fake.requests]


# ------------------------------------------------------------------ fake servers, trio


@pytest.mark.parametrize("provider", MODELS)
async def test_plain_and_streamed_answers_parsed(provider: str) -> None:
    model = MODELS[provider]
    fake = scripted()
    with trio.fail_after(GUARD):
        async with fake.serve() as url, \
                trillm.Client(api_base=url, api_key="test-key") as client:
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
    for sent in bodies(fake):
        check_sent(provider, sent)
    assert len(fake.requests) == 3


@pytest.mark.parametrize("provider", MODELS)
async def test_dict_forms_give_dicts(provider: str) -> None:
    fmt = {"type": "json_schema", "json_schema": {
        "name": "trip", "schema": Trip.model_json_schema(), "strict": True}}
    fake = scripted()
    with trio.fail_after(GUARD):
        async with fake.serve() as url, \
                trillm.Client(api_base=url, api_key="test-key") as client:
            r = await client.acompletion(MODELS[provider], MSGS, response_format=fmt)
            async with client.stream(MODELS[provider], MSGS, response_format=fmt) as s:
                final = await s.final_response()
    assert r.choices[0].message.parsed == final.choices[0].message.parsed == json.loads(TEXT)
    if provider == "openai":
        assert bodies(fake)[0]["response_format"] == fmt


@pytest.mark.parametrize("provider", MODELS)
@pytest.mark.parametrize("stream", [False, True])
async def test_length_cut_off_raises_and_is_not_retried(provider: str, stream: bool) -> None:
    fake = scripted(TEXT[:20], "length")
    with trio.fail_after(GUARD):
        async with fake.serve() as url, \
                trillm.Client(api_base=url, api_key="k", max_retries=3) as client:
            with pytest.raises(errors.LengthFinishReasonError) as info:
                if stream:
                    async with client.stream(MODELS[provider], MSGS, response_format=Trip,
                                             fallbacks=[MODELS[provider]]) as s:
                        await s.final_response()
                else:
                    await client.acompletion(MODELS[provider], MSGS, response_format=Trip,
                                             fallbacks=[MODELS[provider]])
    assert len(fake.requests) == 1  # neither retried nor handed to the fallback
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
    fake = FakeLLM()
    fake.on().fail(500)
    async with trillm.Client(transport=fake.transport(), api_key="k") as client:
        for model in MODELS.values():
            with pytest.raises(errors.BadRequestError, match="response_format must be"):
                await client.acompletion(model, MSGS, response_format={"type": "yaml"})
            with trio.testing.assert_checkpoints():
                with pytest.raises(errors.BadRequestError):
                    await client.acompletion(model, MSGS, response_format=str)
    assert fake.requests == []


# ------------------------------------------------------------------ the pipeline, virtual time


def arrivals(fake: FakeLLM) -> list[float]:
    """When (on the trio clock) each request reached the fake."""
    return [r.started_at for r in fake.requests]


@pytest.mark.parametrize(("text", "finish", "error"), [
    ('{"title": "x"}', "stop", errors.StructuredOutputError),
    ("I would love to help!", "stop", errors.StructuredOutputError),
    (TEXT[:9], "length", errors.LengthFinishReasonError),
])
async def test_never_retried_even_when_the_server_says_retry(
    autojump_clock: trio.testing.MockClock, text: str, finish: str, error: type[Exception]
) -> None:
    fake = scripted(text, finish, {"x-should-retry": "true"})
    async with trillm.Client(transport=fake.transport(), api_key="k",
                             max_retries=5) as client:
        with pytest.raises(error) as info:
            await client.acompletion("gpt-4o-mini", MSGS, response_format=Trip,
                                     fallbacks=["gpt-4o", "claude-sonnet-4-5"])
    assert arrivals(fake) == [0.0]
    assert info.value.headers == {}
    assert info.value.text == text


async def test_content_filter_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    fake = scripted("", "content_filter")
    async with trillm.Client(transport=fake.transport(), api_key="k") as client:
        with pytest.raises(errors.ContentFilterFinishReasonError):
            await client.acompletion("gpt-4o-mini", MSGS, response_format=Trip)
    assert arrivals(fake) == [0.0]


async def test_a_fallback_answer_is_parsed(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(model="gpt-4o-mini").fail(503, body={"error": {"message": "busy"}})
    fake.on().respond(body_of)
    async with trillm.Client(transport=fake.transport(), api_key="k",
                             max_retries=0) as client:
        r = await client.acompletion("gpt-4o-mini", MSGS, response_format=Trip,
                                     fallbacks=["gpt-4o"])
    assert (r.model, r.choices[0].message.parsed) == ("gpt-4o", TRIP)


async def test_no_format_no_parsing(autojump_clock: trio.testing.MockClock) -> None:
    fake = scripted("not JSON at all")
    async with trillm.Client(transport=fake.transport(), api_key="k") as client:
        r = await client.acompletion("gpt-4o-mini", MSGS)
        async with client.stream("gpt-4o-mini", MSGS) as s:
            final = await s.final_response()
    assert r.choices[0].message.parsed is final.choices[0].message.parsed is None
    assert "parsed" not in r.choices[0].message


async def test_facade_parse_under_trio() -> None:
    fake = scripted()
    with trio.fail_after(GUARD):
        async with fake.serve() as url, \
                trillm.AsyncOpenAI(base_url=url + "/v1", api_key="k") as client:
            r = await client.chat.completions.parse(model="gpt-4o-mini", messages=MSGS,
                                                    response_format=Trip)
            with pytest.raises(TypeError, match="does not stream"):
                await client.chat.completions.parse(model="gpt-4o-mini", messages=MSGS,
                                                    response_format=Trip, stream=True)
    assert r.choices[0].message.parsed == TRIP
    check_sent("openai", bodies(fake)[0])


# ------------------------------------------------------------------ sync, the fake in a thread


@pytest.mark.parametrize("provider", MODELS)
def test_sync_completion_plain_and_streamed(provider: str) -> None:
    fake = scripted()
    with serving_in_thread(fake) as url:
        r = trillm.completion(MODELS[provider], MSGS, response_format=Trip,
                              api_base=url, api_key="k", timeout=GUARD)
        stream = trillm.completion(MODELS[provider], MSGS, response_format=Trip, stream=True,
                                   api_base=url, api_key="k", timeout=GUARD)
        with stream:
            final = stream.final_response()
        mocked = trillm.completion("mock/x", MSGS, response_format=Trip)
    assert r.choices[0].message.parsed == final.choices[0].message.parsed == TRIP
    assert mocked.choices[0].message.parsed == Trip(title="", kind="city", stops=[], budget=None)
    assert len(fake.requests) == 2
    for body in bodies(fake):
        check_sent(provider, body)


def test_sync_facade_parse() -> None:
    fake = scripted()
    with serving_in_thread(fake) as url, \
            trillm.OpenAI(base_url=url + "/v1", api_key="k") as client:
        r = client.chat.completions.parse(model="gpt-4o-mini", messages=MSGS,
                                          response_format=Trip)
    assert r.choices[0].message.parsed == TRIP
    check_sent("openai", bodies(fake)[0])
