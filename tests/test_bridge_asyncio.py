"""The async API under asyncio, for real: each test runs ``asyncio.run`` (or anyio's
``run`` on either backend) and checks results, error classes, limits, and that a
cancelled call or stream closes its connection, seen from the server's side.

These are plain ``def`` tests (pytest-trio's trio mode runs every ``async def``
test under trio); servers are real sockets on 127.0.0.1, each wait bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import trillm
from trillm import errors

MSGS = [{"role": "user", "content": "hello there friend"}]
EVENT = (b'data: {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "m", '
         b'"choices": [{"index": 0, "delta": {"content": "partial"}}]}\n\n')


class HoldingServer:
    """Accepts one connection, reads the request, optionally sends *reply*, then holds it
    open until the client closes it; records when that happened."""

    def __init__(self, reply: bytes = b"") -> None:
        self.reply = reply
        self.accepted = threading.Event()
        self.closed_by_client = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(10)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            conn, _ = self._listener.accept()
            with conn:
                conn.settimeout(10)
                conn.recv(65536)
                if self.reply:
                    conn.sendall(self.reply)
                self.accepted.set()
                while conn.recv(65536):  # b"" once the client closed its side
                    pass
                self.closed_by_client.set()

    def close(self) -> None:
        self._listener.close()
        self._thread.join(10)


@contextlib.contextmanager
def holding_server(reply: bytes = b"") -> Iterator[HoldingServer]:
    server = HoldingServer(reply)
    try:
        yield server
    finally:
        server.close()


STREAM_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
               b"transfer-encoding: chunked\r\n\r\n" + f"{len(EVENT):x}\r\n".encode() + EVENT
               + b"\r\n")


def test_every_entry_point_works_under_asyncio(tmp_path: Path) -> None:
    audio = tmp_path / "talk.wav"
    audio.write_bytes(b"RIFF....")

    async def main() -> None:
        r = await trillm.acompletion(model="mock/echo", messages=MSGS)
        assert r["choices"][0]["message"]["content"] == "hello there friend"
        async with trillm.stream(model="mock/echo", messages=MSGS) as s:
            words = [c.choices[0].delta.content async for c in s]
        assert words == ["hello", " there", " friend", None] and s.closed
        async with trillm.Client() as client:
            s = await client.acompletion("mock/x", MSGS, stream=True)
            async with s:
                assert (await s.final_response()).choices[0].message.content == MSGS[0][
                    "content"]
            assert len((await client.aembedding("mock/e", ["a", "b", "c"])).data) == 3
            assert (await client.aimage_generation("mock/i", "a cat")).data[0].url
            t = await client.atranscription("mock/w", audio)
            assert t.text == "Mock transcription of talk.wav"
            speech = await client.aspeech("mock/tts", "hi", "alloy")
            assert speech.content.startswith(b"RIFF")
            await speech.write_to_file(tmp_path / "speech.wav")
            assert (tmp_path / "speech.wav").read_bytes() == speech.content
            async with await client.aspeech("mock/tts", "hi", "alloy", stream=True) as a:
                data = b"".join([d async for d in a])
            assert data == speech.content
            async with await client.aspeech("mock/tts", "hi", "alloy", stream=True) as a:
                first = await a.__anext__()
                await a.write_to_file(tmp_path / "out.wav")
            assert first + (tmp_path / "out.wav").read_bytes() == speech.content
            answers = await client.abatch_completion(
                [{"model": "mock/x", "messages": MSGS}] * 3)
            assert [a.choices[0].message.content for a in answers] == [MSGS[0]["content"]] * 3
            first = await client.abatch_completion_models(models=["mock/a", "mock/b"],
                                                          messages=MSGS)
            assert first.choices[0].message.content == MSGS[0]["content"]
            assert client.statistics().requests_in_flight == 0

    asyncio.run(main())


def test_errors_come_out_bare_and_of_the_same_class() -> None:
    async def main() -> None:
        async with trillm.Client() as client:
            with pytest.raises(errors.RateLimitError, match="slow"):
                await client.acompletion("mock/x", MSGS, max_retries=0,
                                         mock_response=errors.RateLimitError("slow"))
            with pytest.raises(errors.BadRequestError, match="unknown provider"):
                await client.acompletion("nope/x", MSGS)
            with pytest.raises(errors.Timeout):
                await client.acompletion("mock/x", MSGS, mock_latency=5, timeout=0.05,
                                         max_retries=0)

    asyncio.run(main())


def test_one_clients_concurrency_limit_holds_under_asyncio() -> None:
    async def main() -> float:
        async with trillm.Client(max_concurrency=2) as client:
            start = time.monotonic()
            await asyncio.gather(*(client.acompletion("mock/x", MSGS, mock_latency=0.2)
                                   for _ in range(6)))
            return time.monotonic() - start

    elapsed = asyncio.run(main())
    assert 0.55 <= elapsed < 5  # three waves of two, not one wave of six


@pytest.mark.parametrize("how", ["task.cancel", "wait_for", "timeout", "taskgroup"])
def test_cancelling_the_asyncio_task_closes_the_connection(how: str) -> None:
    with holding_server() as server:

        async def call(client: trillm.Client) -> None:
            await client.acompletion("openai/gpt-4o-mini", MSGS, api_base=server.base_url)

        async def sibling_fails() -> None:
            await asyncio.to_thread(server.accepted.wait, 10)
            raise ValueError("sibling")

        async def main() -> None:
            async with trillm.Client() as client:
                if how == "task.cancel":
                    task = asyncio.create_task(call(client))
                    await asyncio.to_thread(server.accepted.wait, 10)
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                elif how == "wait_for":
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(call(client), 0.3)
                elif how == "timeout":
                    with pytest.raises(TimeoutError):
                        async with asyncio.timeout(0.3):
                            await call(client)
                else:
                    with pytest.RaisesGroup(ValueError):
                        async with asyncio.TaskGroup() as group:
                            group.create_task(call(client))
                            group.create_task(sibling_fails())
                # by now the trio side has closed the connection: nothing outlived the task
                assert client.statistics() == trillm.ClientStatistics(0, 0, 0, 0)
            assert server.closed_by_client.wait(5)

        asyncio.run(main())


@pytest.mark.parametrize("how", ["break", "cancel", "exception", "aclose"])
def test_leaving_a_stream_closes_the_connection(how: str) -> None:
    with holding_server(STREAM_HEAD) as server:

        async def main() -> None:
            async with trillm.Client() as client:
                async def consume() -> None:
                    async with client.stream("openai/gpt-4o-mini", MSGS,
                                             api_base=server.base_url) as s:
                        async for chunk in s:
                            assert chunk.choices[0].delta.content == "partial"
                            if how == "break":
                                break
                            if how == "exception":
                                raise KeyError("in the loop body")
                            if how == "aclose":
                                await s.aclose()
                        # "cancel": the next chunk never comes; the task is cancelled

                task = asyncio.create_task(consume())
                if how == "cancel":
                    await asyncio.to_thread(server.accepted.wait, 10)
                    await asyncio.sleep(0.2)
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                elif how == "exception":
                    with pytest.raises(KeyError):
                        await task
                else:
                    await task
                assert client.statistics().open_streams == 0
            assert server.closed_by_client.wait(5)

        asyncio.run(main())


def test_chunks_cross_in_batches_of_what_has_arrived() -> None:
    text = " ".join(f"w{i}" for i in range(600))

    async def main() -> None:
        async with trillm.Client() as client:
            async with client.stream("mock/x", MSGS, mock_response=text) as s:
                first = await s.__anext__()
                ready = len(s._buffer)  # already here: came in the same hop
                rest = [c async for c in s]
        assert first.choices[0].delta.content == "w0"
        assert 0 < ready < 600  # a batch, and a bounded one
        assert len(rest) == 600  # 599 words and the finishing chunk

    asyncio.run(main())


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_anyio_on_either_backend(backend: str) -> None:
    async def main() -> list[Any]:
        seen = []
        async with trillm.Client() as client:
            r = await client.acompletion("mock/x", MSGS)
            seen.append(r.choices[0].message.content)
            with anyio.move_on_after(0.2) as scope:
                await client.acompletion("mock/x", MSGS, mock_latency=10)
            seen.append(scope.cancelled_caught)
            async with client.stream("mock/x", MSGS) as s:
                words = [c.choices[0].delta.content async for c in s]
            seen.append(words[0])
            assert client.statistics().requests_in_flight == 0
        return seen

    assert anyio.run(main, backend=backend) == ["hello there friend", True, "hello"]


def test_no_trio_or_asyncio_loop_says_what_works() -> None:
    client = trillm.Client()
    call = client.acompletion("mock/x", MSGS)
    with pytest.raises(RuntimeError, match=r"trillm\.completion"):
        call.send(None)  # type: ignore[attr-defined]
    call.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "instead"), [
    ("gather", "asyncio.TaskGroup"), ("gather_settled", "return_exceptions=True"),
    ("as_completed", "asyncio.as_completed"), ("amap", "asyncio.Semaphore"),
    ("race", "FIRST_COMPLETED"), ("hedge", "asyncio.wait"),
])
def test_trios_fan_out_helpers_name_the_asyncio_tool_instead(name: str, instead: str) -> None:
    async def job() -> int:
        return 1

    async def main() -> None:
        with pytest.raises(RuntimeError, match=instead):
            if name in ("gather", "gather_settled", "race"):
                await getattr(trillm, name)(job(), job)  # a coroutine object is closed too
            elif name == "hedge":
                await trillm.hedge(job, delay=1)
            elif name == "as_completed":
                async with trillm.as_completed([job(), job]):
                    pass
            else:
                async with trillm.amap(lambda x: job(), [1, 2], limit=2):
                    pass

    asyncio.run(main())


class SlowServer:
    """Answers every request slowly with ``Connection: close``: a JSON answer after 0.3 s, or
    30 SSE events 20 ms apart; counts connections still open and events sent per stream."""

    def __init__(self) -> None:
        import socketserver

        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with server.lock:
                    server.open += 1
                try:
                    server.serve_one(self.request)
                finally:
                    with server.lock:
                        server.open -= 1

        self.lock = threading.Lock()
        self.open = 0
        self.events_sent: list[int] = []
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def serve_one(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            got = conn.recv(65536)
            if not got:  # the client closed before its request was whole
                return
            data += got
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(body) < length:
            got = conn.recv(65536)
            if not got:
                return
            body += got
        sent = 0
        with contextlib.suppress(OSError):
            if b'"stream":true' in body:
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"connection: close\r\n\r\n")
                for _ in range(30):
                    conn.sendall(EVENT)
                    sent += 1
                    time.sleep(0.02)
                conn.sendall(b"data: [DONE]\n\n")
            else:
                time.sleep(0.3)
                answer = (b'{"id": "1", "object": "chat.completion", "created": 0, "model": "m",'
                          b' "choices": [{"index": 0, "finish_reason": "stop", "message": '
                          b'{"role": "assistant", "content": "ok"}}]}')
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"connection: close\r\ncontent-length: "
                             + str(len(answer)).encode() + b"\r\n\r\n" + answer)
        self.events_sent.append(sent)

    def wait_all_closed(self, timeout: float = 5) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if self.open == 0:
                    return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_cancellation_at_random_points_of_calls_and_streams_closes_upstream() -> None:
    import random

    rng = random.Random(20261202)
    server = SlowServer()
    try:
        async def main() -> None:
            async with trillm.Client() as client:
                for i in range(16):
                    streaming = i % 2 == 1
                    delay = rng.uniform(0.0, 0.25)

                    async def call(streaming: bool = streaming) -> None:
                        if streaming:
                            async with client.stream("openai/gpt-4o-mini", MSGS,
                                                     api_base=server.base_url) as s:
                                async for _ in s:
                                    pass
                        else:
                            await client.acompletion("openai/gpt-4o-mini", MSGS,
                                                     api_base=server.base_url)

                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(call(), delay)
                    assert client.statistics().requests_in_flight == 0
                    assert client.statistics().open_streams == 0
                    assert await asyncio.to_thread(server.wait_all_closed), (i, delay)

        asyncio.run(main())
    finally:
        server.close()
    assert server.events_sent  # calls reached the server ...
    assert all(n < 30 for n in server.events_sent)  # ... and every stream was cut short


def test_a_stream_dropped_open_warns_and_is_closed() -> None:
    async def main() -> None:
        async with trillm.Client() as client:
            s = await client.acompletion("mock/x", MSGS, stream=True, mock_chunk_delay=30)
            with pytest.warns(ResourceWarning, match="garbage-collected while open"):
                del s
                gc.collect()
            for _ in range(100):  # closed from a system task of the trio run
                if client.statistics().open_streams == 0:
                    break
                await asyncio.sleep(0.01)
            assert client.statistics().open_streams == 0

    asyncio.run(main())


def test_provider_batches_under_asyncio() -> None:
    """Regression: client.batches (and trillm.abatch_*) ran only under trio ("Task got bad
    yield" under asyncio); they go through the bridge as every Client method does."""

    async def main() -> list[tuple[str, str | None]]:
        job = await trillm.abatch_submit(
            "mock/x", [{"messages": [{"role": "user", "content": "one"}]},
                       {"messages": [{"role": "user", "content": "two"}]}],
            mock_batch_delay=0.05)
        job = await trillm.abatch_wait(job, poll=0.02)
        assert job.status == "completed"
        async with trillm.abatch_results(job) as results:
            return [(item.custom_id, item.response.choices[0].message.content)
                    async for item in results if item.response is not None]

    assert asyncio.run(main()) == [("0", "one"), ("1", "two")]
