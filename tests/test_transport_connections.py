"""The stack transport's connections: httpcore's own, one by one, behind httpx's contract.

Each pooled connection is an ``httpcore.AsyncHTTPConnection`` the transport sends to as
httpx's transport sends to its pool, so no pool (and no httpx transport) is made per
connection; httpcore's errors still reach an ``httpx.AsyncClient`` as httpx's.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import httpcore
import httpx
import pytest
import trio

from tests.conftest import make_spec, stats
from tests.fakeserver import Reply, Request, open_fake_server
from trillm._transport import StackTransport, Transport


def _live(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


async def test_a_direct_origin_makes_no_pool_and_no_httpx_transport() -> None:
    pools, transports = _live(httpcore.AsyncConnectionPool), _live(httpx.AsyncHTTPTransport)
    t = Transport()
    try:
        with trio.fail_after(5):
            async with open_fake_server() as server:
                async with trio.open_nursery() as nursery:
                    for _ in range(3):  # three at once: three connections
                        nursery.start_soon(t.send, make_spec(server.base_url))
                assert server.connections_opened == 3
                assert t.statistics() == stats(3, 0)
                assert _live(httpcore.AsyncHTTPConnection) >= 3
                assert _live(httpcore.AsyncConnectionPool) == pools
                assert _live(httpx.AsyncHTTPTransport) == transports
    finally:
        await t.aclose()


async def test_an_idle_connection_the_server_closed_is_dropped_before_reuse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[int] = []
    original = httpcore.AsyncHTTPConnection.handle_async_request

    async def counted(self: httpcore.AsyncHTTPConnection,
                      request: httpcore.Request) -> httpcore.Response:
        sent.append(id(self))
        return await original(self, request)

    monkeypatch.setattr(httpcore.AsyncHTTPConnection, "handle_async_request", counted)
    t = Transport()
    try:
        with trio.fail_after(5):
            async with open_fake_server() as server:
                await t.send(make_spec(server.base_url))
                assert server.close_idle_connections() == 1
                await server.wait_closed(1)
                await trio.sleep(0.05)  # the FIN reaches our side
                assert (await t.send(make_spec(server.base_url))).status == 200
                # one attempt on a new connection: the closed one was never written to
                assert len(sent) == 2 and sent[0] != sent[1]
                assert [req.conn for req in server.requests] == [0, 1]
                assert t.statistics() == stats(1, 0)
    finally:
        await t.aclose()


async def test_httpx_client_over_the_stack_sees_httpx_errors() -> None:
    def handler(request: Request) -> Reply:
        return Reply(200, [("content-length", "100")], body=b"only part", drop_mid_body=True)

    with trio.fail_after(5):
        async with httpx.AsyncClient(transport=StackTransport()) as client:
            with pytest.raises(httpx.ConnectError):  # nothing listens on port 9
                await client.get("http://127.0.0.1:9/")
            async with open_fake_server(handler) as server:
                with pytest.raises(httpx.RemoteProtocolError):  # the body broke off
                    await client.get(server.base_url + "/x")


async def test_a_request_waiting_while_the_transport_closes_opens_no_new_connection() -> None:
    t = Transport()
    with trio.fail_after(5):
        async with open_fake_server() as server:
            async with trio.open_nursery() as nursery:
                for _ in range(2):  # two idle connections on the stack
                    nursery.start_soon(t.send, make_spec(server.base_url))
            assert server.close_idle_connections() == 2
            await server.wait_closed(2)
            await trio.sleep(0.05)  # the FINs reach our side: both have expired
            failures: list[BaseException] = []

            async def request() -> None:
                try:
                    await t.send(make_spec(server.base_url))
                except RuntimeError as exc:
                    failures.append(exc)

            async def close() -> None:
                await trio.lowlevel.checkpoint()  # while the request drops an expired one
                await t.aclose()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(request)
                nursery.start_soon(close)
            assert [str(e) for e in failures] == ["this trillm transport is closed"]
            assert server.connections_opened == 2
            assert t.statistics() == stats(0, 0)


async def test_a_stale_connection_is_not_retried_with_a_body_that_can_be_sent_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = httpcore.AsyncHTTPConnection.handle_async_request
    calls = 0

    async def flaky(self: httpcore.AsyncHTTPConnection,
                    request: httpcore.Request) -> httpcore.Response:
        nonlocal calls
        calls += 1
        if calls == 2:  # the reused connection breaks while the body is being sent
            async for _ in request.stream:  # type: ignore[union-attr]
                pass
            raise httpcore.WriteError("[Errno 32] Broken pipe")
        return await original(self, request)

    async def once() -> AsyncIterator[bytes]:
        yield b"{}"

    monkeypatch.setattr(httpcore.AsyncHTTPConnection, "handle_async_request", flaky)
    with trio.fail_after(5):
        async with open_fake_server() as server, \
                httpx.AsyncClient(transport=StackTransport()) as client:
            await client.get(server.base_url + "/warm")
            with pytest.raises(httpx.WriteError):  # not httpx.StreamConsumed from a resend
                await client.post(server.base_url + "/x", content=once())
            assert calls == 2
            assert (await client.post(server.base_url + "/y", content=b"{}")).status_code == 200
