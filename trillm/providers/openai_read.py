"""Reading OpenAI-style answers: errors inside a 200 body or a stream, and ``usage``.

Sans-I/O, like every provider module; :mod:`trillm.providers.openai` builds on it and
re-exports its public names.  The stream parser is :mod:`trillm.providers.openai_stream`,
imported when a stream is opened: a plain call needs neither it nor the stream records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .. import errors
from .._records import Usage
from .base import ProviderConfig, error_from_response

__all__ = ["error_fields", "error_from_body", "parse_usage", "reasoning_text"]


# Status for an error met inside a 200 body or a stream, by its `type` or `code`.
_STATUS_BY_KIND = {
    "invalid_request_error": 400, "invalid_request": 400, "bad_request": 400,
    "context_length_exceeded": 400, "content_filter": 400, "content_policy_violation": 400,
    "authentication_error": 401, "invalid_api_key": 401, "permission_error": 403,
    "permission_denied": 403, "not_found_error": 404, "model_not_found": 404,
    "rate_limit_error": 429, "rate_limit_exceeded": 429, "insufficient_quota": 429,
    "tokens": 429, "requests": 429, "overloaded_error": 529, "service_unavailable": 503,
}


def error_fields(data: Any) -> tuple[str | None, str | None, str | None]:
    """``(message, code, type)`` from any of the error shapes compatible servers send."""
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return None, None, None
    err = data.get("error", data)
    message = code = kind = None
    if isinstance(err, dict):
        message, code, kind = err.get("message"), err.get("code"), err.get("type")
    elif isinstance(err, str):
        message = err
    if message is None:
        message = data.get("detail", data.get("message"))
    if message is not None and not isinstance(message, str):
        message = json.dumps(message)[:1000]
    return (
        message,
        None if code is None else str(code),
        kind if isinstance(kind, str) else None,
    )


def error_from_body(
    data: Any, *, provider: str, model: str | None, cfg: ProviderConfig | None = None
) -> errors.APIError:
    """The error for an ``{"error": {...}}`` met in a 200 body or inside a stream.

    The status is the error's numeric ``code`` when it is one (400-599), else
    the one its ``type``/``code`` implies, else 500.
    """
    message, code, kind = error_fields(data)
    status = 500
    if code is not None and code.isdigit() and 400 <= int(code) <= 599:
        status = int(code)
    else:
        for name in (code, kind):
            if name is not None and name in _STATUS_BY_KIND:
                status = _STATUS_BY_KIND[name]
                break
    body = json.dumps(data).encode()
    return error_from_response(
        status, {}, body, provider=provider, model=model,
        cfg=cfg or ProviderConfig(name=provider, api_base=""),
        message=message or "the server reported an error", code=code, err_type=kind,
    )


def parse_usage(u: Mapping[str, Any]) -> Usage:
    """A :class:`Usage` from OpenAI's ``usage`` object; ``*_details`` are kept as given.

    The server's ``total_tokens`` is kept as sent (0 included); only a missing
    one is computed as prompt + completion.
    """
    prompt = u.get("prompt_tokens") or 0
    completion = u.get("completion_tokens") or 0
    total = u.get("total_tokens")
    return Usage(
        prompt,
        completion,
        prompt + completion if total is None else total,
        u.get("prompt_tokens_details"),
        u.get("completion_tokens_details"),
    )


def reasoning_text(m: Mapping[str, Any]) -> Any:
    """A message's or a delta's reasoning: ``reasoning_content``, else a string
    ``reasoning`` (OpenRouter, newer vLLM), else None."""
    r = m.get("reasoning_content")
    if r is None:
        r = m.get("reasoning")
        if not isinstance(r, str):
            r = None
    return r
