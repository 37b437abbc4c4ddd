"""What a new user gets wrong first, and what trillm says: each mistake is an error that
names the right form (rate-limit keys, messages, streams used without ``async with``)."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

import trillm
from trillm import errors

MSGS = [{"role": "user", "content": "one two"}]


def test_version_is_the_package_metadata_version() -> None:
    assert trillm.__version__ == importlib.metadata.version("trillm")


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
