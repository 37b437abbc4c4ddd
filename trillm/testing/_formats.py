"""Which wire format a request speaks, and what it asks, as the fake LLM reads it.

A request is recognised by its method and path (the headers only add the
secrets to hide): OpenAI's ``.../chat/completions``, ``.../embeddings``,
``.../images/generations``, ``.../audio/transcriptions``, ``.../audio/speech``,
``GET .../models`` and the Responses API's ``POST .../responses`` (under any
prefix: ``/v1``, an Azure deployment or Azure's ``/openai/v1``, a proxy's
path); Anthropic's ``/v1/messages``; Gemini's
``/v1beta/models/{model}:generateContent``, ``:streamGenerateContent`` and
``:batchEmbedContents``.  Its messages are read into OpenAI's roles
(``system``, ``user``, ``assistant``, ``tool``), with a content that is a
string when every part is text, else the provider's own parts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote

import attrs

from .. import errors
from .._records import record_repr

__all__ = ["ParsedRequest", "last_user_text", "parse_request"]

_GEMINI = re.compile(r"/v1(?:beta|alpha)?/models/([^/:]+):([A-Za-z]+)$")
_OPENAI_PATHS = (
    ("/chat/completions", "chat"), ("/embeddings", "embeddings"),
    ("/images/generations", "images"), ("/audio/transcriptions", "transcription"),
    ("/audio/speech", "speech"), ("/models", "models"), ("/responses", "responses"),
)
_GEMINI_OPS = {"generateContent": "chat", "streamGenerateContent": "chat",
               "batchEmbedContents": "embeddings"}
_ROLES = {"model": "assistant", "developer": "system"}


@attrs.frozen(repr=False)
class ParsedRequest:
    """What one request asks, whatever its wire format.

    ``provider`` is ``"openai"``, ``"azure"``, ``"anthropic"``, ``"gemini"`` or
    ``"unknown"``; ``operation`` is ``"chat"``, ``"embeddings"``, ``"images"``,
    ``"transcription"``, ``"speech"``, ``"models"``, ``"responses"`` or ``"unknown"``.
    ``headers`` and ``path`` have their secrets replaced by ``[REDACTED]``.
    """

    __repr__ = record_repr

    method: str
    path: str
    provider: str
    operation: str
    model: str | None
    stream: bool
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any]
    headers: Mapping[str, str]
    body: bytes = attrs.field(repr=False)
    json: Any = attrs.field(default=None, repr=False)
    sse: bool = True  # a Gemini stream without ?alt=sse answers a JSON array
    #: A salted digest of each redacted header's value (never the value itself).
    secret_digests: Mapping[str, str] = attrs.field(factory=dict, repr=False)


_SALT = os.urandom(16)


def secret_digest(value: str) -> str:
    """A digest of a secret, salted per process: comparable, not reversible offline."""
    return hashlib.blake2b(value.encode(), key=_SALT, digest_size=16).hexdigest()


def _digests(headers: Mapping[str, str] | Any, safe: Mapping[str, str]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name.lower(): secret_digest(value) for name, value in items
            if safe.get(name.lower()) != value}


def _text_or_parts(parts: list[Any], text_of: Any) -> Any:
    texts = [text_of(p) for p in parts]
    if all(t is not None for t in texts):
        return "".join(texts)
    return parts


def _openai_messages(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    out = []
    for m in body.get("messages") or ():
        if not isinstance(m, Mapping):
            continue
        m = dict(m)
        content = m.get("content")
        if isinstance(content, list):
            m["content"] = _text_or_parts(content, lambda p: p.get("text") if isinstance(
                p, Mapping) and p.get("type") == "text" else None)
        out.append(m)
    return tuple(out)


def _anthropic_messages(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    def text_of(block: Any) -> str | None:
        if isinstance(block, Mapping) and block.get("type") == "text":
            return str(block.get("text") or "")
        return None

    out: list[Mapping[str, Any]] = []
    system = body.get("system")
    if system:
        out.append({"role": "system", "content": system if isinstance(system, str)
                    else _text_or_parts(list(system), text_of)})
    for m in body.get("messages") or ():
        if not isinstance(m, Mapping):
            continue
        content = m.get("content")
        if isinstance(content, list):
            content = _text_or_parts(content, text_of)
        out.append({"role": m.get("role"), "content": content})
    return tuple(out)


def _gemini_messages(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    def text_of(part: Any) -> str | None:
        if isinstance(part, Mapping) and isinstance(part.get("text"), str):
            return str(part["text"])
        return None

    out: list[Mapping[str, Any]] = []
    system = body.get("systemInstruction") or body.get("system_instruction")
    if isinstance(system, Mapping):
        out.append({"role": "system",
                    "content": _text_or_parts(list(system.get("parts") or ()), text_of)})
    for c in body.get("contents") or ():
        if not isinstance(c, Mapping):
            continue
        role = str(c.get("role") or "user")
        out.append({"role": _ROLES.get(role, role),
                    "content": _text_or_parts(list(c.get("parts") or ()), text_of)})
    return tuple(out)


def _responses_messages(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    """A Responses API body's ``instructions`` and ``input`` in chat roles: input items
    with a role keep it, ``function_call`` items become assistant tool calls and
    ``function_call_output`` items ``tool`` messages."""
    def text_of(part: Any) -> str | None:
        if isinstance(part, Mapping) and part.get("type") in ("input_text", "output_text",
                                                              "text"):
            return str(part.get("text") or "")
        return None

    out: list[Mapping[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        out.append({"role": "system", "content": instructions})
    given = body.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "function_call":
            out.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": item.get("call_id"), "type": "function", "function": {
                    "name": item.get("name"), "arguments": item.get("arguments")}}]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": item.get("call_id"),
                        "content": item.get("output")})
        elif "role" in item:
            content = item.get("content")
            if isinstance(content, list):
                content = _text_or_parts(content, text_of)
            out.append({"role": _ROLES.get(str(item["role"]), item["role"]),
                        "content": content})
    return tuple(out)


def _without(body: Any, *names: str) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        return {}
    return {k: v for k, v in body.items() if k not in names}


def parse_request(method: str, target: str, headers: Mapping[str, str] | Any,
                  body: bytes) -> ParsedRequest:
    """Read one request (*target*: path and query, as sent)."""
    path, _, query = target.partition("?")
    path = unquote(path)
    safe_headers = errors.redact_headers(headers)
    shown = errors.redact(target)
    try:
        data: Any = json.loads(body) if body else None
    except (ValueError, RecursionError):
        data = None
    as_map: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
    model = as_map.get("model")
    model = model if isinstance(model, str) else None
    stream = as_map.get("stream") is True

    def made(provider: str, operation: str, messages: tuple[Mapping[str, Any], ...],
             params: dict[str, Any], *, sse: bool = True) -> ParsedRequest:
        return ParsedRequest(method.upper(), shown, provider, operation, model, stream, messages,
                             params, safe_headers, body, data, sse,
                             _digests(headers, safe_headers))

    found = _GEMINI.search(path)
    if found:
        model, verb = found.group(1), found.group(2)
        stream = verb == "streamGenerateContent"
        sse = "sse" in parse_qs(query).get("alt", [])
        return made("gemini", _GEMINI_OPS.get(verb, "unknown"), _gemini_messages(as_map),
                    _without(data, "contents", "systemInstruction", "system_instruction"),
                    sse=sse)
    if path.endswith("/v1/messages") or path == "/messages":
        return made("anthropic", "chat", _anthropic_messages(as_map),
                    _without(data, "model", "messages", "system", "stream"))
    deployment = re.search(r"/openai/deployments/([^/]+)/", path)
    provider = "azure" if deployment or "/openai/v1/" in path else "openai"
    if deployment:
        model = deployment.group(1)
    for suffix, operation in _OPENAI_PATHS:
        if path.endswith(suffix) and (operation not in ("models", "responses")
                                      or method.upper() == ("GET" if operation == "models"
                                                            else "POST")):
            if operation == "transcription":  # multipart: the fields are not JSON
                fields = _multipart_fields(headers, body)
                model = fields.pop("model", model)
                return made(provider, operation, (), fields)
            if operation == "responses":
                return made(provider, operation, _responses_messages(as_map),
                            _without(data, "model", "input", "instructions", "stream"))
            return made(provider, operation, _openai_messages(as_map),
                        _without(data, "model", "messages", "stream"))
    return made("unknown", "unknown", (), _without(data))


def _multipart_fields(headers: Mapping[str, str] | Any, body: bytes) -> dict[str, Any]:
    """The text fields of a multipart/form-data body (the file by its name only)."""
    ctype = dict(errors.redact_headers(headers)).get("content-type", "")
    found = re.search(r'boundary="?([^";]+)"?', ctype)
    fields: dict[str, Any] = {}
    if not found:
        return fields
    for part in body.split(b"--" + found.group(1).encode()):
        head, sep, value = part.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]*)"', head)
        if not sep or not name:
            continue
        filename = re.search(rb'filename="([^"]*)"', head)
        key = name.group(1).decode("utf-8", "replace")
        if filename:
            fields[key] = filename.group(1).decode("utf-8", "replace")
        else:
            fields[key] = value.removesuffix(b"\r\n").decode("utf-8", "replace")
    return fields


def last_user_text(messages: tuple[Mapping[str, Any], ...]) -> str | None:
    """The text of the last user message (its text parts joined), or None."""
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                texts = [p.get("text") for p in content if isinstance(p, Mapping)]
                return "".join(t for t in texts if isinstance(t, str))
    return None
