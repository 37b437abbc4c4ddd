"""Google's Gemini API (``generateContent`` / ``streamGenerateContent``), in the OpenAI shape.

Requests: ``POST {api_base}/v1beta/models/{model}:generateContent``, or
``:streamGenerateContent?alt=sse`` when streaming, with the key in the
``x-goog-api-key`` header (never ``?key=`` in the URL, so it stays out of logs).
OpenAI-style messages are translated: ``system`` (and ``developer``) messages
become ``systemInstruction``; ``assistant`` is the ``model`` role; consecutive
contents of one role are merged; ``image_url`` parts become ``inlineData``
(``data:`` URLs) or ``fileData`` (any other URL, its MIME type guessed from the
name); assistant ``tool_calls`` become ``functionCall`` parts and ``role: "tool"``
messages user-role ``functionResponse`` parts, named after the earlier call with
that id (a tool result that is a JSON object is sent as the response, anything
else as ``{"content": ...}``, as LiteLLM does).  Tool schemas and ``response_format`` JSON
schemas are sent as full JSON Schema (``parametersJsonSchema``,
``responseJsonSchema``, never ``responseSchema``), so OpenAI schemas
(``additionalProperties``, ``$defs``) pass unchanged; a pydantic model class as
``response_format`` sends its ``model_json_schema()``.  A tool that is not
``{"type": "function", ...}`` (e.g. ``{"googleSearch": {}}``) is passed through as a
Gemini tool.  ``safety_settings``
become ``safetySettings``; ``reasoning_effort`` becomes a ``thinkingConfig``
budget with thoughts included.  Any other parameter raises
:class:`~trillm.errors.BadRequestError` naming it, unless ``drop_params=True``.
``extra_body`` is merged into the body last.

Answers: text parts are joined; ``thought: true`` parts are
``reasoning_content``; ``functionCall`` parts are tool calls with the call's own
``id`` when Gemini sends one, else the id ``call_{candidate}_{k}``, *k* counting
the candidate's function calls from 0 (raw part positions differ between
streamed and plain answers; this count does not), and make a ``STOP`` finish
``"tool_calls"``.  Gemini's own ids are sent back on the ``functionCall`` and
``functionResponse`` parts; the made-up ``call_<n>_<n>`` ones are not.  A call's
``thoughtSignature`` is kept as the tool call's ``extra_content`` (``{"google":
{"thought_signature": ...}}``, the shape of Google's OpenAI-compatible API) and sent back on
its ``functionCall`` part, as Gemini 3 requires.  A prompt blocked by
``promptFeedback.blockReason`` raises
:class:`~trillm.errors.ContentPolicyViolationError`.

Streams: each SSE event is a partial ``GenerateContentResponse`` and becomes one
chunk.  Gemini has no end marker: the stream ends at EOF after the last
candidate's ``finishReason``.  So ``done`` turns true once every candidate seen
has had its finish reason; an EOF before that is truncation (the Client's usual
``StreamError``), an EOF after it is the clean end.  A candidate with neither
text nor function calls gets ``content: ""`` in its finishing chunk, as the
plain answer's content is ``""``.

Errors: Google's ``{"error": {"code", "message", "status", "details"}}``; a
``google.rpc.RetryInfo`` ``retryDelay`` (``"37s"``) becomes ``retry_after``.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Mapping
from typing import Any

from .. import errors
from ..sse import SSEEvent
from ..structured import response_format_body
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
    Message,
    ModelResponse,
    StreamChoice,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from . import gemini_render as _render
from .base import (
    AnyRequest,
    HTTPRequestSpec,
    ProviderConfig,
    check_embedding_count,
    error_from_response,
    json_or_none,
    loads_json,
    unexpected_answer,
    with_extra_headers,
)
from .gemini_batch import GeminiBatches

__all__ = ["PROVIDER", "GeminiProvider", "GeminiStreamParser", "parse_retry_delay"]

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"} | dict.fromkeys(
    ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"),
    "content_filter",
)

#: OpenAI parameter -> generationConfig field, copied unchanged.
_GEN_CONFIG = {
    "temperature": "temperature", "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens", "top_p": "topP", "top_k": "topK",
    "n": "candidateCount", "seed": "seed", "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
#: Parameters handled elsewhere in build_chat (or meaningless here: streaming is req.stream).
_HANDLED = frozenset(
    {"stop", "response_format", "tools", "tool_choice", "reasoning_effort", "safety_settings",
     "stream", "stream_options"}
)
_THINKING_BUDGET = {"none": 0, "disable": 0, "minimal": 512, "low": 1024, "medium": 2048,
                    "high": 4096}
_TOOL_CHOICE = {"auto": "AUTO", "required": "ANY", "any": "ANY", "none": "NONE"}
#: The ids trillm makes up for function calls that came without one (never sent back).
_DERIVED_ID = _render.DERIVED_ID

#: google.rpc status name -> HTTP status, for errors met inside a 200 body or a stream.
_STATUS_BY_NAME = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409, "ABORTED": 409, "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499,
    "INTERNAL": 500, "UNKNOWN": 500, "DATA_LOSS": 500, "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
}
_CONTEXT_PHRASES = ("input token count", "exceeds the maximum number of tokens",
                    "token count exceeds", "tokens allowed")


def _bad(message: str, req: ChatRequest) -> errors.BadRequestError:
    return errors.BadRequestError(message, provider=req.provider, model=req.model)


# ---------------------------------------------------------------- requests


def _text_of(content: Any) -> str:
    """The text of a message's content (a string or a list of text parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(
        p.get("text") or "" for p in content if isinstance(p, Mapping) and p.get("type") == "text"
    )


def _image_part(url: str, req: ChatRequest) -> dict[str, Any]:
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        if not sep or not header.endswith(";base64"):
            raise _bad("an image data: URL must be base64-encoded (data:<mime>;base64,...)", req)
        return {"inlineData": {"mimeType": header[:-7] or "image/png", "data": data}}
    mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _content_parts(content: Any, req: ChatRequest) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for p in content:
        kind = p.get("type") if isinstance(p, Mapping) else None
        if kind == "text":
            if p.get("text"):
                parts.append({"text": p["text"]})
        elif kind == "image_url":
            image = p.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            if not isinstance(url, str):
                raise _bad("an image_url content part needs a url", req)
            parts.append(_image_part(url, req))
        else:
            raise _bad(f"gemini does not take {kind!r} content parts", req)
    return parts


def _tool_response(content: Any) -> dict[str, Any]:
    text = _text_of(content)
    try:
        value = json.loads(text)
    except ValueError:
        return {"content": text}
    return value if isinstance(value, dict) else {"content": value}


def _contents(req: ChatRequest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(systemInstruction parts, contents)`` from the OpenAI messages."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for m in req.messages:
        role = m.get("role")
        if role in ("system", "developer"):
            text = _text_of(m.get("content"))
            if text:
                system.append({"text": text})
            continue
        if role == "user":
            g_role, parts = "user", _content_parts(m.get("content"), req)
        elif role == "assistant":
            g_role, parts = "model", _content_parts(m.get("content"), req)
            for tc in m.get("tool_calls") or ():
                f = tc.get("function") or {}
                name = f.get("name") or ""
                args = f.get("arguments")
                if isinstance(args, str):
                    try:
                        args = json.loads(args) if args.strip() else {}
                    except ValueError as exc:
                        raise _bad(f"tool call {name!r} has arguments that are not JSON", req) \
                            from exc
                call: dict[str, Any] = {"name": name, "args": args or {}}
                if tc.get("id"):
                    call_names[tc["id"]] = name
                    if not _DERIVED_ID.fullmatch(tc["id"]):
                        call["id"] = tc["id"]  # Gemini's own id goes back as it came
                part: dict[str, Any] = {"functionCall": call}
                sig = _thought_signature(tc)
                if sig is not None:
                    part["thoughtSignature"] = sig  # Gemini 3 refuses a call without it
                parts.append(part)
        elif role in ("tool", "function"):
            name = call_names.get(m.get("tool_call_id") or "") or m.get("name")
            if not name:
                raise _bad(
                    f"a tool message's tool_call_id {m.get('tool_call_id')!r} matches no earlier "
                    "assistant tool call (gemini needs the function's name)", req,
                )
            g_role = "user"
            reply: dict[str, Any] = {"name": name, "response": _tool_response(m.get("content"))}
            call_id = m.get("tool_call_id")
            if isinstance(call_id, str) and call_id and not _DERIVED_ID.fullmatch(call_id):
                reply["id"] = call_id
            parts = [{"functionResponse": reply}]
        else:
            raise _bad(f"gemini does not take messages with role {role!r}", req)
        if not parts:
            continue
        if contents and contents[-1]["role"] == g_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": g_role, "parts": parts})
    return system, contents


def _thought_signature(tc: Mapping[str, Any]) -> str | None:
    """The Gemini thought signature a tool call carries back (``extra_content.google``)."""
    extra = tc.get("extra_content")
    google = extra.get("google") if isinstance(extra, Mapping) else None
    sig = google.get("thought_signature") if isinstance(google, Mapping) else None
    return sig if isinstance(sig, str) and sig else None


def _tools(tools: Any) -> list[dict[str, Any]]:
    declarations: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for t in tools:
        if t.get("type") == "function" or "function" in t:
            f = t.get("function") or {}
            decl: dict[str, Any] = {"name": f.get("name") or ""}
            if f.get("description"):
                decl["description"] = f["description"]
            params = f.get("parameters")
            if params and (params.get("properties") or params.get("type") != "object"):
                decl["parametersJsonSchema"] = params
            declarations.append(decl)
        else:  # already a Gemini tool: googleSearch, codeExecution, ...
            out.append(dict(t))
    if declarations:
        out.insert(0, {"functionDeclarations": declarations})
    return out


def _tool_config(choice: Any, req: ChatRequest) -> dict[str, Any]:
    if isinstance(choice, str):
        mode = _TOOL_CHOICE.get(choice)
        if mode is None:
            raise _bad(f"gemini does not take tool_choice={choice!r}", req)
        return {"functionCallingConfig": {"mode": mode}}
    name = None
    if isinstance(choice, Mapping):
        f = choice.get("function")
        name = f.get("name") if isinstance(f, Mapping) else None
    if not name:
        raise _bad(f"gemini does not take tool_choice={choice!r}", req)
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


def _response_format(fmt: Any, gen: dict[str, Any], req: ChatRequest) -> None:
    fields = response_format_body(fmt, "gemini", provider=req.provider, model=req.model)
    gen.update(fields.get("generationConfig", {}))


class GeminiProvider:
    """The :class:`~trillm.providers.base.Provider` for Google's Gemini API."""

    name = "gemini"
    operations = frozenset({"chat", "embeddings", "batch", "count_tokens"})
    #: The Batch API's translation, inline requests (gemini_batch).
    batches = GeminiBatches()
    # The inverse of the parse steps (gemini_render), for the test kit.
    render_chat = staticmethod(_render.render_chat)
    render_chat_stream = staticmethod(_render.render_chat_stream)
    render_error = staticmethod(_render.render_error)
    render_stream_error = staticmethod(_render.render_stream_error)
    render_embedding = staticmethod(_render.render_embedding)

    def chat_url(self, req: ChatRequest, cfg: ProviderConfig) -> str:
        """The generate (or stream-generate, SSE) endpoint for *req*'s model."""
        model = req.model.removeprefix("models/")
        if req.stream:
            return f"{cfg.api_base}/v1beta/models/{model}:streamGenerateContent?alt=sse"
        return f"{cfg.api_base}/v1beta/models/{model}:generateContent"

    def build_chat(self, req: ChatRequest, cfg: ProviderConfig) -> HTTPRequestSpec:
        """The ``generateContent`` request; unsupported parameters raise ``BadRequestError``."""
        params = req.params
        unsupported = [k for k in params if k not in _GEN_CONFIG and k not in _HANDLED]
        if unsupported and not req.drop_params:
            raise _bad(
                f"gemini does not support the parameter{'s' if len(unsupported) > 1 else ''} "
                f"{', '.join(sorted(unsupported))}; pass drop_params=True to drop "
                f"{'them' if len(unsupported) > 1 else 'it'}", req,
            )
        system, contents = _contents(req)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        gen: dict[str, Any] = {}
        for k, field in _GEN_CONFIG.items():
            if k in params:
                gen[field] = params[k]
        stop = params.get("stop")
        if stop:
            gen["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
        if "response_format" in params:
            _response_format(params["response_format"], gen, req)
        effort = params.get("reasoning_effort")
        if effort is not None:
            budget = _THINKING_BUDGET.get(effort)
            if budget is None:
                raise _bad(f"gemini does not take reasoning_effort={effort!r}", req)
            gen["thinkingConfig"] = (
                {"thinkingBudget": budget, "includeThoughts": True} if budget
                else {"thinkingBudget": 0}
            )
        if gen:
            body["generationConfig"] = gen
        if params.get("tools"):
            body["tools"] = _tools(params["tools"])
        if "tool_choice" in params:
            body["toolConfig"] = _tool_config(params["tool_choice"], req)
        if "safety_settings" in params:
            body["safetySettings"] = params["safety_settings"]
        if req.extra_body:
            body.update(req.extra_body)
        return HTTPRequestSpec(
            "POST", self.chat_url(req, cfg), _headers(req, cfg), json=body,
            provider=req.provider, model=req.model,
        )

    # ---------------------------------------------------------- embeddings

    #: The most texts one ``batchEmbedContents`` request may carry.
    embedding_batch_size = 100

    def build_embedding(self, req: EmbeddingRequest, cfg: ProviderConfig) -> HTTPRequestSpec:
        """``batchEmbedContents`` for one batch (``dimensions`` → ``outputDimensionality``)."""
        model = req.model.removeprefix("models/")
        extra = {}
        if req.params.get("dimensions") is not None:
            extra["outputDimensionality"] = req.params["dimensions"]
        if req.params.get("task_type") is not None:
            extra["taskType"] = req.params["task_type"]
        body: dict[str, Any] = {"requests": [
            {"model": f"models/{model}", "content": {"parts": [{"text": text}]}, **extra}
            for text in req.inputs
        ]}
        if req.extra_body:
            body.update(req.extra_body)
        return HTTPRequestSpec(
            "POST", f"{cfg.api_base}/v1beta/models/{model}:batchEmbedContents",
            _headers(req, cfg), json=body, provider=req.provider, model=req.model,
        )

    def parse_embedding(
        self, body: bytes, req: EmbeddingRequest, cfg: ProviderConfig | None = None,
        offset: int = 0, *, count: int | None = None,
    ) -> EmbeddingResponse:
        """A ``batchEmbedContents`` answer as vectors in input order (Gemini sends no usage).

        *count* is the number of inputs sent in this request: an answer with
        another number of vectors is an unexpected answer (None checks nothing).
        """
        secrets = cfg.secrets if cfg is not None else ()
        data = loads_json(body, provider=req.provider, model=req.model, secrets=secrets)
        try:
            items = list(data["embeddings"])
            check_embedding_count(len(items), count, req, body, secrets)
            vectors = tuple(
                Embedding(offset + i, tuple(float(x) for x in item["values"]))
                for i, item in enumerate(items)
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise unexpected_answer(req, body, secrets, f"embeddings: {exc!r}") from exc
        return EmbeddingResponse(vectors, req.model, None, raw=data)

    def parse_chat(
        self, body: bytes, req: ChatRequest, cfg: ProviderConfig | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ModelResponse:
        """A 2xx body as a :class:`ModelResponse`; a blocked prompt or an error body raises."""
        secrets = cfg.secrets if cfg is not None else ()
        data = loads_json(body, provider=req.provider, model=req.model, secrets=secrets)
        if isinstance(data, list) and len(data) == 1:  # the non-SSE stream shape
            data = data[0]
        if type(data) is not dict:
            raise unexpected_answer(req, body, secrets, "not a JSON object")
        if data.get("error") is not None and not data.get("candidates"):
            raise error_from_body(data, req=req, cfg=cfg)
        try:
            cands = data.get("candidates")
            if not cands:
                _check_blocked(data, req, cfg)
            choices = []
            for i, c in enumerate(cands or ()):
                index = c.get("index", i)
                texts, thoughts, calls = _read_parts(c)
                tool_calls = tuple(
                    ToolCall(given or _call_id(index, k), FunctionCall(name, args),
                             "function", extra)
                    for k, (name, args, given, extra) in enumerate(calls)
                )
                text = "".join(texts)
                message = Message(
                    "assistant",
                    text if text or not tool_calls else None,
                    tool_calls or None,
                    "".join(thoughts) or None,
                )
                choices.append(Choice(index, message, _finish(c.get("finishReason"),
                                                              bool(tool_calls))))
            u = data.get("usageMetadata")
            return ModelResponse(
                data.get("responseId") or "", 0, data.get("modelVersion") or req.model,
                tuple(choices), _usage(u) if u else None, "chat.completion", None, data,
                {} if headers is None else headers,
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise unexpected_answer(req, body, secrets, str(exc)) from exc

    def stream_parser(
        self, req: ChatRequest, cfg: ProviderConfig | None = None
    ) -> GeminiStreamParser:
        """A fresh parser for one streamed answer (*cfg*'s key is scrubbed from its errors)."""
        return GeminiStreamParser(req, cfg)

    def parse_error(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        req: ChatRequest,
        cfg: ProviderConfig,
    ) -> errors.APIError:
        """A non-2xx answer as the most specific error; RetryInfo sets ``retry_after``."""
        return _google_error(status, headers, body, json_or_none(body), req, cfg)


# ---------------------------------------------------------------- answers


def _headers(req: AnyRequest, cfg: ProviderConfig) -> tuple[tuple[str, str], ...]:
    headers: tuple[tuple[str, str], ...] = ()
    if cfg.api_key:
        headers = (("x-goog-api-key", cfg.api_key),)
    return with_extra_headers(headers, req)


def _call_id(candidate: int, k: int) -> str:
    return f"call_{candidate}_{k}"


def _finish(reason: Any, has_calls: bool) -> str | None:
    if reason is None:
        return None
    mapped = _FINISH.get(reason, "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


_Call = tuple[str, str, "str | None", "dict[str, Any] | None"]


def _read_parts(c: Mapping[str, Any]) -> tuple[list[str], list[str], list[_Call]]:
    """``(texts, thoughts, [(name, arguments JSON, id or None, extra_content or None)])``
    of one candidate's parts; a call's ``thoughtSignature`` goes into its extra_content."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[_Call] = []
    content = c.get("content") or {}
    for p in content.get("parts") or ():
        fc = p.get("functionCall")
        if fc is not None:
            name = fc.get("name") or ""
            given = fc.get("id") or None
            if type(name) is not str or (given is not None and type(given) is not str):
                raise TypeError(f"a function name or id that is not a string: {fc!r}"[:200])
            sig = p.get("thoughtSignature")
            extra = {"google": {"thought_signature": sig}} if type(sig) is str and sig else None
            calls.append((name, json.dumps(fc.get("args") or {}), given, extra))
            continue
        text = p.get("text")
        if text:
            if type(text) is not str:
                raise TypeError(f"a text {text!r} that is not a string")
            (thoughts if p.get("thought") else texts).append(text)
    return texts, thoughts, calls


def _usage(u: Mapping[str, Any]) -> Usage:
    """A :class:`Usage` from ``usageMetadata``: thoughts count as completion tokens.

    The server's ``totalTokenCount`` is kept as sent (0 included); only a
    missing one is computed as prompt + completion.
    """
    prompt = (u.get("promptTokenCount") or 0) + (u.get("toolUsePromptTokenCount") or 0)
    thoughts = u.get("thoughtsTokenCount") or 0
    completion = (u.get("candidatesTokenCount") or 0) + thoughts
    cached = u.get("cachedContentTokenCount")
    total = u.get("totalTokenCount")
    return Usage(
        prompt,
        completion,
        prompt + completion if total is None else total,
        {"cached_tokens": cached} if cached else None,
        {"reasoning_tokens": thoughts} if thoughts else None,
    )


def _check_blocked(data: Mapping[str, Any], req: ChatRequest, cfg: ProviderConfig | None) -> None:
    feedback = data.get("promptFeedback") or {}
    reason = feedback.get("blockReason")
    if reason:
        detail = feedback.get("blockReasonMessage")
        raise errors.ContentPolicyViolationError(
            f"gemini blocked the prompt (blockReason {reason})" + (f": {detail}" if detail else ""),
            provider=req.provider, model=req.model, body=dict(data),
            secrets=cfg.secrets if cfg is not None else (),
        )


class GeminiStreamParser:
    """Turns one ``streamGenerateContent?alt=sse`` stream into :class:`StreamChunk` values.

    ``done`` turns true once every candidate seen so far has had its
    ``finishReason`` (Gemini sends no end marker; EOF then is the clean end).
    """

    __slots__ = ("_calls", "_cfg", "_finished", "_req", "_seen", "_texted")

    def __init__(self, req: ChatRequest, cfg: ProviderConfig | None = None) -> None:
        self._req = req
        self._cfg = cfg  # only for scrubbing its key out of errors
        self._seen: set[int] = set()
        self._finished: set[int] = set()
        self._calls: dict[int, int] = {}  # candidate -> function calls so far
        self._texted: set[int] = set()  # candidates that streamed some text

    @property
    def done(self) -> bool:
        """True once every candidate seen has finished (and at least one has)."""
        return bool(self._finished) and self._seen <= self._finished

    @property
    def finished(self) -> bool:
        """The same as :attr:`done`: Gemini has no end marker, only finish reasons."""
        return bool(self._finished) and self._seen <= self._finished

    def feed(self, event: SSEEvent) -> StreamChunk | None:
        """Translate one event; a blocked prompt or an error event raises."""
        data = event.data
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise self._malformed(data, str(exc)) from exc
        if isinstance(obj, list) and len(obj) == 1:
            obj = obj[0]
        if type(obj) is not dict:
            raise self._malformed(data, "not a JSON object")
        req = self._req
        if obj.get("error") is not None:
            try:
                mapped = error_from_body(obj, req=req, cfg=self._cfg)
            except RecursionError as deep:  # nested too deeply to copy or redact
                raise self._malformed(data, "an error event nested too deeply") from deep
            raise mapped
        try:
            cands = obj.get("candidates")
            if not cands:
                _check_blocked(obj, req, self._cfg)
            u = obj.get("usageMetadata")
            usage = _usage(u) if u else None
            if usage is not None and not (type(usage.prompt_tokens) is int
                                          and type(usage.completion_tokens) is int
                                          and type(usage.total_tokens) is int):
                raise TypeError("token counts that are not integers")
            choices = []
            for i, c in enumerate(cands or ()):
                index = c.get("index", i)
                if type(index) is not int:
                    raise TypeError(f"a candidate index {index!r} that is not an integer")
                reason = c.get("finishReason")
                if reason is not None and type(reason) is not str:
                    raise TypeError(f"a finishReason {reason!r} that is not a string")
                texts, thoughts, calls = _read_parts(c)
                first = index not in self._seen
                self._seen.add(index)
                start = self._calls.get(index, 0)
                self._calls[index] = start + len(calls)
                tool_deltas = tuple(
                    ToolCallDelta(start + k, given or _call_id(index, start + k), "function",
                                  FunctionDelta(name, args), extra)
                    for k, (name, args, given, extra) in enumerate(calls)
                )
                finish = _finish(reason, self._calls[index] > 0)
                text = "".join(texts) or None
                if text is not None:
                    self._texted.add(index)
                if finish is not None:
                    self._finished.add(index)
                    if not self._calls[index] and index not in self._texted:
                        text = ""  # as the plain answer's content is "" then
                delta = Delta(
                    "assistant" if first else None,
                    text,
                    tool_deltas or None,
                    "".join(thoughts) or None,
                )
                choices.append(StreamChoice(index, delta, finish))
            if choices:
                chunk_choices = tuple(choices)
            elif usage is None:
                return None
            else:
                chunk_choices = EMPTY_STREAM_CHOICES
            rid, model = obj.get("responseId") or "", obj.get("modelVersion") or req.model
            if type(rid) is not str or type(model) is not str:
                raise TypeError("a responseId or modelVersion that is not a string")
            return StreamChunk(
                rid, 0, model, chunk_choices, usage, "chat.completion.chunk", None, obj,
            )
        except (AttributeError, TypeError, ValueError, RecursionError) as exc:
            raise self._malformed(data, f"unexpected shape: {exc}") from exc

    def _malformed(self, data: str, why: str) -> errors.StreamError:
        return errors.StreamError(
            f"malformed stream event from {self._req.provider} ({why}): {data[:200]!r}",
            provider=self._req.provider, model=self._req.model,
            secrets=self._cfg.secrets if self._cfg is not None else (),
        )


# ---------------------------------------------------------------- errors


def parse_retry_delay(value: Any) -> float | None:
    """Seconds from a protobuf Duration: ``"37s"``, ``"1.5s"`` or ``{"seconds", "nanos"}``."""
    if isinstance(value, str):
        text = value.strip().removesuffix("s")
        try:
            seconds = float(text)
        except ValueError:
            return None
    elif isinstance(value, Mapping):
        try:
            seconds = float(value.get("seconds") or 0) + float(value.get("nanos") or 0) / 1e9
        except (TypeError, ValueError):
            return None
    else:
        return None
    return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None


def _google_error(
    status: int | None,
    headers: Mapping[str, str],
    body: bytes,
    data: Any,
    req: ChatRequest,
    cfg: ProviderConfig | None,
) -> errors.APIError:
    """The error for Google's error body; *status* None takes it from the body (200/stream)."""
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        err = {}
    message = err.get("message")
    if message is not None and not isinstance(message, str):
        message = json.dumps(message)[:1000]
    name = err.get("status") if isinstance(err.get("status"), str) else None
    raw_details = err.get("details")
    details: list[Any] = raw_details if isinstance(raw_details, list) else []
    if status is None:
        code = err.get("code")
        status = code if isinstance(code, int) and 400 <= code <= 599 else (
            _STATUS_BY_NAME.get(name or "", 500)
        )
    effective = status
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    lowered = (message or "").lower()
    if name == "UNAUTHENTICATED" or "API_KEY_INVALID" in reasons or "api key not valid" in lowered:
        effective = 401
    elif name == "UNAVAILABLE" and status >= 500:
        effective = 503
    structured = name
    if effective == 400 and any(p in lowered for p in _CONTEXT_PHRASES):
        structured = "context_length_exceeded"
    exc = error_from_response(
        effective, headers, body, provider=req.provider, model=req.model,
        cfg=cfg or ProviderConfig(name=req.provider, api_base=""),
        message=message, code=structured,
    )
    exc.status_code = status
    for d in details:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = parse_retry_delay(d.get("retryDelay"))
            if delay is not None:
                exc.retry_after = delay
    return exc


def error_from_body(
    data: Any, *, req: ChatRequest, cfg: ProviderConfig | None = None
) -> errors.APIError:
    """The error for an ``{"error": {...}}`` met in a 200 body or inside a stream.

    The status is the error's numeric ``code`` (400-599), else the one its
    ``status`` name implies, else 500 (retried: the server failed mid-answer).
    """
    return _google_error(None, {}, json.dumps(data).encode(), data, req, cfg)


#: The module's provider instance.
PROVIDER = GeminiProvider()
