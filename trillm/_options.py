"""Checking and resolving a call's options: pure functions, no I/O.

``None`` inherits the Client's value and ``math.inf`` means no limit; anything
else that is not a positive number is a :class:`~trillm.errors.BadRequestError`
raised before any traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from . import errors
from .retry import RetryPolicy

__all__ = ["CallLimits", "check_messages", "retries", "seconds"]


@attrs.frozen
class CallLimits:
    """The time and retry settings of one call (the Client's, overridden per call)."""

    timeout: float
    deadline: float
    idle_timeout: float
    max_retries: int
    retry: RetryPolicy


def seconds(name: str, value: Any, default: float) -> float:
    """A time limit in seconds: *default* for None, else a positive number (inf allowed)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise errors.BadRequestError(
            f"{name} must be a number of seconds > 0 (math.inf for no limit), not {value!r}"
        )
    return float(value)


def retries(value: Any, default: int) -> int:
    """A retry count: *default* for None, else an int >= 0."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise errors.BadRequestError(f"max_retries must be an int >= 0, not {value!r}")
    return value


def check_messages(messages: Any) -> tuple[Mapping[str, Any], ...]:
    """The messages as a tuple, after checking each is a dict with a ``role``."""
    if isinstance(messages, str) or not isinstance(messages, Sequence) or not messages:
        raise errors.BadRequestError(
            "messages must be a non-empty list of {'role': ..., 'content': ...} dicts"
        )
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m:
            raise errors.BadRequestError(
                f"messages[{i}] must be a dict with a 'role' key, not {type(m).__name__}"
            )
    return tuple(messages)
