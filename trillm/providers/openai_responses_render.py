"""OpenAI's Responses API rendered from trillm's records: the inverse of its parse steps.

Pure functions, reached through the provider object (``PROVIDER.render_responses``,
...), for the test kit.  ``parse_responses(render_responses(r)) == r`` for every
response the parser can give, and the events of :func:`render_responses_stream`,
read by the SSE decoder and :class:`~trillm.providers.openai_responses.ResponsesStreamParser`,
end with a ``response.completed`` (or ``response.incomplete``) event whose
response is *r* again, after the deltas of its text, refusals, function-call
arguments and reasoning summaries, in the order a real server sends them::

    response.created, response.in_progress,
    per output item: response.output_item.added,
        message:       per part: response.content_part.added,
                       response.output_text.delta... / response.refusal.delta...,
                       response.output_text.done / response.refusal.done,
                       response.content_part.done
        function_call: response.function_call_arguments.delta...,
                       response.function_call_arguments.done
        reasoning:     per summary part: response.reasoning_summary_part.added,
                       response.reasoning_summary_text.delta...,
                       response.reasoning_summary_text.done,
                       response.reasoning_summary_part.done
    response.output_item.done
    response.completed | response.incomplete | response.failed
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..response_types import (
    Response,
    ResponseFunctionCall,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseOutputText,
    ResponseReasoning,
)
from .render import dumps, sse_event, words

__all__ = ["DELTA_EVENTS", "render_responses", "render_responses_stream",
           "render_responses_stream_error"]

#: The event types that carry a piece of the answer (one per piece of *split*).
DELTA_EVENTS = frozenset({
    "response.output_text.delta", "response.refusal.delta",
    "response.function_call_arguments.delta", "response.reasoning_summary_text.delta",
})
#: The ``code`` of an ``error`` event for a status (others: the status's digits).
_CODES = {400: "invalid_prompt", 401: "invalid_api_key", 403: "permission_denied",
          404: "model_not_found", 429: "rate_limit_exceeded", 500: "server_error",
          503: "service_unavailable", 529: "overloaded_error"}


def _response_dict(response: Response) -> dict[str, Any]:
    data = response.to_dict()
    data.pop("output_parsed", None)  # trillm's own, never on the wire
    data.setdefault("output", [])
    return data


def render_responses(response: Response) -> bytes:
    """A ``response`` object body."""
    return dumps(_response_dict(response))


def _item_start(item: Any) -> dict[str, Any]:
    """An output item as ``response.output_item.added`` shows it: nothing said yet."""
    if isinstance(item, ResponseOutputMessage):
        return {**item.to_dict(), "content": [], "status": "in_progress"}
    if isinstance(item, ResponseFunctionCall):
        return {**item.to_dict(), "arguments": "", "status": "in_progress"}
    if isinstance(item, ResponseReasoning):
        start = item.to_dict()
        start["summary"] = []
        return start
    return dict(item)


def render_responses_stream(
    response: Response, split: Callable[[str], Sequence[str]] = words, *, end: bool = True
) -> list[bytes]:
    """*response* as the SSE events of a real stream, one per element, each text cut by
    *split* into its deltas (``"".join(split(t)) == t`` must hold).  *end* false leaves
    out the terminal event (a stream cut short)."""
    events: list[dict[str, Any]] = []
    whole = _response_dict(response)
    early = {**whole, "status": "in_progress", "output": [], "usage": None}
    early = {k: v for k, v in early.items() if v is not None}
    events += [{"type": "response.created", "response": early},
               {"type": "response.in_progress", "response": early}]
    for i, item in enumerate(response.output):
        events.append({"type": "response.output_item.added", "output_index": i,
                       "item": _item_start(item)})
        if isinstance(item, ResponseOutputMessage):
            events += _message_events(item, i, split)
        elif isinstance(item, ResponseFunctionCall):
            at = {"item_id": item.id or item.call_id, "output_index": i}
            events += [{"type": "response.function_call_arguments.delta", **at, "delta": piece}
                       for piece in split(item.arguments)]
            events.append({"type": "response.function_call_arguments.done", **at,
                           "arguments": item.arguments})
        elif isinstance(item, ResponseReasoning):
            events += _reasoning_events(item, i, split)
        events.append({"type": "response.output_item.done", "output_index": i,
                       "item": whole["output"][i]})
    if end:
        kind = {"incomplete": "response.incomplete", "failed": "response.failed"}.get(
            response.status or "", "response.completed")
        events.append({"type": kind, "response": whole})
    return [sse_event({**e, "sequence_number": n}, e["type"]) for n, e in enumerate(events)]


def _message_events(item: ResponseOutputMessage, i: int,
                    split: Callable[[str], Sequence[str]]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for k, part in enumerate(item.content):
        at = {"item_id": item.id, "output_index": i, "content_index": k}
        done = part.to_dict() if hasattr(part, "to_dict") else dict(part)
        if isinstance(part, ResponseOutputText):
            start = {**done, "text": ""}
            pieces = [{"type": "response.output_text.delta", **at, "delta": p}
                      for p in split(part.text)]
            last = {"type": "response.output_text.done", **at, "text": part.text}
        elif isinstance(part, ResponseOutputRefusal):
            start = {**done, "refusal": ""}
            pieces = [{"type": "response.refusal.delta", **at, "delta": p}
                      for p in split(part.refusal)]
            last = {"type": "response.refusal.done", **at, "refusal": part.refusal}
        else:
            start, pieces, last = done, [], None
        events.append({"type": "response.content_part.added", **at, "part": start})
        events += pieces
        if last is not None:
            events.append(last)
        events.append({"type": "response.content_part.done", **at, "part": done})
    return events


def _reasoning_events(item: ResponseReasoning, i: int,
                      split: Callable[[str], Sequence[str]]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for k, part in enumerate(item.summary):
        at = {"item_id": item.id, "output_index": i, "summary_index": k}
        text = part.get("text") if isinstance(part, Mapping) else None
        if not isinstance(text, str):
            continue
        events.append({"type": "response.reasoning_summary_part.added", **at,
                       "part": {**part, "text": ""}})
        events += [{"type": "response.reasoning_summary_text.delta", **at, "delta": p}
                   for p in split(text)]
        events += [{"type": "response.reasoning_summary_text.done", **at, "text": text},
                   {"type": "response.reasoning_summary_part.done", **at, "part": dict(part)}]
    return events


def render_responses_stream_error(status: int, message: str, *, code: str | None = None
                                  ) -> bytes:
    """An ``error`` event met in the middle of a stream, whose ``code`` names *status*."""
    named = code if code is not None else _CODES.get(status, str(status))
    return sse_event({"type": "error", "code": named, "message": message, "param": None},
                     "error")
