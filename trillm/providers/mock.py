"""The offline ``mock/`` provider: deterministic answers rendered in OpenAI's wire format.

A mocked call takes the same path as a real one: the openai provider builds the
request; the transport calls :func:`answer` (bound to the call's request record,
through the ``HTTPRequestSpec.local`` seam) instead of a server; the openai
provider parses the bytes that come back.  This module only plans and renders:
the transport does the waiting.

* ``mock/<anything>`` echoes the last user message; ``mock_response="text"``
  (with any model) answers that text; ``mock_response=SomeError("...")``
  raises a copy of that exception on every attempt, so it goes through the
  retry loop like an error from the wire; ``mock_response=`` a
  :class:`~trillm.types.ModelResponse` (or, through the Client, a chat
  completion dict: several choices, tool calls, usage) answers that response,
  its empty ``id`` / ``created`` / ``model`` filled in as for the echo; streamed, it
  comes as the chunks that answer amounts to (word by word, each tool call's id
  and name then its arguments, the finish reasons, then the usage).  The Responses
  API and transcriptions answer the text of its first choice.
* ``mock_tool_calls=[...]`` (with any model, as in LiteLLM) answers with those
  tool calls (OpenAI's shape: ``{"id": ..., "function": {"name": ...,
  "arguments": ...}}``; a missing id is ``call_<k>``, arguments may be a dict)
  and ``finish_reason="tool_calls"``; the content is ``mock_response`` when it is
  given as text, else None.  Streamed, each call comes whole in one chunk.
* ``mock_latency`` (seconds before the answer or the stream's headers) and
  ``mock_chunk_delay`` (seconds before each streamed event) simulate time.
* With a ``response_format`` schema (a pydantic model class or OpenAI's
  ``json_schema`` form) and no ``mock_response``, the answer is the JSON of
  :func:`schema_instance` of the schema sent (for a model: the strict OpenAI
  schema), an instance that validates; ``{"type": "json_object"}`` answers ``{}``.
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
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .. import errors
from .._mock_wire import LocalAnswer, MockOptions
from .._wire import HTTPRequestSpec
from ..response_types import ResponsesRequest
from ..types import (
    EMPTY_STREAM_CHOICES,
    ChatRequest,
    Choice,
    Delta,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    FunctionCall,
    FunctionDelta,
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
    ToolCall,
    ToolCallDelta,
    TranscriptionRequest,
    TranscriptionResponse,
    Usage,
)
from .base import AnyRequest
from .mock_responses import input_messages, response_events, response_json
from .render import response_chunks

__all__ = ["MODELS", "PROVIDER_NAME", "MockOptions", "answer", "echo_text", "png_1x1",
           "schema_instance", "wav_silence"]

PROVIDER_NAME = "mock"
#: ``created`` of every mock answer, so answers are the same from run to run.
CREATED = 1_700_000_000
_WORDS = re.compile(r"\s*\S+")
# Answers carry no headers (a mock stream's .headers stays empty), except speech's type.
_JSON: tuple[tuple[str, str], ...] = ()
_SSE: tuple[tuple[str, str], ...] = ()


def _seconds(name: str, value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise errors.BadRequestError(
            f"{name} must be a number of seconds >= 0, not {value!r}", provider=PROVIDER_NAME
        )
    return float(value)


def mock_options(
    response: Any, latency: Any, chunk_delay: Any, tool_calls: Any = None
) -> MockOptions:
    """Checked :class:`MockOptions` (a clear error before anything is sent)."""
    if response is not None and not isinstance(response, str | BaseException | ModelResponse):
        raise errors.BadRequestError(
            "mock_response must be a string, an exception instance, a ModelResponse or a "
            f"chat completion dict, not {type(response).__name__}", provider=PROVIDER_NAME,
        )
    if isinstance(response, ModelResponse) and tool_calls is not None:
        raise errors.BadRequestError(
            "mock_tool_calls cannot go with a whole mock_response: put the tool calls in "
            "the response's message", provider=PROVIDER_NAME)
    return MockOptions(response, _seconds("mock_latency", latency),
                       _seconds("mock_chunk_delay", chunk_delay),
                       None if tool_calls is None else _tool_calls(tool_calls))


def _tool_calls(given: Any) -> tuple[ToolCall, ...]:
    """``mock_tool_calls`` as records: OpenAI-shape dicts (or ToolCall records)."""
    if isinstance(given, str | bytes) or not isinstance(given, Sequence):
        given = [given]  # reported below as a bad item
    calls = []
    for k, call in enumerate(given):
        f = call.get("function") if isinstance(call, Mapping) else None
        name = f.get("name") if isinstance(f, Mapping) else None
        args = f.get("arguments", "{}") if isinstance(f, Mapping) else None
        if isinstance(args, Mapping):
            args = json.dumps(dict(args))
        call_id = (call.get("id") or f"call_{k}") if isinstance(call, Mapping) else None
        if not (isinstance(name, str) and name and isinstance(args, str)
                and isinstance(call_id, str)):
            raise errors.BadRequestError(
                "mock_tool_calls must be a list of tool calls like {'id': 'call_1', "
                "'function': {'name': 'f', 'arguments': '{}'}}, not " + repr(call)[:100],
                provider=PROVIDER_NAME,
            )
        calls.append(ToolCall(call_id, FunctionCall(name, args)))
    return tuple(calls)


def answer(options: MockOptions, req: AnyRequest, spec: HTTPRequestSpec) -> LocalAnswer:
    """The mock's answer to *req* (sent as *spec*, in OpenAI's format), as the transport
    serves it: the bytes an OpenAI server would send back."""
    if isinstance(options.response, BaseException):
        return LocalAnswer(latency=options.latency, error=options.response)
    if spec.url.endswith("/responses/input_tokens"):  # token counting: one token a word
        return LocalAnswer(200, _JSON, (json.dumps(
            {"object": "response.input_tokens", "input_tokens": _words(spec.json)}).encode(),),
            latency=options.latency)
    if isinstance(options.response, ModelResponse):
        whole = options.response
        if isinstance(req, ChatRequest):
            return _whole(options, req, whole)
        said: str | None = whole.choices[0].message.content if whole.choices else None
        said = "" if said is None else said
    else:
        said = options.response
    if isinstance(req, ChatRequest) and options.tool_calls is not None:
        if req.stream:
            return _stream(options, _tool_call_chunks(req.model, req.messages, said,
                                                      options.tool_calls))
        return _json(options, _tool_call_answer(req.model, req.messages, said,
                                                options.tool_calls))
    if isinstance(req, ChatRequest):
        if said is None:
            said = _structured_text(spec.json)
        text = said if said is not None else echo_text(req.messages)
        if req.stream:
            return _stream(options, _chat_chunks(req.model, req.messages, text))
        return _json(options, _chat(req.model, req.messages, text))
    if isinstance(req, ResponsesRequest):  # rendered by mock_responses
        if said is None:
            said = _structured_text(_chat_format(spec.json))
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


def _whole(options: MockOptions, req: ChatRequest, whole: ModelResponse) -> LocalAnswer:
    """A whole ``mock_response`` answer, its empty id, created and model filled in."""
    whole = attrs.evolve(whole, id=whole.id or _id(req.model, repr(whole.choices)),
                         created=whole.created or CREATED, model=whole.model or req.model)
    if req.stream:
        return _stream(options, response_chunks(whole))
    return _json(options, whole)


def _stream(options: MockOptions, records: list[StreamChunk]) -> LocalAnswer:
    chunks = tuple(_sse(c) for c in records)
    chunks = (*chunks[:-1], chunks[-1] + b"data: [DONE]\n\n")
    if not options.chunk_delay:  # all at once, as one read from a server would bring
        chunks = (b"".join(chunks),)
    return LocalAnswer(200, _SSE, chunks, options.chunk_delay, options.latency)


def _tool_call_answer(model: str, messages: Any, text: str | None,
                      calls: tuple[ToolCall, ...]) -> ModelResponse:
    rid = _id(model, "".join(c.function.name + c.function.arguments for c in calls))
    return ModelResponse(
        id=rid, created=CREATED, model=model,
        choices=(Choice(index=0, message=Message(content=text, tool_calls=calls),
                        finish_reason="tool_calls"),),
        usage=_usage(messages, len(calls) + len(_WORDS.findall(text or ""))),
    )


def _tool_call_chunks(model: str, messages: Any, text: str | None,
                      calls: tuple[ToolCall, ...]) -> list[StreamChunk]:
    whole = _tool_call_answer(model, messages, text, calls)

    def chunk(delta: Delta, finish: str | None = None, usage: Usage | None = None) -> StreamChunk:
        return StreamChunk(id=whole.id, created=CREATED, model=model,
                           choices=(StreamChoice(delta=delta, finish_reason=finish),), usage=usage)

    out = [chunk(Delta(role="assistant", content=text))]
    out += [chunk(Delta(tool_calls=(ToolCallDelta(k, c.id, "function", FunctionDelta(
        c.function.name, c.function.arguments)),))) for k, c in enumerate(calls)]
    out.append(chunk(Delta(), "tool_calls", whole.usage))
    return out


def _words(value: Any) -> int:
    """The words in every string of a request body's ``input`` and ``tools``."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, Mapping):
        return sum(_words(v) for k, v in value.items()
                   if k in ("input", "tools", "content", "text", "output", "arguments",
                            "description"))
    if isinstance(value, list | tuple):
        return sum(_words(v) for v in value)
    return 0


def _json(options: MockOptions, record: Any) -> LocalAnswer:
    return LocalAnswer(200, _JSON, (json.dumps(record.to_dict()).encode(),),
                       latency=options.latency)


def _sse(chunk: StreamChunk) -> bytes:
    data = chunk.to_dict()
    if chunk.usage is not None and chunk.choices == EMPTY_STREAM_CHOICES:
        data["choices"] = []  # a usage-only chunk, as OpenAI sends it
    return b"data: " + json.dumps(data).encode() + b"\n\n"


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


def _chat_format(body: Any) -> Any:
    """A Responses body's ``text.format`` as the chat ``response_format`` it amounts to."""
    text = body.get("text") if isinstance(body, Mapping) else None
    fmt = text.get("format") if isinstance(text, Mapping) else None
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        return {"response_format": fmt}
    return {"response_format": {"type": "json_schema", "json_schema": fmt}}


def _structured_text(body: Any) -> str | None:
    """The mock's answer to the ``response_format`` in the request *body*, if it has one."""
    fmt = body.get("response_format") if isinstance(body, Mapping) else None
    if not isinstance(fmt, Mapping):
        return None
    if fmt.get("type") == "json_object":
        return "{}"
    spec = fmt.get("json_schema")
    if fmt.get("type") != "json_schema" or not isinstance(spec, Mapping):
        return None
    schema = spec.get("schema")
    return json.dumps(schema_instance(schema)) if isinstance(schema, Mapping) else "{}"


# Strings in a `format` that an empty string would not satisfy.
_FORMATTED = {
    "date-time": "1970-01-01T00:00:00Z", "date": "1970-01-01", "time": "00:00:00Z",
    "duration": "PT0S", "email": "user@example.com", "hostname": "example.com",
    "uri": "https://example.com/", "uuid": "00000000-0000-0000-0000-000000000000",
    "ipv4": "0.0.0.0", "ipv6": "::",
}
_MAX_DEPTH = 64


def schema_instance(schema: Mapping[str, Any]) -> Any:
    """A deterministic value that *schema* (a JSON schema) accepts, for offline answers.

    The first ``enum`` value or the ``const``; ``null`` when a union allows it (so an
    optional, recursive field ends the recursion), else its first branch; objects with
    every ``required`` property (others left out); arrays of ``minItems`` (0 unless
    given) items; ``0`` / ``0.0`` (or the ``minimum``), ``false``, and strings of
    ``minLength`` ``"a"``'s (a sample value for a known ``format`` such as
    ``date-time``).  Local ``$ref``s are followed.  ``pattern`` is not honoured.
    Raises ``ValueError`` for a schema that needs an endless value (a required,
    non-nullable field referring to its own model).
    """
    return _instance(schema, schema, 0)


def _instance(node: Any, root: Mapping[str, Any], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise ValueError("the schema has no finite instance (a required recursive field?)")
    if not isinstance(node, Mapping):
        return None  # `true` / a missing schema: anything goes
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if "const" in node:
        return node["const"]
    enum = node.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf"):
        branches = node.get(key)
        if isinstance(branches, list) and branches:
            if any(isinstance(b, Mapping) and b.get("type") == "null" for b in branches):
                return None
            return _instance(branches[0], root, depth + 1)
    parts = node.get("allOf")
    if isinstance(parts, list) and parts:
        values = [_instance(p, root, depth + 1) for p in parts]
        if all(isinstance(v, dict) for v in values):
            return {k: v for value in values for k, v in value.items()}
        return values[0]
    kind = node.get("type")
    if isinstance(kind, list):
        if "null" in kind:
            return None
        kind = kind[0] if kind else None
    if kind == "object" or (kind is None and "properties" in node):
        properties = node.get("properties") or {}
        return {name: _instance(properties.get(name), root, depth + 1)
                for name in node.get("required") or ()}
    if kind == "array":
        prefix = node.get("prefixItems") or []
        items = [_instance(p, root, depth + 1) for p in prefix]
        need = node.get("minItems") or 0
        if len(items) < need:
            items += [_instance(node.get("items"), root, depth + 1)] * (need - len(items))
        return items
    if kind == "string":
        sample = _FORMATTED.get(node.get("format", ""))
        return sample if sample is not None else "a" * (node.get("minLength") or 0)
    if kind in ("integer", "number"):
        return _number(node, kind == "integer")
    if kind == "boolean":
        return False
    return None


def _number(node: Mapping[str, Any], integer: bool) -> int | float:
    value: float = 0
    low, above = node.get("minimum"), node.get("exclusiveMinimum")
    high, below = node.get("maximum"), node.get("exclusiveMaximum")
    if isinstance(low, int | float) and value < low:
        value = math.ceil(low) if integer else low
    if isinstance(above, int | float) and value <= above:
        value = math.floor(above) + 1 if integer else above + 1
    if isinstance(high, int | float) and value > high:
        value = math.floor(high) if integer else high
    if isinstance(below, int | float) and value >= below:
        value = math.ceil(below) - 1 if integer else below - 1
    return int(value) if integer else float(value)


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
