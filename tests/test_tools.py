"""``trillm.run_tool_calls`` on the autojump MockClock: exact virtual times, no sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trio.testing

import trillm
from trillm import FunctionCall, Message, ToolCall, run_tool_calls
from trillm.testing import FakeLLM


def call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    """A tool call as a dict; *arguments* is JSON-encoded unless it is a string already."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def assistant(*calls: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": list(calls)}


def tool(call_id: str, content: str) -> dict[str, str]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


class Tools:
    """Tools that sleep, and a log of when each started, finished or was cancelled."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.cancelled: dict[str, float] = {}
        self.running = self.peak = 0

    async def weather(self, city: str, seconds: float = 1.0) -> dict[str, Any]:
        self.started[city] = trio.current_time()
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await trio.sleep(seconds)
            if city == "Atlantis":
                raise ValueError("bad city")
            return {"city": city, "celsius": 21}
        except trio.Cancelled:
            self.cancelled[city] = trio.current_time()
            raise
        finally:
            self.running -= 1
            self.finished[city] = trio.current_time()

    def functions(self) -> dict[str, Any]:
        return {"weather": self.weather}


def leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from leaves(exc)
        else:
            yield exc


# --- results --------------------------------------------------------------------------


async def test_calls_run_concurrently_and_answer_in_call_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tools = Tools()
    message = assistant(call("a", "weather", {"city": "Paris", "seconds": 3}),
                        call("b", "weather", {"city": "Oslo", "seconds": 1}))
    got = await run_tool_calls(message, tools.functions())
    assert got == [tool("a", '{"city": "Paris", "celsius": 21}'),
                   tool("b", '{"city": "Oslo", "celsius": 21}')]
    assert tools.started == {"Paris": 0.0, "Oslo": 0.0}
    assert tools.finished == {"Paris": 3.0, "Oslo": 1.0}
    assert trio.current_time() == 3.0


async def test_a_message_record_and_sync_callables_named_by_their_name() -> None:
    def add(a: int, b: int) -> int:
        return a + b

    def shout(text: str) -> str:
        return text.upper()

    message = Message(tool_calls=(
        ToolCall(id="c1", function=FunctionCall(name="add", arguments='{"a": 2, "b": 3}')),
        ToolCall(id="c2", function=FunctionCall(name="shout", arguments='{"text": "hi"}')),
    ))
    got = await run_tool_calls(message, [add, shout])
    assert got == [tool("c1", "5"), tool("c2", "HI")]  # a str as is, the rest JSON


async def test_results_that_json_cannot_encode_use_str() -> None:
    class Point:
        def __str__(self) -> str:
            return "Point(1, 2)"

    async def where() -> dict[str, Any]:
        return {"at": Point(), "none": None}

    async def nothing() -> None:
        return None

    got = await run_tool_calls(assistant(call("w", "where", ""), call("n", "nothing", "{}")),
                               {"where": where, "nothing": nothing})
    assert got == [tool("w", '{"at": "Point(1, 2)", "none": null}'), tool("n", "null")]


async def test_no_tool_calls_is_an_empty_list() -> None:
    assert await run_tool_calls(Message(content="just text"), {}) == []
    assert await run_tool_calls({"role": "assistant", "content": "hi"}, []) == []


async def test_arguments_already_parsed_are_passed_as_keywords() -> None:
    def echo(**kw: Any) -> dict[str, Any]:
        return kw

    message = assistant({"id": "x", "function": {"name": "echo", "arguments": {"k": [1]}}})
    assert await run_tool_calls(message, {"echo": echo}) == [tool("x", '{"k": [1]}')]


# --- errors for the model ----------------------------------------------------------------


async def test_errors_become_messages_for_the_model(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tools = Tools()

    def strict(n: int) -> int:
        return n

    message = assistant(
        call("1", "weather", {"city": "Atlantis"}),            # the tool raises
        call("2", "weather", {"city": "Rome"}),                # fine, not cancelled
        call("3", "nope", {}),                                 # unknown tool
        call("4", "weather", "{not json"),                     # arguments not JSON
        call("5", "weather", "[1, 2]"),                        # JSON, not an object
        call("6", "strict", {"m": 1}),                         # a keyword it does not take
    )
    got = await run_tool_calls(message, {**tools.functions(), "strict": strict})
    contents = [m["content"] for m in got]
    assert [m["tool_call_id"] for m in got] == ["1", "2", "3", "4", "5", "6"]
    assert contents[0] == "error: ValueError: bad city"
    assert contents[1] == '{"city": "Rome", "celsius": 21}'
    assert contents[2] == "error: LookupError: unknown tool 'nope' (tools: 'weather', 'strict')"
    assert contents[3].startswith("error: ValueError: arguments of 'weather' are not valid JSON")
    assert contents[4] == ("error: ValueError: arguments of 'weather' must be a JSON object, "
                           "not list")
    assert contents[5].startswith("error: TypeError: ") and "'m'" in contents[5]
    assert not any("Traceback" in c for c in contents)
    assert tools.cancelled == {}
    assert trio.current_time() == 1.0


async def test_timeout_per_tool_becomes_a_message(autojump_clock: trio.testing.MockClock) -> None:
    tools = Tools()
    message = assistant(call("slow", "weather", {"city": "Paris", "seconds": 5}),
                        call("quick", "weather", {"city": "Oslo", "seconds": 1.5}))
    got = await run_tool_calls(message, tools.functions(), timeout=2)
    assert got == [tool("slow", "error: timed out after 2 s"),
                   tool("quick", '{"city": "Oslo", "celsius": 21}')]
    assert tools.cancelled == {"Paris": 2.0}
    assert trio.current_time() == 2.0


# --- raise_errors --------------------------------------------------------------------------


async def test_raise_errors_propagates_a_tools_failure_and_cancels_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tools = Tools()
    message = assistant(call("1", "weather", {"city": "Atlantis", "seconds": 1}),
                        call("2", "weather", {"city": "Rome", "seconds": 5}))
    with pytest.RaisesGroup(Exception, flatten_subgroups=True) as info:
        await run_tool_calls(message, tools.functions(), raise_errors=True)
    assert [str(e) for e in leaves(info.value)] == ["bad city"]
    assert tools.cancelled == {"Rome": 1.0}
    assert trio.current_time() == 1.0


async def test_raise_errors_works_with_except_star() -> None:
    def broken() -> None:
        raise KeyError("gone")

    caught: list[BaseException] = []
    try:
        await run_tool_calls(assistant(call("1", "broken", "")), [broken], raise_errors=True)
    except* KeyError as group:
        caught += group.exceptions
    assert [type(e) for e in caught] == [KeyError]


async def test_raise_errors_reports_every_call_that_cannot_run_before_any_starts() -> None:
    tools = Tools()
    message = assistant(call("1", "weather", {"city": "Paris"}), call("2", "nope", {}),
                        call("3", "weather", "{bad"), call("4", "weather", "3"))
    with pytest.RaisesGroup(LookupError, ValueError, ValueError,
                            match="3 of 4 tool calls cannot run") as info:
        await run_tool_calls(message, tools.functions(), raise_errors=True)
    assert [type(e) for e in info.value.exceptions] == [LookupError, ValueError, ValueError]
    assert tools.started == {}


async def test_raise_errors_with_a_timeout_is_a_timeout_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tools = Tools()
    message = assistant(call("1", "weather", {"city": "Paris", "seconds": 5}))
    with pytest.RaisesGroup(TimeoutError, flatten_subgroups=True) as info:
        await run_tool_calls(message, tools.functions(), timeout=0.5, raise_errors=True)
    [exc] = leaves(info.value)
    assert isinstance(exc, TimeoutError)
    assert str(exc) == "the tool 'weather' timed out after 0.5 s"
    assert trio.current_time() == 0.5


# --- limit and cancellation -------------------------------------------------------------------


@pytest.mark.parametrize("limit", [2, "limiter"])
async def test_limit_caps_tools_running_at_once(
    autojump_clock: trio.testing.MockClock, limit: Any
) -> None:
    tools = Tools()
    if limit == "limiter":
        limit = trio.CapacityLimiter(2)
    cities = ["A", "B", "C", "D", "E"]
    message = assistant(*(call(c, "weather", {"city": c}) for c in cities))
    got = await run_tool_calls(message, tools.functions(), limit=limit)
    assert [m["tool_call_id"] for m in got] == cities
    assert tools.peak == 2
    assert tools.started == {"A": 0.0, "B": 0.0, "C": 1.0, "D": 1.0, "E": 2.0}
    assert trio.current_time() == 3.0


async def test_the_callers_cancellation_cancels_every_tool_and_propagates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tools = Tools()
    message = assistant(call("1", "weather", {"city": "Paris", "seconds": 5}),
                        call("2", "weather", {"city": "Oslo", "seconds": 9}))
    with trio.move_on_after(2) as scope:
        await run_tool_calls(message, tools.functions(), timeout=3)
    assert scope.cancelled_caught  # never turned into "error: ..." messages
    assert tools.cancelled == {"Paris": 2.0, "Oslo": 2.0}
    assert tools.running == 0


async def test_a_tools_own_fail_after_is_its_error_not_a_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def impatient() -> None:
        with trio.fail_after(1):
            await trio.sleep(2)

    got = await run_tool_calls(assistant(call("1", "impatient", "")), [impatient], timeout=10)
    assert got == [tool("1", "error: TooSlowError: ")]


# --- bad arguments of the caller's own (raised at once, never sent to the model) ---------------


async def test_bad_arguments_raise() -> None:
    async def f() -> None:
        pass

    with pytest.raises(ValueError, match="timeout"):
        await run_tool_calls(assistant(), [f], timeout=0)
    with pytest.raises(ValueError, match="limit"):
        await run_tool_calls(assistant(call("1", "f", "")), [f], limit=0)
    with pytest.raises(ValueError, match="two functions are named 'f'"):
        await run_tool_calls(assistant(), [f, f])
    with pytest.raises(TypeError, match="__name__"):
        await run_tool_calls(assistant(), [object()])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not a callable"):
        await run_tool_calls(assistant(), {"f": 3})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="mapping"):
        await run_tool_calls(assistant(), "f")
    with pytest.raises(TypeError, match="Message or a dict"):
        await run_tool_calls([call("1", "f", "")], [f])  # type: ignore[arg-type]


def test_under_asyncio_it_says_what_to_use_instead() -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match=r"trillm\.run_tool_calls\(\) runs under trio"):
            await run_tool_calls(assistant(), {})

    asyncio.run(main())


# --- a whole loop against a Client --------------------------------------------------------------


async def test_a_full_tool_loop_with_a_client(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM(strict=True)
    fake.on(model="gpt-4o-mini", when=lambda req: req.messages[-1]["role"] == "tool").reply(
        lambda req: " / ".join(m["content"] for m in req.messages if m["role"] == "tool"))
    fake.on(model="gpt-4o-mini").reply(tool_calls=[
        call("c0", "weather", {"city": "Paris", "seconds": 2}),
        call("c1", "weather", {"city": "Atlantis", "seconds": 1})])

    tools = Tools()
    messages: list[Any] = [{"role": "user", "content": "weather?"}]
    async with trillm.Client(transport=fake.transport(), api_key="sk-test") as client:
        for _ in range(3):
            r = await client.acompletion("gpt-4o-mini", messages)
            answer = r.choices[0].message
            if not answer.tool_calls:
                break
            messages.append(answer)
            messages += await run_tool_calls(answer, tools.functions())
    assert answer.content == '{"city": "Paris", "celsius": 21} / error: ValueError: bad city'
    assert trio.current_time() == 2.0  # both tools at once
    seen = [q.messages for q in fake.requests]
    assert len(seen) == 2
    assert [m["role"] for m in seen[1]] == ["user", "assistant", "tool", "tool"]
    assert seen[1][1]["tool_calls"][0]["id"] == "c0"
    assert [m["tool_call_id"] for m in seen[1][2:]] == ["c0", "c1"]
