"""The sync API (``trillm._sync``): one background trio run, kept between calls.

Plain ``def`` tests (the sync API is for code without a loop), except the one
that checks the refusal inside a running trio loop.  Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import gc
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

import trillm
from tests.fakeserver import (
    FakeServer,
    Reply,
    Request,
    openai_chat_json,
    threaded_fake_server,
)
from trillm import errors
from trillm._stream import Stream
from trillm._sync import _RUNNER, SyncStream, completion
from trillm.types import ModelResponse, StreamChunk

MSGS = [{"role": "user", "content": "one two three four"}]
WORDS = ["one", " two", " three", " four"]
GUARD = 10.0  # seconds any wait in these tests may take


def stats() -> Any:
    run = _RUNNER.get()
    return run.call(lambda: _stats_now(run.client))


async def _stats_now(client: Any) -> Any:
    await trio.lowlevel.checkpoint()
    return client.statistics()


def eventually(cond: Callable[[], bool], timeout: float = GUARD) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.01)


def released() -> bool:
    s = stats()
    return bool(s.open_streams == 0 and s.requests_in_flight == 0)


def texts(chunks: list[StreamChunk]) -> list[str]:
    return [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]


# ------------------------------------------------------------------ plain calls


def test_completion_answers_with_the_mock() -> None:
    r = completion("mock/x", [{"role": "user", "content": "hello there"}])
    assert isinstance(r, ModelResponse)
    assert r.choices[0].message.content == "hello there"
    r = completion("mock/x", MSGS, mock_response="fixed")
    assert r["choices"][0]["message"]["content"] == "fixed"


def test_errors_keep_their_class() -> None:
    with pytest.raises(errors.RateLimitError, match="slow down"):
        completion("mock/x", MSGS, mock_response=errors.RateLimitError("slow down"),
                   max_retries=0)
    with pytest.raises(errors.RateLimitError):
        completion("mock/x", MSGS, stream=True,
                   mock_response=errors.RateLimitError("slow"), max_retries=0)
    eventually(released)
    assert completion("mock/x", MSGS).choices[0].message.content == "one two three four"


def test_the_client_and_its_run_are_kept_between_calls() -> None:
    completion("mock/x", MSGS)
    run = _RUNNER.get()
    client = run.client
    for _ in range(3):
        completion("mock/x", MSGS)
        with completion("mock/x", MSGS, stream=True) as s:
            list(s)
    assert _RUNNER.get() is run and run.client is client


def test_a_stopped_run_is_replaced_and_closed_gracefully() -> None:
    s = completion("mock/x", MSGS, stream=True, mock_chunk_delay=1)
    old = _RUNNER.get()
    start = time.monotonic()
    _RUNNER.stop()  # what the atexit hook does
    assert time.monotonic() - start < GUARD
    assert not old.alive()
    assert s.closed  # the run closed the stream it still had open
    assert list(s) == []
    assert completion("mock/x", MSGS).choices[0].message.content == "one two three four"
    assert _RUNNER.get() is not old


# ------------------------------------------------------------------ streams


def test_stream_yields_every_chunk_in_order_then_closes() -> None:
    s = completion("mock/x", MSGS, stream=True)
    assert isinstance(s, SyncStream)
    assert iter(s) is s
    chunks = list(s)
    assert all(isinstance(c, StreamChunk) for c in chunks)
    assert texts(chunks) == WORDS
    assert chunks[-1].choices[0].finish_reason is not None or chunks[-1].usage is not None
    assert s.closed
    assert list(s) == []
    eventually(released)


def test_stream_delivers_chunks_as_they_arrive() -> None:
    delay = 0.15
    start = time.monotonic()
    seen: list[float] = []
    for _ in completion("mock/x", MSGS, stream=True, mock_chunk_delay=delay):
        seen.append(time.monotonic() - start)
    assert len(seen) >= len(WORDS)
    # the first chunk came long before the last one was produced (not buffered to the end)
    assert seen[0] < seen[-1] - 2 * delay
    eventually(released)


def test_final_response_reads_the_rest() -> None:
    s = completion("mock/x", MSGS, stream=True)
    first = next(s)
    assert first.choices[0].delta.content == "one"
    r = s.final_response()
    assert r.choices[0].message.content == "one two three four"
    assert s.closed
    eventually(released)


def test_close_releases_the_stream() -> None:
    s = completion("mock/x", MSGS, stream=True, mock_chunk_delay=0.01)
    next(s)
    assert stats().open_streams == 1
    s.close()
    assert s.closed
    assert stats().open_streams == 0
    s.close()  # idempotent
    with pytest.raises(StopIteration):
        next(s)


def test_leaving_with_releases_the_stream() -> None:
    with completion("mock/x", MSGS, stream=True) as s:
        assert next(s).choices[0].delta.content == "one"
    assert s.closed
    eventually(released)
    with pytest.raises(ValueError, match="boom"), completion("mock/x", MSGS, stream=True) as s2:
        next(s2)
        raise ValueError("boom")
    assert s2.closed
    eventually(released)


def test_early_break_in_with_releases_the_stream() -> None:
    with completion("mock/x", MSGS, stream=True) as s:
        for chunk in s:
            if chunk.choices[0].delta.content == " two":
                break
    eventually(released)


def test_error_inside_the_stream_keeps_its_class_and_releases() -> None:
    s = completion("mock/x", MSGS, stream=True, mock_chunk_delay=2, idle_timeout=0.05)
    with pytest.raises(errors.Timeout, match="idle_timeout"):
        next(s)
    assert s.closed
    eventually(released)


def test_a_dropped_stream_is_closed_without_blocking() -> None:
    s = completion("mock/x", MSGS, stream=True, mock_chunk_delay=0.01)
    next(s)
    stream: Stream | None = s._stream
    assert stream is not None and not stream.closed
    del stream
    start = time.monotonic()
    del s
    gc.collect()
    assert time.monotonic() - start < 1.0  # __del__ only schedules the close
    eventually(released)


def test_a_dropped_stream_in_a_reference_cycle_is_closed() -> None:
    class Holder:
        pass

    h = Holder()
    h.self = h  # type: ignore[attr-defined]
    h.stream = completion("mock/x", MSGS, stream=True)  # type: ignore[attr-defined]
    next(h.stream)  # type: ignore[attr-defined]
    del h
    gc.collect()
    eventually(released)


# ------------------------------------------------------------------ where it may run


async def test_refused_inside_a_trio_loop() -> None:
    with pytest.raises(RuntimeError, match=r"await trillm\.acompletion\(\.\.\.\)"):
        completion("mock/x", MSGS)
    with pytest.raises(RuntimeError, match=r"async with trillm\.stream"):
        completion("mock/x", MSGS, stream=True)


def test_works_inside_a_running_asyncio_loop() -> None:
    async def cell() -> tuple[str | None, list[str]]:
        asyncio.get_running_loop()  # as in a notebook cell
        r = completion("mock/x", MSGS)
        with completion("mock/x", MSGS, stream=True) as s:
            chunks = list(s)
        return r.choices[0].message.content, texts(chunks)

    answer, streamed = asyncio.run(asyncio.wait_for(cell(), GUARD))
    assert answer == "one two three four"
    assert streamed == WORDS


def test_works_from_several_threads_at_once() -> None:
    out: queue.Queue[str | None] = queue.Queue()

    def worker(i: int) -> None:
        out.put(completion("mock/x", [{"role": "user", "content": f"n{i}"}],
                           mock_latency=0.05).choices[0].message.content)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GUARD)
    assert sorted(out.get(timeout=GUARD) or "" for _ in threads) == sorted(f"n{i}"
                                                                          for i in range(8))


# ------------------------------------------------------------------ KeyboardInterrupt


def interrupt_main_after(delay: float) -> threading.Timer:
    main = threading.main_thread().ident
    assert main is not None and threading.current_thread() is threading.main_thread()
    timer = threading.Timer(delay, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
def test_keyboard_interrupt_cancels_the_call_and_keeps_the_run() -> None:
    completion("mock/x", MSGS)  # started before the clock runs
    run = _RUNNER.get()
    timer = interrupt_main_after(0.1)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        completion("mock/x", MSGS, mock_latency=30)
    timer.join(GUARD)
    assert time.monotonic() - start < GUARD
    eventually(released)  # the in-flight call was cancelled in the background run
    assert _RUNNER.get() is run and run.alive()
    assert completion("mock/x", MSGS).choices[0].message.content == "one two three four"


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
def test_keyboard_interrupt_while_streaming_releases_the_stream() -> None:
    s = completion("mock/x", MSGS, stream=True, mock_chunk_delay=0.05)
    next(s)
    s2 = completion("mock/x", MSGS, stream=True, mock_chunk_delay=30)
    timer = interrupt_main_after(0.1)
    with pytest.raises(KeyboardInterrupt):
        next(s2)
    timer.join(GUARD)
    eventually(lambda: stats().open_streams == 1)  # s2 was closed by its cancellation
    assert texts(list(s)) == WORDS[1:]
    eventually(released)


# ------------------------------------------------------------------ a real server


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """A fake OpenAI server running in its own thread (its own trio run)."""

    def handler(request: Request) -> Reply:
        return Reply.json(openai_chat_json("Hello!"))

    with threaded_fake_server(handler, GUARD) as server:
        yield server


def test_connections_are_reused_between_calls(fake_server: FakeServer) -> None:
    kw: dict[str, Any] = {"api_base": fake_server.base_url + "/v1", "api_key": "sk-test"}
    for _ in range(3):
        r = completion("openai/gpt-4o-mini", MSGS, **kw)
        assert r.choices[0].message.content == "Hello!"
    assert len(fake_server.requests) == 3
    assert fake_server.connections_opened == 1  # one pooled connection served them all


async def test_works_from_a_worker_thread_of_a_trio_run() -> None:
    with trio.fail_after(GUARD):
        r = await trio.to_thread.run_sync(lambda: completion("mock/x", MSGS))
    assert r.choices[0].message.content == "one two three four"


def test_sync_embedding() -> None:
    import trillm

    r = trillm.embedding("mock/e", ["a", "b"], dimensions=3)
    assert [len(e.embedding) for e in r.data] == [3, 3]


def test_sync_calls_from_many_threads_share_the_one_background_run() -> None:
    """A FastAPI ``def`` endpoint runs in a thread pool: 16 threads x 20 calls at once."""
    from concurrent.futures import ThreadPoolExecutor

    def worker(t: int) -> list[str]:
        return [
            completion("mock/x", [{"role": "user", "content": f"{t}-{i}"}],
                              mock_latency=0.01).choices[0].message.content or ""
            for i in range(20)
        ]

    start = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(worker, range(16)))
    elapsed = time.monotonic() - start
    assert results == [[f"{t}-{i}" for i in range(20)] for t in range(16)]
    assert elapsed < 20 * 0.01 * 16 / 2  # concurrent on the one run, not one after another
    client = _RUNNER.get().client
    assert client.statistics().requests_in_flight == 0


def _python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_ctrl_c_during_a_sync_call_is_prompt_and_quiet() -> None:
    """A real process and a real SIGINT: KeyboardInterrupt in the calling thread within a
    second, the request cancelled, nothing printed by the interpreter on the way out."""
    proc = _python(
        "import sys, trillm\n"
        "trillm.completion('mock/x', [{'role': 'user', 'content': 'warm'}])\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    trillm.completion('mock/x', [{'role': 'user', 'content': 'hi'}], mock_latency=60)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=GUARD)
        took = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
    assert out == b"interrupted\n" and proc.returncode == 0
    assert took < 1.5  # the interpreter's own exit included
    assert err == b"", err.decode()


def test_a_process_exits_promptly_with_a_sync_stream_still_open() -> None:
    proc = _python(
        "import trillm\n"
        "s = trillm.completion('mock/x', [{'role': 'user', 'content': 'one two three'}],\n"
        "                      stream=True, mock_chunk_delay=60)\n"
        "print('open', flush=True)\n"
    )
    start = time.monotonic()
    try:
        out, err = proc.communicate(timeout=GUARD)
    finally:
        proc.kill()
        proc.wait()
    assert out == b"open\n" and proc.returncode == 0
    assert time.monotonic() - start < 8
    assert b"Traceback" not in err and b"Fatal" not in err, err.decode()


def test_final_response_after_reading_a_sync_stream_to_its_end() -> None:
    """Regression: a sync stream read to its end with ``for`` dropped its stream, so
    ``final_response()`` raised "closed before its end" (chat and Responses alike)."""
    from pydantic import BaseModel

    class Pet(BaseModel):
        name: str

    chat = trillm.completion("mock/x", [{"role": "user", "content": "one two"}],
                             stream=True, response_format=Pet)
    assert len(list(chat)) > 1
    assert chat.closed
    assert chat.final_response().choices[0].message.parsed == Pet(name="")
    assert chat.final_response() == chat.final_response()
    with trillm.responses("mock/x", "one two", stream=True, text_format=Pet) as events:
        assert [e.type for e in events][-1] == "response.completed"
        assert events.final_response().output_parsed == Pet(name="")
    closed_early = trillm.completion("mock/x", [{"role": "user", "content": "one two"}],
                                     stream=True)
    next(closed_early)
    closed_early.close()
    with pytest.raises(RuntimeError, match="closed before its end"):
        closed_early.final_response()
