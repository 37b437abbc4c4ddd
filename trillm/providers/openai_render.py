"""OpenAI's wire format rendered from trillm's records: the inverse of the openai parse steps.

Pure functions (no I/O), reached through the provider object
(``PROVIDER.render_chat``, ...), for the test kit and anything else that must
answer as an OpenAI server does.  ``parse_chat(render_chat(r)) == r`` for every
answer the parser can give, and the events of ``render_chat_stream`` read by
the SSE decoder and :class:`~trillm.providers.openai.OpenAIStreamParser`
accumulate to the answer they were cut from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..types import EMPTY_STREAM_CHOICES, ModelResponse, StreamChunk
from .render import dumps, sse_event

if TYPE_CHECKING:
    from ..types import EmbeddingResponse, ImageResponse, ModelList, TranscriptionResponse

__all__ = [
    "render_chat",
    "render_chat_stream",
    "render_embedding",
    "render_error",
    "render_image",
    "render_models",
    "render_stream_error",
    "render_transcription",
]

#: The ``type`` (and ``code``) an OpenAI error body carries for a status.
_KINDS = {
    400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"), 409: ("invalid_request_error", None),
    422: ("invalid_request_error", None), 429: ("requests", "rate_limit_exceeded"),
}


def render_chat(response: ModelResponse) -> bytes:
    """A ``chat.completion`` body."""
    return dumps(response.to_dict())


def _chunk_dict(chunk: StreamChunk) -> dict[str, Any]:
    data = chunk.to_dict()
    if chunk.usage is not None and chunk.choices == EMPTY_STREAM_CHOICES:
        data["choices"] = []  # OpenAI's usage chunk has no choices
    return data


def render_chat_stream(chunks: Iterable[StreamChunk], *, end: bool = True) -> list[bytes]:
    """One ``data:`` event per chunk (a usage-only chunk with ``"choices": []``, as OpenAI
    sends it), then ``data: [DONE]`` unless *end* is false."""
    events = [sse_event(_chunk_dict(c)) for c in chunks]
    if end:
        events.append(b"data: [DONE]\n\n")
    return events


def render_embedding(response: EmbeddingResponse) -> bytes:
    """An ``/embeddings`` body (float vectors, indices as in *response*)."""
    data = response.to_dict()
    for item in data["data"]:
        item["embedding"] = list(item["embedding"])
    return dumps(data)


def render_image(response: ImageResponse) -> bytes:
    """An ``/images/generations`` body."""
    return dumps(response.to_dict())


def render_transcription(response: TranscriptionResponse, response_format: str = "json") -> bytes:
    """An ``/audio/transcriptions`` body: JSON, or the text alone for ``text``, ``srt``
    and ``vtt``."""
    if response_format in ("text", "srt", "vtt"):
        return response.text.encode()
    return dumps(response.to_dict())


def render_models(models: ModelList) -> bytes:
    """A ``GET /models`` body."""
    return dumps(models.to_dict())


def _error(status: int, message: str, kind: str | None, code: str | None) -> dict[str, Any]:
    default_kind, default_code = _KINDS.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind or default_kind, "param": None,
                      "code": code if code is not None else default_code}}


def render_error(status: int, message: str, *, kind: str | None = None,
                 code: str | None = None) -> bytes:
    """OpenAI's error body ``{"error": {"message", "type", "param", "code"}}`` for *status*
    (``type`` and ``code`` default to what OpenAI sends for it)."""
    return dumps(_error(status, message, kind, code))


def render_stream_error(status: int, message: str, *, kind: str | None = None,
                        code: str | None = None) -> bytes:
    """An error met in the middle of a stream: one ``data:`` event with the error body."""
    return sse_event(_error(status, message, kind, code))
