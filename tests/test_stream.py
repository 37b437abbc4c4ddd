"""``Stream`` on its own: the generator protocol, laziness, closing, and the accumulator."""

from __future__ import annotations

import collections.abc
import gc
import json
import warnings
import weakref
from pathlib import Path

import pytest
import trio

import trillm
from trillm import errors
from trillm._stream import HTTPChunkSource, Stream
from trillm.providers.openai import OpenAIStreamParser
from trillm.sse import SSEEvent
from trillm.types import StreamChunk

MSGS = [{"role": "user", "content": "one two three"}]


def sse_body(n: int) -> bytes:
    head = b'data: {"id":"c","created":1,"model":"m","choices":'
    events = [head + b'[{"index":0,"delta":{"content":"w%d "}}]}\n\n' % i for i in range(n)]
    events.append(b'data: {"id":"c","created":1,"model":"m","choices":'
                  b'[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    return b"".join(events)


class OneRead:
    """A response whose whole body arrives in one read."""

    def __init__(self, body: bytes) -> None:
        self.body, self.closed = body, False

    async def receive_some(self) -> bytes:
        await trio.lowlevel.checkpoint()
        body, self.body = self.body, b""
        return body

    async def aclose(self) -> None:
        self.closed = True


class CountingParser(OpenAIStreamParser):
    __slots__ = ("calls",)

    def __init__(self) -> None:
        super().__init__("openai", "m")
        self.calls = 0

    def feed_data(self, data: str) -> StreamChunk | None:  # every event here is plain
        self.calls += 1
        return super().feed_data(data)


def http_stream(body: bytes, parser: OpenAIStreamParser | None = None) -> tuple[Stream, OneRead]:
    response = OneRead(body)
    source = HTTPChunkSource(response, parser or OpenAIStreamParser("openai", "m"),  # type: ignore[arg-type]
                             provider="openai", model="m", headers={})
    return Stream(source, provider="openai", model="m"), response


async def test_events_are_parsed_one_chunk_at_a_time() -> None:
    parser = CountingParser()
    stream, _ = http_stream(sse_body(200), parser)
    async with stream:
        await stream.__anext__()
        assert parser.calls == 1  # 201 events received in one read, one parsed
        await stream.__anext__()
        assert parser.calls == 2


async def test_a_parser_gets_plain_events_as_data_and_others_as_events() -> None:
    # A parser with feed_data is handed a plain message event's data; an event with a
    # name or an id still reaches its feed() (here: OpenAI's `event: error`).
    class Seen(OpenAIStreamParser):
        __slots__ = ("seen",)

        def __init__(self) -> None:
            super().__init__("openai", "m")
            self.seen: list[object] = []

        def feed(self, event: SSEEvent) -> StreamChunk | None:
            self.seen.append(event)
            return super().feed(event)

        def feed_data(self, data: str) -> StreamChunk | None:
            self.seen.append(data)
            return super().feed_data(data)

    body = sse_body(1).replace(b"data: [DONE]", b'event: error\ndata: {"message": "boom"}')
    parser = Seen()
    stream, response = http_stream(body, parser)
    with pytest.raises(errors.APIError, match="boom"):
        async with stream:
            [c async for c in stream]
    assert response.closed
    assert [type(e) for e in parser.seen] == [str, str, SSEEvent]
    assert parser.seen[2] == SSEEvent('{"message": "boom"}', "error")


async def test_stream_does_not_keep_the_chunks_it_gave_out() -> None:
    stream, _ = http_stream(sse_body(5))
    async with stream:
        ref = weakref.ref(await stream.__anext__())
        gc.collect()
        assert ref() is None
        rest = [c.choices[0].delta.content async for c in stream]
    assert rest[:4] == ["w1 ", "w2 ", "w3 ", "w4 "]


async def test_final_response_counts_chunks_read_before_it() -> None:
    stream, response = http_stream(sse_body(3))
    async with stream:
        await stream.__anext__()
        final = await stream.final_response()
    assert final.choices[0].message.content == "w0 w1 w2 "
    assert final.choices[0].finish_reason == "stop"
    assert response.closed


async def test_generator_protocol() -> None:
    stream, response = http_stream(sse_body(3))
    assert isinstance(stream, collections.abc.AsyncGenerator)
    assert stream.__aiter__() is stream
    first = await stream.asend(None)
    assert first.choices[0].delta.content == "w0 "
    with pytest.raises(TypeError):
        await stream.asend("x")  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        await stream.athrow(KeyError("boom"))
    assert stream.closed and response.closed
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()
    await stream.aclose()  # idempotent


async def test_plain_for_says_to_use_async_for() -> None:
    async with trillm.Client() as client:
        async with client.stream("mock/x", MSGS) as s:
            with pytest.raises(TypeError, match="async for"):
                for _ in s:  # type: ignore[attr-defined]
                    pass


async def test_malformed_event_closes_the_stream() -> None:
    stream, response = http_stream(b"data: {not json\n\n")
    with pytest.raises(errors.StreamError, match="malformed"):
        await stream.__anext__()
    assert stream.closed and response.closed


async def test_mock_stream_repr_and_headers() -> None:
    async with trillm.Client() as client:
        async with client.stream("mock/x", MSGS) as s:
            assert "open" in repr(s) and "mock/x" in repr(s)
            assert s.headers == {}
            words = [c.choices[0].delta.content async for c in s]
        assert "closed" in repr(s)
    assert words == ["one", " two", " three", None]


def test_stream_left_open_when_the_run_ends_warns_and_does_not_crash_the_run() -> None:
    async def main() -> None:
        async with trillm.Client() as client:
            s = await client.acompletion("mock/x", MSGS, stream=True)
            await s.__anext__()  # s is collected as main's frame goes, late in the run

    with pytest.warns(ResourceWarning, match="garbage-collected while open"):
        trio.run(main)
        gc.collect()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_collected_stream_gives_its_slot_back_even_when_warnings_are_errors() -> None:
    async with trillm.Client(max_concurrency=1) as client:
        s = await client.acompletion("mock/x", MSGS, stream=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            del s
            gc.collect()
        with trio.fail_after(1):  # starves forever if the slot was not given back
            await client.acompletion("mock/x", MSGS)
        assert client.statistics().open_streams == 0


def _openai_event(delta: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": delta}, "finish_reason": finish}
    return b"data: " + json.dumps({"id": "c", "choices": [choice]}).encode() + b"\n"


async def test_last_event_without_its_blank_line_is_truncation() -> None:
    # Regression: the SSE decoder's close() dispatched an event whose blank line never
    # came, so this stream, cut inside its finishing event, passed for a whole answer.
    stream, response = http_stream(_openai_event("Hi") + b"\n" + _openai_event(" there", "stop"))
    got = []
    with pytest.raises(errors.StreamError, match="truncated"):
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content)
    assert got == ["Hi"]
    assert stream.closed and response.closed


async def test_event_over_the_size_limit_is_a_stream_error() -> None:
    stream, response = http_stream(b"data: " + b"x" * (17 << 20))
    with pytest.raises(errors.StreamError, match="max_event_bytes") as info:
        await stream.__anext__()
    assert (info.value.provider, info.value.model) == ("openai", "m")
    assert stream.closed and response.closed


async def test_final_response_keeps_streamed_logprobs_and_a_missing_content() -> None:
    # Regression: final_response() gave logprobs=None, and content "" for a refusal.
    fixtures = Path(__file__).parent / "fixtures" / "openai"
    stream, _ = http_stream((fixtures / "stream_refusal_logprobs.sse").read_bytes())
    async with stream:
        final = await stream.final_response()
    (choice,) = final.choices
    assert choice.message.content is None
    assert choice.message.refusal == "I'm very sorry, but I can't assist with that."
    assert [t["token"] for t in choice.logprobs["refusal"]][:3] == ["I'm", " very", " sorry"]
    assert choice.logprobs["content"] is None


async def test_wrong_typed_field_is_a_stream_error_not_a_type_error_later() -> None:
    # Regression: `"content": true` in a delta made final_response() raise TypeError.
    stream, response = http_stream(
        b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
        b'data: {"id":"c","choices":[{"index":0,"delta":{"content":true}}]}\n\n'
    )
    with pytest.raises(errors.StreamError, match="malformed"):
        await stream.final_response()
    assert stream.closed and response.closed
