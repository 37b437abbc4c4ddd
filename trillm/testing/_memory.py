"""The fake LLM in memory: an ``httpx.AsyncBaseTransport`` that carries out its plans.

No socket is opened; every wait is a ``trio.sleep``, so under
``trio.testing.MockClock(autojump_threshold=0)`` a test of retries, back-off,
timeouts or hedging takes no real time.  The body is an async byte iterator
object (not an async generator, so a cancelled read leaves nothing for trio to
finalize); closing it before its end marks the request ``cancelled_by_client``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import trio

from ._answers import Plan

if TYPE_CHECKING:
    from ._cassette import Relay
    from ._record import Answering, FakeRequest

__all__ = ["FakeTransport"]


class FakeTransport(httpx.AsyncBaseTransport):
    """Answers every request from its :class:`~trillm.testing.FakeLLM`, in memory."""

    def __init__(self, fake: Answering) -> None:
        self.fake = fake

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Record *request*, wait as the plan says, and answer (or fail) as it says."""
        body = await request.aread()
        target = request.url.raw_path.decode("ascii")
        record, plan = self.fake.handle(request.method, target, request.headers.multi_items(),
                                        body, scheme=request.url.scheme)
        if plan.relay is not None:
            return await _relayed(plan.relay, record, request)
        waited = False
        try:
            if plan.delay:
                await trio.sleep(plan.delay)
            else:
                await trio.lowlevel.checkpoint()
            if plan.hang:
                await trio.sleep_forever()
            waited = True
        finally:
            if not waited:  # only a cancellation gets here: the client gave up
                record.mark_cancelled()
        if plan.cut_before_headers:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request)
        if not plan.frames and not (plan.cut or plan.stall):
            record.mark_completed()
        return httpx.Response(plan.status, headers=list(plan.headers),
                              stream=_Body(plan, record), request=request)


class _Body(httpx.AsyncByteStream):
    def __init__(self, plan: Plan, record: FakeRequest) -> None:
        self._frames = _Frames(plan, record)
        self._record = record

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._frames

    async def aclose(self) -> None:
        if not self._record.completed and not self._frames.broken:
            self._record.mark_cancelled()
        await trio.lowlevel.checkpoint()


class _Frames:
    __slots__ = ("broken", "next", "plan", "record")

    def __init__(self, plan: Plan, record: FakeRequest) -> None:
        self.plan, self.record = plan, record
        self.next = 0
        self.broken = False

    def __aiter__(self) -> _Frames:
        return self

    async def __anext__(self) -> bytes:
        plan = self.plan
        if self.next >= len(plan.frames):
            if plan.stall:
                await trio.sleep_forever()
            await trio.lowlevel.checkpoint()
            if plan.cut and not self.broken:
                self.broken = True
                self.record.mark_broken()
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body")
            raise StopAsyncIteration
        wait = plan.wait_before(self.next)
        if wait:
            await trio.sleep(wait)
        else:
            await trio.lowlevel.checkpoint()
        frame = plan.frames[self.next]
        self.next += 1
        self.record.chunks_sent += 1
        if self.next == len(plan.frames) and not (plan.cut or plan.stall):
            self.record.mark_completed()
        return frame


async def _relayed(relay: Relay, record: FakeRequest, request: httpx.Request) -> httpx.Response:
    """The answer of a recording fake: upstream's, passed on as it comes."""
    try:
        status, headers = await relay.open()
    except BaseException:
        record.mark_cancelled()
        raise
    record.status = status
    return httpx.Response(status, headers=list(headers), stream=_RelayBody(relay, record),
                          request=request)


class _RelayBody(httpx.AsyncByteStream):
    def __init__(self, relay: Relay, record: FakeRequest) -> None:
        self.relay, self.record = relay, record

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            data = await self.relay.next_chunk()
        except httpx.TransportError as exc:
            self.record.mark_broken()
            raise httpx.RemoteProtocolError(f"upstream broke: {exc}") from exc
        if data is None:
            self.record.mark_completed()
            raise StopAsyncIteration
        self.record.chunks_sent += 1
        return data

    async def aclose(self) -> None:
        if not self.record.completed:
            self.record.mark_cancelled()
        await self.relay.aclose()
