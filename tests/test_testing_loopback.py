"""trillm.testing.FakeLLM on a loopback port (``fake.serve()``): every verb on every wire
format, plain and streamed, with real sockets, the real clock and a ``fail_after`` guard;
and clients other than trillm's (the openai SDK, plain httpx)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import trillm
from trillm import errors
from trillm.accumulate import stream_chunk_builder
from trillm.retry import RetryPolicy
from trillm.testing import FakeLLM, UnmatchedRequest
from trillm.types import ModelResponse

GUARD = 10  # seconds: every test is over long before
ROOT = str(Path(__file__).resolve().parents[1])  # the checkout, for the subprocess
MODELS = {
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-3-5-haiku-latest",
    "gemini": "gemini/gemini-2.0-flash",
    "azure": "azure/my-deployment",
}
WIRE = sorted(MODELS)
MESSAGES = [{"role": "user", "content": "Say hi"}]
every = pytest.mark.parametrize("fmt", WIRE)
both = pytest.mark.parametrize("stream", [False, True], ids=["plain", "sse"])


def bare(fmt: str) -> str:
    return MODELS[fmt].split("/", 1)[1]


def client(url: str, fmt: str, **kw: Any) -> trillm.Client:
    """A Client pointed at the fake as each provider's SDK is (OpenAI bases include /v1)."""
    kw.setdefault("retry", RetryPolicy(jitter=0, base_delay=0.01))  # real time: keep it short
    base = url + "/v1" if fmt == "openai" else url
    return trillm.Client(api_base=base, api_key="sk-loopback-secret-42", **kw)


async def ask(c: trillm.Client, fmt: str, stream: bool) -> ModelResponse:
    if not stream:
        return await c.acompletion(model=MODELS[fmt], messages=MESSAGES)
    async with c.stream(model=MODELS[fmt], messages=MESSAGES) as s:
        return stream_chunk_builder([chunk async for chunk in s])


@every
@both
async def test_reply_text_and_tool_calls(fmt: str, stream: bool) -> None:
    fake = FakeLLM()
    fake.on(model=bare(fmt)).reply("Hello over loopback").reply(
        tool_calls=[{"name": "lookup", "arguments": {"q": "x"}}])
    with trio.fail_after(GUARD):
        async with fake.serve() as url:
            assert url.startswith("http://127.0.0.1:")
            async with client(url, fmt) as c:
                text = await ask(c, fmt, stream)
                calls = await ask(c, fmt, stream)
    assert text.choices[0].message.content == "Hello over loopback"
    tool_calls = calls.choices[0].message.tool_calls
    assert tool_calls is not None and tool_calls[0].function.name == "lookup"
    assert json.loads(tool_calls[0].function.arguments) == {"q": "x"}
    first = fake.requests[0]
    assert first.provider == fmt and first.model == bare(fmt) and first.stream is stream
    assert first.completed and not first.cancelled_by_client
    assert "sk-loopback-secret-42" not in json.dumps(dict(first.headers))


@every
@both
async def test_stream_pieces_arrive_apart(fmt: str, stream: bool) -> None:
    fake = FakeLLM()
    fake.on().stream(["one ", "two ", "three"], delay=0.05)
    with trio.fail_after(GUARD):
        async with fake.serve() as url, client(url, fmt) as c:
            start = trio.current_time()
            r = await ask(c, fmt, stream)
            took = trio.current_time() - start
    assert r.choices[0].message.content == "one two three"
    assert took >= 0.15
    assert fake.requests[0].chunks_sent == (3 if stream else 1)


@every
@both
async def test_fail_then_answer(fmt: str, stream: bool) -> None:
    fake = FakeLLM()
    fake.on().fail(429, retry_after=0.05).fail(503).reply("recovered")
    with trio.fail_after(GUARD):
        async with fake.serve() as url, client(url, fmt, max_retries=2) as c:
            r = await ask(c, fmt, stream)
    assert r.choices[0].message.content == "recovered"
    assert [q.status for q in fake.requests] == [429, 503, 200]


@every
async def test_fail_is_raised_as_the_provider_class(fmt: str) -> None:
    fake = FakeLLM()
    fake.on().fail(401)
    with trio.fail_after(GUARD):
        async with fake.serve() as url, client(url, fmt, max_retries=0) as c:
            with pytest.raises(errors.AuthenticationError):
                await ask(c, fmt, True)


@every
@both
async def test_disconnect_before_headers_then_answer(fmt: str, stream: bool) -> None:
    fake = FakeLLM()
    fake.on().disconnect().reply("second try")
    with trio.fail_after(GUARD):
        async with fake.serve() as url, client(url, fmt, max_retries=1) as c:
            r = await ask(c, fmt, stream)
    assert r.choices[0].message.content == "second try"
    assert fake.requests[0].status is None


@every
async def test_disconnect_mid_stream(fmt: str) -> None:
    fake = FakeLLM()
    fake.on().disconnect(after_chunks=1, pieces=["a", "b", "c"])
    got = []
    with trio.fail_after(GUARD):
        async with fake.serve() as url, client(url, fmt, max_retries=0) as c:
            with pytest.raises(errors.StreamError):
                async with c.stream(model=MODELS[fmt], messages=MESSAGES) as s:
                    async for chunk in s:
                        got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "a"
    assert fake.requests[0].chunks_sent == 1 and not fake.requests[0].completed


@every
@both
async def test_hang_is_cancelled_by_the_client(fmt: str, stream: bool) -> None:
    fake = FakeLLM()
    fake.on().hang()
    with trio.fail_after(GUARD):
        async with fake.serve() as url:
            async with client(url, fmt, max_retries=0, timeout=0.2) as c:
                with pytest.raises(errors.Timeout):
                    await ask(c, fmt, stream)
            await fake.requests[0].wait_ended()
    assert fake.requests[0].cancelled_by_client and not fake.requests[0].completed


async def test_hedge_loser_is_seen_closed_by_the_server() -> None:
    fake = FakeLLM()
    fake.on().stream(["slow"], delay=5).times(1)
    fake.on().reply("fast")
    with trio.fail_after(GUARD):
        async with fake.serve() as url:
            async with client(url, "openai") as c:
                r = await trillm.hedge(partial(ask, c, "openai", False), delay=0.05)
            await fake.requests[0].wait_ended()
    assert r.choices[0].message.content == "fast"
    loser, winner = fake.requests
    assert loser.cancelled_by_client and not loser.completed
    assert winner.completed


async def test_strict_unmatched_is_raised_when_the_server_stops() -> None:
    fake = FakeLLM(strict=True)
    fake.on(model="gpt-4o").reply("x")
    with trio.fail_after(GUARD), pytest.raises(UnmatchedRequest, match="nearest rule #0"):
        async with fake.serve() as url, client(url, "openai", max_retries=0) as c:
            with pytest.raises(errors.InternalServerError):
                await ask(c, "openai", False)


# ---------------------------------------------------------------- other clients


async def test_the_openai_sdk_against_the_fake() -> None:
    openai = pytest.importorskip("openai")
    fake = FakeLLM()
    fake.on(model="gpt-4o-mini").reply("from the fake")

    def use_sdk(base_url: str) -> tuple[str | None, str]:
        sdk = openai.OpenAI(base_url=base_url, api_key="sk-sdk-key", max_retries=0)
        try:
            plain = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            stream = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                 stream=True)
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        finally:
            sdk.close()
        return plain.choices[0].message.content, text

    with trio.fail_after(GUARD):
        async with fake.serve() as url:
            plain, streamed = await trio.to_thread.run_sync(use_sdk, url + "/v1")
    assert plain == streamed == "from the fake"
    assert fake.requests[0].headers["authorization"] == "[REDACTED]"


async def test_plain_httpx_reads_gemini_sse_and_json_array() -> None:
    fake = FakeLLM()
    fake.on(provider="gemini").stream(["Hi", " there"])
    body = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    with trio.fail_after(GUARD):
        async with fake.serve() as url, httpx.AsyncClient(base_url=url) as h:
            sse = await h.post(path + "?alt=sse", json=body)
            array = await h.post(path, json=body)
    events = [json.loads(line[6:]) for line in sse.text.splitlines() if line.startswith("data: ")]
    texts = [p["text"] for e in events for c in e.get("candidates", ())
             for p in c["content"]["parts"]]
    assert sse.headers["content-type"] == "text/event-stream" and texts == ["Hi", " there"]
    assert [c["content"]["parts"] for e in array.json() for c in e.get("candidates", ())
            if c["content"]["parts"]] == [[{"text": "Hi"}], [{"text": " there"}]]
    assert fake.requests[0].messages == ({"role": "user", "content": "hello"},)


# ---------------------------------------------------------------- trillm fake-server


async def test_the_fake_server_command() -> None:
    argv = [sys.executable, "-m", "trillm.cli", "fake-server", "--port", "0", "--reply", "pong"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            proc: trio.Process = await nursery.start(partial(
                trio.run_process, argv, stdout=subprocess.PIPE, env=env, check=False))
            assert proc.stdout is not None
            line = b""
            while not line.endswith(b"\n"):
                line += await proc.stdout.receive_some(4096)
            url = line.decode().split(" on ", 1)[1].split(" ", 1)[0]
            assert f"OPENAI_BASE_URL={url}/v1" in line.decode()
            async with trillm.Client(api_base=url + "/v1") as c:
                r = await c.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES)
            async with trillm.Client(api_base=url) as c:
                a = await c.acompletion(model="anthropic/claude-3-5-haiku-latest",
                                        messages=MESSAGES)
            proc.terminate()
    assert r.choices[0].message.content == a.choices[0].message.content == "pong"


@every
@both
async def test_reply_json_fail_with_a_body_and_times(fmt: str, stream: bool) -> None:
    """The verbs the other loopback tests leave out: ``reply(json=)``, ``fail(500)`` and
    ``fail(status=, body=)`` (the provider's class, its message), and ``times(n)`` (the rule
    stops matching after n uses; the next rule answers)."""
    fake = FakeLLM()
    fake.on(model=bare(fmt)).fail(500).fail(status=400, body={
        "error": {"message": "no such thing", "type": "invalid_request_error"}}).reply(
        json={"city": "Paris"}).times(3)
    fake.on(model=bare(fmt)).reply("after the first rule")
    with trio.fail_after(GUARD):
        async with fake.serve() as url, client(url, fmt, max_retries=0) as c:
            with pytest.raises(errors.InternalServerError):
                await ask(c, fmt, stream)
            with pytest.raises(errors.BadRequestError, match="no such thing"):
                await ask(c, fmt, stream)
            answered = await ask(c, fmt, stream)
            after = await ask(c, fmt, stream)
    assert json.loads(answered.choices[0].message.content or "") == {"city": "Paris"}
    assert after.choices[0].message.content == "after the first rule"
    assert [q.status for q in fake.requests] == [500, 400, 200, 200]
    assert [q.rule for q in fake.requests] == [0, 0, 0, 1]
    assert all(q.stream is stream for q in fake.requests)
