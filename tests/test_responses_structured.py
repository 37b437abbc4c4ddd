"""Structured output on the Responses API: ``text_format=Model`` sends the model's strict
schema as ``text.format`` and fills ``Response.output_parsed``, plain, streamed
(``final_response()``), sync, through the facade's ``responses.parse`` and with the mock;
cut-offs, refusals and invalid JSON follow the rules of chat's ``response_format``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from pydantic import BaseModel, ConfigDict

import trillm
from tests.fake_openai import serving_in_thread
from trillm import errors
from trillm.response_types import ResponsesRequest
from trillm.structured import parse_response_output, strict_json_schema, text_format_body
from trillm.testing import FakeLLM

FIXTURES = Path(__file__).parent / "fixtures" / "openai"
GUARD = 10.0
ANSWER = '{"name": "Paris", "country": "France", "tags": ["capital"]}'


class City(BaseModel):
    name: str
    country: str
    tags: list[str]


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str


FORMAT = {"type": "json_schema", "name": "City", "schema": strict_json_schema(City, "openai"),
          "strict": True}


def answering(text: str = ANSWER) -> FakeLLM:
    """A Responses API fake whose answer is *text*, plain or streamed, once the schema
    arrived (a 400 otherwise)."""
    fake = FakeLLM()
    fake.on(operation="responses",
            when=lambda req: req.params.get("text", {}).get("format") == FORMAT).reply(text)
    fake.on().respond(lambda req: {"error": {
        "message": f"bad text.format: {req.params.get('text')}"}}, status=400)
    return fake


def parsed_fixture(name: str) -> trillm.Response:
    from trillm.providers.openai import PROVIDER

    req = ResponsesRequest("openai", "gpt-4.1", "hi")
    response: trillm.Response = PROVIDER.parse_responses(
        (FIXTURES / name).read_bytes(), req, None, {})
    return response


# ------------------------------------------------------------------ what is sent


def test_text_format_becomes_text_format_with_the_strict_schema() -> None:
    assert text_format_body(City) == {"format": FORMAT}
    assert text_format_body(City, {"verbosity": "low"}) == {"verbosity": "low", "format": FORMAT}


@pytest.mark.parametrize(("text_format", "text", "match"), [
    (City, {"format": {"type": "text"}}, "not both"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}, None,
     "takes a pydantic model class"),
    (City(name="a", country="b", tags=[]), None, "takes a pydantic model class"),
    (Open, None, "additionalProperties"),
])
async def test_bad_text_format_is_refused_before_any_traffic(
        text_format: Any, text: Any, match: str) -> None:
    fake = FakeLLM(strict=True)
    async with trillm.Client(transport=fake.transport(), api_key="k") as client:
        with pytest.raises(errors.BadRequestError, match=match):
            await client.aresponses("openai/gpt-4.1", "hi", text_format=text_format, text=text)
    assert fake.requests == []  # nothing was sent


# ------------------------------------------------------------------ the answer


def test_the_rules_on_recorded_answers() -> None:
    refusal = parsed_fixture("responses_refusal.json")
    assert parse_response_output(refusal, City).output_parsed is None
    calls = parsed_fixture("responses_function_call.json")
    assert parse_response_output(calls, City).output_parsed is None
    cut = parsed_fixture("responses_incomplete.json")
    with pytest.raises(errors.LengthFinishReasonError, match="max_output_tokens") as info:
        parse_response_output(cut, City)
    assert info.value.completion is cut and info.value.text == cut.output_text
    filtered = trillm.Response("r", "m", status="incomplete",
                               incomplete_details={"reason": "content_filter"})
    with pytest.raises(errors.ContentFilterFinishReasonError):
        parse_response_output(filtered, City)
    text = parsed_fixture("responses_text.json")
    with pytest.raises(errors.StructuredOutputError, match="not valid City") as bad:
        parse_response_output(text, City)
    assert bad.value.text == text.output_text and bad.value.validation_error is not None


async def test_plain_and_streamed_against_a_server() -> None:
    with trio.fail_after(GUARD):
        fake = answering()
        async with fake.serve() as url, trillm.Client(api_base=url + "/v1",
                                                      api_key="k") as client:
            plain = await client.aresponses("openai/gpt-4.1", "Where?", text_format=City)
            async with client.responses_stream("openai/gpt-4.1", "Where?",
                                               text_format=City) as s:
                streamed = await s.final_response()
            opened = await client.aresponses("openai/gpt-4.1", "Where?", text_format=City,
                                             stream=True)
            async with opened:
                also = await opened.final_response()
    expected = City(name="Paris", country="France", tags=["capital"])
    assert plain.output_parsed == streamed.output_parsed == also.output_parsed == expected
    assert "text_format" not in json.dumps(json.loads(fake.requests[0].body))
    assert [q.status for q in fake.requests] == [200, 200, 200]


async def test_invalid_json_raises_once_and_is_not_retried() -> None:
    with trio.fail_after(GUARD):
        fake = answering('{"name": "Paris"')
        async with fake.serve() as url, trillm.Client(api_base=url + "/v1", api_key="k",
                                                      max_retries=3) as client:
            with pytest.raises(errors.StructuredOutputError) as info:
                await client.aresponses("openai/gpt-4.1", "Where?", text_format=City)
            async with client.responses_stream("openai/gpt-4.1", "Where?",
                                               text_format=City) as s:
                with pytest.raises(errors.StructuredOutputError):
                    await s.final_response()
    assert info.value.text == '{"name": "Paris"'
    assert len(fake.requests) == 2


async def test_the_mock_answers_a_valid_instance() -> None:
    r = await trillm.aresponses("mock/x", "Where?", text_format=City)
    assert r.output_parsed == City(name="", country="", tags=[])
    async with trillm.responses_stream("mock/x", "Where?", text_format=City) as s:
        assert (await s.final_response()).output_parsed == r.output_parsed
    said = await trillm.aresponses("mock/x", "Where?", text_format=City, mock_response=ANSWER)
    assert said.output_parsed == City.model_validate_json(ANSWER)


async def test_the_async_facade_parses() -> None:
    with trio.fail_after(GUARD):
        async with answering().serve() as url, trillm.AsyncOpenAI(
                base_url=url + "/v1", api_key="k") as client:
            r = await client.responses.parse(model="gpt-4.1", input="Where?", text_format=City)
            with pytest.raises(TypeError, match="does not stream"):
                await client.responses.parse(model="gpt-4.1", input="x", text_format=City,
                                             stream=True)
    assert r.output_parsed == City(name="Paris", country="France", tags=["capital"])


def test_sync_and_the_sync_facade() -> None:
    with serving_in_thread(answering()) as url:
        kw: dict[str, Any] = {"api_base": url + "/v1", "api_key": "k"}
        r = trillm.responses("openai/gpt-4.1", "Where?", text_format=City, **kw)
        with trillm.responses("openai/gpt-4.1", "Where?", text_format=City, stream=True,
                              **kw) as s:
            final = s.final_response()
        with trillm.OpenAI(base_url=url + "/v1", api_key="k") as facade:
            fr = facade.responses.parse(model="gpt-4.1", input="Where?", text_format=City)
    expected = City(name="Paris", country="France", tags=["capital"])
    assert r.output_parsed == final.output_parsed == fr.output_parsed == expected
