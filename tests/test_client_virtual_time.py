"""The Client's timing promises on virtual time: autojump MockClock + in-memory transport.

Scripted answers come from trillm.testing's FakeLLM in memory.
Every test asserts exact virtual times.  No real socket is ever opened here
(autojump would jump the clock while real I/O is in flight).
"""

from __future__ import annotations

import json
import math

import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.testing import FakeLLM

MSGS = [{"role": "user", "content": "x"}]
NO_JITTER = trillm.RetryPolicy(jitter=0)


def kit_client(fake: FakeLLM, **kw: object) -> trillm.Client:
    """A Client answered by *fake* in memory (trillm.testing), retries without jitter."""
    kw.setdefault("retry", NO_JITTER)
    return trillm.Client(transport=fake.transport(), api_key="sk-test", **kw)  # type: ignore[arg-type]


def starts(fake: FakeLLM) -> list[float]:
    """When each request reached the fake (virtual seconds)."""
    return [q.started_at for q in fake.requests]


async def test_429_retry_after_then_success(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().fail(429, retry_after=7).fail(429, retry_after=7).reply("hi")
    async with kit_client(fake, max_retries=3) as client:
        r = await client.acompletion("openai/gpt-4o-mini", MSGS)
    assert r.choices[0].message.content == "hi"
    assert starts(fake) == [0.0, 7.0, 14.0]


async def test_retry_after_ms_and_http_date(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().fail(503, headers={"retry-after-ms": "1500"}).fail(429, headers={
        "date": "Wed, 21 Oct 2026 07:28:00 GMT",
        "retry-after": "Wed, 21 Oct 2026 07:28:04 GMT"}).reply("ok")
    async with kit_client(fake, max_retries=2) as client:
        r = await client.acompletion("openai/gpt-4o-mini", MSGS)
    assert r.choices[0].message.content == "ok"
    assert starts(fake) == [0.0, 1.5, 5.5]  # 1.5 s, then 4 s after the answer's own Date


async def test_500_storm_until_retries_run_out(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().fail(500)
    async with kit_client(fake, max_retries=4) as client:
        with pytest.raises(errors.InternalServerError) as info:
            await client.acompletion("openai/gpt-4o-mini", MSGS)
    assert info.value.status_code == 500
    # back-off 0.5, 1, 2, 4: growing, exact without jitter
    assert starts(fake) == [0.0, 0.5, 1.5, 3.5, 7.5]


async def test_default_is_two_retries_with_jittered_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().fail(502)
    async with trillm.Client(transport=fake.transport(), api_key="k") as client:
        with pytest.raises(errors.InternalServerError):
            await client.acompletion("openai/gpt-4o-mini", MSGS)
    seen = starts(fake)
    assert len(seen) == 3
    first, second = seen[1] - seen[0], seen[2] - seen[1]
    assert 0.375 <= first <= 0.5
    assert 0.75 <= second <= 1.0


async def test_long_retry_after_is_raised_at_once(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().fail(429, retry_after=120)
    async with kit_client(fake) as client:
        with pytest.raises(errors.RateLimitError) as info:
            await client.acompletion("openai/gpt-4o-mini", MSGS)
    assert len(fake.requests) == 1
    assert info.value.retry_after == 120.0
    assert trio.current_time() == 0.0


async def test_x_should_retry_header_decides_first(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().fail(500, headers={"x-should-retry": "false"}).fail(
        400, headers={"x-should-retry": "true"}).reply("ok")
    async with kit_client(fake) as client:
        with pytest.raises(errors.InternalServerError):
            await client.acompletion("openai/gpt-4o-mini", MSGS)  # 500 + "false": no retry
        assert starts(fake) == [0.0]
        r = await client.acompletion("openai/gpt-4o-mini", MSGS)  # 400 + "true": retried
    assert r.choices[0].message.content == "ok"
    assert starts(fake) == [0.0, 0.0, 0.5]
    assert [q.status for q in fake.requests] == [500, 400, 200]


async def test_4xx_is_not_retried(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().fail(401)
    async with kit_client(fake) as client:
        with pytest.raises(errors.AuthenticationError):
            await client.acompletion("openai/gpt-4o-mini", MSGS)
    assert len(fake.requests) == 1


async def test_per_attempt_timeout_is_a_cancel_scope(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().hang()
    async with kit_client(fake, max_retries=1) as client:
        with pytest.raises(errors.Timeout) as info:
            await client.acompletion("openai/gpt-4o-mini", MSGS, timeout=10)
        assert client.statistics().requests_in_flight == 0
    assert isinstance(info.value, TimeoutError)
    assert starts(fake) == [0.0, 10.5]
    assert all(q.cancelled_by_client for q in fake.requests)
    assert trio.current_time() == 20.5


async def test_total_deadline_across_retries(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().hang()
    async with kit_client(fake, max_retries=5) as client:
        with pytest.raises(errors.Timeout, match="deadline"):
            await client.acompletion("openai/gpt-4o-mini", MSGS, timeout=10, deadline=25)
    assert starts(fake) == [0.0, 10.5, 21.5]
    assert trio.current_time() == 25.0


async def test_deadline_stops_a_backoff_that_would_end_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().fail(429, retry_after=30)
    async with kit_client(fake) as client:
        with pytest.raises(errors.RateLimitError):
            await client.acompletion("openai/gpt-4o-mini", MSGS, deadline=20)
    assert trio.current_time() == 0.0


async def test_limiter_slot_is_free_during_backoff(autojump_clock: trio.testing.MockClock) -> None:
    done: dict[str, float] = {}
    fake = FakeLLM()
    fake.on(when=lambda r: r.text == "a").fail(429, retry_after=5).times(1)
    fake.on().reply(delay=1)  # the echo, after 1 s

    async with kit_client(fake, max_concurrency=1) as client:

        async def ask(text: str, start_at: float) -> None:
            await trio.sleep(start_at)
            await client.acompletion("openai/gpt-4o-mini", [{"role": "user", "content": text}])
            done[text] = trio.current_time()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "a", 0)
            nursery.start_soon(ask, "b", 0.1)
    # b ran (0.1 -> 1.1) while a slept on its back-off (0 -> 5); a then took 1 s
    assert done == {"b": 1.1, "a": 6.0}


async def test_caller_cancellation_is_not_converted_or_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().hang()
    async with kit_client(fake, max_retries=5) as client:
        with trio.move_on_after(3) as scope:
            await client.acompletion("openai/gpt-4o-mini", MSGS, timeout=10)
        assert client.statistics().requests_in_flight == 0
    assert scope.cancelled_caught
    (request,) = fake.requests
    assert request.cancelled_by_client
    assert trio.current_time() == 3.0


async def test_limiter_wait_counts_against_deadline_not_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().reply("ok", delay=4)
    async with kit_client(fake, max_concurrency=1) as client:
        async with trio.open_nursery() as nursery:
            for _ in range(3):  # each waits its turn: 4, 8, 12 s; timeout=5 applies on the wire
                nursery.start_soon(lambda: client.acompletion("openai/gpt-4o-mini", MSGS,
                                                              timeout=5))
        assert trio.current_time() == 12.0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.acompletion, "openai/gpt-4o-mini", MSGS)  # holds 12 -> 16
            await trio.sleep(0.1)
            with pytest.raises(errors.Timeout, match="deadline"):
                await client.acompletion("openai/gpt-4o-mini", MSGS, deadline=3)
            assert trio.current_time() == 15.1


# ------------------------------------------------------------------ streams


async def test_stream_chunks_arrive_on_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().stream(["a", "b", "c"], delay=2, headers_delay=1)
    times = []
    async with kit_client(fake) as client:
        async with client.stream("openai/gpt-4o-mini", MSGS) as s:
            assert trio.current_time() == 1.0  # entered after the headers
            async for chunk in s:
                if chunk.choices[0].delta.content:
                    times.append((trio.current_time(), chunk.choices[0].delta.content))
        assert client.statistics().open_streams == 0
    assert times == [(3.0, "a"), (5.0, "b"), (7.0, "c")]
    assert fake.requests[0].completed


async def test_stream_idle_timeout_per_chunk(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().stream(["a", "b"], delay=5)
    async with kit_client(fake) as client:
        async with client.stream("openai/gpt-4o-mini", MSGS, idle_timeout=4) as s:
            with pytest.raises(errors.Timeout, match="idle_timeout"):
                await s.__anext__()
            assert s.closed
        assert trio.current_time() == 4.0
        assert client.statistics().open_streams == 0
    assert fake.requests[0].cancelled_by_client


async def test_stream_deadline_bounds_the_whole_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().stream(["a", "b", "c", "d"], delay=3)
    got = []
    async with kit_client(fake) as client:
        with pytest.raises(errors.Timeout, match="deadline"):
            async with client.stream("openai/gpt-4o-mini", MSGS, deadline=10,
                                     idle_timeout=4) as s:
                async for chunk in s:
                    if chunk.choices[0].delta.content:
                        got.append(chunk.choices[0].delta.content)
    assert got == ["a", "b", "c"]
    assert trio.current_time() == 10.0
    assert fake.requests[0].chunks_sent == 3 and fake.requests[0].cancelled_by_client


async def test_stream_status_error_is_retried_before_first_chunk(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().fail(503).stream(["x"])
    async with kit_client(fake) as client:
        s = await client.acompletion("openai/gpt-4o-mini", MSGS, stream=True)
        async with s:
            text = [c.choices[0].delta.content async for c in s]
    assert [t for t in text if t] == ["x"]
    assert starts(fake) == [0.0, 0.5]


async def test_stream_holds_its_slot_until_closed(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().stream(["a", "b"], delay=1)
    async with kit_client(fake, max_concurrency=1) as client:
        order = []

        async def second() -> None:
            await client.acompletion("mock/x", MSGS)
            order.append(("second", trio.current_time()))

        async with trio.open_nursery() as nursery:
            async with client.stream("openai/gpt-4o-mini", MSGS) as s:
                nursery.start_soon(second)
                await trio.sleep(5)
                order.append(("stream-closing", trio.current_time()))
                assert s.closed is False
        assert order == [("stream-closing", 5.0), ("second", 5.0)]


async def test_a_freed_slot_goes_to_the_call_queued_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A free slot is taken without waiting (no cancel scope); one given back goes to the
    # call that queued first, not to a call arriving just as it is freed.
    fake = FakeLLM()
    fake.on().stream(["a"])
    async with kit_client(fake, max_concurrency=1) as client:
        done = []

        async def call(name: str, after: float) -> None:
            await trio.sleep(after)
            await client.acompletion("mock/x", MSGS, mock_latency=1)
            done.append((name, trio.current_time()))

        async with trio.open_nursery() as nursery:
            async with client.stream("openai/gpt-4o-mini", MSGS):
                assert trio.current_time() == 0.0
                nursery.start_soon(call, "queued", 1)
                await trio.sleep(5)
            nursery.start_soon(call, "late", 0)  # arrives as the stream's slot is freed
    assert done == [("queued", 6.0), ("late", 7.0)]


# ------------------------------------------------------------------ mock provider


async def test_mock_latency_chunk_delay_and_timeout(autojump_clock: trio.testing.MockClock) -> None:
    async with trillm.Client() as client:
        r = await client.acompletion("mock/echo", [{"role": "user", "content": "one two"}],
                                     mock_latency=2)
        assert r.choices[0].message.content == "one two"
        assert trio.current_time() == 2.0
        times = []
        async with client.stream("mock/echo", [{"role": "user", "content": "a b c"}],
                                 mock_chunk_delay=0.5) as s:
            async for _ in s:
                times.append(trio.current_time())
        assert times == [2.5, 3.0, 3.5, 4.0]
        with pytest.raises(errors.Timeout):
            await client.acompletion("mock/x", MSGS, mock_latency=100, timeout=1, max_retries=0)
        assert trio.current_time() == 5.0


async def test_mock_error_goes_through_the_retry_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trillm.Client(retry=NO_JITTER) as client:
        with pytest.raises(errors.RateLimitError):
            await client.acompletion("mock/x", MSGS, mock_response=errors.RateLimitError("slow"))
        assert trio.current_time() == 1.5  # attempts at 0, 0.5, 1.5
        with pytest.raises(errors.BadRequestError):
            await client.acompletion("mock/x", MSGS, mock_response=errors.BadRequestError("no"))
        assert trio.current_time() == 1.5


async def test_every_public_call_is_a_checkpoint() -> None:
    async with trillm.Client() as client:
        with trio.testing.assert_checkpoints():
            await client.acompletion("mock/x", MSGS)
        with trio.testing.assert_checkpoints(), pytest.raises(errors.BadRequestError):
            await client.acompletion("mock/x", [])
        with trio.testing.assert_checkpoints(), pytest.raises(errors.BadRequestError):
            await client.acompletion("nosuchprovider/x", MSGS)
        async with client.stream("mock/x", MSGS) as s:
            with trio.testing.assert_checkpoints():
                await s.__anext__()


async def test_cancelled_loop_of_mock_calls_stops() -> None:
    count = 0
    async with trillm.Client() as client:
        with trio.move_on_after(0.05):
            while True:
                await client.acompletion("mock/x", MSGS)
                count += 1
    assert count > 0


async def test_infinite_limits_are_accepted(autojump_clock: trio.testing.MockClock) -> None:
    async with trillm.Client(timeout=math.inf, deadline=math.inf) as client:
        r = await client.acompletion("mock/x", MSGS, mock_latency=10_000)
    assert r.choices[0].message.content == "x"


async def test_calls_through_an_in_memory_transport_are_checkpoints() -> None:
    fake = FakeLLM()
    async with kit_client(fake) as client:
        with trio.testing.assert_checkpoints():
            await client.acompletion("openai/gpt-4o-mini", MSGS)
        with trio.testing.assert_checkpoints():
            s = await client.acompletion("openai/gpt-4o-mini", MSGS, stream=True)
        await s.aclose()
    assert len(fake.requests) == 2


async def test_headers_per_call_and_drop_params_never_reach_the_body() -> None:
    fake = FakeLLM()
    async with kit_client(fake, headers={"x-team": "a", "x-org": "o"}) as client:
        await client.acompletion("openai/gpt-4o-mini", MSGS, headers={"x-team": "b"},
                                 extra_headers={"x-extra": "e"}, drop_params=True)
    (sent,) = fake.requests
    assert (sent.headers["x-team"], sent.headers["x-org"], sent.headers["x-extra"]) == (
        "b", "o", "e")
    body = json.loads(sent.body)
    assert "headers" not in body and "drop_params" not in body


async def test_a_changed_key_variable_is_seen_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeLLM()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-first")
    async with trillm.Client(transport=fake.transport()) as client:
        await client.acompletion("openai/gpt-4o-mini", MSGS)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-second")
        await client.acompletion("openai/gpt-4o-mini", MSGS)
    first, second = fake.requests
    assert first.sent_secret("authorization", "Bearer sk-first")
    assert second.sent_secret("authorization", "Bearer sk-second")


async def test_a_key_read_from_a_file_is_sent_without_its_newline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeLLM()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-file\n")
    async with trillm.Client(transport=fake.transport()) as client:
        await client.acompletion("openai/gpt-4o-mini", MSGS, api_key="sk-from-a-file-123\n")
        await client.acompletion("openai/gpt-4o-mini", MSGS)
        first, second = fake.requests
        assert first.sent_secret("authorization", "Bearer sk-from-a-file-123")
        assert second.sent_secret("authorization", "Bearer sk-from-env-file")
        with pytest.raises(errors.AuthenticationError, match="from api_key= contains") as info:
            await client.acompletion("openai/gpt-4o-mini", MSGS, api_key="sk-SECRET\nPART")
    assert len(fake.requests) == 2  # refused before any traffic
    assert "SECRET" not in str(info.value) and "PART" not in str(info.value)
