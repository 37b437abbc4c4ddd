"""The offline ``mock/`` provider: deterministic answers rendered in OpenAI's wire format.

A mocked call takes the same path as a real one: the openai provider builds the
request; the transport calls :func:`answer` (bound to the call's request record,
through the ``HTTPRequestSpec.local`` seam) instead of a server; the openai
provider parses the bytes that come back.  This module only plans and renders:
the transport does the waiting.

* ``mock/<anything>`` echoes the last user message; ``mock_response="text"``
  (with any model) answers that text; ``mock_response=SomeError("...")``
  raises a copy of that exception on every attempt, so it goes through the
  retry loop like an error from the wire.
* ``mock_latency`` (seconds before the answer or the stream's headers) and
  ``mock_chunk_delay`` (seconds before each streamed event) simulate time.
* Streams go word by word: the first chunk carries the role, the last one the
  finish reason and the usage, then ``[DONE]``.
* The Responses API (``aresponses``) echoes the last user input the same way, whole
  or as a real stream's events (:mod:`trillm.providers.mock_responses`).
* Embeddings are unit vectors derived from each text; images are 1x1 PNGs;
  transcriptions echo the file's name; speech is a quarter second of silent WAV;
  the model list is :data:`MODELS` (``mock-chat`` and ``mock-embedding``).
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import attrs

from .. import errors
from .._wire import HTTPRequestSpec, LocalAnswer
from ..response_types import ResponsesRequest
from ..types import (
    ChatRequest,
    Choice,
    Delta,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    ImageObject,
    ImageRequest,
    ImageResponse,
    Message,
    ModelInfo,
    ModelList,
    ModelResponse,
    ModelsRequest,
    StreamChoice,
    StreamChunk,
    TranscriptionRequest,
    TranscriptionResponse,
    Usage,
)
from .base import AnyRequest
from .mock_responses import input_messages, response_events, response_json

__all__ = ["MODELS", "PROVIDER_NAME", "MockOptions", "answer", "echo_text", "png_1x1",
           "wav_silence"]

PROVIDER_NAME = "mock"
#: ``created`` of every mock answer, so answers are the same from run to run.
CREATED = 1_700_000_000
_WORDS = re.compile(r"\s*\S+")
# Answers carry no headers (a mock stream's .headers stays empty), except speech's type.
_JSON: tuple[tuple[str, str], ...] = ()
_SSE: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class MockOptions:
    """The mock knobs of one call: what to answer (or raise) and how slowly."""

    response: str | BaseException | None = None
    latency: float = 0.0
    chunk_delay: float = 0.0


def _seconds(name: str, value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise errors.BadRequestError(
            f"{name} must be a number of seconds >= 0, not {value!r}", provider=PROVIDER_NAME
        )
    return float(value)


def mock_options(response: Any, latency: Any, chunk_delay: Any) -> MockOptions:
    """Checked :class:`MockOptions` (a clear error before anything is sent)."""
    if response is not None and not isinstance(response, str | BaseException):
        raise errors.BadRequestError(
            "mock_response must be a string or an exception instance, not "
            f"{type(response).__name__}", provider=PROVIDER_NAME,
        )
    return MockOptions(response, _seconds("mock_latency", latency),
                       _seconds("mock_chunk_delay", chunk_delay))


def answer(options: MockOptions, req: AnyRequest, spec: HTTPRequestSpec) -> LocalAnswer:
    """The mock's answer to *req* (sent as *spec*, in OpenAI's format), as the transport
    serves it: the bytes an OpenAI server would send back."""
    if isinstance(options.response, BaseException):
        return LocalAnswer(latency=options.latency, error=options.response)
    said = options.response
    if isinstance(req, ChatRequest):
        text = said if said is not None else echo_text(req.messages)
        if req.stream:
            chunks = tuple(_sse(c) for c in _chat_chunks(req.model, req.messages, text))
            chunks = (*chunks[:-1], chunks[-1] + b"data: [DONE]\n\n")
            if not options.chunk_delay:  # all at once, as one read from a server would bring
                chunks = (b"".join(chunks),)
            return LocalAnswer(200, _SSE, chunks, options.chunk_delay, options.latency)
        return _json(options, _chat(req.model, req.messages, text))
    if isinstance(req, ResponsesRequest):  # rendered by mock_responses
        text = said if said is not None else echo_text(input_messages(req.input))
        if req.stream:
            events = response_events(req, text, CREATED)
            if not options.chunk_delay:
                events = (b"".join(events),)
            return LocalAnswer(200, _SSE, events, options.chunk_delay, options.latency)
        return LocalAnswer(200, _JSON, (response_json(req, text, CREATED),),
                           latency=options.latency)
    if isinstance(req, EmbeddingRequest):
        return _json(options, _embeddings(req.model, req.inputs, req.params.get("dimensions")))
    if isinstance(req, ImageRequest):
        return _json(options, _images(req.prompt, req.params))
    if isinstance(req, TranscriptionRequest):
        text = said if said is not None else f"Mock transcription of {req.file[0]}"
        if req.params.get("response_format") in ("text", "srt", "vtt"):
            return LocalAnswer(200, (("content-type", "text/plain"),), (text.encode(),),
                               latency=options.latency)
        return _json(options, TranscriptionResponse(text, "english", 0.25))
    if isinstance(req, ModelsRequest):
        return _json(options, MODELS)
    audio = wav_silence()  # a SpeechRequest
    chunks = tuple(audio[i:i + 1024] for i in range(0, len(audio), 1024))
    return LocalAnswer(200, (("content-type", "audio/wav"),), chunks, 0.0, options.latency)


#: What the mock lists for ``models.list()`` / ``Client.alist_models("mock")``.
MODELS = ModelList(tuple(
    ModelInfo(name, CREATED, "trillm-mock") for name in ("mock-chat", "mock-embedding")
))


def _json(options: MockOptions, record: Any) -> LocalAnswer:
    return LocalAnswer(200, _JSON, (json.dumps(record.to_dict()).encode(),),
                       latency=options.latency)


def _sse(chunk: StreamChunk) -> bytes:
    return b"data: " + json.dumps(chunk.to_dict()).encode() + b"\n\n"


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):  # content parts: keep the text ones
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return "" if content is None else str(content)


def echo_text(messages: Any) -> str:
    """The text the mock answers when no ``mock_response`` is given."""
    for message in reversed(list(messages)):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return "This is a mock response."


def _usage(messages: Any, words: int) -> Usage:
    chars = sum(len(_text_of(m.get("content"))) for m in messages if isinstance(m, Mapping))
    prompt = math.ceil(chars / 4)
    return Usage(prompt_tokens=prompt, completion_tokens=words, total_tokens=prompt + words)


def _chat(model: str, messages: Any, text: str) -> ModelResponse:
    words = _WORDS.findall(text) or [text]
    return ModelResponse(
        id=_id(model, text), created=CREATED, model=model,
        choices=(Choice(index=0, message=Message(content=text), finish_reason="stop"),),
        usage=_usage(messages, len(words)),
    )


def _chat_chunks(model: str, messages: Any, text: str) -> list[StreamChunk]:
    words = _WORDS.findall(text) or [text]
    rid = _id(model, text)
    chunks = [
        StreamChunk(
            id=rid, created=CREATED, model=model,
            choices=(StreamChoice(delta=Delta(role="assistant" if i == 0 else None, content=w)),),
        )
        for i, w in enumerate(words)
    ]
    chunks.append(StreamChunk(
        id=rid, created=CREATED, model=model, choices=(StreamChoice(finish_reason="stop"),),
        usage=_usage(messages, len(words)),
    ))
    return chunks


def _id(model: str, text: str) -> str:
    return f"mock-{zlib.crc32((model + chr(0) + text).encode()):08x}"


def _embeddings(model: str, inputs: Any, dimensions: Any) -> EmbeddingResponse:
    """Deterministic unit vectors, derived from each input's text (same text, same vector)."""
    if isinstance(inputs, str):
        inputs = [inputs]
    size = dimensions if isinstance(dimensions, int) and dimensions > 0 else 8
    data = []
    for i, item in enumerate(inputs):
        rng = random.Random(zlib.crc32(str(item).encode()))
        vec = [rng.uniform(-1.0, 1.0) for _ in range(size)]
        norm = math.sqrt(sum(x * x for x in vec)) or 1.0
        data.append(Embedding(i, tuple(x / norm for x in vec)))
    tokens = sum(math.ceil(len(str(item)) / 4) for item in inputs)
    usage = Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens)
    return EmbeddingResponse(tuple(data), model, usage)


def png_1x1() -> bytes:
    """A valid 1x1 transparent PNG: what every mock image is."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)  # 1x1, 8-bit RGBA
    pixels = zlib.compress(b"\x00\x00\x00\x00\x00")  # filter 0, one transparent pixel
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
            + chunk(b"IEND", b""))


def _images(prompt: str, params: Mapping[str, Any]) -> ImageResponse:
    """``n`` tiny valid PNGs: as base64 (``b64_json``), or as ``data:`` URLs."""
    n = params.get("n", 1)
    b64 = base64.b64encode(png_1x1()).decode()
    if params.get("response_format") == "b64_json":
        image = ImageObject(b64_json=b64, revised_prompt=prompt)
    else:
        image = ImageObject(url=f"data:image/png;base64,{b64}", revised_prompt=prompt)
    return ImageResponse(CREATED, (image,) * n)


def wav_silence(seconds: float = 0.25, rate: int = 8000) -> bytes:
    """A short valid WAV file (16-bit mono silence): what every mock speech is."""
    frames = int(seconds * rate)
    data = b"\x00\x00" * frames
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16,
                         1, 1, rate, rate * 2, 2, 16, b"data", len(data))
    return header + data
