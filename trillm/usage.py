"""Token usage in one shape, its cost at your prices, and running totals per model.

Pure (stdlib + attrs).  Every provider's parse step already fills
:class:`~trillm.types.Usage` the OpenAI way (``prompt_tokens_details.cached_tokens``,
``.cache_creation_tokens``, ``completion_tokens_details.reasoning_tokens``); the
Responses API's :class:`~trillm.response_types.ResponseUsage` speaks of input and
output tokens instead.  :func:`token_counts` reads either into one flat
:class:`TokenCounts`, which is what :func:`cost` and the totals use.

trillm ships no price list: prices change, and a stale table is worse than none.
Give yours, per million tokens, as :class:`Prices`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ._records import record_repr
from .types import Usage, positional_builder

__all__ = ["ModelTotals", "Prices", "TokenCounts", "UsageTotals", "cost", "token_counts",
           "usage_of"]


@attrs.frozen(repr=False)
class Prices:
    """What a model costs, in your currency per **million** tokens.

    ``input`` is the price of a prompt token that was neither read from nor
    written to the provider's prompt cache; ``cached_input`` of one read from it
    (``input`` when not given) and ``cache_write`` of one written to it (``input``
    when not given); ``output`` of a completion token, reasoning tokens included
    (providers bill those as output).
    """

    __repr__ = record_repr

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None

    def __attrs_post_init__(self) -> None:
        for name in ("input", "output", "cached_input", "cache_write"):
            value = getattr(self, name)
            if value is None and name in ("cached_input", "cache_write"):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"Prices.{name} must be a number >= 0 (per million tokens), "
                                 f"not {value!r}")


@attrs.frozen(repr=False)
class TokenCounts:
    """One answer's tokens by kind.  ``input`` and ``output`` include their parts:
    ``cached`` and ``cache_write`` are prompt tokens read from / written to the cache,
    ``reasoning`` is the completion tokens spent thinking."""

    __repr__ = record_repr

    input: int = 0
    output: int = 0
    total: int = 0
    cached: int = 0
    cache_write: int = 0
    reasoning: int = 0


_token_counts = positional_builder(TokenCounts)


def _detail(details: Any, key: str) -> int:
    if not details:
        return 0
    if type(details) is dict or isinstance(details, Mapping):  # a dict: no ABC check
        value = details.get(key)
    else:
        value = getattr(details, key, 0)
    return value if type(value) is int else 0


def _record_counts(usage: Usage) -> TokenCounts:
    inp, out = usage.prompt_tokens or 0, usage.completion_tokens or 0
    total = usage.total_tokens
    details = usage.prompt_tokens_details
    return _token_counts(
        inp, out, inp + out if total is None else total,
        _detail(details, "cached_tokens"), _detail(details, "cache_creation_tokens"),
        _detail(usage.completion_tokens_details, "reasoning_tokens"),
    )


def token_counts(usage: Any) -> TokenCounts:
    """*usage* (a :class:`~trillm.types.Usage`, a Responses API ``ResponseUsage``, or the
    dict form of either) as :class:`TokenCounts`; None or anything else counts nothing."""
    if usage is None:
        return TokenCounts()
    if type(usage) is Usage:  # what every call's answer holds: its fields directly
        return _record_counts(usage)
    get = usage.get if isinstance(usage, Mapping) else lambda k, d=None: getattr(usage, k, d)
    if get("input_tokens") is not None and get("prompt_tokens") is None:  # Responses API
        inp, out = get("input_tokens") or 0, get("output_tokens") or 0
        total = get("total_tokens")
        return TokenCounts(inp, out, inp + out if total is None else total,
                           _detail(get("input_tokens_details"), "cached_tokens"), 0,
                           _detail(get("output_tokens_details"), "reasoning_tokens"))
    inp, out = get("prompt_tokens") or 0, get("completion_tokens") or 0
    total = get("total_tokens")
    prompt_details = get("prompt_tokens_details")
    return TokenCounts(
        inp, out, inp + out if total is None else total,
        _detail(prompt_details, "cached_tokens"),
        _detail(prompt_details, "cache_creation_tokens"),
        _detail(get("completion_tokens_details"), "reasoning_tokens"),
    )


def usage_of(usage: Any) -> Usage | None:
    """*usage* as a chat :class:`~trillm.types.Usage` (a Responses API ``ResponseUsage``
    converted, with its cached and reasoning counts in the details); None stays None."""
    if usage is None or isinstance(usage, Usage):
        return usage
    c = token_counts(usage)
    return Usage(c.input, c.output, c.total, {"cached_tokens": c.cached},
                 {"reasoning_tokens": c.reasoning})


def cost(usage: Any, prices: Prices) -> float:
    """What *usage* cost at *prices* (per million tokens): uncached prompt tokens at
    ``input``, cache reads at ``cached_input``, cache writes at ``cache_write``,
    completion tokens (reasoning included) at ``output``.  No usage costs 0."""
    c = usage if isinstance(usage, TokenCounts) else token_counts(usage)
    cached_price = prices.input if prices.cached_input is None else prices.cached_input
    write_price = prices.input if prices.cache_write is None else prices.cache_write
    plain = max(c.input - c.cached - c.cache_write, 0)
    return (plain * prices.input + c.cached * cached_price + c.cache_write * write_price
            + c.output * prices.output) / 1_000_000


@attrs.frozen(repr=False)
class ModelTotals:
    """What one model did so far: logical calls (retries and fallbacks inside one), those
    that failed, tokens by kind, and the cost (None when no price was given for it)."""

    __repr__ = record_repr

    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None


class UsageTotals:
    """Running counters per ``"provider/model"``: a few additions per call, read with
    :meth:`snapshot`.  Not locked: trio runs one task at a time."""

    __slots__ = ("_by_model",)

    def __init__(self) -> None:
        self._by_model: dict[str, list[Any]] = {}

    def add(self, model: str, counts: TokenCounts | None, price: float | None,
            failed: bool) -> None:
        """Count one finished logical call of *model*."""
        row = self._by_model.get(model)
        if row is None:
            row = self._by_model[model] = [0, 0, 0, 0, 0, 0, 0, 0, None]
        row[0] += 1
        if failed:
            row[1] += 1
        if counts is not None:
            row[2] += counts.input
            row[3] += counts.output
            row[4] += counts.total
            row[5] += counts.cached
            row[6] += counts.cache_write
            row[7] += counts.reasoning
        if price is not None:
            row[8] = price if row[8] is None else row[8] + price

    def snapshot(self) -> dict[str, ModelTotals]:
        """The totals so far, per model (a copy)."""
        return {model: ModelTotals(*row) for model, row in self._by_model.items()}

    def clear(self) -> None:
        """Start counting from zero."""
        self._by_model.clear()
