"""The offline ``mock/`` provider: deterministic answers with no network at all.

``mock/<anything>`` echoes the last user message; ``mock_response="text"`` (with
any model) answers that text instead, and ``mock_response=SomeError("...")``
raises that exception on every attempt, so it goes through the Client's retry
loop like an error from the wire.  ``mock_latency`` (seconds before the answer
or the stream's headers) and ``mock_chunk_delay`` (seconds before each streamed
chunk) simulate time; the Client does the sleeping, this module only plans.
Streams go word by word: the first chunk carries the role, the last one the
finish reason and the usage.
"""

from __future__ import annotations

import base64
import math
import random
import re
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import attrs

from .. import errors
from ..types import (
    ChatRequest,
    Choice,
    Delta,
    Embedding,
    EmbeddingResponse,
    ImageObject,
    ImageResponse,
    Message,
    ModelResponse,
    StreamChoice,
    StreamChunk,
    TranscriptionResponse,
    Usage,
)

__all__ = [
    "MockPlan", "plan", "plan_embedding", "plan_image", "plan_speech", "plan_transcription",
    "PROVIDER_NAME",
]

PROVIDER_NAME = "mock"
#: ``created`` of every mock answer, so answers are the same from run to run.
CREATED = 1_700_000_000
_WORDS = re.compile(r"\s*\S+")


@attrs.frozen
class MockPlan:
    """What the mock call will do: wait ``latency``, then raise ``error`` or answer."""

    latency: float
    chunk_delay: float
    error: BaseException | None = None
    response: Any = None  # a ModelResponse, or an EmbeddingResponse
    chunks: tuple[Any, ...] = ()  # StreamChunk records, or audio bytes


def _seconds(name: str, value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise errors.BadRequestError(
            f"{name} must be a number of seconds >= 0, not {value!r}", provider=PROVIDER_NAME
        )
    return float(value)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):  # content parts: keep the text ones
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return "" if content is None else str(content)


def echo_text(messages: tuple[Mapping[str, Any], ...]) -> str:
    """The text the mock answers when no ``mock_response`` is given."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return "This is a mock response."


def plan(
    req: ChatRequest,
    *,
    mock_response: str | BaseException | None,
    latency: float | None = None,
    chunk_delay: float | None = None,
) -> MockPlan:
    """Plan the mock answer to *req* (a whole response, or chunks when streaming)."""
    delay = _seconds("mock_latency", latency)
    per_chunk = _seconds("mock_chunk_delay", chunk_delay)
    if isinstance(mock_response, BaseException):
        return MockPlan(delay, per_chunk, error=mock_response)
    if mock_response is None:
        text = echo_text(req.messages)
    elif isinstance(mock_response, str):
        text = mock_response
    else:
        raise errors.BadRequestError(
            f"mock_response must be a string or an exception instance, not "
            f"{type(mock_response).__name__}",
            provider=PROVIDER_NAME, model=req.model,
        )
    prompt_chars = sum(len(_text_of(m.get("content"))) for m in req.messages)
    words = _WORDS.findall(text) or [text]
    usage = Usage(
        prompt_tokens=math.ceil(prompt_chars / 4),
        completion_tokens=len(words),
        total_tokens=math.ceil(prompt_chars / 4) + len(words),
    )
    digest = zlib.crc32((req.model + "\0" + text).encode())
    rid = f"mock-{digest:08x}"
    if not req.stream:
        response = ModelResponse(
            id=rid, created=CREATED, model=req.model,
            choices=(Choice(index=0, message=Message(content=text), finish_reason="stop"),),
            usage=usage,
        )
        return MockPlan(delay, per_chunk, response=response)
    chunks = [
        StreamChunk(
            id=rid, created=CREATED, model=req.model,
            choices=(StreamChoice(delta=Delta(role="assistant" if i == 0 else None, content=w)),),
        )
        for i, w in enumerate(words)
    ]
    chunks.append(
        StreamChunk(
            id=rid, created=CREATED, model=req.model,
            choices=(StreamChoice(finish_reason="stop"),), usage=usage,
        )
    )
    return MockPlan(delay, per_chunk, chunks=tuple(chunks))


def plan_embedding(
    model: str,
    inputs: tuple[Any, ...],
    *,
    offset: int = 0,
    dimensions: int | None = None,
    mock_response: BaseException | None = None,
    latency: float | None = None,
) -> MockPlan:
    """Deterministic unit vectors, derived from each input's text (same text, same vector)."""
    delay = _seconds("mock_latency", latency)
    if mock_response is not None:
        return MockPlan(delay, 0.0, error=mock_response)
    size = 8 if dimensions is None else dimensions
    data = []
    for i, item in enumerate(inputs):
        rng = random.Random(zlib.crc32(str(item).encode()))
        vec = [rng.uniform(-1.0, 1.0) for _ in range(size)]
        norm = math.sqrt(sum(x * x for x in vec)) or 1.0
        data.append(Embedding(offset + i, tuple(x / norm for x in vec)))
    tokens = sum(math.ceil(len(str(item)) / 4) for item in inputs)
    usage = Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens)
    return MockPlan(delay, 0.0, response=EmbeddingResponse(tuple(data), model, usage))


def png_1x1() -> bytes:
    """A valid 1x1 transparent PNG: what every mock image is."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)  # 1x1, 8-bit RGBA
    pixels = zlib.compress(b"\x00\x00\x00\x00\x00")  # filter 0, one transparent pixel
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def plan_image(
    prompt: str,
    *,
    n: int = 1,
    response_format: str = "url",
    mock_response: BaseException | None = None,
    latency: float | None = None,
) -> MockPlan:
    """*n* tiny valid PNGs: as base64 (``b64_json``), or as ``data:`` URLs."""
    delay = _seconds("mock_latency", latency)
    if mock_response is not None:
        return MockPlan(delay, 0.0, error=mock_response)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise errors.BadRequestError(f"n must be an int >= 1, not {n!r}", provider=PROVIDER_NAME)
    b64 = base64.b64encode(png_1x1()).decode()
    if response_format == "b64_json":
        image = ImageObject(b64_json=b64, revised_prompt=prompt)
    else:
        image = ImageObject(url=f"data:image/png;base64,{b64}", revised_prompt=prompt)
    return MockPlan(delay, 0.0, response=ImageResponse(CREATED, (image,) * n))


def wav_silence(seconds: float = 0.25, rate: int = 8000) -> bytes:
    """A short valid WAV file (16-bit mono silence): what every mock speech is."""
    frames = int(seconds * rate)
    data = b"\x00\x00" * frames
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16,
                         1, 1, rate, rate * 2, 2, 16, b"data", len(data))
    return header + data


def plan_transcription(
    filename: str, *, mock_response: BaseException | str | None = None,
    latency: float | None = None,
) -> MockPlan:
    """A transcription that echoes the file's name (or says ``mock_response``)."""
    delay = _seconds("mock_latency", latency)
    if isinstance(mock_response, BaseException):
        return MockPlan(delay, 0.0, error=mock_response)
    text = mock_response if mock_response is not None else f"Mock transcription of {filename}"
    return MockPlan(delay, 0.0, response=TranscriptionResponse(text, "english", 0.25))


def plan_speech(*, mock_response: BaseException | None = None,
                latency: float | None = None) -> MockPlan:
    """A quarter of a second of silence, as a valid WAV file."""
    delay = _seconds("mock_latency", latency)
    if mock_response is not None:
        return MockPlan(delay, 0.0, error=mock_response)
    return MockPlan(delay, 0.0, response=wav_silence())
