"""What every provider module offers the Client, and the values passed between them.

A provider is a sans-I/O translator (in the style of h11): it turns a
:class:`~trillm.types.ChatRequest` into an :class:`HTTPRequestSpec`, and
response bytes, SSE events and error bodies back into :mod:`trillm.types`
records and :mod:`trillm.errors` exceptions.  It never opens a socket, sleeps
or imports trio; the Client does the I/O once for all of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from .. import errors
from .._wire import HTTPRequestSpec, ProviderConfig, StreamParser
from ..retry import parse_retry_after

if TYPE_CHECKING:
    from ..response_types import ResponsesRequest
    from ..types import (
        ChatRequest,
        EmbeddingRequest,
        ImageRequest,
        ModelResponse,
        ModelsRequest,
        SpeechRequest,
        TranscriptionRequest,
    )

#: The request record of any operation (each has provider, model, params, extra_*); for
#: annotations only (a string, so that the records beyond chat stay unimported).
AnyRequest: TypeAlias = (
    "ChatRequest | EmbeddingRequest | ImageRequest | TranscriptionRequest | SpeechRequest"
    " | ModelsRequest | ResponsesRequest")

__all__ = [
    "AnyRequest",
    "HTTPRequestSpec",
    "Provider",
    "ProviderConfig",
    "StreamParser",
    "batch_step_answer",
    "body_excerpt",
    "check_embedding_count",
    "json_or_none",
    "unexpected_answer",
    "with_extra_headers",
    "error_from_response",
    "loads_json",
    "multipart_body",
]


class Provider(Protocol):
    """The sans-I/O interface every provider module implements.

    ``operations`` is the table of what it offers: ``"chat"`` (``build_chat``,
    ``parse_chat``, ``stream_parser``) always, and any of ``"embeddings"``
    (``build_embedding``, ``parse_embedding``, ``embedding_batch_size``),
    ``"images"`` (``build_image``, ``parse_image``), ``"transcription"``
    (``build_transcription``, ``parse_transcription``), ``"speech"``
    (``build_speech``; the answer is the audio itself) and ``"models"``
    (``build_models``, ``parse_models``: ``GET /models``).  The Client asks for
    nothing a provider does not list, and refuses the call before any traffic.
    The render steps (``render_chat``, ``render_chat_stream``, ``render_error``,
    ...: the inverse of the parse steps, for the test kit) live in each
    provider's ``*_render`` module and are attached to its provider object.
    """

    name: str
    operations: frozenset[str]

    def build_chat(self, req: ChatRequest, cfg: ProviderConfig) -> HTTPRequestSpec:
        """The HTTP request for a chat completion (streaming when ``req.stream``)."""
        ...

    def parse_chat(
        self, body: bytes, req: ChatRequest, cfg: ProviderConfig | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ModelResponse:
        """A 2xx response body as a :class:`ModelResponse` (*cfg* to scrub its key from errors;
        *headers*, redacted, kept as ``ModelResponse.headers``)."""
        ...

    def stream_parser(self, req: ChatRequest, cfg: ProviderConfig | None = None) -> StreamParser:
        """A fresh parser for one streamed answer."""
        ...

    def parse_error(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        req: ChatRequest,
        cfg: ProviderConfig,
    ) -> errors.APIError:
        """A non-2xx response as the most specific :mod:`trillm.errors` class."""
        ...


def with_extra_headers(
    headers: tuple[tuple[str, str], ...], req: AnyRequest
) -> tuple[tuple[str, str], ...]:
    """*headers* with the call's ``extra_headers`` added; one of the same name replaces ours."""
    extra = req.extra_headers
    if not extra:
        return headers
    names = {k.lower() for k in extra}
    return tuple(h for h in headers if h[0] not in names) + tuple(extra.items())


def json_or_none(body: bytes) -> Any:
    """An error body parsed as JSON, or None when it is empty, not JSON or nested too deeply."""
    try:
        return json.loads(body) if body else None
    except (ValueError, RecursionError):  # `[` x 100,000 exhausts the decoder's recursion
        return None


def unexpected_answer(
    req: AnyRequest, body: bytes, secrets: tuple[str, ...], why: str
) -> errors.APIError:
    """The error for a 2xx body that is not the shape the provider documents."""
    return errors.APIError(
        f"unexpected answer from {req.provider}: {why}", provider=req.provider,
        model=req.model, body=body_excerpt(body, secrets), secrets=secrets,
    )


def check_embedding_count(
    got: int, count: int | None, req: AnyRequest, body: bytes, secrets: tuple[str, ...]
) -> None:
    """Raise the unexpected-answer error when *got* vectors came back for *count* inputs.

    *count* None (the caller did not say how many inputs it sent) checks nothing.
    """
    if count is not None and got != count:
        vectors = f"{got} embedding{'' if got == 1 else 's'}"
        inputs = f"{count} input{'' if count == 1 else 's'}"
        raise unexpected_answer(req, body, secrets, f"the server sent {vectors} for {inputs}")


def multipart_body(
    fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes, str]]
) -> tuple[str, bytes]:
    """``(content type, body)`` of a multipart/form-data upload, encoded once, as bytes.

    Bytes rather than a streaming body, so a cancelled upload leaves no half-read
    generator behind and every retry sends the same body.
    """
    boundary = os.urandom(16).hex()  # what secrets.token_hex(16) gives, without its import
    parts: list[bytes] = []

    def quoted(text: str) -> str:
        return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")

    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{quoted(name)}"\r\n\r\n'
            .encode() + value.encode() + b"\r\n"
        )
    for name, (filename, data, ctype) in files.items():
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{quoted(name)}"; '
                f'filename="{quoted(filename)}"\r\nContent-Type: {ctype}\r\n\r\n')
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def loads_json(
    body: bytes | str, *, provider: str, model: str | None, secrets: tuple[str, ...] = ()
) -> Any:
    """``json.loads`` that raises :class:`~trillm.errors.APIError` on a body it cannot decode.

    That includes a body nested too deeply for the decoder (its ``RecursionError``).
    """
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        why = "nested too deeply to decode" if isinstance(exc, RecursionError) else str(exc)
        text = body_excerpt(body, secrets, 200)
        raise errors.APIError(
            f"the server's answer is not valid JSON ({why}); it began: {text!r}",
            provider=provider, model=model, body=text, secrets=secrets,
        ) from exc


def batch_step_answer(body: bytes, step: Any, cfg: ProviderConfig) -> dict[str, Any]:
    """A batch step's 2xx answer: a JSON object with a string ``id`` (an
    :class:`~trillm.errors.APIError` naming the step otherwise)."""
    data = loads_json(body, provider=step.provider, model=step.model, secrets=cfg.secrets)
    if type(data) is not dict or not isinstance(data.get("id"), str):
        raise errors.APIError(
            f"unexpected answer from {step.provider} to the batch step {step.step!r}: no id",
            provider=step.provider, model=step.model, secrets=cfg.secrets)
    return data


def body_excerpt(body: bytes | str, secrets: tuple[str, ...], limit: int = 2000) -> str:
    """The start of a body as text, secrets scrubbed *before* it is cut (a cut key won't match)."""
    text = body[:65536].decode("utf-8", "replace") if isinstance(body, bytes) else body[:65536]
    return errors.redact(text, secrets)[:limit]


_CONTEXT_CODES = frozenset(
    {"context_length_exceeded", "string_above_max_length", "context_window_exceeded"}
)
_CONTEXT_PHRASES = (
    "context length", "context_length", "maximum context", "context window",
    "too many tokens", "prompt is too long", "input is too long", "exceeds the maximum",
    "reduce the length",
)
_POLICY_CODES = frozenset({"content_policy_violation", "content_filter", "safety"})
_POLICY_PHRASES = ("content policy", "content management policy", "safety system", "flagged")


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    provider: str,
    model: str | None,
    cfg: ProviderConfig,
    message: str | None = None,
    code: str | None = None,
    err_type: str | None = None,
    now: float | None = None,
) -> errors.APIError:
    """Build the most specific error for a non-2xx answer.

    *code* and *err_type* are the provider's structured fields (checked first);
    the message text is the last resort for spotting context-window and
    content-policy errors.  ``retry_after`` is parsed from the headers.
    """
    cls = errors.class_for_status(status)
    # Scrub secrets before cutting anything short: a cut key would no longer match.
    text = message or body_excerpt(body, cfg.secrets, 500)
    text = text or f"HTTP {status}"
    if cls is errors.BadRequestError or status in (400, 413, 422):
        structured = {c.lower() for c in (code, err_type) if c}
        lowered = text.lower()
        if structured & _CONTEXT_CODES:
            cls = errors.ContextWindowExceededError
        elif structured & _POLICY_CODES:
            cls = errors.ContentPolicyViolationError
        elif any(p in lowered for p in _CONTEXT_PHRASES):
            cls = errors.ContextWindowExceededError
        elif any(p in lowered for p in _POLICY_PHRASES):
            cls = errors.ContentPolicyViolationError
    hint = _HINTS.get(cls)
    if cls is errors.AuthenticationError and cfg.custom_base:
        # A proxy, a local or another server: it, not the provider, wants a key.
        hint = "this server wants a key: pass api_key=" + (
            f" (or set {cfg.key_var})" if cfg.key_var else ""
        )
    elif hint is not None:
        hint = hint.format(var=cfg.key_var or "the provider's API key variable")
    if hint is not None:
        text = f"{text} ({hint})"
    try:
        parsed_body: Any = json.loads(body) if body else None
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to decode
        parsed_body = body_excerpt(body, cfg.secrets)
    else:
        if _nested_deeper_than(parsed_body, _MAX_BODY_DEPTH):  # too deep to redact safely
            parsed_body = body_excerpt(body, cfg.secrets)
    return cls(
        text,
        status_code=status,
        provider=provider,
        model=model,
        request_id=(headers.get("x-request-id") or headers.get("request-id")
                    or headers.get("x-litellm-call-id")),
        body=parsed_body,
        headers=headers,
        retry_after=parse_retry_after(headers, now=now),
        secrets=cfg.secrets,
    )


#: Error bodies nested deeper than this are kept as text: redacting them recurses.
_MAX_BODY_DEPTH = 100


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether parsed JSON *value* nests lists and objects more than *limit* levels deep."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth == limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


_HINTS: dict[type[errors.APIError], str] = {
    errors.AuthenticationError: "check the API key: set {var} or pass api_key=",
    errors.NotFoundError: "check the model name and api_base",
    errors.ContextWindowExceededError: "shorten the messages or lower max_tokens",
}
