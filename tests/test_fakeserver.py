"""The fake server itself (tests/fakeserver.py), driven by plain httpx."""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from tests.fakeserver import (
    Reply,
    Request,
    open_fake_server,
    openai_chat_json,
    openai_sse,
    serve_fake,
)


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False)


async def test_keep_alive_requests_and_json() -> None:
    with trio.fail_after(5):
        async with open_fake_server() as server, client() as c:
            for i in range(3):
                r = await c.post(server.base_url + "/v1/chat/completions?x=1", json={"i": i})
                assert r.json() == openai_chat_json("Hello!")
            assert server.connections_opened == 1
            assert [r.json()["i"] for r in server.requests] == [0, 1, 2]
            req = server.requests[0]
            assert (req.method, req.path, req.conn) == ("POST", "/v1/chat/completions?x=1", 0)
            assert req.headers["content-type"] == "application/json"
        await server.wait_all_closed()


async def test_chunked_reply_with_delays_and_async_handler() -> None:
    async def handler(req: Request) -> Reply:
        await trio.sleep(0.01)
        return Reply.sse(openai_sse(["a", "b"]), delay=0.05)

    with trio.fail_after(5):
        async with open_fake_server(handler) as server, client() as c:
            start = trio.current_time()
            r = await c.get(server.base_url)
            assert r.headers["transfer-encoding"] == "chunked"
            assert r.content == b"".join(openai_sse(["a", "b"]))
            assert trio.current_time() - start >= 0.05 * 5
            events = r.content.split(b"\n\n")
            first = json.loads(events[0].removeprefix(b"data: "))
            assert first["choices"][0]["delta"]["role"] == "assistant"
            assert events[-2] == b"data: [DONE]"


async def test_server_notices_a_client_closing_during_hang() -> None:
    with trio.fail_after(5):
        async with open_fake_server(lambda req: Reply(hang=True)) as server:
            async with client() as c:
                with trio.move_on_after(0.1):
                    await c.get(server.base_url)
            await server.wait_all_closed()
            assert server.connections_closed == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(drop=True), httpx.RemoteProtocolError),
        (Reply(body=b"abcdef", drop_after_headers=True), httpx.RemoteProtocolError),
        (Reply(body=b"abcdef", drop_mid_body=True), httpx.RemoteProtocolError),
        (Reply(chunks=[b"abc"], drop_mid_body=True), httpx.RemoteProtocolError),
    ],
)
async def test_faults(reply: Reply, error: type[Exception]) -> None:
    with trio.fail_after(5):
        async with open_fake_server(lambda req: reply) as server, client() as c:
            with pytest.raises(error):
                await c.get(server.base_url)


async def test_close_and_close_idle_connections() -> None:
    with trio.fail_after(5):
        async with open_fake_server(lambda req: Reply(body=b"ok", close=True)) as server:
            async with client() as c:
                assert (await c.get(server.base_url)).headers["connection"] == "close"
                await server.wait_closed(1)
                server.handler = lambda req: Reply(body=b"ok")
                await c.get(server.base_url)
                assert server.idle_connections == 1
                assert server.close_idle_connections() == 1
                await server.wait_all_closed()
                await c.get(server.base_url)  # httpx notices and reconnects
                assert server.connections_opened == 3


async def test_absolute_form_target_as_a_proxy() -> None:
    with trio.fail_after(5):
        async with open_fake_server() as proxy:
            async with httpx.AsyncClient(proxy=proxy.base_url, trust_env=False) as c:
                await c.get("http://example.invalid:81/a/b?c=d")
            [req] = proxy.requests
            assert req.target == "http://example.invalid:81/a/b?c=d"
            assert req.path == "/a/b?c=d"


async def test_handler_errors_are_reraised_at_exit() -> None:
    def handler(req: Request) -> Reply:
        raise AssertionError("bad request body")

    with trio.fail_after(5), pytest.raises(AssertionError, match="bad request body"):
        async with open_fake_server(handler) as server, client() as c:
            r = await c.get(server.base_url)
            assert r.status_code == 500


async def test_nursery_start_form() -> None:
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_fake, None)
            async with client() as c:
                assert (await c.get(server.base_url)).status_code == 200
            nursery.cancel_scope.cancel()
        assert server.open_connections == 0
