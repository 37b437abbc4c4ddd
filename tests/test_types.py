"""Response and chunk records: attribute access, read-only Mapping access, to_dict."""

from __future__ import annotations

import collections.abc
import json
import pickle
from pathlib import Path

import attrs
import pytest

from trillm.types import (
    ChatRequest,
    Choice,
    Delta,
    FunctionCall,
    FunctionDelta,
    Message,
    ModelResponse,
    StreamChoice,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
    positional_builder,
)
from trillm.usage import Prices


def make_response(**kw: object) -> ModelResponse:
    args: dict[str, object] = {
        "id": "chatcmpl-1",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": (Choice(index=0, message=Message(content="Hello!"), finish_reason="stop"),),
        "usage": Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
        "raw": {"id": "chatcmpl-1", "secret_field": "x"},
        "headers": {"x-request-id": "req_1"},
    }
    args.update(kw)
    return ModelResponse(**args)  # type: ignore[arg-type]


def make_chunk(**kw: object) -> StreamChunk:
    args: dict[str, object] = {
        "id": "chatcmpl-1",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": (StreamChoice(index=0, delta=Delta(content="Hel")),),
    }
    args.update(kw)
    return StreamChunk(**args)  # type: ignore[arg-type]


TOOL_RESPONSE = make_response(
    choices=(
        Choice(
            index=0,
            message=Message(
                tool_calls=(
                    ToolCall(id="call_1", function=FunctionCall("get_weather", '{"city": "Oslo"}')),
                )
            ),
            finish_reason="tool_calls",
        ),
    )
)

ALL_RECORDS = [
    make_response(),
    TOOL_RESPONSE,
    make_chunk(),
    Usage(),
    Message(),
    Delta(),
    StreamChoice(),
    ToolCallDelta(index=0, function=FunctionDelta(arguments="{")),
    FunctionCall("f"),
]


# ------------------------------------------------------------------ attribute and item access


def test_attribute_access() -> None:
    r = make_response()
    assert r.choices[0].message.content == "Hello!"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None
    assert r.usage.total_tokens == 5


def test_dict_style_access() -> None:
    r = make_response()
    assert r["choices"][0]["message"]["content"] == "Hello!"
    assert r["choices"][0]["message"]["role"] == "assistant"
    assert r["usage"]["prompt_tokens"] == 3
    assert r["model"] == "gpt-4o-mini"
    assert r["object"] == "chat.completion"


def test_tool_calls_dict_style() -> None:
    call = TOOL_RESPONSE["choices"][0]["message"]["tool_calls"][0]
    assert call["id"] == "call_1"
    assert call["type"] == "function"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    assert "content" not in TOOL_RESPONSE["choices"][0]["message"]


def test_contains() -> None:
    r = make_response()
    chunk = make_chunk()
    assert "choices" in chunk
    assert "choices" in r
    assert "usage" in r
    assert "usage" not in make_response(usage=None)
    assert "usage" not in chunk
    assert "system_fingerprint" not in r
    assert "nonsense" not in r
    assert 42 not in r


def test_get_with_defaults() -> None:
    chunk = make_chunk()
    choice = chunk["choices"][0]
    assert choice.get("delta", {}).get("content", "") == "Hel"
    assert choice.get("finish_reason") is None
    assert Delta().get("content", "") == ""
    assert choice.get("nonsense", 7) == 7
    final = make_chunk(choices=(StreamChoice(delta=Delta(), finish_reason="stop"),))
    assert final["choices"][0].get("finish_reason") == "stop"
    assert final["choices"][0]["delta"].get("content", "") == ""


def test_keyerror_for_none_and_unknown_keys() -> None:
    r = make_response(usage=None)
    with pytest.raises(KeyError):
        r["usage"]
    with pytest.raises(KeyError):
        r["system_fingerprint"]
    with pytest.raises(KeyError):
        r["nonsense"]
    with pytest.raises(KeyError):
        Delta()["content"]


def test_hidden_fields_not_in_mapping() -> None:
    r = make_response()
    assert r.raw == {"id": "chatcmpl-1", "secret_field": "x"}
    assert r.headers == {"x-request-id": "req_1"}
    for key in ("raw", "headers"):
        assert key not in r
        assert key not in list(r)
        assert key not in r.to_dict()
        with pytest.raises(KeyError):
            r[key]
    chunk = make_chunk(raw={"a": 1})
    assert "raw" not in chunk
    assert "raw" not in chunk.to_dict()


def test_len_and_iteration_order() -> None:
    r = make_response()
    assert list(r) == ["id", "created", "model", "choices", "usage", "object"]
    assert len(r) == 6
    r2 = make_response(usage=None, system_fingerprint="fp_1")
    assert list(r2) == ["id", "created", "model", "choices", "object", "system_fingerprint"]
    assert len(r2) == 6
    assert list(Message(content="x")) == ["role", "content"]
    assert len(Delta()) == 0
    assert list(Delta()) == []


def test_mapping_mixins() -> None:
    msg = Message(content="hi")
    assert dict(msg) == {"role": "assistant", "content": "hi"}
    assert list(msg.keys()) == ["role", "content"]
    assert list(msg.values()) == ["assistant", "hi"]
    assert list(msg.items()) == [("role", "assistant"), ("content", "hi")]
    assert {**msg} == {"role": "assistant", "content": "hi"}


@pytest.mark.parametrize("record", ALL_RECORDS, ids=lambda r: type(r).__name__)
def test_is_a_mapping(record: collections.abc.Mapping[str, object]) -> None:
    assert isinstance(record, collections.abc.Mapping)
    assert not isinstance(record, collections.abc.MutableMapping)
    assert list(record) == list(record.to_dict())  # type: ignore[attr-defined]
    assert len(record) == len(record.to_dict())  # type: ignore[attr-defined]


@pytest.mark.parametrize("record", ALL_RECORDS, ids=lambda r: type(r).__name__)
def test_read_only(record: collections.abc.Mapping[str, object]) -> None:
    with pytest.raises(TypeError):
        record["id"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        del record["id"]  # type: ignore[attr-defined]


def test_records_are_frozen() -> None:
    r = make_response()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        r.model = "other"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        r.choices[0].message.content = "changed"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        make_chunk().choices[0].delta.content = "x"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ChatRequest(provider="openai", model="m", messages=()).model = "x"  # type: ignore[misc]


def test_records_are_slotted() -> None:
    r = make_response()
    assert not hasattr(r, "__dict__")
    with pytest.raises((AttributeError, attrs.exceptions.FrozenInstanceError)):
        r.extra = 1  # type: ignore[attr-defined]


# ------------------------------------------------------------------ to_dict


def test_to_dict() -> None:
    assert make_response().to_dict() == {
        "id": "chatcmpl-1",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        "object": "chat.completion",
    }


def test_to_dict_omits_none_recursively() -> None:
    d = TOOL_RESPONSE.to_dict()
    msg = d["choices"][0]["message"]
    assert msg == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_1",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                "type": "function",
            }
        ],
    }
    assert "logprobs" not in d["choices"][0]


def test_to_dict_of_chunk() -> None:
    assert make_chunk().to_dict() == {
        "id": "chatcmpl-1",
        "created": 1700000000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": "Hel"}}],
        "object": "chat.completion.chunk",
    }


def test_usage_only_chunk_has_one_empty_choice() -> None:
    chunk = StreamChunk(id="c", created=0, model="m", usage=Usage(1, 2, 3))
    assert chunk.choices[0].delta.content is None
    assert chunk["choices"][0]["delta"].get("content") is None
    assert chunk.to_dict()["choices"] == [{"index": 0, "delta": {}}]
    assert chunk.to_dict()["usage"] == {
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
    }


def test_usage_details() -> None:
    usage = Usage(
        10,
        5,
        15,
        prompt_tokens_details={"cached_tokens": 4},
        completion_tokens_details={"reasoning_tokens": 2},
    )
    assert usage["prompt_tokens_details"]["cached_tokens"] == 4
    assert usage.to_dict()["completion_tokens_details"] == {"reasoning_tokens": 2}


@pytest.mark.parametrize("record", ALL_RECORDS, ids=lambda r: type(r).__name__)
def test_to_dict_is_json_serialisable(record: collections.abc.Mapping[str, object]) -> None:
    d = record.to_dict()  # type: ignore[attr-defined]
    assert json.loads(json.dumps(d)) == d
    assert type(d) is dict


def test_to_dict_returns_fresh_data() -> None:
    r = make_response()
    d = r.to_dict()
    d["choices"][0]["message"]["content"] = "mutated"
    assert r.choices[0].message.content == "Hello!"
    assert r.to_dict()["choices"][0]["message"]["content"] == "Hello!"


# ------------------------------------------------------------------ value semantics


def test_equality_ignores_raw_and_headers() -> None:
    assert make_response(raw={"a": 1}, headers={"h": "1"}) == make_response(raw=None, headers={})
    assert make_response() != make_response(model="other")


def test_repr_hides_raw_and_headers() -> None:
    text = repr(make_response(raw={"secret_field": "zzz"}, headers={"x-h": "hhh"}))
    assert "zzz" not in text
    assert "hhh" not in text
    assert "Hello!" in text


def test_pickle_round_trip() -> None:
    r = make_response()
    copy = pickle.loads(pickle.dumps(r))
    assert copy == r
    assert copy["choices"][0]["message"]["content"] == "Hello!"


def test_evolve() -> None:
    r = attrs.evolve(make_response(), model="gpt-4o")
    assert r["model"] == "gpt-4o"
    assert r.choices[0].message.content == "Hello!"


def test_defaults() -> None:
    assert Message().role == "assistant"
    assert ToolCall(id="c", function=FunctionCall("f")).type == "function"
    assert FunctionCall("f").arguments == ""
    assert StreamChoice().index == 0
    assert StreamChoice().delta == Delta()
    assert make_response().object == "chat.completion"
    assert make_chunk().object == "chat.completion.chunk"
    assert make_response(headers={}).headers == {}
    assert ModelResponse(id="x", created=0, model="m", choices=()).headers == {}


def test_records_type_check_as_attrs_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: the records were made attrs classes inside a helper decorator,
    # which mypy's attrs plugin cannot see: every `Message(content=...)` in the
    # package was a mypy error ("Unexpected keyword argument").
    api = pytest.importorskip("mypy.api")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "import attrs\n"
        "from trillm.types import Choice, Message, ModelResponse, StreamChunk, Usage\n"
        "m = Message(content='x')\n"
        "r = ModelResponse(id='i', created=0, model='m', choices=(Choice(index=0, message=m),),\n"
        "                  usage=Usage(1, 2, 3))\n"
        "r2 = attrs.evolve(r, model='n')\n"
        "c = StreamChunk(id='i', created=0, model='m')\n"
        "content: str | None = r2.choices[0].message.content\n"
        "n: int = c.choices[0].index\n"
    )
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    monkeypatch.setenv("MYPYPATH", str(Path(__file__).resolve().parents[1]))
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--follow-imports",
            "silent",
            str(snippet),
        ]
    )
    assert status == 0, stdout + stderr


def test_fast_stream_builders_make_the_constructors_records() -> None:
    """The parsers' hot-path builders set every field, as the attrs constructor does."""
    import attrs

    from trillm.types import (
        Delta,
        StreamChoice,
        StreamChunk,
        Usage,
        stream_choice,
        stream_chunk,
        text_delta,
    )

    d = text_delta("hi")
    assert d == Delta(content="hi") and type(d) is Delta
    assert attrs.asdict(d) == attrs.asdict(Delta(content="hi"))
    c = stream_choice(2, d, "stop", {"content": []})
    assert c == StreamChoice(2, d, "stop", {"content": []})
    usage = Usage(1, 2, 3)
    raw = {"id": "x"}
    ch = stream_chunk("x", 5, "m", (c,), usage, "chat.completion.chunk", "fp", raw)
    want = StreamChunk("x", 5, "m", (c,), usage, "chat.completion.chunk", "fp", raw)
    assert ch == want and ch.raw is raw
    assert repr(ch) == repr(want) and ch.to_dict() == want.to_dict()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ch.id = "y"  # type: ignore[misc]


def test_positional_builder_builds_what_init_builds() -> None:
    build = positional_builder(Usage)
    u = build(3, 2, 5, {"cached_tokens": 1}, None)
    assert type(u) is Usage and u == Usage(3, 2, 5, {"cached_tokens": 1}, None)
    assert repr(u) == repr(Usage(3, 2, 5, {"cached_tokens": 1}, None))
    assert hash(build(1, 1, 2, None, None)) == hash(Usage(1, 1, 2))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        u.prompt_tokens = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        build(1, 2)  # every field, by position
    with pytest.raises(TypeError, match="checks or converts"):
        positional_builder(Prices)  # it checks its fields in __attrs_post_init__


def test_positional_builder_with_only_keeps_the_other_defaults() -> None:
    build = positional_builder(Usage, ("total_tokens",))
    assert build(7) == Usage(total_tokens=7)
    with pytest.raises(TypeError, match="no field"):
        positional_builder(Usage, ("nope",))
