"""What a new user gets wrong first, and what trillm says: each mistake is an error that
names the right form (rate-limit keys, messages, streams used without ``async with``)."""

from __future__ import annotations

import importlib.metadata
from functools import partial
from typing import Any

import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.routing import rate_limit_keys
from trillm.testing import FakeLLM

MSGS = [{"role": "user", "content": "one two"}]


def test_version_is_the_package_metadata_version() -> None:
    assert trillm.__version__ == importlib.metadata.version("trillm")


# ------------------------------------------------------------------ rate_limits keys


@pytest.mark.parametrize(("key", "name"), [
    ("openai", "openai"),
    ("OpenAI", "openai"),
    ("mock", "mock"),
    ("groq", "groq"),
    ("together", "together_ai"),  # an alias: calls are booked under the canonical name
    ("openai_compatible", "openai_compatible"),
    ("openai/gpt-4o-mini", "openai/gpt-4o-mini"),
    ("together/llama-3", "together_ai/llama-3"),
    ("openrouter/meta-llama/llama-3-70b", "openrouter/meta-llama/llama-3-70b"),
    ("gpt-4o-mini", "openai/gpt-4o-mini"),  # a bare name the router places
    ("claude-3-5-haiku-latest", "anthropic/claude-3-5-haiku-latest"),
    ("mock/echo", "mock/echo"),
])
def test_rate_limit_keys_are_named_as_calls_are_routed(key: str, name: str) -> None:
    assert rate_limit_keys({key: 1}) == {name: 1}


def test_rate_limit_keys_with_an_api_base_follow_the_router() -> None:
    limits = {"llama3": 1, "meta-llama/Llama-3.1-8B": 2, "openai/gpt-4o": 3}
    assert rate_limit_keys(limits, api_base="http://localhost:8000/v1") == {
        "openai_compatible/llama3": 1,
        "openai_compatible/meta-llama/Llama-3.1-8B": 2,
        "openai/gpt-4o": 3,
    }


@pytest.mark.parametrize(("key", "near"), [
    ("opnai", "openai"),
    ("opnai/gpt-4o", "openai"),
    ("anthropc/claude-3-5-haiku-latest", "anthropic"),
    ("grok", "groq"),
])
def test_an_unknown_provider_is_a_value_error_naming_the_near_one(key: str, near: str) -> None:
    with pytest.raises(ValueError, match=f"did you mean '{near}'") as info:
        trillm.Client(rate_limits={key: trillm.RateLimit(rpm=60)})
    assert repr(key) in str(info.value)


@pytest.mark.parametrize("key", ["zzz", "nowhere/model", "openai/"])
def test_a_key_that_routes_nowhere_is_a_value_error(key: str) -> None:
    with pytest.raises(ValueError, match="rate_limits key") as info:
        rate_limit_keys({key: 1})
    assert "did you mean" not in str(info.value)


def test_two_keys_for_one_model_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="'gpt-4o' and 'openai/gpt-4o' both name"):
        rate_limit_keys({"gpt-4o": 1, "openai/gpt-4o": 2})


@pytest.mark.parametrize("key", ["", "  ", 3])
def test_a_key_that_is_no_string_is_a_type_error(key: Any) -> None:
    with pytest.raises(TypeError, match="non-empty strings"):
        rate_limit_keys({key: 1})


async def test_a_bare_model_key_paces_that_model(autojump_clock: trio.testing.MockClock) -> None:
    """Before, ``"gpt-4o-mini"`` was accepted and never matched a call: no pacing at all."""
    fake = FakeLLM(strict=True)
    fake.on(model="gpt-4o-mini").reply("ok")
    limits = {"gpt-4o-mini": trillm.RateLimit(rpm=60)}  # one a second
    async with trillm.Client(transport=fake.transport(), api_key="sk-test",
                             rate_limits=limits) as client:
        answers = await trillm.gather(*[partial(client.acompletion, "gpt-4o-mini", MSGS)] * 3)
    assert [r.choices[0].message.content for r in answers] == ["ok"] * 3
    assert [q.started_at for q in fake.requests] == [0.0, 1.0, 2.0]


# ------------------------------------------------------------------ messages


async def test_a_message_without_role_says_which_key_is_missing() -> None:
    async with trillm.Client() as client:
        with pytest.raises(errors.BadRequestError, match=r"messages\[1\] has no 'role'"):
            await client.acompletion("mock/x", [MSGS[0], {"content": "hi"}])


@pytest.mark.parametrize("message", ["hi", ("user", "hi"), None])
async def test_a_message_that_is_no_dict_says_so(message: Any) -> None:
    async with trillm.Client() as client:
        with pytest.raises(errors.BadRequestError,
                           match=rf"messages\[0\] must be a dict .* not {type(message).__name__}"):
            await client.acompletion("mock/x", [message])


# ------------------------------------------------------------------ streams


async def test_async_for_over_stream_without_async_with_shows_the_right_form() -> None:
    with pytest.raises(TypeError, match=r"`async with trillm\.stream\(\.\.\.\) as s: "
                                        r"async for chunk in s: \.\.\.`"):
        async for _ in trillm.stream("mock/x", MSGS):  # type: ignore[attr-defined]
            pass
    async with trillm.Client() as client:
        with pytest.raises(TypeError, match=r"`async with client\.stream\(\.\.\.\) as s:"):
            async for _ in client.stream("mock/x", MSGS):  # type: ignore[attr-defined]
                pass


async def test_plain_for_over_stream_opener_says_async_with_and_async_for() -> None:
    with pytest.raises(TypeError, match=r"async with trillm\.stream.*async for chunk in s"):
        for _ in trillm.stream("mock/x", MSGS):  # type: ignore[attr-defined]
            pass


async def test_awaiting_stream_names_both_right_forms() -> None:
    with pytest.raises(TypeError) as info:
        await trillm.stream("mock/x", MSGS)  # type: ignore[misc]
    assert "`async with trillm.stream(...) as s:`" in str(info.value)
    assert "`s = await trillm.acompletion(..., stream=True)`" in str(info.value)
    async with trillm.Client() as client:
        with pytest.raises(TypeError, match=r"await client\.acompletion\(\.\.\., stream=True\)"):
            await client.stream("mock/x", MSGS)  # type: ignore[misc]
        assert client.statistics().requests_in_flight == 0  # nothing was sent


async def test_plain_for_over_an_open_stream_says_use_async_for() -> None:
    """As RiteLLM's guide writes it, inside an async function."""
    response = await trillm.acompletion("mock/x", MSGS, stream=True)
    async with response:
        with pytest.raises(TypeError, match=r"use `async for`, not `for`"):
            for _ in response:
                pass
        text = [c.choices[0].delta.content async for c in response]
    assert "".join(t for t in text if t) == "one two"  # the stream still works
