"""A three-round tool loop against each provider's fake server on 127.0.0.1 (issue 12, section 2).

Real sockets and the real clock under ``trio.fail_after`` (never the autojump
clock).  For OpenAI (an OpenAI-compatible base through ``api_base``), Anthropic and
Gemini, plain and streamed: round 1 the model asks for three parallel tool calls,
which ``trillm.run_tool_calls`` runs concurrently; round 2 the server checks the
translated request (tool results in the provider's own shape, in order, ids
matched) and asks for one more call; round 3 it checks again and answers text
(:mod:`tests.toolloop_script`).  Once more through the sync API in a plain thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

import trillm
from tests.fakeserver import FakeServer, open_fake_server, threaded_fake_server
from tests.toolloop_script import FINAL, QUESTION, ROUNDS, TOOLS, ScriptedModel, expected_results
from trillm.types import ModelResponse

GUARD = 15.0
TOOL_SECONDS = 0.3  # each tool sleeps this long; three at once take about as long as one
MODELS = {
    "openai": "openai/gpt-4o",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}


class Tools:
    """The loop's tools: each sleeps, and the most running at once is kept."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def _enter(self, name: str, kwargs: dict[str, Any]) -> None:
        self.calls.append((name, kwargs))
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await trio.sleep(TOOL_SECONDS)
        finally:
            self.running -= 1

    async def get_weather(self, city: str) -> dict[str, Any]:
        await self._enter("get_weather", {"city": city})
        return {"Paris": {"city": "Paris", "temp_c": 18},
                "Tokyo": {"city": "Tokyo", "temp_c": 12, "sky": "rain"}}[city]

    async def get_time(self, zone: str) -> str:
        await self._enter("get_time", {"zone": zone})
        return f"12:00 {zone}"

    def to_fahrenheit(self, celsius: float) -> float:  # a sync tool, called directly
        self.calls.append(("to_fahrenheit", {"celsius": celsius}))
        return round(celsius * 9 / 5 + 32, 1)

    def table(self) -> dict[str, Callable[..., Any]]:
        return {"get_weather": self.get_weather, "get_time": self.get_time,
                "to_fahrenheit": self.to_fahrenheit}


def check_answers(answers: list[ModelResponse], tools: Tools, text: str | None) -> None:
    first, second, last = (a.choices[0] for a in answers)
    assert first.finish_reason == second.finish_reason == "tool_calls"
    assert first.message.content == text
    assert [(tc.function.name, tc.function.arguments) for tc in first.message.tool_calls or ()
            ] == [(n, json.dumps(a)) for n, a in ROUNDS[0]]
    assert len(second.message.tool_calls or ()) == 1
    assert last.finish_reason == "stop" and last.message.content == FINAL
    assert last.message.tool_calls is None
    # The round-1 tools start in any order (they run at once); each ran once.
    assert sorted(map(repr, tools.calls[:3])) == sorted(map(repr, ROUNDS[0]))
    assert tools.calls[3:] == ROUNDS[1]
    assert tools.most == 3  # the three round-1 tools ran at once


async def tool_loop(client: trillm.Client, model: str, tools: Tools, *, stream: bool,
                    ) -> list[ModelResponse]:
    """The loop as a user writes it: ask, run the tools concurrently, send the results."""
    messages: list[Any] = [{"role": "system", "content": "Use the tools."},
                           {"role": "user", "content": QUESTION}]
    answers = []
    for _ in range(len(ROUNDS) + 1):
        if stream:
            async with client.stream(model, messages, tools=TOOLS) as s:
                answer = await s.final_response()
        else:
            answer = await client.acompletion(model, messages, tools=TOOLS)
        answers.append(answer)
        message = answer.choices[0].message
        if not message.tool_calls:
            break
        start = trio.current_time()
        results = await trillm.run_tool_calls(message, tools.table())
        if len(message.tool_calls) > 1:  # concurrently: about one tool's time, not three
            assert trio.current_time() - start < 2 * TOOL_SECONDS
        assert [r["content"] for r in results] == expected_results()[len(answers) - 1]
        messages += [message, *results]  # the Message record itself, as LiteLLM users do
    return answers


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("text", [None, "Let me look these up."], ids=["calls", "text+calls"])
@pytest.mark.parametrize("provider", list(MODELS))
async def test_three_round_tool_loop(provider: str, text: str | None, stream: bool) -> None:
    script = ScriptedModel(provider, text)
    tools = Tools()
    with trio.fail_after(GUARD):
        async with open_fake_server(script) as server:
            base = server.base_url + ("/v1" if provider == "openai" else "")
            async with trillm.Client(api_base=base, api_key="test-key", max_retries=0) as client:
                answers = await tool_loop(client, MODELS[provider], tools, stream=stream)
                assert client.statistics().open_streams == 0
    assert script.problems == []
    assert script.streamed == [stream] * 3
    assert len(server.requests) == 3
    check_answers(answers, tools, text)


async def test_a_wrong_translation_fails_loudly() -> None:
    """The script is strict: a request whose results are out of order is answered 400,
    which the Client raises, and the problem is kept for the test to show."""
    script = ScriptedModel("anthropic")
    with trio.fail_after(GUARD):
        async with open_fake_server(script) as server, \
                trillm.Client(api_base=server.base_url, api_key="k", max_retries=0) as client:
            model = MODELS["anthropic"]
            messages: list[Any] = [{"role": "user", "content": QUESTION}]
            first = await client.acompletion(model, messages, tools=TOOLS)
            results = await trillm.run_tool_calls(first.choices[0].message, Tools().table())
            messages += [first.choices[0].message, *reversed(results)]
            with pytest.raises(trillm.errors.BadRequestError, match="round 2"):
                await client.acompletion(model, messages, tools=TOOLS)
    assert len(script.problems) == 1


# ------------------------------------------------------------------ the sync API


@pytest.fixture
def scripted_server() -> Iterator[tuple[FakeServer, ScriptedModel]]:
    """A fake Gemini server in its own thread (its own trio run), for plain-``def`` tests."""
    script = ScriptedModel("gemini", "Checking.")
    with threaded_fake_server(script, GUARD) as server:
        yield server, script


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_three_round_tool_loop_through_the_sync_api(
    scripted_server: tuple[FakeServer, ScriptedModel], stream: bool,
) -> None:
    """``trillm.completion`` outside any loop; the tools run in a short ``trio.run`` each round."""
    server, script = scripted_server
    tools = Tools()
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    answers = []
    for _ in range(len(ROUNDS) + 1):
        kw: dict[str, Any] = {"api_base": server.base_url, "api_key": "k", "tools": TOOLS,
                              "timeout": GUARD}
        if stream:
            with trillm.completion(MODELS["gemini"], messages, stream=True, **kw) as s:
                answer = s.final_response()
        else:
            answer = trillm.completion(MODELS["gemini"], messages, **kw)
        answers.append(answer)
        message = answer.choices[0].message
        if not message.tool_calls:
            break
        messages += [message, *trio.run(trillm.run_tool_calls, message, tools.table())]
    assert script.problems == []
    assert script.streamed == [stream] * 3
    check_answers(answers, tools, "Checking.")
