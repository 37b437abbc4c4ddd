"""A call's options, settled once: the Client's defaults overridden by the call's keywords.

Pure functions, no I/O.  ``None`` inherits the Client's value and ``math.inf``
means no limit; anything else that is not a positive number is a
:class:`~trillm.errors.BadRequestError` raised before any traffic.  LiteLLM's
spellings ``num_retries`` and ``request_timeout`` are taken as aliases.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from . import errors
from ._records import record_repr
from .providers import openai
from .retry import RetryPolicy
from .types import ChatRequest, ModelResponse

if TYPE_CHECKING:
    from ._mock_wire import MockOptions
    from .hooks import Observer

__all__ = ["CallOptions", "ClientDefaults", "call_options", "check_messages", "retries",
           "seconds"]


@attrs.frozen(eq=False, repr=False)
class ClientDefaults:
    """What a Client was built with: every call starts from these.

    :meth:`plain_options` are the options of a call that overrides nothing.
    """

    __repr__ = record_repr

    timeout: float = 600.0
    deadline: float = math.inf
    idle_timeout: float | None = None  # None: the call's effective timeout
    max_retries: int = 2
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    api_key: str | None = attrs.field(default=None, repr=False)
    api_base: str | None = None
    headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)
    #: The Client's hooks and prices (None: neither, and the pipeline observes nothing).
    observer: Observer | None = None
    _plain: list[CallOptions] = attrs.field(factory=list, init=False, repr=False, eq=False)

    def plain_options(self) -> CallOptions:
        """The options of a call that overrides nothing (settled on first use, then kept)."""
        if not self._plain:
            self._plain.append(CallOptions(
                timeout=self.timeout, deadline=self.deadline,
                idle_timeout=self.timeout if self.idle_timeout is None else self.idle_timeout,
                max_retries=self.max_retries, retry=self.retry, api_key=self.api_key,
                api_base=self.api_base, headers=self.headers, observer=self.observer,
            ))
        return self._plain[0]


@attrs.frozen(eq=False, repr=False)
class CallOptions:
    """Everything one call needs besides its content, settled before anything is sent.

    ``timeout`` bounds one attempt, ``deadline`` the whole call (retries and
    fallbacks), ``idle_timeout`` each gap between stream events (the effective
    ``timeout`` unless given).  ``headers`` are the Client's, the call's and
    ``extra_headers`` merged, in that order.  ``mock`` holds the offline mock's
    knobs when the call set one (None otherwise): the mock answers ``mock/`` models,
    and any model when ``mock.response`` or ``mock.tool_calls`` is set.  ``observer``
    holds the hooks (the Client's, then the call's ``hooks=``) and prices; None when
    there are none.
    """

    __repr__ = record_repr

    timeout: float
    deadline: float
    idle_timeout: float
    max_retries: int
    retry: RetryPolicy
    api_key: str | None = attrs.field(default=None, repr=False)
    api_base: str | None = None
    api_version: str | None = None
    headers: Mapping[str, str] | None = attrs.field(default=None, repr=False)
    extra_body: Mapping[str, Any] | None = None
    mock: MockOptions | None = None
    observer: Observer | None = None


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


def call_options(
    client: ClientDefaults,
    params: dict[str, Any],
    *,
    timeout: Any = None,
    deadline: Any = None,
    idle_timeout: Any = None,
    max_retries: Any = None,
    retry: RetryPolicy | None = None,
    api_key: str | None = None,
    api_base: str | None = None,
    api_version: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra_headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    mock_response: Any = None,
    mock_latency: Any = None,
    mock_chunk_delay: Any = None,
    mock_tool_calls: Any = None,
) -> CallOptions:
    """The options of one call.  *params* (the provider parameters) loses the LiteLLM
    aliases and every None value, and its ``hooks`` (a list of hooks run after the
    Client's).  A call that overrides nothing gets the Client's own options, settled
    once."""
    if (timeout is None and deadline is None and idle_timeout is None and max_retries is None
            and retry is None and api_key is None and api_base is None and api_version is None
            and headers is None and extra_headers is None and extra_body is None
            and mock_response is None and mock_latency is None and mock_chunk_delay is None
            and mock_tool_calls is None
            and "num_retries" not in params and "request_timeout" not in params
            and "hooks" not in params):
        if None in params.values():
            for k in [k for k, v in params.items() if v is None]:
                del params[k]
        return client.plain_options()
    if "num_retries" in params:
        alias = params.pop("num_retries")
        max_retries = alias if max_retries is None else max_retries
    if "request_timeout" in params:
        alias = params.pop("request_timeout")
        timeout = alias if timeout is None else timeout
    observer = client.observer
    hooks = params.pop("hooks", None)
    if hooks:
        if not isinstance(hooks, list | tuple):
            raise errors.BadRequestError(f"hooks must be a list of hooks, not {hooks!r}")
        from .hooks import Observer  # only with hooks: keeps `import trillm` cheap

        try:
            observer = Observer(hooks) if observer is None else observer.with_hooks(hooks)
        except TypeError as exc:
            raise errors.BadRequestError(str(exc)) from None
    for k in [k for k, v in params.items() if v is None]:
        del params[k]
    limit = seconds("timeout", timeout, client.timeout)
    idle = client.idle_timeout if idle_timeout is None else idle_timeout
    merged = extra_headers
    if client.headers or headers:  # the Client's, then this call's, then extra_headers
        merged = {**(client.headers or {}), **(headers or {}), **(extra_headers or {})}
    return CallOptions(
        timeout=limit,
        deadline=seconds("deadline", deadline, client.deadline),
        idle_timeout=seconds("idle_timeout", idle, limit),
        max_retries=retries(max_retries, client.max_retries),
        retry=client.retry if retry is None else retry,
        api_key=api_key or client.api_key,
        api_base=client.api_base if api_base is None else api_base,
        api_version=api_version,
        headers=merged or None,
        extra_body=extra_body,
        mock=None if (mock_response is None and mock_latency is None
                          and mock_chunk_delay is None and mock_tool_calls is None)
        else _mock_options(mock_response, mock_latency, mock_chunk_delay, mock_tool_calls),
        observer=observer,
    )



def _mock_options(response: Any, latency: Any, chunk_delay: Any, tool_calls: Any) -> MockOptions:
    """The call's checked mock knobs (``providers/mock``, imported with the first mocked
    call)."""
    from .providers.mock import mock_options

    return mock_options(whole_response(response), latency, chunk_delay, tool_calls)


def whole_response(given: Any) -> Any:
    """A ``mock_response`` dict (a chat completion's JSON, as LiteLLM takes it) as the
    :class:`ModelResponse` an OpenAI server sending it would give, a choice without a
    ``finish_reason`` finishing as ``"tool_calls"`` or ``"stop"``; anything else as given."""
    if not isinstance(given, Mapping) or isinstance(given, ModelResponse):
        return given
    from .providers.mock import PROVIDER_NAME
    choices = given.get("choices")
    if not isinstance(choices, Sequence) or isinstance(choices, str) or not choices or not all(
            isinstance(c, Mapping) for c in choices):
        raise errors.BadRequestError(
            "a mock_response dict is a chat completion: {'choices': [{'message': {'role': "
            "'assistant', 'content': '...'}}], ...} (usage, id, model optional)",
            provider=PROVIDER_NAME)
    data = dict(given)
    data["choices"] = [{**c, "finish_reason": c.get("finish_reason") or (
        "tool_calls" if isinstance(c.get("message"), Mapping) and c["message"].get("tool_calls")
        else "stop")} for c in choices]
    try:
        body = json.dumps(data).encode()
        return openai.PROVIDER.parse_chat(body, ChatRequest(PROVIDER_NAME, "", ()))
    except (TypeError, ValueError, errors.APIError) as exc:
        raise errors.BadRequestError(f"mock_response is not a chat completion: {exc}",
                                     provider=PROVIDER_NAME) from exc


def check_messages(messages: Any) -> tuple[Mapping[str, Any], ...]:
    """The messages as a tuple, after checking each is a dict with a ``role``.

    A message that is a mapping but not a dict (an answer's ``Message`` record sent
    back in a tool loop, say) becomes plain JSON-able data, as a provider sends it.
    """
    if isinstance(messages, str) or not isinstance(messages, Sequence) or not messages:
        raise errors.BadRequestError(
            "messages must be a non-empty list of {'role': ..., 'content': ...} dicts"
        )
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise errors.BadRequestError(
                f"messages[{i}] must be a dict like {{'role': 'user', 'content': ...}}, "
                f"not {type(m).__name__}"
            )
        if "role" not in m:
            raise errors.BadRequestError(
                f"messages[{i}] has no 'role' (e.g. {{'role': 'user', 'content': ...}})"
            )
    if all(type(m) is dict for m in messages):  # the usual case: nothing to convert
        return tuple(messages)
    return tuple(m if type(m) is dict else _plain_message(m) for m in messages)


def _plain_message(message: Mapping[str, Any]) -> dict[str, Any]:
    to_dict = getattr(message, "to_dict", None)  # trillm's records: nested ones too
    return dict(to_dict()) if callable(to_dict) else dict(message)
