"""The Responses API through the pipeline: recorded payloads answered by trillm.testing's
FakeLLM in memory (``respond()``) on virtual time (autojump MockClock, exact times), the
mock provider, and the checks made before any traffic.  Real sockets are in
tests/test_responses_e2e.py."""

from __future__ import annotations

import gc
import json
import re
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm._response_stream import DRAIN_GRACE
from trillm.testing import FakeLLM

FIXTURES = Path(__file__).parent / "fixtures" / "openai"
NO_JITTER = trillm.RetryPolicy(jitter=0)
MODEL = "openai/gpt-4.1"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def wire_events(name: str = "responses_stream_text.sse") -> list[bytes]:
    """A recorded stream, one element per SSE event (keep-alive comments kept)."""
    return [part + b"\n\n" for part in fixture(name).split(b"\n\n") if part]


def client_for(fake: FakeLLM, **kw: Any) -> trillm.Client:
    kw.setdefault("retry", NO_JITTER)
    return trillm.Client(transport=fake.transport(), api_key="sk-test", **kw)


def streaming(events: list[bytes], gap: float = 0.0, *, hang_after: bool = False,
              head_delay: float = 0.0) -> FakeLLM:
    """A fake that answers every request with *events*, *gap* seconds before each."""
    fake = FakeLLM()
    fake.on().respond(events, chunk_delay=gap, delay=head_delay,
                      then="hang" if hang_after else "end",
                      headers={"content-type": "text/event-stream", "x-request-id": "req_s"})
    return fake


def starts(fake: FakeLLM) -> list[float]:
    return [q.started_at for q in fake.requests]


# ------------------------------------------------------------------ whole answers


async def test_a_plain_call_posts_to_responses_and_parses_the_answer() -> None:
    fake = FakeLLM()
    fake.on().respond(fixture("responses_text.json"), headers={"x-request-id": "req_1"})
    async with client_for(fake) as client:
        r = await client.aresponses(MODEL, "Tell me a story", instructions="Be brief.",
                                    max_output_tokens=100, store=False, temperature=0.5,
                                    reasoning=None)
    assert isinstance(r, trillm.Response)
    assert r.output_text.startswith("In a peaceful grove")
    assert r.headers["x-request-id"] == "req_1"
    (request,) = fake.requests
    assert (request.headers["host"], request.path) == ("api.openai.com", "/v1/responses")
    assert request.sent_secret("authorization", "Bearer sk-test")
    assert json.loads(request.body) == {
        "model": "gpt-4.1", "input": "Tell me a story", "instructions": "Be brief.",
        "max_output_tokens": 100, "store": False, "temperature": 0.5}


async def test_retries_and_fallbacks_work_as_for_chat(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on(model="gpt-4.1").fail(503, body={"error": {"message": "busy"}})
    fake.on().respond(fixture("responses_text.json"))
    async with client_for(fake) as client:
        r = await client.aresponses(MODEL, "x", fallbacks=["openai/gpt-4o"])
    assert r.status == "completed"
    assert [(q.started_at, q.model, q.status) for q in fake.requests] == [
        (0.0, "gpt-4.1", 503), (0.5, "gpt-4.1", 503), (1.5, "gpt-4.1", 503),
        (1.5, "gpt-4o", 200)]


# ------------------------------------------------------------------ streams


async def test_events_arrive_on_virtual_time_and_the_stream_ends_at_completed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = wire_events()
    fake = streaming(events, gap=1, head_delay=2)
    async with client_for(fake) as client:
        async with client.responses_stream(MODEL, "hi") as s:
            assert isinstance(s, trillm.ResponseStream)
            assert trio.current_time() == 2.0  # entered once the headers arrived
            assert s.headers["x-request-id"] == "req_s"
            got = [(trio.current_time(), e.type) async for e in s]
            assert s.closed
            assert s.output_text == "Hi there! How can I help?"
            final = await s.final_response()
        assert client.statistics().open_streams == 0
    assert got[0] == (3.0, "response.created")
    assert got[-1][1] == "response.completed"
    # the keep-alive comment took a gap but is no event
    assert got[-1][0] == 2.0 + len(events)
    assert len(got) == len(events) - 1
    assert final.output_text == "Hi there! How can I help?"
    assert final.headers["x-request-id"] == "req_s"
    assert final.usage is not None and final.usage.total_tokens == 48
    assert fake.requests[0].completed and fake.requests[0].chunks_sent == len(events)


async def test_a_server_that_keeps_the_body_open_after_completed_is_left_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    events = wire_events()
    late = b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta"}\n\n'
    fake = streaming([*events, late], gap=0, hang_after=True)
    async with client_for(fake, idle_timeout=30) as client:
        async with client.responses_stream(MODEL, "hi") as s:
            types = [e.type async for e in s]
            assert s.closed
        assert types[-1] == "response.completed"  # nothing after it
        assert trio.current_time() == DRAIN_GRACE  # not the idle timeout
        assert client.statistics().open_streams == 0
    assert fake.requests[0].cancelled_by_client  # left, not read to the end


async def test_idle_timeout_between_events(autojump_clock: trio.testing.MockClock) -> None:
    fake = streaming(wire_events(), gap=5)
    async with client_for(fake) as client:
        async with client.responses_stream(MODEL, "hi", idle_timeout=4) as s:
            with pytest.raises(errors.Timeout, match="idle_timeout"):
                await s.__anext__()
            assert s.closed
        assert trio.current_time() == 4.0
        assert client.statistics().open_streams == 0
    assert fake.requests[0].cancelled_by_client and fake.requests[0].chunks_sent == 0


async def test_a_stream_is_retried_only_before_its_first_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().fail(429, body={"error": {"message": "slow"}}).respond(
        wire_events(), headers={"content-type": "text/event-stream"})
    async with client_for(fake) as client:
        s = await client.aresponses(MODEL, "hi", stream=True)
        async with s:
            final = await s.final_response()
    assert final.output_text == "Hi there! How can I help?"
    assert [(q.started_at, q.status) for q in fake.requests] == [(0.0, 429), (0.5, 200)]

    # after the first event: a truncated stream and a failed response are never retried
    cut = streaming(wire_events()[:4])
    async with client_for(cut) as client:
        async with client.responses_stream(MODEL, "hi") as s:
            with pytest.raises(errors.StreamError, match="truncated"):
                async for _ in s:
                    pass
    failed = streaming(wire_events("responses_stream_failed.sse"))
    async with client_for(failed) as client:
        async with client.responses_stream(MODEL, "hi") as s:
            with pytest.raises(errors.RateLimitError, match="the response failed"):
                async for _ in s:
                    pass
            assert s.closed
        assert client.statistics().open_streams == 0
    assert (len(cut.requests), len(failed.requests)) == (1, 1)  # one request each


async def test_an_open_stream_holds_its_slot_until_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    order = []
    fake = streaming(wire_events(), gap=1)
    async with client_for(fake, max_concurrency=1) as client:

        async def second() -> None:
            await client.aresponses("mock/x", "hello")
            order.append(("second", trio.current_time()))

        async with trio.open_nursery() as nursery:
            async with client.responses_stream(MODEL, "hi") as s:
                nursery.start_soon(second)
                await trio.sleep(3)
                order.append(("closing", trio.current_time()))
                assert not s.closed
    assert order == [("closing", 3.0), ("second", 3.0)]
    assert fake.requests[0].cancelled_by_client


async def test_final_response_reads_the_rest_and_needs_the_terminal_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with client_for(streaming(wire_events("responses_stream_function_call.sse"),
                                    gap=1)) as client:
        async with client.responses_stream(MODEL, "weather?") as s:
            first = await s.__anext__()
            assert first.type == "response.created"
            final = await s.final_response()
            call = final.output[0]
            assert isinstance(call, trillm.ResponseFunctionCall)
            assert call.name == "get_current_weather"
            assert await s.final_response() == final  # again: the same answer
        async with client.responses_stream(MODEL, "weather?") as s:
            await s.__anext__()
            await s.aclose()
            with pytest.raises(RuntimeError, match="closed before its final event"):
                await s.final_response()


async def test_a_json_answer_to_a_stream_request_is_one_terminal_event() -> None:
    fake = FakeLLM()
    fake.on().respond(fixture("responses_incomplete.json"))
    async with client_for(fake) as client:
        async with client.responses_stream(MODEL, "story") as s:
            events = [e async for e in s]
            final = await s.final_response()
    assert [e.type for e in events] == ["response.incomplete"]
    assert final.status == "incomplete"
    assert final.output_text == "Once upon a time, in a land"
    assert fake.requests[0].stream  # asked for a stream, answered whole


async def test_a_stream_collected_while_open_warns_and_gives_its_slot_back() -> None:
    async with client_for(streaming(wire_events(), hang_after=True)) as client:
        s = await client.aresponses(MODEL, "hi", stream=True)
        assert client.statistics().open_streams == 1
        with pytest.warns(ResourceWarning, match="garbage-collected while open"):
            del s
            gc.collect()
        await trio.testing.wait_all_tasks_blocked()
        assert client.statistics().open_streams == 0


# ------------------------------------------------------------------ the mock


async def test_the_mock_answers_whole_and_streamed(autojump_clock: trio.testing.MockClock) -> None:
    async with trillm.Client() as client:
        r = await client.aresponses("mock/m", [{"role": "user", "content": "one two"}],
                                    mock_latency=2)
        assert (r.output_text, r.status, trio.current_time()) == ("one two", "completed", 2.0)
        times = []
        async with client.responses_stream("mock/m", "a b c", mock_chunk_delay=0.5) as s:
            async for e in s:
                times.append((trio.current_time(), e.type))
        assert times[0] == (2.5, "response.created")
        assert times[-1] == (2.0 + 0.5 * 11, "response.completed")
        assert s.output_text == "a b c"
        r = await client.aresponses("anthropic/claude-x", "hi", mock_response="fixed")
        assert r.output_text == "fixed"  # mock_response answers any model, as for chat


async def test_mock_errors_go_through_the_retry_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trillm.Client(retry=NO_JITTER) as client:
        with pytest.raises(errors.RateLimitError):
            await client.aresponses("mock/x", "hi", mock_response=errors.RateLimitError("slow"))
        assert trio.current_time() == 1.5
        with pytest.raises(errors.InternalServerError):
            await client.aresponses("mock/x", "hi", stream=True, max_retries=0,
                                    mock_response=errors.InternalServerError("down"))


async def test_the_module_level_functions_use_the_default_client() -> None:
    r = await trillm.aresponses("mock/x", "hello world")
    assert r.output_text == "hello world"
    async with trillm.responses_stream("mock/x", "hello stream") as s:
        final = await s.final_response()
    assert final.output_text == "hello stream"
    s2 = await trillm.aresponses("mock/x", "again", stream=True)
    async with s2:
        assert [e.delta async for e in s2 if e.delta] == ["again"]


# ------------------------------------------------------------------ refused before any traffic


@pytest.mark.parametrize("model", ["anthropic/claude-3-5-sonnet-latest", "gemini/gemini-2.0-flash"])
async def test_anthropic_and_gemini_say_to_use_acompletion(model: str) -> None:
    fake = FakeLLM()
    async with client_for(fake) as client:
        with trio.testing.assert_checkpoints(), \
                pytest.raises(errors.BadRequestError, match=r"use trillm\.acompletion") as info:
            await client.aresponses(model, "hi")
    assert "Responses API" in str(info.value)
    assert fake.requests == []  # nothing sent


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"input": ""}, "input must be"),
    ({"input": []}, "input must be"),
    ({"input": 7}, "input must be"),
    ({"input": b"bytes"}, "input must be"),
    ({"input": ["a string item"]}, r"input\[0\] must be an input item"),
    ({"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]},
     re.escape("flat form: {'type': 'function', 'name': 'get_weather'")),
    ({"tools": [{"type": "function", "parameters": {}}]}, "without a name"),
    ({"tools": "get_weather"}, "tools must be a list"),
    ({"tools": ["x"]}, r"tools\[0\] must be a dict"),
    ({"text_format": dict}, "text_format takes a pydantic model class"),
    ({"text_format": {"type": "json_schema"}}, "text_format takes a pydantic model class"),
    ({"timeout": -1}, "timeout must be"),
])
async def test_bad_arguments_are_refused_before_any_traffic(
    kwargs: dict[str, Any], match: str
) -> None:
    kwargs.setdefault("input", "hi")
    fake = FakeLLM()
    async with client_for(fake) as client:
        with trio.testing.assert_checkpoints(), pytest.raises(errors.BadRequestError,
                                                               match=match):
            await client.aresponses(MODEL, **kwargs)
    assert fake.requests == []  # nothing sent


async def test_output_items_and_records_are_sent_back_as_input_items() -> None:
    fake = FakeLLM()
    fake.on().respond(fixture("responses_function_call.json"))

    tools = [{"type": "function", "name": "get_current_weather", "parameters": {}},
             {"type": "web_search_preview"}]
    async with client_for(fake) as client:
        r = await client.aresponses(MODEL, "weather?", tools=tools)
        call = r.output[0]
        assert isinstance(call, trillm.ResponseFunctionCall)
        items = [{"role": "user", "content": "weather?"}, *r.output,
                 {"type": "function_call_output", "call_id": call.call_id, "output": "21 C"}]
        await client.aresponses(MODEL, items, tools=tools)
    bodies = [json.loads(q.body) for q in fake.requests]
    assert bodies[0]["tools"] == tools
    sent = bodies[1]["input"]
    assert sent[1] == json.loads(fixture("responses_function_call.json"))["output"][0]
    assert sent[2]["call_id"] == "call_unLAR8MvFNptuiZK6K6HCy5k"


async def test_misusing_responses_stream_says_how() -> None:
    async with trillm.Client() as client:
        opener = client.responses_stream("mock/x", "hi")
        with pytest.raises(TypeError, match=r"async with client\.responses_stream"):
            await opener  # type: ignore[misc]
        with pytest.raises(TypeError, match=r"async with trillm\.responses_stream"):
            async for _ in trillm.responses_stream("mock/x", "hi"):  # type: ignore[attr-defined]
                pass
