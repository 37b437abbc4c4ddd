"""Cassettes: ``fake.record(path, upstream=...)`` forwards to upstream and saves each exchange
(SSE chunk by chunk with its timing) as JSONL with every secret scrubbed; ``fake.replay(path)``
answers from it by canonical body; a miss fails with a diff; re-recording is explicit.
"Upstream" is always another FakeLLM here (in memory, or on loopback): no test leaves the
machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.accumulate import stream_chunk_builder
from trillm.retry import RetryPolicy
from trillm.testing import FakeLLM, UnmatchedRequest

KEY = "sk-cassette-secret-0123456789"
MESSAGES = [{"role": "user", "content": "Tell me"}]
GUARD = 10


def upstream_fake() -> FakeLLM:
    up = FakeLLM()
    up.on(when=lambda r: r.text == "Tell me" and r.stream).stream(
        ["Once", " upon", " a time"], delay=0.25)
    up.on(when=lambda r: r.text == "Tell me").fail(
        429, retry_after=2, body={"error": {"message": f"slow down, key {KEY}"}}).reply(
        "The plain answer")
    up.on(when=lambda r: r.text == "cut").disconnect(after_chunks=1, pieces=["a", "b", "c"])
    return up


async def session(c: trillm.Client) -> tuple[list[tuple[float, str]], str, float]:
    """A streamed call (each piece's virtual time and text), then a plain one that meets
    a 429 first; returns what came and when the plain one ended."""
    seen = []
    start = trio.current_time()
    async with c.stream(model="openai/gpt-4o-mini", messages=MESSAGES) as s:
        async for chunk in s:
            if chunk.choices[0].delta.content:
                seen.append((trio.current_time() - start, chunk.choices[0].delta.content))
    r = await c.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES)
    return seen, r.choices[0].message.content or "", trio.current_time() - start


def client(fake: FakeLLM, **kw: Any) -> trillm.Client:
    return trillm.Client(transport=fake.transport(), api_key=KEY,
                         retry=RetryPolicy(jitter=0), **kw)


async def test_record_then_replay_in_memory(tmp_path: Path,
                                            autojump_clock: trio.testing.MockClock) -> None:
    path = tmp_path / "cassettes" / "story.jsonl"
    up = upstream_fake()
    recorder = FakeLLM().record(path, upstream=up.transport())
    async with client(recorder) as c:
        recorded = await session(c)
    assert recorded == ([(0.25, "Once"), (0.5, " upon"), (0.75, " a time")],
                        "The plain answer", 2.75)
    assert [q.status for q in up.requests] == [200, 429, 200]
    assert [q.status for q in recorder.requests] == [200, 429, 200]
    assert all(q.completed for q in recorder.requests)
    assert up.requests[0].headers["authorization"] == "[REDACTED]"  # the key went upstream

    text = path.read_text()
    assert KEY not in text and "[REDACTED]" in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 3
    stream = lines[0]
    assert stream["request"]["path"] == "/v1/chat/completions"
    assert stream["request"]["body"]["json"]["stream"] is True
    assert stream["request"]["headers"]["authorization"] == "[REDACTED]"
    assert [c["after"] for c in stream["response"]["chunks"]] == [0.25, 0.25, 0.25]
    assert stream["response"]["chunks"][0]["text"].startswith("data: {")
    assert stream["response"]["headers"]["content-type"] == "text/event-stream"
    assert lines[1]["response"]["status"] == 429
    assert "slow down, key [REDACTED]" in lines[1]["response"]["chunks"][0]["text"]
    assert lines[1]["response"]["headers"]["retry-after"] == "2"

    replayer = FakeLLM().replay(path)
    start = trio.current_time()
    async with client(replayer) as c:
        replayed = await session(c)
    assert replayed == recorded  # the same answers, at the same (virtual) times
    assert trio.current_time() - start == 2.75
    assert [q.status for q in replayer.requests] == [200, 429, 200]
    replayer.check()


async def test_replay_matches_the_canonical_body_and_repeats_the_last(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "c.jsonl"
    up = FakeLLM()
    up.on().reply("one").reply("two")
    recorder = FakeLLM().record(path, upstream=up.transport())
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}], "temperature": 0}
    async with httpx.AsyncClient(transport=recorder.transport(), base_url="http://x") as h:
        for _ in range(2):
            await h.post("/v1/chat/completions", json=body)
    replayer = FakeLLM().replay(path, timing=False)
    reordered = '{ "temperature": 0,\n "messages": [{"content": "q", "role": "user"}],"model":"m"}'
    async with httpx.AsyncClient(transport=replayer.transport(), base_url="http://x") as h:
        got = [(await h.post("/v1/chat/completions", content=reordered,
                             headers={"content-type": "application/json"})).json()
               for _ in range(3)]
    assert [g["choices"][0]["message"]["content"] for g in got] == ["one", "two", "two"]


async def test_a_miss_fails_with_a_diff(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    up = FakeLLM()
    async with client(FakeLLM().record(path, upstream=up.transport())) as c:
        await c.acompletion(model="gpt-4o-mini", messages=MESSAGES, temperature=0.5)
    replayer = FakeLLM().replay(path)
    async with client(replayer, max_retries=0) as c:
        with pytest.raises(errors.InternalServerError, match="has no exchange"):
            await c.acompletion(model="gpt-4o-mini", messages=MESSAGES, temperature=0.7)
    with pytest.raises(UnmatchedRequest) as caught:
        replayer.check()
    text = str(caught.value)
    assert "nearest recorded request differs" in text
    assert '- "temperature": 0.5' in text and '+ "temperature": 0.7' in text
    assert "overwrite=True" in text


async def test_re_recording_is_explicit(tmp_path: Path,
                                        autojump_clock: trio.testing.MockClock) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"old": true}\n')
    with pytest.raises(FileExistsError, match="overwrite=True"):
        FakeLLM().record(path, upstream="http://127.0.0.1:9")
    assert path.read_text() == '{"old": true}\n'
    up = FakeLLM()
    up.on().reply("new")
    async with client(FakeLLM().record(path, upstream=up.transport(), overwrite=True)) as c:
        await c.acompletion(model="gpt-4o-mini", messages=MESSAGES)
    assert "old" not in path.read_text() and len(path.read_text().splitlines()) == 1
    with pytest.raises(FileNotFoundError):
        FakeLLM().replay(tmp_path / "missing.jsonl")


async def test_an_upstream_cut_is_recorded_and_replayed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "c.jsonl"
    for make in (lambda: FakeLLM().record(path, upstream=upstream_fake().transport()),
                 lambda: FakeLLM().replay(path)):
        fake, got = make(), []
        async with client(fake, max_retries=0) as c:
            with pytest.raises(errors.StreamError):
                async with c.stream(model="gpt-4o-mini",
                                    messages=[{"role": "user", "content": "cut"}]) as s:
                    async for chunk in s:
                        got.append(chunk.choices[0].delta.content or "")
        assert "".join(got) == "a"
    (line,) = path.read_text().splitlines()
    assert json.loads(line)["response"]["cut"] is True


async def test_a_client_that_gives_up_saves_nothing(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "c.jsonl"
    up = FakeLLM()
    up.on().stream(["a", "b", "c"], delay=1)
    recorder = FakeLLM().record(path, upstream=up.transport())
    async with client(recorder) as c, c.stream(model="gpt-4o-mini", messages=MESSAGES) as s:
        async for chunk in s:
            if chunk.choices[0].delta.content:
                break
    assert path.read_text() == ""
    assert recorder.requests[0].cancelled_by_client
    assert up.requests[0].cancelled_by_client  # the close went upstream too


async def test_record_and_replay_over_loopback(tmp_path: Path) -> None:
    """Gemini and Anthropic through the recording server, upstream another fake's server."""
    path = tmp_path / "loop.jsonl"
    up = FakeLLM()
    up.on(provider="anthropic").stream(["Hi", " from", " Claude"], delay=0.02)
    up.on(provider="gemini").reply("Hi from Gemini")

    async def calls(url: str) -> list[str]:
        async with trillm.Client(api_base=url, api_key=KEY) as c:
            async with c.stream(model="anthropic/claude-3-5-haiku-latest",
                                messages=MESSAGES) as s:
                claude = stream_chunk_builder([chunk async for chunk in s])
            gem = await c.acompletion(model="gemini/gemini-2.0-flash", messages=MESSAGES)
        return [claude.choices[0].message.content or "", gem.choices[0].message.content or ""]

    with trio.fail_after(GUARD):
        async with up.serve() as up_url:
            async with FakeLLM().record(path, upstream=up_url).serve() as url:
                recorded = await calls(url)
        async with FakeLLM().replay(path).serve() as url:
            replayed = await calls(url)
    assert recorded == replayed == ["Hi from Claude", "Hi from Gemini"]
    text = path.read_text()
    assert KEY not in text
    exchanges = [json.loads(line) for line in text.splitlines()]
    assert exchanges[0]["request"]["headers"]["x-api-key"] == "[REDACTED]"
    assert exchanges[1]["request"]["path"].startswith("/v1beta/models/gemini-2.0-flash:")
    assert len(exchanges[0]["response"]["chunks"]) >= 3  # the SSE stream, chunk by chunk


async def test_an_unreachable_upstream() -> None:
    fake = FakeLLM().record("/dev/null", upstream="http://127.0.0.1:9", overwrite=True)
    with trio.fail_after(GUARD):
        async with fake.serve() as url, httpx.AsyncClient(base_url=url) as h:
            r = await h.post("/v1/chat/completions", json={"model": "m", "messages": []})
    assert r.status_code == 502 and "could not reach upstream" in r.text


@pytest.mark.parametrize("cut", [9, 16, 21])
async def test_a_key_cut_across_chunks_is_scrubbed_whole(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, cut: int
) -> None:
    """Regression: each chunk was scrubbed on its own, so a key the upstream's body cut in
    two left its tail in the cassette.  Chunks a key (or a UTF-8 character) spans are saved
    joined, arriving when the last of them did."""
    event = ('data: {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",'
             ' "choices": [{"index": 0, "delta": {"content": "your key is ' + KEY +
             ' é"}}]}\n\n').encode()
    at = event.index(KEY.encode()) + cut
    accent = event.index("é".encode()) + 1  # inside the two bytes of "é"
    up = FakeLLM()
    up.on(model="m").respond([event[:at], event[at:accent], event[accent:],
                              b"data: [DONE]\n\n"], chunk_delay=0.5,
                             headers={"content-type": "text/event-stream"})
    path = tmp_path / "c.jsonl"
    async with client(FakeLLM().record(path, upstream=up.transport())) as c:
        async with c.stream(model="openai/m", messages=MESSAGES) as s:
            recorded = [chunk async for chunk in s]
    text = path.read_text()
    for piece in (KEY, KEY[:cut], KEY[cut:]):
        assert piece not in text, piece
    chunks = json.loads(text)["response"]["chunks"]
    assert [c["after"] for c in chunks] == [1.5, 0.5]  # three pieces joined (0.5 s apart)
    assert "your key is [REDACTED] é" in chunks[0]["text"]
    async with client(FakeLLM().replay(path)) as c:
        async with c.stream(model="openai/m", messages=MESSAGES) as s:
            replayed = [chunk async for chunk in s]
    assert stream_chunk_builder(replayed).choices[0].message.content == (
        "your key is [REDACTED] é")
    assert stream_chunk_builder(recorded).choices[0].message.content == f"your key is {KEY} é"
