"""The one call pipeline: every operation is paced, routed and refused alike (virtual time).

Regression tests for defects found when the pipeline was one per endpoint:
transcription and speech skipped their rate-limit turn, a stream stalled after
its headers hung by default, and a cancelled ``aembedding`` raised a group.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.testing import FakeLLM

MSGS = [{"role": "user", "content": "hi"}]


async def _times(n: int, call: object) -> list[float]:
    done: list[float] = []

    async def one() -> None:
        await call()  # type: ignore[operator]
        done.append(trio.current_time())

    await trillm.gather(*([one] * n))
    return sorted(done)


@pytest.mark.parametrize("operation", ["transcription", "speech", "embedding", "image"])
async def test_every_operation_books_its_rate_limit_turn(
    autojump_clock: trio.testing.MockClock, operation: str
) -> None:
    limits = {"mock": trillm.RateLimit(rpm=60)}  # one a second
    async with trillm.Client(rate_limits=limits) as client:
        calls = {
            "transcription": lambda: client.atranscription("mock/whisper", b"RIFF...."),
            "speech": lambda: client.aspeech("mock/tts", "hello", "alloy"),
            "embedding": lambda: client.aembedding("mock/embed", ["a", "b"]),
            "image": lambda: client.aimage_generation("mock/img", "a cat"),
        }
        assert await _times(3, calls[operation]) == [0.0, 1.0, 2.0]


STALL_EVENT = (b'data: {"id": "1", "object": "chat.completion.chunk", "created": 0, '
               b'"model": "m", "choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n')


def stalling() -> FakeLLM:
    """One event after the headers, then nothing more for ever."""
    fake = FakeLLM()
    fake.on().respond([STALL_EVENT], then="hang")
    return fake


@pytest.mark.parametrize(("client_kw", "call_kw", "ends_at"), [
    ({"timeout": 7}, {}, 7.0),  # idle_timeout not given: the Client's timeout
    ({}, {"timeout": 3}, 3.0),  # ... or the call's
    ({"timeout": 7, "idle_timeout": 2}, {}, 2.0),  # given: its own
    ({}, {}, 600.0),  # the default timeout of 600 s: no stream hangs for ever by default
])
async def test_a_stream_stalled_after_its_headers_ends_by_default(
    autojump_clock: trio.testing.MockClock, client_kw: dict[str, float],
    call_kw: dict[str, float], ends_at: float,
) -> None:
    fake = stalling()
    with trio.fail_after(1000):  # virtual seconds: without a default, a hang fails here
        async with trillm.Client(transport=fake.transport(), api_key="sk-test",
                                 **client_kw) as client:  # type: ignore[arg-type]
            async with client.stream("openai/gpt-4o-mini", MSGS, **call_kw) as stream:
                first = await stream.__anext__()
                assert first.choices[0].delta.content == "a"
                with pytest.raises(errors.Timeout, match="idle_timeout"):
                    await stream.__anext__()
            assert trio.current_time() == ends_at
            assert client.statistics().open_streams == 0
    assert fake.requests[0].cancelled_by_client and fake.requests[0].chunks_sent == 1


async def test_idle_timeout_inf_still_means_no_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = stalling()
    async with trillm.Client(transport=fake.transport(), api_key="sk-test",
                             idle_timeout=math.inf) as client:
        async with client.stream("openai/gpt-4o-mini", MSGS) as stream:
            await stream.__anext__()
            with trio.move_on_after(10_000):
                await stream.__anext__()
        assert trio.current_time() == 10_000.0
    assert fake.requests[0].cancelled_by_client


async def test_aembedding_cancelled_while_its_batches_run_raises_bare_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[type[BaseException]] = []
    async with trillm.Client() as client:
        with trio.move_on_after(1):
            try:  # 5,000 inputs: three batches of up to 2,048, all in flight
                await client.aembedding("mock/e", ["x"] * 5000, mock_latency=10)
            except BaseException as exc:
                seen.append(type(exc))
                raise
        assert seen == [trio.Cancelled]
        assert client.statistics().requests_in_flight == 0


@pytest.mark.parametrize(("model", "call"), [
    ("anthropic/claude-3-5-haiku-latest", "aembedding"),
    ("anthropic/claude-3-5-haiku-latest", "aimage_generation"),
    ("gemini/gemini-2.0-flash", "aspeech"),
    ("azure/my-deployment", "atranscription"),
])
async def test_an_operation_the_provider_lacks_is_refused_before_sending(
    model: str, call: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AZURE_API_KEY"):
        monkeypatch.setenv(var, "k-test-1234")
    monkeypatch.setenv("AZURE_API_BASE", "https://example.invalid")
    fake = FakeLLM()
    args = {"aembedding": ("x",), "aimage_generation": ("a cat",),
            "aspeech": ("hello", "alloy"), "atranscription": (b"RIFF",)}[call]
    async with trillm.Client(transport=fake.transport()) as client:
        with pytest.raises(errors.BadRequestError, match="not available") as info:
            await getattr(client, call)(model, *args)
    provider = model.partition("/")[0]
    assert info.value.provider == provider and f"{provider!r}" in str(info.value)
    assert fake.requests == []


async def test_the_mock_never_reaches_the_transport() -> None:
    fake = FakeLLM()
    async with trillm.Client(transport=fake.transport()) as client:
        r = await client.acompletion("mock/x", MSGS)
        assert r.choices[0].message.content == "hi"
        r = await client.acompletion("openai/gpt-4o-mini", MSGS, mock_response="canned")
        assert r.choices[0].message.content == "canned" and r.model == "openai/gpt-4o-mini"
        async with client.stream("mock/x", MSGS) as s:
            assert (await s.final_response()).choices[0].message.content == "hi"
        assert (await client.aembedding("mock/e", ["a"])).data[0].index == 0
    assert fake.requests == []  # the mock must not send


async def test_a_key_echoed_in_a_success_header_is_scrubbed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    key = "sk-echoed-secret-1234"

    fake = FakeLLM()
    fake.on().respond({"id": "1", "object": "chat.completion", "created": 0, "model": "m",
                       "choices": [{"index": 0, "message": {"role": "assistant",
                                                            "content": "hi"}}]},
                      headers={"x-debug": f"auth=Bearer {key}; ok", "x-plain": key})
    async with trillm.Client(transport=fake.transport(), api_key=key) as client:
        r = await client.acompletion("openai/gpt-4o-mini", MSGS)
        assert key not in repr(r.headers) and r.headers["x-plain"] == "[REDACTED]"
        async with client.stream("openai/gpt-4o-mini", MSGS) as s:  # a JSON answer to a stream
            assert key not in repr(s.headers)


async def test_embeddings_with_fewer_vectors_than_inputs_fail_through_the_client(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()  # a proxy that lost one
    fake.on().respond({"object": "list", "model": "m", "data": [
        {"object": "embedding", "index": 0, "embedding": [0.5, 0.5]}]})
    async with trillm.Client(transport=fake.transport(), api_key="sk-t") as client:
        with pytest.raises(errors.APIError, match="1 embedding for 2 inputs"):
            await client.aembedding("openai/text-embedding-3-small", ["a", "b"])


@pytest.mark.parametrize("stream", [False, True])
async def test_max_response_bytes_bounds_what_one_answer_may_hold(
    autojump_clock: trio.testing.MockClock, stream: bool,
) -> None:
    fake = FakeLLM()
    ctype = "text/event-stream" if stream else "application/json"
    fake.on().respond(b" " * 5000, headers={"content-type": ctype})
    async with trillm.Client(transport=fake.transport(), api_key="sk-t",
                             max_response_bytes=1000) as client:
        with pytest.raises(errors.APIError, match="max_response_bytes"):
            if stream:
                async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                    async for _ in s:
                        pass
            else:
                await client.acompletion("openai/gpt-4o-mini", MSGS)
    with pytest.raises(ValueError, match="max_response_bytes"):
        trillm.Client(max_response_bytes=0)


async def test_an_answers_message_record_can_be_sent_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """As LiteLLM users write a tool loop: ``messages.append(response.choices[0].message)``."""
    fake = FakeLLM()
    fake.on().reply(tool_calls=[{"id": "call_1", "name": "now", "arguments": "{}"}])
    async with trillm.Client(transport=fake.transport(), api_key="sk-t") as client:
        messages: list[Any] = [{"role": "user", "content": "what time is it?"}]
        r = await client.acompletion("openai/gpt-4o-mini", messages)
        messages.append(r.choices[0].message)  # a Message record, not a dict
        messages.append({"role": "tool", "tool_call_id": "call_1", "content": "noon"})
        await client.acompletion("openai/gpt-4o-mini", messages)
    sent = json.loads(fake.requests[1].body)["messages"][1]
    assert sent == {"role": "assistant", "tool_calls": [{
        "id": "call_1", "type": "function", "function": {"name": "now", "arguments": "{}"}}]}


async def test_a_plain_call_in_flight_holds_three_trillm_frames() -> None:
    # Each suspended frame is held by every request in flight (~300 bytes each; 256 at once
    # in the bench's t256 phase): the attempt runs inline in the retry loop, and the
    # Client method returns the pipeline's coroutine instead of awaiting it.
    import httpx

    arrived, release = trio.Event(), trio.Event()
    body = {"id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                         "finish_reason": "stop"}]}

    class Held(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            arrived.set()
            await release.wait()
            return httpx.Response(200, json=body)

    async with trillm.Client(api_key="sk-x", transport=Held()) as client:
        call = client.acompletion(model="openai/gpt-4o-mini", messages=MSGS)
        frames: list[str] = []

        async def run() -> None:
            r = await call
            assert r.choices[0].message.content == "hi"

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            await arrived.wait()
            coro: Any = call
            while coro is not None and hasattr(coro, "cr_code"):
                if "/trillm/" in coro.cr_code.co_filename.replace("\\", "/"):
                    frames.append(coro.cr_code.co_qualname)
                coro = coro.cr_await
            release.set()
    assert frames == ["Pipeline.run", "Pipeline._with_retries", "Transport.send"]
