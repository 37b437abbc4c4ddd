"""Embeddings, images, transcription and speech against a fake server on 127.0.0.1
(real sockets, real clock, a fail_after guard): request shape on the wire, parsing, error
mapping, timeouts, and the connection released when the caller cancels."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

import trillm
from tests.fakeserver import Reply, Request, open_fake_server
from trillm import errors

GUARD = 10
AUDIO = b"RIFF" + bytes(range(256)) * 64  # 16 kB


def handler(request: Request) -> Reply:
    path = request.path
    if path.endswith("/embeddings"):
        inputs = request.json()["input"]
        return Reply.json({"object": "list", "model": "e", "usage": {
            "prompt_tokens": len(inputs), "total_tokens": len(inputs)},
            "data": [{"index": i, "embedding": [float(len(t)), 0.0]}
                     for i, t in enumerate(inputs)]})
    if path.endswith("/images/generations"):
        return Reply.json({"created": 1, "data": [{"url": "https://img/1.png"}]})
    if path.endswith("/audio/transcriptions"):
        ok = request.headers["content-type"].startswith("multipart/form-data")
        text = f"{len(request.body)} bytes, whole: {AUDIO in request.body}, multipart: {ok}"
        return Reply.json({"text": text})
    if path.endswith("/audio/speech"):
        return Reply(200, [("content-type", "audio/mpeg")], b"ID3-audio-bytes")
    return Reply.json({"error": {"message": "no such route"}}, status=404)


def client_at(base: str, **kw: Any) -> trillm.Client:
    return trillm.Client(api_base=base + "/v1", api_key="sk-test", **kw)


async def test_every_endpoint_over_the_wire() -> None:
    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, client_at(server.base_url) as client:
            emb = await client.aembedding("openai/text-embedding-3-small", ["a", "bb"])
            img = await client.aimage_generation("openai/dall-e-3", "a cat")
            tr = await client.atranscription("openai/whisper-1", AUDIO)
            sp = await client.aspeech("openai/tts-1", "hi", "alloy")
            assert client.statistics().active_connections == 0
    assert [e.embedding[0] for e in emb.data] == [1.0, 2.0]
    assert img.data[0].url == "https://img/1.png"
    assert tr.text.endswith("whole: True, multipart: True")
    assert sp.content == b"ID3-audio-bytes"
    upload = next(r for r in server.requests if r.path.endswith("/audio/transcriptions"))
    assert b'name="model"\r\n\r\nwhisper-1' in upload.body


@pytest.mark.parametrize(("status", "cls"), [
    (401, errors.AuthenticationError), (404, errors.NotFoundError),
    (429, errors.RateLimitError), (500, errors.InternalServerError),
])
async def test_errors_map_to_their_classes(status: int, cls: type[errors.APIError]) -> None:
    def failing(request: Request) -> Reply:
        return Reply.json({"error": {"message": f"status {status}"}}, status=status)

    with trio.fail_after(GUARD):
        async with open_fake_server(failing) as server, \
                client_at(server.base_url, max_retries=0) as client:
            for call in (
                lambda: client.aembedding("openai/e", "x"),
                lambda: client.aimage_generation("openai/dall-e-3", "x"),
                lambda: client.atranscription("openai/whisper-1", AUDIO),
                lambda: client.aspeech("openai/tts-1", "x", "alloy"),
            ):
                with pytest.raises(cls):
                    await call()


async def test_a_server_that_never_answers_times_out_and_the_connection_closes() -> None:
    with trio.fail_after(GUARD):
        async with open_fake_server(lambda r: Reply(hang=True)) as server, \
                client_at(server.base_url, max_retries=0) as client:
            with pytest.raises(errors.Timeout):
                await client.atranscription("openai/whisper-1", AUDIO, timeout=0.3)
            await server.wait_all_closed()
            assert client.statistics().active_connections == 0


async def test_caller_cancelling_an_upload_releases_the_connection() -> None:
    arrived = trio.Event()

    async def slow(request: Request) -> Reply:
        arrived.set()
        await trio.sleep_forever()
        raise AssertionError

    with trio.fail_after(GUARD):
        async with open_fake_server(slow) as server, client_at(server.base_url) as client:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.atranscription, "openai/whisper-1", AUDIO)
                await arrived.wait()
                nursery.cancel_scope.cancel()
            await server.wait_all_closed()
            stats = client.statistics()
            assert (stats.requests_in_flight, stats.active_connections) == (0, 0)
    assert json.dumps(server.requests[0].headers).count("multipart") == 1


def audio_stream_handler(request: Request) -> Reply:
    chunks: list[bytes | float] = [b"ID3-part-1", 0.01, b"-part-2", 0.01, b"-part-3"]
    return Reply(200, [("content-type", "audio/mpeg")], chunks=chunks)


async def test_streamed_speech_arrives_in_parts_and_closes(tmp_path: Any) -> None:
    with trio.fail_after(GUARD):
        async with open_fake_server(audio_stream_handler) as server, \
                client_at(server.base_url, max_concurrency=1) as client:
            audio = await client.aspeech("openai/tts-1", "hi", "alloy", stream=True)
            assert isinstance(audio, trillm.AudioStream)
            async with audio:
                parts = [data async for data in audio]
            assert b"".join(parts) == b"ID3-part-1-part-2-part-3"
            assert audio.closed
            audio = await client.aspeech("openai/tts-1", "hi", "alloy", stream=True)
            assert isinstance(audio, trillm.AudioStream)
            async with audio:
                await audio.write_to_file(tmp_path / "out.mp3")
            assert (tmp_path / "out.mp3").read_bytes() == b"ID3-part-1-part-2-part-3"
            stats = client.statistics()
            assert (stats.open_streams, stats.active_connections) == (0, 0)


async def test_cancelling_a_streamed_download_releases_the_connection() -> None:
    def endless(request: Request) -> Reply:
        return Reply(200, [("content-type", "audio/mpeg")], chunks=[b"ID3-first"], no_end=True)

    with trio.fail_after(GUARD):
        async with open_fake_server(endless) as server, client_at(server.base_url) as client:
            got = trio.Event()

            async def download() -> None:
                audio = await client.aspeech("openai/tts-1", "hi", "alloy", stream=True)
                assert isinstance(audio, trillm.AudioStream)
                async with audio:
                    async for _ in audio:
                        got.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(download)
                await got.wait()
                nursery.cancel_scope.cancel()
            await server.wait_all_closed()
            stats = client.statistics()
            assert (stats.open_streams, stats.active_connections) == (0, 0)


async def test_mock_speech_streams_a_valid_wav() -> None:
    audio = await trillm.aspeech("mock/tts-1", "hi", "alloy", stream=True)
    assert isinstance(audio, trillm.AudioStream)
    async with audio:
        data = b"".join([part async for part in audio])
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"


async def test_cancelling_mid_upload_closes_the_connection() -> None:
    """A server that accepts but never reads: the upload stalls in the socket buffers, the
    caller cancels, and the server then finds the connection closed (EOF or reset)."""
    big = b"RIFF" + b"\x00" * (16 * 1024 * 1024)
    with trio.fail_after(GUARD):
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        async with listeners[0], client_at(f"http://127.0.0.1:{port}") as client:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.atranscription, "openai/whisper-1", big)
                conn = await listeners[0].accept()  # accepted; nothing is ever read
                await trio.sleep(0.2)  # the client is now blocked sending the body
                assert client.statistics().requests_in_flight == 1
                nursery.cancel_scope.cancel()
            stats = client.statistics()
            assert (stats.requests_in_flight, stats.active_connections) == (0, 0)
            async with conn:
                try:
                    while await conn.receive_some(1 << 20):
                        pass  # drain what was sent before the close, then EOF
                except trio.BrokenResourceError:
                    pass  # or a reset: closed either way
