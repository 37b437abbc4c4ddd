"""What the transport's errors say, and their shape at its boundary (no httpx here).

Split off ``_transport`` (which maps httpx's exception classes and uses these):
where a request went (:func:`origin`, never a path or query, which may hold a
key), the telling cause of an OS-level error (:func:`reason_of`), a header that
httpx or h11 refused, named but never quoted (:func:`header_error`: the value
may be an API key), a body past a bound (:func:`too_large`).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from urllib.parse import urlsplit

from . import errors
from ._wire import HTTPRequestSpec

__all__ = ["header_error", "header_problem", "origin", "reason_of",
           "too_large"]


def origin(url: str) -> str:
    """scheme://host[:port] of *url*, never its path or query (which may hold a key)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the server"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}" if parts.scheme and host else "the server"


def reason_of(exc: BaseException) -> str:
    """The most telling cause in *exc*'s chain (exception groups included), in a few words."""
    todo, seen = [exc], set()
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError | ConnectionResetError):
            return "connection refused" if isinstance(e, ConnectionRefusedError) else "reset"
        if isinstance(e, socket.gaierror):
            return f"host name lookup failed: {e.strerror}"
        if isinstance(e, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {e.verify_message}"
        if isinstance(e, ssl.SSLError):
            return f"TLS error: {e.reason or e}"
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        todo.extend(c for c in (e.__cause__, e.__context__) if c is not None)
    return str(exc) or type(exc).__name__


def header_problem(value: object) -> str | None:
    """What makes *value* an invalid header value (h11's rules), without quoting it."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return f"is a {type(value).__name__}, not a str"
    if not value.isascii():
        return "is not ASCII"
    if any((ch < " " and ch != "\t") or ch == "\x7f" for ch in value):
        return "holds a line break or another control character (a key read from a file?)"
    if value != value.strip(" \t"):
        return "has leading or trailing whitespace (a key read from a file?)"
    return None


def header_error(headers: Iterable[tuple[object, object]],
                  spec: HTTPRequestSpec) -> errors.APIError:
    """httpx or h11 refused a request header: name it, never quote its value (a key?)."""
    hint = "check api_key and extra headers"
    for name, value in headers:
        problem = header_problem(value)
        if problem is not None:
            name = name.decode("latin-1") if isinstance(name, bytes) else name
            text = f"the {name!r} request header value {problem}: {hint}"
            break
    else:
        where = origin(spec.url)
        text = f"the request to {where} could not be sent (a header was refused): {hint}"
    return errors.BadRequestError(text, provider=spec.provider or None, model=spec.model or None)


def too_large(exc: Exception, spec: HTTPRequestSpec) -> errors.APIError:
    """A body past a bound of _body_limits: not a connection error, never retried."""
    return errors.APIError(f"the response body from {origin(spec.url)} {exc}",
                           provider=spec.provider or None, model=spec.model or None)
