"""Values trillm returns and takes: frozen attrs records in the OpenAI chat shape.

Every response and chunk record supports attribute access (``r.choices[0].message.content``)
and read-only ``Mapping`` access over its public fields, where a field holding ``None``
counts as absent, as in the JSON the providers send::

    r["choices"][0]["message"]["content"]
    "choices" in chunk
    chunk["choices"][0].get("delta", {}).get("content", "")

``to_dict()`` gives plain JSON-able data (None fields omitted).  The provider's raw
JSON stays reachable as ``.raw``, and ``ModelResponse.headers`` holds the redacted
response headers; neither is part of the mapping view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

__all__ = [
    "ChatRequest",
    "EmbeddingRequest",
    "ImageRequest",
    "ModelsRequest",
    "SpeechRequest",
    "TranscriptionRequest",
    "Choice",
    "Delta",
    "FunctionCall",
    "FunctionDelta",
    "Message",
    "ModelResponse",
    "StreamChoice",
    "StreamChunk",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "Embedding",
    "EmbeddingResponse",
    "ImageObject",
    "ImageResponse",
    "TranscriptionResponse",
    "ModelInfo",
    "ModelList",
]

from ._records import HIDDEN as _HIDDEN
from ._records import Record as _Record
from ._records import Usage as Usage
from ._records import positional_builder as positional_builder
from ._records import record as _record
from ._records import record_repr

if TYPE_CHECKING:
    from ._beyond_chat import Embedding as Embedding
    from ._beyond_chat import EmbeddingRequest as EmbeddingRequest
    from ._beyond_chat import EmbeddingResponse as EmbeddingResponse
    from ._beyond_chat import ImageObject as ImageObject
    from ._beyond_chat import ImageRequest as ImageRequest
    from ._beyond_chat import ImageResponse as ImageResponse
    from ._beyond_chat import ModelInfo as ModelInfo
    from ._beyond_chat import ModelList as ModelList
    from ._beyond_chat import ModelsRequest as ModelsRequest
    from ._beyond_chat import SpeechRequest as SpeechRequest
    from ._beyond_chat import TranscriptionRequest as TranscriptionRequest
    from ._beyond_chat import TranscriptionResponse as TranscriptionResponse
    from ._stream_records import EMPTY_STREAM_CHOICES as EMPTY_STREAM_CHOICES
    from ._stream_records import Delta as Delta
    from ._stream_records import FunctionDelta as FunctionDelta
    from ._stream_records import StreamChoice as StreamChoice
    from ._stream_records import StreamChunk as StreamChunk
    from ._stream_records import ToolCallDelta as ToolCallDelta
    from ._stream_records import stream_choice as stream_choice
    from ._stream_records import stream_chunk as stream_chunk
    from ._stream_records import text_delta as text_delta
    from ._tool_records import FunctionCall as FunctionCall
    from ._tool_records import ToolCall as ToolCall

# The records of the other operations (embeddings, images, audio, model lists) live in
# `_beyond_chat` and are imported on first use: every attrs class costs a compile at
# import, and a chat call needs none of them.
_BEYOND_CHAT = frozenset({
    "Embedding", "EmbeddingRequest", "EmbeddingResponse", "ImageObject", "ImageRequest",
    "ImageResponse", "ModelInfo", "ModelList", "ModelsRequest", "SpeechRequest",
    "TranscriptionRequest", "TranscriptionResponse",
})


# The stream chunk records live in `_stream_records`, imported on a stream's first use
# (or on first access here): a plain call needs none of them.
_STREAM_RECORDS = frozenset({
    "Delta", "FunctionDelta", "StreamChoice", "StreamChunk", "ToolCallDelta",
    "EMPTY_STREAM_CHOICES", "stream_choice", "stream_chunk", "text_delta",
})


# The tool call records live in `_tool_records`, imported with the first tool call (or on
# first access here): an answer without tool calls needs neither.
_TOOL_RECORDS = frozenset({"FunctionCall", "ToolCall"})


def __getattr__(name: str) -> Any:
    if name in _TOOL_RECORDS:
        from . import _tool_records

        value = getattr(_tool_records, name)
    elif name in _STREAM_RECORDS:
        from . import _stream_records

        value = getattr(_stream_records, name)
    elif name in _BEYOND_CHAT:
        from . import _beyond_chat

        value = getattr(_beyond_chat, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _BEYOND_CHAT | _STREAM_RECORDS | _TOOL_RECORDS)


# ---------------------------------------------------------------- complete answers


@_record
@attrs.frozen(repr=False)
class Message(_Record):
    """A chat message from the model (``role`` is ``"assistant"``).

    ``parsed`` holds the answer validated against the call's ``response_format``: an
    instance of the model class given, or the decoded JSON for OpenAI's dict forms
    (None without one, for a refusal, or for a tool-call answer).  ``to_dict()``
    renders an instance with its ``model_dump(mode="json")``.
    """

    role: str = "assistant"
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    parsed: Any = attrs.field(default=None, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; ``parsed`` as its ``model_dump(mode="json")`` when it has one."""
        out = super().to_dict()
        dump = getattr(self.parsed, "model_dump", None)
        if callable(dump):
            out["parsed"] = dump(mode="json")
        return out


@_record
@attrs.frozen(repr=False)
class Choice(_Record):
    """One alternative answer (``n`` > 1 gives several)."""

    index: int
    message: Message
    finish_reason: str | None = None
    logprobs: Any = None


@_record
@attrs.frozen(repr=False)
class ModelResponse(_Record):
    """A chat completion in the OpenAI shape, whichever provider answered."""

    id: str
    created: int
    model: str
    choices: tuple[Choice, ...]
    usage: Usage | None = None
    object: str = "chat.completion"
    system_fingerprint: str | None = None
    #: What the answer cost at the Client's ``prices=`` (None without a price for the model).
    cost: float | None = attrs.field(default=None, kw_only=True)
    raw: Any = attrs.field(default=None, repr=False, eq=False, metadata=_HIDDEN)
    headers: Mapping[str, str] = attrs.field(
        factory=dict, repr=False, eq=False, metadata=_HIDDEN
    )


# ---------------------------------------------------------------- requests


@attrs.frozen(repr=False)
class ChatRequest:
    """A normalized chat request, before any provider translates it.

    ``provider`` and ``model`` are the two halves of ``"provider/model"``;
    ``params`` holds the OpenAI-named optional parameters the caller gave
    (``temperature``, ``max_tokens``, ``tools``, ...) with None values removed.
    """

    __repr__ = record_repr

    provider: str
    model: str
    messages: tuple[Mapping[str, Any], ...]
    stream: bool = False
    params: Mapping[str, Any] = attrs.field(factory=dict)
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)
    #: Drop parameters the provider cannot take instead of refusing them (LiteLLM's flag).
    drop_params: bool = False
