"""The fake LLM on a loopback port: an HTTP/1.1 server (trio + h11) that carries out its plans.

For code that does not use trillm's Client (the openai SDK, plain httpx, a
subprocess).  h11 is an httpx dependency (through httpcore), so it is always
installed; it is imported only here, when a server starts.  While an answer is
pending (a delay, a hang, a streamed body) the server keeps reading the
socket, so a client that closes its connection is noticed at once and the
request is marked ``cancelled_by_client``.  Use it with the real clock (under
``trio.fail_after``), never with an autojump ``MockClock``: trio's autojump
fires while socket I/O is in flight.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import h11
import httpx
import trio

from ._answers import Plan

if TYPE_CHECKING:
    from ._cassette import Relay
    from ._record import Answering, FakeRequest

__all__ = ["serve"]

_GONE = (trio.BrokenResourceError, trio.ClosedResourceError)


@asynccontextmanager
async def serve(fake: Answering, *, host: str = "127.0.0.1", port: int = 0
                ) -> AsyncIterator[str]:
    """Serve *fake* on *host*:*port* (0: a free port) until the block exits; yields the root
    URL.  An unmatched request in strict mode is raised again on a normal exit."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, _Connection.factory(fake), listeners)
            try:
                yield f"http://{shown}:{bound}"
            finally:
                nursery.cancel_scope.cancel()
    finally:
        for listener in listeners:
            listener.socket.close()
    fake.check()


class _Connection:
    """One client connection: requests in turn (keep-alive), each answered by its plan."""

    def __init__(self, fake: Answering, stream: trio.SocketStream) -> None:
        self.fake, self.stream = fake, stream
        self.h = h11.Connection(h11.SERVER)

    @classmethod
    def factory(cls, fake: Answering) -> Callable[[trio.SocketStream], Awaitable[None]]:
        async def handler(stream: trio.SocketStream) -> None:
            conn = cls(fake, stream)
            try:
                await conn.run()
            finally:
                stream.socket.close()
        return handler

    async def run(self) -> None:
        h = self.h
        while True:
            got = await self._read_request()
            if got is None:
                return
            record, plan = got
            if not await self._answer(record, plan):
                return
            if h.our_state is not h11.DONE or h.their_state is not h11.DONE:
                return
            h.start_next_cycle()

    async def _read_request(self) -> tuple[FakeRequest, Plan] | None:
        h = self.h
        head: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError:
                return None
            if event is h11.NEED_DATA:
                try:
                    data = await self.stream.receive_some(65536)
                except _GONE:
                    return None
                if not data:
                    return None
                h.receive_data(data)
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers]
                target = head.target.decode("latin-1")
                if "://" in target:  # absolute form, as sent to a proxy
                    target = "/" + target.split("://", 1)[1].partition("/")[2]
                return self.fake.handle(head.method.decode(), target, headers, bytes(body))
            else:  # ConnectionClosed, PAUSED
                return None

    async def _answer(self, record: FakeRequest, plan: Plan) -> bool:
        """Carry out *plan*; False when the connection must be closed."""
        keep = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_peer, record, nursery.cancel_scope)
            try:
                keep = await self._send(record, plan)
            except _GONE:
                record.mark_cancelled()
            nursery.cancel_scope.cancel()
        return keep

    async def _watch_peer(self, record: FakeRequest, scope: trio.CancelScope) -> None:
        """Read while the answer is pending, to notice a client that closes its connection."""
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except _GONE:
                data = b""
            if not data:
                record.mark_cancelled()
                scope.cancel()
                return
            with contextlib.suppress(h11.RemoteProtocolError):
                self.h.receive_data(data)  # a pipelined request: kept for later

    async def _send(self, record: FakeRequest, plan: Plan) -> bool:
        h, stream = self.h, self.stream
        if plan.relay is not None:
            return await self._relay(record, plan.relay)
        if plan.delay:
            await trio.sleep(plan.delay)
        if plan.hang:
            await trio.sleep_forever()
        if plan.cut_before_headers:
            return False
        headers = [(k.encode(), v.encode()) for k, v in plan.headers]
        if plan.cut or plan.stall or len(plan.frames) != 1:
            headers.append((b"transfer-encoding", b"chunked"))
        else:
            headers.append((b"content-length", str(len(plan.frames[0])).encode()))
        await stream.send_all(h.send(h11.Response(status_code=plan.status, headers=headers))
                              or b"")
        for k, frame in enumerate(plan.frames):
            wait = plan.wait_before(k)
            if wait:
                await trio.sleep(wait)
            await stream.send_all(h.send(h11.Data(data=frame)) or b"")
            record.chunks_sent += 1
        if plan.cut:
            record.mark_broken()
            return False
        if plan.stall:  # until the client closes (the peer watcher cancels this)
            await trio.sleep_forever()
        record.mark_completed()
        await stream.send_all(h.send(h11.EndOfMessage()) or b"")
        return True

    async def _relay(self, record: FakeRequest, relay: Relay) -> bool:
        """Pass upstream's answer on as it comes (recording); False: close the connection."""
        h, stream = self.h, self.stream
        try:
            try:
                status, upstream_headers = await relay.open()
            except httpx.TransportError as exc:  # upstream unreachable: a 502, as a proxy says
                body = f"the fake could not reach upstream: {exc}".encode()
                return await self._send(record, Plan(502, (("content-type", "text/plain"),),
                                                     (body,)))
            record.status = status
            headers = [(k.encode(), v.encode()) for k, v in upstream_headers]
            headers.append((b"transfer-encoding", b"chunked"))
            await stream.send_all(h.send(h11.Response(status_code=status, headers=headers))
                                  or b"")
            while True:
                try:
                    data = await relay.next_chunk()
                except httpx.TransportError:
                    record.mark_broken()
                    return False
                if data is None:
                    break
                await stream.send_all(h.send(h11.Data(data=data)) or b"")
                record.chunks_sent += 1
            record.mark_completed()
            await stream.send_all(h.send(h11.EndOfMessage()) or b"")
            return True
        finally:
            await relay.aclose()
