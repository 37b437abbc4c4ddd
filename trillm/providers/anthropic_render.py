"""Anthropic's Messages wire format rendered from trillm's records: the inverse of its parsers.

Pure functions, reached through the provider object (``PROVIDER.render_chat``,
...).  An answer is one ``message``: ``thinking`` blocks, then one ``text``
block, then ``tool_use`` blocks (arguments, a JSON object as a string, become
``input``); the OpenAI finish reason becomes ``stop_reason``; usage is split
back into input, cache-read and cache-write tokens (``prompt_tokens_details``).
A stream is the full event sequence: ``message_start``, per block
``content_block_start`` / ``content_block_delta`` (``text_delta``,
``thinking_delta``, ``input_json_delta``) / ``content_block_stop``, then
``message_delta`` (``stop_reason`` and output tokens) and ``message_stop``.
Anthropic answers one choice: choices other than the first are not rendered.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..types import ModelResponse, StreamChunk, Usage
from .render import dumps, sse_event

__all__ = ["render_chat", "render_chat_stream", "render_error", "render_stream_error"]

#: OpenAI finish reason -> Anthropic stop_reason (the inverse of the parser's table).
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "content_filter": "refusal"}
#: HTTP status -> Anthropic error type.
ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}


def _usage(u: Usage | None, *, output: bool = True) -> dict[str, Any]:
    if u is None:
        return {}
    details = u.prompt_tokens_details or {}
    read = int(details.get("cached_tokens") or 0)
    write = int(details.get("cache_creation_tokens") or 0)
    out = {"input_tokens": u.prompt_tokens - read - write, "cache_creation_input_tokens": write,
           "cache_read_input_tokens": read}
    out["output_tokens"] = u.completion_tokens if output else 1
    return out


def _input(arguments: str) -> Any:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _stop_reason(finish: str | None) -> str | None:
    return None if finish is None else STOP_REASONS.get(finish, finish)


def render_chat(response: ModelResponse) -> bytes:
    """A ``message`` body from the first choice of *response*."""
    blocks: list[dict[str, Any]] = []
    finish = None
    if response.choices:
        choice = response.choices[0]
        m, finish = choice.message, choice.finish_reason
        if m.reasoning_content:
            blocks.append({"type": "thinking", "thinking": m.reasoning_content, "signature": ""})
        if m.content:
            blocks.append({"type": "text", "text": m.content})
        for call in m.tool_calls or ():
            blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name,
                           "input": _input(call.function.arguments)})
    body: dict[str, Any] = {
        "id": response.id, "type": "message", "role": "assistant", "model": response.model,
        "content": blocks, "stop_reason": _stop_reason(finish), "stop_sequence": None,
    }
    if response.usage is not None:
        body["usage"] = _usage(response.usage)
    return dumps(body)


class _Blocks:
    """The content blocks of a stream being rendered: which is open, and its events."""

    def __init__(self) -> None:
        self.events: list[bytes] = []
        self.count = 0
        self.open: Any = None  # "text", "thinking" or ("tool", call index)

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append(sse_event({"type": kind, **data}, kind))

    def close(self) -> None:
        if self.open is not None:
            self.emit("content_block_stop", {"index": self.count - 1})
            self.open = None

    def start(self, key: Any, block: dict[str, Any]) -> None:
        self.close()
        self.emit("content_block_start", {"index": self.count, "content_block": block})
        self.count += 1
        self.open = key

    def delta(self, delta: dict[str, Any]) -> None:
        self.emit("content_block_delta", {"index": self.count - 1, "delta": delta})

    def text(self, kind: str, text: str) -> None:
        if not text:
            return
        if self.open != kind:
            empty = {"type": "text", "text": ""} if kind == "text" else {
                "type": "thinking", "thinking": "", "signature": ""}
            self.start(kind, empty)
        key = "text" if kind == "text" else "thinking"
        self.delta({"type": f"{key}_delta", key: text})


def render_chat_stream(chunks: Iterable[StreamChunk], *, end: bool = True) -> list[bytes]:
    """The event sequence of a streamed message from OpenAI-shaped *chunks* (choice 0).

    The message's id and model come from the first chunk, the usage from the
    last chunk that has one.  Without *end* the stream stops after the last
    content event (no ``message_delta`` nor ``message_stop``), as a cut one does.
    """
    chunks = list(chunks)
    usage = next((c.usage for c in reversed(chunks) if c.usage is not None), None)
    first = chunks[0] if chunks else None
    blocks = _Blocks()
    message: dict[str, Any] = {
        "id": first.id if first else "", "type": "message", "role": "assistant",
        "model": first.model if first else "", "content": [], "stop_reason": None,
        "stop_sequence": None,
    }
    if usage is not None:
        message["usage"] = _usage(usage, output=False)
    blocks.emit("message_start", {"message": message})
    finish = None
    for chunk in chunks:
        for sc in chunk.choices:
            if sc.index != 0:
                continue
            d = sc.delta
            blocks.text("thinking", d.reasoning_content or "")
            blocks.text("text", d.content or "")
            for tc in d.tool_calls or ():
                f = tc.function
                if tc.id is not None or blocks.open != ("tool", tc.index):
                    blocks.start(("tool", tc.index), {
                        "type": "tool_use", "id": tc.id or "",
                        "name": (f.name if f is not None else None) or "", "input": {}})
                if f is not None and f.arguments:
                    blocks.delta({"type": "input_json_delta", "partial_json": f.arguments})
            if sc.finish_reason is not None:
                finish = sc.finish_reason
    if not end:
        return blocks.events
    blocks.close()
    delta: dict[str, Any] = {"delta": {"stop_reason": _stop_reason(finish), "stop_sequence": None}}
    if usage is not None:
        delta["usage"] = {"output_tokens": usage.completion_tokens}
    blocks.emit("message_delta", delta)
    blocks.emit("message_stop", {})
    return blocks.events


def _error(status: int, message: str, kind: str | None) -> dict[str, Any]:
    kind = kind or ERROR_TYPES.get(status) or ("api_error" if status >= 500
                                               else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def render_error(status: int, message: str, *, kind: str | None = None) -> bytes:
    """Anthropic's error body ``{"type": "error", "error": {"type", "message"}}``."""
    return dumps(_error(status, message, kind))


def render_stream_error(status: int, message: str, *, kind: str | None = None) -> bytes:
    """An ``error`` event, as Anthropic sends one in the middle of a stream."""
    return sse_event(_error(status, message, kind), "error")

