"""Parallel tool calls through every provider's translation, both ways (issue 12, section 2).

Pure function calls on recorded-style payloads (the shapes of the official SDKs'
recordings in /work/shared/conformance-fixtures/ and tests/fixtures/): an answer with
three parallel tool calls parses into OpenAI-shape ``message.tool_calls``, plain and
streamed alike (the accumulated stream equals the plain answer), and the follow-up
request built from ``[..., that assistant message, tool 1, tool 2, tool 3]`` has the
provider's native shape: Anthropic's ``tool_result`` blocks in one user turn, Gemini's
``functionResponse`` parts in one user turn, OpenAI's messages unchanged.  The
assistant message is sent back as the ``Message`` record the parser gave, as a tool
loop does, so ``check_messages`` (what every Client call runs) converts it first.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from trillm._options import check_messages
from trillm.accumulate import stream_chunk_builder
from trillm.providers import anthropic, gemini, openai
from trillm.providers.base import ProviderConfig
from trillm.sse import SSEDecoder
from trillm.types import ChatRequest, FunctionCall, Message, ModelResponse, StreamChunk, ToolCall

ASK = [{"role": "system", "content": "Use the tools."},
       {"role": "user", "content": "Weather in Paris and Tokyo, and the time?"}]
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {
        "type": "object", "properties": {}}}},
]
#: The three calls every answer below asks for: (name, arguments).
CALLS = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Tokyo"}),
         ("get_time", {})]
#: What the tools said, in call order: a JSON object, plain text, and an error line
#: as run_tool_calls writes it.
RESULTS = ['{"temp_c": 18, "sky": "clear"}', "rain, 12 degrees",
           "error: LookupError: no clock"]


def cfg(name: str) -> ProviderConfig:
    return ProviderConfig(name=name, api_base="https://api.example", api_key="k")


def sse_events(raw: bytes) -> list[Any]:
    dec = SSEDecoder()
    return dec.feed(raw) + dec.close()


def sse(events: list[tuple[str | None, dict[str, Any]]]) -> bytes:
    out = b""
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out += f"{head}data: {json.dumps(data)}\n\n".encode()
    return out


def streamed(provider: Any, raw: bytes, req: ChatRequest) -> list[StreamChunk]:
    parser = provider.stream_parser(req, cfg(req.provider))
    chunks = [c for e in sse_events(raw) if (c := parser.feed(e)) is not None]
    assert parser.done
    return chunks


def follow_up(provider: Any, name: str, answer: ModelResponse,
              results: list[str] = RESULTS, then: list[dict[str, Any]] | None = None,
              ) -> dict[str, Any]:
    """The body of the next request: the answer's Message record, then one tool message
    per call (in call order), then *then*."""
    message = answer.choices[0].message
    tools = [{"role": "tool", "tool_call_id": tc.id, "content": r}
             for tc, r in zip(message.tool_calls or (), results, strict=True)]
    messages = check_messages([*ASK, message, *tools, *(then or [])])
    req = ChatRequest(name, "m", messages, params={"tools": TOOLS})
    body = provider.build_chat(req, cfg(name)).json
    assert isinstance(body, dict)
    return body


def assert_calls(message: Message, ids: list[str]) -> None:
    assert message.tool_calls is not None
    assert [tc.id for tc in message.tool_calls] == ids
    assert [(tc.function.name, json.loads(tc.function.arguments))
            for tc in message.tool_calls] == CALLS
    assert all(tc.type == "function" for tc in message.tool_calls)


# ------------------------------------------------------------------ OpenAI

OPENAI_IDS = ["call_Xj1pZ7NyAfW2", "call_Qm8RtKp3VbL9", "call_Hw4YcE6uTnD0"]


def openai_answer() -> dict[str, Any]:
    return {
        "id": "chatcmpl-AyPNinnUqUDYo9SAdA52NobMflmj2", "object": "chat.completion",
        "created": 1739120462, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": None,
                     "message": {"role": "assistant", "content": None, "refusal": None,
                                 "annotations": [], "tool_calls": [
                                     {"id": i, "type": "function",
                                      "function": {"name": n, "arguments": json.dumps(a)}}
                                     for i, (n, a) in zip(OPENAI_IDS, CALLS, strict=True)]}}],
        "usage": {"prompt_tokens": 80, "completion_tokens": 60, "total_tokens": 140},
        "system_fingerprint": "fp_f9f4fb6dbf",
    }


def openai_events(*, interleaved: bool) -> bytes:
    head = {"id": "chatcmpl-AyPNinnUqUDYo9SAdA52NobMflmj2", "object": "chat.completion.chunk",
            "created": 1739120462, "model": "gpt-4o-2024-08-06",
            "system_fingerprint": "fp_f9f4fb6dbf"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[None, dict[str, Any]]:
        return None, {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                           "finish_reason": finish}]}

    def tool(i: int, **f: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": i, **f}]}

    starts = [chunk(tool(i, id=OPENAI_IDS[i], type="function",
                         function={"name": CALLS[i][0], "arguments": ""}))
              for i in range(3)]
    pieces = []  # each call's arguments in two fragments
    for i, (_, args) in enumerate(CALLS):
        text = json.dumps(args)
        pieces.append([chunk(tool(i, function={"arguments": text[:5]})),
                       chunk(tool(i, function={"arguments": text[5:]}))])
    events = [chunk({"role": "assistant", "content": None, "refusal": None})]
    if interleaved:  # starts first, then fragments round-robin: index 0, 1, 2, 0, 1, 2
        events += starts + [p[k] for k in range(2) for p in pieces]
    else:  # what OpenAI sends: each call whole before the next
        for i in range(3):
            events += [starts[i], *pieces[i]]
    events.append(chunk({}, "tool_calls"))
    events.append((None, {**head, "choices": [], "usage": {
        "prompt_tokens": 80, "completion_tokens": 60, "total_tokens": 140}}))
    return sse(events) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("interleaved", [False, True])
def test_openai_parallel_calls_plain_and_streamed(interleaved: bool) -> None:
    p = openai.PROVIDER
    req = ChatRequest("openai", "gpt-4o", tuple(ASK))
    plain = p.parse_chat(json.dumps(openai_answer()).encode(), req)
    assert_calls(plain.choices[0].message, OPENAI_IDS)
    assert plain.choices[0].finish_reason == "tool_calls"
    chunks = streamed(p, openai_events(interleaved=interleaved),
                      ChatRequest("openai", "gpt-4o", tuple(ASK), stream=True))
    assert stream_chunk_builder(chunks).choices == plain.choices


def test_openai_follow_up_passes_through_with_ids() -> None:
    answer = openai.PROVIDER.parse_chat(json.dumps(openai_answer()).encode(),
                                        ChatRequest("openai", "gpt-4o", tuple(ASK)))
    body = follow_up(openai.PROVIDER, "openai", answer)
    sent = body["messages"]
    assert sent[:2] == ASK
    assert sent[2] == {"role": "assistant", "tool_calls": [
        {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
        for i, (n, a) in zip(OPENAI_IDS, CALLS, strict=True)]}
    assert sent[3:] == [{"role": "tool", "tool_call_id": i, "content": r}
                        for i, r in zip(OPENAI_IDS, RESULTS, strict=True)]
    json.dumps(body)  # plain JSON: no record left inside


# ------------------------------------------------------------------ Anthropic

TOOLU = ["toolu_01NRLabsLyVHZPKxbKvkfSMn", "toolu_018acGYLtfR52q9yDbWaEdQZ",
         "toolu_01RXQDRjwv5Un7n98xFahjo8"]
INTRO = "I'll check both cities and the time at once."


def anthropic_answer(text: str | None = INTRO) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [{"type": "tool_use", "id": i, "name": n, "input": a,
                 "caller": {"type": "direct"}} for i, (n, a) in zip(TOOLU, CALLS, strict=True)]
    return {"model": "claude-haiku-4-5-20251001", "id": "msg_01AusY9WEbCaj3N7Tv5J4YjH",
            "type": "message", "role": "assistant", "content": content,
            "stop_reason": "tool_use", "stop_sequence": None,
            "usage": {"input_tokens": 656, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 74,
                      "service_tier": "standard"}}


def anthropic_events(text: str | None = INTRO) -> bytes:
    def ev(kind: str, **data: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, **data}

    events = [ev("message_start", message={
        "model": "claude-haiku-4-5-20251001", "id": "msg_01AusY9WEbCaj3N7Tv5J4YjH",
        "type": "message", "role": "assistant", "content": [], "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": 656, "cache_creation_input_tokens": 0,
                                         "cache_read_input_tokens": 0, "output_tokens": 1}})]
    block = 0
    if text:
        events += [ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
                   ev("ping"),
                   ev("content_block_delta", index=0,
                      delta={"type": "text_delta", "text": text[:10]}),
                   ev("content_block_delta", index=0,
                      delta={"type": "text_delta", "text": text[10:]}),
                   ev("content_block_stop", index=0)]
        block = 1
    for i, (name, args) in enumerate(CALLS):
        index = block + i
        events.append(ev("content_block_start", index=index, content_block={
            "type": "tool_use", "id": TOOLU[i], "name": name, "input": {},
            "caller": {"type": "direct"}}))
        events.append(ev("content_block_delta", index=index,
                         delta={"type": "input_json_delta", "partial_json": ""}))
        raw = json.dumps(args)
        if args:  # an empty input streams no text at all
            for piece in (raw[:4], raw[4:]):
                events.append(ev("content_block_delta", index=index,
                                 delta={"type": "input_json_delta", "partial_json": piece}))
        events.append(ev("content_block_stop", index=index))
    events += [ev("message_delta", delta={"stop_reason": "tool_use", "stop_sequence": None},
                  usage={"output_tokens": 74}),
               ev("message_stop")]
    return sse(list(events))


@pytest.mark.parametrize("text", [INTRO, None])
def test_anthropic_parallel_tool_use_plain_and_streamed(text: str | None) -> None:
    p = anthropic.PROVIDER
    req = ChatRequest("anthropic", "claude", tuple(ASK))
    plain = p.parse_chat(json.dumps(anthropic_answer(text)).encode(), req)
    message = plain.choices[0].message
    assert_calls(message, TOOLU)
    assert message.content == text
    assert plain.choices[0].finish_reason == "tool_calls"
    chunks = streamed(p, anthropic_events(text),
                      ChatRequest("anthropic", "claude", tuple(ASK), stream=True))
    built = stream_chunk_builder(chunks)
    assert built.choices == plain.choices
    assert built.usage == plain.usage


@pytest.mark.parametrize("text", [INTRO, None])
def test_anthropic_follow_up_has_all_results_in_one_user_turn(text: str | None) -> None:
    answer = anthropic.PROVIDER.parse_chat(json.dumps(anthropic_answer(text)).encode(),
                                           ChatRequest("anthropic", "claude", tuple(ASK)))
    body = follow_up(anthropic.PROVIDER, "anthropic", answer,
                     then=[{"role": "user", "content": "Answer in one line."}])
    assert body["system"] == "Use the tools."
    uses = [{"type": "tool_use", "id": i, "name": n, "input": a}
            for i, (n, a) in zip(TOOLU, CALLS, strict=True)]
    assert body["messages"] == [
        {"role": "user", "content": ASK[1]["content"]},
        # One assistant turn: its text block first, then the tool_use blocks in order.
        {"role": "assistant", "content": [{"type": "text", "text": text}, *uses] if text
         else uses},
        # One user turn: every tool_result in call order (ids matched), the user's
        # words after them, as Anthropic asks (results first, then any text).
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": TOOLU[0], "content": RESULTS[0]},
            {"type": "tool_result", "tool_use_id": TOOLU[1], "content": RESULTS[1]},
            {"type": "tool_result", "tool_use_id": TOOLU[2], "content": RESULTS[2]},
            {"type": "text", "text": "Answer in one line."},
        ]},
    ]


def test_anthropic_empty_tool_result_sends_no_content() -> None:
    """Regression: a tool that returned "" was sent as ``"content": ""``, which the API
    refuses (400, empty text); ``content`` is optional in a tool_result, so it is left
    out, and so are empty text parts."""
    answer = anthropic.PROVIDER.parse_chat(json.dumps(anthropic_answer()).encode(),
                                           ChatRequest("anthropic", "claude", tuple(ASK)))
    results: list[Any] = [[{"type": "text", "text": "18 C"}, {"type": "text", "text": ""}],
                          "", [{"type": "text", "text": ""}]]
    body = follow_up(anthropic.PROVIDER, "anthropic", answer, results=results)
    assert body["messages"][-1] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": TOOLU[0],
         "content": [{"type": "text", "text": "18 C"}]},
        {"type": "tool_result", "tool_use_id": TOOLU[1]},
        {"type": "tool_result", "tool_use_id": TOOLU[2]},
    ]}


# ------------------------------------------------------------------ Gemini

GEMINI_IDS = ["call_0_0", "call_0_1", "call_0_2"]


def gemini_part(name: str, args: dict[str, Any], call_id: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name, "args": args}
    if call_id is not None:
        call["id"] = call_id
    return {"functionCall": call}


def gemini_answer(parts: list[dict[str, Any]], last: bool = True) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    out: dict[str, Any] = {"candidates": [cand], "modelVersion": "gemini-2.5-flash",
                           "responseId": "w4tZaMyXBJ2sz7IPmJ3D4QU"}
    if last:
        cand["finishReason"] = "STOP"
        out["usageMetadata"] = {"promptTokenCount": 70, "candidatesTokenCount": 30,
                                "totalTokenCount": 100}
    else:
        out["usageMetadata"] = {"promptTokenCount": 70, "totalTokenCount": 70}
    return out


def gemini_parts(ids: list[str] | None = None) -> list[dict[str, Any]]:
    return [gemini_part(n, a, None if ids is None else ids[i])
            for i, (n, a) in enumerate(CALLS)]


@pytest.mark.parametrize("split", ["one chunk", "one call per chunk", "text then calls"])
def test_gemini_parallel_function_calls_plain_and_streamed(split: str) -> None:
    p = gemini.PROVIDER
    parts = gemini_parts()
    plain = p.parse_chat(json.dumps(gemini_answer(parts)).encode(),
                         ChatRequest("gemini", "gemini-2.5-flash", tuple(ASK)))
    assert_calls(plain.choices[0].message, GEMINI_IDS)
    assert plain.choices[0].message.content is None
    assert plain.choices[0].finish_reason == "tool_calls"
    if split == "one chunk":
        bodies = [gemini_answer(parts)]
    elif split == "one call per chunk":
        bodies = [gemini_answer([part], last=i == 2) for i, part in enumerate(parts)]
    else:
        bodies = [gemini_answer([{"text": ""}], last=False), gemini_answer(parts[:2], False),
                  gemini_answer(parts[2:])]
    raw = sse([(None, b) for b in bodies])
    chunks = streamed(p, raw, ChatRequest("gemini", "gemini-2.5-flash", tuple(ASK), stream=True))
    assert stream_chunk_builder(chunks).choices == plain.choices


def test_gemini_follow_up_has_all_responses_in_one_user_turn() -> None:
    answer = gemini.PROVIDER.parse_chat(json.dumps(gemini_answer(gemini_parts())).encode(),
                                        ChatRequest("gemini", "gemini-2.5-flash", tuple(ASK)))
    body = follow_up(gemini.PROVIDER, "gemini", answer,
                     then=[{"role": "user", "content": "Answer in one line."}])
    assert body["systemInstruction"] == {"parts": [{"text": "Use the tools."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": ASK[1]["content"]}]},
        {"role": "model", "parts": [gemini_part(n, a) for n, a in CALLS]},
        {"role": "user", "parts": [
            # Each name comes from the earlier call with that id; a JSON-object result
            # is the response itself, anything else {"content": ...}.
            {"functionResponse": {"name": "get_weather",
                                  "response": {"temp_c": 18, "sky": "clear"}}},
            {"functionResponse": {"name": "get_weather",
                                  "response": {"content": "rain, 12 degrees"}}},
            {"functionResponse": {"name": "get_time",
                                  "response": {"content": "error: LookupError: no clock"}}},
            {"text": "Answer in one line."},
        ]},
    ]


def test_gemini_ids_are_per_answer_and_names_resolve_to_the_latest_call() -> None:
    """Derived ids restart at call_0_0 in every answer: a tool message names the latest
    earlier call with its id, so a second round's results are not named after the first's."""
    p = gemini.PROVIDER
    round1 = p.parse_chat(json.dumps(gemini_answer(gemini_parts())).encode(),
                          ChatRequest("gemini", "g", tuple(ASK)))
    round2 = p.parse_chat(json.dumps(gemini_answer([gemini_part("get_time", {})])).encode(),
                          ChatRequest("gemini", "g", tuple(ASK)))
    m1, m2 = round1.choices[0].message, round2.choices[0].message
    assert m2.tool_calls == (ToolCall("call_0_0", FunctionCall("get_time", "{}")),)
    messages = check_messages([
        *ASK, m1, *({"role": "tool", "tool_call_id": i, "content": r}
                    for i, r in zip(GEMINI_IDS, RESULTS, strict=True)),
        m2, {"role": "tool", "tool_call_id": "call_0_0", "content": "noon"},
    ])
    body = p.build_chat(ChatRequest("gemini", "g", messages), cfg("gemini")).json
    assert isinstance(body, dict)
    names = [[part["functionResponse"]["name"] for part in c["parts"]]
             for c in body["contents"] if c["role"] == "user" and c is not body["contents"][0]]
    assert names == [["get_weather", "get_weather", "get_time"], ["get_time"]]


GIVEN_IDS = ["9a1c2e7f", "b3d04e55", "0c7f9e21"]


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_own_call_ids_are_kept_and_sent_back(stream: bool) -> None:
    """Regression: a functionCall's ``id`` (Gemini: "return the response with the matching
    id") was dropped for a made-up one; now it is the tool call's id, plain and streamed,
    and goes back on the functionCall and functionResponse parts."""
    p = gemini.PROVIDER
    answer = gemini_answer(gemini_parts(GIVEN_IDS))
    req = ChatRequest("gemini", "gemini-2.5-flash", tuple(ASK), stream=stream)
    if stream:
        parsed = stream_chunk_builder(streamed(p, sse([(None, answer)]), req))
    else:
        parsed = p.parse_chat(json.dumps(answer).encode(), req)
    assert_calls(parsed.choices[0].message, GIVEN_IDS)
    body = follow_up(p, "gemini", parsed)
    assert body["contents"][1] == {"role": "model", "parts": gemini_parts(GIVEN_IDS)}
    responses = [part["functionResponse"] for part in body["contents"][2]["parts"]]
    assert [(r["id"], r["name"]) for r in responses] == [
        (i, n) for i, (n, _) in zip(GIVEN_IDS, CALLS, strict=True)]


def test_gemini_made_up_ids_are_not_sent() -> None:
    body = follow_up(gemini.PROVIDER, "gemini", gemini.PROVIDER.parse_chat(
        json.dumps(gemini_answer(gemini_parts())).encode(), ChatRequest("gemini", "g", tuple(ASK))))
    sent = json.dumps(body["contents"])
    assert '"id"' not in sent and "call_0_" not in sent
