"""A three-round tool loop against each provider, on the kit's FakeLLM (issue 12, section 2).

For OpenAI, Anthropic and Gemini, plain and streamed: round 1 the model asks for
three parallel tool calls, which ``trillm.run_tool_calls`` runs concurrently; round 2,
once it has their results, for one more; round 3 it answers in text.  The fake
answers the rounds in order (one rule, three verbs), with each provider's own call ids
(Gemini: none in round 1, so trillm derives them and resolves names; its own id and a
thought signature otherwise).  Each request's raw body is then read back into a
neutral transcript (which calls, which results, in which turns, in the provider's own
shape: Anthropic's ``tool_result`` blocks first in one user turn, Gemini's
``functionResponse`` names and ids, its ``thoughtSignature`` sent back) and compared
with what that round must hold.  In memory on virtual time, once more over loopback
(real sockets, real clock under ``trio.fail_after``), and through the sync API.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

import trillm
from trillm.testing import FakeLLM, FakeRequest
from trillm.types import ModelResponse

GUARD = 15.0
TOOL_SECONDS = 0.3  # each tool sleeps this long; three at once take about as long as one
MODELS = {
    "openai": "openai/gpt-4o",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
QUESTION = "Weather in Paris and Tokyo, the time, then Paris in Fahrenheit?"
FINAL = "Paris 18 C (64.4 F), Tokyo 12 C with rain; it is 12:00 UTC."
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "parameters": {
            "type": "object", "properties": {"zone": {"type": "string"}}}}},
    {"type": "function", "function": {
        "name": "to_fahrenheit", "parameters": {
            "type": "object", "properties": {"celsius": {"type": "number"}}}}},
]
#: The tool calls of rounds 1 and 2: (name, arguments).
ROUNDS: list[list[tuple[str, dict[str, Any]]]] = [
    [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Tokyo"}),
     ("get_time", {"zone": "UTC"})],
    [("to_fahrenheit", {"celsius": 18})],
]
#: The call ids each provider gives (Gemini: none in round 1, its own in round 2).
IDS: dict[str, list[list[str | None]]] = {
    "openai": [["call_Xj1pZ7NyAfW2", "call_Qm8RtKp3VbL9", "call_Hw4YcE6uTnD0"],
               ["call_Lr2GsUe5WkM7"]],
    "anthropic": [["toolu_01NRLabsLyVHZPKxbKvkfSMn", "toolu_018acGYLtfR52q9yDbWaEdQZ",
                   "toolu_01RXQDRjwv5Un7n98xFahjo8"], ["toolu_01EKqbqmZrGRXy18eN7m9kvY"]],
    "gemini": [[None, None, None], ["7c1f0e2a"]],
}
#: Gemini's thought signatures: on the first call of each round, as Gemini 3 sends them.
SIGNATURES = [["c2lnLXJvdW5kLTE=", None, None], ["c2lnLXJvdW5kLTI="]]
#: What the test's tools return, as the ``tool`` messages' content, per round.
RESULTS = [['{"city": "Paris", "temp_c": 18}', '{"city": "Tokyo", "temp_c": 12, "sky": "rain"}',
            "12:00 UTC"], ["64.4"]]


def scripted(provider: str, text: str | None, fake: FakeLLM | None = None) -> FakeLLM:
    """*fake* (a new one by default) scripted for the loop: round 1's calls (beside
    *text*), then round 2's call, then FINAL."""
    def calls(r: int) -> list[dict[str, Any]]:
        out = []
        for (name, args), call_id, sig in zip(ROUNDS[r], IDS[provider][r], SIGNATURES[r],
                                              strict=True):
            call: dict[str, Any] = {"name": name, "arguments": args, "id": call_id}
            if provider == "gemini" and sig:
                call["extra_content"] = {"google": {"thought_signature": sig}}
            out.append(call)
        return out

    fake = FakeLLM() if fake is None else fake
    fake.on(model=MODELS[provider]).reply(text, tool_calls=calls(0)).reply(
        tool_calls=calls(1)).reply(FINAL)
    return fake


# ------------------------------------------------------------------ requests read back


def _openai_transcript(body: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for m in body["messages"]:
        role = m.get("role")
        if role == "system":
            continue
        if role == "user":
            out.append(("user", m["content"]))
        elif role == "assistant":
            if m.get("content"):
                out.append(("assistant text", m["content"]))
            out.append(("calls", [(tc["id"], tc["function"]["name"],
                                   json.loads(tc["function"]["arguments"]))
                                  for tc in m.get("tool_calls") or ()]))
        elif role == "tool":
            if out and out[-1][0] == "results":
                out[-1][1].append((m["tool_call_id"], m["content"]))
            else:
                out.append(("results", [(m["tool_call_id"], m["content"])]))
        else:
            out.append(("unexpected role", role))
    return out


def _anthropic_transcript(body: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    roles = [t["role"] for t in body["messages"]]
    if any(a == b for a, b in itertools.pairwise(roles)):
        out.append(("roles do not alternate", roles))
    for turn in body["messages"]:
        content = turn["content"]
        if isinstance(content, str):
            out.append((turn["role"], content))
            continue
        if turn["role"] == "assistant":
            texts = [b["text"] for b in content if b["type"] == "text"]
            if texts:
                out.append(("assistant text", "".join(texts)))
            if content[:len(texts)] != [b for b in content if b["type"] == "text"]:
                out.append(("text after a tool_use block", content))
            out.append(("calls", [(b["id"], b["name"], b["input"])
                                  for b in content if b["type"] == "tool_use"]))
        else:
            results = [(b["tool_use_id"], b.get("content")) for b in content
                       if b["type"] == "tool_result"]
            if content[:len(results)] != [b for b in content if b["type"] == "tool_result"]:
                out.append(("tool_result blocks not first", content))
            out.append(("results", results))
            others = [b for b in content if b["type"] != "tool_result"]
            if others:
                out.append(("user", others))
    return out


def _gemini_transcript(body: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for turn in body["contents"]:
        parts = turn["parts"]
        calls = [(p["functionCall"], p.get("thoughtSignature")) for p in parts
                 if "functionCall" in p]
        answers = [p["functionResponse"] for p in parts if "functionResponse" in p]
        texts = [p["text"] for p in parts if "text" in p]
        if turn["role"] == "model":
            if texts:
                out.append(("assistant text", "".join(texts)))
            out.append(("calls", [(c.get("id"), c["name"], c["args"], sig)
                                  for c, sig in calls]))
        elif answers:
            out.append(("results", [(a.get("id"), a["name"], a["response"]) for a in answers]))
            if texts:
                out.append(("user", texts))
        else:
            out.append(("user", "".join(texts)))
    return out


_READ = {"openai": _openai_transcript, "anthropic": _anthropic_transcript,
         "gemini": _gemini_transcript}


def transcript(provider: str, request: FakeRequest) -> list[Any]:
    """The conversation *request* carried, read from its raw body in *provider*'s shape."""
    return _READ[provider](json.loads(request.body))


def expected(provider: str, rounds_done: int, text: str | None) -> list[Any]:
    """The transcript the request of round ``rounds_done + 1`` must hold."""
    out: list[Any] = [("user", QUESTION)]
    for r in range(rounds_done):
        ids = IDS[provider][r]
        if text and r == 0:
            out.append(("assistant text", text))
        if provider == "gemini":
            out.append(("calls", [(i, n, a, s) for i, (n, a), s in
                                  zip(ids, ROUNDS[r], SIGNATURES[r], strict=True)]))
            out.append(("results", [(i, n, _gemini_response(c)) for i, (n, _), c in
                                    zip(ids, ROUNDS[r], RESULTS[r], strict=True)]))
        else:
            out.append(("calls", [(i, n, a) for i, (n, a) in zip(ids, ROUNDS[r], strict=True)]))
            out.append(("results", list(zip(ids, RESULTS[r], strict=True))))
    return out


def _gemini_response(content: str) -> Any:
    """Gemini's ``response`` for a tool's content: the JSON object, else ``{"content": ...}``."""
    try:
        value = json.loads(content)
    except ValueError:
        return {"content": content}
    return value if isinstance(value, dict) else {"content": value}


def check_requests(fake: FakeLLM, provider: str, text: str | None, stream: bool) -> None:
    """Three requests, each streamed or not as asked, each holding what its round must."""
    assert len(fake.requests) == 3
    assert [r.stream for r in fake.requests] == [stream] * 3
    for k, request in enumerate(fake.requests):
        assert transcript(provider, request) == expected(provider, k, text), f"round {k + 1}"


# ------------------------------------------------------------------ the loop


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
                    virtual_time: bool) -> list[ModelResponse]:
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
        if len(message.tool_calls) > 1:  # concurrently: one tool's time, not three
            took = trio.current_time() - start
            assert took == TOOL_SECONDS if virtual_time else took < 2 * TOOL_SECONDS
        assert [r["content"] for r in results] == RESULTS[len(answers) - 1]
        messages += [message, *results]  # the Message record itself, as LiteLLM users do
    return answers


matrix = [
    pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"]),
    pytest.mark.parametrize("text", [None, "Let me look these up."], ids=["calls", "text+calls"]),
    pytest.mark.parametrize("provider", list(MODELS)),
]


def each(test: Callable[..., Any]) -> Callable[..., Any]:
    for mark in matrix:
        test = mark(test)
    return test


@each
async def test_three_round_tool_loop(provider: str, text: str | None, stream: bool,
                                     autojump_clock: trio.testing.MockClock) -> None:
    """In memory, on virtual time: the three round-1 tools take exactly one tool's time."""
    fake = scripted(provider, text)
    tools = Tools()
    async with trillm.Client(transport=fake.transport(), api_key="test-key",
                             max_retries=0) as client:
        answers = await tool_loop(client, MODELS[provider], tools, stream=stream,
                                  virtual_time=True)
        assert client.statistics().open_streams == 0
    check_requests(fake, provider, text, stream)
    check_answers(answers, tools, text)


@each
async def test_three_round_tool_loop_over_loopback(provider: str, text: str | None,
                                                   stream: bool) -> None:
    """The same over real sockets (the fake served on 127.0.0.1, the real clock)."""
    fake = scripted(provider, text)
    tools = Tools()
    with trio.fail_after(GUARD):
        async with fake.serve() as url:
            base = url + ("/v1" if provider == "openai" else "")
            async with trillm.Client(api_base=base, api_key="test-key", max_retries=0) as client:
                answers = await tool_loop(client, MODELS[provider], tools, stream=stream,
                                          virtual_time=False)
                assert client.statistics().open_streams == 0
    check_requests(fake, provider, text, stream)
    check_answers(answers, tools, text)


async def test_a_wrong_translation_is_seen(autojump_clock: trio.testing.MockClock) -> None:
    """The check is strict: results sent out of order do not pass for round 2."""
    fake = scripted("anthropic", None)
    async with trillm.Client(transport=fake.transport(), api_key="k", max_retries=0) as client:
        model = MODELS["anthropic"]
        messages: list[Any] = [{"role": "user", "content": QUESTION}]
        first = await client.acompletion(model, messages, tools=TOOLS)
        results = await trillm.run_tool_calls(first.choices[0].message, Tools().table())
        messages += [first.choices[0].message, *reversed(results)]
        await client.acompletion(model, messages, tools=TOOLS)
    sent = transcript("anthropic", fake.requests[1])
    want = expected("anthropic", 1, None)
    assert sent != want
    assert sent == [*want[:-1], ("results", want[-1][1][::-1])]


# ------------------------------------------------------------------ the sync API


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_three_round_tool_loop_through_the_sync_api(fake_llm: FakeLLM, stream: bool) -> None:
    """``trillm.completion`` outside any loop (the ``fake_llm`` fixture answers it); the tools
    run in a short ``trio.run`` each round."""
    scripted("gemini", "Checking.", fake_llm)
    tools = Tools()
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    answers = []
    for _ in range(len(ROUNDS) + 1):
        kw: dict[str, Any] = {"api_key": "k", "tools": TOOLS, "timeout": GUARD}
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
    check_requests(fake_llm, "gemini", "Checking.", stream)
    check_answers(answers, tools, "Checking.")
