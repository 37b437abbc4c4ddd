"""When and how long to wait before retrying: pure decisions, no sleeping.

The order of decisions (the design's "Conventions"): the caller's cancellation
is never seen here (it is not an :class:`Exception`); then a response's
``x-should-retry: true|false`` header decides; then the class of the error:
:class:`~trillm.errors.RequestTimeoutError`, :class:`~trillm.errors.ConflictError`,
:class:`~trillm.errors.RateLimitError`, :class:`~trillm.errors.InternalServerError`
(529 included), :class:`~trillm.errors.APIConnectionError` and
:class:`~trillm.errors.Timeout` are retried, everything else is not.  A
:class:`~trillm.errors.StructuredOutputError` (an answer that does not fit its
``response_format``) is never retried, whatever the headers say.

The delay is the server's ``retry-after-ms`` / ``Retry-After`` when it sent one
(used as given up to ``max_retry_after``; a longer one is not slept on: the
error is raised at once with ``retry_after`` set), else exponential back-off
with jitter: retry *k* waits ``min(base * 2**(k-1), max_delay) * (1 - jitter * u)``
with *u* uniform in [0, 1).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping

import attrs

from . import errors
from ._records import record_repr

__all__ = ["RetryPolicy", "is_retryable", "parse_retry_after"]

_RETRYABLE = (
    errors.RequestTimeoutError,
    errors.ConflictError,
    errors.RateLimitError,
    errors.InternalServerError,
    errors.APIConnectionError,
)


def is_retryable(error: BaseException) -> bool:
    """Whether *error* may be retried at all (``x-should-retry`` first, then its class)."""
    if not isinstance(error, errors.APIError) or isinstance(error, errors.StructuredOutputError):
        return False  # an answer that does not fit its format came whole: asking again is no fix
    should = error.headers.get("x-should-retry")
    if should == "true":
        return True
    if should == "false":
        return False
    return isinstance(error, _RETRYABLE)


@attrs.frozen(repr=False)
class RetryPolicy:
    """How to space retries; ``Client(retry=RetryPolicy(...))`` replaces the default.

    ``jitter`` is the fraction by which a back-off may be shortened at random
    (0 gives exact delays: 0.5, 1, 2, 4, 8, 8, ... s); ``max_retry_after`` is the
    longest server-requested wait trillm sleeps on.
    """

    __repr__ = record_repr

    jitter: float = attrs.field(default=0.25)
    max_retry_after: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 8.0

    @jitter.validator
    def _check_jitter(self, _: object, value: float) -> None:
        if not 0 <= value <= 1:
            raise ValueError(f"jitter must be between 0 and 1, not {value!r}")

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """The back-off before retry number *retry* (1, 2, ...), without Retry-After."""
        base = min(self.base_delay * 2.0 ** (retry - 1), self.max_delay)
        if self.jitter:
            base *= 1 - self.jitter * (rng or random).random()
        return base

    def delay(
        self, attempt: int, error: BaseException, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait after failed attempt *attempt* (1-based), or None to give up.

        The caller checks the attempt budget (``max_retries``); this decides
        whether *error* is retryable and how long to wait.
        """
        if not is_retryable(error):
            return None
        assert isinstance(error, errors.APIError)
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            return error.retry_after
        return self.backoff(attempt, rng)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date).

    An HTTP date is taken relative to the response's ``Date`` header when there
    is one, else to *now* (wall-clock seconds, default ``time.time()``).  Past
    dates give 0; unparseable values give None.
    """
    ms = _finite(headers.get("retry-after-ms"))
    if ms is not None:
        return max(ms / 1000.0, 0.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(seconds, 0.0)
    from email.utils import parsedate_to_datetime  # rare path: keep import time low

    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    reference: float | None = None
    date = headers.get("date")
    if date is not None:
        try:
            reference = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError):
            reference = None
    if reference is None:
        reference = time.time() if now is None else now
    return max(when - reference, 0.0)


def _finite(value: str | None) -> float | None:
    """*value* as a finite float, or None ("nan" and "inf" are not delays)."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
