"""Every provider's stream parser against malformed events (openai, anthropic, gemini).

An event that cannot be decoded, or holds a value of the wrong type where the
parser reads one, is a :class:`~trillm.errors.StreamError` raised by ``feed``:
never a ``TypeError`` later (``final_response``, ``stream_chunk_builder``), never
a ``RecursionError``, never chunks holding values of the wrong type.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trillm import errors, stream_chunk_builder
from trillm._wire import StreamParser
from trillm.providers import anthropic, gemini, openai
from trillm.sse import SSEDecoder, SSEEvent
from trillm.types import ChatRequest, Delta, ModelResponse, StreamChoice, StreamChunk

FIXTURES = Path(__file__).parent / "fixtures"


def _parser(provider: str) -> Callable[[], StreamParser]:
    module = {"openai": openai, "anthropic": anthropic, "gemini": gemini}[provider]
    return lambda: module.PROVIDER.stream_parser(ChatRequest(provider, "m", (), stream=True))


STREAMS = {
    "openai": ["stream_text.sse", "stream_tool_call.sse", "stream_content_logprobs.sse",
               "stream_refusal_logprobs.sse"],
    "anthropic": ["stream_text.sse", "stream_tool_use.sse", "stream_thinking.sse"],
    "gemini": ["stream_text.sse", "stream_function_call.sse", "stream_thinking.sse"],
}
WRONG = [True, 5, 1.5, "x", [], {"a": 1}]


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if len(prefix) > 1 and prefix[-2] == "logprobs":
        return  # the token entries are passed through as they are
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _opt(value: Any, kind: type) -> bool:
    return value is None or type(value) is kind


def _chunk_is_well_typed(c: StreamChunk) -> bool:
    ok = (type(c.id) is str and type(c.created) is int and type(c.model) is str
          and type(c.object) is str and _opt(c.system_fingerprint, str))
    for sc in c.choices:
        d = sc.delta
        ok = ok and type(sc.index) is int and _opt(sc.finish_reason, str) and all(
            _opt(v, str) for v in (d.role, d.content, d.reasoning_content, d.refusal))
        lp = sc.logprobs
        ok = ok and (lp is None or (type(lp) is dict and _opt(lp.get("content"), list)
                                    and _opt(lp.get("refusal"), list)))
        for t in d.tool_calls or ():
            ok = ok and type(t.index) is int and _opt(t.id, str) and _opt(t.type, str)
            if t.function is not None:
                ok = ok and _opt(t.function.name, str) and _opt(t.function.arguments, str)
    u = c.usage
    return ok and (u is None or all(type(n) is int for n in
                                    (u.prompt_tokens, u.completion_tokens, u.total_tokens)))


def _answer_is_well_typed(r: ModelResponse) -> bool:
    ok = type(r.id) is str and type(r.model) is str
    for c in r.choices:
        m = c.message
        ok = ok and type(c.index) is int and _opt(c.finish_reason, str) and type(m.role) is str
        ok = ok and all(_opt(v, str) for v in (m.content, m.refusal, m.reasoning_content))
        for t in m.tool_calls or ():
            ok = ok and all(type(v) is str for v in
                            (t.id, t.type, t.function.name, t.function.arguments))
    return ok


@pytest.mark.parametrize("provider", STREAMS)
def test_a_wrong_typed_field_is_a_stream_error_from_feed(provider: str) -> None:
    # Regression: `"content": true`, a `tool_calls` that is not a list, a string
    # `index`, a `finish_reason` that is not a string, ... made final_response()
    # raise TypeError (or gave chunks holding values of the wrong type).  Every
    # field of every event of the recorded streams, set to each wrong value:
    # either feed raises StreamError, or the chunks and the answer are well typed.
    new_parser = _parser(provider)
    failures = []
    for name in STREAMS[provider]:
        events = SSEDecoder().feed((FIXTURES / provider / name).read_bytes())
        for n, event in enumerate(events):
            if event.data == "[DONE]":
                continue
            obj = json.loads(event.data)
            for path in _paths(obj):
                for value in WRONG:
                    bad = copy.deepcopy(obj)
                    target = bad
                    for key in path[:-1]:
                        target = target[key]
                    target[path[-1]] = value
                    stream = [*events[:n], SSEEvent(json.dumps(bad), event.event), *events[n + 1:]]
                    parser = new_parser()
                    try:
                        chunks = [c for e in stream if (c := parser.feed(e)) is not None]
                    except errors.APIError:  # StreamError, or a mapped in-stream error
                        continue
                    if not all(map(_chunk_is_well_typed, chunks)) or (
                        chunks and not _answer_is_well_typed(stream_chunk_builder(chunks))
                    ):
                        failures.append(f"{name} event {n}: {path} = {value!r}")
    assert not failures, f"{len(failures)} wrong-typed values got through: {failures[:10]}"


OPENAI_CHUNK = {"id": "c", "created": 1, "model": "m", "choices": [
    {"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]}


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("choices", 0, "delta", "content"), True),
        (("choices", 0, "delta", "tool_calls"), {"index": 0}),
        (("choices", 0, "delta", "tool_calls"), [{"index": "0", "function": {"name": "f"}}]),
        (("choices", 0, "index"), "0"),
        (("choices", 0, "finish_reason"), 1),
        (("choices", 0, "logprobs"), {"content": "Hi"}),
        (("choices",), {"0": {}}),
        (("model",), ["m"]),
        (("created",), float("inf")),  # json.loads reads Infinity
    ],
)
def test_openai_wrong_types_named_in_the_issue(where: tuple[Any, ...], value: Any) -> None:
    event = copy.deepcopy(OPENAI_CHUNK)
    target: Any = event
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(errors.StreamError, match="malformed stream event from openai"):
        _parser("openai")().feed(SSEEvent(json.dumps(event)))


@pytest.mark.parametrize(
    ("provider", "data"),
    [
        ("anthropic", {"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": True}}),
        ("anthropic", {"type": "content_block_stop", "index": "0"}),
        ("anthropic", {"type": "message_delta", "delta": {"stop_reason": 1}}),
        ("anthropic", {"type": "message_delta", "delta": {}, "usage": {"output_tokens": "9"}}),
        ("gemini", {"candidates": [{"content": {"parts": [{"text": 5}]}}]}),
        ("gemini", {"candidates": [{"index": "0", "content": {"parts": [{"text": "a"}]}}]}),
        ("gemini", {"candidates": [{"finishReason": 1}]}),
        ("gemini", {"candidates": [{"content": {"parts": [{"functionCall": {"name": 5}}]}}]}),
    ],
)
def test_wrong_types_in_anthropic_and_gemini_events(provider: str, data: Any) -> None:
    with pytest.raises(errors.StreamError, match=f"malformed stream event from {provider}"):
        _parser(provider)().feed(SSEEvent(json.dumps(data)))


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("provider", STREAMS)
@pytest.mark.parametrize(
    "data",
    [
        _nested(100_000),  # too deep for json.loads
        '{"choices": ' + _nested(100_000) + "}",
        '{"error": {"message": "x", "details": ' + _nested(990) + "}}",  # loads, but too deep
    ],                                                                    # to copy or redact
    ids=["array", "in-object", "error-event"],
)
def test_a_deeply_nested_event_is_a_stream_error(provider: str, data: str) -> None:
    # Regression: json.loads let RecursionError escape from every stream parser.
    with pytest.raises(errors.StreamError, match=f"malformed stream event from {provider}"):
        _parser(provider)().feed(SSEEvent(data, "error" if "error" in data[:10] else "message"))


# ------------------------------------------------- the OpenAI parser's one-pass path

_COMMON = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1741569952,
           "model": "gpt-4o-mini", "service_tier": "default", "system_fingerprint": "fp_1",
           "choices": [{"index": 0, "delta": {"content": " Here"}, "logprobs": None,
                        "finish_reason": None}],
           "usage": None}
_ODD = st.sampled_from([None, "", "x", 0, 1, 2, -1, 1.5, True, False, [], {}, [1], ["x"],
                        {"a": 1}, {"content": "x"}, {"prompt_tokens": 1, "completion_tokens": 2},
                        {"content": []}, float("inf")])
_TOP = ["id", "object", "created", "model", "system_fingerprint", "choices", "usage", "error",
        "x_groq"]
_CHOICE = ["index", "delta", "logprobs", "finish_reason"]
_DELTA = ["content", "role", "refusal", "reasoning_content", "reasoning", "tool_calls"]


@st.composite
def _chunk_shapes(draw: st.DrawFn) -> Any:
    """The common chunk with a few fields removed or set to other values (most of them
    wrong), one more or no choice, or a choice that is not an object."""
    obj: Any = copy.deepcopy(_COMMON)
    choice, delta = obj["choices"][0], obj["choices"][0]["delta"]
    for _ in range(draw(st.integers(0, 3))):
        target, keys = draw(st.sampled_from([(obj, _TOP), (choice, _CHOICE), (delta, _DELTA)]))
        key = draw(st.sampled_from(keys))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(_ODD)
    shape = draw(st.integers(0, 6))
    if shape == 0 and type(obj.get("choices")) is list:
        obj["choices"].append(copy.deepcopy(_COMMON["choices"][0]))
    elif shape == 1:
        obj["choices"] = []
    elif shape == 2:
        obj["choices"] = [draw(_ODD)]
    return obj


def _outcome(f: Callable[[], Any], parser: openai.OpenAIStreamParser) -> Any:
    try:
        result = f()
    except Exception as exc:  # noqa: BLE001 - any error: the same one, message included
        result = (type(exc), str(exc))
    else:
        if result is not None:
            result = (result, result.raw)  # raw is not compared by ==
    return result, parser.done, parser.finished, parser._seen, parser._finished


def _both_paths(data: str) -> tuple[Any, Any]:
    """What feed_data gives for *data*, and what the general path alone gives."""
    fast = openai.OpenAIStreamParser("openai", "m")
    general = openai.OpenAIStreamParser("openai", "m")

    def slow() -> StreamChunk | None:
        loaded = general._load(data)
        return None if loaded is None else general._chunk(loaded, data)

    return _outcome(lambda: fast.feed_data(data), fast), _outcome(slow, general)


@settings(deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_chunk_shapes())
def test_openai_one_pass_path_is_the_general_path(obj: Any) -> None:
    # feed_data takes the common chunk (one text delta) in one pass: for every shape, its
    # result (chunk, error and message, parser state) is the general path's.
    fast, general = _both_paths(json.dumps(obj))
    assert fast == general


@pytest.mark.parametrize("data", [
    json.dumps(_COMMON),
    json.dumps({**_COMMON, "created": 1.5, "model": ""}),  # created made an int, model the call's
    json.dumps({**_COMMON, "usage": {"prompt_tokens": 1, "completion_tokens": 2}}),
    json.dumps({**_COMMON, "choices": [{"delta": {"content": "a"}, "finish_reason": "stop"}]}),
    json.dumps({**_COMMON, "choices": [{"index": 0, "delta": {"content": 1}}]}),
    json.dumps({**_COMMON, "error": {"message": "boom", "type": "server_error"}}),
    "[DONE]", "not json", "[]",
])
def test_openai_one_pass_path_table(data: str) -> None:
    fast, general = _both_paths(data)
    assert fast == general
    parser = openai.OpenAIStreamParser("openai", "m")
    assert _outcome(lambda: parser.feed(SSEEvent(data)), parser) == general


def test_openai_common_chunk_takes_the_one_pass_path(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = openai.OpenAIStreamParser("openai", "m")
    calls: list[Any] = []
    real = openai.OpenAIStreamParser._chunk
    monkeypatch.setattr(openai.OpenAIStreamParser, "_chunk",
                        lambda self, obj, data: calls.append(obj) or real(self, obj, data))
    chunk = parser.feed_data(json.dumps(_COMMON))
    assert calls == []
    assert chunk == StreamChunk("chatcmpl-1", 1741569952, "gpt-4o-mini", (StreamChoice(
        0, Delta(content=" Here")),), None, "chat.completion.chunk", "fp_1")
    assert chunk is not None and chunk.raw == _COMMON and parser._seen == {0}
    parser.feed_data(json.dumps({**_COMMON, "choices": [{"index": 0, "delta": {}}]}))
    assert len(calls) == 1  # any other shape: the general path


def test_openai_error_event_type_still_raises() -> None:
    # An `event: error` whose data has no "error" key is an error too (feed, not feed_data).
    with pytest.raises(errors.APIError, match="boom"):
        openai.OpenAIStreamParser("openai", "m").feed(
            SSEEvent(json.dumps({"message": "boom"}), "error"))
    assert openai.OpenAIStreamParser("openai", "m").feed(SSEEvent("[DONE]", "error")) is None
