"""The records of a tool call the model asked for: :class:`ToolCall` and its
:class:`FunctionCall`, public as ``trillm.types``'s (and ``trillm``'s).

Imported with the first answer that holds a tool call (or on first access through
``trillm.types``): an answer without tool calls builds neither.  Pure (attrs only).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._records import Record, record

__all__ = ["FunctionCall", "ToolCall"]


@record
@attrs.frozen(repr=False)
class FunctionCall(Record):
    """The function a tool call invokes; ``arguments`` is a JSON string."""

    name: str
    arguments: str = ""


@record
@attrs.frozen(repr=False)
class ToolCall(Record):
    """One tool call the model asked for.

    ``extra_content`` is what a provider needs back with the call on the next turn
    (Gemini's ``{"google": {"thought_signature": ...}}``, as Google's OpenAI-compatible
    API spells it); keep the call as it came when you send it back.
    """

    id: str
    function: FunctionCall
    type: str = "function"
    extra_content: Mapping[str, Any] | None = None
