"""Gemini's thought signatures go back with the tool calls they came with.

Gemini 3 refuses a follow-up whose ``functionCall`` parts lack the ``thoughtSignature``
the model gave them.  trillm keeps it on the tool call as ``extra_content`` (the shape of
Google's OpenAI-compatible API, ``{"google": {"thought_signature": ...}}``), plain and
streamed, and the Gemini translation sends it back; an OpenAI-compatible server's
``extra_content`` (that API's own) is kept and passed back unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.test_tool_translation import ASK, CALLS, RESULTS, cfg, gemini_answer, sse, streamed
from trillm._options import check_messages
from trillm.accumulate import stream_chunk_builder
from trillm.providers import gemini, openai
from trillm.types import ChatRequest, ModelResponse

SIGS = ["CpUCAb4+9vtVR0f1", None, "Ep4BAb4+9vuX2k"]  # the second call came without one


def signed_parts() -> list[dict[str, Any]]:
    parts = []
    for (name, args), sig in zip(CALLS, SIGS, strict=True):
        part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
        if sig is not None:
            part["thoughtSignature"] = sig
        parts.append(part)
    return parts


def extra(sig: str | None) -> dict[str, Any] | None:
    return None if sig is None else {"google": {"thought_signature": sig}}


def follow_up_body(provider: Any, name: str, answer: ModelResponse) -> dict[str, Any]:
    message = answer.choices[0].message
    tools = [{"role": "tool", "tool_call_id": tc.id, "content": r}
             for tc, r in zip(message.tool_calls or (), RESULTS, strict=True)]
    req = ChatRequest(name, "m", check_messages([*ASK, message, *tools]))
    body = provider.build_chat(req, cfg(name)).json
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize("stream", [False, True])
def test_gemini_signatures_are_kept_and_sent_back(stream: bool) -> None:
    p = gemini.PROVIDER
    answer = gemini_answer(signed_parts())
    req = ChatRequest("gemini", "gemini-3-pro-preview", tuple(ASK), stream=stream)
    if stream:
        parsed = stream_chunk_builder(streamed(p, sse([(None, answer)]), req))
    else:
        parsed = p.parse_chat(json.dumps(answer).encode(), req)
    calls = parsed.choices[0].message.tool_calls
    assert calls is not None
    assert [tc.extra_content for tc in calls] == [extra(s) for s in SIGS]
    body = follow_up_body(p, "gemini", parsed)
    assert body["contents"][1] == {"role": "model", "parts": signed_parts()}


def test_gemini_signatures_split_over_chunks_stay_with_their_calls() -> None:
    p = gemini.PROVIDER
    parts = signed_parts()
    bodies = [gemini_answer([part], last=i == 2) for i, part in enumerate(parts)]
    req = ChatRequest("gemini", "g", tuple(ASK), stream=True)
    built = stream_chunk_builder(streamed(p, sse([(None, b) for b in bodies]), req))
    calls = built.choices[0].message.tool_calls
    assert calls is not None
    assert [tc.extra_content for tc in calls] == [extra(s) for s in SIGS]


def test_a_signature_given_as_a_dict_goes_back_too() -> None:
    """A loop that keeps the history as plain dicts (``to_dict()``, or JSON on disk)."""
    parsed = gemini.PROVIDER.parse_chat(json.dumps(gemini_answer(signed_parts())).encode(),
                                        ChatRequest("gemini", "g", tuple(ASK)))
    as_dict = json.loads(json.dumps(parsed.choices[0].message.to_dict()))
    assert as_dict["tool_calls"][0]["extra_content"] == extra(SIGS[0])
    tools = [{"role": "tool", "tool_call_id": tc["id"], "content": r}
             for tc, r in zip(as_dict["tool_calls"], RESULTS, strict=True)]
    req = ChatRequest("gemini", "g", check_messages([*ASK, as_dict, *tools]))
    body = gemini.PROVIDER.build_chat(req, cfg("gemini")).json
    assert isinstance(body, dict)
    assert body["contents"][1]["parts"] == signed_parts()


def openai_compatible_answer() -> dict[str, Any]:
    """Google's OpenAI-compatible endpoint puts the signature on the tool call."""
    return {"id": "x", "object": "chat.completion", "created": 1, "model": "gemini-3-pro-preview",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None, "tool_calls": [
                    {"id": f"function-call-{k}", "type": "function",
                     "function": {"name": n, "arguments": json.dumps(a)},
                     **({"extra_content": extra(s)} if s else {})}
                    for k, ((n, a), s) in enumerate(zip(CALLS, SIGS, strict=True))]}}]}


def openai_compatible_events() -> bytes:
    answer = openai_compatible_answer()
    events: list[tuple[str | None, dict[str, Any]]] = []
    for k, tc in enumerate(answer["choices"][0]["message"]["tool_calls"]):
        events.append((None, {"id": "x", "object": "chat.completion.chunk", "created": 1,
                              "model": answer["model"], "choices": [{"index": 0, "delta": {
                                  "tool_calls": [{"index": k, **tc}]}}]}))
    events.append((None, {"id": "x", "object": "chat.completion.chunk", "created": 1,
                          "model": answer["model"],
                          "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}))
    return sse(events) + b"data: [DONE]\n\n"


@pytest.mark.parametrize("stream", [False, True])
def test_openai_compatible_extra_content_is_kept_and_passed_back(stream: bool) -> None:
    p = openai.PROVIDER
    req = ChatRequest("openai", "gemini-3-pro-preview", tuple(ASK), stream=stream)
    if stream:
        parsed = stream_chunk_builder(streamed(p, openai_compatible_events(), req))
    else:
        parsed = p.parse_chat(json.dumps(openai_compatible_answer()).encode(), req)
    calls = parsed.choices[0].message.tool_calls
    assert calls is not None
    assert [tc.extra_content for tc in calls] == [extra(s) for s in SIGS]
    body = follow_up_body(p, "openai", parsed)
    sent = body["messages"][2]["tool_calls"]
    assert sent == openai_compatible_answer()["choices"][0]["message"]["tool_calls"]
