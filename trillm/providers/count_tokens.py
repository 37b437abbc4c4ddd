"""Token counting with each provider's own endpoint, as build and parse steps.

* OpenAI (and OpenAI-compatible servers that have it): ``POST {base}/responses/input_tokens``
  with the messages as Responses input items -> ``{"input_tokens": N}``;
* Anthropic: ``POST {base}/v1/messages/count_tokens`` -> ``{"input_tokens": N}``;
* Gemini: ``POST .../models/{m}:countTokens`` with a ``generateContentRequest``
  -> ``{"totalTokens": N}``.

Each step starts from the provider's own chat request (``provider.build_chat``, so
messages, system prompts and tools are translated exactly as a real call sends
them) and reshapes it; the provider instance is passed in, so this module imports
no provider.  Pure, like every provider module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from .. import errors
from .._wire import HTTPRequestSpec, ProviderConfig
from ..types import ChatRequest

__all__ = ["build_count_tokens", "parse_count_tokens", "responses_input"]

#: The body fields Anthropic's count_tokens endpoint takes (it refuses others).
_ANTHROPIC_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking",
                     "mcp_servers")


def _part(part: Any) -> Any:
    """A chat content part as a Responses input part."""
    if not isinstance(part, Mapping):
        return part
    kind = part.get("type")
    if kind == "text":
        return {"type": "input_text", "text": part.get("text", "")}
    if kind == "image_url":
        url = part.get("image_url")
        url = url.get("url") if isinstance(url, Mapping) else url
        return {"type": "input_image", "image_url": url}
    return dict(part)


def responses_input(messages: Any) -> list[Any]:
    """Chat messages as Responses API input items (tool calls and results included)."""
    items: list[Any] = []
    for m in messages:
        role = m.get("role")
        content = m.get("content")
        if role == "tool":
            items.append({"type": "function_call_output", "call_id": m.get("tool_call_id"),
                          "output": content if isinstance(content, str) else json.dumps(content)})
            continue
        if isinstance(content, list):
            content = [_part(p) for p in content]
        if content is not None and content != "":
            items.append({"role": role, "content": content})
        for call in m.get("tool_calls") or ():
            fn = call.get("function") or {}
            items.append({"type": "function_call", "call_id": call.get("id"),
                          "name": fn.get("name"), "arguments": fn.get("arguments", "")})
    return items


def _flat_tools(tools: Any) -> list[Any]:
    out = []
    for t in tools:
        fn = t.get("function") if isinstance(t, Mapping) else None
        if isinstance(fn, Mapping) and t.get("type") == "function":
            out.append({"type": "function", **fn})
        else:
            out.append(t)
    return out


def build_count_tokens(kind: str, provider: Any, req: ChatRequest,
                       cfg: ProviderConfig) -> HTTPRequestSpec:
    """The token-counting request of provider *kind* (``"openai"``, ``"anthropic"``,
    ``"gemini"``) for *req*'s messages and tools."""
    spec: HTTPRequestSpec = provider.build_chat(req, cfg)
    body: dict[str, Any] = dict(spec.json)
    url = spec.url
    if kind == "anthropic":
        url = url.replace("/v1/messages", "/v1/messages/count_tokens", 1)
        body = {k: body[k] for k in _ANTHROPIC_FIELDS if k in body}
    elif kind == "gemini":
        url = url.replace(":generateContent", ":countTokens", 1)
        inner = {k: v for k, v in body.items() if k in ("contents", "systemInstruction",
                                                         "tools", "toolConfig")}
        body = {"generateContentRequest": {"model": f"models/{req.model}", **inner}}
    else:
        base, _, query = url.partition("?")
        base = base.removesuffix("/chat/completions") + "/responses/input_tokens"
        url = f"{base}?{query}" if query else base
        body = {"model": req.model, "input": responses_input(req.messages)}
        if req.params.get("tools"):
            body["tools"] = _flat_tools(req.params["tools"])
    return attrs.evolve(spec, url=url, json=body)


def parse_count_tokens(body: bytes, req: ChatRequest, cfg: ProviderConfig | None) -> int:
    """The count in a token-counting answer (``input_tokens`` or ``totalTokens``)."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("input_tokens", "totalTokens", "total_tokens"):
            value = data.get(key)
            if type(value) is int:
                return value
    raise errors.APIError(
        f"the token-counting answer holds no token count: {body[:200]!r}",
        status_code=None, provider=req.provider, model=req.model,
    )
