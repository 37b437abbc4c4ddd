"""Gemini's wire format rendered from trillm's records: the inverse of its parse steps.

Pure functions, reached through the provider object (``PROVIDER.render_chat``,
...).  An answer is a ``GenerateContentResponse``: one candidate per choice,
its parts ``thought`` texts, then the text, then ``functionCall`` parts
(arguments, a JSON object as a string, become ``args``); the finish reason
becomes ``finishReason`` (``tool_calls`` is Gemini's ``STOP`` with calls);
usage becomes ``usageMetadata`` (reasoning tokens as ``thoughtsTokenCount``,
cached ones as ``cachedContentTokenCount``).  A stream
(``streamGenerateContent?alt=sse``) is one partial response per event, with
no end marker: a function call is sent whole, in the event that finishes its
candidate, as Gemini sends calls whole.  A tool call's own id goes out as the
call's ``id`` (the ids the parser derives, ``call_<n>_<n>``, are not sent), and
its ``extra_content`` thought signature as the part's ``thoughtSignature``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..types import EmbeddingResponse, ModelResponse, StreamChunk, ToolCallDelta, Usage
from .render import dumps, sse_event

__all__ = ["DERIVED_ID", "render_chat", "render_chat_stream", "render_embedding", "render_error",
           "render_stream_error"]

#: The tool-call ids the parser makes up for calls Gemini sent without one (never sent back).
DERIVED_ID = re.compile(r"call_[0-9]+_[0-9]+")
#: OpenAI finish reason -> Gemini finishReason.
FINISH_REASONS = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS",
                  "content_filter": "SAFETY"}
#: HTTP status -> google.rpc status name.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL",
    501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}


def _args(arguments: str) -> Any:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _usage(u: Usage) -> dict[str, Any]:
    thoughts = int((u.completion_tokens_details or {}).get("reasoning_tokens") or 0)
    cached = int((u.prompt_tokens_details or {}).get("cached_tokens") or 0)
    out: dict[str, Any] = {"promptTokenCount": u.prompt_tokens,
                           "candidatesTokenCount": u.completion_tokens - thoughts,
                           "totalTokenCount": u.total_tokens}
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    if cached:
        out["cachedContentTokenCount"] = cached
    return out


def _finish(reason: str | None) -> str | None:
    return None if reason is None else FINISH_REASONS.get(reason, reason)


def _candidate(index: int, parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": index}
    if finish is not None:
        cand["finishReason"] = _finish(finish)
    return cand


def _response(response_id: str, model: str, candidates: list[dict[str, Any]],
              usage: Usage | None) -> dict[str, Any]:
    out: dict[str, Any] = {"candidates": candidates} if candidates else {}
    if usage is not None:
        out["usageMetadata"] = _usage(usage)
    out["modelVersion"] = model
    out["responseId"] = response_id
    return out


def render_chat(response: ModelResponse) -> bytes:
    """A ``generateContent`` body."""
    candidates = []
    for c in response.choices:
        m = c.message
        parts = _text_parts(m.reasoning_content, m.content)
        for call in m.tool_calls or ():
            parts.append(_call_part(call.function.name, call.function.arguments, call.id,
                                    call.extra_content))
        candidates.append(_candidate(c.index, parts, c.finish_reason))
    return dumps(_response(response.id, response.model, candidates, response.usage))


def render_chat_stream(chunks: Iterable[StreamChunk], *, end: bool = True) -> list[bytes]:
    """One ``data:`` event per chunk that carries something for Gemini.

    Tool-call fragments are gathered and sent whole with their candidate's
    finish reason (or, without one, in a last event unless *end* is false: a
    stream cut short never sends them).  Gemini has no end marker.
    """
    events: list[bytes] = []
    calls: dict[int, dict[int, _Pending]] = {}  # candidate -> call index -> the call so far
    response_id, model = "", ""
    for chunk in chunks:
        response_id, model = chunk.id, chunk.model
        candidates = []
        for sc in chunk.choices:
            d = sc.delta
            parts = _text_parts(d.reasoning_content, d.content)
            for tc in d.tool_calls or ():
                calls.setdefault(sc.index, {}).setdefault(tc.index, _Pending()).add(tc)
            if sc.finish_reason is not None:
                parts.extend(_calls(calls.pop(sc.index, {})))
            if parts or sc.finish_reason is not None:
                candidates.append(_candidate(sc.index, parts, sc.finish_reason))
        if candidates or chunk.usage is not None:
            events.append(sse_event(_response(chunk.id, chunk.model, candidates, chunk.usage)))
    left = [_candidate(i, _calls(c), None) for i, c in sorted(calls.items()) if c]
    if left and end:
        events.append(sse_event(_response(response_id, model, left, None)))
    return events


def _text_parts(thought: str | None, text: str | None) -> list[dict[str, Any]]:
    """A message's (or a delta's) text parts: the thought first, then the text."""
    parts: list[dict[str, Any]] = []
    if thought:
        parts.append({"text": thought, "thought": True})
    if text:
        parts.append({"text": text})
    return parts


class _Pending:
    """A streamed tool call gathered from its deltas, sent whole at its candidate's end."""

    __slots__ = ("args", "extra", "id", "name")

    def __init__(self) -> None:
        self.name = ""
        self.id: str | None = None
        self.extra: Mapping[str, Any] | None = None
        self.args: list[str] = []

    def add(self, tc: ToolCallDelta) -> None:
        if tc.id:
            self.id = tc.id
        if tc.extra_content is not None:
            self.extra = tc.extra_content
        if tc.function is not None:
            if tc.function.name:
                self.name = tc.function.name
            if tc.function.arguments:
                self.args.append(tc.function.arguments)


def _calls(calls: dict[int, _Pending]) -> list[dict[str, Any]]:
    return [_call_part(p.name, "".join(p.args), p.id, p.extra)
            for _, p in sorted(calls.items())]


def _call_part(name: str, arguments: str, call_id: str | None,
               extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """A ``functionCall`` part: Gemini's own id and thought signature as they came."""
    call: dict[str, Any] = {"name": name, "args": _args(arguments)}
    if call_id and not DERIVED_ID.fullmatch(call_id):
        call["id"] = call_id
    part: dict[str, Any] = {"functionCall": call}
    google = extra.get("google") if extra is not None else None
    sig = google.get("thought_signature") if isinstance(google, Mapping) else None
    if isinstance(sig, str) and sig:
        part["thoughtSignature"] = sig
    return part


def render_embedding(response: EmbeddingResponse) -> bytes:
    """A ``batchEmbedContents`` body (vectors in *response*'s order; Gemini sends no usage)."""
    return dumps({"embeddings": [{"values": list(e.embedding)} for e in response.data]})


def _error(status: int, message: str, retry_after: float | None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": status, "message": message,
                           "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if retry_after is not None:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                           "retryDelay": f"{retry_after:g}s"}]
    return {"error": err}


def render_error(status: int, message: str, *, retry_after: float | None = None) -> bytes:
    """Google's error body ``{"error": {"code", "message", "status"}}``; *retry_after*
    adds a ``google.rpc.RetryInfo`` detail."""
    return dumps(_error(status, message, retry_after))


def render_stream_error(status: int, message: str, *, retry_after: float | None = None) -> bytes:
    """An error met in the middle of a stream: one ``data:`` event with the error body."""
    return sse_event(_error(status, message, retry_after))
