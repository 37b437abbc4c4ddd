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

from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar, cast

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

_R = TypeVar("_R", bound="_Record")
_HIDDEN = {"hidden": True}


def _plain(value: Any) -> Any:
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Record(Mapping[str, Any]):
    """Read-only mapping view over the public, non-None fields of an attrs record."""

    __slots__ = ()
    _keys: ClassVar[tuple[str, ...]] = ()
    _keyset: ClassVar[frozenset[str]] = frozenset()

    def __getitem__(self, key: str) -> Any:
        if key in self._keyset:
            value = getattr(self, key)
            if value is not None:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._keys if getattr(self, k) is not None)

    def __len__(self) -> int:
        return sum(1 for k in self._keys if getattr(self, k) is not None)

    def __contains__(self, key: object) -> bool:
        return key in self._keyset and getattr(self, key) is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: nested records become dicts, tuples lists; None omitted."""
        out: dict[str, Any] = {}
        for k in self._keys:
            v = getattr(self, k)
            if v is not None:
                out[k] = _plain(v)
        return out


def _record(cls: type[_R]) -> type[_R]:
    """Index the public fields of *cls*, a frozen attrs class.

    Used as ``@_record`` above ``@attrs.frozen`` (not calling ``attrs.frozen``
    itself), so that mypy's attrs plugin sees every record's fields.
    """
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(cast(Any, cls))
    keys = tuple(f.name for f in fields if not f.metadata.get("hidden"))
    cls._keys = keys
    cls._keyset = frozenset(keys)
    return cls


#: The record base, its field indexer and the metadata of a field kept out of the Mapping
#: view, for the records of other modules (``response_types``).
Record = _Record
record = _record
HIDDEN = _HIDDEN


_T = TypeVar("_T")


def positional_builder(cls: type[_T]) -> Callable[..., _T]:
    """A constructor for the frozen, slotted attrs class *cls* that takes every field by
    position and does what its ``__init__`` does (for a class with no converters and no
    validators), with each slot's setter bound once instead of ``object.__setattr__``
    looked up for every field: about 40 % faster, for the records built on every
    observed call (the hooks' records, token counts)."""
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(cast(Any, cls))
    if any(f.converter is not None or f.validator is not None for f in fields) or any(
            getattr(cls, hook, None) is not None
            for hook in ("__attrs_pre_init__", "__attrs_post_init__")):
        raise TypeError(f"{cls.__name__} checks or converts its fields: use its __init__")
    if "__slots__" not in vars(cls):
        raise TypeError(f"{cls.__name__} is not a slotted attrs class")
    names = [f.name for f in fields]
    lines = [f"def build({', '.join(names)}):", "    self = _new(_cls)"]
    lines += [f"    _set_{n}(self, {n})" for n in names]
    lines.append("    return self")
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    for n in names:  # the slot's descriptor, in the class that declares it
        scope[f"_set_{n}"] = next(vars(k)[n] for k in cls.__mro__ if n in vars(k)).__set__
    exec("\n".join(lines), scope)  # built from the class's own field names only
    build: Callable[..., _T] = scope["build"]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    return build


# ---------------------------------------------------------------- complete answers


@_record
@attrs.frozen
class FunctionCall(_Record):
    """The function a tool call invokes; ``arguments`` is a JSON string."""

    name: str
    arguments: str = ""


@_record
@attrs.frozen
class ToolCall(_Record):
    """One tool call the model asked for.

    ``extra_content`` is what a provider needs back with the call on the next turn
    (Gemini's ``{"google": {"thought_signature": ...}}``, as Google's OpenAI-compatible
    API spells it); keep the call as it came when you send it back.
    """

    id: str
    function: FunctionCall
    type: str = "function"
    extra_content: Mapping[str, Any] | None = None


@_record
@attrs.frozen
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
@attrs.frozen
class Choice(_Record):
    """One alternative answer (``n`` > 1 gives several)."""

    index: int
    message: Message
    finish_reason: str | None = None
    logprobs: Any = None


@_record
@attrs.frozen
class Usage(_Record):
    """Token counts; the ``*_details`` hold provider breakdowns (cache, reasoning)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: Mapping[str, Any] | None = None
    completion_tokens_details: Mapping[str, Any] | None = None


@_record
@attrs.frozen
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


# ---------------------------------------------------------------- stream chunks


@_record
@attrs.frozen
class FunctionDelta(_Record):
    """A piece of a streamed function call: the name once, then argument fragments."""

    name: str | None = None
    arguments: str | None = None


@_record
@attrs.frozen
class ToolCallDelta(_Record):
    """A piece of a streamed tool call; ``index`` says which call it extends."""

    index: int
    id: str | None = None
    type: str | None = None
    function: FunctionDelta | None = None
    extra_content: Mapping[str, Any] | None = None  # as on ToolCall; in one delta, whole


@_record
@attrs.frozen
class Delta(_Record):
    """What one stream chunk adds to a choice's message."""

    role: str | None = None
    content: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] | None = None
    reasoning_content: str | None = None
    refusal: str | None = None


_EMPTY_DELTA = Delta()


@_record
@attrs.frozen
class StreamChoice(_Record):
    """One choice's part of a stream chunk."""

    index: int = 0
    delta: Delta = _EMPTY_DELTA
    finish_reason: str | None = None
    logprobs: Any = None


EMPTY_STREAM_CHOICES = (StreamChoice(),)


@_record
@attrs.frozen
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


# ---------------------------------------------------------------- embeddings


@_record
@attrs.frozen
class Embedding(_Record):
    """One input's vector; ``index`` is the input's position."""

    index: int
    embedding: tuple[float, ...]
    object: str = "embedding"


@_record
@attrs.frozen
class EmbeddingResponse(_Record):
    """Vectors for every input, in input order (``data[i].embedding``)."""

    data: tuple[Embedding, ...]
    model: str
    usage: Usage | None = None
    object: str = "list"
    #: What the answer cost at the Client's ``prices=`` (as on ModelResponse).
    cost: float | None = attrs.field(default=None, kw_only=True)
    raw: Any = attrs.field(default=None, repr=False, eq=False, metadata=_HIDDEN)


# ---------------------------------------------------------------- images


@_record
@attrs.frozen
class ImageObject(_Record):
    """One generated image: a ``url`` or base64 data (``b64_json``), per ``response_format``."""

    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


@_record
@attrs.frozen
class ImageResponse(_Record):
    """Generated images (``data[i].url`` or ``data[i].b64_json``)."""

    created: int
    data: tuple[ImageObject, ...]
    usage: Any = None
    raw: Any = attrs.field(default=None, repr=False, eq=False, metadata=_HIDDEN)


# ---------------------------------------------------------------- audio


@_record
@attrs.frozen
class TranscriptionResponse(_Record):
    """A transcription: ``text``, plus ``language``, ``duration`` and ``segments`` when asked
    (``response_format="verbose_json"``)."""

    text: str
    language: str | None = None
    duration: float | None = None
    segments: Any = None
    words: Any = None
    raw: Any = attrs.field(default=None, repr=False, eq=False, metadata=_HIDDEN)


# ---------------------------------------------------------------- models


@_record
@attrs.frozen
class ModelInfo(_Record):
    """One model a server offers (``id``; ``created`` and ``owned_by`` when it says)."""

    id: str
    created: int = 0
    owned_by: str = ""
    object: str = "model"


@_record
@attrs.frozen
class ModelList(_Record):
    """The models a server offers, as ``GET /models`` lists them (``data[i].id``)."""

    data: tuple[ModelInfo, ...]
    object: str = "list"
    raw: Any = attrs.field(default=None, repr=False, eq=False, metadata=_HIDDEN)


# ---------------------------------------------------------------- requests


@attrs.frozen
class ChatRequest:
    """A normalized chat request, before any provider translates it.

    ``provider`` and ``model`` are the two halves of ``"provider/model"``;
    ``params`` holds the OpenAI-named optional parameters the caller gave
    (``temperature``, ``max_tokens``, ``tools``, ...) with None values removed.
    """

    provider: str
    model: str
    messages: tuple[Mapping[str, Any], ...]
    stream: bool = False
    params: Mapping[str, Any] = attrs.field(factory=dict)
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)
    #: Drop parameters the provider cannot take instead of refusing them (LiteLLM's flag).
    drop_params: bool = False


@attrs.frozen
class EmbeddingRequest:
    """One embeddings request: *inputs* (one provider-sized batch), the first at *offset*."""

    provider: str
    model: str
    inputs: tuple[str, ...]
    params: Mapping[str, Any] = attrs.field(factory=dict)
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)
    offset: int = 0


@attrs.frozen
class ImageRequest:
    """One image-generation request for *prompt* (``n``, ``size``, ... in *params*)."""

    provider: str
    model: str
    prompt: str
    params: Mapping[str, Any] = attrs.field(factory=dict)
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)


@attrs.frozen
class TranscriptionRequest:
    """One transcription request: *file* is ``(filename, bytes, content type)``, read whole."""

    provider: str
    model: str
    file: tuple[str, bytes, str] = attrs.field(repr=False)
    params: Mapping[str, Any] = attrs.field(factory=dict)
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)


@attrs.frozen
class SpeechRequest:
    """One text-to-speech request for *input* (``voice``, ``response_format``, ... in *params*)."""

    provider: str
    model: str
    input: str
    params: Mapping[str, Any] = attrs.field(factory=dict)
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)


@attrs.frozen
class ModelsRequest:
    """A request for the list of models a server offers; *model* is only what routed it."""

    provider: str
    model: str
    params: Mapping[str, Any] = attrs.field(factory=dict)
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)
