"""OpenAI's Chat Completions API, spoken by OpenAI and every OpenAI-compatible server.

Requests: ``POST {api_base}/chat/completions`` with ``authorization: Bearer <key>``
(only when there is a key: local servers get no authorization header at all).
The body is the caller's parameters unchanged, unknown ones included, with
``extra_body`` merged on top; a pydantic model class as ``response_format`` is sent as
``{"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}`` with
the strict schema of :func:`~trillm.structured.strict_json_schema`, and a
``response_format`` that is none of OpenAI's forms is refused before sending.  A
stream to the ``openai`` preset asks for
``stream_options: {"include_usage": true}`` unless the caller set
``stream_options``, so the final usage chunk arrives; other presets get no such
default, as some compatible servers reject the field.  A request that does
not stream drops ``stream`` and ``stream_options`` from the parameters (OpenAI
rejects ``stream_options`` without ``stream``).

Answers: records from :mod:`trillm.types`; fields a server leaves out get
defaults (``id`` ``""``, ``created`` ``0``, ``model`` the requested one) and
unknown fields stay in ``.raw``.  ``reasoning`` (OpenRouter, newer vLLM) is read
as ``reasoning_content`` when the latter is absent.

Errors inside a 200 body or a stream (``{"error": {...}}``) take their status
from a numeric ``code`` (400-599), else from the error's ``type``/``code``
(``invalid_request_error`` is 400, ``rate_limit_exceeded`` 429, ...), else 500:
a server that failed after answering 200 most likely failed transiently, so
the result (:class:`~trillm.errors.InternalServerError`) is retried.
"""

from __future__ import annotations

import base64
import json
import sys
from array import array
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeGuard

from .. import errors, types
from .._json import loads as _loads
from ..types import (
    EMPTY_STREAM_CHOICES,
    ChatRequest,
    Choice,
    Delta,
    FunctionCall,
    FunctionDelta,
    Message,
    ModelResponse,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
    stream_choice,
    stream_chunk,
    text_delta,
)
from .base import (
    AnyRequest,
    HTTPRequestSpec,
    ProviderConfig,
    check_embedding_count,
    error_from_response,
    json_or_none,
    loads_json,
    multipart_body,
    unexpected_answer,
    with_extra_headers,
)

if TYPE_CHECKING:
    from ..response_types import Response, ResponseEvent, ResponsesRequest
    from ..sse import SSEEvent
    from ..types import (
        EmbeddingRequest,
        EmbeddingResponse,
        ImageRequest,
        ImageResponse,
        ModelList,
        ModelsRequest,
        SpeechRequest,
        TranscriptionRequest,
        TranscriptionResponse,
    )
    from .openai_batch import OpenAIBatches
    from .openai_responses import ResponsesStreamParser

__all__ = ["PROVIDER", "OpenAIProvider", "OpenAIStreamParser", "error_from_body", "parse_usage"]

_EMPTY_DELTA = Delta()

# Status for an error met inside a 200 body or a stream, by its `type` or `code`.
_STATUS_BY_KIND = {
    "invalid_request_error": 400, "invalid_request": 400, "bad_request": 400,
    "context_length_exceeded": 400, "content_filter": 400, "content_policy_violation": 400,
    "authentication_error": 401, "invalid_api_key": 401, "permission_error": 403,
    "permission_denied": 403, "not_found_error": 404, "model_not_found": 404,
    "rate_limit_error": 429, "rate_limit_exceeded": 429, "insufficient_quota": 429,
    "tokens": 429, "requests": 429, "overloaded_error": 529, "service_unavailable": 503,
}


def _error_fields(data: Any) -> tuple[str | None, str | None, str | None]:
    """``(message, code, type)`` from any of the error shapes compatible servers send."""
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return None, None, None
    err = data.get("error", data)
    message = code = kind = None
    if isinstance(err, dict):
        message, code, kind = err.get("message"), err.get("code"), err.get("type")
    elif isinstance(err, str):
        message = err
    if message is None:
        message = data.get("detail", data.get("message"))
    if message is not None and not isinstance(message, str):
        message = json.dumps(message)[:1000]
    return (
        message,
        None if code is None else str(code),
        kind if isinstance(kind, str) else None,
    )


def error_from_body(
    data: Any, *, provider: str, model: str | None, cfg: ProviderConfig | None = None
) -> errors.APIError:
    """The error for an ``{"error": {...}}`` met in a 200 body or inside a stream.

    The status is the error's numeric ``code`` when it is one (400-599), else
    the one its ``type``/``code`` implies, else 500.
    """
    message, code, kind = _error_fields(data)
    status = 500
    if code is not None and code.isdigit() and 400 <= int(code) <= 599:
        status = int(code)
    else:
        for name in (code, kind):
            if name is not None and name in _STATUS_BY_KIND:
                status = _STATUS_BY_KIND[name]
                break
    body = json.dumps(data).encode()
    return error_from_response(
        status, {}, body, provider=provider, model=model,
        cfg=cfg or ProviderConfig(name=provider, api_base=""),
        message=message or "the server reported an error", code=code, err_type=kind,
    )


def parse_usage(u: Mapping[str, Any]) -> Usage:
    """A :class:`Usage` from OpenAI's ``usage`` object; ``*_details`` are kept as given.

    The server's ``total_tokens`` is kept as sent (0 included); only a missing
    one is computed as prompt + completion.
    """
    prompt = u.get("prompt_tokens") or 0
    completion = u.get("completion_tokens") or 0
    total = u.get("total_tokens")
    return Usage(
        prompt,
        completion,
        prompt + completion if total is None else total,
        u.get("prompt_tokens_details"),
        u.get("completion_tokens_details"),
    )


def _reasoning(m: Mapping[str, Any]) -> Any:
    r = m.get("reasoning_content")
    if r is None:
        r = m.get("reasoning")
        if not isinstance(r, str):
            r = None
    return r


def _tool_call(t: Mapping[str, Any], i: int) -> ToolCall:
    f = t.get("function") or {}
    args = f.get("arguments")
    if args is None:
        args = ""
    elif not isinstance(args, str):  # a few servers send an object
        args = json.dumps(args)
    extra = t.get("extra_content")  # Gemini's OpenAI-compatible API: its thought signature
    return ToolCall(
        t.get("id") or f"call_{i}", FunctionCall(f.get("name") or "", args),
        t.get("type") or "function", extra if type(extra) is dict else None,
    )


def _choice(c: Mapping[str, Any], i: int) -> Choice:
    m = c.get("message") or {}
    tcs = m.get("tool_calls")
    message = Message(
        m.get("role") or "assistant",
        m.get("content"),
        tuple(_tool_call(t, j) for j, t in enumerate(tcs)) if tcs else None,
        _reasoning(m),
        m.get("refusal"),
    )
    index = c.get("index")
    return Choice(i if index is None else index, message, c.get("finish_reason"),
                  c.get("logprobs"))


def _tool_delta(t: Mapping[str, Any], i: int) -> ToolCallDelta:
    f = t.get("function")
    index = t.get("index")
    if index is None:
        index = i
    elif type(index) is not int:
        raise TypeError(f"a tool call index {index!r} that is not an integer")
    name = args = None
    if f:
        name, args = f.get("name"), f.get("arguments")
        if type(args) is dict:  # a few servers send an object, as in plain answers
            args = json.dumps(args)
    tid, kind = t.get("id"), t.get("type")
    for value in (tid, kind, name, args):
        if value is not None and type(value) is not str:
            raise TypeError(f"a tool call field {value!r} that is not a string")
    extra = t.get("extra_content")
    return ToolCallDelta(index, tid, kind, FunctionDelta(name, args) if f else None,
                         extra if type(extra) is dict else None)


def _check_logprobs(logprobs: Any) -> None:
    if type(logprobs) is not dict:
        raise TypeError("logprobs that are not an object")
    for key in ("content", "refusal"):
        tokens = logprobs.get(key)
        if tokens is not None and type(tokens) is not list:
            raise TypeError(f"logprobs.{key} that is not a list")


class OpenAIStreamParser:
    """Turns one OpenAI-style SSE stream into :class:`StreamChunk` values.

    ``done`` turns true at ``data: [DONE]`` or at the first chunk carrying a
    ``finish_reason`` (for any choice); ``finished`` once every choice seen has
    had its ``finish_reason``.  Events after it are still parsed (the
    usage chunk follows the finish reason).  A choices-less event without usage
    (Azure's prompt-filter event) gives None.
    """

    __slots__ = ("_cfg", "_done", "_finished", "_model", "_provider", "_seen")

    def __init__(self, provider: str, model: str, cfg: ProviderConfig | None = None) -> None:
        self._provider = provider
        self._model = model
        self._cfg = cfg  # only for scrubbing its key out of errors
        self._done = False
        self._seen: set[int] = set()  # choice indexes
        self._finished: set[int] = set()  # ... that had their finish reason

    @property
    def done(self) -> bool:
        """True once ``[DONE]`` or a finish reason was seen."""
        return self._done

    @property
    def finished(self) -> bool:
        """True once every choice seen has had its finish reason (and one has)."""
        return bool(self._finished) and self._seen <= self._finished

    def feed(self, event: SSEEvent) -> StreamChunk | None:
        """Translate one event; raises the mapped error for an in-stream error event."""
        data = event.data
        if data[:1] != "{" and data.strip() == "[DONE]":
            self._done = True
            return None
        try:
            obj = _loads(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise self._malformed(data, str(exc)) from exc
        if type(obj) is not dict:
            raise self._malformed(data, "not a JSON object")
        err = obj.get("error")
        if err is not None or event.event == "error":
            try:
                mapped = error_from_body(obj, provider=self._provider, model=self._model,
                                         cfg=self._cfg)
            except RecursionError as deep:  # nested too deeply to copy or redact
                raise self._malformed(data, "an error event nested too deeply") from deep
            raise mapped
        try:  # a wrong shape (a string where an object belongs) is a malformed event
            u = obj.get("usage")
            if u is None:
                x = obj.get("x_groq")  # Groq puts the final usage here
                if x is not None:
                    u = x.get("usage")
            usage = parse_usage(u) if u else None
            if usage is not None and not (type(usage.prompt_tokens) is int
                                          and type(usage.completion_tokens) is int
                                          and type(usage.total_tokens) is int):
                raise TypeError("token counts that are not integers")
            raw_choices = obj.get("choices")
            if raw_choices:
                if type(raw_choices) is not list:
                    raise TypeError("choices that are not a list")
                choices = []
                for i, c in enumerate(raw_choices):
                    d = c.get("delta")
                    if (type(d) is dict and len(d) == 1
                            and type(content := d.get("content")) is str):
                        delta = text_delta(content)  # the common case: a piece of text
                    elif d:
                        tcs = d.get("tool_calls")
                        reasoning = d.get("reasoning_content")
                        if reasoning is None and "reasoning" in d:
                            reasoning = _reasoning(d)
                        role, content, refusal = d.get("role"), d.get("content"), d.get("refusal")
                        if ((content is not None and type(content) is not str)
                                or (role is not None and type(role) is not str)
                                or (refusal is not None and type(refusal) is not str)
                                or (reasoning is not None and type(reasoning) is not str)):
                            raise TypeError("a role, content, refusal or reasoning not a string")
                        if tcs and type(tcs) is not list:
                            raise TypeError("tool_calls that are not a list")
                        delta = Delta(
                            role,
                            content,
                            tuple([_tool_delta(t, j) for j, t in enumerate(tcs)]) if tcs else None,
                            reasoning,
                            refusal,
                        )
                    else:
                        delta = _EMPTY_DELTA
                    finish = c.get("finish_reason")
                    index = c.get("index")
                    if index is None:
                        index = i
                    elif type(index) is not int:
                        raise TypeError(f"a choice index {index!r} that is not an integer")
                    self._seen.add(index)
                    if finish is not None:
                        if type(finish) is not str:
                            raise TypeError(f"a finish_reason {finish!r} that is not a string")
                        self._done = True
                        self._finished.add(index)
                    logprobs = c.get("logprobs")
                    if logprobs is not None:
                        _check_logprobs(logprobs)
                    choices.append(stream_choice(index, delta, finish, logprobs))
                chunk_choices = tuple(choices)
            elif usage is None:
                return None
            else:
                chunk_choices = EMPTY_STREAM_CHOICES
            rid, created = obj.get("id") or "", obj.get("created") or 0
            model, fingerprint = obj.get("model") or self._model, obj.get("system_fingerprint")
            kind = obj.get("object") or "chat.completion.chunk"
            if type(created) is float:  # a few servers send time.time()
                created = int(created)
            if (type(rid) is not str or type(created) is not int or type(model) is not str
                    or type(kind) is not str
                    or (fingerprint is not None and type(fingerprint) is not str)):
                raise TypeError("an id, created, model, object or system_fingerprint of the "
                                "wrong type")
            return stream_chunk(
                rid,
                created,
                model,
                chunk_choices,
                usage,
                kind,
                fingerprint,
                obj,
            )
        except (AttributeError, TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise self._malformed(data, f"unexpected shape: {exc}") from exc

    def _malformed(self, data: str, why: str) -> errors.StreamError:
        return errors.StreamError(
            f"malformed stream event from {self._provider} ({why}): {data[:200]!r}",
            provider=self._provider, model=self._model,
            secrets=self._cfg.secrets if self._cfg is not None else (),
        )


class OpenAIProvider:
    """The :class:`~trillm.providers.base.Provider` for OpenAI and OpenAI-compatible servers.

    Azure builds on it by overriding :meth:`chat_url` and :meth:`auth_headers`.
    """

    name = "openai"
    operations = frozenset({"chat", "embeddings", "images", "transcription", "speech", "models",
                            "responses", "batch", "count_tokens"})
    # The inverse of the parse steps (openai_render), for the test kit.
    # (openai_render is imported on first use: only the mock and the test kit render.)

    @staticmethod
    def render_chat(response: ModelResponse) -> bytes:
        """``openai_render.render_chat``."""
        from . import openai_render

        return openai_render.render_chat(response)

    @staticmethod
    def render_chat_stream(chunks: Iterable[StreamChunk], *, end: bool = True) -> list[bytes]:
        """``openai_render.render_chat_stream``."""
        from . import openai_render

        return openai_render.render_chat_stream(chunks, end=end)

    @staticmethod
    def render_error(status: int, message: str, *, kind: str | None = None,
                     code: str | None = None) -> bytes:
        """``openai_render.render_error``."""
        from . import openai_render

        return openai_render.render_error(status, message, kind=kind, code=code)

    @staticmethod
    def render_stream_error(status: int, message: str, *, kind: str | None = None,
                            code: str | None = None) -> bytes:
        """``openai_render.render_stream_error``."""
        from . import openai_render

        return openai_render.render_stream_error(status, message, kind=kind, code=code)

    @staticmethod
    def render_embedding(response: EmbeddingResponse) -> bytes:
        """``openai_render.render_embedding``."""
        from . import openai_render

        return openai_render.render_embedding(response)

    @staticmethod
    def render_image(response: ImageResponse) -> bytes:
        """``openai_render.render_image``."""
        from . import openai_render

        return openai_render.render_image(response)

    @staticmethod
    def render_transcription(response: TranscriptionResponse,
                             response_format: str = "json") -> bytes:
        """``openai_render.render_transcription``."""
        from . import openai_render

        return openai_render.render_transcription(response, response_format)

    @staticmethod
    def render_models(models: ModelList) -> bytes:
        """``openai_render.render_models``."""
        from . import openai_render

        return openai_render.render_models(models)

    # The Responses API's and the Batch API's parts are imported on first use, to keep
    # `import trillm` cheap: a chat call needs neither.

    @property
    def batches(self) -> OpenAIBatches:
        """The Batch API's translation (openai_batch): files, batches, result lines."""
        from .openai_batch import OPENAI_BATCHES

        return OPENAI_BATCHES

    @staticmethod
    def render_responses(response: Response) -> bytes:
        """``openai_responses_render.render_responses``."""
        from .openai_responses_render import render_responses

        return render_responses(response)

    @staticmethod
    def render_responses_stream(*args: Any, **kwargs: Any) -> Any:
        """``openai_responses_render.render_responses_stream``."""
        from .openai_responses_render import render_responses_stream

        return render_responses_stream(*args, **kwargs)

    @staticmethod
    def render_responses_stream_error(*args: Any, **kwargs: Any) -> Any:
        """``openai_responses_render.render_responses_stream_error``."""
        from .openai_responses_render import render_responses_stream_error

        return render_responses_stream_error(*args, **kwargs)

    def chat_url(self, req: ChatRequest, cfg: ProviderConfig) -> str:
        """The chat-completions endpoint for *cfg*'s base URL."""
        return f"{cfg.api_base}/chat/completions"

    def auth_headers(self, cfg: ProviderConfig) -> tuple[tuple[str, str], ...]:
        """``authorization: Bearer <key>``, or nothing when there is no key."""
        return (("authorization", f"Bearer {cfg.api_key}"),) if cfg.api_key else ()

    def include_usage(self, req: ChatRequest) -> bool:
        """Whether a stream asks for the usage chunk by default (``openai`` only)."""
        return req.provider == "openai"

    def build_chat(self, req: ChatRequest, cfg: ProviderConfig) -> HTTPRequestSpec:
        """``POST .../chat/completions``; every parameter passes through unchanged, except a
        model class as ``response_format`` (sent as OpenAI's strict ``json_schema`` form)."""
        body: dict[str, Any] = {"model": req.model, "messages": list(req.messages)}
        body.update(req.params)
        fmt = body.get("response_format")
        if fmt is not None:  # a model class becomes OpenAI's json_schema form
            from ..structured import response_format_body  # (imported on first use)

            body.update(response_format_body(fmt, "openai", provider=req.provider,
                                             model=req.model))
        if req.stream:
            body["stream"] = True
            if "stream_options" not in body and self.include_usage(req):
                body["stream_options"] = {"include_usage": True}
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)  # servers reject it without stream
        if req.extra_body:
            body.update(req.extra_body)
        return HTTPRequestSpec(
            "POST", self.chat_url(req, cfg), self._headers(req, cfg), json=body,
            provider=req.provider, model=req.model,
        )

    def parse_chat(
        self, body: bytes, req: ChatRequest, cfg: ProviderConfig | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ModelResponse:
        """A 2xx body as a :class:`ModelResponse`; an ``{"error": ...}`` body raises it.

        *headers* (already redacted) become ``ModelResponse.headers``.
        """
        secrets = cfg.secrets if cfg is not None else ()
        data = loads_json(body, provider=req.provider, model=req.model, secrets=secrets)
        if type(data) is not dict:
            raise unexpected_answer(req, body, secrets, "not a JSON object")
        raw_choices = data.get("choices")
        if raw_choices is None and data.get("error") is not None:
            raise error_from_body(data, provider=req.provider, model=req.model, cfg=cfg)
        u = data.get("usage")
        try:
            return ModelResponse(
                data.get("id") or "",
                data.get("created") or 0,
                data.get("model") or req.model,
                tuple(_choice(c, i) for i, c in enumerate(raw_choices or ())),
                parse_usage(u) if u else None,
                data.get("object") or "chat.completion",
                data.get("system_fingerprint"),
                data,
                {} if headers is None else headers,
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise unexpected_answer(req, body, secrets, str(exc)) from exc

    def stream_parser(
        self, req: ChatRequest, cfg: ProviderConfig | None = None
    ) -> OpenAIStreamParser:
        """A fresh parser for one streamed answer (*cfg*'s key is scrubbed from its errors)."""
        return OpenAIStreamParser(req.provider, req.model, cfg)

    # ---------------------------------------------------------- responses (openai_responses)

    def responses_url(self, req: ResponsesRequest, cfg: ProviderConfig) -> str:
        """The Responses API endpoint for *cfg*'s base URL."""
        return f"{cfg.api_base}/responses"

    def build_responses(self, req: ResponsesRequest, cfg: ProviderConfig) -> HTTPRequestSpec:
        """``POST .../responses``; every parameter passes through unchanged."""
        from .openai_responses import build_responses

        return build_responses(req, cfg, url=self.responses_url(req, cfg),
                               headers=self._headers(req, cfg))

    def parse_responses(
        self, body: bytes, req: ResponsesRequest, cfg: ProviderConfig | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """A 2xx Responses API body as a :class:`~trillm.response_types.Response`."""
        from .openai_responses import parse_responses

        return parse_responses(body, req, cfg, headers)

    def parse_responses_as_events(
        self, body: bytes, req: ResponsesRequest, cfg: ProviderConfig | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[ResponseEvent, ...]:
        """A whole answer to a stream request, as the terminal event a stream ends with."""
        from .openai_responses import parse_responses_as_events

        return parse_responses_as_events(body, req, cfg, headers)

    def responses_stream_parser(
        self, req: ResponsesRequest, cfg: ProviderConfig | None = None
    ) -> ResponsesStreamParser:
        """A fresh parser for one streamed response."""
        from .openai_responses import ResponsesStreamParser

        return ResponsesStreamParser(req, cfg)

    # ---------------------------------------------------------- embeddings

    #: The most inputs one ``/embeddings`` request may carry.
    embedding_batch_size = 2048

    def embedding_url(self, req: EmbeddingRequest, cfg: ProviderConfig) -> str:
        """The embeddings endpoint for *cfg*'s base URL."""
        return f"{cfg.api_base}/embeddings"

    def build_embedding(self, req: EmbeddingRequest, cfg: ProviderConfig) -> HTTPRequestSpec:
        """``POST .../embeddings`` for one batch of inputs (``req.params``: dimensions, ...).

        Vectors come as base64 float32 unless the call chose an ``encoding_format``
        (as the official SDK asks): about a quarter of the bytes of JSON floats, and
        far less parsing; :meth:`parse_embedding` decodes them to floats either way.
        """
        body: dict[str, Any] = {"model": req.model, "input": list(req.inputs)}
        body.update(req.params)
        if req.extra_body:
            body.update(req.extra_body)
        if body.get("encoding_format") is None:
            body["encoding_format"] = "base64"
        return HTTPRequestSpec(
            "POST", self.embedding_url(req, cfg), self._headers(req, cfg), json=body,
            provider=req.provider, model=req.model,
        )

    def parse_embedding(
        self, body: bytes, req: EmbeddingRequest, cfg: ProviderConfig | None = None,
        offset: int = 0, *, count: int | None = None,
    ) -> EmbeddingResponse:
        """A 2xx ``/embeddings`` body: base64 vectors decoded to floats, indices from *offset*.

        *count* is the number of inputs sent in this request: an answer with
        another number of vectors is an unexpected answer (None checks nothing).
        When the items carry ``index``, each of 0..n-1 must appear exactly once.
        """
        secrets = cfg.secrets if cfg is not None else ()
        data = loads_json(body, provider=req.provider, model=req.model, secrets=secrets)
        try:
            items = data["data"]
            if type(items) is not list:
                raise unexpected_answer(req, body, secrets, "embeddings: data is not a list")
            check_embedding_count(len(items), count, req, body, secrets)
            items = list(items)
            indices = [item.get("index") for item in items]
            if any(i is not None for i in indices):
                why = _index_problem(indices)
                if why is not None:
                    raise unexpected_answer(req, body, secrets, f"embeddings: {why}")
                items.sort(key=lambda d: d["index"])
            vectors = tuple(
                types.Embedding(offset + i, _vector(item["embedding"]))
                for i, item in enumerate(items)
            )
            u = data.get("usage")
            return types.EmbeddingResponse(vectors, data.get("model") or req.model,
                                           parse_usage(u) if u else None, raw=data)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise unexpected_answer(req, body, secrets, f"embeddings: {exc!r}") from exc

    # ---------------------------------------------------------- images

    def build_image(self, req: ImageRequest, cfg: ProviderConfig) -> HTTPRequestSpec:
        """``POST .../images/generations`` (n, size, quality, response_format, ... passed on)."""
        body: dict[str, Any] = {"model": req.model, "prompt": req.prompt}
        body.update(req.params)
        if req.extra_body:
            body.update(req.extra_body)
        return HTTPRequestSpec(
            "POST", f"{cfg.api_base}/images/generations", self._headers(req, cfg), json=body,
            provider=req.provider, model=req.model,
        )

    def parse_image(
        self, body: bytes, req: ImageRequest, cfg: ProviderConfig | None = None
    ) -> ImageResponse:
        """A 2xx images answer."""
        secrets = cfg.secrets if cfg is not None else ()
        data = loads_json(body, provider=req.provider, model=req.model, secrets=secrets)
        try:
            images = tuple(
                types.ImageObject(d.get("url"), d.get("b64_json"), d.get("revised_prompt"))
                for d in data["data"]
            )
            return types.ImageResponse(data.get("created") or 0, images, data.get("usage"),
                                       raw=data)
        except (AttributeError, KeyError, TypeError) as exc:
            raise unexpected_answer(req, body, secrets, f"images: {exc!r}") from exc

    # ---------------------------------------------------------- audio

    def build_transcription(
        self, req: TranscriptionRequest, cfg: ProviderConfig
    ) -> HTTPRequestSpec:
        """``POST .../audio/transcriptions``: a multipart upload of *file* and the options."""
        form = {"model": req.model}
        for key, value in req.params.items():
            form[key] = value if isinstance(value, str) else json.dumps(value)
        if req.extra_body:
            form.update({k: str(v) for k, v in req.extra_body.items()})
        ctype, body = multipart_body(form, {"file": req.file})
        return HTTPRequestSpec(
            "POST", f"{cfg.api_base}/audio/transcriptions",
            (*self._headers(req, cfg), ("content-type", ctype)), content=body,
            provider=req.provider, model=req.model,
        )

    def parse_transcription(
        self, body: bytes, req: TranscriptionRequest, cfg: ProviderConfig | None = None
    ) -> TranscriptionResponse:
        """JSON answers (``json``, ``verbose_json``) or plain text (``text``, ``srt``, ``vtt``)."""
        if req.params.get("response_format") in ("text", "srt", "vtt"):
            return types.TranscriptionResponse(body.decode("utf-8", "replace"))
        secrets = cfg.secrets if cfg is not None else ()
        data = loads_json(body, provider=req.provider, model=req.model, secrets=secrets)
        if type(data) is not dict or not isinstance(data.get("text"), str):
            raise unexpected_answer(req, body, secrets, "not a transcription")
        return types.TranscriptionResponse(data["text"], data.get("language"),
                                           data.get("duration"), data.get("segments"),
                                           data.get("words"), raw=data)

    def build_speech(self, req: SpeechRequest, cfg: ProviderConfig) -> HTTPRequestSpec:
        """``POST .../audio/speech`` (voice, response_format, speed, ... in ``req.params``)."""
        body: dict[str, Any] = {"model": req.model, "input": req.input}
        body.update(req.params)
        if req.extra_body:
            body.update(req.extra_body)
        return HTTPRequestSpec(
            "POST", f"{cfg.api_base}/audio/speech", self._headers(req, cfg), json=body,
            provider=req.provider, model=req.model,
        )

    # ---------------------------------------------------------- models

    def build_models(self, req: ModelsRequest, cfg: ProviderConfig) -> HTTPRequestSpec:
        """``GET .../models``: no body (``req.params`` and ``extra_body`` are not sent)."""
        return HTTPRequestSpec("GET", f"{cfg.api_base}/models", self._headers(req, cfg),
                               provider=req.provider, model=req.model)

    def parse_models(
        self, body: bytes, req: ModelsRequest, cfg: ProviderConfig | None = None
    ) -> ModelList:
        """A 2xx ``/models`` body: ``{"data": [{"id": ...}, ...]}`` as a :class:`ModelList`
        (an item without an ``id`` is an unexpected answer; other fields are optional)."""
        secrets = cfg.secrets if cfg is not None else ()
        data = loads_json(body, provider=req.provider, model=req.model, secrets=secrets)
        items = data.get("data") if type(data) is dict else None
        if type(items) is not list:
            raise unexpected_answer(req, body, secrets, "models: data is not a list")
        try:
            models = tuple(
                types.ModelInfo(_model_id(item), item.get("created") or 0,
                                item.get("owned_by") or "", item.get("object") or "model")
                for item in items
            )
        except (AttributeError, KeyError, TypeError) as exc:
            raise unexpected_answer(req, body, secrets, f"models: {exc!r}") from exc
        return types.ModelList(models, data.get("object") or "list", raw=data)

    def _headers(self, req: AnyRequest, cfg: ProviderConfig) -> tuple[tuple[str, str], ...]:
        return with_extra_headers(self.auth_headers(cfg), req)

    def parse_error(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        req: AnyRequest,
        cfg: ProviderConfig,
    ) -> errors.APIError:
        """A non-2xx answer as the most specific error; structured ``code``/``type`` first.

        A 404 to a Responses API request says the server may have no Responses API.
        """
        message, code, kind = _error_fields(json_or_none(body))
        if status == 404 and not isinstance(req, ChatRequest) and _is_responses_request(req):
            from .openai_responses import not_found_message

            message = not_found_message(message, self.responses_url(req, cfg))
        return error_from_response(
            status, headers, body, provider=req.provider, model=req.model, cfg=cfg,
            message=message, code=code, err_type=kind,
        )


def _is_responses_request(req: AnyRequest) -> TypeGuard[ResponsesRequest]:
    """Whether *req* is a Responses API request (``response_types`` imported here: a chat
    call's 404 is told apart before, without the Responses API's records)."""
    from ..response_types import ResponsesRequest

    return isinstance(req, ResponsesRequest)


def _model_id(item: Mapping[str, Any]) -> str:
    mid = item["id"]
    if not isinstance(mid, str):
        raise TypeError(f"a model id {str(mid)[:40]!r} that is not a string")
    return mid


def _index_problem(indices: list[Any]) -> str | None:
    """Why *indices* are not 0..n-1, each exactly once (None when they are)."""
    n = len(indices)
    for k, i in enumerate(indices):
        if type(i) is not int:
            return f"item {k} has index {str(i)[:20]!r}, not an integer"
    seen = set(indices)
    if len(seen) == n and seen == set(range(n)):
        return None
    missing = next(j for j in range(n) if j not in seen)
    return (f"{n} vectors whose indices are not 0..{n - 1} each once "
            f"(none has index {missing})")


def _vector(value: Any) -> tuple[float, ...]:
    """A vector as floats: a JSON list, or base64 little-endian float32 (``encoding_format``)."""
    if isinstance(value, str):
        floats = array("f", base64.b64decode(value))
        if sys.byteorder == "big":
            floats.byteswap()
        return tuple(floats.tolist())
    return tuple(float(x) for x in value)


#: The module's provider instance.
PROVIDER = OpenAIProvider()
