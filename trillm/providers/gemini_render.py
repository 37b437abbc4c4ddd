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
candidate, as Gemini sends calls whole.  Tool-call ids are not sent (Gemini has
none; the parser derives them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..types import EmbeddingResponse, ModelResponse, StreamChunk, Usage
from .render import dumps, sse_event

__all__ = ["render_chat", "render_chat_stream", "render_embedding", "render_error",
           "render_stream_error"]

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
        parts: list[dict[str, Any]] = []
        if m.reasoning_content:
            parts.append({"text": m.reasoning_content, "thought": True})
        if m.content:
            parts.append({"text": m.content})
        for call in m.tool_calls or ():
            parts.append({"functionCall": {"name": call.function.name,
                                           "args": _args(call.function.arguments)}})
        candidates.append(_candidate(c.index, parts, c.finish_reason))
    return dumps(_response(response.id, response.model, candidates, response.usage))


def render_chat_stream(chunks: Iterable[StreamChunk], *, end: bool = True) -> list[bytes]:
    """One ``data:`` event per chunk that carries something for Gemini.

    Tool-call fragments are gathered and sent whole with their candidate's
    finish reason (or, without one, in a last event unless *end* is false: a
    stream cut short never sends them).  Gemini has no end marker.
    """
    events: list[bytes] = []
    calls: dict[int, dict[int, list[str]]] = {}  # candidate -> call index -> [name, args...]
    response_id, model = "", ""
    for chunk in chunks:
        response_id, model = chunk.id, chunk.model
        candidates = []
        for sc in chunk.choices:
            d = sc.delta
            parts: list[dict[str, Any]] = []
            if d.reasoning_content:
                parts.append({"text": d.reasoning_content, "thought": True})
            if d.content:
                parts.append({"text": d.content})
            for tc in d.tool_calls or ():
                entry = calls.setdefault(sc.index, {}).setdefault(tc.index, [""])
                if tc.function is not None:
                    if tc.function.name:
                        entry[0] = tc.function.name
                    if tc.function.arguments:
                        entry.append(tc.function.arguments)
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


def _calls(calls: dict[int, list[str]]) -> list[dict[str, Any]]:
    return [{"functionCall": {"name": entry[0], "args": _args("".join(entry[1:]))}}
            for _, entry in sorted(calls.items())]


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
