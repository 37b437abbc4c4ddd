"""Structured output as pure functions: what each provider is sent for a ``response_format``,
how answers become ``message.parsed`` (recorded OpenAI and Anthropic payloads from the
official SDKs' test suites, recorded-style Gemini ones), the errors, and the mock's
instances of a schema."""

from __future__ import annotations

import enum
import json
import pickle
from pathlib import Path
from typing import Annotated, Any, Literal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import trillm
from tests.test_structured import CORPUS, Node, Pets
from trillm import errors
from trillm.accumulate import stream_chunk_builder
from trillm.providers import anthropic, gemini, openai
from trillm.providers.azure import PROVIDER as AZURE
from trillm.providers.base import ProviderConfig
from trillm.providers.mock import schema_instance
from trillm.retry import RetryPolicy, is_retryable
from trillm.sse import SSEDecoder
from trillm.structured import (
    parse_response,
    response_format_body,
    response_format_kind,
    strict_json_schema,
)
from trillm.types import ChatRequest, Choice, Message, ModelResponse, ToolCall

CONFORMANCE = Path("/work/shared/conformance-fixtures")
LOCAL = Path(__file__).parent / "fixtures"
MSGS = ({"role": "user", "content": "What's the weather like in SF?"},)


def recorded(provider: str, kind: str, name: str) -> bytes:
    """A recorded body or stream from the official SDK's test suite (conformance fixtures)."""
    path = CONFORMANCE / f"{provider}.json"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return str(json.loads(path.read_text())[kind][name]["body"]).encode()


class Location(BaseModel):  # the model of openai-python's recorded test_parse_pydantic_model
    city: str
    temperature: float
    units: Literal["c", "f"]


class Order(BaseModel):  # anthropic-sdk-python's recorded TestSyncParse model
    product_name: str
    price: float
    quantity: int


JSON_SCHEMA_FORM = {"type": "json_schema", "json_schema": {
    "name": "location", "schema": Location.model_json_schema(), "strict": True}}

OPENAI_CFG = ProviderConfig(name="openai", api_base="https://api.openai.com/v1", api_key="sk-x1")
ANTHROPIC_CFG = ProviderConfig(name="anthropic", api_base="https://api.anthropic.com",
                               api_key="sk-ant-x1")
GEMINI_CFG = ProviderConfig(name="gemini", api_base="https://generativelanguage.googleapis.com",
                            api_key="AIza-x1")
AZURE_CFG = ProviderConfig(name="azure", api_base="https://r.openai.azure.com", api_key="az-x1",
                           api_version="2024-10-21")


def req(provider: str, fmt: Any, *, stream: bool = False, **kw: Any) -> ChatRequest:
    return ChatRequest(provider, "m", MSGS, stream, {"response_format": fmt}, **kw)


def body(provider: Any, cfg: ProviderConfig, fmt: Any, **kw: Any) -> dict[str, Any]:
    sent = provider.build_chat(req(cfg.name, fmt, **kw), cfg).json
    assert isinstance(sent, dict)
    json.dumps(sent)  # what is sent is JSON, whatever the format was given as
    return sent


# ------------------------------------------------------------------ the forms


@pytest.mark.parametrize(("fmt", "kind"), [
    (Location, "model"), (JSON_SCHEMA_FORM, "json_schema"), ({"type": "json_object"},
                                                             "json_object"),
    ({"type": "text"}, "text"),
])
def test_forms(fmt: Any, kind: str) -> None:
    assert response_format_kind(fmt) == kind


class OnlySchema:
    @classmethod
    def model_json_schema(cls) -> dict[str, Any]:
        return {"type": "object"}


@pytest.mark.parametrize(("fmt", "says"), [
    ("json", "must be a pydantic model class"),
    ({"type": "regex"}, "must be a pydantic model class"),
    ({"json_schema": {}}, "must be a pydantic model class"),
    ({"type": "json_schema", "json_schema": "x"}, "must be a pydantic model class"),
    (OnlySchema, "must be a pydantic model class"),  # no model_validate_json
    (Location(city="a", temperature=1, units="c"), "the model class, not an instance"),
])
@pytest.mark.parametrize(("provider", "cfg"), [
    (openai.PROVIDER, OPENAI_CFG), (AZURE, AZURE_CFG), (anthropic.PROVIDER, ANTHROPIC_CFG),
    (gemini.PROVIDER, GEMINI_CFG),
])
def test_a_bad_format_is_refused_before_sending_on_every_provider(
    fmt: Any, says: str, provider: Any, cfg: ProviderConfig
) -> None:
    with pytest.raises(errors.BadRequestError, match=says) as info:
        body(provider, cfg, fmt)
    assert info.value.provider == cfg.name
    assert info.value.model == "m"


# ------------------------------------------------------------------ what is sent


@pytest.mark.parametrize(("provider", "cfg"), [(openai.PROVIDER, OPENAI_CFG),
                                               (AZURE, AZURE_CFG)])
def test_openai_and_azure_get_the_strict_json_schema_form_for_a_model(
    provider: Any, cfg: ProviderConfig
) -> None:
    sent = body(provider, cfg, Location)
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "Location", "schema": strict_json_schema(Location, "openai"), "strict": True}}
    schema = sent["response_format"]["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["city", "temperature", "units"]


@pytest.mark.parametrize("fmt", [JSON_SCHEMA_FORM, {"type": "json_object"}, {"type": "text"},
                                 {"type": "json_object", "schema": {"type": "object"}}])
def test_openai_dict_forms_pass_through_as_given(fmt: dict[str, Any]) -> None:
    assert body(openai.PROVIDER, OPENAI_CFG, fmt)["response_format"] == fmt


def test_openai_model_allowing_extra_fields_is_refused_before_sending() -> None:
    class Loose(BaseModel):
        model_config = ConfigDict(extra="allow")
        a: int

    with pytest.raises(errors.BadRequestError, match="closed objects") as info:
        body(openai.PROVIDER, OPENAI_CFG, Loose)
    assert info.value.provider == "openai"


def test_anthropic_gets_output_config_in_its_dialect() -> None:
    class Bounded(BaseModel):
        n: int = Field(ge=1)
        tags: list[str]

    sent = body(anthropic.PROVIDER, ANTHROPIC_CFG, Bounded)
    assert sent["output_config"] == {"format": {
        "type": "json_schema", "schema": strict_json_schema(Bounded, "anthropic")}}
    schema = sent["output_config"]["format"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["n"] == {"type": "integer", "title": "N",
                                         "description": '{"minimum": 1}'}
    assert "tools" not in sent and "tool_choice" not in sent  # no forced-tool emulation
    assert "response_format" not in sent
    form = body(anthropic.PROVIDER, ANTHROPIC_CFG, JSON_SCHEMA_FORM)["output_config"]
    assert form["format"]["schema"] == strict_json_schema(Location, "anthropic")


def test_anthropic_output_config_merges_with_extra_body_and_stream() -> None:
    sent = body(anthropic.PROVIDER, ANTHROPIC_CFG, Location, stream=True)
    assert sent["stream"] is True
    assert sent["output_config"]["format"]["type"] == "json_schema"


def test_anthropic_json_object_needs_a_schema() -> None:
    with pytest.raises(errors.BadRequestError, match="no JSON mode without a schema"):
        body(anthropic.PROVIDER, ANTHROPIC_CFG, {"type": "json_object"})
    dropped = body(anthropic.PROVIDER, ANTHROPIC_CFG, {"type": "json_object"}, drop_params=True)
    assert "output_config" not in dropped
    assert "output_config" not in body(anthropic.PROVIDER, ANTHROPIC_CFG, {"type": "text"})


def test_gemini_gets_response_json_schema_never_response_schema() -> None:
    sent = body(gemini.PROVIDER, GEMINI_CFG, Node)  # recursive: $defs / $ref stay
    gen = sent["generationConfig"]
    assert gen == {"responseMimeType": "application/json",
                   "responseJsonSchema": Node.model_json_schema()}
    assert "$ref" in json.dumps(gen["responseJsonSchema"])
    assert "responseSchema" not in json.dumps(sent)
    form = body(gemini.PROVIDER, GEMINI_CFG, JSON_SCHEMA_FORM)["generationConfig"]
    assert form["responseJsonSchema"] == Location.model_json_schema()
    plain = body(gemini.PROVIDER, GEMINI_CFG, {"type": "json_object"})["generationConfig"]
    assert plain == {"responseMimeType": "application/json"}
    assert "generationConfig" not in body(gemini.PROVIDER, GEMINI_CFG, {"type": "text"})


def test_gemini_keeps_other_generation_settings() -> None:
    r = ChatRequest("gemini", "m", MSGS, False, {"response_format": Location, "temperature": 0})
    gen = gemini.PROVIDER.build_chat(r, GEMINI_CFG).json["generationConfig"]
    assert gen["temperature"] == 0
    assert gen["responseMimeType"] == "application/json"


def test_response_format_body_per_dialect() -> None:
    assert response_format_body({"type": "text"}, "anthropic") == {}
    assert response_format_body(Location, "gemini")["generationConfig"]["responseJsonSchema"] \
        == Location.model_json_schema()
    with pytest.raises(errors.BadRequestError) as info:
        response_format_body({"type": "json_object"}, "anthropic", provider="p", model="m")
    assert (info.value.provider, info.value.model) == ("p", "m")


# ------------------------------------------------------------------ answers


def openai_answer(name: str) -> ModelResponse:
    r = ChatRequest("openai", "gpt-4o-2024-08-06", MSGS)
    return openai.PROVIDER.parse_chat(recorded("openai", "bodies", name), r, OPENAI_CFG)


def openai_stream(name: str) -> list[Any]:
    parser = openai.PROVIDER.stream_parser(ChatRequest("openai", "gpt-4o", MSGS, True))
    dec = SSEDecoder()
    events = dec.feed(recorded("openai", "streams", name)) + dec.close()
    return [c for c in map(parser.feed, events) if c is not None]


def test_openai_recorded_answer_parsed_into_the_model() -> None:
    r = parse_response(openai_answer("test_parse_pydantic_model#1"), Location, provider="openai")
    assert r.choices[0].message.parsed == Location(city="San Francisco", temperature=65,
                                                   units="f")
    assert r.choices[0].message.content == '{"city":"San Francisco","temperature":65,"units":"f"}'
    assert r.usage is not None and r.usage.total_tokens == 93
    as_dict = parse_response(openai_answer("test_parse_pydantic_model#1"), JSON_SCHEMA_FORM)
    assert as_dict.choices[0].message.parsed == {"city": "San Francisco", "temperature": 65,
                                                 "units": "f"}


def test_openai_recorded_multiple_choices_each_parsed() -> None:
    r = parse_response(openai_answer("test_parse_pydantic_model_multiple_choices#1"), Location)
    assert [c.message.parsed.temperature for c in r.choices] == [64, 65, 63.0]


def test_openai_recorded_refusal_leaves_parsed_none() -> None:
    r = parse_response(openai_answer("test_parse_pydantic_model_refusal#1"), Location)
    message = r.choices[0].message
    assert message.parsed is None
    assert message.refusal == "I'm very sorry, but I can't assist with that."


def test_openai_recorded_length_cut_off_raises() -> None:
    completion = openai_answer("test_parse_max_tokens_reached#1")
    with pytest.raises(errors.LengthFinishReasonError, match="raise max_tokens") as info:
        parse_response(completion, Location, provider="openai")
    exc = info.value
    assert exc.completion is completion
    assert exc.text == '{"'
    assert (exc.provider, exc.model) == ("openai", "gpt-4o-2024-08-06")
    assert isinstance(exc, errors.StructuredOutputError)


@pytest.mark.parametrize(("name", "expected"), [
    ("test_parse_pydantic_model", Location(city="San Francisco", temperature=61, units="f")),
    ("test_parse_pydantic_model_refusal", None),
])
def test_openai_recorded_streams_give_what_the_plain_call_gives(name: str, expected: Any) -> None:
    chunks = openai_stream(name)
    built = stream_chunk_builder(chunks, response_format=Location)
    assert built.choices[0].message.parsed == expected
    assert stream_chunk_builder(chunks).choices[0].message.parsed is None  # format not given


def test_openai_recorded_stream_cut_off_by_length_raises() -> None:
    chunks = openai_stream("test_parse_max_tokens_reached")
    with pytest.raises(errors.LengthFinishReasonError):
        stream_chunk_builder(chunks, [{"role": "user", "content": "x"}], response_format=Location)


@pytest.mark.parametrize("name", ["TestSyncParse/c11eefc7#0", "TestAsyncParse/924cfccc#0"])
def test_anthropic_recorded_answer_parsed(name: str) -> None:
    r = ChatRequest("anthropic", "claude-sonnet-4-5-20250929", MSGS)
    answer = anthropic.PROVIDER.parse_chat(recorded("anthropic", "bodies", name), r,
                                           ANTHROPIC_CFG)
    parsed = parse_response(answer, Order).choices[0].message.parsed
    assert parsed == Order(product_name="Green Tea", price=5.5, quantity=2)


def test_anthropic_recorded_stream_parsed() -> None:
    r = ChatRequest("anthropic", "claude-sonnet-4-5-20250929", MSGS, True)
    parser = anthropic.PROVIDER.stream_parser(r)
    dec = SSEDecoder()
    raw = recorded("anthropic", "streams", "TestAsyncStream/a8b7dbb8#2")
    chunks = [c for c in map(parser.feed, dec.feed(raw) + dec.close()) if c is not None]
    fmt = {"type": "json_schema", "json_schema": {
        "name": "ids", "schema": {"type": "array", "items": {"type": "integer"}}}}
    assert stream_chunk_builder(chunks, response_format=fmt).choices[0].message.parsed \
        == [12345, 67890]


def test_anthropic_streamed_refusal_is_a_refusal() -> None:
    r = ChatRequest("anthropic", "claude", MSGS, True)
    parser = anthropic.PROVIDER.stream_parser(r)
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [], "stop_reason": None, "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": '{"product'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "refusal"},
                           "usage": {"output_tokens": 2}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    raw = "".join(f"event: {n}\ndata: {json.dumps(d)}\n\n" for n, d in events).encode()
    dec = SSEDecoder()
    chunks = [c for c in map(parser.feed, dec.feed(raw) + dec.close()) if c is not None]
    built = stream_chunk_builder(chunks, response_format=Order)
    message = built.choices[0].message
    assert (message.refusal, message.parsed, message.content) == (
        anthropic.REFUSAL, None, '{"product')


def test_anthropic_refusal_and_max_tokens() -> None:
    r = ChatRequest("anthropic", "claude", MSGS)

    def answer(stop: str, text: str) -> ModelResponse:
        raw = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
               "content": [{"type": "text", "text": text}], "stop_reason": stop,
               "usage": {"input_tokens": 3, "output_tokens": 4}}
        return anthropic.PROVIDER.parse_chat(json.dumps(raw).encode(), r, ANTHROPIC_CFG)

    with pytest.raises(errors.LengthFinishReasonError):
        parse_response(answer("max_tokens", '{"product_na'), Order)
    # A refusal is an answer: message.refusal says so, parsed stays None, nothing raised
    # (it used to raise ContentFilterFinishReasonError, as its finish_reason is
    # content_filter); the text stays in content, it may be a partial answer.
    refused = parse_response(answer("refusal", "I can't help with that."), Order)
    message = refused.choices[0].message
    assert (message.refusal, message.parsed) == (anthropic.REFUSAL, None)
    assert message.content == "I can't help with that."
    assert refused.choices[0].finish_reason == "content_filter"


GEMINI_ANSWER = {  # recorded-style: generateContent with responseJsonSchema
    "candidates": [{"content": {"role": "model", "parts": [
        {"text": '{"city": "San Francisco", "temperature": 61.5, "units": "f"}'}]},
        "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 18, "totalTokenCount": 29},
    "modelVersion": "gemini-2.5-flash", "responseId": "r-1",
}


@pytest.mark.parametrize(("finish", "error"), [
    ("STOP", None), ("MAX_TOKENS", errors.LengthFinishReasonError),
    ("SAFETY", errors.ContentFilterFinishReasonError),
])
def test_gemini_answers(finish: str, error: type[Exception] | None) -> None:
    raw = json.loads(json.dumps(GEMINI_ANSWER))
    raw["candidates"][0]["finishReason"] = finish
    r = ChatRequest("gemini", "gemini-2.5-flash", MSGS)
    answer = gemini.PROVIDER.parse_chat(json.dumps(raw).encode(), r, GEMINI_CFG)
    if error is None:
        parsed = parse_response(answer, Location).choices[0].message.parsed
        assert parsed == Location(city="San Francisco", temperature=61.5, units="f")
    else:
        with pytest.raises(error):
            parse_response(answer, Location)


def plain(content: str | None, **message: Any) -> ModelResponse:
    return ModelResponse("r", 0, "m", (Choice(0, Message(content=content, **message), "stop"),))


@pytest.mark.parametrize("text", ['{"city": 1}', "not json", "", '{"city": "a"'])
def test_text_that_does_not_validate_raises_with_the_text(text: str) -> None:
    completion = plain(text)
    with pytest.raises(errors.StructuredOutputError, match="not valid Location") as info:
        parse_response(completion, Location, provider="p")
    exc = info.value
    assert type(exc) is errors.StructuredOutputError
    assert exc.text == text
    assert isinstance(exc.validation_error, ValidationError)
    assert exc.__cause__ is exc.validation_error
    assert exc.completion is completion


def test_json_forms_use_json_loads_only() -> None:
    assert parse_response(plain('{"any": [1]}'), {"type": "json_object"}) \
        .choices[0].message.parsed == {"any": [1]}
    # no schema validation: a json_schema answer is decoded as it is
    assert parse_response(plain('{"city": 1}'), JSON_SCHEMA_FORM).choices[0].message.parsed \
        == {"city": 1}
    with pytest.raises(errors.StructuredOutputError, match="not valid JSON") as info:
        parse_response(plain("{nope"), {"type": "json_object"})
    assert isinstance(info.value.validation_error, json.JSONDecodeError)


def test_text_format_and_tool_calls_are_not_parsed() -> None:
    same = plain("not json")
    assert parse_response(same, {"type": "text"}) is same
    call = ToolCall("c1", trillm.FunctionCall("f", "{}"))
    answer = plain(None, tool_calls=(call,))
    assert parse_response(answer, Location).choices[0].message.parsed is None
    preface = plain("Let me look that up.", tool_calls=(call,))  # Anthropic's text + tool_use
    assert parse_response(preface, Location).choices[0].message.parsed is None


def test_every_choice_is_checked_for_cut_offs_first() -> None:
    good = Choice(0, Message(content='{"city": "a", "temperature": 1, "units": "c"}'), "stop")
    cut = Choice(1, Message(content='{"ci'), "length")
    with pytest.raises(errors.LengthFinishReasonError):
        parse_response(ModelResponse("r", 0, "m", (good, cut)), Location)


def test_the_answer_is_otherwise_unchanged() -> None:
    answer = openai_answer("test_parse_pydantic_model#1")
    parsed = parse_response(answer, Location)
    assert attrs.evolve(parsed.choices[0].message, parsed=None) == answer.choices[0].message
    assert (parsed.id, parsed.usage, parsed.raw) == (answer.id, answer.usage, answer.raw)


# ------------------------------------------------------------------ Message.parsed


def test_parsed_in_the_mapping_view_and_to_dict() -> None:
    answer = parse_response(openai_answer("test_parse_pydantic_model#1"), Location)
    message = answer.choices[0].message
    assert message["parsed"] is message.parsed
    assert answer["choices"][0]["message"]["parsed"].city == "San Francisco"
    assert answer.to_dict()["choices"][0]["message"]["parsed"] == {
        "city": "San Francisco", "temperature": 65.0, "units": "f"}
    json.dumps(answer.to_dict())
    assert "parsed" not in plain("x").choices[0].message
    as_dict = parse_response(plain('{"a": 1}'), {"type": "json_object"})
    assert as_dict.to_dict()["choices"][0]["message"]["parsed"] == {"a": 1}
    hash(Message(content="x", parsed={"unhashable": []}))  # parsed is left out of the hash


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("cls", [errors.StructuredOutputError, errors.LengthFinishReasonError,
                                 errors.ContentFilterFinishReasonError])
def test_errors_are_never_retried_whatever_the_headers(cls: type[errors.APIError]) -> None:
    exc = cls("x", headers={"x-should-retry": "true"})
    assert not is_retryable(exc)
    assert RetryPolicy().delay(1, exc) is None
    assert getattr(trillm, cls.__name__) is cls
    assert issubclass(cls, errors.APIError)


def test_errors_pickle_with_what_they_carry() -> None:
    completion = plain("{")
    try:
        Location.model_validate_json("{")
    except ValidationError as v:
        exc = errors.StructuredOutputError("bad", text="{", validation_error=v,
                                           completion=completion, provider="openai")
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.text, copy.completion, copy.provider) == ("{", completion, "openai")
    assert isinstance(copy.validation_error, ValidationError)
    assert errors.LengthFinishReasonError("x").text is None


# ------------------------------------------------------------------ the mock's instances


class Shade(enum.Enum):
    DARK = "dark"
    LIGHT = "light"


class Limits(BaseModel):
    n: int = Field(ge=3, le=9)
    above: int = Field(gt=5)
    below: float = Field(lt=-2)
    name: str = Field(min_length=4)
    pair: tuple[int, str]
    few: list[Shade] = Field(min_length=2)
    maybe: Pets | None
    const: Literal["only"]


@pytest.mark.parametrize("model", [*CORPUS, Limits], ids=lambda m: m.__name__)
def test_mock_instances_validate_against_the_model(model: type[BaseModel]) -> None:
    for schema in (strict_json_schema(model, "openai"), model.model_json_schema()):
        instance = schema_instance(schema)
        model.model_validate_json(json.dumps(instance))  # raises if it does not fit
        assert schema_instance(schema) == instance  # deterministic


def test_mock_instance_rules() -> None:
    value = schema_instance(strict_json_schema(Limits, "openai"))
    assert value == {"n": 3, "above": 6, "below": -3.0, "name": "aaaa", "pair": [0, ""],
                     "few": ["dark", "dark"], "maybe": None, "const": "only"}
    pets = schema_instance(strict_json_schema(Pets, "openai"))
    assert pets == {"pet": {"kind": "cat", "meows": 0}}  # the first branch of a union
    assert schema_instance({"type": "object", "properties": {"a": {"type": "string"}}}) == {}
    assert schema_instance({"type": ["boolean", "null"]}) is None
    assert schema_instance({"type": "string", "format": "date-time"}) == "1970-01-01T00:00:00Z"


def test_mock_instance_of_an_endless_schema_is_an_error() -> None:
    endless = {"$defs": {"A": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}},
                               "required": ["a"]}}, "$ref": "#/$defs/A"}
    with pytest.raises(ValueError, match="no finite instance"):
        schema_instance(endless)


def _models() -> st.SearchStrategy[type[BaseModel]]:
    """Small pydantic models built at random from field types trillm's mock must satisfy."""
    leaf = st.sampled_from([
        int, float, str, bool, Shade, Literal["x", "y"], list[int],
        Annotated[int, Field(ge=2)], Annotated[str, Field(min_length=2)], int | None,
    ])

    def build(fields: dict[str, Any]) -> type[BaseModel]:
        annotations = {f"f{i}": t for i, t in enumerate(fields.values())}
        return type("Random", (BaseModel,), {"__annotations__": annotations})

    inner = st.dictionaries(st.text("ab", min_size=1, max_size=3), leaf, max_size=4).map(build)
    field = st.one_of(leaf, inner, inner.map(lambda m: list[m]),  # type: ignore[valid-type]
                      inner.map(lambda m: m | None))
    return st.dictionaries(st.text("abc", min_size=1, max_size=3), field, min_size=1,
                           max_size=5).map(build)


@settings(max_examples=60, deadline=None)
@given(_models())
def test_mock_instances_validate_for_random_models(model: type[BaseModel]) -> None:
    model.model_validate_json(json.dumps(schema_instance(strict_json_schema(model, "openai"))))
