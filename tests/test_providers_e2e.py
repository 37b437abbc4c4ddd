"""Anthropic and Gemini through the Client: their hand-written payloads sent as given by
trillm.testing's FakeLLM (``respond()``) on 127.0.0.1 (real sockets, real clock) for answers,
streams and cancellation, and in memory on virtual time for the retry of 529 / 429 with
Gemini's RetryInfo."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.testing import FakeLLM

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
GUARD = 10
WORDS = ["Hello", " from", " the", " fake", " server"]
TEXT = "".join(WORDS)


def sse(events: list[tuple[str | None, dict[str, Any]]]) -> list[bytes]:
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {json.dumps(data)}\n\n".encode())
    return out


# ------------------------------------------------------------------ Anthropic


def anthropic_json() -> dict[str, Any]:
    return {"id": "msg_01", "type": "message", "role": "assistant",
            "model": "claude-3-5-sonnet-20241022",
            "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 5}}


def anthropic_events() -> list[bytes]:
    events: list[tuple[str | None, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_01", "type": "message", "role": "assistant",
            "model": "claude-3-5-sonnet-20241022", "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": w}})
               for w in WORDS]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 5}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return sse(events)


# ------------------------------------------------------------------ Gemini


def gemini_json(text: str = TEXT, last: bool = True) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]},
                            "index": 0}
    out: dict[str, Any] = {"candidates": [cand], "modelVersion": "gemini-2.0-flash",
                           "responseId": "resp-1"}
    if last:
        cand["finishReason"] = "STOP"
        out["usageMetadata"] = {"promptTokenCount": 12, "candidatesTokenCount": 5,
                                "totalTokenCount": 17}
    return out


def gemini_events() -> list[bytes]:
    return sse([(None, gemini_json(w, i == len(WORDS) - 1)) for i, w in enumerate(WORDS)])


PROVIDERS = {
    "anthropic": ("anthropic/claude-3-5-sonnet-20241022", anthropic_json, anthropic_events),
    "gemini": ("gemini/gemini-2.0-flash", gemini_json, gemini_events),
}


def provider_fake(name: str, *, stream_tail: bool = True) -> FakeLLM:
    """The provider's recorded payloads, sent as given: a stream's events (or, without
    its tail, its first three and then silence), else the plain answer."""
    _, plain, events = PROVIDERS[name]
    fake = FakeLLM()
    if stream_tail:
        fake.on(when=lambda req: req.stream).respond(events())
    else:
        fake.on(when=lambda req: req.stream).respond(events()[:3], then="hang")
    fake.on().respond(plain())
    return fake


@pytest.mark.parametrize("name", PROVIDERS)
async def test_plain_and_streamed_answers_agree(name: str) -> None:
    model = PROVIDERS[name][0]
    with trio.fail_after(GUARD):
        fake = provider_fake(name)
        async with fake.serve() as url, \
                trillm.Client(api_base=url, api_key="test-key") as client:
            plain = await client.acompletion(model, MSGS, max_tokens=100)
            async with client.stream(model, MSGS, max_tokens=100) as s:
                chunks = [c async for c in s]
            assert client.statistics().active_connections == 0
    assert plain.choices[0].message.content == TEXT
    streamed = trillm.stream_chunk_builder(chunks)
    assert streamed.choices[0].message.content == TEXT
    assert streamed.choices[0].finish_reason == plain.choices[0].finish_reason == "stop"
    assert streamed.usage == plain.usage
    assert plain.usage is not None and plain.usage.prompt_tokens == 12
    sent = fake.requests[0]
    assert [r.stream for r in fake.requests] == [False, True]
    if name == "anthropic":
        assert sent.path == "/v1/messages"
        assert sent.sent_secret("x-api-key", "test-key")
        assert json.loads(sent.body)["system"]
    else:
        assert sent.path.startswith("/v1beta/models/gemini-2.0-flash:generateContent")
        assert sent.sent_secret("x-goog-api-key", "test-key")
        assert "key=" not in sent.path


@pytest.mark.parametrize("name", PROVIDERS)
async def test_cancelling_mid_stream_closes_the_connection(name: str) -> None:
    model = PROVIDERS[name][0]
    with trio.fail_after(GUARD):
        fake = provider_fake(name, stream_tail=False)
        async with fake.serve() as url, \
                trillm.Client(api_base=url, api_key="test-key") as client:
            first = trio.Event()

            async def consume() -> None:
                async with client.stream(model, MSGS) as s:
                    async for _ in s:
                        first.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                await first.wait()
                nursery.cancel_scope.cancel()
            await fake.requests[0].wait_ended()  # the server saw the connection close
            assert fake.requests[0].cancelled_by_client
            stats = client.statistics()
            assert (stats.open_streams, stats.active_connections) == (0, 0)


async def test_anthropic_529_overloaded_is_retried(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().fail(529, body={"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}).respond(anthropic_json())
    async with trillm.Client(transport=fake.transport(), api_key="k",
                             retry=trillm.RetryPolicy(jitter=0)) as client:
        r = await client.acompletion(PROVIDERS["anthropic"][0], MSGS)
    assert r.choices[0].message.content == TEXT
    assert [(q.started_at, q.status, q.provider) for q in fake.requests] == [
        (0.0, 529, "anthropic"), (0.5, 200, "anthropic")]


async def test_gemini_429_retry_info_is_honoured(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().fail(429, body={"error": {
        "code": 429, "message": "Resource has been exhausted", "status":
        "RESOURCE_EXHAUSTED", "details": [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}}
    ).respond(gemini_json())
    async with trillm.Client(transport=fake.transport(), api_key="k") as client:
        r = await client.acompletion(PROVIDERS["gemini"][0], MSGS)
    assert r.choices[0].message.content == TEXT
    assert [(q.started_at, q.status, q.provider) for q in fake.requests] == [
        (0.0, 429, "gemini"), (7.0, 200, "gemini")]


async def test_bare_names_route_to_their_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    async with trillm.Client() as client:
        with pytest.raises(errors.AuthenticationError, match="ANTHROPIC_API_KEY"):
            await client.acompletion("claude-3-5-sonnet-20241022", MSGS)
        with pytest.raises(errors.AuthenticationError, match="GEMINI_API_KEY"):
            await client.acompletion("gemini-2.0-flash", MSGS)
