"""trillm.testing.FakeLLM speaks the Responses API (``POST /v1/responses``, Azure's
``/openai/v1/responses``): every verb, plain and streamed as the real event sequence, in
memory on virtual time (exact times) and over loopback (real clock, ``fail_after``)."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.response_types import Response, ResponseFunctionCall
from trillm.retry import RetryPolicy
from trillm.testing import FakeLLM

KEY = "sk-responses-key-0123456789"
FORMATS: dict[str, dict[str, Any]] = {
    "openai": {"model": "openai/gpt-4o-mini"},
    "azure": {"model": "azure/my-deployment", "api_base": "https://res.openai.azure.com"},
}
every = pytest.mark.parametrize("fmt", sorted(FORMATS))
both = pytest.mark.parametrize("stream", [False, True], ids=["plain", "sse"])
GUARD = 10


def client(fake: FakeLLM, **kw: Any) -> trillm.Client:
    kw.setdefault("retry", RetryPolicy(jitter=0))
    return trillm.Client(transport=fake.transport(), api_key=KEY, **kw)


async def ask(c: trillm.Client, fmt: str, stream: bool, input: Any = "Say hi", **kw: Any
              ) -> tuple[Response, list[tuple[float, str]]]:
    """The response, and for a stream each text delta's (virtual time, text)."""
    args = {**FORMATS[fmt], **kw}
    model = args.pop("model")
    if not stream:
        return await c.aresponses(model, input, **args), []
    seen = []
    async with c.responses_stream(model, input, **args) as s:
        async for event in s:
            if event.type == "response.output_text.delta":
                seen.append((trio.current_time(), event.delta or ""))
        return await s.final_response(), seen


@every
@both
async def test_reply_text(fmt: str, stream: bool, autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(model="gpt-4o-mini" if fmt == "openai" else "my-deployment").reply("Hello there")
    async with client(fake) as c:
        r, seen = await ask(c, fmt, stream, instructions="Be brief.")
    assert r.output_text == "Hello there" and r.status == "completed"
    assert r.usage is not None and r.usage.output_tokens == 2
    (req,) = fake.requests
    assert (req.provider, req.operation, req.stream) == (fmt, "responses", stream)
    assert req.messages == ({"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Say hi"})
    assert req.text == "Say hi" and "instructions" not in req.params
    assert req.completed and req.chunks_sent == (2 if stream else 1)
    if stream:
        assert [t for _, t in seen] == ["Hello", " there"]
    path = "/openai/v1/responses" if fmt == "azure" else "/v1/responses"
    assert req.path.startswith(path)


@every
@both
async def test_reply_tool_calls_and_the_loop(fmt: str, stream: bool,
                                            autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(when=lambda r: r.messages[-1]["role"] == "tool").reply("It is sunny.")
    fake.on().reply(tool_calls=[{"id": "call_w", "name": "weather",
                                 "arguments": {"city": "Paris"}}])
    async with client(fake) as c:
        first, _ = await ask(c, fmt, stream)
        (call,) = first.output
        assert isinstance(call, ResponseFunctionCall)
        assert (call.call_id, call.name, json.loads(call.arguments)) == (
            "call_w", "weather", {"city": "Paris"})
        items = [{"role": "user", "content": "Say hi"}, call.to_dict(),
                 {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}]
        second, _ = await ask(c, fmt, stream, input=items)
    assert second.output_text == "It is sunny."
    assert fake.requests[1].messages[1:] == (
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_w", "type": "function",
            "function": {"name": "weather", "arguments": call.arguments}}]},
        {"role": "tool", "tool_call_id": "call_w", "content": "sunny"})
    assert [r.rule for r in fake.requests] == [1, 0]


@every
@both
async def test_reply_json_and_echo(fmt: str, stream: bool,
                                   autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(when=lambda r: r.text == "json please").reply(json={"a": [1, 2]})
    async with client(fake) as c:
        r, _ = await ask(c, fmt, stream, input="json please")
        echo, _ = await ask(c, fmt, stream, input=[
            {"role": "user", "content": [{"type": "input_text", "text": "echo me"}]}])
    assert json.loads(r.output_text) == {"a": [1, 2]}
    assert echo.output_text == "echo me"


@every
@both
async def test_stream_pieces_on_time(fmt: str, stream: bool,
                                     autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().stream(["Hel", "lo", " world"], delay=0.25)
    async with client(fake) as c:
        r, seen = await ask(c, fmt, stream)
    assert r.output_text == "Hello world"
    assert trio.current_time() == 0.75
    if stream:
        assert seen == [(0.25, "Hel"), (0.5, "lo"), (0.75, " world")]
    assert fake.requests[0].chunks_sent == (3 if stream else 1)


@every
@both
async def test_fail_429_then_answer(fmt: str, stream: bool,
                                    autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().fail(429, retry_after=2).fail(503).reply("ok")
    async with client(fake, max_retries=3) as c:
        r, _ = await ask(c, fmt, stream)
    assert r.output_text == "ok"
    assert [(q.started_at, q.status) for q in fake.requests] == [
        (0.0, 429), (2.0, 503), (3.0, 200)]  # Retry-After, then back-off 1


@every
async def test_fail_with_a_body_and_a_404(fmt: str,
                                          autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(when=lambda r: r.text == "teapot").fail(
        status=418, body={"error": {"message": "I am a teapot"}})
    fake.on().fail(404)
    async with client(fake, max_retries=0) as c:
        with pytest.raises(errors.BadRequestError, match="teapot") as caught:
            await ask(c, fmt, True, input="teapot")
        with pytest.raises(errors.NotFoundError, match="no Responses API"):
            await ask(c, fmt, False)
    assert caught.value.status_code == 418


@every
@both
async def test_disconnect_before_headers_is_retried(
    fmt: str, stream: bool, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeLLM()
    fake.on().disconnect().reply("back")
    async with client(fake, max_retries=1) as c:
        r, _ = await ask(c, fmt, stream)
    assert r.output_text == "back" and fake.requests[0].status is None


@every
async def test_disconnect_mid_stream_and_mid_body(
    fmt: str, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeLLM()
    fake.on().disconnect(after_chunks=2, pieces=["a", "b", "c", "d"])
    got = []
    async with client(fake, max_retries=0) as c:
        with pytest.raises(errors.StreamError):
            async with c.responses_stream(FORMATS[fmt]["model"], "x",
                                          **{k: v for k, v in FORMATS[fmt].items()
                                             if k != "model"}) as s:
                async for event in s:
                    if event.delta:
                        got.append(event.delta)
        with pytest.raises(errors.APIConnectionError, match="middle of the response body"):
            await ask(c, fmt, False)
    assert got == ["a", "b"]
    assert [q.chunks_sent for q in fake.requests] == [2, 2]


@every
@both
async def test_hang_times_out_and_is_cancelled(fmt: str, stream: bool,
                                               autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().hang()
    async with client(fake, max_retries=0, timeout=3) as c:
        with pytest.raises(errors.Timeout):
            await ask(c, fmt, stream)
    assert trio.current_time() == 3.0
    assert fake.requests[0].cancelled_by_client


async def test_times_and_hedge_loser(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(operation="responses").reply("slow", delay=5).times(1)
    fake.on(operation="responses").reply("fast", delay=0.5)
    async with client(fake) as c:
        r = await trillm.hedge(partial(c.aresponses, "gpt-4o-mini", "x"), delay=1)
    assert r.output_text == "fast" and trio.current_time() == 1.5
    slow, fast = fake.requests
    assert slow.cancelled_by_client and fast.completed
    fake.assert_called(operation="responses", times=2)


async def test_previous_response_id_is_echoed(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    async with client(fake) as c:
        r = await c.aresponses("gpt-4o-mini", "again", previous_response_id="resp_1")
    assert r.previous_response_id == "resp_1"
    assert fake.requests[0].params["previous_response_id"] == "resp_1"


async def test_a_get_of_responses_is_not_the_responses_api() -> None:
    fake = FakeLLM()
    async with httpx.AsyncClient(transport=fake.transport(), base_url="http://fake") as h:
        r = await h.get("/v1/responses/resp_1")
        listed = await h.get("/v1/responses")
    assert r.status_code == listed.status_code == 404
    assert [q.operation for q in fake.requests] == ["unknown", "unknown"]


# ---------------------------------------------------------------- over loopback


@every
@both
async def test_loopback_every_verb(fmt: str, stream: bool) -> None:
    fake = FakeLLM()
    fake.on(when=lambda r: r.text == "tools").reply(
        tool_calls=[{"name": "f", "arguments": {"x": 1}}])
    fake.on(when=lambda r: r.text == "hang").hang()
    fake.on(when=lambda r: r.text == "cut").disconnect(after_chunks=1, pieces=["a", "b"])
    fake.on().fail(429, retry_after=0.01).disconnect().stream(["one", " two"], delay=0.02)
    base = {"openai": "/v1", "azure": ""}[fmt]
    with trio.fail_after(GUARD):
        async with fake.serve() as url:
            async with trillm.Client(api_base=url + base, api_key=KEY,
                                     retry=RetryPolicy(jitter=0, base_delay=0.01)) as c:
                kw = {"model": FORMATS[fmt]["model"], "api_base": url + base}
                r, _ = await ask(c, fmt, stream, **kw)
                tools, _ = await ask(c, fmt, stream, input="tools", **kw)
                with pytest.raises(errors.Timeout):
                    await ask(c, fmt, stream, input="hang", timeout=0.2, max_retries=0, **kw)
                with pytest.raises(errors.StreamError if stream else errors.APIConnectionError):
                    await ask(c, fmt, stream, input="cut", max_retries=0, **kw)
            for q in fake.requests:
                await q.wait_ended()
    assert r.output_text == "one two"
    assert isinstance(tools.output[0], ResponseFunctionCall)
    assert [q.status for q in fake.requests[:3]] == [429, None, 200]
    hang = next(q for q in fake.requests if q.text == "hang")
    assert hang.cancelled_by_client
    assert all(q.provider == fmt and q.operation == "responses" for q in fake.requests)
    assert KEY not in json.dumps([dict(q.headers) for q in fake.requests])


async def test_the_openai_sdk_reads_the_fakes_responses() -> None:
    openai = pytest.importorskip("openai")
    fake = FakeLLM()
    fake.on().stream(["from", " the", " fake"])

    def use_sdk(base_url: str) -> tuple[str, str]:
        sdk = openai.OpenAI(base_url=base_url, api_key="sk-sdk", max_retries=0)
        try:
            plain = sdk.responses.create(model="gpt-4o-mini", input="hi")
            with sdk.responses.stream(model="gpt-4o-mini", input="hi") as s:
                final = s.get_final_response()
        finally:
            sdk.close()
        return plain.output_text, final.output_text

    with trio.fail_after(GUARD):
        async with fake.serve() as url:
            plain, streamed = await trio.to_thread.run_sync(use_sdk, url + "/v1")
    assert plain == streamed == "from the fake"
