"""trillm._transport against the fake server on 127.0.0.1 (real sockets, real clock)."""

from __future__ import annotations

import gzip
import json
import socket
import traceback
from functools import partial
from typing import cast

import httpcore
import httpx
import pytest
import trio

from tests.conftest import make_spec, stats
from tests.fakeserver import Reply, Request, open_fake_server, openai_chat_json, openai_sse
from trillm import errors
from trillm._transport import StackTransport, Transport
from trillm.providers.base import HTTPRequestSpec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- plain requests


async def test_send_returns_status_headers_and_body(transport: Transport) -> None:
    with trio.fail_after(5):
        async with open_fake_server() as server:
            spec = make_spec(
                server.base_url + "/v1/chat/completions",
                {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "héllo"}]},
                headers=(("Authorization", "Bearer sk-test"),),
            )
            r = await transport.send(spec)
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["Content-Type"] == "application/json"
    assert json.loads(r.content) == openai_chat_json("Hello!")
    [req] = server.requests
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    compact = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"héllo"}]}'
    assert req.body == compact.encode()  # compact, UTF-8, not ASCII-escaped
    assert req.headers["user-agent"] == "trillm/0.1.0"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["accept"] == "application/json"
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.headers["content-length"] == str(len(req.body))


async def test_spec_headers_override_the_defaults_and_raw_content_is_sent(
    transport: Transport,
) -> None:
    with trio.fail_after(5):
        async with open_fake_server() as server:
            spec = HTTPRequestSpec(
                "POST", server.base_url + "/upload",
                headers=(("Accept", "text/event-stream"), ("Content-Type", "multipart/form-data")),
                content=b"raw bytes",
            )
            await transport.send(spec)
    [req] = server.requests
    assert req.headers["accept"] == "text/event-stream"  # one value: not duplicated
    assert req.headers["content-type"] == "multipart/form-data"
    assert req.body == b"raw bytes"


async def test_gzip_bodies_are_decoded(transport: Transport) -> None:
    body = json.dumps(openai_chat_json("zipped")).encode()
    reply = Reply(200, [("content-encoding", "gzip")], gzip.compress(body))
    with trio.fail_after(5):
        async with open_fake_server(lambda req: reply) as server:
            r = await transport.send(make_spec(server.base_url))
    assert r.content == body


async def test_error_status_is_returned_not_raised(transport: Transport) -> None:
    reply = Reply.json({"error": {"message": "slow down"}}, status=429)
    with trio.fail_after(5):
        async with open_fake_server(lambda req: reply) as server:
            r = await transport.send(make_spec(server.base_url))
            assert r.status == 429
            stream = await transport.open_stream(make_spec(server.base_url))
            assert stream.status == 429
            assert json.loads(await stream.aread()) == {"error": {"message": "slow down"}}
            await stream.aclose()
            assert server.connections_opened == 1  # the error body was read: connection reused


# ---------------------------------------------------------------- pooling


async def test_keepalive_reuses_one_connection(transport: Transport) -> None:
    with trio.fail_after(5):
        async with open_fake_server() as server:
            for _ in range(2):
                r = await transport.send(make_spec(server.base_url))
                assert r.status == 200
            assert server.connections_opened == 1
            assert [req.conn for req in server.requests] == [0, 0]
            assert transport.statistics() == stats(1, 0)


async def test_concurrent_requests_then_more_open_no_new_connections(
    transport: Transport,
) -> None:
    n = 20
    all_in = trio.Event()

    async def handler(req: Request) -> Reply:
        if len(server.requests) % n == 0:
            all_in.set()
        await all_in.wait()  # hold every request until all n are on the wire
        return Reply.json(openai_chat_json("hi"))

    async def burst() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(transport.send, make_spec(server.base_url))

    with trio.fail_after(5):
        async with open_fake_server(handler) as server:
            await burst()
            assert server.connections_opened == n
            assert transport.statistics() == stats(n, 0)
            all_in = trio.Event()
            await burst()
            assert server.connections_opened == n
            assert len(server.requests) == 2 * n
            assert transport.statistics() == stats(n, 0)


async def test_stack_is_lifo(transport: Transport) -> None:
    gates = [trio.Event(), trio.Event()]

    async def handler(req: Request) -> Reply:
        i = req.json().get("i")
        if i is not None:
            await gates[i].wait()
        return Reply.json(openai_chat_json("hi"))

    async def send(i: int, done: trio.Event) -> None:
        await transport.send(make_spec(server.base_url, {"i": i}))
        done.set()

    with trio.fail_after(5):
        async with open_fake_server(handler) as server:
            done = [trio.Event(), trio.Event()]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send, 0, done[0])
                nursery.start_soon(send, 1, done[1])
                await server.wait_requests(2)
                conn_of = {r.json()["i"]: r.conn for r in server.requests}
                gates[0].set()
                await done[0].wait()
                gates[1].set()  # request 1 finishes last: its connection is on top
            await transport.send(make_spec(server.base_url, {}))
            assert server.requests[-1].conn == conn_of[1]
            assert transport.statistics() == stats(2, 0)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",  # no keep-alive in HTTP/1.0
])
@pytest.mark.parametrize("how", ["send", "open_stream"])
async def test_a_connection_the_server_closes_is_not_counted_idle(
    transport: Transport, answer: bytes, how: str
) -> None:
    # Regression: a one-connection transport whose connection httpcore had closed
    # (Connection: close, HTTP/1.0) went back on the stack: statistics() saw it idle.
    closed = trio.Event()

    async def serve(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some()
        await stream.send_all(answer)
        while await stream.receive_some():  # this server keeps its side open:
            pass  # the client must close the connection
        closed.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            [listener] = await nursery.start(partial(trio.serve_tcp, serve, 0, host="127.0.0.1"))
            port = listener.socket.getsockname()[1]
            spec = make_spec(f"http://127.0.0.1:{port}/v1/x")
            if how == "send":
                assert (await transport.send(spec)).content == b"{}"
            else:
                stream = await transport.open_stream(spec)
                assert await stream.aread() == b"{}"
                await stream.aclose()
            assert transport.statistics() == stats(0, 0)
            await closed.wait()  # the server saw the socket closed
            nursery.cancel_scope.cancel()


async def test_connection_close_from_the_fake_server_is_not_pooled(transport: Transport) -> None:
    with trio.fail_after(5):
        async with open_fake_server(lambda req: Reply(body=b"{}", close=True)) as server:
            await transport.send(make_spec(server.base_url))
            assert transport.statistics() == stats(0, 0)
            await transport.send(make_spec(server.base_url))
            assert server.connections_opened == 2
            await server.wait_all_closed()


async def test_statistics_count_checked_out_connections(transport: Transport) -> None:
    release = trio.Event()

    async def handler(req: Request) -> Reply:
        await release.wait()
        return Reply.json(openai_chat_json("hi"))

    with trio.fail_after(5):
        async with open_fake_server(handler) as server, trio.open_nursery() as nursery:
            assert transport.statistics() == stats(0, 0)
            nursery.start_soon(transport.send, make_spec(server.base_url))
            nursery.start_soon(transport.send, make_spec(server.base_url))
            await server.wait_requests(2)
            assert transport.statistics() == stats(0, 2)
            release.set()
        assert transport.statistics() == stats(2, 0)


async def test_idle_connections_expire_from_the_cold_end() -> None:
    t = Transport(keepalive_expiry=0.1)
    try:
        with trio.fail_after(5):
            async with open_fake_server() as server:
                await t.send(make_spec(server.base_url))
                await trio.sleep(0.2)
                await t.send(make_spec(server.base_url))
                assert server.connections_opened == 2
                await server.wait_closed(1)  # the expired one was closed by us
                assert t.statistics() == stats(1, 0)
    finally:
        await t.aclose()


async def test_aclose_closes_every_pooled_connection() -> None:
    t = Transport()
    release = trio.Event()

    async def handler(req: Request) -> Reply:
        await release.wait()
        return Reply.json(openai_chat_json("hi"))

    with trio.fail_after(5):
        async with open_fake_server(handler) as server:
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(t.send, make_spec(server.base_url))
                await server.wait_requests(3)
                release.set()
            assert t.statistics() == stats(3, 0)
            await t.aclose()
            await server.wait_all_closed()
            assert t.statistics() == stats(0, 0)


async def test_stream_open_at_aclose_is_closed_when_given_back() -> None:
    t = Transport()
    with trio.fail_after(5):
        async with open_fake_server(lambda req: Reply.sse(openai_sse(["a"]))) as server:
            stream = await t.open_stream(make_spec(server.base_url))
            await t.aclose()
            assert await stream.aread()  # still readable to the end
            await stream.aclose()
            await server.wait_all_closed()  # not put back on a closed transport's stack
            assert t.statistics() == stats(0, 0)


# ---------------------------------------------------------------- streams


async def test_stream_reads_chunks_and_gives_the_connection_back(transport: Transport) -> None:
    events = openai_sse(["Hel", "lo"])
    with trio.fail_after(5):
        async with open_fake_server(lambda req: Reply.sse(events, delay=0.01)) as server:
            stream = await transport.open_stream(make_spec(server.base_url))
            assert stream.status == 200
            assert stream.headers["content-type"] == "text/event-stream"
            assert transport.statistics() == stats(0, 1)
            got = []
            while chunk := await stream.receive_some():
                got.append(chunk)
            assert b"".join(got) == b"".join(events)
            assert await stream.receive_some() == b""  # and every call after the end
            await stream.aclose()
            await stream.aclose()  # idempotent
            assert transport.statistics() == stats(1, 0)
            await transport.send(make_spec(server.base_url))
            assert server.connections_opened == 1


async def test_stream_closed_early_discards_its_connection(transport: Transport) -> None:
    reply = Reply.sse(openai_sse(["a", "b", "c"]), delay=0.05)
    with trio.fail_after(5):
        async with open_fake_server(lambda req: reply) as server:
            stream = await transport.open_stream(make_spec(server.base_url))
            assert await stream.receive_some()
            await stream.aclose()
            assert await stream.receive_some() == b""
            await server.wait_all_closed()
            assert transport.statistics() == stats(0, 0)


# ---------------------------------------------------------------- cancellation


async def test_cancel_mid_request_closes_the_connection(transport: Transport) -> None:
    with trio.fail_after(5):
        async with open_fake_server(lambda req: Reply(hang=True)) as server:
            with trio.move_on_after(0.2) as cs:
                await transport.send(make_spec(server.base_url))
            assert cs.cancelled_caught  # Cancelled went through untouched
            await server.wait_all_closed()
            assert transport.statistics() == stats(0, 0)


async def test_cancel_mid_body_of_send_closes_the_connection(transport: Transport) -> None:
    reply = Reply(chunks=[b'{"partial": ', 10.0, b"1}"])
    with trio.fail_after(5):
        async with open_fake_server(lambda req: reply) as server:
            with trio.move_on_after(0.2) as cs:
                await transport.send(make_spec(server.base_url))
            assert cs.cancelled_caught
            await server.wait_all_closed()
            assert transport.statistics() == stats(0, 0)


async def test_cancel_mid_stream_closes_the_connection(transport: Transport) -> None:
    reply = Reply.sse(openai_sse(["a"])[:1], no_end=True)
    with trio.fail_after(5):
        async with open_fake_server(lambda req: reply) as server:
            stream = await transport.open_stream(make_spec(server.base_url))
            try:
                assert await stream.receive_some()
                with trio.move_on_after(0.2) as cs:
                    await stream.receive_some()
                assert cs.cancelled_caught
                # the body is unusable now: no fake clean end
                with pytest.raises(errors.APIConnectionError, match="cancelled"):
                    await stream.receive_some()
            finally:
                await stream.aclose()
            await server.wait_all_closed()
            assert transport.statistics() == stats(0, 0)


async def test_aclose_works_inside_a_cancelled_scope(transport: Transport) -> None:
    reply = Reply.sse(openai_sse(["a"])[:1], no_end=True)
    with trio.fail_after(5):
        async with open_fake_server(lambda req: reply) as server:
            stream = await transport.open_stream(make_spec(server.base_url))
            with trio.CancelScope() as cs:
                cs.cancel()
                await stream.aclose()  # shielded: closes anyway, raises nothing
            await server.wait_all_closed()
            assert transport.statistics() == stats(0, 0)


class _HangingSocket(trio.socket.SocketType):
    """A socket whose connect() never finishes (an unreachable host)."""

    def close(self) -> None:
        pass

    async def connect(self, address: object) -> None:
        await trio.sleep_forever()


class _HangingSockets(trio.abc.SocketFactory):
    def socket(
        self, family: socket.AddressFamily | int = socket.AF_INET,
        type: socket.SocketKind | int = socket.SOCK_STREAM, proto: int = 0,
    ) -> trio.socket.SocketType:
        return _HangingSocket()


@pytest.mark.parametrize("how", ["send", "open_stream"])
async def test_cancel_while_connecting_is_one_bare_cancelled(
    transport: Transport, how: str
) -> None:
    # Regression: trio's open_tcp_stream connects (happy eyeballs) in a nursery, so a
    # caller's cancellation during connect escaped as BaseExceptionGroup([Cancelled, ...]).
    trio.socket.set_custom_socket_factory(_HangingSockets())
    seen: list[type[BaseException]] = []
    try:
        with trio.fail_after(5), trio.move_on_after(0.1) as cs:
            try:
                await getattr(transport, how)(make_spec("http://127.0.0.1:9/v1/x"))
            except BaseException as exc:
                seen.append(type(exc))
                raise
    finally:
        trio.socket.set_custom_socket_factory(None)
    assert cs.cancelled_caught
    assert seen == [trio.Cancelled]
    assert transport.statistics() == stats(0, 0)


# ---------------------------------------------------------------- errors


async def test_connection_refused_is_an_api_connection_error(transport: Transport) -> None:
    port = free_port()
    spec = make_spec(
        f"http://127.0.0.1:{port}/v1/chat/completions?key=AIzaSecretSecretSecretSecret123",
        headers=(("authorization", "Bearer sk-secretsecretsecret"),),
    )
    with trio.fail_after(5), pytest.raises(errors.APIConnectionError) as info:
        await transport.send(spec)
    exc = info.value
    assert not isinstance(exc, httpx.HTTPError)
    assert type(exc.__cause__) is httpx.ConnectError
    assert f"could not connect to http://127.0.0.1:{port} (connection refused)" in str(exc)
    assert "api_base" in str(exc)
    assert (exc.provider, exc.model) == ("openai", "gpt-4o-mini")
    assert "secret" not in str(exc).lower() and "secret" not in repr(exc).lower()
    assert transport.statistics() == stats(0, 0)


async def test_bad_url_is_a_bad_request_error(transport: Transport) -> None:
    with trio.fail_after(5):
        with pytest.raises(errors.BadRequestError, match="api_base") as info:
            await transport.send(make_spec("localhost:8000/v1/chat/completions"))
        assert isinstance(info.value.__cause__, httpx.UnsupportedProtocol)
        with pytest.raises(errors.BadRequestError, match="invalid URL"):
            await transport.send(make_spec("http://[::1"))


async def test_non_ascii_header_value_is_a_bad_request_without_the_value(
    transport: Transport,
) -> None:
    spec = make_spec("http://127.0.0.1:1/", headers=(("authorization", "Bearer sk-k\u00e9y"),))
    with pytest.raises(errors.BadRequestError, match="not ASCII") as info:
        await transport.send(spec)
    assert "k\u00e9y" not in str(info.value)


@pytest.mark.parametrize(("name", "value"), [
    ("authorization", "Bearer sk-proj-Secret0123456789\n"),  # a key read from a file
    ("api-key", "Secret0123456789\n"),  # Azure: no Bearer prefix for redact() to spot
    ("x-api-key", " Secret0123456789"),
    ("x-goog-api-key", "Secret0123456789\x00"),
])
@pytest.mark.parametrize("how", ["send", "open_stream"])
async def test_unsendable_header_value_never_leaks_through_the_chain(
    transport: Transport, name: str, value: str, how: str
) -> None:
    # Regression: h11's LocalProtocolError ("Illegal header value b'...'") was chained
    # as __cause__/__context__ (and quoted in the message), so tracebacks printed the key.
    with trio.fail_after(5):
        async with open_fake_server() as server:
            spec = make_spec(server.base_url + "/v1/x", headers=((name, value),))
            with pytest.raises(errors.BadRequestError) as info:
                await getattr(transport, how)(spec)
            assert server.requests == []
    exc = info.value
    assert exc.__cause__ is None and exc.__context__ is None and exc.__suppress_context__
    assert repr(name) in str(exc)  # which header, never its value
    for text in (str(exc), repr(exc), "".join(traceback.format_exception(exc))):
        assert "Secret0123456789" not in text
    assert transport.statistics() == stats(0, 0)


@pytest.mark.parametrize("value", ["sk-S\u00e9cret0123456789", None])
async def test_unbuildable_header_value_is_not_chained(
    transport: Transport, value: str | None
) -> None:
    spec = make_spec("http://127.0.0.1:1/", headers=(("api-key", cast(str, value)),))
    with pytest.raises(errors.BadRequestError, match="api_key") as info:
        await transport.send(spec)
    exc = info.value
    assert exc.__cause__ is None and exc.__context__ is None and exc.__suppress_context__
    assert "cret0123456789" not in "".join(traceback.format_exception(exc))


async def test_drop_mid_body_in_a_stream(transport: Transport) -> None:
    reply = Reply.sse(openai_sse(["a", "b"]), delay=0.02, drop_mid_body=True)
    with trio.fail_after(5):
        async with open_fake_server(lambda req: reply) as server:
            stream = await transport.open_stream(make_spec(server.base_url))
            try:
                with pytest.raises(errors.APIConnectionError, match="middle of the") as info:
                    while await stream.receive_some():
                        pass
                assert type(info.value.__cause__) is httpx.RemoteProtocolError
                with pytest.raises(errors.APIConnectionError):  # not a fake clean end
                    await stream.receive_some()
            finally:
                await stream.aclose()
            assert transport.statistics() == stats(0, 0)


async def test_drop_mid_body_of_send(transport: Transport) -> None:
    reply = Reply(body=b'{"a": "' + b"x" * 1000 + b'"}', drop_mid_body=True)
    with trio.fail_after(5):
        async with open_fake_server(lambda req: reply) as server:
            with pytest.raises(errors.APIConnectionError, match="middle of the response") as info:
                await transport.send(make_spec(server.base_url))
            assert isinstance(info.value.__cause__, httpx.HTTPError)
            assert transport.statistics() == stats(0, 0)


@pytest.mark.parametrize("flag", ["drop", "drop_after_headers"])
async def test_fresh_connection_failure_is_not_retried(transport: Transport, flag: str) -> None:
    with trio.fail_after(5):
        reply = Reply(body=b"{}", drop=flag == "drop", drop_after_headers=flag != "drop")
        async with open_fake_server(lambda req: reply) as server:
            with pytest.raises(errors.APIConnectionError, match=r"127\.0\.0\.1"):
                await transport.send(make_spec(server.base_url))
            assert len(server.requests) == 1
            assert transport.statistics() == stats(0, 0)


async def test_user_transport_errors_are_translated() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("boom")

    t = Transport(transport=httpx.MockTransport(handler))
    with pytest.raises(errors.APIConnectionError, match="boom") as info:
        await t.send(make_spec("https://api.openai.com/v1/chat/completions"))
    assert type(info.value.__cause__) is httpx.ReadError


# ---------------------------------------------------------------- stale keep-alive


async def test_server_closing_an_idle_connection_is_transparent(transport: Transport) -> None:
    with trio.fail_after(5):
        async with open_fake_server() as server:
            await transport.send(make_spec(server.base_url))
            assert server.close_idle_connections() == 1
            await server.wait_all_closed()
            r = await transport.send(make_spec(server.base_url))
            assert r.status == 200
            assert server.connections_opened == 2
            assert transport.statistics() == stats(1, 0)


async def test_stale_connection_closed_after_the_probe_is_retried_once(
    transport: Transport,
) -> None:
    # The race the pool's probe cannot see: the server closes the reused connection
    # as the request arrives, without answering.
    def handler(req: Request) -> Reply:
        on_conn0 = [r for r in server.requests if r.conn == 0]
        if req.conn == 0 and len(on_conn0) == 2:
            return Reply(drop=True)
        return Reply.json(openai_chat_json("hi"))

    with trio.fail_after(5):
        async with open_fake_server(handler) as server:
            await transport.send(make_spec(server.base_url))
            r = await transport.send(make_spec(server.base_url))
            assert r.status == 200
            assert [req.conn for req in server.requests] == [0, 0, 1]
            assert transport.statistics() == stats(1, 0)


async def test_stale_write_error_is_retried_on_a_new_connection(
    transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = httpcore.AsyncHTTPConnection.handle_async_request
    calls = 0

    async def flaky(self: httpcore.AsyncHTTPConnection,
                    request: httpcore.Request) -> httpcore.Response:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first reuse of the pooled connection
            raise httpcore.WriteError("[Errno 32] Broken pipe")
        return await original(self, request)

    monkeypatch.setattr(httpcore.AsyncHTTPConnection, "handle_async_request", flaky)
    with trio.fail_after(5):
        async with open_fake_server() as server:
            await transport.send(make_spec(server.base_url))
            assert (await transport.send(make_spec(server.base_url))).status == 200
            assert calls == 3
            assert [req.conn for req in server.requests] == [0, 1]
            await server.wait_closed(1)  # the suspect one was closed
            assert transport.statistics() == stats(1, 0)


async def test_write_error_on_a_fresh_connection_is_not_retried(
    transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: httpcore.AsyncHTTPConnection,
                     request: httpcore.Request) -> httpcore.Response:
        await trio.lowlevel.checkpoint()
        raise httpcore.WriteError("[Errno 32] Broken pipe")

    monkeypatch.setattr(httpcore.AsyncHTTPConnection, "handle_async_request", broken)
    with pytest.raises(errors.APIConnectionError, match="before a response arrived"):
        await transport.send(make_spec("http://127.0.0.1:9/"))
    assert transport.statistics() == stats(0, 0)


# ---------------------------------------------------------------- proxies


async def test_proxy_argument_routes_through_the_proxy() -> None:
    with trio.fail_after(5):
        async with open_fake_server() as proxy:
            t = Transport(proxy=proxy.base_url)
            try:
                r = await t.send(make_spec("http://api.example.invalid:8080/v1/chat/completions"))
            finally:
                await t.aclose()
    assert r.status == 200
    [req] = proxy.requests
    assert req.target == "http://api.example.invalid:8080/v1/chat/completions"
    assert req.path == "/v1/chat/completions"
    assert req.headers["host"] == "api.example.invalid:8080"


async def test_unreachable_proxy_is_named_in_the_error() -> None:
    port = free_port()
    t = Transport(proxy=f"http://127.0.0.1:{port}")
    with trio.fail_after(5), pytest.raises(errors.APIConnectionError) as info:
        await t.send(make_spec("http://api.example.invalid/v1/x"))
    assert f"through the proxy http://127.0.0.1:{port}" in str(info.value)
    assert "HTTP(S)_PROXY" in str(info.value)


async def test_environment_proxy_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with trio.fail_after(5):
        async with open_fake_server() as proxy, open_fake_server() as direct:
            monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
            t = Transport()
            try:
                await t.send(make_spec("http://api.example.invalid/v1/x"))
                await t.send(make_spec(direct.base_url + "/v1/y"))  # NO_PROXY: direct
            finally:
                await t.aclose()
            assert [r.target for r in proxy.requests] == ["http://api.example.invalid/v1/x"]
            assert [r.target for r in direct.requests] == ["/v1/y"]

            monkeypatch.delenv("NO_PROXY")
            t = Transport()  # the environment is read when the transport is made
            try:
                await t.send(make_spec(direct.base_url + "/v1/z"))
            finally:
                await t.aclose()
            assert proxy.requests[-1].target == direct.base_url + "/v1/z"

            t = Transport(trust_env=False)
            try:
                await t.send(make_spec(direct.base_url + "/v1/w"))
            finally:
                await t.aclose()
            assert direct.requests[-1].target == "/v1/w"


def test_proxy_rules_match_like_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://secure-proxy:3128")
    monkeypatch.setenv("ALL_PROXY", "http://any-proxy:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example,.corp.example,::1,localhost")
    stack = StackTransport()

    def via(url: str) -> str | None:
        proxy = stack.proxy_for(httpx.URL(url))
        return None if proxy is None else str(proxy.url.host)

    assert via("https://api.openai.com/v1") == "secure-proxy"
    assert via("http://api.openai.com/v1") == "any-proxy"
    assert via("https://internal.example/x") is None
    assert via("https://api.internal.example/x") is None  # NO_PROXY=name covers subdomains
    assert via("https://corp.example/x") == "secure-proxy"  # .name: subdomains only
    assert via("https://a.corp.example/x") is None
    assert via("http://[::1]:8000/v1") is None
    assert via("http://localhost:11434/v1") is None
    monkeypatch.setenv("NO_PROXY", "*")
    assert StackTransport().proxy_for(httpx.URL("https://api.openai.com")) is None


# ---------------------------------------------------------------- user transports


async def test_user_transport_is_used_as_given() -> None:
    seen: list[httpx.Request] = []
    closed: list[bool] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("stream"):
            return httpx.Response(200, content=b"".join(openai_sse(["x"])))
        return httpx.Response(200, json=openai_chat_json("mocked"))

    class Mock(httpx.MockTransport):
        async def aclose(self) -> None:
            closed.append(True)

    t = Transport(transport=Mock(handler))
    r = await t.send(make_spec("https://api.openai.com/v1/chat/completions"))
    assert json.loads(r.content)["choices"][0]["message"]["content"] == "mocked"
    assert json.loads(seen[0].content) == {"model": "gpt-4o-mini"}
    assert seen[0].headers["user-agent"] == "trillm/0.1.0"
    stream = await t.open_stream(make_spec("https://api.openai.com/v1/stream"))
    assert await stream.aread() == b"".join(openai_sse(["x"]))
    assert await stream.receive_some() == b""
    await stream.aclose()
    assert t.statistics() == stats(0, 0)
    await t.aclose()
    assert closed == []  # the user's transport is the user's to close


def test_proxy_with_a_user_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        Transport(transport=httpx.MockTransport(lambda r: httpx.Response(200)), proxy="http://p:1")


async def test_closing_a_stream_whose_rest_was_already_buffered(transport: Transport) -> None:
    # Regression: the drain in aclose() can reach the end of a body that was all
    # buffered; the connection then looks idle with its socket closed, and must be
    # dropped without httpcore probing it (ValueError: file descriptor -1).
    with trio.fail_after(5):
        async with open_fake_server(lambda req: Reply(body=b"x" * 100)) as server:
            for _ in range(2):
                stream = await transport.open_stream(make_spec(server.base_url))
                assert await stream.receive_some() == b"x" * 100  # the end not seen yet
                await stream.aclose()
                assert transport.statistics() == stats(0, 0)
            await server.wait_all_closed()
            assert server.connections_opened == 2


async def test_a_requests_own_headers_are_encoded_once_and_sent_unchanged() -> None:
    # httpx encodes every str header on every request; the transport hands it the bytes
    # it encoded the first time it saw this tuple of headers (a provider reuses its tuple).
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"{}")

    transport = Transport(transport=httpx.MockTransport(answer))
    own = (("authorization", "Bearer sk-abc"), ("X-Trace", "1"))
    for _ in range(2):
        await transport.send(HTTPRequestSpec("POST", "http://h.test/v1", own, json={"a": 1}))
    first, second = (dict(r.headers.raw) for r in seen)
    assert first[b"authorization"] == b"Bearer sk-abc" and first[b"X-Trace"] == b"1"
    assert first[b"authorization"] is second[b"authorization"]
    assert seen[0].headers["content-type"] == "application/json"
    # a value that is not ASCII is refused as before, naming the header, not quoting it
    bad = (("authorization", "Bearer sk-\u00e9"),)
    with pytest.raises(errors.BadRequestError, match="'authorization' request header"):
        await transport.send(HTTPRequestSpec("POST", "http://h.test/v1", bad, json={}))
