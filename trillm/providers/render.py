"""What every provider's ``render_*`` step shares: SSE framing and answers cut into chunks.

The render steps are the inverse of the parse steps: they turn trillm's own
records into the bytes a provider's server sends, so a fake server (the test
kit, :mod:`trillm.testing`) answers exactly what the real parsers read.  A
streamed answer is rendered from OpenAI-shaped :class:`~trillm.types.StreamChunk`
values; :func:`response_chunks` cuts a whole :class:`~trillm.types.ModelResponse`
into such chunks, so ``stream_chunk_builder(response_chunks(r)) == r``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..types import (
    EMPTY_STREAM_CHOICES,
    Delta,
    FunctionDelta,
    ModelResponse,
    StreamChoice,
    StreamChunk,
    ToolCallDelta,
)

__all__ = ["dumps", "response_chunks", "sse_event", "words"]

_WORDS = re.compile(r"\s*\S+|\s+$")


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes (what the providers' servers send)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def sse_event(data: Any, event: str | None = None) -> bytes:
    """One Server-Sent Event: ``event:`` (when given) and one ``data:`` line of JSON
    (a string is sent as is), ended by a blank line."""
    text = data if isinstance(data, str) else dumps(data).decode()
    head = f"event: {event}\n" if event is not None else ""
    return f"{head}data: {text}\n\n".encode()


def words(text: str) -> list[str]:
    """*text* cut before each word (the spaces stay with the word after them);
    ``"".join(words(t)) == t`` for every *t*, and a non-empty *t* gives no empty piece."""
    if not text:
        return []
    pieces = _WORDS.findall(text)
    return pieces if "".join(pieces) == text else [text]


def response_chunks(
    response: ModelResponse, split: Callable[[str], Sequence[str]] = words
) -> list[StreamChunk]:
    """*response* as the OpenAI-shaped chunks a stream of it gives.

    Per choice: a chunk with the role, the reasoning, content and refusal cut
    by *split* (one chunk per piece), each tool call (a chunk with its id and
    name, then its arguments cut by *split*), and a chunk with the finish
    reason (and logprobs); then, when the answer has usage, a usage-only
    chunk.  ``stream_chunk_builder`` of the result equals *response*
    (``raw`` and ``headers`` aside), as long as *split* loses no text.
    """
    out: list[StreamChunk] = []

    def add(index: int, delta: Delta, finish: str | None = None, logprobs: Any = None) -> None:
        out.append(StreamChunk(
            response.id, response.created, response.model,
            (StreamChoice(index, delta, finish, logprobs),),
            system_fingerprint=response.system_fingerprint,
        ))

    for choice in response.choices:
        m, i = choice.message, choice.index
        add(i, Delta(role=m.role))
        for piece in split(m.reasoning_content or ""):
            add(i, Delta(reasoning_content=piece))
        if m.content is not None:
            for piece in split(m.content) or [""]:
                add(i, Delta(content=piece))
        if m.refusal is not None:
            for piece in split(m.refusal) or [""]:
                add(i, Delta(refusal=piece))
        for k, call in enumerate(m.tool_calls or ()):
            f = call.function
            add(i, Delta(tool_calls=(ToolCallDelta(k, call.id, call.type,
                                                   FunctionDelta(f.name, ""),
                                                   call.extra_content),)))
            for piece in split(f.arguments):
                add(i, Delta(tool_calls=(ToolCallDelta(k, function=FunctionDelta(
                    arguments=piece)),)))
        add(i, Delta(), choice.finish_reason, choice.logprobs)
    if response.usage is not None or not out:
        out.append(StreamChunk(response.id, response.created, response.model,
                               EMPTY_STREAM_CHOICES, response.usage,
                               system_fingerprint=response.system_fingerprint))
    return out
