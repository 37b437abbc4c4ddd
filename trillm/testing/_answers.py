"""Scripted answers, and the plan that carries one out on the wire (pure: no I/O).

A verb of a rule queues an :class:`Answer`; :func:`make_plan` turns it, for one
request, into a :class:`Plan`: status, headers, body chunks and their delays,
and the faults (hang, a cut connection).  The bodies are rendered by the
providers' own render steps, so they are exactly what the real parsers read.
The in-memory transport and the loopback server both carry out plans.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import random
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from .._records import record_repr
from ..providers import anthropic, gemini, mock, openai
from ..providers.openai_responses_render import DELTA_EVENTS
from ..providers.render import response_chunks, words
from ..response_types import (
    Response,
    ResponseFunctionCall,
    ResponseInputTokensDetails,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseOutputTokensDetails,
    ResponseUsage,
)
from ..types import (
    Choice,
    Embedding,
    EmbeddingResponse,
    FunctionCall,
    ImageObject,
    ImageResponse,
    Message,
    ModelInfo,
    ModelList,
    ModelResponse,
    StreamChunk,
    ToolCall,
    TranscriptionResponse,
    Usage,
)
from ._formats import ParsedRequest, last_user_text

__all__ = ["Answer", "Plan", "make_plan", "tool_calls_of"]

#: ``created`` of every fake answer.
CREATED = 1_700_000_000
_JSON = (("content-type", "application/json"),)
_SSE = (("content-type", "text/event-stream"), ("cache-control", "no-cache"))


@attrs.frozen(repr=False)
class Answer:
    """One scripted answer: what a verb (``reply``, ``stream``, ``fail``, ...) queued."""

    __repr__ = record_repr

    kind: str  # "reply", "stream", "fail", "disconnect", "hang" or "respond"
    text: Any = None  # a str, or a function of the FakeRequest (resolved before planning)
    tool_calls: tuple[ToolCall, ...] | None = None
    pieces: tuple[str, ...] | None = None
    delay: float = 0.0  # before the headers
    piece_delay: float = 0.0  # before each streamed piece
    status: int = 200
    retry_after: float | None = None
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    after_chunks: int | None = None  # disconnect: None = before the headers
    raw: Any = None  # respond: the body (bytes, str, JSON, chunks) or a function giving it
    then: str = "end"  # respond: "end", "hang" or "disconnect" after the body

    def resolve(self, request: Any) -> Answer:
        """This answer with its request-dependent parts (functions) applied to *request*."""
        if callable(self.text):
            text = self.text(request)
            if not isinstance(text, str):
                raise TypeError(f"reply(fn): fn returned {text!r}, not a str")
            return attrs.evolve(self, text=text)
        if callable(self.raw):
            return attrs.evolve(self, raw=self.raw(request))
        return self

    def describe(self) -> str:
        """The verb call that queued this answer, for messages."""
        if self.kind == "fail":
            extra = f", retry_after={self.retry_after!r}" if self.retry_after is not None else ""
            return f".fail({self.status}{extra})"
        if self.kind == "stream":
            return f".stream({list(self.pieces or ())!r}, delay={self.piece_delay!r})"
        if self.kind == "disconnect":
            return f".disconnect(after_chunks={self.after_chunks!r})"
        if self.kind == "hang":
            return ".hang()"
        if self.kind == "respond":
            return f".respond(status={self.status!r}, then={self.then!r})"
        if callable(self.text):
            return f".reply({getattr(self.text, '__name__', 'fn')})"
        if self.tool_calls:
            return f".reply(tool_calls=[{len(self.tool_calls)} call(s)])"
        return f".reply({self.text!r})"


@attrs.frozen(repr=False)
class Plan:
    """How to answer one request: wait ``delay``, then (unless ``hang`` or
    ``cut_before_headers``) send ``status`` and ``headers``, then each of ``frames``
    after ``frame_delay`` seconds (or ``delays[k]`` before frame *k*, when given: a
    cassette's timing); ``cut`` breaks the connection after the frames, ``stall`` keeps
    it open without a word more (until the client gives up).  A plan with a
    ``relay`` (recording) answers whatever the relay brings from upstream instead."""

    __repr__ = record_repr

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    frames: tuple[bytes, ...] = ()
    frame_delay: float = 0.0
    delay: float = 0.0
    hang: bool = False
    cut_before_headers: bool = False
    cut: bool = False
    delays: tuple[float, ...] = ()
    relay: Any = None
    stall: bool = False

    def wait_before(self, k: int) -> float:
        """Seconds to wait before frame *k*."""
        return self.delays[k] if self.delays else self.frame_delay


def tool_calls_of(calls: Sequence[Any]) -> tuple[ToolCall, ...]:
    """Tool calls given as :class:`ToolCall` records, ``{"name", "arguments", "id"?,
    "extra_content"?}`` (arguments a dict or a JSON string) or OpenAI's ``{"id",
    "function": {...}, "extra_content"?}``.  A call given without an id gets ``""``:
    :func:`_with_ids` gives it the provider's kind of id when the answer is made."""
    out = []
    for call in calls:
        if isinstance(call, ToolCall):
            out.append(call)
            continue
        if not isinstance(call, Mapping):
            raise TypeError(f"a tool call must be a mapping or a ToolCall, not {call!r}")
        inner = call.get("function")
        f: Mapping[str, Any] = inner if isinstance(inner, Mapping) else call
        args = f.get("arguments", {})
        if not isinstance(args, str):
            args = json.dumps(args)
        extra = call.get("extra_content")
        if extra is not None and not isinstance(extra, Mapping):
            raise TypeError(f"extra_content must be a mapping, not {extra!r}")
        out.append(ToolCall(str(call.get("id") or ""),
                            FunctionCall(str(f.get("name") or ""), args), extra_content=extra))
    return tuple(out)


def _with_ids(req: ParsedRequest, calls: tuple[ToolCall, ...]) -> tuple[ToolCall, ...]:
    """*calls* with an id for each call scripted without one: ``call_K``, or for Gemini the
    id its parser derives (``call_0_K``, which is not sent: Gemini 2 sends none).  A call's
    own id is kept on every wire (Gemini 3 sends its ids)."""
    made = "call_0_{}" if req.provider == "gemini" else "call_{}"
    return tuple(c if c.id else attrs.evolve(c, id=made.format(k)) for k, c in enumerate(calls))


def _renderer(provider: str) -> Any:
    return {"anthropic": anthropic.PROVIDER, "gemini": gemini.PROVIDER}.get(provider,
                                                                           openai.PROVIDER)


def _usage(req: ParsedRequest, completion: int) -> Usage:
    chars = len(json.dumps([m.get("content") for m in req.messages], default=str))
    prompt = math.ceil(chars / 4)
    return Usage(prompt, completion, prompt + completion)


def _chat_answer(req: ParsedRequest, text: str | None, calls: tuple[ToolCall, ...] | None,
                 rid: str) -> ModelResponse:
    if calls:
        calls = _with_ids(req, calls)
    completion = len(words(text or "")) + sum(len(words(c.function.arguments))
                                              for c in calls or ())
    message = Message(content=text if text or not calls else None, tool_calls=calls or None)
    created = CREATED if req.provider in ("openai", "azure", "unknown") else 0
    return ModelResponse(rid, created, req.model or "fake-model",
                         (Choice(0, message, "tool_calls" if calls else "stop"),),
                         _usage(req, completion))


def _stream_frames(render: Callable[..., list[bytes]], chunks: list[StreamChunk]) -> list[bytes]:
    """The rendered stream of *chunks*, one frame per piece of content: the first frame
    starts the stream, the last one ends it."""
    events = render(chunks)
    ends = [k + 1 for k, c in enumerate(chunks) if _has_content(c)][:-1]
    edges = [0, *(len(render(chunks[:k], end=False)) for k in ends), len(events)]
    return [b"".join(events[a:b]) for a, b in itertools.pairwise(edges)]


def _has_content(chunk: StreamChunk) -> bool:
    d = chunk.choices[0].delta
    return bool(d.content or d.reasoning_content or d.refusal or d.tool_calls)


def _chat_plan(req: ParsedRequest, answer: Answer, text: str, rid: str) -> Plan:
    provider = _renderer(req.provider)
    pieces = list(answer.pieces) if answer.pieces is not None else None
    response = _chat_answer(req, text, answer.tool_calls, rid)
    if not req.stream:
        body = provider.render_chat(response)
        delay = answer.delay + answer.piece_delay * len(pieces or ())
        if answer.kind == "disconnect":
            half = len(body) // 2
            return Plan(200, _JSON, (body[:half], body[half:])[:answer.after_chunks or 0],
                        delay=delay, cut=True)
        return Plan(200, _JSON, (body,), delay=delay)
    content = response.choices[0].message.content
    chunks = response_chunks(response, lambda t: pieces if pieces and t == content
                             else words(t))
    frames = _stream_frames(provider.render_chat_stream, chunks)
    if req.provider == "gemini" and not req.sse:  # a JSON array of the responses
        items = [e.removeprefix(b"data: ").strip() for f in frames for e in f.split(b"\n\n") if e]
        return Plan(200, _JSON, (b"[" + b",".join(items) + b"]",), delay=answer.delay)
    if answer.kind == "disconnect":
        frames = frames[:answer.after_chunks or 0]
    return Plan(200, _SSE, tuple(frames), answer.piece_delay, answer.delay,
                cut=answer.kind == "disconnect")


def _responses_answer(req: ParsedRequest, text: str | None,
                      calls: tuple[ToolCall, ...] | None, rid: str) -> Response:
    output: list[Any] = []
    calls = _with_ids(req, calls) if calls else calls
    if text or not calls:
        output.append(ResponseOutputMessage(f"msg_{rid}", (ResponseOutputText(text or ""),),
                                            status="completed"))
    output += [ResponseFunctionCall(c.id, c.function.name, c.function.arguments,
                                    f"fc_{rid}_{k}", "completed")
               for k, c in enumerate(calls or ())]
    said = len(words(text or "")) + sum(len(words(c.function.arguments)) for c in calls or ())
    prompt = _usage(req, 0).prompt_tokens
    usage = ResponseUsage(prompt, said, prompt + said, ResponseInputTokensDetails(0),
                          ResponseOutputTokensDetails(0))
    previous = req.params.get("previous_response_id")
    return Response(f"resp_{rid}", req.model or "fake-model", tuple(output), "completed",
                    usage, created_at=CREATED,
                    previous_response_id=previous if isinstance(previous, str) else None)


def _responses_plan(req: ParsedRequest, answer: Answer, text: str, rid: str) -> Plan:
    """A Responses API answer: a ``response`` object, or a real stream's events, one
    frame per piece of the answer (the first frame starts the stream, the last ends it)."""
    pieces = list(answer.pieces) if answer.pieces is not None else None
    response = _responses_answer(req, text, answer.tool_calls, rid)
    if not req.stream:
        body = openai.PROVIDER.render_responses(response)
        delay = answer.delay + answer.piece_delay * len(pieces or ())
        if answer.kind == "disconnect":
            half = len(body) // 2
            return Plan(200, _JSON, (body[:half], body[half:])[:answer.after_chunks or 0],
                        delay=delay, cut=True)
        return Plan(200, _JSON, (body,), delay=delay)
    events = openai.PROVIDER.render_responses_stream(
        response, lambda t: pieces if pieces and t == text else words(t))
    ends = [k + 1 for k, e in enumerate(events)
            if e.split(b"\n", 1)[0].removeprefix(b"event: ").decode() in DELTA_EVENTS][:-1]
    edges = [0, *ends, len(events)]
    frames = [b"".join(events[a:b]) for a, b in itertools.pairwise(edges)]
    if answer.kind == "disconnect":
        frames = frames[:answer.after_chunks or 0]
    return Plan(200, _SSE, tuple(frames), answer.piece_delay, answer.delay,
                cut=answer.kind == "disconnect")


def error_plan(req: ParsedRequest, status: int, message: str, *,
               retry_after: float | None = None, delay: float = 0.0,
               body: bytes | None = None, headers: tuple[tuple[str, str], ...] = ()) -> Plan:
    """An error answer in *req*'s provider's error format (or *body* as given)."""
    heads = list(headers)
    if not any(k == "content-type" for k, _ in heads):
        heads.insert(0, _JSON[0])
    if retry_after is not None:
        heads.append(("retry-after", f"{retry_after:g}"))
    if body is None:
        if req.provider == "gemini":
            body = gemini.PROVIDER.render_error(status, message, retry_after=retry_after)
        else:
            body = _renderer(req.provider).render_error(status, message)
    return Plan(status, tuple(heads), (body,) if body else (), delay=delay)


def _vector(text: str, size: int) -> tuple[float, ...]:
    rng = random.Random(zlib.crc32(text.encode()))
    vec = [rng.uniform(-1.0, 1.0) for _ in range(size)]
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return tuple(x / norm for x in vec)


def _other_plan(req: ParsedRequest, answer: Answer) -> Plan:
    """A reply to a request that is not a chat: embeddings, images, audio, models."""
    params = req.params
    if req.operation == "embeddings":
        if req.provider == "gemini":
            texts = [json.dumps(r.get("content"), sort_keys=True)
                     for r in params.get("requests") or ()]
            size = 8
        else:
            given = params.get("input")
            texts = [given] if isinstance(given, str) else [str(t) for t in given or ()]
            dims = params.get("dimensions")
            size = dims if isinstance(dims, int) and dims > 0 else 8
        data = tuple(Embedding(i, _vector(t, size)) for i, t in enumerate(texts))
        tokens = sum(math.ceil(len(t) / 4) for t in texts)
        response = EmbeddingResponse(data, req.model or "fake-embedding",
                                     Usage(tokens, 0, tokens))
        body = _renderer(req.provider).render_embedding(response)
    elif req.operation == "images":
        b64 = base64.b64encode(mock.png_1x1()).decode()
        image = (ImageObject(b64_json=b64) if params.get("response_format") == "b64_json"
                 else ImageObject(url=f"data:image/png;base64,{b64}"))
        count = params.get("n")
        n = count if isinstance(count, int) and count > 0 else 1
        body = openai.PROVIDER.render_image(ImageResponse(CREATED, (image,) * n))
    elif req.operation == "transcription":
        text = answer.text if answer.text is not None else (
            f"Fake transcription of {params.get('file', 'the file')}")
        fmt = str(params.get("response_format") or "json")
        body = openai.PROVIDER.render_transcription(TranscriptionResponse(text), fmt)
        if fmt in ("text", "srt", "vtt"):
            return Plan(200, (("content-type", "text/plain"),), (body,), delay=answer.delay)
    elif req.operation == "speech":
        return Plan(200, (("content-type", "audio/wav"),), (mock.wav_silence(),),
                    delay=answer.delay)
    else:  # models
        models = ModelList((ModelInfo("fake-chat", CREATED, "trillm-fake"),
                            ModelInfo("fake-embedding", CREATED, "trillm-fake")))
        body = openai.PROVIDER.render_models(models)
    return Plan(200, _JSON, (body,), delay=answer.delay)


def _raw_plan(answer: Answer) -> Plan:
    """``respond``: the body as given (bytes, str, a JSON value, or a list of chunks)."""
    given = answer.raw
    if isinstance(given, bytes | str):
        frames: tuple[bytes, ...] = (given.encode() if isinstance(given, str) else given,)
        ctype = "application/json"
    elif isinstance(given, Sequence) and given and all(isinstance(c, bytes | str)
                                                       for c in given):
        frames = tuple(c.encode() if isinstance(c, str) else c for c in given)
        ctype = "text/event-stream"
    else:
        frames = (json.dumps(given).encode(),)
        ctype = "application/json"
    heads = answer.headers
    if not any(k == "content-type" for k, _ in heads):
        heads = (("content-type", ctype), *heads)
    return Plan(answer.status, heads, frames, answer.piece_delay, answer.delay,
                cut=answer.then == "disconnect", stall=answer.then == "hang")


def make_plan(req: ParsedRequest, answer: Answer, rid: str) -> Plan:
    """The plan that carries out *answer* for *req*; *rid* is the answer's id."""
    if answer.kind == "respond":
        return _raw_plan(answer)
    if answer.kind == "hang":
        return Plan(hang=True, delay=answer.delay)
    if answer.kind == "fail":
        message = f"a scripted {answer.status} from the fake LLM"
        return error_plan(req, answer.status, message, retry_after=answer.retry_after,
                          delay=answer.delay, body=answer.body, headers=answer.headers)
    if answer.kind == "disconnect" and answer.after_chunks is None:
        return Plan(cut_before_headers=True, delay=answer.delay)
    if req.operation == "unknown":
        return error_plan(req, 404, f"the fake LLM does not serve {req.method} {req.path}")
    if req.operation not in ("chat", "responses"):
        return _other_plan(req, answer)
    text = answer.text
    if answer.pieces is not None:
        text = "".join(answer.pieces)
    elif text is None and not answer.tool_calls:
        text = last_user_text(req.messages)
        text = "This is a fake response." if text is None else text
    if req.operation == "responses":
        return _responses_plan(req, answer, text or "", rid)
    return _chat_plan(req, answer, text or "", rid)
