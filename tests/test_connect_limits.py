"""Opening a connection is bounded by the call's ``timeout`` / ``deadline``, or by the
Client's ``connect_timeout=`` when given: never by a hidden constant.

A fixed 5 s connect limit failed thousands of requests of a process busy opening
10,000 connections at once (the server had refused none).  The socket tests use a
listener whose accept queue is full, so a connect to it hangs (the kernel drops
the SYN): real sockets on 127.0.0.1, real clock, under ``trio.fail_after``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

import trillm
from tests.fakeserver import openai_chat_json
from trillm import errors
from trillm.testing import FakeLLM

MSGS = [{"role": "user", "content": "Hello"}]
GUARD = 10


def seen_timeouts(**client_kw: Any) -> tuple[trillm.Client, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json=openai_chat_json("hi"))

    client = trillm.Client(transport=httpx.MockTransport(handler), api_key="k", **client_kw)
    return client, seen


async def test_no_connect_limit_of_its_own_by_default() -> None:
    client, seen = seen_timeouts()
    async with client:
        await client.acompletion("openai/gpt-4o-mini", MSGS)
        await (await client.acompletion("openai/gpt-4o-mini", MSGS, stream=True)).aclose()
    assert [t["connect"] for t in seen] == [None, None]
    assert {t["read"] for t in seen} == {None}  # trillm's cancel scopes do the timing


async def test_connect_timeout_reaches_the_connection() -> None:
    client, seen = seen_timeouts(connect_timeout=2.5)
    async with client:
        await client.acompletion("openai/gpt-4o-mini", MSGS)
    assert seen[0]["connect"] == 2.5


async def test_connect_timeout_inf_means_none() -> None:
    client, seen = seen_timeouts(connect_timeout=math.inf)
    async with client:
        await client.acompletion("openai/gpt-4o-mini", MSGS)
    assert seen[0]["connect"] is None


@pytest.mark.parametrize("bad", [0, -1, "5", True, math.nan])
def test_connect_timeout_is_checked(bad: object) -> None:
    with pytest.raises(errors.BadRequestError, match="connect_timeout"):
        trillm.Client(connect_timeout=bad)  # type: ignore[arg-type]


@asynccontextmanager
async def full_listener() -> AsyncIterator[str]:
    """An api_base on 127.0.0.1 whose accept queue is full: connecting to it hangs."""
    listener = trio.socket.socket()
    filler = trio.socket.socket()
    with listener, filler:
        await listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        await filler.connect(("127.0.0.1", port))  # takes the one place in the queue
        yield f"http://127.0.0.1:{port}/v1"


async def test_a_hanging_connect_ends_at_the_calls_timeout_not_at_5_s() -> None:
    with trio.fail_after(GUARD):
        async with full_listener() as base, \
                trillm.Client(api_base=base, api_key="k", max_retries=0) as client:
            start = trio.current_time()
            with pytest.raises(errors.Timeout):
                await client.acompletion("openai/gpt-4o-mini", MSGS, timeout=0.4)
            assert 0.35 <= trio.current_time() - start < 3


async def test_a_hanging_connect_waits_as_long_as_the_call_may() -> None:
    # Past the old hidden 5 s limit, still waiting: only the caller's scope ends it.
    with trio.fail_after(GUARD):
        async with full_listener() as base, \
                trillm.Client(api_base=base, api_key="k", max_retries=0) as client:
            with trio.move_on_after(5.5) as scope:
                await client.acompletion("openai/gpt-4o-mini", MSGS, timeout=60)
            assert scope.cancelled_caught


async def test_connect_timeout_ends_a_hanging_connect_with_a_connection_error() -> None:
    with trio.fail_after(GUARD):
        async with full_listener() as base, trillm.Client(
                api_base=base, api_key="k", max_retries=0, connect_timeout=0.3) as client:
            with pytest.raises(errors.APIConnectionError, match=r"connect_timeout=0\.3 s") as info:
                await client.acompletion("openai/gpt-4o-mini", MSGS, timeout=30)
            assert not isinstance(info.value, errors.Timeout)


def count_ssl_contexts(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every verifying SSL context built from now on (httpx and httpcore build theirs with
    ``ssl.create_default_context``)."""
    import ssl

    built: list[object] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        ctx = real(*args, **kwargs)
        built.append(ctx)
        return ctx

    monkeypatch.setattr(ssl, "create_default_context", counting)
    return built


async def test_one_ssl_context_per_client_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Building an SSLContext (loading the CA bundle) costs tens of milliseconds: the
    # Client builds one for its first https origin and every connection shares it.  The
    # TLS handshakes fail here (the listener speaks no TLS): each is a connection error.
    built = count_ssl_contexts(monkeypatch)
    with trio.fail_after(GUARD):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]

        async def hang_up(stream: trio.SocketStream) -> None:
            await stream.aclose()

        async with trio.open_nursery() as server:
            server.start_soon(trio.serve_listeners, hang_up, listeners)
            client = trillm.Client(api_base=f"https://127.0.0.1:{port}/v1", api_key="k",
                                   max_retries=0)
            async with client:
                assert built == []  # nothing before the first https request
                failed: list[BaseException] = []

                async def one() -> None:
                    try:
                        await client.acompletion("openai/gpt-4o-mini", MSGS)
                    except errors.APIConnectionError as exc:
                        failed.append(exc)

                async with trio.open_nursery() as nursery:
                    for _ in range(20):  # 20 at once: 20 new connections
                        nursery.start_soon(one)
                assert len(failed) == 20
                assert len(built) == 1
            server.cancel_scope.cancel()
        assert len(built) == 1


async def test_a_plain_http_client_builds_no_ssl_context(monkeypatch: pytest.MonkeyPatch) -> None:
    # A local server over plain HTTP (vLLM, Ollama, the kit) needs no CA bundle: about
    # 1.5 MB and tens of milliseconds that such a client never pays.
    built = count_ssl_contexts(monkeypatch)
    with trio.fail_after(GUARD):
        fake = FakeLLM()
        fake.on().reply("hi")
        async with fake.serve() as url, trillm.Client(api_base=url + "/v1", api_key="k") as client:
            async with trio.open_nursery() as nursery:
                for _ in range(20):  # 20 at once: 20 new connections
                    nursery.start_soon(client.acompletion, "openai/gpt-4o-mini", MSGS)
            assert client.statistics().idle_connections == 20
    assert built == []
