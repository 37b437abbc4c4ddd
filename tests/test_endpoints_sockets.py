"""Embeddings, images, transcription and speech against the kit's FakeLLM served on 127.0.0.1
(real sockets, real clock, a fail_after guard): request shape on the wire, parsing, error
mapping, timeouts, and the connection released when the caller cancels.  The last test's
server accepts a connection and never reads: a bare listener, not a fake LLM."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

import trillm
from trillm import errors
from trillm.testing import FakeLLM, FakeRequest

GUARD = 10
AUDIO = b"RIFF" + bytes(range(256)) * 64  # 16 kB


def _embeddings(request: FakeRequest) -> dict[str, Any]:
    inputs = request.params["input"]
    return {"object": "list", "model": "e", "usage": {
        "prompt_tokens": len(inputs), "total_tokens": len(inputs)},
        "data": [{"index": i, "embedding": [float(len(t)), 0.0]} for i, t in enumerate(inputs)]}


def _transcription(request: FakeRequest) -> str:
    ok = request.headers["content-type"].startswith("multipart/form-data")
    return f"{len(request.body)} bytes, whole: {AUDIO in request.body}, multipart: {ok}"


def endpoints() -> FakeLLM:
    """Each endpoint's answer, made to measure from the request where it tells something."""
    fake = FakeLLM(strict=True)
    fake.on(operation="embeddings").respond(_embeddings)
    fake.on(operation="images").respond({"created": 1, "data": [{"url": "https://img/1.png"}]})
    fake.on(operation="transcription").reply(_transcription)
    fake.on(operation="speech").respond(b"ID3-audio-bytes", headers={"content-type": "audio/mpeg"})
    return fake


def client_at(base: str, **kw: Any) -> trillm.Client:
    return trillm.Client(api_base=base + "/v1", api_key="sk-test", **kw)


async def test_every_endpoint_over_the_wire() -> None:
    fake = endpoints()
    with trio.fail_after(GUARD):
        async with fake.serve() as url, client_at(url) as client:
            emb = await client.aembedding("openai/text-embedding-3-small", ["a", "bb"])
            img = await client.aimage_generation("openai/dall-e-3", "a cat")
            tr = await client.atranscription("openai/whisper-1", AUDIO)
            sp = await client.aspeech("openai/tts-1", "hi", "alloy")
            assert client.statistics().active_connections == 0
    fake.check()
    assert [e.embedding[0] for e in emb.data] == [1.0, 2.0]
    assert img.data[0].url == "https://img/1.png"
    assert tr.text.endswith("whole: True, multipart: True")
    assert sp.content == b"ID3-audio-bytes"
    upload = next(r for r in fake.requests if r.path.endswith("/audio/transcriptions"))
    assert b'name="model"\r\n\r\nwhisper-1' in upload.body


@pytest.mark.parametrize(("status", "cls"), [
    (401, errors.AuthenticationError), (404, errors.NotFoundError),
    (429, errors.RateLimitError), (500, errors.InternalServerError),
])
async def test_errors_map_to_their_classes(status: int, cls: type[errors.APIError]) -> None:
    fake = FakeLLM()
    fake.on().fail(status, body={"error": {"message": f"status {status}"}})
    with trio.fail_after(GUARD):
        async with fake.serve() as url, client_at(url, max_retries=0) as client:
            for call in (
                lambda: client.aembedding("openai/e", "x"),
                lambda: client.aimage_generation("openai/dall-e-3", "x"),
                lambda: client.atranscription("openai/whisper-1", AUDIO),
                lambda: client.aspeech("openai/tts-1", "x", "alloy"),
            ):
                with pytest.raises(cls):
                    await call()
    assert [r.operation for r in fake.requests] == [
        "embeddings", "images", "transcription", "speech"]


async def test_a_server_that_never_answers_times_out_and_the_connection_closes() -> None:
    fake = FakeLLM()
    fake.on().hang()
    with trio.fail_after(GUARD):
        async with fake.serve() as url, client_at(url, max_retries=0) as client:
            with pytest.raises(errors.Timeout):
                await client.atranscription("openai/whisper-1", AUDIO, timeout=0.3)
            await fake.requests[0].wait_ended()  # the server saw the connection close
            assert fake.requests[0].cancelled_by_client
            assert client.statistics().active_connections == 0


async def test_caller_cancelling_an_upload_releases_the_connection() -> None:
    arrived = trio.Event()

    def arriving(request: FakeRequest) -> bool:
        arrived.set()
        return True

    fake = FakeLLM()
    fake.on(when=arriving).hang()
    with trio.fail_after(GUARD):
        async with fake.serve() as url, client_at(url) as client:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.atranscription, "openai/whisper-1", AUDIO)
                await arrived.wait()
                nursery.cancel_scope.cancel()
            await fake.requests[0].wait_ended()
            assert fake.requests[0].cancelled_by_client
            stats = client.statistics()
            assert (stats.requests_in_flight, stats.active_connections) == (0, 0)
    assert json.dumps(dict(fake.requests[0].headers)).count("multipart") == 1


async def test_streamed_speech_arrives_in_parts_and_closes(tmp_path: Any) -> None:
    fake = FakeLLM()
    fake.on(operation="speech").respond([b"ID3-part-1", b"-part-2", b"-part-3"],
                                        headers={"content-type": "audio/mpeg"}, chunk_delay=0.01)
    with trio.fail_after(GUARD):
        async with fake.serve() as url, client_at(url, max_concurrency=1) as client:
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
    fake = FakeLLM()
    fake.on(operation="speech").respond([b"ID3-first"], headers={"content-type": "audio/mpeg"},
                                        then="hang")
    with trio.fail_after(GUARD):
        async with fake.serve() as url, client_at(url) as client:
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
            await fake.requests[0].wait_ended()
            assert fake.requests[0].cancelled_by_client
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
