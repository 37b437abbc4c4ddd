"""trillm.testing.FakeLLM's answers made to measure: ``respond()`` (a body exactly as given,
then an end, a stall or a break), ``reply(fn)`` (text from the request), ``stream(...,
headers_delay=)`` and ``fail(headers=)`` (a Retry-After date relative to the answer's own
``Date``), ``FakeRequest.sent_secret`` and ``FakeRequest.url``; in memory on virtual time
(exact times) and on a loopback port (real clock)."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.retry import RetryPolicy
from trillm.testing import FakeLLM

MSGS = [{"role": "user", "content": "hi"}]
MODEL = "openai/gpt-4o-mini"


def chunk(text: str, finish: str | None = None) -> bytes:
    data = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}
    return f"data: {json.dumps(data)}\n\n".encode()


def client(fake: FakeLLM, **kw: object) -> trillm.Client:
    kw.setdefault("retry", RetryPolicy(jitter=0))
    return trillm.Client(transport=fake.transport(), api_key="sk-test", **kw)  # type: ignore[arg-type]


async def test_respond_sends_the_body_status_and_headers_as_given(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    body = {"id": "x1", "object": "chat.completion", "created": 5, "model": "given",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "as given"}}]}
    fake.on(model="gpt-4o-mini").respond(body, headers={"X-Request-Id": "req_9"}, delay=2)
    fake.on().respond(b"not json at all", status=502, headers={"content-type": "text/plain"})
    async with client(fake, max_retries=0) as c:
        r = await c.acompletion(MODEL, MSGS)
        assert (r.id, r.model, r.choices[0].message.content) == ("x1", "given", "as given")
        assert r.headers["x-request-id"] == "req_9"
        assert trio.current_time() == 2.0
        with pytest.raises(errors.InternalServerError, match="not json at all"):
            await c.acompletion("openai/other", MSGS)
    first, second = fake.requests
    assert (first.status, first.completed, first.rule) == (200, True, 0)
    assert (second.status, second.completed, second.rule) == (502, True, 1)


async def test_respond_chunks_arrive_on_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().respond([chunk("a"), chunk("b"), chunk("c", "stop"), b"data: [DONE]\n\n"],
                      delay=1, chunk_delay=2)
    async with client(fake) as c:
        async with c.stream(MODEL, MSGS) as s:
            assert trio.current_time() == 1.0
            assert s.headers["content-type"] == "text/event-stream"
            got = [(trio.current_time(), x.choices[0].delta.content) async for x in s]
    assert got == [(3.0, "a"), (5.0, "b"), (7.0, "c")]
    (req,) = fake.requests
    assert req.completed and req.chunks_sent == 4 and not req.cancelled_by_client


async def test_respond_then_hang_stalls_until_the_client_gives_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().respond([chunk("a")], then="hang")
    async with client(fake, idle_timeout=4) as c:
        async with c.stream(MODEL, MSGS) as s:
            assert (await s.__anext__()).choices[0].delta.content == "a"
            with pytest.raises(errors.Timeout, match="idle_timeout"):
                await s.__anext__()
        assert trio.current_time() == 4.0
    (req,) = fake.requests
    assert req.cancelled_by_client and not req.completed and req.chunks_sent == 1


async def test_respond_then_disconnect_breaks_the_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().respond([chunk("a"), chunk("b")], then="disconnect")
    async with client(fake) as c:
        async with c.stream(MODEL, MSGS) as s:
            with pytest.raises(errors.StreamError):
                async for _ in s:
                    pass
    (req,) = fake.requests
    assert req.chunks_sent == 2 and not req.completed and not req.cancelled_by_client


async def test_respond_and_reply_answer_from_the_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on(operation="embeddings").respond(lambda req: {
        "object": "list", "model": "m", "data": [
            {"object": "embedding", "index": i, "embedding": [float(len(t))]}
            for i, t in enumerate(req.params["input"])]})
    fake.on().reply(lambda req: f"you said {req.text!r} to {req.model}")
    async with client(fake) as c:
        e = await c.aembedding("openai/text-embedding-3-small", ["abc", "de"])
        assert [v.embedding for v in e.data] == [(3.0,), (2.0,)]
        r = await c.acompletion(MODEL, [{"role": "user", "content": "one"}])
        assert r.choices[0].message.content == "you said 'one' to gpt-4o-mini"
        async with c.stream("anthropic/claude-3-5-haiku-latest",
                            [{"role": "user", "content": "two"}]) as s:
            final = await s.final_response()
    assert final.choices[0].message.content == "you said 'two' to claude-3-5-haiku-latest"


async def test_stream_headers_delay_comes_before_the_pieces(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().stream(["a", "b"], delay=2, headers_delay=1)
    async with client(fake) as c:
        async with c.stream(MODEL, MSGS) as s:
            assert trio.current_time() == 1.0
            got = [(trio.current_time(), x.choices[0].delta.content) async for x in s
                   if x.choices[0].delta.content]
        assert got == [(3.0, "a"), (5.0, "b")]
        r = await c.acompletion(MODEL, MSGS)  # plain: every delay, then the answer
        assert r.choices[0].message.content == "ab"
        assert trio.current_time() == 5.0 + 1 + 2 * 2


async def test_fail_headers_script_a_retry_after_date_relative_to_the_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().fail(503, headers={"retry-after-ms": "1500"}).fail(429, headers={
        "date": "Wed, 21 Oct 2026 07:28:00 GMT",
        "retry-after": "Wed, 21 Oct 2026 07:28:04 GMT"}).reply("ok")
    async with client(fake, max_retries=2) as c:
        r = await c.acompletion(MODEL, MSGS)
    assert r.choices[0].message.content == "ok"
    assert [q.started_at for q in fake.requests] == [0.0, 1.5, 5.5]


async def test_fail_headers_keep_the_json_content_type() -> None:
    fake = FakeLLM()
    fake.on().fail(400, headers={"x-debug": "1"})
    async with httpx.AsyncClient(transport=fake.transport()) as http:
        r = await http.post("http://fake/v1/chat/completions", json={"model": "m"})
    assert r.headers["content-type"] == "application/json" and r.headers["x-debug"] == "1"
    assert "scripted 400" in r.json()["error"]["message"]


def test_respond_checks_its_arguments() -> None:
    rule = FakeLLM().on()
    with pytest.raises(ValueError, match="then="):
        rule.respond(b"x", then="later")
    with pytest.raises(ValueError, match="seconds"):
        rule.respond(b"x", chunk_delay=-1)
    with pytest.raises(ValueError, match="seconds"):
        rule.respond(b"x", delay=-1)
    with pytest.raises(TypeError, match="not a str"):
        fake = FakeLLM()
        fake.on().reply(lambda req: 3)  # type: ignore[arg-type,return-value]
        fake.handle("POST", "/v1/chat/completions", {}, b'{"model": "m"}')


async def test_respond_over_loopback_ends_stalls_and_is_closed_by_the_client() -> None:
    fake = FakeLLM()
    fake.on(model="whole").respond({"id": "w", "object": "chat.completion", "created": 0,
                                    "model": "whole", "choices": [{"index": 0, "message": {
                                        "role": "assistant", "content": "done"}}]})
    fake.on(model="stall").respond([chunk("a")], chunk_delay=0.05, then="hang")
    with trio.fail_after(10):
        async with fake.serve() as url, trillm.Client(api_base=url + "/v1", api_key="sk-t",
                                                      idle_timeout=0.2) as c:
            r = await c.acompletion("openai/whole", MSGS)
            assert r.choices[0].message.content == "done"
            async with c.stream("openai/stall", MSGS) as s:
                assert (await s.__anext__()).choices[0].delta.content == "a"
                with pytest.raises(errors.Timeout, match="idle_timeout"):
                    await s.__anext__()
            await fake.requests[1].wait_ended()
    whole, stall = fake.requests
    assert whole.url == url + "/v1/chat/completions"  # over loopback: http, the Host header
    assert whole.completed and not whole.cancelled_by_client
    assert stall.cancelled_by_client and not stall.completed and stall.chunks_sent == 1


async def test_sent_secret_checks_a_redacted_header_without_keeping_it() -> None:
    fake = FakeLLM()
    async with trillm.Client(transport=fake.transport()) as c:
        await c.acompletion(MODEL, MSGS, api_key="sk-first-1234")
        await c.aembedding("gemini/text-embedding-004", "x", api_key="g-key-5678")
    openai, gemini = fake.requests
    assert openai.url == "https://api.openai.com/v1/chat/completions"  # in memory: as addressed
    assert gemini.url.startswith("https://generativelanguage.googleapis.com/v1beta/models/")
    assert openai.headers["authorization"] == "[REDACTED]"
    assert openai.sent_secret("Authorization", "Bearer sk-first-1234")
    assert not openai.sent_secret("authorization", "Bearer sk-other")
    assert not openai.sent_secret("x-goog-api-key", "Bearer sk-first-1234")  # not sent
    assert gemini.sent_secret("x-goog-api-key", "g-key-5678")
    assert "sk-first-1234" not in repr(openai.parsed) + repr(openai.parsed.secret_digests)
