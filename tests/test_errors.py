"""The error hierarchy, secret scrubbing, and error_from_response."""

from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trillm import errors
from trillm.errors import redact, redact_body, redact_headers
from trillm.providers.base import ProviderConfig, error_from_response, json_or_none, loads_json
from trillm.retry import is_retryable

KEY = "sk-test-SECRET0123456789abcdef"
# A key with no recognisable shape (Azure keys are 32 hex digits): only the
# configured-secret path can catch it.
PLAIN_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"

DEFAULT_STATUS: dict[type[errors.APIError], int | None] = {
    errors.APIError: None,
    errors.APIStatusError: None,
    errors.BadRequestError: 400,
    errors.ContextWindowExceededError: 400,
    errors.ContentPolicyViolationError: 400,
    errors.AuthenticationError: 401,
    errors.PermissionDeniedError: 403,
    errors.NotFoundError: 404,
    errors.RequestTimeoutError: 408,
    errors.ConflictError: 409,
    errors.UnprocessableEntityError: 422,
    errors.RateLimitError: 429,
    errors.InternalServerError: 500,
    errors.ServiceUnavailableError: 503,
    errors.APIConnectionError: None,
    errors.Timeout: None,
    errors.StreamError: None,
    errors.RateStoreError: None,
    errors.StructuredOutputError: None,
    errors.LengthFinishReasonError: None,
    errors.ContentFilterFinishReasonError: None,
}
ALL_CLASSES = list(DEFAULT_STATUS)


def _all_subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub, *_all_subclasses(sub)}
    return out


def test_table_covers_every_class() -> None:
    assert _all_subclasses(errors.APIError) | {errors.APIError} == set(ALL_CLASSES)
    assert set(errors.__all__) >= {c.__name__ for c in ALL_CLASSES}


# ------------------------------------------------------------------ construction


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_buildable_from_message_alone(cls: type[errors.APIError]) -> None:
    exc = cls("something went wrong")
    assert exc.message == "something went wrong"
    assert exc.status_code == DEFAULT_STATUS[cls]
    assert exc.provider is None
    assert exc.model is None
    assert exc.request_id is None
    assert exc.body is None
    assert exc.headers == {}
    assert exc.retry_after is None
    assert "something went wrong" in str(exc)
    assert isinstance(exc, errors.TrillmError)
    assert isinstance(exc, Exception)
    with pytest.raises(cls):
        raise exc


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_keywords(cls: type[errors.APIError]) -> None:
    exc = cls(
        "boom",
        status_code=418,
        provider="openai",
        model="gpt-4o-mini",
        request_id="req_123",
        body={"error": {"message": "boom"}},
        headers={"X-Request-Id": "req_123"},
        retry_after=2.5,
    )
    assert exc.status_code == 418
    assert (exc.provider, exc.model, exc.request_id) == ("openai", "gpt-4o-mini", "req_123")
    assert exc.body == {"error": {"message": "boom"}}
    assert exc.headers == {"x-request-id": "req_123"}  # names lower-cased
    assert exc.retry_after == 2.5
    text = str(exc)
    assert "boom" in text
    assert "418" in text
    assert "openai/gpt-4o-mini" in text
    assert "req_123" in text
    assert repr(exc).startswith(f"{cls.__name__}(")


def test_headers_from_pairs() -> None:
    exc = errors.APIError("x", headers=[("Retry-After", "3"), ("Authorization", "Bearer " + KEY)])
    assert exc.headers == {"retry-after": "3", "authorization": "[REDACTED]"}


def test_timeout_is_connection_error_api_error_and_builtin_timeout() -> None:
    exc = errors.Timeout("no response within 30 s")
    assert isinstance(exc, errors.APIConnectionError)
    assert isinstance(exc, errors.APIError)
    assert isinstance(exc, errors.TrillmError)
    assert isinstance(exc, TimeoutError)
    with pytest.raises(TimeoutError):
        raise exc
    assert str(exc) == "no response within 30 s"


def test_hierarchy() -> None:
    assert issubclass(errors.ServiceUnavailableError, errors.InternalServerError)
    assert issubclass(errors.ContextWindowExceededError, errors.BadRequestError)
    assert issubclass(errors.ContentPolicyViolationError, errors.BadRequestError)
    assert issubclass(errors.APIError, errors.TrillmError)
    assert issubclass(errors.TrillmError, Exception)
    assert issubclass(errors.StreamError, errors.APIError)
    assert not issubclass(errors.StreamError, errors.APIConnectionError)
    assert not issubclass(errors.APIConnectionError, TimeoutError)
    for cls in ALL_CLASSES:
        if cls is not errors.Timeout:
            assert not issubclass(cls, TimeoutError), cls
        assert not issubclass(cls, OSError) or cls is errors.Timeout


def test_status_codes_of_subclasses_inherit() -> None:
    assert errors.ContextWindowExceededError("x").status_code == 400
    assert errors.ServiceUnavailableError("x", status_code=529).status_code == 529


# ------------------------------------------------------------------ class_for_status

EXPECTED_BY_STATUS = {
    400: errors.BadRequestError,
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    408: errors.RequestTimeoutError,
    409: errors.ConflictError,
    422: errors.UnprocessableEntityError,
    429: errors.RateLimitError,
    503: errors.ServiceUnavailableError,
    529: errors.ServiceUnavailableError,
}


@pytest.mark.parametrize("status", range(400, 600))
def test_class_for_status(status: int) -> None:
    expected = EXPECTED_BY_STATUS.get(
        status, errors.InternalServerError if status >= 500 else errors.BadRequestError
    )
    assert errors.class_for_status(status) is expected


def test_class_for_status_outside_error_range() -> None:
    assert errors.class_for_status(302) is errors.APIError
    assert errors.class_for_status(200) is errors.APIError
    assert errors.class_for_status(600) is errors.InternalServerError


# ------------------------------------------------------------------ secrets


def _assert_clean(exc: errors.APIError, secret: str = KEY) -> None:
    for text in (
        str(exc),
        repr(exc),
        exc.message,
        json.dumps(exc.body),
        json.dumps(exc.headers),
        str(exc.args),
        pickle.dumps(exc).decode("latin-1"),
    ):
        assert secret not in text, text


def test_secret_echoed_in_message_is_redacted() -> None:
    exc = errors.AuthenticationError(f"Incorrect API key provided: {KEY}.", secrets=[KEY])
    _assert_clean(exc)
    assert "[REDACTED]" in exc.message


def test_unshaped_secret_echoed_everywhere_is_redacted() -> None:
    exc = errors.AuthenticationError(
        f"bad key {PLAIN_KEY}",
        body={"error": {"message": f"key {PLAIN_KEY} is wrong", "param": [PLAIN_KEY]}},
        headers={"x-echo": f"k={PLAIN_KEY}", "X-Api-Key": PLAIN_KEY},
        secrets=[PLAIN_KEY],
    )
    _assert_clean(exc, PLAIN_KEY)
    assert exc.body == {"error": {"message": "key [REDACTED] is wrong", "param": ["[REDACTED]"]}}
    assert exc.headers == {"x-echo": "k=[REDACTED]", "x-api-key": "[REDACTED]"}


def test_secret_in_text_body_is_redacted() -> None:
    exc = errors.APIError("x", body=f"<html>key={PLAIN_KEY}</html>", secrets=[PLAIN_KEY])
    _assert_clean(exc, PLAIN_KEY)
    exc = errors.APIError("x", body=f"raw {PLAIN_KEY}".encode(), secrets=[PLAIN_KEY])
    _assert_clean(exc, PLAIN_KEY)


def test_known_key_shapes_redacted_without_being_told() -> None:
    google = "AIzaSyA-0123456789abcdefghijklmnopqrs"
    exc = errors.APIError(f"keys {KEY} and {google} and Bearer abcdefgh12345678")
    assert KEY not in str(exc)
    assert google not in str(exc)
    assert "abcdefgh12345678" not in str(exc)


@pytest.mark.parametrize(
    "name",
    [
        "authorization",
        "Authorization",
        "x-api-key",
        "X-API-Key",
        "api-key",
        "x-goog-api-key",
        "proxy-authorization",
        "cookie",
    ],
)
def test_secret_headers_redacted(name: str) -> None:
    exc = errors.APIError("x", headers={name: "whatever-it-is", "content-type": "text/plain"})
    assert exc.headers == {name.lower(): "[REDACTED]", "content-type": "text/plain"}
    assert "whatever-it-is" not in repr(exc.headers)


def test_redact_headers_function() -> None:
    headers = {
        "Authorization": f"Bearer {KEY}",
        "api-key": "a",
        "x-goog-api-key": "g",
        "x-api-key": "k",
        "x-request-id": "req_1",
        "x-echo": PLAIN_KEY,
    }
    assert redact_headers(headers, [PLAIN_KEY]) == {
        "authorization": "[REDACTED]",
        "api-key": "[REDACTED]",
        "x-goog-api-key": "[REDACTED]",
        "x-api-key": "[REDACTED]",
        "x-request-id": "req_1",
        "x-echo": "[REDACTED]",
    }


def test_public_headers_scrubs_a_key_echoed_in_a_success_response() -> None:
    headers = {
        "x-api-key": "whatever",
        "x-request-id": "req_1",
        "x-echo": PLAIN_KEY,
        "x-debug": f"auth=Bearer {PLAIN_KEY}; user=7",
        "x-ratelimit-remaining-requests": "99",
    }
    assert errors.public_headers(headers, (PLAIN_KEY,)) == {
        "x-api-key": "[REDACTED]",
        "x-request-id": "req_1",
        "x-echo": "[REDACTED]",
        "x-debug": "auth=Bearer [REDACTED]; user=7",
        "x-ratelimit-remaining-requests": "99",
    }
    # any iterable of keys; empty and too-short ones are ignored, as by redact()
    assert errors.public_headers(headers, iter(["", "k", PLAIN_KEY]))["x-echo"] == "[REDACTED]"
    # without secrets, only the secret header names are hidden (as before)
    assert errors.public_headers({"x-api-key": "k", "x-n": "1"}) == {
        "x-api-key": "[REDACTED]", "x-n": "1"}


def test_public_headers_scrubs_a_json_escaped_echo() -> None:
    key = "abc/def+ghi/jkl=="
    headers = {"x-echo": '{"key": "abc\\/def+ghi\\/jkl=="}', "x-plain": key}
    out = errors.public_headers(headers, [key])
    assert out == {"x-echo": '{"key": "[REDACTED]"}', "x-plain": "[REDACTED]"}


def test_public_headers_does_no_regex_work_when_no_header_holds_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> str:
        raise AssertionError("redact() called on a header holding no secret")

    monkeypatch.setattr(errors, "redact", refuse)
    headers = {"x-request-id": "req_1", "content-type": "application/json",
               "authorization": "Bearer sk-whatever-123"}
    assert errors.public_headers(headers, (KEY, PLAIN_KEY)) == {
        "x-request-id": "req_1", "content-type": "application/json",
        "authorization": "[REDACTED]"}
    assert errors.public_headers(headers) == errors.public_headers(headers, ())


def test_secret_keys_in_body_redacted() -> None:
    body = {"headers": {"Authorization": "Bearer zzz", "x-api-key": "kkk"}, "n": 1, "ok": True}
    assert redact_body(body) == {
        "headers": {"Authorization": "[REDACTED]", "x-api-key": "[REDACTED]"},
        "n": 1,
        "ok": True,
    }


@pytest.mark.parametrize(
    "text",
    [
        "POST https://generativelanguage.googleapis.com/v1beta/models/g:generateContent?key={k}",
        "url ...:streamGenerateContent?alt=sse&key={k} failed",
        "GET /x?key={k}&other=1",
    ],
)
def test_key_query_value_redacted(text: str) -> None:
    secret = "notashapeatall_1234"
    exc = errors.APIError(text.format(k=secret))
    assert secret not in str(exc)
    assert "key=[REDACTED]" in str(exc)


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "The model `gpt-4o` does not exist; monkey=banana; sk-short"
    assert redact(text) == text


def test_short_or_empty_secrets_are_not_used() -> None:
    assert redact("a b c", ["", "a"]) == "a b c"


@given(st.text(max_size=40), st.text(max_size=40))
def test_configured_secret_never_survives(prefix: str, suffix: str) -> None:
    exc = errors.APIError(
        prefix + PLAIN_KEY + suffix, body=[suffix, PLAIN_KEY, prefix], secrets=[PLAIN_KEY]
    )
    _assert_clean(exc, PLAIN_KEY)


# ------------------------------------------------------------------ pickling


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_pickle_round_trip(cls: type[errors.APIError]) -> None:
    exc = cls(
        f"boom {KEY}",
        status_code=599,
        provider="anthropic",
        model="claude-3-5-haiku",
        request_id="req_9",
        body={"error": {"type": "overloaded_error"}},
        headers={"Retry-After": "3", "x-api-key": KEY},
        retry_after=3.0,
        secrets=[KEY],
    )
    copy = pickle.loads(pickle.dumps(exc))
    assert type(copy) is cls
    for attr in (
        "message",
        "status_code",
        "provider",
        "model",
        "request_id",
        "body",
        "headers",
        "retry_after",
    ):
        assert getattr(copy, attr) == getattr(exc, attr), attr
    assert str(copy) == str(exc)
    assert repr(copy) == repr(exc)
    _assert_clean(copy)


def test_pickle_keeps_default_status() -> None:
    copy = pickle.loads(pickle.dumps(errors.RateLimitError("x")))
    assert copy.status_code == 429


# ------------------------------------------------------------------ error_from_response

CFG = ProviderConfig(
    name="openai", api_base="https://api.openai.com/v1", api_key=KEY, key_var="OPENAI_API_KEY"
)


def from_response(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None, **kw: object
) -> errors.APIError:
    return error_from_response(
        status,
        headers or {},
        body,
        provider="openai",
        model="gpt-4o-mini",
        cfg=kw.pop("cfg", CFG),
        **kw,
    )  # type: ignore[arg-type]


def test_from_response_basic() -> None:
    body = json.dumps({"error": {"message": "slow down", "type": "requests"}}).encode()
    exc = from_response(
        429, body, {"x-request-id": "req_abc", "retry-after": "7"}, message="slow down"
    )
    assert type(exc) is errors.RateLimitError
    assert exc.status_code == 429
    assert exc.provider == "openai"
    assert exc.model == "gpt-4o-mini"
    assert exc.request_id == "req_abc"
    assert exc.retry_after == 7.0
    assert exc.body == {"error": {"message": "slow down", "type": "requests"}}
    assert exc.message == "slow down"
    assert exc.headers["x-request-id"] == "req_abc"


def test_from_response_request_id_fallback_header() -> None:
    assert from_response(500, headers={"request-id": "req_ant"}).request_id == "req_ant"


def test_from_response_request_id_behind_a_litellm_proxy() -> None:
    headers = {"x-litellm-call-id": "0b9e6c3a-call"}
    assert from_response(500, headers=headers).request_id == "0b9e6c3a-call"
    both = {"x-request-id": "req_upstream", "x-litellm-call-id": "0b9e6c3a-call"}
    assert from_response(429, headers=both).request_id == "req_upstream"


def test_from_response_retry_after_ms() -> None:
    assert from_response(429, headers={"retry-after-ms": "1500"}).retry_after == 1.5


def test_from_response_http_date_retry_after_uses_date_header() -> None:
    headers = {
        "retry-after": "Wed, 21 Oct 2015 07:28:30 GMT",
        "date": "Wed, 21 Oct 2015 07:28:00 GMT",
    }
    assert from_response(503, headers=headers).retry_after == 30.0


def test_from_response_no_retry_after() -> None:
    assert from_response(500).retry_after is None


@pytest.mark.parametrize(("status", "cls"), sorted(EXPECTED_BY_STATUS.items()))
def test_from_response_class_by_status(status: int, cls: type[errors.APIError]) -> None:
    assert type(from_response(status, b'{"error": {"message": "nope"}}', message="nope")) is cls


def test_from_response_structured_context_code_beats_text() -> None:
    exc = from_response(
        400, code="context_length_exceeded", message="flagged by the content policy"
    )
    assert type(exc) is errors.ContextWindowExceededError
    assert exc.status_code == 400


def test_from_response_structured_policy_code_beats_text() -> None:
    exc = from_response(
        400,
        code="content_policy_violation",
        message="This model's maximum context length is 8192 tokens",
    )
    assert type(exc) is errors.ContentPolicyViolationError


def test_from_response_structured_type_field() -> None:
    exc = from_response(400, err_type="context_length_exceeded", message="bad")
    assert type(exc) is errors.ContextWindowExceededError


def test_from_response_structured_code_is_case_insensitive() -> None:
    exc = from_response(400, code="Context_Length_Exceeded", message="bad")
    assert type(exc) is errors.ContextWindowExceededError


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 8192 tokens. However, you requested 9000.",
        "prompt is too long: 210000 tokens > 200000 maximum",
        "The input token count exceeds the maximum number of tokens allowed",
    ],
)
def test_from_response_context_window_from_message_text(message: str) -> None:
    assert type(from_response(400, message=message)) is errors.ContextWindowExceededError


def test_from_response_policy_from_message_text() -> None:
    exc = from_response(400, message="Your request was rejected by our safety system.")
    assert type(exc) is errors.ContentPolicyViolationError


def test_from_response_text_from_body_when_no_message() -> None:
    exc = from_response(400, b"maximum context length exceeded")
    assert type(exc) is errors.ContextWindowExceededError
    assert exc.body == "maximum context length exceeded"


def test_from_response_plain_bad_request() -> None:
    exc = from_response(400, message="Invalid value for 'temperature'")
    assert type(exc) is errors.BadRequestError


def test_from_response_413_refined() -> None:
    exc = from_response(413, message="request too large: too many tokens")
    assert type(exc) is errors.ContextWindowExceededError


def test_from_response_server_error_not_refined_by_text() -> None:
    exc = from_response(500, message="context window failure in the safety system")
    assert type(exc) is errors.InternalServerError


def test_from_response_empty_body() -> None:
    exc = from_response(502)
    assert type(exc) is errors.InternalServerError
    assert "502" in exc.message
    assert exc.body is None


def test_from_response_non_json_body_kept_as_text() -> None:
    exc = from_response(502, b"<html>Bad Gateway</html>")
    assert exc.body == "<html>Bad Gateway</html>"


DEEP = b"[" * 100_000 + b"]" * 100_000  # json.loads raises RecursionError on it


@pytest.mark.parametrize(
    ("status", "cls"),
    [(500, errors.InternalServerError), (429, errors.RateLimitError),
     (503, errors.ServiceUnavailableError), (400, errors.BadRequestError)],
)
def test_from_response_body_nested_too_deeply_keeps_its_status_class(
    status: int, cls: type[errors.APIError]
) -> None:
    body = b'{"echo": "' + KEY.encode() + b'", "x": ' + DEEP + b"}"
    exc = from_response(status, body)
    assert type(exc) is cls
    assert exc.status_code == status
    assert is_retryable(exc) is (status != 400)
    assert isinstance(exc.body, str) and len(exc.body) <= 2000
    assert exc.body.startswith('{"echo": "[REDACTED]", "x": [[[')
    assert KEY not in exc.message and KEY not in exc.body


@pytest.mark.parametrize("depth", [101, 500, 990])
def test_from_response_body_too_deep_to_redact_is_kept_as_text(depth: int) -> None:
    exc = from_response(500, b'{"a": ' * depth + b"1" + b"}" * depth)
    assert type(exc) is errors.InternalServerError
    assert isinstance(exc.body, str) and exc.body.startswith('{"a": {"a": ')
    shallow = from_response(500, b'{"a": ' * 100 + b"1" + b"}" * 100)
    assert isinstance(shallow.body, dict)


def test_json_helpers_on_a_body_nested_too_deeply() -> None:
    assert json_or_none(DEEP) is None
    with pytest.raises(errors.APIError, match="nested too deeply") as info:
        loads_json(DEEP, provider="openai", model="gpt-4o-mini", secrets=(KEY,))
    assert type(info.value) is errors.APIError
    assert info.value.body == "[" * 200


def test_from_response_authentication_hint_names_key_var() -> None:
    exc = from_response(401, message="Incorrect API key provided")
    assert type(exc) is errors.AuthenticationError
    assert "OPENAI_API_KEY" in exc.message
    assert "OPENAI_API_KEY" in str(exc)
    other = ProviderConfig(
        name="anthropic",
        api_base="https://api.anthropic.com",
        api_key="k" * 20,
        key_var="ANTHROPIC_API_KEY",
    )
    assert "ANTHROPIC_API_KEY" in from_response(401, cfg=other).message


@pytest.mark.parametrize("key_var", ["OPENAI_API_KEY", None])
def test_from_response_authentication_hint_for_a_custom_server(key_var: str | None) -> None:
    cfg = ProviderConfig(name="openai", api_base="http://localhost:4000/v1", key_var=key_var,
                         custom_base=True)
    exc = from_response(401, b'{"error": {"message": "Authentication Error"}}', cfg=cfg,
                        message="Authentication Error")
    assert type(exc) is errors.AuthenticationError
    assert "this server wants a key: pass api_key=" in exc.message
    if key_var is None:
        assert "set " not in exc.message
    else:
        assert exc.message.endswith("(this server wants a key: pass api_key= (or set "
                                    "OPENAI_API_KEY))")
    assert "check the API key" not in exc.message


def test_from_response_hint_without_key_var() -> None:
    cfg = ProviderConfig(name="x", api_base="http://example.test")
    assert "API key" in from_response(401, cfg=cfg).message


def test_from_response_scrubs_echoed_key() -> None:
    body = json.dumps(
        {"error": {"message": f"Incorrect API key provided: {KEY}", "code": "invalid_api_key"}}
    ).encode()
    headers = {"x-request-id": "req_1", "x-echo": KEY, "authorization": f"Bearer {KEY}"}
    exc = from_response(401, body, headers, message=f"Incorrect API key provided: {KEY}")
    _assert_clean(exc)
    exc = from_response(401, body, headers)  # message taken from the body text
    _assert_clean(exc)


def test_from_response_scrubs_unshaped_key() -> None:
    cfg = ProviderConfig(
        name="azure",
        api_base="https://r.openai.azure.com",
        api_key=PLAIN_KEY,
        key_var="AZURE_API_KEY",
    )
    body = f'{{"error": {{"message": "Access denied for key {PLAIN_KEY}"}}}}'.encode()
    exc = from_response(401, body, {"x-echo": PLAIN_KEY}, cfg=cfg)
    _assert_clean(exc, PLAIN_KEY)


@pytest.mark.parametrize("pad", [490, 1990])
def test_from_response_truncation_never_leaks_a_key_prefix(pad: int) -> None:
    cfg = ProviderConfig(
        name="azure",
        api_base="https://r.openai.azure.com",
        api_key=PLAIN_KEY,
        key_var="AZURE_API_KEY",
    )
    body = b"x" * pad + PLAIN_KEY.encode()  # not JSON: kept as (truncated) text
    exc = from_response(500, body, cfg=cfg)
    for text in (exc.message, str(exc.body)):
        assert PLAIN_KEY[:8] not in text


@pytest.mark.parametrize(("key", "echoed"), [
    ("abc&def<ghi>jkl", "abc\\u0026def\\u003cghi\\u003ejkl"),  # Go's JSON escaping
    ("k/ey+abc/def-1", "k\\/ey+abc\\/def-1"),  # an escaped slash
    ('q"uote12345', 'q\\"uote12345'),  # an escaped quote
    ("clé-secrète-42", "cl\\u00e9-secr\\u00e8te-42"),  # ASCII-only JSON
])
def test_a_key_echoed_json_escaped_is_scrubbed_from_the_message(key: str, echoed: str) -> None:
    cfg = ProviderConfig(name="custom", api_base="https://x", api_key=key, key_var="X_KEY")
    body = ('{"detail": "bad key ' + echoed + '"}').encode()
    exc = from_response(400, body, cfg=cfg)
    for text in (str(exc), repr(exc), exc.message):
        assert echoed not in text
        assert key not in text


# ------------------------------------------------------------------ the OpenAI SDK's names


STATUS_CLASSES = [c for c, status in DEFAULT_STATUS.items() if status is not None]


@pytest.mark.parametrize("cls", STATUS_CLASSES)
def test_api_status_error_catches_every_status_class(cls: type[errors.APIError]) -> None:
    with pytest.raises(errors.APIStatusError):
        raise cls("refused")
    assert issubclass(cls, errors.APIError)


@pytest.mark.parametrize("cls", [errors.APIConnectionError, errors.Timeout, errors.StreamError,
                                 errors.APIError])
def test_api_status_error_leaves_the_others(cls: type[errors.APIError]) -> None:
    assert not issubclass(cls, errors.APIStatusError)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 409, 418, 422, 429, 500, 503, 529])
def test_every_status_is_an_api_status_error(status: int) -> None:
    assert issubclass(errors.class_for_status(status), errors.APIStatusError)
    exc = from_response(status, b'{"error": {"message": "no"}}')
    assert isinstance(exc, errors.APIStatusError)
    assert exc.status_code == status


def test_api_timeout_error_is_timeout() -> None:
    assert errors.APITimeoutError is errors.Timeout
    exc = errors.APITimeoutError("slow")
    assert isinstance(exc, errors.APIConnectionError)
    assert isinstance(exc, TimeoutError)
    assert is_retryable(exc)
    assert pickle.loads(pickle.dumps(errors.APIStatusError("x", status_code=418))).status_code \
        == 418
