"""trillm._transport's bounds on what one response may hold (real sockets, real clock):
``max_response_bytes`` for whole bodies and streams, and decompression bombs."""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import math
import os
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest
import trio

from tests.conftest import make_spec, stats
from tests.fakeserver import Reply, Request, open_fake_server, openai_chat_json
from trillm import errors
from trillm._transport import Transport

# ---------------------------------------------------------------- bounded bodies


@functools.cache
def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzip-compressed: ~64 KiB on the wire (1000:1)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return z.compress(bytes(64 * 2**20)) + z.flush()


@contextlib.contextmanager
def peak_memory() -> Iterator[list[int]]:
    """The peak of Python allocations inside the block (bytes), in the list yielded."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


async def test_gzip_bomb_is_refused_without_inflating_it(transport: Transport) -> None:
    # Regression: httpx's aread() inflated a 64 KiB gzip bomb to 64 MiB (+ a joined
    # copy) before anything could look at it; a real one went to 512 MiB and +1 GiB RSS.
    bomb = gzip_bomb()
    reply = Reply(200, [("content-encoding", "gzip")], bomb)
    with trio.fail_after(10):
        async with open_fake_server(lambda req: reply) as server:
            with peak_memory() as peak, pytest.raises(errors.APIError) as info:
                await transport.send(make_spec(server.base_url))
            await server.wait_all_closed()  # the connection was closed, not pooled
            assert transport.statistics() == stats(0, 0)
    assert type(info.value) is errors.APIError  # not a connection error: never retried
    assert "100:1" in str(info.value) and "max_response_bytes=" in str(info.value)
    assert "on the Client" in str(info.value)
    assert peak[0] < 8 * 2**20  # ~1 MiB decoded + one step, never the 64 MiB


async def test_gzip_bomb_in_a_stream_is_refused_without_inflating_it(
    transport: Transport,
) -> None:
    bomb = gzip_bomb()
    parts: list[bytes | float] = [bomb[i:i + 8192] for i in range(0, len(bomb), 8192)]
    reply = Reply(200, [("content-encoding", "gzip")], chunks=parts)
    got = 0
    with trio.fail_after(10):
        async with open_fake_server(lambda req: reply) as server:
            stream = await transport.open_stream(make_spec(server.base_url))
            try:
                with peak_memory() as peak, pytest.raises(errors.APIError, match="100:1"):
                    while chunk := await stream.receive_some():
                        got += len(chunk)
                with pytest.raises(errors.APIError, match="100:1"):  # and on every later read
                    await stream.receive_some()
            finally:
                await stream.aclose()
            await server.wait_all_closed()
            assert transport.statistics() == stats(0, 0)
    assert 2**20 <= got <= 2**20 + 64 * 1024
    assert peak[0] < 8 * 2**20


async def test_max_response_bytes_bounds_whole_bodies() -> None:
    t = Transport(max_response_bytes=10_000)
    text = os.urandom(15_000).hex().encode()  # 30 kB: compresses ~2:1, under the ratio bound

    def handler(req: Request) -> Reply:
        size, coding = req.json()["size"], req.json()["coding"]
        body = text[:size]
        if coding == "gzip":
            return Reply(200, [("content-encoding", "gzip")], gzip.compress(body))
        return Reply(200, [], body)

    try:
        with trio.fail_after(5):
            async with open_fake_server(handler) as server:
                for coding in ("identity", "gzip"):
                    r = await t.send(make_spec(server.base_url, {"size": 10_000, "coding": coding}))
                    assert r.content == text[:10_000]  # the bound itself is allowed
                    with pytest.raises(errors.APIError) as info:
                        await t.send(make_spec(server.base_url, {"size": 30_000, "coding": coding}))
                    assert type(info.value) is errors.APIError
                    assert "max_response_bytes=10,000" in str(info.value)
                    assert "max_response_bytes= to the Client" in str(info.value)
                    assert server.base_url in str(info.value)
                    await server.wait_closed(1 if coding == "identity" else 2)
                    assert t.statistics() == stats(0, 0)
    finally:
        await t.aclose()


async def test_max_response_bytes_bounds_streams_across_reads() -> None:
    t = Transport(max_response_bytes=10_000)
    reply = Reply(200, [("content-type", "text/event-stream")],
                  chunks=[b"x" * 4000, 0.01, b"y" * 4000, 0.01, b"z" * 4000, 0.01, b"w" * 4000])
    try:
        with trio.fail_after(5):
            async with open_fake_server(lambda req: reply) as server:
                stream = await t.open_stream(make_spec(server.base_url))
                got = []
                with pytest.raises(errors.APIError, match="max_response_bytes=10,000") as info:
                    while chunk := await stream.receive_some():
                        got.append(chunk)
                assert type(info.value) is errors.APIError
                assert got == [b"x" * 4000, b"y" * 4000]
                await server.wait_all_closed()  # closed at once, before aclose()
                await stream.aclose()
                assert t.statistics() == stats(0, 0)
    finally:
        await t.aclose()


async def test_deflate_bodies_are_decoded_with_or_without_the_zlib_header(
    transport: Transport,
) -> None:
    body = json.dumps(openai_chat_json("deflated")).encode()
    raw = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    encoded = {"zlib": zlib.compress(body), "raw": raw.compress(body) + raw.flush()}

    def handler(req: Request) -> Reply:
        return Reply(200, [("content-encoding", "deflate")], encoded[req.json()["form"]])

    with trio.fail_after(5):
        async with open_fake_server(handler) as server:
            for form in encoded:
                spec = make_spec(server.base_url, {"form": form})
                assert (await transport.send(spec)).content == body
                stream = await transport.open_stream(spec)
                assert await stream.aread() == body
                await stream.aclose()
            assert transport.statistics() == stats(1, 0)
            assert server.connections_opened == 1


async def test_corrupt_gzip_is_a_decoding_error(transport: Transport) -> None:
    reply = Reply(200, [("content-encoding", "gzip")], b"\x1f\x8b not gzip at all")
    with trio.fail_after(5):
        async with open_fake_server(lambda req: reply) as server:
            with pytest.raises(errors.APIConnectionError, match="could not decode"):
                await transport.send(make_spec(server.base_url))
            assert transport.statistics() == stats(0, 0)


async def test_max_response_bytes_inf_means_no_bound() -> None:
    body = bytes(4 * 2**20)  # 4 MiB of zeros: ~1000:1, past the ratio bound
    t = Transport(max_response_bytes=math.inf)
    reply = Reply(200, [("content-encoding", "gzip")], gzip.compress(body))
    try:
        with trio.fail_after(5):
            async with open_fake_server(lambda req: reply) as server:
                assert (await t.send(make_spec(server.base_url))).content == body
    finally:
        await t.aclose()
    for bad in (0, -1, math.nan):
        with pytest.raises(ValueError, match="max_response_bytes"):
            Transport(max_response_bytes=bad)
