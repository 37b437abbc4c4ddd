"""The async API under anyio's pytest plugin, on both backends: natively under trio, through
the bridge under asyncio.  Same answers, same errors, and a cancel scope that expires closes
the call (the Client then holds nothing)."""

from __future__ import annotations

import anyio
import pytest
import sniffio

import trillm
from trillm import errors

pytestmark = pytest.mark.anyio

MSGS = [{"role": "user", "content": "one two"}]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_calls_and_streams(anyio_backend: str) -> None:
    assert sniffio.current_async_library() == anyio_backend  # really under that loop
    async with trillm.Client(max_concurrency=2) as client:
        r = await client.acompletion("mock/x", MSGS)
        assert r.choices[0].message.content == "one two"
        async with client.stream("mock/x", MSGS) as s:
            assert [c.choices[0].delta.content async for c in s] == ["one", " two", None]
        e = await client.aembedding("mock/e", ["a", "b"])
        assert [d.index for d in e.data] == [0, 1]


async def test_errors_keep_their_class(anyio_backend: str) -> None:
    async with trillm.Client() as client:
        with pytest.raises(errors.ServiceUnavailableError):
            await client.acompletion("mock/x", MSGS, max_retries=0,
                                     mock_response=errors.ServiceUnavailableError("busy"))


async def test_a_cancel_scope_ends_the_call(anyio_backend: str) -> None:
    async with trillm.Client() as client:
        with anyio.move_on_after(0.1) as scope:
            await client.acompletion("mock/x", MSGS, mock_latency=30)
        assert scope.cancelled_caught
        with anyio.move_on_after(0.1) as scope:
            async with client.stream("mock/x", MSGS, mock_chunk_delay=30) as s:
                async for _ in s:
                    pass
        assert scope.cancelled_caught
        assert client.statistics() == trillm.ClientStatistics(0, 0, 0, 0)


async def test_module_level_calls(anyio_backend: str) -> None:
    r = await trillm.acompletion(model="mock/echo", messages=MSGS)
    assert r["choices"][0]["message"]["content"] == "one two"
