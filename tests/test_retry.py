"""RetryPolicy, is_retryable and parse_retry_after: pure decisions, no sleeping."""

from __future__ import annotations

import random
from email.utils import format_datetime, parsedate_to_datetime

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trillm import errors
from trillm.retry import RetryPolicy, is_retryable, parse_retry_after

EXACT = RetryPolicy(jitter=0)

RETRYABLE = [
    errors.RequestTimeoutError,
    errors.ConflictError,
    errors.RateLimitError,
    errors.InternalServerError,
    errors.ServiceUnavailableError,
    errors.APIConnectionError,
    errors.Timeout,
]
NOT_RETRYABLE = [
    errors.BadRequestError,
    errors.AuthenticationError,
    errors.PermissionDeniedError,
    errors.NotFoundError,
    errors.UnprocessableEntityError,
    errors.ContextWindowExceededError,
    errors.ContentPolicyViolationError,
    errors.StreamError,
]


# ------------------------------------------------------------------ decision order


@pytest.mark.parametrize("cls", RETRYABLE)
def test_retryable_classes(cls: type[errors.APIError]) -> None:
    assert is_retryable(cls("x"))
    assert EXACT.delay(1, cls("x")) == 0.5


@pytest.mark.parametrize("cls", NOT_RETRYABLE)
def test_non_retryable_classes(cls: type[errors.APIError]) -> None:
    assert not is_retryable(cls("x"))
    assert EXACT.delay(1, cls("x")) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_non_retryable_statuses(status: int) -> None:
    exc = errors.class_for_status(status)("x", status_code=status)
    assert not is_retryable(exc)
    assert EXACT.delay(1, exc) is None


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses(status: int) -> None:
    exc = errors.class_for_status(status)("x", status_code=status)
    assert is_retryable(exc)
    assert EXACT.delay(1, exc) == 0.5


def test_529_overloaded_is_retried() -> None:
    exc = errors.class_for_status(529)("overloaded", status_code=529)
    assert isinstance(exc, errors.ServiceUnavailableError)
    assert is_retryable(exc)


def test_timeout_and_connection_errors_are_retried() -> None:
    assert EXACT.delay(1, errors.Timeout("slow")) == 0.5
    assert EXACT.delay(2, errors.APIConnectionError("reset")) == 1.0


@pytest.mark.parametrize("cls", NOT_RETRYABLE)
def test_x_should_retry_true_overrides_class(cls: type[errors.APIError]) -> None:
    exc = cls("x", headers={"x-should-retry": "true"})
    assert is_retryable(exc)
    assert EXACT.delay(1, exc) == 0.5


@pytest.mark.parametrize("cls", RETRYABLE)
def test_x_should_retry_false_overrides_class(cls: type[errors.APIError]) -> None:
    exc = cls("x", headers={"x-should-retry": "false"})
    assert not is_retryable(exc)
    assert EXACT.delay(1, exc) is None


def test_x_should_retry_false_beats_retry_after() -> None:
    exc = errors.RateLimitError("x", headers={"x-should-retry": "false"}, retry_after=1.0)
    assert EXACT.delay(1, exc) is None


def test_x_should_retry_header_name_is_case_insensitive() -> None:
    # Errors store lower-cased header names, so the wire's spelling does not matter.
    exc = errors.BadRequestError("x", headers={"X-Should-Retry": "true"})
    assert is_retryable(exc)


@pytest.mark.parametrize("value", ["", "yes", "1", "maybe"])
def test_other_x_should_retry_values_fall_back_to_class(value: str) -> None:
    assert is_retryable(errors.RateLimitError("x", headers={"x-should-retry": value}))
    assert not is_retryable(errors.BadRequestError("x", headers={"x-should-retry": value}))


@pytest.mark.parametrize(
    "exc",
    [ValueError("x"), RuntimeError("x"), TimeoutError("x"), OSError("x"), KeyboardInterrupt()],
)
def test_non_trillm_errors_are_never_retried(exc: BaseException) -> None:
    assert not is_retryable(exc)
    assert EXACT.delay(1, exc) is None


def test_caller_cancellation_is_never_retried() -> None:
    trio = pytest.importorskip("trio")
    # trio.Cancelled cannot be built directly; any BaseException that is not an
    # APIError takes the same path.
    assert issubclass(trio.Cancelled, BaseException)
    assert not issubclass(trio.Cancelled, Exception)
    assert not is_retryable(KeyboardInterrupt())


# ------------------------------------------------------------------ back-off


def test_backoff_sequence_without_jitter() -> None:
    exc = errors.RateLimitError("x")
    assert [EXACT.delay(k, exc) for k in range(1, 8)] == [0.5, 1, 2, 4, 8, 8, 8]
    assert [EXACT.backoff(k) for k in range(1, 7)] == [0.5, 1, 2, 4, 8, 8]


def test_default_policy() -> None:
    policy = RetryPolicy()
    assert policy.jitter == 0.25
    assert policy.max_retry_after == 60


def test_policy_is_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        EXACT.jitter = 0.5  # type: ignore[misc]


def test_jitter_with_seeded_rng_is_reproducible() -> None:
    policy = RetryPolicy(jitter=0.5)
    exc = errors.InternalServerError("x")
    first = [policy.delay(k, exc, random.Random(42)) for k in range(1, 6)]
    second = [policy.delay(k, exc, random.Random(42)) for k in range(1, 6)]
    assert first == second


def test_full_jitter_factor() -> None:
    class Fixed(random.Random):
        def random(self) -> float:
            return 0.5

    assert RetryPolicy(jitter=0.25).delay(3, errors.RateLimitError("x"), Fixed()) == 2 * 0.875
    assert RetryPolicy(jitter=1.0).delay(1, errors.RateLimitError("x"), Fixed()) == 0.25


@given(
    jitter=st.floats(0, 1),
    attempt=st.integers(1, 30),
    seed=st.integers(0, 2**32),
)
def test_jitter_bounds(jitter: float, attempt: int, seed: int) -> None:
    base = min(0.5 * 2 ** (attempt - 1), 8)
    policy = RetryPolicy(jitter=jitter)
    delay = policy.delay(attempt, errors.RateLimitError("x"), random.Random(seed))
    assert delay is not None
    assert (1 - jitter) * base <= delay <= base


def test_jitter_without_rng_uses_module_random() -> None:
    delay = RetryPolicy(jitter=0.25).delay(1, errors.RateLimitError("x"))
    assert delay is not None
    assert 0.375 <= delay <= 0.5


@pytest.mark.parametrize("jitter", [-0.01, 1.01, 2, float("nan"), float("inf")])
def test_jitter_validation(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=jitter)


@pytest.mark.parametrize("jitter", [0, 0.0, 0.5, 1, 1.0])
def test_jitter_valid_bounds(jitter: float) -> None:
    assert RetryPolicy(jitter=jitter).jitter == jitter


# ------------------------------------------------------------------ Retry-After in delay()


def test_retry_after_used_as_given() -> None:
    exc = errors.RateLimitError("x", retry_after=7.0)
    assert EXACT.delay(1, exc) == 7.0
    assert RetryPolicy(jitter=0.9).delay(5, exc, random.Random(0)) == 7.0  # no jitter, no cap


def test_retry_after_zero() -> None:
    assert EXACT.delay(1, errors.RateLimitError("x", retry_after=0.0)) == 0.0


def test_retry_after_at_the_limit_is_slept() -> None:
    assert EXACT.delay(1, errors.RateLimitError("x", retry_after=60.0)) == 60.0


def test_retry_after_over_the_limit_raises_at_once() -> None:
    exc = errors.RateLimitError("x", retry_after=61.0)
    assert EXACT.delay(1, exc) is None
    assert exc.retry_after == 61.0  # still there for the caller to see


def test_max_retry_after_configurable() -> None:
    exc = errors.RateLimitError("x", retry_after=120.0)
    assert RetryPolicy(jitter=0, max_retry_after=300).delay(1, exc) == 120.0
    assert (
        RetryPolicy(jitter=0, max_retry_after=10).delay(
            1, errors.RateLimitError("x", retry_after=11.0)
        )
        is None
    )


def test_retry_after_on_non_retryable_error_is_ignored() -> None:
    assert EXACT.delay(1, errors.BadRequestError("x", retry_after=1.0)) is None


# ------------------------------------------------------------------ parse_retry_after


def test_no_header() -> None:
    assert parse_retry_after({}) is None
    assert parse_retry_after({"content-type": "application/json"}) is None


def test_retry_after_seconds() -> None:
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "0"}) == 0.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after": " 3 "}) == 3.0


def test_retry_after_ms() -> None:
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250.5"}) == 0.2505


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "200", "retry-after": "30"}) == 0.2


def test_invalid_retry_after_ms_falls_back_to_retry_after() -> None:
    assert parse_retry_after({"retry-after-ms": "soon", "retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "nan", "retry-after": "3"}) == 3.0


@pytest.mark.parametrize(
    "value",
    [
        "",
        "soon",
        "abc123",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "Infinity",
        "12 parsecs",
        "Wed, 99 Foo 2015 07:28:00 GMT",
    ],
)
def test_invalid_retry_after_is_none(value: str) -> None:
    # Regression: "nan" and "inf" parsed as floats; a NaN delay compares False
    # against max_retry_after and was returned as the sleep duration.
    assert parse_retry_after({"retry-after": value}) is None
    assert parse_retry_after({"retry-after-ms": value}) is None


def test_nan_retry_after_never_becomes_a_delay() -> None:
    exc = errors.RateLimitError("x", retry_after=parse_retry_after({"retry-after": "nan"}))
    assert EXACT.delay(1, exc) == 0.5


def test_past_seconds_clamped_to_zero() -> None:
    assert parse_retry_after({"retry-after": "-5"}) == 0.0
    assert parse_retry_after({"retry-after-ms": "-5"}) == 0.0


DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
DATE_TS = parsedate_to_datetime(DATE).timestamp()


def test_http_date_relative_to_date_header() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:30 GMT", "date": DATE}
    assert parse_retry_after(headers) == 30.0
    # The Date header wins over `now`: the server's clock is the reference.
    assert parse_retry_after(headers, now=DATE_TS + 1000) == 30.0


def test_http_date_relative_to_now() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 07:29:00 GMT"}
    assert parse_retry_after(headers, now=DATE_TS) == 60.0
    assert parse_retry_after(headers, now=DATE_TS + 45) == 15.0


def test_http_date_with_unparseable_date_header_uses_now() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT", "date": "yesterday-ish"}
    assert parse_retry_after(headers, now=DATE_TS) == 10.0


def test_http_date_in_the_past_is_zero() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT", "date": DATE}
    assert parse_retry_after(headers) == 0.0


def test_http_date_without_now_uses_wall_clock() -> None:
    import datetime

    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30)
    delay = parse_retry_after({"retry-after": format_datetime(soon, usegmt=True)})
    assert delay is not None
    assert 25 <= delay <= 30


def test_long_http_date_is_parsed_but_not_slept_on() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 08:28:00 GMT", "date": DATE}
    seconds = parse_retry_after(headers)
    assert seconds == 3600.0
    exc = errors.RateLimitError("x", headers=headers, retry_after=seconds)
    assert EXACT.delay(1, exc) is None
    assert exc.retry_after == 3600.0


@given(st.integers(0, 10**6))
def test_integer_seconds_round_trip(n: int) -> None:
    assert parse_retry_after({"retry-after": str(n)}) == float(n)


@given(st.text(max_size=30))
def test_parse_never_raises(value: str) -> None:
    for name in ("retry-after", "retry-after-ms"):
        got = parse_retry_after({name: value}, now=DATE_TS)
        assert got is None or got >= 0.0
