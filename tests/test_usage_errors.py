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
