"""``RedisRateStore`` against a real ``redis-server`` (and ``valkey-server`` when installed).

Each test starts its own server on a free 127.0.0.1 port (tests/redis_server.py) and
stops it after; the real clock runs, every test under ``trio.fail_after``.  Times
come from the server's clock, so waits are checked within a few milliseconds.
"""

from __future__ import annotations

import gc
import itertools
import logging
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import coredis
import pytest
import trio

import trillm
from tests.redis_server import NO_SERVER, RedisServer, server_binaries
from trillm import errors
from trillm.limits import REQUESTS, TOKENS, RateLimit, RateLimiter
from trillm.redis import RedisRateStore
from trillm.retry import is_retryable
from trillm.testing import FakeLLM

BINARIES = server_binaries()
pytestmark = pytest.mark.skipif(not BINARIES, reason=NO_SERVER)
SLACK = 0.03  # seconds a round trip on loopback may take, with scheduling noise
MSGS = [{"role": "user", "content": "x"}]


@pytest.fixture(params=BINARIES or ["none"], ids=lambda b: Path(b).name)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(request.param, tmp_path)
    try:
        yield srv
    finally:
        srv.stop()
        gc.collect()  # whatever a test left unclosed warns now, inside it


def store_for(server: RedisServer, **kw: object) -> RedisRateStore:
    store = RedisRateStore(server.url, **kw)  # type: ignore[arg-type]
    store.configure("k", RateLimit(rpm=600))  # 0.1 s per request
    return store


async def test_bookings_are_paced_on_the_server(server: RedisServer) -> None:
    with trio.fail_after(10):
        store = store_for(server)
        begin = trio.current_time()
        waits = [await store.reserve("k", {REQUESTS: 1}, math.inf) for _ in range(5)]
        elapsed = trio.current_time() - begin
        assert all(w is not None for w in waits)
        for i, w in enumerate(waits):  # slot i is 0.1 * i after the first booking
            assert i * 0.1 - elapsed - SLACK <= w <= i * 0.1 + SLACK  # type: ignore[operator]
        await store.aclose()


async def test_two_workers_share_one_schedule(server: RedisServer) -> None:
    # Two stores are two workers: their bookings interleave on one schedule.
    with trio.fail_after(10):
        a, b = store_for(server), store_for(server)
        starts = []
        for store in (a, b, a, b):
            wait = await store.reserve("k", {REQUESTS: 1}, math.inf)
            assert wait is not None
            starts.append(trio.current_time() + wait)
        gaps = [y - x for x, y in itertools.pairwise(starts)]
        assert gaps == pytest.approx([0.1, 0.1, 0.1], abs=SLACK)
        other = store_for(server, prefix="elsewhere")  # another prefix: another schedule
        assert await other.reserve("k", {REQUESTS: 1}, math.inf) == 0


async def test_reserve_many_books_every_key_at_the_slowest_slot(server: RedisServer) -> None:
    with trio.fail_after(10):
        store = RedisRateStore(server.url)
        store.configure("p/a", RateLimit(rpm=600))  # 0.1 s
        store.configure("p", RateLimit(rpm=200))  # 0.3 s
        await store.reserve_many(["warm"], {}, math.inf)  # connected, the script loaded
        t0 = trio.current_time()
        assert await store.reserve_many(["p/a", "p"], {REQUESTS: 1}, math.inf) == 0
        second = await store.reserve_many(["p/a", "p"], {REQUESTS: 1}, math.inf)
        assert second == pytest.approx(0.3 - (trio.current_time() - t0), abs=SLACK)
        # "p/a" was booked at 0.3 s too, so its next slot is 0.4 s, not 0.2 s
        alone = await store.reserve("p/a", {REQUESTS: 1}, math.inf)
        assert alone == pytest.approx(0.4 - (trio.current_time() - t0), abs=SLACK)


async def test_a_refusal_books_nothing_on_any_key(server: RedisServer) -> None:
    with trio.fail_after(10):
        store = RedisRateStore(server.url)
        store.configure("m", RateLimit(rpm=600))  # 0.1 s
        store.configure("p", RateLimit(rpm=6))  # 10 s
        await store.reserve_many(["warm"], {}, math.inf)  # connected, the script loaded
        t0 = trio.current_time()
        assert await store.reserve_many(["m", "p"], {REQUESTS: 1}, 0) == 0
        assert await store.reserve_many(["m", "p"], {REQUESTS: 1}, 5.0) is None
        wait = await store.reserve("m", {REQUESTS: 1}, math.inf)
        assert wait == pytest.approx(0.1 - (trio.current_time() - t0), abs=SLACK)


async def test_a_pause_by_one_worker_holds_every_worker(server: RedisServer) -> None:
    with trio.fail_after(10):
        a, b = store_for(server), store_for(server)
        assert await b.reserve_many(["k"], {}, math.inf) == 0  # a probe: not paused
        await a.pause("k", 0.5)
        left = await b.reserve_many(["k", "never-configured"], {}, math.inf)
        assert left == pytest.approx(0.5, abs=SLACK)
        wait = await b.reserve("k", {REQUESTS: 1}, math.inf)
        assert wait == pytest.approx(0.5, abs=SLACK)
        # through the limiter: worker b's request goes when worker a's pause ends
        limiter = RateLimiter({"k": RateLimit(rpm=600)}, b)
        await a.pause("k", 0.4)
        begin = trio.current_time()
        res = await limiter.acquire(["k"], 0)
        assert res.waited == pytest.approx(0.6, abs=SLACK)  # behind the booking above
        assert trio.current_time() - begin == pytest.approx(0.6, abs=SLACK)


async def test_giving_back_undoes_the_latest_booking_exactly(server: RedisServer) -> None:
    with trio.fail_after(10):
        store = store_for(server)
        await store.reserve_many(["warm"], {}, math.inf)  # connected, the script loaded
        t0 = trio.current_time()
        for _ in range(3):
            await store.reserve("k", {REQUESTS: 1, TOKENS: 5}, math.inf)
        await store.adjust("k", {REQUESTS: -1, TOKENS: -5})  # the one at 0.2 s
        wait = await store.reserve("k", {REQUESTS: 1}, math.inf)
        assert wait == pytest.approx(0.2 - (trio.current_time() - t0), abs=SLACK)


async def test_tokens_are_paced_and_corrected(server: RedisServer) -> None:
    with trio.fail_after(10):
        store = RedisRateStore(server.url)
        store.configure("t", RateLimit(tpm=60_000))  # 1 ms per token, a 1-token bucket
        await store.reserve_many(["warm"], {}, math.inf)  # connected, the script loaded
        t0 = trio.current_time()
        assert await store.reserve("t", {REQUESTS: 1, TOKENS: 200}, math.inf) == 0
        wait = await store.reserve("t", {REQUESTS: 1, TOKENS: 100}, math.inf)
        assert wait == pytest.approx(0.2 - (trio.current_time() - t0), abs=SLACK)
        await store.adjust("t", {TOKENS: 300})  # the usage was larger than the estimate
        wait = await store.reserve("t", {REQUESTS: 1, TOKENS: 0}, math.inf)
        assert wait == pytest.approx(0.6 - (trio.current_time() - t0), abs=SLACK)


async def test_keys_carry_the_prefix_as_a_hash_tag_and_expire(server: RedisServer) -> None:
    with trio.fail_after(10):
        store = store_for(server, prefix="jobs")
        await store.reserve_many(["k", "p"], {REQUESTS: 1}, math.inf)
        async with coredis.Redis.from_url(server.url, decode_responses=True) as raw:
            keys = sorted(await raw.keys("*"))
            assert keys == ["{jobs}:rate:k", "{jobs}:rate:k:queue",
                            "{jobs}:rate:p", "{jobs}:rate:p:queue"]
            for key in keys:
                assert 0 < await raw.pttl(key) <= 61_000


async def test_the_limiter_over_redis_books_once_per_request(server: RedisServer) -> None:
    with trio.fail_after(10):
        store = RedisRateStore(server.url)
        limiter = RateLimiter({"p/a": RateLimit(rpm=600), "p": RateLimit(rpm=300)}, store)
        await store.reserve_many(["warm"], {}, math.inf)  # connected, the script loaded
        begin = trio.current_time()
        starts = []
        for _ in range(4):
            res = await limiter.acquire(["p/a", "p"], 10)
            starts.append(res.start - begin)
        assert starts == pytest.approx([0, 0.2, 0.4, 0.6], abs=SLACK)
        async with coredis.Redis.from_url(server.url) as raw:
            stats = await raw.info("commandstats")
        # four bookings and, after each wait, one pause probe: no undo-and-rebook (the
        # first call answered NOSCRIPT, then the script was loaded once)
        assert stats["cmdstat_evalsha"]["calls"] == 1 + 1 + 4 + 3  # the warm-up's, too
        assert stats["cmdstat_script|load"]["calls"] == 1
        # a token correction on keys without a tpm limit changes nothing: no round trip
        await res.settle(25)
        async with coredis.Redis.from_url(server.url) as raw:
            stats = await raw.info("commandstats")
        assert stats["cmdstat_evalsha"]["calls"] == 1 + 1 + 4 + 3


async def test_a_429_in_one_client_holds_back_the_other(server: RedisServer) -> None:
    store = RedisRateStore(server.url)
    limits = {"openai/gpt-4o-mini": trillm.RateLimit(rpm=6000)}
    provider_a, provider_b = FakeLLM(), FakeLLM()
    provider_a.on().fail(429, headers={"retry-after-ms": "500"},
                         body={"error": {"message": "slow down", "type": "requests"}})
    provider_b.on().reply("ok")
    a = trillm.Client(transport=provider_a.transport(), api_key="sk-test",
                      rate_limits=limits, rate_store=store, max_retries=0)
    b = trillm.Client(transport=provider_b.transport(), api_key="sk-test",
                      rate_limits=limits, rate_store=store)
    with trio.fail_after(10):
        async with a, b:
            await store.reserve_many(["warm"], {}, math.inf)  # connected, the script loaded
            begin = trio.current_time()
            with pytest.raises(errors.RateLimitError):
                await a.acompletion("openai/gpt-4o-mini", MSGS)
            await b.acompletion("openai/gpt-4o-mini", MSGS)
    (sent_by_b,) = provider_b.requests
    assert sent_by_b.started_at - begin == pytest.approx(0.5, abs=SLACK)


async def test_clients_in_one_run_share_the_store(server: RedisServer) -> None:
    limits = {"mock/echo": trillm.RateLimit(rpm=600)}
    store = RedisRateStore(server.url)
    starts: list[float] = []

    async def worker() -> None:
        async with trillm.Client(rate_limits=limits, rate_store=store) as client:
            for _ in range(3):
                await client.acompletion("mock/echo", MSGS)
                starts.append(trio.current_time())

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker)
            nursery.start_soon(worker)
    starts.sort()
    assert [t - starts[0] for t in starts] == pytest.approx(
        [0, 0.1, 0.2, 0.3, 0.4, 0.5], abs=SLACK)


# -- failures ------------------------------------------------------------------------------


async def test_a_dead_store_fails_the_call_naming_the_store(server: RedisServer) -> None:
    store = store_for(server, timeout=0.5)
    with trio.fail_after(10):
        assert await store.reserve("k", {REQUESTS: 1}, math.inf) == 0
        server.kill()
        with pytest.raises(errors.RateStoreError) as info:
            await store.reserve("k", {REQUESTS: 1}, math.inf)
        assert f"127.0.0.1:{server.port}" in str(info.value)
        assert "prefix 'trillm'" in str(info.value)
        assert info.value.__cause__ is not None
        assert not is_retryable(info.value)
        # corrections never raise: nothing to fail that was not already sent
        await store.adjust("k", {TOKENS: 5})
        await store.pause("k", 1)
        # the store comes back: the next call reconnects
        server.start()
        assert await store.reserve("k", {REQUESTS: 1}, math.inf) is not None


async def test_a_dead_store_fails_a_client_call_without_retrying(server: RedisServer) -> None:
    store = RedisRateStore(server.url, timeout=0.5)
    sent = 0

    async with trillm.Client(rate_limits={"mock/echo": trillm.RateLimit(rpm=600)},
                             rate_store=store, max_retries=3) as client:
        with trio.fail_after(10):
            await client.acompletion("mock/echo", MSGS)
            sent += 1
            server.kill()
            with pytest.raises(errors.RateStoreError, match="rate-limit store at redis://"):
                await client.acompletion("mock/echo", MSGS)
    assert sent == 1


async def test_allow_sends_unpaced_and_warns_once(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_for(server, on_store_error="allow", timeout=0.5)
    with trio.fail_after(10):
        await store.reserve("k", {REQUESTS: 1}, math.inf)
        server.kill()
        with caplog.at_level(logging.WARNING, logger="trillm"):
            waits = [await store.reserve("k", {REQUESTS: 1}, math.inf) for _ in range(5)]
            assert waits == [0.0] * 5  # unpaced
            assert await store.reserve_many(["k"], {}, math.inf) == 0.0  # not paused
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once per outage, not once per request
        assert "goes unpaced" in warnings[0].getMessage()
        assert f"127.0.0.1:{server.port}" in warnings[0].getMessage()
        server.start()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="trillm"):
            assert await store.reserve("k", {REQUESTS: 1}, math.inf) == 0  # a fresh server
        assert "answers again" in caplog.records[0].getMessage()


async def test_a_stuck_store_never_hangs_a_call(server: RedisServer) -> None:
    store = store_for(server, timeout=0.3)
    with trio.fail_after(10):
        assert await store.reserve("k", {REQUESTS: 1}, math.inf) == 0
        server.pause()  # SIGSTOP: connected, but no answer ever comes
        try:
            begin = trio.current_time()
            with pytest.raises(errors.RateStoreError, match=r"no answer within 0.3 s"):
                await store.reserve("k", {REQUESTS: 1}, math.inf)
            assert trio.current_time() - begin == pytest.approx(0.3, abs=0.1)
            begin = trio.current_time()
            await store.pause("k", 1)  # dropped after the time limit, not raised
            assert trio.current_time() - begin == pytest.approx(0.3, abs=0.1)
        finally:
            server.resume()
        assert await store.reserve("k", {REQUESTS: 1}, math.inf) is not None


async def test_a_store_that_never_answered_fails_within_its_timeout(tmp_path: Path) -> None:
    from tests.redis_server import free_port

    store = RedisRateStore(f"redis://127.0.0.1:{free_port()}", timeout=0.5)
    store.configure("k", RateLimit(rpm=60))
    with trio.fail_after(5):
        with pytest.raises(errors.RateStoreError, match="during a booking"):
            await store.reserve_many(["k"], {REQUESTS: 1}, math.inf)
        with pytest.raises(errors.RateStoreError, match="during a pause check"):
            await store.reserve_many(["k"], {}, math.inf)
    # Regression: coredis left each failed connection's six memory streams open, and
    # each warned (ResourceWarning, an error here) when collected.
    gc.collect()


# -- no server needed ----------------------------------------------------------------------


def test_the_name_never_shows_a_password() -> None:
    store = RedisRateStore("redis://app:s3cret-pw@cache.internal:6380/2", prefix="jobs")
    assert "s3cret-pw" not in store.name and "s3cret-pw" not in repr(store)
    assert "redis://app:***@cache.internal:6380/2" in store.name
    assert "s3cret" not in RedisRateStore("redis://:s3cret@h:1").name


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match='"fail" or "allow"'):
        RedisRateStore("redis://h", on_store_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="braces"):
        RedisRateStore("redis://h", prefix="{x}")
    with pytest.raises(ValueError, match="timeout"):
        RedisRateStore("redis://h", timeout=math.inf)
    with pytest.raises(TypeError, match="URL"):
        RedisRateStore("")


async def test_bad_costs_are_refused_before_any_traffic() -> None:
    store = RedisRateStore("redis://127.0.0.1:1")  # nothing listens there; never reached
    with pytest.raises(ValueError, match="cost of 'tokens'"):
        await store.reserve("k", {TOKENS: -1}, math.inf)
    with pytest.raises(ValueError, match="delta of 'tokens'"):
        await store.adjust("k", {TOKENS: math.nan})
    with pytest.raises(ValueError, match="pause seconds"):
        await store.pause("k", -1)
    with pytest.raises(TypeError, match="not one string"):
        await store.reserve_many("k", {REQUESTS: 1}, math.inf)


def test_without_coredis_the_import_says_what_to_install() -> None:
    code = ("import sys\nsys.modules['coredis'] = None\n"
            "try:\n    import trillm.redis\nexcept ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
                         check=True, timeout=60)
    assert "pip install 'trillm[redis]'" in out.stdout
