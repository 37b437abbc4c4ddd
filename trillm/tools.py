"""Running an assistant message's tool calls, concurrently: :func:`run_tool_calls`.

A model answers with several tool calls at once; :func:`run_tool_calls` runs
them all in one nursery (through :func:`trillm.gather`) and gives back the
``role: "tool"`` messages to send on, in the order of the calls.  Each call's
arguments, a JSON object in a string, are parsed and passed as keywords.

What the model sees when something goes wrong (the default,
``raise_errors=False``) is one line, ``"error: <ExceptionType>: <message>"``,
never a traceback: a tool that raised, an unknown tool name, arguments that are
not a JSON object, a keyword the tool does not take (a ``TypeError``), and a
tool that ran past *timeout* (``"error: timed out after N s"``).  With
``raise_errors=True`` those errors propagate instead, in an
:class:`ExceptionGroup` (``except* ValueError:`` works): calls that cannot run
at all (unknown name, bad arguments) are reported together before any tool
starts; a tool's own failure cancels the other tools, as :func:`trillm.gather`
does.  Only :class:`Exception` is ever turned into a message: the caller's
cancellation cancels every running tool and propagates, never converted.

Sync callables are called directly in their task (tool functions are usually
quick): one that blocks blocks the whole trio run, and *timeout* cannot stop
it.  Wrap a slow one yourself, ``async def f(**kw): return await
trio.to_thread.run_sync(functools.partial(slow, **kw))``.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import trio

from .concurrency import LimiterLike, gather, require_trio
from .types import Message

__all__ = ["run_tool_calls"]

#: One tool call, checked: its id, the function to call and its keywords, or
#: the error that stops it from running.
_Checked = tuple[str, str, Callable[..., Any] | None, dict[str, Any], Exception | None]


async def run_tool_calls(
    message: Message | Mapping[str, Any],
    functions: Mapping[str, Callable[..., Any]] | Sequence[Callable[..., Any]],
    *,
    limit: int | LimiterLike | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 - per tool: a caller's scope bounds them all
    raise_errors: bool = False,
) -> list[dict[str, str]]:
    """Run every tool call of *message* concurrently; the ``tool`` messages, in call order.

    *message* is the assistant's :class:`~trillm.Message` (or a dict with
    ``tool_calls``; none gives ``[]``).  *functions* maps tool names to async
    or sync callables, or is a sequence of callables named by their
    ``__name__``.  Each answer is ``{"role": "tool", "tool_call_id": id,
    "content": ...}``: a ``str`` result as is, anything else
    ``json.dumps(result, default=str)``.

    *limit* caps the tools running at once (an ``int`` or a
    :class:`trio.CapacityLimiter`, as for :func:`trillm.gather`); *timeout*
    (seconds) bounds each tool.  Errors become ``"error: ..."`` messages for the
    model unless *raise_errors* (module docs).
    """
    require_trio("run_tool_calls", "asyncio.TaskGroup over message.tool_calls")
    await trio.lowlevel.checkpoint()
    if timeout is not None and not (isinstance(timeout, int | float) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
    table = _function_table(functions)
    checked = [_check(call, table) for call in _tool_calls(message)]
    if raise_errors:
        problems = [error for *_, error in checked if error is not None]
        if problems:
            count = f"{len(problems)} of {len(checked)} tool calls"
            raise ExceptionGroup(f"{count} cannot run", problems)
    jobs = [functools.partial(_run, call, timeout, raise_errors) for call in checked]
    return await gather(*jobs, limit=limit)


def _function_table(
    functions: Mapping[str, Callable[..., Any]] | Sequence[Callable[..., Any]],
) -> Mapping[str, Callable[..., Any]]:
    given: object = functions  # checked at run time: a str is a Sequence too
    if isinstance(given, Mapping):
        table: Mapping[str, Any] = given
    elif isinstance(given, Sequence) and not isinstance(given, str | bytes):
        table = named = {}
        for fn in given:
            name = getattr(fn, "__name__", None)
            if not isinstance(name, str):
                raise TypeError(f"{fn!r} has no __name__: pass a mapping of tool names instead")
            if name in named:
                raise ValueError(f"two functions are named {name!r}: pass a mapping instead")
            named[name] = fn
    else:
        raise TypeError(f"functions must be a mapping of names or a sequence, not {functions!r}")
    for name, fn in table.items():
        if not callable(fn):
            raise TypeError(f"the tool {name!r} is {fn!r}, not a callable")
    return table


def _tool_calls(message: Message | Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    if not isinstance(message, Mapping):
        raise TypeError(f"message must be a trillm Message or a dict, not {message!r}")
    calls = message.get("tool_calls") or ()
    if not isinstance(calls, Sequence) or not all(isinstance(c, Mapping) for c in calls):
        raise TypeError(f"the message's tool_calls must be a list of tool calls, not {calls!r}")
    return calls


def _check(call: Mapping[str, Any], table: Mapping[str, Callable[..., Any]]) -> _Checked:
    """The call's id, name, function and keywords; or what stops it from running."""
    function = call.get("function") or {}
    call_id, name = str(call.get("id", "")), str(function.get("name", ""))
    fn = table.get(name)
    if fn is None:
        known = ", ".join(map(repr, table)) or "none"
        return call_id, name, None, {}, LookupError(f"unknown tool {name!r} (tools: {known})")
    arguments = function.get("arguments")
    if isinstance(arguments, Mapping):  # already parsed (some dict messages carry an object)
        return call_id, name, fn, dict(arguments), None
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return call_id, name, fn, {}, None  # no arguments at all: a tool without parameters
    try:
        kwargs = json.loads(arguments)
    except (TypeError, ValueError) as exc:
        return call_id, name, fn, {}, ValueError(f"arguments of {name!r} are not valid JSON: {exc}")
    if not isinstance(kwargs, dict):
        return call_id, name, fn, {}, ValueError(
            f"arguments of {name!r} must be a JSON object, not {type(kwargs).__name__}"
        )
    return call_id, name, fn, kwargs, None


async def _run(call: _Checked, time_limit: float | None, raise_errors: bool) -> dict[str, str]:
    call_id, name, fn, kwargs, error = call
    if error is not None or fn is None:  # (never with raise_errors: raised before any start)
        return _answer(call_id, _describe(error))
    try:
        with trio.move_on_after(math.inf if time_limit is None else time_limit):
            return _answer(call_id, await _call(fn, kwargs))
    except Exception as exc:  # Exception only: Cancelled and KeyboardInterrupt propagate
        if raise_errors:
            raise
        return _answer(call_id, _describe(exc))
    # Only our own scope lands here (PATTERNS.md, pitfall 5): the caller's
    # cancellation propagates through it.
    if raise_errors:
        raise TimeoutError(f"the tool {name!r} timed out after {time_limit:g} s")
    return _answer(call_id, f"error: timed out after {time_limit:g} s")


def _describe(error: BaseException | None) -> str:
    """What the model is told: the exception's type and message, never a traceback."""
    return f"error: {type(error).__name__}: {error}"


async def _call(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    result = fn(**kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def _answer(call_id: str, result: Any) -> dict[str, str]:
    content = result if isinstance(result, str) else json.dumps(result, default=str)
    return {"role": "tool", "tool_call_id": call_id, "content": content}
