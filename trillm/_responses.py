"""The Responses API's side of the Client: a call's input and tools checked, its requests made.

:meth:`Client.aresponses <trillm.Client.aresponses>` hands over here, and the
pipeline does the rest as for every operation (routing, the provider step,
limits, retries before the first event, fallbacks).  Everything here happens
before any traffic: an input that is neither a string nor a list of input
items, or a tool in the chat completions form, is a ``BadRequestError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from . import errors
from ._call import RESPONSES, Call, Pipeline
from ._options import ClientDefaults, call_options
from .response_types import ResponsesRequest
from .structured import text_format_body

if TYPE_CHECKING:
    from ._response_stream import ResponseStream
    from .routing import Route

__all__ = ["ResponseStreamOpener", "check_input", "check_tools", "prepare_responses"]

#: The keywords of a call that are its options, not body fields.
_OPTIONS = ("timeout", "deadline", "idle_timeout", "max_retries", "retry", "api_key",
            "api_base", "api_version", "headers", "extra_headers", "extra_body",
            "mock_response", "mock_latency", "mock_chunk_delay")

_ITEM_HINT = ("{'role': 'user', 'content': '...'} or "
              "{'type': 'function_call_output', 'call_id': ..., 'output': '...'}")


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    to_dict = getattr(item, "to_dict", None)  # trillm's records (a Response's output items)
    return dict(to_dict()) if callable(to_dict) else dict(item)


def check_input(value: Any) -> str | tuple[dict[str, Any], ...]:
    """*value* as the request's ``input``: a non-empty string, or a non-empty list of input
    items (dicts, or records such as a previous Response's ``output`` items, as plain data)."""
    if isinstance(value, str):
        if not value:
            raise errors.BadRequestError("input must be a non-empty string or list of items")
        return value
    if not isinstance(value, Sequence) or isinstance(value, bytes | bytearray) or not value:
        raise errors.BadRequestError(
            f"input must be a string or a non-empty list of input items like {_ITEM_HINT}, "
            f"not {type(value).__name__}"
        )
    items = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise errors.BadRequestError(
                f"input[{i}] must be an input item like {_ITEM_HINT}, not {type(item).__name__}"
            )
        items.append(item if type(item) is dict else _plain(item))
    return tuple(items)


def check_tools(tools: Any) -> list[Any]:
    """*tools* checked: a list of dicts, a function tool in the flat Responses form."""
    if isinstance(tools, str | bytes) or not isinstance(tools, Sequence):
        raise errors.BadRequestError(f"tools must be a list of tools, not {type(tools).__name__}")
    for i, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise errors.BadRequestError(f"tools[{i}] must be a dict, not {type(tool).__name__}")
        if tool.get("type") != "function":
            continue  # web_search, file_search, mcp, ...: the server checks them
        name = tool.get("name")
        inner = tool.get("function")
        if name is None and isinstance(inner, Mapping):
            raise errors.BadRequestError(
                f"tools[{i}] is in the chat completions form ({{'type': 'function', "
                "'function': {...}}); the Responses API takes the flat form: "
                f"{{'type': 'function', 'name': {inner.get('name')!r}, 'description': ..., "
                "'parameters': {...}}"
            )
        if not isinstance(name, str) or not name:
            raise errors.BadRequestError(
                f"tools[{i}] is a function tool without a name: write {{'type': 'function', "
                "'name': 'get_weather', 'parameters': {...}}"
            )
    return [t if type(t) is dict else _plain(t) for t in tools]


def prepare_responses(
    pipeline: Pipeline, defaults: ClientDefaults, model: str, input: Any, *, stream: bool,
    named: dict[str, Any], kwargs: dict[str, Any],
) -> list[Call]:
    """Settle the options, check the input and tools, and prepare one call per model (the
    model, then its ``fallbacks``).  *named* are the Responses keywords of the signature
    (``text_format`` among them), *kwargs* every other keyword (options and body fields)."""
    params = dict(kwargs)
    options_kw = {k: params.pop(k) for k in _OPTIONS if k in params}
    fallbacks = params.pop("fallbacks", None)
    text_format = named.pop("text_format", None)
    params.update(named)
    options = call_options(defaults, params, **options_kw)  # drops None values
    if text_format is not None:  # its strict schema goes as text.format; it parses the answer
        params["text"] = text_format_body(text_format, params.get("text"))
    items = check_input(input)
    if "tools" in params:
        params["tools"] = check_tools(params["tools"])

    def request(route: Route, provider: Any) -> list[ResponsesRequest]:
        return [ResponsesRequest(route.provider, route.model, items, stream, params,
                                 options.extra_body, options.headers, text_format)]

    kind = "responses" if stream else None
    calls = []
    for m in [model, *(fallbacks or ())]:  # every model checked before any is asked
        calls += pipeline.prepare(RESPONSES, m, options, request, stream=kind)
    return calls


class ResponseStreamOpener:
    """What ``responses_stream(...)`` returns: ``async with`` it to get an open
    :class:`~trillm.ResponseStream`, closed when the block is left, however it is left."""

    __slots__ = ("_client", "_input", "_kwargs", "_model", "_name", "_stream")

    def __init__(self, client: Callable[[], Any], model: str, input: Any,
                 kwargs: dict[str, Any], *, name: str = "client") -> None:
        self._client = client  # how to get the Client (the default one, for trillm's)
        self._model = model
        self._input = input
        self._kwargs = kwargs
        self._name = name
        self._stream: ResponseStream | None = None

    async def __aenter__(self) -> ResponseStream:
        if self._stream is not None:
            raise RuntimeError("this responses_stream() block was already entered")
        stream: ResponseStream = await self._client().aresponses(
            self._model, self._input, stream=True, **self._kwargs)
        self._stream = stream
        return stream

    async def __aexit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            await self._stream.__aexit__(*exc_info)  # noqa: ASYNC102 - shielded, time-limited

    def _misuse(self, what: str) -> TypeError:
        return TypeError(
            f"{self._name}.responses_stream(...) {what}: write `async with "
            f"{self._name}.responses_stream(...) as s: async for event in s: ...`, or "
            f"`s = await {self._name}.aresponses(..., stream=True)`")

    # Wrong ways to use it, each a TypeError that shows the right one (at run time only:
    # to a type checker these stay what they are, errors).
    if not TYPE_CHECKING:

        def __aiter__(self) -> NoReturn:
            raise self._misuse("opens the stream only in `async with`")

        def __await__(self) -> NoReturn:
            raise self._misuse("cannot be awaited")
