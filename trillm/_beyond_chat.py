"""The records of the operations beyond chat: embeddings, images, audio, model lists.

Public as :mod:`trillm.types`'s (``trillm.types.EmbeddingResponse``), which imports
this module on first use, to keep ``import trillm`` cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._records import HIDDEN as _HIDDEN
from ._records import Record as _Record
from ._records import Usage, record_repr
from ._records import record as _record

__all__ = [
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "ImageObject",
    "ImageRequest",
    "ImageResponse",
    "ModelInfo",
    "ModelList",
    "ModelsRequest",
    "SpeechRequest",
    "TranscriptionRequest",
    "TranscriptionResponse",
]


# ---------------------------------------------------------------- embeddings


@_record
@attrs.frozen(repr=False)
class Embedding(_Record):
    """One input's vector; ``index`` is the input's position."""

    index: int
    embedding: tuple[float, ...]
    object: str = "embedding"


@_record
@attrs.frozen(repr=False)
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
@attrs.frozen(repr=False)
class ImageObject(_Record):
    """One generated image: a ``url`` or base64 data (``b64_json``), per ``response_format``."""

    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


@_record
@attrs.frozen(repr=False)
class ImageResponse(_Record):
    """Generated images (``data[i].url`` or ``data[i].b64_json``)."""

    created: int
    data: tuple[ImageObject, ...]
    usage: Any = None
    raw: Any = attrs.field(default=None, repr=False, eq=False, metadata=_HIDDEN)


# ---------------------------------------------------------------- audio


@_record
@attrs.frozen(repr=False)
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
@attrs.frozen(repr=False)
class ModelInfo(_Record):
    """One model a server offers (``id``; ``created`` and ``owned_by`` when it says)."""

    id: str
    created: int = 0
    owned_by: str = ""
    object: str = "model"


@_record
@attrs.frozen(repr=False)
class ModelList(_Record):
    """The models a server offers, as ``GET /models`` lists them (``data[i].id``)."""

    data: tuple[ModelInfo, ...]
    object: str = "list"
    raw: Any = attrs.field(default=None, repr=False, eq=False, metadata=_HIDDEN)


# ---------------------------------------------------------------- requests


@attrs.frozen(repr=False)
class EmbeddingRequest:
    """One embeddings request: *inputs* (one provider-sized batch), the first at *offset*."""

    __repr__ = record_repr

    provider: str
    model: str
    inputs: tuple[str, ...]
    params: Mapping[str, Any] = attrs.field(factory=dict)
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)
    offset: int = 0


@attrs.frozen(repr=False)
class ImageRequest:
    """One image-generation request for *prompt* (``n``, ``size``, ... in *params*)."""

    __repr__ = record_repr

    provider: str
    model: str
    prompt: str
    params: Mapping[str, Any] = attrs.field(factory=dict)
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)


@attrs.frozen(repr=False)
class TranscriptionRequest:
    """One transcription request: *file* is ``(filename, bytes, content type)``, read whole."""

    __repr__ = record_repr

    provider: str
    model: str
    file: tuple[str, bytes, str] = attrs.field(repr=False)
    params: Mapping[str, Any] = attrs.field(factory=dict)
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)


@attrs.frozen(repr=False)
class SpeechRequest:
    """One text-to-speech request for *input* (``voice``, ``response_format``, ... in *params*)."""

    __repr__ = record_repr

    provider: str
    model: str
    input: str
    params: Mapping[str, Any] = attrs.field(factory=dict)
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)


@attrs.frozen(repr=False)
class ModelsRequest:
    """A request for the list of models a server offers; *model* is only what routed it."""

    __repr__ = record_repr

    provider: str
    model: str
    params: Mapping[str, Any] = attrs.field(factory=dict)
    extra_body: Mapping[str, Any] | None = None
    extra_headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)
