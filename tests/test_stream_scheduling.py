"""A stream's scheduling promises, kept while it skips most per-chunk schedule points.

Every ``__anext__`` is a cancel point (a cancellation is delivered at the next
chunk, and never loses one); other tasks run at least once per network read and
at least every millisecond while a consumer drains chunks already received.
Real clock, no sockets: the bodies are in memory.
"""

from __future__ import annotations

import gc
import itertools
import time

import trio
import trio.lowlevel

from trillm._stream import YIELD_QUANTUM, HTTPChunkSource, Stream
from trillm.providers.openai import OpenAIStreamParser

EVENTS = 20_000


def sse_body(n: int) -> bytes:
    head = b'data: {"id":"c","created":1,"model":"m","choices":'
    events = [head + b'[{"index":0,"delta":{"content":"w%d "}}]}\n\n' % i for i in range(n)]
    events.append(head + b'[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    return b"".join(events)


class Reads:
    """A response body given as the reads listed; no read is a checkpoint of its own."""

    def __init__(self, reads: list[bytes]) -> None:
        self.reads, self.closed, self.count = list(reads), False, 0

    async def receive_some(self) -> bytes:
        self.count += 1
        return self.reads.pop(0) if self.reads else b""

    async def aclose(self) -> None:
        self.closed = True


def stream_of(reads: list[bytes]) -> tuple[Stream, Reads]:
    response = Reads(reads)
    source = HTTPChunkSource(response, OpenAIStreamParser("openai", "m"),  # type: ignore[arg-type]
                             provider="openai", model="m", headers={})
    return Stream(source, provider="openai", model="m"), response


async def test_other_tasks_run_every_millisecond_while_a_buffered_stream_drains() -> None:
    # 20,000 events in one read: without the quantum (and the decoding a slice at a
    # time) the consumer would hold the thread for all of them, tens of milliseconds.
    # Gaps are measured in this thread's CPU time, which other processes on a busy
    # machine do not inflate; the garbage collector is off while measuring, as its
    # pauses are not the stream's doing.
    stream, _ = stream_of([sse_body(EVENTS)])
    seen: list[float] = []
    draining = True
    got = 0

    async def other() -> None:
        while draining:
            seen.append(time.thread_time())
            await trio.lowlevel.checkpoint()

    gc.disable()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(other)
            await trio.lowlevel.checkpoint()  # let it take its first reading
            start = time.thread_time()
            async with stream:
                async for _ in stream:
                    got += 1
            seen.append(time.thread_time())
            draining = False
    finally:
        gc.enable()
    assert got == EVENTS + 1
    gaps = [b - a for a, b in itertools.pairwise(seen) if b > start]
    longest = max(gaps)
    assert longest <= 0.001, f"another task waited {longest * 1e3:.2f} ms of CPU time"
    spent = seen[-1] - start
    assert len(gaps) >= spent / 0.001  # it really ran all along, not just at the end


async def test_cancellation_is_delivered_at_the_next_chunk_and_loses_none() -> None:
    stream, response = stream_of([sse_body(100)])
    taken: list[str | None] = []
    async with stream:
        with trio.CancelScope() as scope:
            async for chunk in stream:
                taken.append(chunk.choices[0].delta.content)
                if len(taken) == 3:
                    scope.cancel()
        assert scope.cancelled_caught
        assert taken == ["w0 ", "w1 ", "w2 "]
        rest = [c.choices[0].delta.content async for c in stream]
    assert rest[:2] == ["w3 ", "w4 "]  # the chunk after the cancellation was not lost
    assert response.closed


async def test_a_deadline_ends_the_drain_of_a_buffered_stream() -> None:
    # The deadline is turned into a cancellation by the scheduler: it needs the
    # consumer to yield now and then even though no read is due.
    stream, _ = stream_of([sse_body(EVENTS)])
    got = 0
    async with stream:
        with trio.move_on_after(0.002) as scope:
            async for _ in stream:
                got += 1
    assert scope.cancelled_caught
    assert 0 < got < EVENTS


async def test_other_tasks_run_once_per_read_even_when_reads_never_yield() -> None:
    body = sse_body(30)
    events = [e + b"\n\n" for e in body.split(b"\n\n") if e]  # one event per read
    stream, response = stream_of(events)
    ran = 0
    marks: list[int] = []

    async def other() -> None:
        nonlocal ran
        while True:
            ran += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await trio.lowlevel.checkpoint()
        async with stream:
            async for _ in stream:
                marks.append(ran)
        nursery.cancel_scope.cancel()
    assert len(marks) == 31
    assert response.count >= 31
    # trio runs each runnable task once per batch, in an order it varies, so two chunks
    # may come without the other task between them; over the stream it ran once per read.
    assert marks[-1] - marks[0] >= len(marks) - 2


def test_the_quantum_is_well_under_a_millisecond() -> None:
    assert 0 < YIELD_QUANTUM <= 0.0004  # twice it, plus two chunks, stays under 1 ms
