"""OpenAI's Responses API, spoken by OpenAI, Azure (its v1 route) and compatible servers.

Sans-I/O, like every provider module: :mod:`trillm.providers.openai` (and
Azure, through it) delegates its ``"responses"`` operation here, giving the URL
and the headers.

Requests: ``POST {api_base}/responses`` with ``model``, ``input`` (a string or
a list of input items), every other parameter unchanged (``instructions``,
``tools`` in the flat form, ``text``, ``max_output_tokens``, ``reasoning``,
``previous_response_id``, ``store``, unknown ones too) and ``extra_body`` on top;
``stream: true`` when streaming.

Answers: a :class:`~trillm.response_types.Response`; a ``message``, a
``function_call`` and a ``reasoning`` item are typed, an item of any other type
is kept as its dict.  Streams: one :class:`~trillm.response_types.ResponseEvent`
per SSE event (unknown types passed through); the stream is done at
``response.completed`` or ``response.incomplete`` (what follows is ignored, a
``[DONE]`` line included); ``response.failed`` and an ``error`` event raise the
error their ``code`` names (``rate_limit_exceeded`` is a
:class:`~trillm.errors.RateLimitError`, ``server_error`` an
:class:`~trillm.errors.InternalServerError`, ``invalid_prompt`` a
:class:`~trillm.errors.BadRequestError`, ...; an unknown code is a 500, as a
server that failed after answering 200 most likely failed transiently).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from .. import errors
from ..response_types import (
    TERMINAL_EVENTS,
    OutputItem,
    Response,
    ResponseEvent,
    ResponseFunctionCall,
    ResponseInputTokensDetails,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseOutputText,
    ResponseOutputTokensDetails,
    ResponseReasoning,
    ResponsesRequest,
    ResponseUsage,
)
from ..sse import SSEEvent
from .base import (
    HTTPRequestSpec,
    ProviderConfig,
    body_excerpt,
    error_from_response,
    loads_json,
    unexpected_answer,
)

__all__ = [
    "ResponsesStreamParser", "build_responses", "error_from_code", "not_found_message",
    "parse_response_object", "parse_responses", "parse_responses_as_events",
    "parse_response_usage",
]

# Status for an error met in a 200 answer or a stream, by its `code` (or `type`).
_STATUS_BY_CODE = {
    "rate_limit_exceeded": 429, "rate_limit_error": 429, "insufficient_quota": 429,
    "server_error": 500, "internal_error": 500, "vector_store_timeout": 500,
    "service_unavailable": 503, "overloaded_error": 529,
    "invalid_prompt": 400, "invalid_request_error": 400, "context_length_exceeded": 400,
    "bio_policy": 400, "misalignment_policy_violation": 400, "data_residency_mismatch": 400,
    "empty_image_file": 400, "failed_to_download_image": 400,
    "unsupported_image_media_type": 400,
    "authentication_error": 401, "invalid_api_key": 401,
    "permission_error": 403, "permission_denied": 403,
    "not_found_error": 404, "model_not_found": 404,
}
_POLICY_CODES = frozenset(
    {"bio_policy", "misalignment_policy_violation", "image_content_policy_violation"})


# ---------------------------------------------------------------- requests


def build_responses(
    req: ResponsesRequest, cfg: ProviderConfig, *, url: str,
    headers: tuple[tuple[str, str], ...],
) -> HTTPRequestSpec:
    """``POST`` *url* (the provider's Responses endpoint) with *headers* (its auth)."""
    body: dict[str, Any] = {
        "model": req.model,
        "input": req.input if isinstance(req.input, str) else list(req.input),
    }
    body.update(req.params)
    if req.stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    if req.extra_body:
        body.update(req.extra_body)
    return HTTPRequestSpec("POST", url, headers, json=body, provider=req.provider,
                           model=req.model)


def not_found_message(message: str | None, url: str) -> str:
    """What a 404 to a Responses request says: most likely the server has no Responses API."""
    said = f"{message}: " if message else ""
    return (f"{said}POST {url} answered 404 Not Found: this server has no Responses API "
            "there (use trillm.acompletion with it), or it does not know this model or "
            "response id")


# ---------------------------------------------------------------- answers


def parse_response_usage(u: Mapping[str, Any]) -> ResponseUsage:
    """A :class:`ResponseUsage` from the ``usage`` object (missing counts are 0)."""
    inp = u.get("input_tokens") or 0
    out = u.get("output_tokens") or 0
    total = u.get("total_tokens")
    total = inp + out if total is None else total
    in_details = u.get("input_tokens_details") or {}
    out_details = u.get("output_tokens_details") or {}
    cached = in_details.get("cached_tokens") or 0
    reasoning = out_details.get("reasoning_tokens") or 0
    for value in (inp, out, total, cached, reasoning):
        if type(value) is not int:
            raise TypeError(f"a token count {value!r} that is not an integer")
    return ResponseUsage(inp, out, total, ResponseInputTokensDetails(cached),
                         ResponseOutputTokensDetails(reasoning))


def _string(value: Any, what: str) -> str:
    if type(value) is not str:
        raise TypeError(f"{what} {str(value)[:40]!r} that is not a string")
    return value


def _part(p: Any) -> ResponseOutputText | ResponseOutputRefusal | Mapping[str, Any]:
    kind = p.get("type")
    if kind == "output_text":
        annotations = p.get("annotations") or ()
        return ResponseOutputText(_string(p.get("text") or "", "a text"), tuple(annotations),
                                  "output_text", p.get("logprobs"))
    if kind == "refusal":
        return ResponseOutputRefusal(_string(p.get("refusal") or "", "a refusal"))
    if not isinstance(p, Mapping):
        raise TypeError("a content part that is not an object")
    return p


def _item(d: Any, i: int) -> OutputItem:
    kind = d.get("type")
    if kind == "message":
        return ResponseOutputMessage(
            d.get("id") or f"msg_{i}", tuple(_part(p) for p in d.get("content") or ()),
            d.get("role") or "assistant", d.get("status"),
        )
    if kind == "function_call":
        args = d.get("arguments")
        if args is None:
            args = ""
        elif not isinstance(args, str):  # a few servers send an object
            args = json.dumps(args)
        return ResponseFunctionCall(
            _string(d.get("call_id") or d.get("id") or f"call_{i}", "a call_id"),
            _string(d.get("name") or "", "a function name"), args, d.get("id"),
            d.get("status"),
        )
    if kind == "reasoning":
        content = d.get("content")
        return ResponseReasoning(
            d.get("id") or f"rs_{i}", tuple(d.get("summary") or ()),
            None if content is None else tuple(content), d.get("encrypted_content"),
            d.get("status"),
        )
    if not isinstance(d, Mapping):
        raise TypeError("an output item that is not an object")
    return d  # any other item type: kept as it came


def parse_response_object(data: Mapping[str, Any], req: ResponsesRequest) -> Response:
    """A :class:`Response` from the JSON object of a response (a body, or an event's
    ``response``); raises ``TypeError`` / ``AttributeError`` on a shape it cannot read."""
    u = data.get("usage")
    rid, model = data.get("id") or "", data.get("model") or req.model
    status = data.get("status")
    if type(rid) is not str or type(model) is not str or (
            status is not None and type(status) is not str):
        raise TypeError("an id, model or status that is not a string")
    output = data.get("output") or ()
    if type(output) is not list and output != ():
        raise TypeError("output that is not a list")
    created = data.get("created_at")
    return Response(
        rid, model, tuple(_item(d, i) for i, d in enumerate(output)), status,
        parse_response_usage(u) if u else None,
        data.get("incomplete_details"), data.get("error"),
        created if isinstance(created, int | float) else None,
        data.get("previous_response_id"), data.get("object") or "response",
        raw=data,
    )


def parse_responses(
    body: bytes, req: ResponsesRequest, cfg: ProviderConfig | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A 2xx body as a :class:`Response` (*headers*, redacted, kept as ``.headers``); a body
    that is only ``{"error": ...}`` raises the error it names."""
    secrets = cfg.secrets if cfg is not None else ()
    data = loads_json(body, provider=req.provider, model=req.model, secrets=secrets)
    if type(data) is not dict:
        raise unexpected_answer(req, body, secrets, "not a JSON object")
    err = data.get("error")
    if err is not None and "output" not in data and data.get("object") != "response":
        raise error_from_code(err if isinstance(err, Mapping) else {"message": err}, data,
                              provider=req.provider, model=req.model, cfg=cfg)
    try:
        response = parse_response_object(data, req)
    except (AttributeError, TypeError, ValueError) as exc:
        raise unexpected_answer(req, body, secrets, f"responses: {exc}") from exc
    return response if headers is None else attrs.evolve(response, headers=headers)


def parse_responses_as_events(
    body: bytes, req: ResponsesRequest, cfg: ProviderConfig | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[ResponseEvent, ...]:
    """A whole JSON answer to a stream request (a server that does not stream) as the one
    event a stream would end with; a failed response raises as ``response.failed`` does."""
    response = parse_responses(body, req, cfg, headers)
    if response.status == "failed":
        raise error_from_code(response.error or {}, response.raw, provider=req.provider,
                              model=req.model, cfg=cfg, failed=True)
    kind = "response.incomplete" if response.status == "incomplete" else "response.completed"
    data = {"type": kind, "sequence_number": 0, "response": response.raw}
    return (ResponseEvent(kind, 0, data, None, response),)


# ---------------------------------------------------------------- errors


def error_from_code(
    err: Mapping[str, Any], data: Any, *, provider: str, model: str | None,
    cfg: ProviderConfig | None = None, failed: bool = False,
) -> errors.APIError:
    """The error that *err* (``{"code", "message", "type"}``) names; *data* is the JSON it
    came in (kept, redacted, as the error's body).  *failed*: from ``response.failed``."""
    code, kind, message = err.get("code"), err.get("type"), err.get("message")
    code = None if code is None else str(code)
    kind = kind if isinstance(kind, str) else None
    if message is not None and not isinstance(message, str):
        message = json.dumps(message)[:1000]
    status = 500
    if code is not None and code.isdigit() and 400 <= int(code) <= 599:
        status = int(code)
    else:
        for name in (code, kind):
            if name is None:
                continue
            if name in _STATUS_BY_CODE:
                status = _STATUS_BY_CODE[name]
                break
            if name.startswith(("invalid_image", "image_")):
                status = 400
                break
    if code in _POLICY_CODES:
        kind = "content_policy_violation"
    what = "the response failed" if failed else "the server reported an error"
    text = f"{what}: {message}" if message else what
    cfg = cfg or ProviderConfig(name=provider, api_base="")
    try:
        body = json.dumps(data).encode()
    except (TypeError, ValueError, RecursionError):
        body = body_excerpt(str(data), cfg.secrets).encode()
    return error_from_response(status, {}, body, provider=provider, model=model, cfg=cfg,
                               message=text, code=code, err_type=kind)


# ---------------------------------------------------------------- streams


class ResponsesStreamParser:
    """Turns one Responses SSE stream into :class:`ResponseEvent` values.

    ``done`` (and ``finished``) turn true at ``response.completed`` or
    ``response.incomplete``; every event after it is ignored.  An event's type is
    its JSON ``type``, else the SSE ``event:`` name.
    """

    __slots__ = ("_cfg", "_done", "_req")

    def __init__(self, req: ResponsesRequest, cfg: ProviderConfig | None = None) -> None:
        self._req = req
        self._cfg = cfg  # only for scrubbing its key out of errors
        self._done = False

    @property
    def done(self) -> bool:
        """True once the terminal event was seen."""
        return self._done

    @property
    def finished(self) -> bool:
        """The answer is whole once its terminal event was seen."""
        return self._done

    def feed(self, event: SSEEvent) -> ResponseEvent | None:
        """Translate one event; raises the mapped error for ``response.failed`` / ``error``."""
        if self._done:
            return None
        data = event.data
        if data[:1] != "{" and data.strip() == "[DONE]":
            return None
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise self._malformed(data, str(exc)) from exc
        if type(obj) is not dict:
            raise self._malformed(data, "not a JSON object")
        kind = obj.get("type") or event.event or "message"
        req = self._req
        if kind == "error" or (event.event == "error" and kind == "message"):
            nested = obj.get("error")
            raise error_from_code(nested if isinstance(nested, Mapping) else obj, obj,
                                  provider=req.provider, model=req.model, cfg=self._cfg)
        try:
            if type(kind) is not str:
                raise TypeError(f"an event type {kind!r} that is not a string")
            r = obj.get("response")
            if kind == "response.failed":
                err = r.get("error") if isinstance(r, Mapping) else None
                raise error_from_code(err if isinstance(err, Mapping) else {}, obj,
                                      provider=req.provider, model=req.model, cfg=self._cfg,
                                      failed=True)
            seq = obj.get("sequence_number")
            if seq is not None and type(seq) is not int:
                raise TypeError(f"a sequence_number {seq!r} that is not an integer")
            delta = obj.get("delta") if kind.endswith(".delta") else None
            if delta is not None and type(delta) is not str:
                delta = None  # not text (a structured delta): it stays in `data`
            response = None
            if isinstance(r, Mapping) and kind.startswith("response."):
                response = parse_response_object(r, req)
            elif kind in TERMINAL_EVENTS:
                raise TypeError(f"a {kind} event without its response")
        except (AttributeError, TypeError, ValueError, RecursionError) as exc:
            raise self._malformed(data, f"unexpected shape: {exc}") from exc
        if kind in TERMINAL_EVENTS:
            self._done = True
        return ResponseEvent(kind, seq, obj, delta, response)

    def _malformed(self, data: str, why: str) -> errors.StreamError:
        return errors.StreamError(
            f"malformed stream event from {self._req.provider} ({why}): {data[:200]!r}",
            provider=self._req.provider, model=self._req.model,
            secrets=self._cfg.secrets if self._cfg is not None else (),
        )
