"""The ``mock/`` provider's answers to the Responses API, rendered as OpenAI's server sends them.

:mod:`trillm.providers.mock` decides what to answer (the echo of the last user
input, or ``mock_response=``) and how slowly; this module renders it: a whole
``response`` object, or the event sequence of a real stream::

    response.created, response.in_progress, response.output_item.added,
    response.content_part.added, response.output_text.delta (one per word),
    response.output_text.done, response.content_part.done,
    response.output_item.done, response.completed (with the usage)
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from ..response_types import ResponsesRequest

__all__ = ["input_messages", "response_events", "response_json"]

_WORDS = re.compile(r"\s*\S+")


def input_messages(value: str | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """A Responses ``input`` as the chat-style messages the mock's echo reads: a string is one
    user message; input items keep their ``role`` and ``content`` (other items have none)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [item for item in value if isinstance(item, Mapping)]


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        return sum(_text_length(v) for v in value)
    if isinstance(value, Mapping):
        return sum(_text_length(value.get(k)) for k in ("content", "text", "output"))
    return 0


def _ids(req: ResponsesRequest, text: str) -> tuple[str, str]:
    tag = f"{zlib.crc32((req.model + chr(0) + text).encode()):08x}"
    return f"resp_mock{tag}", f"msg_mock{tag}"


def _response(req: ResponsesRequest, text: str, created: int, *, done: bool) -> dict[str, Any]:
    rid, mid = _ids(req, text)
    words = len(_WORDS.findall(text) or [text])
    prompt = math.ceil((_text_length(req.input) + _text_length(req.params.get("instructions")))
                       / 4)
    out: dict[str, Any] = {
        "id": rid, "object": "response", "created_at": created, "model": req.model,
        "status": "completed" if done else "in_progress", "error": None,
        "incomplete_details": None, "output": [], "usage": None,
        "previous_response_id": req.params.get("previous_response_id"),
    }
    if done:
        out["output"] = [_message(mid, text, "completed")]
        out["usage"] = {
            "input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": words, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + words,
        }
    return out


def _message(mid: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [_part(text)]
    return {"id": mid, "type": "message", "status": status, "role": "assistant",
            "content": content}


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def response_json(req: ResponsesRequest, text: str, created: int) -> bytes:
    """The whole answer *text* as a Responses API body."""
    return json.dumps(_response(req, text, created, done=True)).encode()


def response_events(req: ResponsesRequest, text: str, created: int) -> tuple[bytes, ...]:
    """The answer *text* as the SSE events of a real Responses stream, one per element."""
    _, mid = _ids(req, text)
    words = _WORDS.findall(text) or [text]
    where = {"item_id": mid, "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(req, text, created, done=False)},
        {"type": "response.in_progress",
         "response": _response(req, text, created, done=False)},
        {"type": "response.output_item.added", "output_index": 0,
         "item": _message(mid, None, "in_progress")},
        {"type": "response.content_part.added", **where, "part": _part("")},
    ]
    events += [{"type": "response.output_text.delta", **where, "delta": w, "logprobs": []}
               for w in words]
    events += [
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": _part(text)},
        {"type": "response.output_item.done", "output_index": 0,
         "item": _message(mid, text, "completed")},
        {"type": "response.completed", "response": _response(req, text, created, done=True)},
    ]
    return tuple(
        f"event: {e['type']}\ndata: {json.dumps({**e, 'sequence_number': i})}\n\n".encode()
        for i, e in enumerate(events)
    )
