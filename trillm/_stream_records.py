"""The records of a streamed chat answer: :class:`StreamChunk`, its :class:`StreamChoice`
and :class:`Delta`, and the tool-call deltas.

Public as :mod:`trillm.types`'s (``trillm.types.StreamChunk``, ``trillm.StreamChunk``),
which imports this module on first use: a plain call needs none of these records, and
every attrs class costs a compile and memory at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._records import HIDDEN as _HIDDEN
from ._records import Record as _Record
from ._records import Usage, positional_builder
from ._records import record as _record

__all__ = [
    "EMPTY_STREAM_CHOICES",
    "Delta",
    "FunctionDelta",
    "StreamChoice",
    "StreamChunk",
    "ToolCallDelta",
    "stream_choice",
    "stream_chunk",
    "text_delta",
]


# ---------------------------------------------------------------- stream chunks


@_record
@attrs.frozen(repr=False)
class FunctionDelta(_Record):
    """A piece of a streamed function call: the name once, then argument fragments."""

    name: str | None = None
    arguments: str | None = None


@_record
@attrs.frozen(repr=False)
class ToolCallDelta(_Record):
    """A piece of a streamed tool call; ``index`` says which call it extends."""

    index: int
    id: str | None = None
    type: str | None = None
    function: FunctionDelta | None = None
    extra_content: Mapping[str, Any] | None = None  # as on ToolCall; in one delta, whole


@_record
@attrs.frozen(repr=False)
class Delta(_Record):
    """What one stream chunk adds to a choice's message."""

    role: str | None = None
    content: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] | None = None
    reasoning_content: str | None = None
    refusal: str | None = None


_EMPTY_DELTA = Delta()


@_record
@attrs.frozen(repr=False)
class StreamChoice(_Record):
    """One choice's part of a stream chunk."""

    index: int = 0
    delta: Delta = _EMPTY_DELTA
    finish_reason: str | None = None
    logprobs: Any = None


EMPTY_STREAM_CHOICES = (StreamChoice(),)


@_record
@attrs.frozen(repr=False)
class StreamChunk(_Record):
    """One streamed event in the OpenAI ``chat.completion.chunk`` shape.

    It always has at least one choice: the usage-only chunk at the end of an
    OpenAI stream carries ``usage`` and one empty choice, so
    ``chunk.choices[0].delta.content`` never raises.
    """

    id: str
    created: int
    model: str
    choices: tuple[StreamChoice, ...] = EMPTY_STREAM_CHOICES
    usage: Usage | None = None
    object: str = "chat.completion.chunk"
    system_fingerprint: str | None = None
    raw: Any = attrs.field(default=None, repr=False, eq=False, metadata=_HIDDEN)


# The stream parsers' hot path builds these three records for every chunk: built by
# position, through each slot's setter (the same records as the constructors build).
#: ``Delta(content=content)``, built faster (a stream parser's common case).
text_delta: Callable[[str | None], Delta] = positional_builder(Delta, ("content",))
#: ``StreamChoice(index, delta, finish_reason, logprobs)``, built faster.
stream_choice: Callable[[int, Delta, str | None, Any], StreamChoice] = positional_builder(
    StreamChoice)
#: ``StreamChunk(...)`` with every field given by position, built faster.
stream_chunk: Callable[..., StreamChunk] = positional_builder(StreamChunk)
