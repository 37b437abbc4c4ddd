"""The Client against a fake OpenAI-compatible server on 127.0.0.1: real sockets, real clock.

Each test runs under a ``trio.fail_after`` guard so a hang fails instead of
blocking; connection release is checked from the server's side.
"""

from __future__ import annotations

import gc
import json

import anyio
import httpx
import pytest
import trio

import trillm
from tests.fakeserver import (
    FakeServer,
    Reply,
    Request,
    open_fake_server,
    openai_chat_json,
    openai_sse,
)
from trillm import errors
from trillm.testing import FakeLLM

MSGS = [{"role": "user", "content": "Hello"}]
KEY = "sk-test-DISTINCTIVE-0123456789abcdef"
GUARD = 10


def client_at(server: FakeServer, **kw: object) -> trillm.Client:
    kw.setdefault("api_key", KEY)
    return trillm.Client(api_base=server.base_url + "/v1", **kw)  # type: ignore[arg-type]


def sse_reply(request: Request) -> Reply:
    if request.json().get("stream"):
        return Reply.sse(openai_sse(["Hello", " there", "!"]))
    return Reply.json(openai_chat_json("Hello!"))


async def test_plain_answer_and_request_shape() -> None:
    with trio.fail_after(GUARD):
        async with open_fake_server() as server, client_at(server) as client:
            r = await client.acompletion("openai/gpt-4o-mini", MSGS, temperature=0.2, seed=3)
            assert r.choices[0].message.content == "Hello!"
            assert r["usage"]["total_tokens"] == r.usage.total_tokens
            assert r.headers["content-type"] == "application/json"
            sent = server.requests[0]
            assert sent.path == "/v1/chat/completions"
            assert sent.headers["authorization"] == f"Bearer {KEY}"
            assert sent.json() == {"model": "gpt-4o-mini", "messages": MSGS,
                                   "temperature": 0.2, "seed": 3}
            assert client.statistics().active_connections == 0


async def test_streamed_answer() -> None:
    with trio.fail_after(GUARD):
        async with open_fake_server(sse_reply) as server, client_at(server) as client:
            async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                chunks = [c async for c in s]
            text = "".join(c.choices[0].delta.content or "" for c in chunks)
            assert text == "Hello there!"
            assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
            assert server.requests[0].json()["stream"] is True
            final = trillm.stream_chunk_builder(chunks)
            assert final.choices[0].message.content == "Hello there!"
            assert final.choices[0].finish_reason == "stop"
            stats = client.statistics()
            assert stats.open_streams == 0 and stats.active_connections == 0


async def test_server_that_never_answers_times_out_and_connection_closes() -> None:
    with trio.fail_after(GUARD):
        async with open_fake_server(lambda r: Reply(hang=True)) as server, \
                client_at(server, max_retries=0) as client:
            with pytest.raises(errors.Timeout):
                await client.acompletion("openai/gpt-4o-mini", MSGS, timeout=0.3)
            await server.wait_all_closed()
            assert client.statistics().active_connections == 0


async def test_server_drops_mid_stream() -> None:
    def handler(request: Request) -> Reply:
        events = openai_sse(["a", "b", "c"])[:3]  # no finish reason, no [DONE]
        return Reply.sse(events, delay=0.01, drop_mid_body=True)

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, client_at(server) as client:
            got = []
            with pytest.raises((errors.StreamError, errors.APIConnectionError)) as info:
                async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                    async for c in s:
                        got.append(c)
            assert isinstance(info.value, errors.StreamError)
            assert isinstance(info.value.__cause__, errors.APIConnectionError)
            assert got  # chunks before the drop were delivered, then the error
            await server.wait_all_closed()
            assert client.statistics().active_connections == 0


async def test_malformed_json_body() -> None:
    def handler(request: Request) -> Reply:
        return Reply(200, [("content-type", "application/json")], b'{"id": "x", "choi')

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, client_at(server) as client:
            with pytest.raises(errors.APIError, match="not valid JSON"):
                await client.acompletion("openai/gpt-4o-mini", MSGS)
            assert len(server.requests) == 1  # a malformed 200 is not retried


async def test_truncated_sse_is_a_stream_error() -> None:
    def handler(request: Request) -> Reply:
        events = openai_sse(["a", "b"], usage=False)[:-2]  # no finish reason, no [DONE]
        return Reply.sse(events)

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, client_at(server) as client:
            with pytest.raises(errors.StreamError, match="truncated"):
                async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                    async for _ in s:
                        pass
            assert client.statistics().active_connections == 0


async def test_sse_cut_inside_an_event_is_a_stream_error() -> None:
    def handler(request: Request) -> Reply:
        return Reply.sse([b'data: {"id": "x", "choices": [{"index": 0, "delta": {"content"'])

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, client_at(server) as client:
            with pytest.raises(errors.StreamError):
                async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                    async for _ in s:
                        pass


async def test_caller_cancels_mid_stream_and_server_sees_close() -> None:
    def handler(request: Request) -> Reply:
        return Reply.sse(openai_sse(["a"])[:2], no_end=True)

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, client_at(server) as client:
            got = []
            two = trio.Event()

            async def consume() -> None:
                async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                    async for c in s:
                        got.append(c)
                        if len(got) == 2:
                            two.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                await two.wait()
                await trio.sleep(0.05)  # consume() is now blocked waiting for a third chunk
                nursery.cancel_scope.cancel()
            assert len(got) == 2
            await server.wait_all_closed()
            stats = client.statistics()
            assert (stats.open_streams, stats.active_connections) == (0, 0)


async def test_cancelled_iteration_without_async_with_still_closes() -> None:
    def handler(request: Request) -> Reply:
        return Reply.sse(openai_sse(["a"])[:1], no_end=True)

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, client_at(server) as client:
            s = await client.acompletion("openai/gpt-4o-mini", MSGS, stream=True)
            with trio.move_on_after(0.3):
                async for _ in s:
                    pass
            assert s.closed
            await server.wait_all_closed()


async def test_break_out_of_async_with_closes_the_response() -> None:
    def handler(request: Request) -> Reply:
        return Reply.sse(openai_sse([f"w{i} " for i in range(50)]), delay=0.01)

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, client_at(server) as client:
            async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                async for _ in s:
                    break
            assert s.closed
            await server.wait_all_closed()  # not read to the end, so not kept alive
            assert client.statistics().active_connections == 0


async def test_stream_collected_while_open_warns_and_releases_its_slot() -> None:
    def handler(request: Request) -> Reply:
        return Reply.sse(openai_sse(["a"])[:1], no_end=True)

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, \
                client_at(server, max_concurrency=1) as client:
            s = await client.acompletion("openai/gpt-4o-mini", MSGS, stream=True)
            await s.__anext__()
            with pytest.warns(ResourceWarning, match="garbage-collected while open"):
                del s
                gc.collect()
            await server.wait_all_closed()
            # the slot came back: a second request can run with max_concurrency=1
            r = await client.acompletion("mock/x", MSGS)
            assert r.choices[0].message.content == "Hello"
            assert client.statistics().open_streams == 0


def test_two_trio_runs_in_a_row_with_module_level_functions() -> None:
    async def main() -> str:
        with trio.fail_after(GUARD):
            async with open_fake_server(sse_reply) as server:
                r = await trillm.acompletion("openai/gpt-4o-mini", MSGS,
                                             api_base=server.base_url + "/v1", api_key=KEY)
                async with trillm.stream("openai/gpt-4o-mini", MSGS, api_key=KEY,
                                         api_base=server.base_url + "/v1") as s:
                    async for _ in s:
                        pass
                return r.choices[0].message.content or ""

    assert trio.run(main) == "Hello!"
    assert trio.run(main) == "Hello!"


def test_client_works_under_anyio_on_trio() -> None:
    async def main() -> str:
        with anyio.fail_after(GUARD):
            async with open_fake_server(sse_reply) as server, client_at(server) as client:
                r = await client.acompletion("openai/gpt-4o-mini", MSGS)
                async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                    text = "".join([c.choices[0].delta.content or "" async for c in s])
                return f"{r.choices[0].message.content}|{text}"

    assert anyio.run(main, backend="trio") == "Hello!|Hello there!"


async def test_missing_key_fails_before_any_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    fake = FakeLLM()
    async with trillm.Client(transport=fake.transport()) as client:
        with pytest.raises(errors.AuthenticationError, match="OPENAI_API_KEY"):
            await client.acompletion("gpt-4o-mini", MSGS)
    assert fake.requests == []


async def test_local_server_needs_no_key_and_gets_no_authorization(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with trio.fail_after(GUARD):
        async with open_fake_server() as server, \
                trillm.Client(api_base=server.base_url + "/v1") as client:
            await client.acompletion("openai/gpt-4o-mini", MSGS)
            assert "authorization" not in server.requests[0].headers


async def test_key_never_appears_in_errors_or_reprs() -> None:
    def handler(request: Request) -> Reply:
        echoed = {"error": {"message": f"Incorrect API key provided: {KEY}. x-api-key: {KEY}",
                            "type": "invalid_request_error", "code": "invalid_api_key"}}
        return Reply.json(echoed, status=401, headers=[("x-api-key", KEY), ("x-echo", KEY)])

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, client_at(server) as client:
            with pytest.raises(errors.AuthenticationError) as info:
                await client.acompletion("openai/gpt-4o-mini", MSGS)
            exc = info.value
            rendered = " ".join([str(exc), repr(exc), exc.message, json.dumps(exc.body),
                                 json.dumps(exc.headers), repr(client)])
            assert KEY not in rendered
            assert "[REDACTED]" in rendered
            assert KEY[:12] not in rendered
            with pytest.raises(errors.APIConnectionError) as conn:
                await client.acompletion("openai/gpt-4o-mini", MSGS, max_retries=0,
                                         api_base="http://127.0.0.1:9/v1")
            assert KEY not in str(conn.value) and KEY not in repr(conn.value)


async def test_connection_refused_is_an_api_connection_error() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with trio.fail_after(GUARD):
        async with trillm.Client(api_key=KEY, retry=trillm.RetryPolicy(jitter=0)) as client:
            with pytest.raises(errors.APIConnectionError) as info:
                await client.acompletion("openai/gpt-4o-mini", MSGS, max_retries=1,
                                         api_base=f"http://127.0.0.1:{port}/v1")
            assert not isinstance(info.value, errors.Timeout)
            assert not isinstance(info.value, httpx.HTTPError)


async def test_odd_shaped_key_echoed_in_200_body_or_stream_is_scrubbed() -> None:
    odd = "trillm-secret-9f8e7d6c5b4a3210"  # no known key shape: only the configured value helps

    def handler(request: Request) -> Reply:
        err = {"error": {"message": f"key {odd} is over quota", "type": "rate_limit_error"}}
        if request.json().get("stream"):
            return Reply.sse([b"data: " + json.dumps(err).encode() + b"\n\n"])
        return Reply.json(err)

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, \
                client_at(server, api_key=odd, max_retries=0) as client:
            with pytest.raises(errors.RateLimitError) as plain:
                await client.acompletion("openai/gpt-4o-mini", MSGS)
            with pytest.raises(errors.RateLimitError) as streamed:
                async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                    async for _ in s:
                        pass
    for exc in (plain.value, streamed.value):
        assert odd not in f"{exc} {exc!r} {json.dumps(exc.body)}"


async def test_server_that_ignores_stream_true_still_streams() -> None:
    def handler(request: Request) -> Reply:
        return Reply.json(openai_chat_json("whole answer at once"))

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, client_at(server) as client:
            async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                chunks = [c async for c in s]
                assert s.headers["content-type"] == "application/json"
            plain = await client.acompletion("openai/gpt-4o-mini", MSGS)
            assert client.statistics().active_connections == 0
    built = trillm.stream_chunk_builder(chunks)
    assert chunks[0].choices[0].delta.content == "whole answer at once"
    assert built.choices == plain.choices
    assert built.usage == plain.usage


@pytest.mark.parametrize("body", [
    b"<html>bad gateway for key %s</html>",
    b'["%s"]',
    b'{"choices": ["%s"]}',
])
async def test_odd_shaped_key_in_a_malformed_200_body_is_scrubbed(body: bytes) -> None:
    odd = "trillm-secret-9f8e7d6c5b4a3210"
    payload = body % odd.encode()

    def handler(request: Request) -> Reply:
        return Reply(200, [("content-type", "application/json")], b"x" * 190 + payload)

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, \
                client_at(server, api_key=odd, max_retries=0) as client:
            with pytest.raises(errors.APIError) as info:
                await client.acompletion("openai/gpt-4o-mini", MSGS)
    exc = info.value
    rendered = f"{exc} {exc!r} {json.dumps(exc.body)}"
    assert odd[:10] not in rendered


async def test_connection_dropped_after_done_loses_nothing() -> None:
    def handler(request: Request) -> Reply:
        return Reply.sse(openai_sse(["a", "b"]), drop_mid_body=True)  # every event, no end

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, client_at(server) as client:
            async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                final = await s.final_response()
            assert client.statistics().active_connections == 0
    assert final.choices[0].message.content == "ab"
    assert final.usage is not None


def _without_finish_reason(events: list[bytes]) -> list[bytes]:
    return [e for e in events if b'"finish_reason": "stop"' not in e]


async def test_done_without_a_finish_reason_then_a_broken_connection_is_truncation() -> None:
    # Regression: llama.cpp's server, interrupted mid-answer, sends [DONE] with no finish
    # reason and then breaks the connection; the partial text passed for a whole answer.
    def handler(request: Request) -> Reply:
        events = _without_finish_reason(openai_sse(["Hel", "lo"], usage=False))
        return Reply.sse(events, drop_mid_body=True)  # every event, then no chunked end

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, client_at(server) as client:
            got = []
            with pytest.raises(errors.StreamError, match="broke") as info:
                async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                    async for c in s:
                        got.append(c.choices[0].delta.content)
            assert isinstance(info.value.__cause__, errors.APIConnectionError)
            assert got == ["", "Hel", "lo"]
            await server.wait_all_closed()
            assert client.statistics().active_connections == 0


async def test_done_without_a_finish_reason_then_a_clean_end_is_an_answer() -> None:
    def handler(request: Request) -> Reply:
        return Reply.sse(_without_finish_reason(openai_sse(["Hel", "lo"], usage=False)))

    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, client_at(server) as client:
            async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                final = await s.final_response()
    assert final.choices[0].message.content == "Hello"
    assert final.choices[0].finish_reason is None
