"""A scriptable HTTP/1.1 server on 127.0.0.1 for real-socket tests (trio + h11).

For a provider's answers, streams, errors, hangs and cut connections, tests use the kit,
``trillm.testing.FakeLLM`` (``fake.serve()`` on loopback, ``fake.transport()`` in memory).
This server stays for what the kit does not model: keep-alive and connection counts
(``Request.conn``, ``connections_opened``, ``close_idle_connections()``), ``Connection:
close``, standing in for a proxy, and the exact control of the framing that the socket
tests of the Client and the transport rely on (test_client_sockets, test_transport,
test_transport_bodies: chunked ends, gzip and oversized bodies).

Use it with the real clock and a ``trio.fail_after`` guard, never with the
autojump ``MockClock`` (DESIGN.md, "Tests")::

    from tests.fakeserver import Reply, open_fake_server, openai_chat_json, openai_sse

    def handler(request: Request) -> Reply:          # may also be `async def`
        assert request.path == "/v1/chat/completions"
        return Reply.json(openai_chat_json("Hello!"))

    async def test_it() -> None:
        with trio.fail_after(5):
            async with open_fake_server(handler) as server:  # or nursery.start(serve_fake, handler)
                ...  # talk to server.base_url  ("http://127.0.0.1:PORT")
                assert server.requests[0].json()["model"] == "gpt-4o-mini"
                await server.wait_all_closed()       # "the server saw the connection closed"

What a handler returns (:class:`Reply`):

* ``Reply(status=200, headers=[...], body=b"...")``: a ``Content-Length`` body;
  ``Reply.json(obj)`` sets the JSON body and content type.
* ``chunks=[b"...", 0.05, b"..."]``: a chunked (streamed) body; a float sleeps
  that many seconds before the next chunk.  ``Reply.sse(openai_sse([...]))``
  streams ``text/event-stream`` events, optionally with a delay between them.
* Faults: ``hang`` (read the request, never answer), ``drop`` (close the
  connection without answering), ``drop_after_headers``, ``drop_mid_body``
  (half of ``body``, or all of ``chunks`` without the final chunk, then close),
  ``no_end`` (send the chunks, then wait without finishing), ``close``
  (answer with ``Connection: close`` and close).

While a reply is pending (handler running, ``hang``, sleeps, ``no_end``) the
server keeps reading the socket, so a client that closes its connection is
noticed at once: ``connections_closed`` counts it and ``wait_all_closed()``
returns.  Keep-alive works (several requests per connection; ``Request.conn``
says which connection, numbered from 0), and ``close_idle_connections()``
closes the connections that wait for a next request, as a server's keep-alive
timeout would.

A request in absolute form (``POST http://host/path HTTP/1.1``), as a client
sends it to an HTTP proxy, is accepted too: ``Request.target`` is what was
sent, ``Request.path`` the path and query alone, so the server can stand in
for a proxy.  A handler that raises gets a 500 answer, and the exception is
raised again when ``open_fake_server`` exits (so assertions in handlers work).
Every socket is closed when the ``async with`` block (or the nursery) exits.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import attrs
import h11
import trio

__all__ = [
    "threaded_fake_server",
    "FakeServer",
    "Handler",
    "Reply",
    "Request",
    "open_fake_server",
    "openai_chat_json",
    "openai_sse",
    "serve_fake",
]


@attrs.frozen
class Request:
    """One request as the server received it."""

    method: str
    target: str  # as sent: "/v1/x?y=1", or "http://host:port/v1/x" through a proxy
    path: str  # path and query only
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    conn: int  # which connection it came on (0, 1, ... in accept order)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@attrs.define
class Reply:
    """What to answer; see the module docstring for the fault flags."""

    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    chunks: list[bytes | float] | None = None
    hang: bool = False
    drop: bool = False
    drop_after_headers: bool = False
    drop_mid_body: bool = False
    no_end: bool = False
    close: bool = False

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Reply:
        """A JSON answer."""
        body = json.dumps(obj).encode()
        return cls(status, [("content-type", "application/json"), *headers], body)

    @classmethod
    def sse(cls, events: Sequence[bytes], delay: float = 0.0, **flags: Any) -> Reply:
        """A ``text/event-stream`` answer, one chunk per event, *delay* seconds apart."""
        chunks: list[bytes | float] = []
        for i, event in enumerate(events):
            if delay and i:
                chunks.append(delay)
            chunks.append(event)
        return cls(200, [("content-type", "text/event-stream")], chunks=chunks, **flags)


Handler = Callable[[Request], "Reply | Awaitable[Reply]"]


def _default_handler(request: Request) -> Reply:
    return Reply.json(openai_chat_json("Hello!"))


@attrs.define(eq=False)
class _Conn:
    stream: trio.SocketStream
    scope: trio.CancelScope
    idle: bool = True


@attrs.define(eq=False)
class FakeServer:
    """A running fake server: its address, what it received, and its connections."""

    port: int
    handler: Handler
    requests: list[Request] = attrs.field(factory=list)
    errors: list[BaseException] = attrs.field(factory=list)
    connections_opened: int = 0
    connections_closed: int = 0
    _conns: set[_Conn] = attrs.field(factory=set)
    _changed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        """Connections accepted and not closed yet."""
        return self.connections_opened - self.connections_closed

    @property
    def idle_connections(self) -> int:
        """Open connections waiting for their next request."""
        return sum(1 for c in self._conns if c.idle)

    def close_idle_connections(self) -> int:
        """Close every connection waiting for a next request (now); return how many."""
        idle = [c for c in self._conns if c.idle]
        for c in idle:
            c.stream.socket.close()  # FIN right away, as a keep-alive timeout does
            c.scope.cancel()
        return len(idle)

    async def wait_all_closed(self) -> None:
        """Wait until every connection the server accepted has been closed."""
        while self.open_connections:
            await self._changed.wait()

    async def wait_closed(self, n: int) -> None:
        """Wait until at least *n* connections have been closed."""
        while self.connections_closed < n:
            await self._changed.wait()

    async def wait_requests(self, n: int) -> None:
        """Wait until the server has received at least *n* requests."""
        while len(self.requests) < n:
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -------------------------------------------------------------- one connection

    async def _serve(self, stream: trio.SocketStream) -> None:
        number = self.connections_opened
        self.connections_opened += 1
        self._notify()
        conn = _Conn(stream, trio.CancelScope())
        self._conns.add(conn)
        h = h11.Connection(h11.SERVER)
        try:
            with conn.scope:
                while True:
                    request = await self._read_request(h, conn, number)
                    if request is None or not await self._answer(h, conn, request):
                        break
                    if h.our_state is not h11.DONE or h.their_state is not h11.DONE:
                        break
                    h.start_next_cycle()
        finally:
            self._conns.discard(conn)
            stream.socket.close()
            self.connections_closed += 1
            self._notify()

    async def _read_request(self, h: h11.Connection, conn: _Conn, number: int) -> Request | None:
        conn.idle = True
        head: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError:
                return None
            if event is h11.NEED_DATA:
                try:
                    data = await conn.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return None
                if not data:
                    return None
                conn.idle = False
                h.receive_data(data)
            elif isinstance(event, h11.Request):
                conn.idle = False
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                headers: dict[str, str] = {}
                for name, value in head.headers:
                    key, val = name.decode().lower(), value.decode("latin-1")
                    headers[key] = f"{headers[key]}, {val}" if key in headers else val
                target = head.target.decode("latin-1")
                path = target
                if "://" in target:
                    parts = urlsplit(target)
                    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                request = Request(head.method.decode(), target, path, headers, bytes(body), number)
                self.requests.append(request)
                self._notify()
                return request
            else:  # ConnectionClosed, PAUSED
                return None

    async def _answer(self, h: h11.Connection, conn: _Conn, request: Request) -> bool:
        """Answer one request; False when the connection must be closed."""
        keep = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_peer, h, conn, nursery.cancel_scope)
            try:
                keep = await self._send_reply(h, conn, request)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                keep = False
            nursery.cancel_scope.cancel()
        return keep

    async def _watch_peer(self, h: h11.Connection, conn: _Conn, scope: trio.CancelScope) -> None:
        """Read while a reply is pending, to notice a client that closes its connection."""
        while True:
            try:
                data = await conn.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                scope.cancel()  # the client is gone: stop answering, close
                return
            h.receive_data(data)  # a pipelined request: kept for later

    async def _send_reply(self, h: h11.Connection, conn: _Conn, request: Request) -> bool:
        try:
            reply = self.handler(request)
            if inspect.isawaitable(reply):
                reply = await reply
        except Exception as exc:  # noqa: BLE001  (raised again at exit; answer 500 now)
            self.errors.append(exc)
            text = f"handler failed: {exc!r}".encode()
            reply = Reply(500, [("content-type", "text/plain")], text)
        assert isinstance(reply, Reply)

        pending = bytearray()

        def put(event: h11.Event) -> None:
            pending.extend(h.send(event) or b"")

        async def flush(final: bool = False) -> None:
            if final and not reply.close:
                conn.idle = True  # set before the last write: no client can see the end sooner
            if pending:
                data = bytes(pending)
                pending.clear()
                await conn.stream.send_all(data)

        if reply.hang:
            await trio.sleep_forever()
        if reply.drop:
            return False
        headers = [(k.encode(), v.encode()) for k, v in reply.headers]
        names = {k.lower() for k, _ in headers}
        if b"date" not in names:
            now = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
            headers.append((b"date", now.encode()))
        if reply.chunks is not None:
            if b"content-length" not in names and b"transfer-encoding" not in names:
                headers.append((b"transfer-encoding", b"chunked"))
        elif b"content-length" not in names:
            headers.append((b"content-length", str(len(reply.body)).encode()))
        if reply.close:
            headers.append((b"connection", b"close"))
        put(h11.Response(status_code=reply.status, headers=headers))
        if reply.drop_after_headers:
            await flush()
            return False
        if reply.chunks is None:
            if reply.drop_mid_body:
                put(h11.Data(data=reply.body[: len(reply.body) // 2]))
                await flush()
                return False
            if reply.body:
                put(h11.Data(data=reply.body))
        else:
            await flush()
            for chunk in reply.chunks:
                if isinstance(chunk, float | int):
                    await trio.sleep(chunk)
                elif chunk:
                    put(h11.Data(data=chunk))
                    await flush()
            if reply.drop_mid_body:
                return False
        if reply.no_end:
            await flush()
            await trio.sleep_forever()
        put(h11.EndOfMessage())
        await flush(final=True)
        return not reply.close


async def serve_fake(
    handler: Handler | None = None,
    *,
    task_status: trio.TaskStatus[FakeServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a fake server until cancelled: ``server = await nursery.start(serve_fake, handler)``."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    server = FakeServer(port, handler or _default_handler)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(server)
            await trio.serve_listeners(server._serve, listeners, handler_nursery=nursery)
    finally:
        for listener in listeners:
            listener.socket.close()


@asynccontextmanager
async def open_fake_server(handler: Handler | None = None) -> AsyncIterator[FakeServer]:
    """Start a fake server; leaving the block stops it and closes every socket.

    A handler's exception is raised again on a normal exit.
    """
    async with trio.open_nursery() as nursery:
        server: FakeServer = await nursery.start(serve_fake, handler)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()
    if server.errors:
        raise server.errors[0]


# ---------------------------------------------------------------- canned OpenAI answers


def openai_chat_json(
    text: str, model: str = "gpt-4o-mini", *, finish_reason: str = "stop", prompt_tokens: int = 5
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` body answering *text*."""
    completion = len(text.split())
    return {
        "id": "chatcmpl-fake123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None,
            "finish_reason": finish_reason,
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                  "total_tokens": prompt_tokens + completion},
        "system_fingerprint": "fp_fake",
    }


def openai_sse(words: Sequence[str], usage: bool = True, model: str = "gpt-4o-mini") -> list[bytes]:
    """OpenAI ``chat.completion.chunk`` events for *words* (each one chunk's content).

    A first chunk carries the role, then one chunk per word, a chunk with
    ``finish_reason: "stop"``, with *usage* a choices-less usage chunk (as
    ``stream_options={"include_usage": true}`` gives), and ``data: [DONE]``.
    """

    def chunk(choices: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> bytes:
        body: dict[str, Any] = {
            "id": "chatcmpl-fake123", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "system_fingerprint": "fp_fake", "choices": choices,
        }
        if usage:
            body["usage"] = None
        body.update(extra or {})
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    events = [chunk([choice({"role": "assistant", "content": "", "refusal": None})])]
    events += [chunk([choice({"content": w})]) for w in words]
    events.append(chunk([choice({}, "stop")]))
    if usage:
        n = len(words)
        events.append(chunk([], {"usage": {"prompt_tokens": 5, "completion_tokens": n,
                                           "total_tokens": 5 + n}}))
    events.append(b"data: [DONE]\n\n")
    return events


@contextlib.contextmanager
def threaded_fake_server(handler: Handler | None = None, guard: float = 10.0
                         ) -> Iterator[FakeServer]:
    """The fake server in a thread of its own (its own trio run), for code outside trio
    (the sync API, asyncio); stopped, and its thread joined, on leaving the block."""
    started: queue.Queue[tuple[FakeServer, trio.lowlevel.TrioToken, trio.Event]] = queue.Queue()

    async def serve() -> None:
        stop = trio.Event()
        with trio.fail_after(60):
            async with open_fake_server(handler) as server:
                started.put((server, trio.lowlevel.current_trio_token(), stop))
                await stop.wait()

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    server, token, stop = started.get(timeout=guard)
    try:
        yield server
    finally:
        token.run_sync_soon(stop.set)
        thread.join(guard)
        assert not thread.is_alive()
