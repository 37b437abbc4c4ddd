"""A scripted three-round tool loop, as each provider's server speaks it (for real-socket tests).

Round 1 the model asks for three parallel tool calls; round 2, once it has their
results, for one more; round 3 it answers in text.  :class:`ScriptedModel` is a
:mod:`tests.fakeserver` handler for one provider (``openai``, ``anthropic`` or
``gemini``): at each round it reads the request the Client sent, turns the
conversation back into a neutral transcript (which tool calls, which results, in
which turns) and compares it with what that round must hold.  A request that is
wrong is answered HTTP 400 with the differences, which the Client raises as a
``BadRequestError``; the differences are also kept in ``problems`` so the test can
assert on them.  Answers are plain JSON or SSE streams, as the request asked.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import attrs

from tests.fakeserver import Reply, Request

__all__ = ["FINAL", "QUESTION", "ROUNDS", "TOOLS", "ScriptedModel", "expected_results"]

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
#: The call ids each provider's server gives (Gemini: none in round 1, so trillm
#: makes them up and resolves names; its own in round 2).
IDS = {
    "openai": [["call_Xj1pZ7NyAfW2", "call_Qm8RtKp3VbL9", "call_Hw4YcE6uTnD0"],
               ["call_Lr2GsUe5WkM7"]],
    "anthropic": [["toolu_01NRLabsLyVHZPKxbKvkfSMn", "toolu_018acGYLtfR52q9yDbWaEdQZ",
                   "toolu_01RXQDRjwv5Un7n98xFahjo8"], ["toolu_01EKqbqmZrGRXy18eN7m9kvY"]],
    "gemini": [[None, None, None], ["7c1f0e2a"]],
}


def expected_results() -> list[list[str]]:
    """What the test's tools return, as the ``tool`` messages' content, per round."""
    return [['{"city": "Paris", "temp_c": 18}', '{"city": "Tokyo", "temp_c": 12, "sky": "rain"}',
             "12:00 UTC"], ["64.4"]]


def _sse(events: list[tuple[str | None, dict[str, Any]]], done: bool = False) -> list[bytes]:
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {json.dumps(data)}\n\n".encode())
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


# ------------------------------------------------------------------ answers


def _openai(calls: list[tuple[str | None, str, dict[str, Any]]], text: str | None,
            stream: bool) -> Reply:
    head = {"id": "chatcmpl-loop", "created": 1739120462, "model": "gpt-4o-2024-08-06"}
    finish = "tool_calls" if calls else "stop"
    if not stream:
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        if calls:
            message["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                for i, n, a in calls]
        return Reply.json({**head, "object": "chat.completion", "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": 90, "completion_tokens": 40, "total_tokens": 130}})
    head["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], reason: str | None = None) -> tuple[None, dict[str, Any]]:
        return None, {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                           "finish_reason": reason}]}

    events = [chunk({"role": "assistant", "content": None})]
    if text:
        events += [chunk({"content": text[:9]}), chunk({"content": text[9:]})]
    for k, (i, n, _) in enumerate(calls):  # starts first, then the arguments interleaved
        events.append(chunk({"tool_calls": [{"index": k, "id": i, "type": "function",
                                             "function": {"name": n, "arguments": ""}}]}))
    pieces = [json.dumps(a) for _, _, a in calls]
    for half in (0, 1):
        for k, piece in enumerate(pieces):
            part = piece[:6] if half == 0 else piece[6:]
            events.append(chunk({"tool_calls": [{"index": k, "function": {"arguments": part}}]}))
    events.append(chunk({}, finish))
    return Reply.sse(_sse(events, done=True))


def _anthropic(calls: list[tuple[str | None, str, dict[str, Any]]], text: str | None,
               stream: bool) -> Reply:
    reason = "tool_use" if calls else "end_turn"
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    blocks += [{"type": "tool_use", "id": i, "name": n, "input": a, "caller": {"type": "direct"}}
               for i, n, a in calls]
    usage = {"input_tokens": 656, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0, "output_tokens": 74}
    message = {"model": "claude-haiku-4-5-20251001", "id": "msg_01Loop", "type": "message",
               "role": "assistant", "content": blocks, "stop_reason": reason,
               "stop_sequence": None, "usage": usage}
    if not stream:
        return Reply.json(message)

    def ev(kind: str, **data: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, **data}

    events = [ev("message_start", message={**message, "content": [], "stop_reason": None,
                                           "usage": {**usage, "output_tokens": 1}}),
              ev("ping")]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            events += [
                ev("content_block_start", index=index, content_block={"type": "text", "text": ""}),
                ev("content_block_delta", index=index,
                   delta={"type": "text_delta", "text": text[:9] if text else ""}),
                ev("content_block_delta", index=index,
                   delta={"type": "text_delta", "text": text[9:] if text else ""}),
            ]
        else:
            raw = json.dumps(block["input"])
            events += [
                ev("content_block_start", index=index,
                   content_block={**block, "input": {}}),
                ev("content_block_delta", index=index,
                   delta={"type": "input_json_delta", "partial_json": ""}),
                ev("content_block_delta", index=index,
                   delta={"type": "input_json_delta", "partial_json": raw[:5]}),
                ev("content_block_delta", index=index,
                   delta={"type": "input_json_delta", "partial_json": raw[5:]}),
            ]
        events.append(ev("content_block_stop", index=index))
    events += [ev("message_delta", delta={"stop_reason": reason, "stop_sequence": None},
                  usage={"output_tokens": 74}),
               ev("message_stop")]
    return Reply.sse(_sse(events))


def _gemini(calls: list[tuple[str | None, str, dict[str, Any]]], text: str | None,
            stream: bool) -> Reply:
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    for i, n, a in calls:
        call: dict[str, Any] = {"name": n, "args": a}
        if i is not None:
            call["id"] = i
        parts.append({"functionCall": call})

    def body(some: list[dict[str, Any]], last: bool) -> dict[str, Any]:
        cand: dict[str, Any] = {"content": {"parts": some, "role": "model"}, "index": 0}
        usage: dict[str, Any] = {"promptTokenCount": 90, "totalTokenCount": 90}
        if last:
            cand["finishReason"] = "STOP"
            usage = {"promptTokenCount": 90, "candidatesTokenCount": 40, "totalTokenCount": 130}
        return {"candidates": [cand], "usageMetadata": usage,
                "modelVersion": "gemini-2.5-flash", "responseId": "loop-resp"}

    if not stream:
        return Reply.json(body(parts, True))
    # Text first, then the first call alone, then the other calls in one event.
    text_parts, call_parts = parts[:len(parts) - len(calls)], parts[len(parts) - len(calls):]
    groups = [g for g in (text_parts, call_parts[:1], call_parts[1:]) if g]
    return Reply.sse(_sse([(None, body(g, k == len(groups) - 1)) for k, g in enumerate(groups)]))


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
        calls = [p["functionCall"] for p in parts if "functionCall" in p]
        answers = [p["functionResponse"] for p in parts if "functionResponse" in p]
        texts = [p["text"] for p in parts if "text" in p]
        if turn["role"] == "model":
            if texts:
                out.append(("assistant text", "".join(texts)))
            out.append(("calls", [(c.get("id"), c["name"], c["args"]) for c in calls]))
        elif answers:
            out.append(("results", [(a.get("id"), a["name"], a["response"]) for a in answers]))
            if texts:
                out.append(("user", texts))
        else:
            out.append(("user", "".join(texts)))
    return out


def _expected(provider: str, rounds_done: int, text: str | None) -> list[Any]:
    """The transcript the request of round ``rounds_done + 1`` must hold."""
    out: list[Any] = [("user", QUESTION)]
    results = expected_results()
    for r in range(rounds_done):
        ids = IDS[provider][r]
        if text and r == 0 and provider != "openai":
            out.append(("assistant text", text))
        if provider == "gemini":
            out.append(("calls", [(i, n, a) for i, (n, a) in zip(ids, ROUNDS[r], strict=True)]))
            out.append(("results", [(i, n, _gemini_response(c)) for i, (n, _), c in
                                    zip(ids, ROUNDS[r], results[r], strict=True)]))
        else:
            out.append(("calls", [(i, n, a) for i, (n, a) in zip(ids, ROUNDS[r], strict=True)]))
            out.append(("results", list(zip(ids, results[r], strict=True))))
    return out


def _gemini_response(content: str) -> Any:
    """Gemini's ``response`` for a tool's content: the JSON object, else ``{"content": ...}``."""
    try:
        value = json.loads(content)
    except ValueError:
        return {"content": content}
    return value if isinstance(value, dict) else {"content": value}


_ANSWER = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini}
_READ = {"openai": _openai_transcript, "anthropic": _anthropic_transcript,
         "gemini": _gemini_transcript}


@attrs.define
class ScriptedModel:
    """The fake server's handler: three rounds of one provider's tool loop.

    *text* is what the assistant says beside its round-1 tool calls (OpenAI's plain
    answers drop it from the transcript check: OpenAI keeps an assistant's content as
    it is, so it is checked as sent instead)."""

    provider: str
    text: str | None = None
    round: int = 0
    problems: list[str] = attrs.field(factory=list)
    streamed: list[bool] = attrs.field(factory=list)

    def __call__(self, request: Request) -> Reply:
        body = request.json()
        stream = bool(body.get("stream")) or "streamGenerateContent" in request.path
        self.streamed.append(stream)
        got, want = _READ[self.provider](body), _expected(self.provider, self.round, self.text)
        if self.provider == "openai" and self.text and self.round:
            sent = [m.get("content") for m in body["messages"] if m["role"] == "assistant"]
            if sent[0] != self.text:
                self.problems.append(f"round {self.round + 1}: assistant content {sent[0]!r}")
        if got != want:
            problem = f"round {self.round + 1}: the request holds\n  {got!r}\nnot\n  {want!r}"
            self.problems.append(problem)
            return Reply.json({"error": {"message": problem, "type": "invalid_request_error"},
                               "type": "error"}, status=400)
        if self.round >= len(ROUNDS) + 1:
            self.problems.append(f"a request after the last round: {body!r}"[:300])
            return Reply.json({"error": {"message": "no round left"}}, status=400)
        calls = []
        if self.round < len(ROUNDS):
            ids = IDS[self.provider][self.round]
            calls = [(i, n, a) for i, (n, a) in zip(ids, ROUNDS[self.round], strict=True)]
        text = FINAL if self.round == len(ROUNDS) else (self.text if self.round == 0 else None)
        self.round += 1
        return _ANSWER[self.provider](calls, text, stream)
