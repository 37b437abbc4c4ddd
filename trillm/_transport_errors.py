"""What the transport's errors say, and their shape at its boundary (no httpx here).

Split off ``_transport`` (which maps httpx's exception classes and uses these):
where a request went (:func:`origin`, never a path or query, which may hold a
key), the telling cause of an OS-level error (:func:`reason_of`), a header that
httpx or h11 refused, named but never quoted (:func:`header_error`: the value
may be an API key), a body past a bound (:func:`too_large`), and what a wire error of
each kind says (:func:`wire_error`; ``_transport`` tells which kind an httpx or httpcore
error is).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

from . import errors
from ._wire import HTTPRequestSpec

__all__ = ["WireErrorKind", "bad_request", "header_error", "header_problem", "origin",
           "reason_of", "too_large", "wire_error"]

#: What a wire error is: an invalid URL, a request h11 refused, a proxy's failure, no
#: connection (in time), a body that would not decode, or a connection that broke.
WireErrorKind = Literal["bad_url", "local_protocol", "proxy", "connect_timeout", "connect",
                        "decoding", "broken"]


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


def bad_request(exc: Exception, spec: HTTPRequestSpec, *, bad_url: bool) -> errors.APIError:
    """The request could not be built: an invalid URL (*bad_url*), or another refusal."""
    if bad_url:
        text = f"invalid URL ({exc}): api_base must look like https://host[:port]/path"
    else:
        text = f"the request could not be built ({type(exc).__name__}: {exc})"
    return errors.BadRequestError(text, provider=spec.provider or None, model=spec.model or None)


def wire_error(exc: Exception, spec: HTTPRequestSpec, kind: WireErrorKind, *, in_body: bool,
               via: str | None, connect_timeout: float | None) -> errors.APIError:
    """The trillm error for a wire error of *kind*; *via* is the proxy used, if any."""
    if kind == "bad_url":
        return bad_request(exc, spec, bad_url=True)
    where, reason = origin(spec.url), reason_of(exc)
    via = via and origin(via)
    provider, model = spec.provider or None, spec.model or None
    if kind == "local_protocol":  # its text may quote a header value: not used
        return errors.BadRequestError(
            f"the request to {where} could not be sent: check header names and values",
            provider=provider, model=model,
        )
    if kind == "proxy" or (via and kind in ("connect", "connect_timeout")):
        text = (f"could not reach {where} through the proxy {via} ({reason}): "
                "check proxy= or HTTP(S)_PROXY / ALL_PROXY / NO_PROXY")
    elif kind == "connect_timeout":
        limit = "" if connect_timeout is None else f" within connect_timeout={connect_timeout:g} s"
        text = f"could not connect to {where}{limit}: is the host reachable? a proxy needed?"
    elif kind == "connect":
        hint = ("check the server's certificate (SSL_CERT_FILE) and any proxy" if "TLS" in reason
                else "is the server running and api_base right?")
        text = f"could not connect to {where} ({reason}): {hint}"
    elif kind == "decoding":
        text = f"could not decode the response body from {where} ({reason})"
    elif in_body:
        text = f"the connection to {where} broke in the middle of the response body ({reason})"
    else:
        text = (f"the connection to {where} broke before a response arrived ({reason}): "
                "the server or a proxy closed it")
    return errors.APIConnectionError(text, provider=provider, model=model)
