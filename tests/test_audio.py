"""``atranscription`` (a multipart upload, read whole before the first attempt) and ``aspeech``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.testing import FakeLLM

AUDIO = b"RIFF" + bytes(range(256)) * 4


VERBOSE = {"text": "hello world", "language": "english", "duration": 1.5,
           "segments": [{"id": 0}]}


def transcription_fake(fail_first: bool = False) -> FakeLLM:
    """Whisper's verbose answer (after one 500 when *fail_first*)."""
    fake = FakeLLM(strict=True)
    rule = fake.on(operation="transcription")
    if fail_first:
        rule.fail(500, body={"error": {"message": "try again"}})
    rule.respond(VERBOSE)
    return fake


async def test_multipart_request_and_answer(tmp_path: Path) -> None:
    fake = transcription_fake()
    path = tmp_path / "clip.wav"
    path.write_bytes(AUDIO)
    async with trillm.Client(transport=fake.transport(), api_key="sk-test") as client:
        r = await client.atranscription("whisper-1", path, language="en",
                                        response_format="verbose_json")
    (sent,) = fake.requests
    assert sent.url == "https://api.openai.com/v1/audio/transcriptions"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = sent.body
    assert b'name="model"\r\n\r\nwhisper-1' in body
    assert b'name="language"\r\n\r\nen' in body
    assert b'filename="clip.wav"' in body and b"Content-Type: audio/x-wav" in body
    assert AUDIO in body
    assert (r.text, r.language, r.duration, r["segments"]) == ("hello world", "english", 1.5,
                                                              [{"id": 0}])


@pytest.mark.parametrize("kind", ["bytes", "file object"])
async def test_bytes_and_file_objects_and_a_retry_resends_the_whole_file(
    kind: str, autojump_clock: trio.testing.MockClock,
) -> None:
    fake = transcription_fake(fail_first=True)
    file = AUDIO if kind == "bytes" else io.BytesIO(AUDIO)
    async with trillm.Client(transport=fake.transport(), api_key="k") as client:
        r = await client.atranscription("whisper-1", file)
    assert r.text == "hello world"
    assert [req.status for req in fake.requests] == [500, 200]
    assert all(AUDIO in req.body for req in fake.requests)  # read once, sent whole twice


async def test_plain_text_formats() -> None:
    fake = FakeLLM(strict=True)
    fake.on(operation="transcription").respond(
        "1\n00:00:00,000 --> 00:00:01,000\nhello\n",
        headers={"content-type": "text/plain; charset=utf-8"})
    async with trillm.Client(transport=fake.transport(), api_key="k") as client:
        r = await client.atranscription("whisper-1", AUDIO, response_format="srt")
    assert r.text.startswith("1\n00:00:00,000")


async def test_bad_files_are_refused_before_any_traffic(tmp_path: Path) -> None:
    async with trillm.Client() as client:
        with pytest.raises(errors.BadRequestError, match="empty"):
            await client.atranscription("mock/whisper", b"")
        text_file = tmp_path / "notes.txt"
        text_file.write_text("hi")
        with text_file.open() as f, pytest.raises(errors.BadRequestError, match="binary"):
            await client.atranscription("mock/whisper", f)
        with pytest.raises(errors.BadRequestError, match="path, bytes"):
            await client.atranscription("mock/whisper", 42)


async def test_mock_transcription_echoes_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "meeting.mp3"
    path.write_bytes(b"ID3 fake")
    r = await trillm.atranscription("mock/whisper-1", path)
    assert r.text == "Mock transcription of meeting.mp3"


async def test_speech_request_bytes_and_file(tmp_path: Path) -> None:
    fake = FakeLLM(strict=True)
    fake.on(operation="speech").respond(b"ID3\x04mp3-bytes",
                                        headers={"content-type": "audio/mpeg"})
    async with trillm.Client(transport=fake.transport(), api_key="k") as client:
        r = await client.aspeech("tts-1", "Hello there", "alloy", speed=1.25)
    (sent,) = fake.requests
    assert json.loads(sent.body) == {"model": "tts-1", "input": "Hello there",
                                     "voice": "alloy", "speed": 1.25}
    assert sent.url == "https://api.openai.com/v1/audio/speech"
    assert r.content == b"ID3\x04mp3-bytes"
    out = tmp_path / "hello.mp3"
    await r.write_to_file(out)
    assert out.read_bytes() == r.content


async def test_mock_speech_is_a_valid_wav() -> None:
    r = await trillm.aspeech("mock/tts-1", "hi", voice="alloy")
    assert r.content[:4] == b"RIFF" and r.content[8:12] == b"WAVE"
    assert r.response_format == "wav"
    with pytest.raises(errors.BadRequestError, match="voice"):
        await trillm.aspeech("mock/tts-1", "hi")


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
async def test_mock_transcription_in_a_text_format_is_the_text_itself(fmt: str) -> None:
    r = await trillm.atranscription("mock/whisper-1", b"RIFF....", response_format=fmt,
                                    mock_response="hello there")
    assert r.text == "hello there"


@pytest.mark.parametrize("name", ['a "q".wav', "back\\slash.wav", "new\nline.wav"])
async def test_mock_transcription_echoes_the_file_name_as_given(
    name: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_bytes(b"RIFF....")
    r = await trillm.atranscription("mock/whisper-1", path)
    assert r.text == f"Mock transcription of {name}"
