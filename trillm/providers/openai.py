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
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

from .. import errors, types
from ..types import (
    ChatRequest,
    Choice,
    Message,
    ModelResponse,
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
from .openai_read import (
    error_fields,
    error_from_body,
    parse_usage,
    reasoning_text,
)

if TYPE_CHECKING:
    from ..response_types import Response, ResponseEvent, ResponsesRequest
    from ..types import (
        EmbeddingRequest,
        EmbeddingResponse,
        ImageRequest,
        ImageResponse,
        ModelList,
        ModelsRequest,
        SpeechRequest,
        StreamChunk,
        ToolCall,
        TranscriptionRequest,
        TranscriptionResponse,
    )
    from .openai_batch import OpenAIBatches
    from .openai_responses import ResponsesStreamParser
    from .openai_stream import OpenAIStreamParser as OpenAIStreamParser

__all__ = ["PROVIDER", "OpenAIProvider", "OpenAIStreamParser", "error_from_body", "parse_usage"]


def __getattr__(name: str) -> Any:
    # OpenAIStreamParser lives in openai_stream, imported when a stream is opened.
    if name != "OpenAIStreamParser":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .openai_stream import OpenAIStreamParser

    return OpenAIStreamParser


def _tool_call(t: Mapping[str, Any], i: int) -> ToolCall:
    from .._tool_records import FunctionCall, ToolCall  # with the first tool call

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
        reasoning_text(m),
        m.get("refusal"),
    )
    index = c.get("index")
    return Choice(i if index is None else index, message, c.get("finish_reason"),
                  c.get("logprobs"))


_T = TypeVar("_T")
# What every request to the same base URL or with the same key shares (a few entries: one per
# base or key in use; cleared, not grown, past 64).
_CHAT_URLS: dict[str, str] = {}
_AUTH_HEADERS: dict[str, tuple[tuple[str, str], ...]] = {}


def _remember(cache: dict[str, _T], key: str, value: _T) -> _T:
    if len(cache) >= 64:
        cache.clear()
    cache[key] = value
    return value


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
        url = _CHAT_URLS.get(cfg.api_base)
        if url is None:  # built once per base: a request in flight holds the shared string
            url = _remember(_CHAT_URLS, cfg.api_base, f"{cfg.api_base}/chat/completions")
        return url

    def auth_headers(self, cfg: ProviderConfig) -> tuple[tuple[str, str], ...]:
        """``authorization: Bearer <key>``, or nothing when there is no key."""
        key = cfg.api_key
        if not key:
            return ()
        headers = _AUTH_HEADERS.get(key)
        if headers is None:  # built once per key, not for every request
            headers = _remember(_AUTH_HEADERS, key, (("authorization", f"Bearer {key}"),))
        return headers

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
        from .openai_stream import OpenAIStreamParser  # a plain call never loads it

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
        message, code, kind = error_fields(json_or_none(body))
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
