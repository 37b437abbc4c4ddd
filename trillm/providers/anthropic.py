"""Anthropic's Messages API, translated to and from the OpenAI chat shape.

Requests: ``POST {api_base}/v1/messages`` (the base has no version, as in
Anthropic's SDK) with ``x-api-key`` (only when there is a key) and
``anthropic-version: 2023-06-01``; ``extra_headers`` (``anthropic-beta``, ...)
are added and replace a header of the same name.  OpenAI-style messages are
translated: system (and developer) messages become ``system``; ``tool_calls``
become ``tool_use`` blocks and ``role: "tool"`` messages ``tool_result`` blocks
in a user turn; consecutive turns of one role are merged, as the API requires
alternation; ``image_url`` parts become ``image`` blocks (a ``data:`` URL a
``base64`` source, any other URL a ``url`` source).  Content parts already in
Anthropic's shape (``image``, ``document``, ``cache_control`` on a text part,
...) pass through.  ``max_tokens`` (or ``max_completion_tokens``) defaults to
4096 (plus the ``thinking`` budget when one is given).  ``response_format`` (a
pydantic model class or OpenAI's ``json_schema`` form) becomes
``output_config: {"format": {"type": "json_schema", "schema": ...}}`` in the anthropic
dialect of :func:`~trillm.structured.strict_json_schema` (no forced-tool emulation).  A
parameter Anthropic cannot take (``n`` > 1, ``logprobs``, penalties, ``seed``,
``response_format={"type": "json_object"}`` (no JSON mode without a schema),
``reasoning_effort``, or any name not known here) is a
:class:`~trillm.errors.BadRequestError` before sending, naming it, unless the
request has ``drop_params``; then it is dropped.  ``extra_body`` is merged
last, unchecked: it is the way to send Anthropic-only fields.

Answers: text blocks joined into ``content``, ``thinking`` blocks into
``reasoning_content``, ``tool_use`` blocks into tool calls (``input`` as a JSON
string); ``stop_reason`` becomes ``finish_reason`` (a ``refusal`` stop is
``content_filter``, with ``message.refusal`` set to :data:`REFUSAL`, the stream's
last delta carrying it); ``prompt_tokens`` counts
cached and cache-writing input tokens too, the cache figures are kept in
``prompt_tokens_details``.  ``created`` is 0 (Anthropic sends no timestamp).

Streams: every event maps to at most one chunk with one choice; the final
chunk (``message_delta``) carries the finish reason and the whole usage, so
accumulated chunks equal the non-streamed answer.  A ``tool_use`` block that
streamed no argument text gets ``"{}"`` at its ``content_block_stop``, as the
plain answer's empty ``input`` is ``"{}"``; an answer with neither text nor tool
calls gets ``content: ""`` in its final chunk, as the plain answer's content is
``""``.  In-stream ``error`` events raise
the class their type maps to; ``ping``, unknown events and delta types give None.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .. import errors
from ..sse import SSEEvent
from ..structured import response_format_body, response_format_kind
from ..types import (
    ChatRequest,
    Choice,
    Delta,
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
from . import anthropic_render as _render
from .anthropic_batch import AnthropicBatches
from .base import (
    HTTPRequestSpec,
    ProviderConfig,
    error_from_response,
    json_or_none,
    loads_json,
    unexpected_answer,
    with_extra_headers,
)

__all__ = ["PROVIDER", "REFUSAL", "AnthropicProvider", "AnthropicStreamParser", "parse_usage"]

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096

#: ``message.refusal`` of an answer Claude stopped with ``stop_reason: "refusal"`` (its
#: text, if any, stays in ``content``: it may be a partial answer, not the refusal).
REFUSAL = "Claude declined to answer (stop_reason 'refusal')"
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# HTTP status for an error type met inside a stream (or a 200 body).
_STATUS_BY_TYPE = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
    "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529,
}

# Parameters passed to Anthropic under the same name.
_PASS = frozenset({"temperature", "top_p", "top_k", "thinking", "service_tier"})
# OpenAI parameters that mean nothing to Anthropic whatever their value.
_IGNORED = frozenset({"stream", "stream_options"})


def _bad(message: str, req: ChatRequest) -> errors.BadRequestError:
    return errors.BadRequestError(message, provider=req.provider, model=req.model)


# ---------------------------------------------------------------- requests


def _image(url: Any, req: ChatRequest) -> dict[str, Any]:
    if isinstance(url, Mapping):
        url = url.get("url")
    if not isinstance(url, str):
        raise _bad("an image_url content part needs a URL string", req)
    if url.startswith("data:"):
        head, sep, data = url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if not sep or encoding != "base64":
            raise _bad("an image data: URL must be base64 (data:<type>;base64,...)", req)
        return {"type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any, req: ChatRequest) -> list[dict[str, Any]]:
    """OpenAI message content (a string or a list of parts) as Anthropic content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, str):
            part = {"type": "text", "text": part}
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                out.append(dict(part))
        elif kind == "image_url":
            block = _image(part.get("image_url"), req)
            if "cache_control" in part:
                block["cache_control"] = part["cache_control"]
            out.append(block)
        else:  # already an Anthropic block (image, document, ...): theirs to judge
            out.append(dict(part))
    return out


def _tool_use(call: Mapping[str, Any], req: ChatRequest) -> dict[str, Any]:
    f = call.get("function") or {}
    args = f.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError as exc:
            raise _bad(f"tool call {call.get('id')!r} has arguments that are not JSON: "
                       f"{args[:100]!r}", req) from exc
    return {"type": "tool_use", "id": call.get("id") or "", "name": f.get("name") or "",
            "input": {} if args is None else args}


def _tool_result(m: Mapping[str, Any]) -> dict[str, Any]:
    """A ``tool`` message as a ``tool_result`` block.  Empty content (``""``, no parts,
    empty text parts) is left out: the API refuses empty text, and ``content`` is optional."""
    content = m.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": m.get("tool_call_id") or ""}
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif content:
        parts = [{"type": "text", "text": p} if isinstance(p, str) else dict(p) for p in content]
        parts = [p for p in parts if not (p.get("type") == "text" and not p.get("text"))]
        if parts:
            block["content"] = parts
    return block


def _system_blocks(content: Any, req: ChatRequest) -> list[dict[str, Any]]:
    blocks = _blocks(content, req)
    for b in blocks:
        if b.get("type") != "text":
            raise _bad("a system message may hold text only", req)
    return blocks


def convert_messages(req: ChatRequest) -> tuple[Any, list[dict[str, Any]]]:
    """``(system, messages)`` for Anthropic from the request's OpenAI-style messages.

    ``system`` is None, a string, or a list of text blocks (when one carries
    ``cache_control``).  A turn made of one plain text block is sent as a string.
    """
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for m in req.messages:
        role = m.get("role")
        if role in ("system", "developer"):
            system.extend(_system_blocks(m.get("content"), req))
            continue
        if role == "user":
            blocks = _blocks(m.get("content"), req)
        elif role == "assistant":
            blocks = _blocks(m.get("content"), req)
            blocks.extend(_tool_use(c, req) for c in m.get("tool_calls") or ())
        elif role == "tool":
            role, blocks = "user", [_tool_result(m)]
        else:
            raise _bad(f"anthropic cannot take a message with role {role!r}", req)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for t in turns:
        c = t["content"]
        if len(c) == 1 and c[0].keys() == {"type", "text"}:
            t["content"] = c[0]["text"]
    if not system:
        return None, turns
    if any(len(b) > 2 for b in system):  # cache_control and the like: keep the blocks
        return system, turns
    return "\n\n".join(b["text"] for b in system), turns


def _tool(t: Mapping[str, Any]) -> dict[str, Any]:
    f = t.get("function")
    if t.get("type") != "function" or not isinstance(f, Mapping):
        return dict(t)  # an Anthropic tool (server tools, input_schema given)
    out: dict[str, Any] = {"name": f.get("name") or ""}
    if f.get("description"):
        out["description"] = f["description"]
    out["input_schema"] = f.get("parameters") or {"type": "object", "properties": {}}
    if "cache_control" in t:
        out["cache_control"] = t["cache_control"]
    return out


def _tool_choice(choice: Any, req: ChatRequest) -> dict[str, Any]:
    if isinstance(choice, str):
        mapped = {"auto": "auto", "required": "any", "any": "any", "none": "none"}.get(choice)
        if mapped is None:
            raise _bad(f"unknown tool_choice {choice!r}", req)
        return {"type": mapped}
    if isinstance(choice, Mapping):
        f = choice.get("function")
        if choice.get("type") == "function" and isinstance(f, Mapping):
            return {"type": "tool", "name": f.get("name") or ""}
        return dict(choice)  # already Anthropic's shape
    raise _bad(f"unknown tool_choice {choice!r}", req)


def _params(req: ChatRequest, body: dict[str, Any]) -> None:
    """Translate ``req.params`` into *body*; refuse (or drop) what Anthropic cannot take."""
    p = req.params
    unsupported: list[str] = []
    for name, value in p.items():
        if name in _PASS:
            body[name] = value
        elif name in ("max_tokens", "max_completion_tokens"):
            body["max_tokens"] = value
        elif name in ("stop", "stop_sequences"):
            body["stop_sequences"] = [value] if isinstance(value, str) else list(value)
        elif name == "metadata":
            body.setdefault("metadata", {}).update(value)
        elif name == "user":
            body.setdefault("metadata", {})["user_id"] = value
        elif name == "tools":
            body["tools"] = [_tool(t) for t in value]
        elif name == "tool_choice":
            body["tool_choice"] = _tool_choice(value, req)
        elif name == "parallel_tool_calls":
            pass  # read below, once tool_choice is known
        elif name == "response_format":
            _response_format(value, req, body)
        elif name in _IGNORED or (name == "n" and value == 1) or (
            name == "logprobs" and value is False
        ):
            pass
        else:
            unsupported.append(name)
    if p.get("parallel_tool_calls") is False and "tools" in body:
        choice = body.setdefault("tool_choice", {"type": "auto"})
        if choice.get("type") != "none":
            choice["disable_parallel_tool_use"] = True
    if "max_tokens" not in body:  # must exceed a thinking budget
        thinking = body.get("thinking")
        budget = thinking.get("budget_tokens") if isinstance(thinking, Mapping) else None
        body["max_tokens"] = DEFAULT_MAX_TOKENS + (budget if isinstance(budget, int) else 0)
    if unsupported and not req.drop_params:
        names = ", ".join(repr(n) for n in unsupported)
        s = "s" if len(unsupported) > 1 else ""
        raise _bad(
            f"anthropic does not support the parameter{s} {names}; remove it, send it "
            f"in extra_body, or pass drop_params=True to drop it", req,
        )


def _response_format(fmt: Any, req: ChatRequest, body: dict[str, Any]) -> None:
    """A model class or a json_schema form as ``output_config.format`` (no tool emulation)."""
    kind = response_format_kind(fmt, provider=req.provider, model=req.model)  # or refuses
    if kind == "json_object":
        if req.drop_params:
            return
        raise _bad(
            "anthropic does not support the parameter 'response_format' as "
            "{'type': 'json_object'}: it has no JSON mode without a schema; pass a pydantic "
            "model class or {'type': 'json_schema', 'json_schema': {'name': ..., 'schema': "
            "{...}}} instead, or drop_params=True to drop it", req,
        )
    fields = response_format_body(fmt, "anthropic", provider=req.provider, model=req.model)
    if fields:
        body.setdefault("output_config", {}).update(fields["output_config"])


class AnthropicProvider:
    """The :class:`~trillm.providers.base.Provider` for Anthropic's Messages API."""

    name = "anthropic"
    operations = frozenset({"chat", "batch", "count_tokens"})
    #: The Message Batches API's translation (anthropic_batch).
    batches = AnthropicBatches(API_VERSION)
    # The inverse of the parse steps (anthropic_render), for the test kit.
    render_chat = staticmethod(_render.render_chat)
    render_chat_stream = staticmethod(_render.render_chat_stream)
    render_error = staticmethod(_render.render_error)
    render_stream_error = staticmethod(_render.render_stream_error)

    def build_chat(self, req: ChatRequest, cfg: ProviderConfig) -> HTTPRequestSpec:
        """``POST {api_base}/v1/messages`` with the request translated to Anthropic's shape."""
        system, messages = convert_messages(req)
        body: dict[str, Any] = {"model": req.model, "messages": messages}
        if system is not None:
            body["system"] = system
        _params(req, body)
        if req.stream:
            body["stream"] = True
        if req.extra_body:
            body.update(req.extra_body)
        headers: tuple[tuple[str, str], ...] = (("anthropic-version", API_VERSION),)
        if cfg.api_key:
            headers = (("x-api-key", cfg.api_key), *headers)
        return HTTPRequestSpec(
            "POST", f"{cfg.api_base.rstrip('/')}/v1/messages", with_extra_headers(headers, req),
            json=body,
            provider=req.provider, model=req.model,
        )

    def parse_chat(
        self, body: bytes, req: ChatRequest, cfg: ProviderConfig | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ModelResponse:
        """A 2xx body as a :class:`ModelResponse`; an ``{"type": "error"}`` body raises it."""
        secrets = cfg.secrets if cfg is not None else ()
        data = loads_json(body, provider=req.provider, model=req.model, secrets=secrets)
        if type(data) is dict and data.get("type") == "error":
            raise _error_from_body(data, req, cfg)
        try:
            if type(data) is not dict:
                raise TypeError("not a JSON object")
            texts: list[str] = []
            thinking: list[str] = []
            calls: list[ToolCall] = []
            for block in data.get("content") or ():
                kind = block.get("type")
                if kind == "text":
                    texts.append(block.get("text") or "")
                elif kind == "thinking":
                    thinking.append(block.get("thinking") or "")
                elif kind == "tool_use":
                    calls.append(ToolCall(
                        block.get("id") or "",
                        FunctionCall(block.get("name") or "",
                                     json.dumps(block.get("input") or {})),
                    ))
            message = Message(
                "assistant",
                "".join(texts) or (None if calls else ""),
                tuple(calls) or None,
                "".join(thinking) or None,
                REFUSAL if data.get("stop_reason") == "refusal" else None,
            )
            u = data.get("usage")
            return ModelResponse(
                data.get("id") or "",
                0,
                data.get("model") or req.model,
                (Choice(0, message, _finish(data.get("stop_reason"))),),
                parse_usage(u) if u else None,
                raw=data,
                headers={} if headers is None else headers,
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise unexpected_answer(req, body, secrets, str(exc)) from exc

    def stream_parser(
        self, req: ChatRequest, cfg: ProviderConfig | None = None
    ) -> AnthropicStreamParser:
        """A fresh parser for one streamed answer (*cfg*'s key is scrubbed from its errors)."""
        return AnthropicStreamParser(req, cfg)

    def parse_error(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        req: ChatRequest,
        cfg: ProviderConfig,
    ) -> errors.APIError:
        """A non-2xx answer as the most specific error (529 / ``overloaded_error``: 503's class)."""
        message, kind = _error_fields(json_or_none(body))
        err = error_from_response(
            status, headers, body, provider=req.provider, model=req.model, cfg=cfg,
            message=message, err_type=kind,
        )
        if kind == "overloaded_error" and not isinstance(err, errors.ServiceUnavailableError):
            err = errors.ServiceUnavailableError(
                err.message, status_code=status, provider=err.provider, model=err.model,
                request_id=err.request_id, body=err.body, headers=err.headers,
                retry_after=err.retry_after, secrets=cfg.secrets,
            )
        return err


def _finish(reason: Any) -> str | None:
    if reason is None:
        return None
    return FINISH_REASONS.get(reason, str(reason))


def parse_usage(u: Mapping[str, Any]) -> Usage:
    """OpenAI-style usage from Anthropic's: prompt tokens include cache reads and writes."""
    cache_read = u.get("cache_read_input_tokens") or 0
    cache_write = u.get("cache_creation_input_tokens") or 0
    prompt = (u.get("input_tokens") or 0) + cache_read + cache_write
    completion = u.get("output_tokens") or 0
    return Usage(prompt, completion, prompt + completion,
                 {"cached_tokens": cache_read, "cache_creation_tokens": cache_write})


def _error_fields(data: Any) -> tuple[str | None, str | None]:
    """``(message, type)`` of ``{"type": "error", "error": {"type": ..., "message": ...}}``."""
    if not isinstance(data, dict):
        return None, None
    err = data.get("error")
    if isinstance(err, dict):
        message, kind = err.get("message"), err.get("type")
    elif isinstance(err, str):
        message, kind = err, None
    else:
        message, kind = data.get("message"), None
    if message is not None and not isinstance(message, str):
        message = json.dumps(message)[:1000]
    return message, kind if isinstance(kind, str) else None


def _error_from_body(
    data: Any, req: ChatRequest, cfg: ProviderConfig | None
) -> errors.APIError:
    """The error for an ``error`` met in a 200 body or a stream: status from its type, else 500."""
    message, kind = _error_fields(data)
    status = _STATUS_BY_TYPE.get(kind or "", 500)
    return error_from_response(
        status, {}, json.dumps(data).encode(), provider=req.provider, model=req.model,
        cfg=cfg or ProviderConfig(name=req.provider, api_base=""),
        message=message or "the server reported an error", err_type=kind,
    )


# ---------------------------------------------------------------- streams


def _check_text(value: Any) -> None:
    """A text may be missing or empty, but a value that is not a string is a ``TypeError``."""
    if value is not None and type(value) is not str:
        raise TypeError(f"{value!r} where a string belongs")


def _block_index(obj: Mapping[str, Any]) -> int:
    index = obj.get("index", -1)
    if type(index) is not int:
        raise TypeError(f"a content block index {index!r} that is not an integer")
    return index


def _strings(*values: Any) -> None:
    for value in values:
        if type(value) is not str:
            raise TypeError(f"{value!r} where a string belongs")


class AnthropicStreamParser:
    """Turns one Anthropic event stream into OpenAI-style :class:`StreamChunk` values.

    ``done`` turns true at ``message_stop`` or at a ``message_delta`` with a
    ``stop_reason``.  Tool calls are indexed by their position among the
    answer's tool calls (not by content block index), as OpenAI indexes them.
    ``finished`` turns true at the ``stop_reason`` only.
    """

    __slots__ = ("_args_seen", "_cfg", "_done", "_finished", "_id", "_model", "_req",
                 "_texted", "_tools", "_usage")

    def __init__(self, req: ChatRequest, cfg: ProviderConfig | None = None) -> None:
        self._req = req
        self._cfg = cfg
        self._done = False
        self._finished = False  # a stop_reason was seen
        self._id = ""
        self._model = req.model
        self._usage: dict[str, Any] = {}
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._args_seen: set[int] = set()  # tool call indexes that got argument text
        self._texted = False  # some text was streamed

    @property
    def done(self) -> bool:
        """True once ``message_stop`` or a stop reason was seen."""
        return self._done

    @property
    def finished(self) -> bool:
        """True once the ``message_delta`` carrying the ``stop_reason`` was seen."""
        return self._finished

    def _chunk(self, delta: Delta, finish: str | None = None,
               usage: Usage | None = None, raw: Any = None) -> StreamChunk:
        return StreamChunk(self._id, 0, self._model, (StreamChoice(0, delta, finish),),
                           usage, raw=raw)

    def _tool_delta(self, index: int, args: str, raw: Any, *, start: Any = None) -> StreamChunk:
        if start is not None:
            tid, name = start.get("id") or "", start.get("name") or ""
            _strings(tid, name)
            tcd = ToolCallDelta(index, tid, "function", FunctionDelta(name, args))
        else:
            tcd = ToolCallDelta(index, function=FunctionDelta(arguments=args))
        return self._chunk(Delta(tool_calls=(tcd,)), raw=raw)

    def feed(self, event: SSEEvent) -> StreamChunk | None:
        """Translate one event; raises the mapped error for an ``error`` event."""
        data = event.data
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise self._malformed(data, str(exc)) from exc
        if type(obj) is not dict:
            raise self._malformed(data, "not a JSON object")
        kind = obj.get("type") or event.event
        if kind == "error" or event.event == "error":
            try:
                mapped = _error_from_body(obj, self._req, self._cfg)
            except RecursionError as deep:  # nested too deeply to copy or redact
                raise self._malformed(data, "an error event nested too deeply") from deep
            raise mapped
        try:
            return self._translate(kind, obj)
        except (AttributeError, TypeError, ValueError, KeyError, RecursionError) as exc:
            raise self._malformed(data, f"unexpected shape: {exc!r}") from exc

    def _translate(self, kind: Any, obj: dict[str, Any]) -> StreamChunk | None:
        if kind == "content_block_delta":
            d = obj["delta"]
            dkind = d.get("type")
            if dkind == "text_delta":
                text = d.get("text")
                if type(text) is not str or not text:
                    _check_text(text)
                    return None
                self._texted = True
                return self._chunk(Delta(content=text), raw=obj)
            if dkind == "input_json_delta":
                index = self._tools.get(_block_index(obj))
                part = d.get("partial_json")
                if index is None or type(part) is not str or not part:
                    _check_text(part)
                    return None
                self._args_seen.add(index)
                return self._tool_delta(index, part, obj)
            if dkind == "thinking_delta":
                text = d.get("thinking")
                if type(text) is not str or not text:
                    _check_text(text)
                    return None
                return self._chunk(Delta(reasoning_content=text), raw=obj)
            return None  # signature_delta, citations_delta, future types
        if kind == "content_block_start":
            block = obj["content_block"]
            bkind = block.get("type")
            if bkind == "text":
                text = block.get("text")
                if type(text) is not str or not text:
                    _check_text(text)
                    return None
                self._texted = True
                return self._chunk(Delta(content=text), raw=obj)
            if bkind == "thinking":
                text = block.get("thinking")
                if type(text) is not str or not text:
                    _check_text(text)
                    return None
                return self._chunk(Delta(reasoning_content=text), raw=obj)
            if bkind == "tool_use":
                index = self._tools[_block_index(obj)] = len(self._tools)
                args = ""
                if block.get("input"):  # not sent today, but an input given at once counts
                    args = json.dumps(block["input"])
                    self._args_seen.add(index)
                return self._tool_delta(index, args, obj, start=block)
            return None
        if kind == "content_block_stop":
            index = self._tools.get(_block_index(obj))
            if index is not None and index not in self._args_seen:
                self._args_seen.add(index)  # the plain answer's empty input is "{}"
                return self._tool_delta(index, "{}", obj)
            return None
        if kind == "message_start":
            m = obj["message"]
            self._id = m.get("id") or ""
            self._model = m.get("model") or self._req.model
            _strings(self._id, self._model)
            self._usage = dict(m.get("usage") or {})
            return self._chunk(Delta(role="assistant"), raw=obj)
        if kind == "message_delta":
            u = obj.get("usage")
            if u:
                self._usage.update({k: v for k, v in u.items() if v is not None})
            reason = (obj.get("delta") or {}).get("stop_reason")
            delta = Delta()
            if reason is not None:
                _strings(reason)
                self._done = self._finished = True
                if not self._texted and not self._tools:
                    delta = Delta(content="")  # as the plain answer's content is "" then
                if reason == "refusal":
                    delta = Delta(content=delta.content, refusal=REFUSAL)
            usage = parse_usage(self._usage) if self._usage else None
            if usage is not None and not (type(usage.prompt_tokens) is int
                                          and type(usage.completion_tokens) is int):
                raise TypeError("token counts that are not integers")
            return self._chunk(delta, _finish(reason), usage, obj)
        if kind == "message_stop":
            self._done = True
        return None  # ping and unknown events

    def _malformed(self, data: str, why: str) -> errors.StreamError:
        return errors.StreamError(
            f"malformed stream event from {self._req.provider} ({why}): {data[:200]!r}",
            provider=self._req.provider, model=self._req.model,
            secrets=self._cfg.secrets if self._cfg is not None else (),
        )


#: The module's provider instance.
PROVIDER = AnthropicProvider()
