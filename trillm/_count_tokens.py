"""Token counting as a pipeline operation: ``acount_tokens(model, messages)`` -> an int.

The provider's own endpoint counts (OpenAI's ``/responses/input_tokens``,
Anthropic's ``/v1/messages/count_tokens``, Gemini's ``:countTokens``; the
translation is in :mod:`trillm.providers.count_tokens`), through the one pipeline
like every call: routing, keys, limits, retries, hooks.  ``mock/`` counts words.
A server without the endpoint answers 404: a :class:`~trillm.errors.NotFoundError`
that says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import errors
from ._call import Call, Operation, Pipeline
from ._options import ClientDefaults, call_options, check_messages
from .providers.count_tokens import build_count_tokens, parse_count_tokens
from .types import ChatRequest

if TYPE_CHECKING:
    from .routing import Route

__all__ = ["COUNT_TOKENS", "acount_tokens"]


COUNT_TOKENS = Operation(
    "count_tokens", "token counts",
    lambda p, req, cfg: build_count_tokens(p.name, p, req, cfg),
    lambda p, body, req, cfg, headers: parse_count_tokens(body, req, cfg),
    elsewhere="count with a provider that has a token-counting endpoint (openai, anthropic, "
              "gemini), or the mock/ provider",
)


async def acount_tokens(
    pipeline: Pipeline, defaults: ClientDefaults, model: str,
    messages: Sequence[Mapping[str, Any]], *, tools: Sequence[Mapping[str, Any]] | None,
    system: str | None, kwargs: dict[str, Any],
) -> int:
    """How many input tokens *messages* (with *tools* and a *system* prompt) make for
    *model*, counted by its provider; *kwargs* are the call's options (``api_key``,
    ``api_base``, ``timeout``, ``max_retries``, ``hooks``, ...)."""
    params: dict[str, Any] = {"tools": list(tools) if tools else None, **kwargs}

    def prepare() -> list[Call]:
        options_kw = {k: params.pop(k) for k in _OPTIONS if k in params}
        options = call_options(defaults, params, **options_kw)
        msgs = check_messages(messages)
        if system is not None:
            if not isinstance(system, str):
                raise errors.BadRequestError("system must be a string")
            msgs = ({"role": "system", "content": system}, *msgs)

        def request(route: Route, provider: Any) -> list[ChatRequest]:
            return [ChatRequest(route.provider, route.model, msgs, False, params,
                                options.extra_body, options.headers)]

        return pipeline.prepare(COUNT_TOKENS, model, options, request)

    try:
        count: int = await pipeline.run(prepare)
    except errors.NotFoundError as exc:
        raise errors.NotFoundError(
            f"{exc.provider}/{exc.model}: the server answered 404 to the token-counting "
            f"request: it has no token-counting endpoint, or does not know the model "
            f"({exc.message})",
            provider=exc.provider, model=exc.model, request_id=exc.request_id,
            body=exc.body, headers=exc.headers,
        ) from exc
    return count


_OPTIONS = ("timeout", "deadline", "max_retries", "retry", "api_key", "api_base",
            "api_version", "headers", "extra_headers", "extra_body", "mock_response",
            "mock_latency")
