"""trillm's exceptions, and the scrubbing of secrets out of what they carry.

The hierarchy::

    TrillmError
    └── APIError(message, *, status_code, provider, model, request_id, body, headers, retry_after)
        ├── APIStatusError               an HTTP status (4xx, 5xx), or refused before sending
        │   ├── BadRequestError          400, any other 4xx, bad arguments, unknown provider
        │   │   ├── ContextWindowExceededError
        │   │   └── ContentPolicyViolationError
        │   ├── AuthenticationError      401
        │   ├── PermissionDeniedError    403
        │   ├── NotFoundError            404
        │   ├── RequestTimeoutError      408
        │   ├── ConflictError            409
        │   ├── UnprocessableEntityError 422
        │   ├── RateLimitError           429
        │   └── InternalServerError      >= 500
        │       └── ServiceUnavailableError  503, 529 (overloaded)
        ├── APIConnectionError           no HTTP answer (connect, read, protocol)
        │   └── Timeout                  trillm's own timeouts; also a builtin TimeoutError
        ├── StreamError                  malformed or truncated stream
        ├── RateStoreError               the shared rate-limit store failed; nothing sent
        └── StructuredOutputError        the answer does not fit the response_format (never retried)
            ├── LengthFinishReasonError         cut off by the length limit
            └── ContentFilterFinishReasonError  stopped by the content filter

``APIStatusError`` and ``APITimeoutError`` (another name of ``Timeout``) are the
OpenAI SDK's names, so code written against it catches the same errors here; so are
``LengthFinishReasonError`` and ``ContentFilterFinishReasonError``.

Every class can be built from a message alone (``RateLimitError("slow down")``);
the keywords default to the class's own status and ``None``.  ``headers`` and
``body`` are always stored redacted, and no API key ever appears in a message, a
repr or ``str()`` of an error: :func:`redact` scrubs known secret header names,
``key=`` query values and the values of the keys the Client was configured with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "ContentFilterFinishReasonError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "InternalServerError",
    "LengthFinishReasonError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateStoreError",
    "RequestTimeoutError",
    "ServiceUnavailableError",
    "StreamError",
    "StructuredOutputError",
    "Timeout",
    "TrillmError",
    "UnprocessableEntityError",
    "class_for_status",
    "public_headers",
    "redact",
    "redact_headers",
]

REDACTED = "[REDACTED]"

#: Header names whose values are secrets, whatever the provider.
SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie",
     "set-cookie"}
)

# `key=...` in URLs and messages (Gemini), bearer tokens, and the usual key shapes
# (sk-..., sk-ant-..., AIza...) even when we were not told the key.  Compiled on first use
# (about 5% of `import trillm`'s own time otherwise), then kept.
_SECRET_SOURCE = (
    r"(?i)(?<=[?&]key=)[^&\s'\"]+"
    r"|(?i:(?<=bearer )[A-Za-z0-9._~+/=-]{8,})"
    r"|\bsk-[A-Za-z0-9_-]{8,}"
    r"|\bAIza[A-Za-z0-9_-]{20,}"
)
_secret_patterns: list[re.Pattern[str]] = []


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return *text* with every secret in it replaced by ``[REDACTED]``.

    *secrets* are literal values (the API keys in use); known key shapes,
    bearer tokens and ``key=`` query values are scrubbed as well.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            for form in _written_forms(secret):
                if form in text:
                    text = text.replace(form, REDACTED)
    if not _secret_patterns:
        _secret_patterns.append(re.compile(_SECRET_SOURCE))
    return _secret_patterns[0].sub(REDACTED, text)


# Characters that one of the escaped forms below writes differently.
_ESCAPED_CHARS = frozenset('"\\/&<>')


def _written_forms(secret: str) -> tuple[str, ...]:
    """*secret* as it is, and as a server may echo it inside a JSON string (escaped)."""
    if secret.isascii() and secret.isprintable() and _ESCAPED_CHARS.isdisjoint(secret):
        return (secret,)  # every escaped form is the secret itself
    escaped = json.dumps(secret)[1:-1]  # \" \\ and \uXXXX for non-ASCII
    forms = {
        secret,
        escaped,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        escaped.replace("/", "\\/"),
        escaped.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"),
    }
    return tuple(sorted(forms, key=len, reverse=True))  # the longest first


def redact_headers(
    headers: Iterable[tuple[str, str]] | Mapping[str, str], secrets: Iterable[str] = ()
) -> dict[str, str]:
    """A plain dict of lower-cased headers with secret values replaced."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    secrets = tuple(secrets)
    out: dict[str, str] = {}
    for name, value in items:
        lname = name.lower()
        out[lname] = REDACTED if lname in SECRET_HEADERS else redact(value, secrets)
    return out


def public_headers(headers: Mapping[str, str], secrets: Iterable[str] = ()) -> dict[str, str]:
    """Response headers (httpx gives lower-case names) with secret-bearing ones hidden.

    Headers named in :data:`SECRET_HEADERS` are replaced; any other value holding
    one of *secrets* (the keys in use: a server may echo one back) is scrubbed
    with :func:`redact`.  Cheap on the hot path: without secrets nothing more is
    done, and a value is scrubbed only when a plain substring test finds one.
    """
    out = dict(headers.items())
    for name in SECRET_HEADERS.intersection(out):
        out[name] = REDACTED
    secrets = tuple(secrets)
    if secrets:
        needles = [f for s in secrets if s and len(s) >= 4 for f in _written_forms(s)]
        if needles:
            for name, value in out.items():
                if any(n in value for n in needles):
                    out[name] = redact(value, secrets)
    return out


def redact_body(body: Any, secrets: Iterable[str] = ()) -> Any:
    """Redact every string inside a JSON-like body (dicts, lists, strings)."""
    secrets = tuple(secrets)
    if isinstance(body, str):
        return redact(body, secrets)
    if isinstance(body, bytes):
        return redact(body.decode("utf-8", "replace"), secrets)
    if isinstance(body, Mapping):
        return {
            str(k): (REDACTED if str(k).lower() in SECRET_HEADERS else redact_body(v, secrets))
            for k, v in body.items()
        }
    if isinstance(body, list | tuple):
        return [redact_body(v, secrets) for v in body]
    return body


class TrillmError(Exception):
    """Base class of every exception trillm raises on purpose."""


class APIError(TrillmError):
    """An error talking to a model provider (or refusing to before talking).

    Attributes: ``status_code`` (int or None), ``provider``, ``model``,
    ``request_id``, ``body`` (redacted JSON or text), ``headers`` (redacted,
    lower-cased), ``retry_after`` (seconds the server asked us to wait, or None).
    """

    default_status: ClassVar[int | None] = None

    message: str
    status_code: int | None
    provider: str | None
    model: str | None
    request_id: str | None
    body: Any
    headers: dict[str, str]
    retry_after: float | None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        provider: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        body: Any = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        retry_after: float | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        secrets = tuple(secrets)
        self.message = redact(str(message), secrets)
        self.status_code = self.default_status if status_code is None else status_code
        self.provider = provider
        self.model = model
        self.request_id = request_id
        self.body = None if body is None else redact_body(body, secrets)
        self.headers = {} if headers is None else redact_headers(headers, secrets)
        self.retry_after = retry_after
        super().__init__(self.message)

    def __str__(self) -> str:
        where = "/".join(p for p in (self.provider, self.model) if p)
        parts = [self.message]
        extra = []
        if self.status_code is not None:
            extra.append(f"status {self.status_code}")
        if where:
            extra.append(where)
        if self.request_id:
            extra.append(f"request id {self.request_id}")
        if extra:
            parts.append(f"({', '.join(extra)})")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r}, "
            f"provider={self.provider!r}, model={self.model!r}, request_id={self.request_id!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {
            "status_code": self.status_code, "provider": self.provider, "model": self.model,
            "request_id": self.request_id, "body": self.body, "headers": self.headers,
            "retry_after": self.retry_after,
        }
        return (_rebuild, (type(self), self.message, kwargs))


def _rebuild(cls: type[APIError], message: str, kwargs: dict[str, Any]) -> APIError:
    return cls(message, **kwargs)


class APIStatusError(APIError):
    """The parent of the errors that carry an HTTP status (4xx and 5xx), as in the OpenAI SDK.

    Arguments trillm refuses before sending are a :class:`BadRequestError` too.
    """


class BadRequestError(APIStatusError):
    """The request was refused as invalid (400, any other 4xx, or bad arguments)."""

    default_status = 400


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus max tokens) does not fit the model's context window."""


class ContentPolicyViolationError(BadRequestError):
    """The provider's safety system blocked the prompt or the answer."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""

    default_status = 401


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but may not use this model or endpoint."""

    default_status = 403


class NotFoundError(APIStatusError):
    """404: unknown model, deployment or endpoint."""

    default_status = 404


class RequestTimeoutError(APIStatusError):
    """408: the server timed the request out (retried)."""

    default_status = 408


class ConflictError(APIStatusError):
    """409: a conflicting request (retried)."""

    default_status = 409


class UnprocessableEntityError(APIStatusError):
    """422: the body was well-formed but not acceptable."""

    default_status = 422


class RateLimitError(APIStatusError):
    """429: too many requests or tokens; ``retry_after`` says how long to wait."""

    default_status = 429


class InternalServerError(APIStatusError):
    """5xx: the provider failed (retried)."""

    default_status = 500


class ServiceUnavailableError(InternalServerError):
    """503 or 529: the provider is overloaded (retried)."""

    default_status = 503


class APIConnectionError(APIError):
    """No HTTP answer: the connection could not be made or broke (retried)."""


class Timeout(APIConnectionError, TimeoutError):
    """One of trillm's own time limits (``timeout``, ``deadline``, ``idle_timeout``) expired."""


class StreamError(APIError):
    """A stream was malformed or ended before the provider's end marker."""


class RateStoreError(APIError):
    """The shared rate-limit store (Redis, Valkey) failed: unreachable, too slow or in error.

    Raised instead of sending, with the store named in the message (its address,
    never a password), when the store was built with ``on_store_error="fail"``
    (the default); the cause is the store's own error.  Never retried: nothing
    was sent, and the store's state is unknown.
    """


class StructuredOutputError(APIError):
    """The answer does not fit the call's ``response_format``; never retried.

    ``text`` is the raw answer text, ``validation_error`` what ``model_validate_json``
    (or ``json.loads``) raised (also the ``__cause__``), and ``completion`` the whole
    :class:`~trillm.types.ModelResponse`, so nothing the model said is lost.
    """

    text: str | None
    validation_error: BaseException | None
    completion: Any

    def __init__(
        self,
        message: str,
        *,
        text: str | None = None,
        validation_error: BaseException | None = None,
        completion: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.text = text
        self.validation_error = validation_error
        self.completion = completion
        if validation_error is not None:
            self.__cause__ = validation_error

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild, (cls, message, kwargs) = super().__reduce__()
        kwargs = {**kwargs, "text": self.text, "validation_error": self.validation_error,
                  "completion": self.completion}
        return (rebuild, (cls, message, kwargs))


class LengthFinishReasonError(StructuredOutputError):
    """The answer was cut off by the length limit (``finish_reason`` ``"length"``) before
    it was whole: raise ``max_tokens`` or ask for less.  The OpenAI SDK's name."""


class ContentFilterFinishReasonError(StructuredOutputError):
    """The provider's content filter stopped the answer (``finish_reason``
    ``"content_filter"``), so there is nothing to parse.  The OpenAI SDK's name."""


#: The OpenAI SDK's name for :class:`Timeout` (the same class).
APITimeoutError = Timeout


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
    529: ServiceUnavailableError,
}


def class_for_status(status: int) -> type[APIError]:
    """The error class for an HTTP status (the structured body may refine it later)."""
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return InternalServerError
    if 400 <= status < 500:
        return BadRequestError
    return APIError
