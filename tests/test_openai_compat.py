"""``trillm.AsyncOpenAI`` and ``trillm.OpenAI``: the OpenAI SDK's call shape over a Client.

Each facade method on the mock provider, under trio (``async def`` tests) and
under asyncio (plain tests calling ``asyncio.run``); the sync twin; ``models.list()``;
routing with and without ``base_url`` (a local fake OpenAI server); the facade's
lifetime (``async with``, or opened on first use and closed with its run); and the
OpenAI SDK's error names.  The article's examples are in ``test_openai_article.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import trio

import trillm
from tests.fake_openai import FakeOpenAI
from trillm import errors
from trillm.openai_compat import ModelsPage, SyncSpeechResponse

MSGS = [{"role": "user", "content": "one two three"}]




# ------------------------------------------------------------------ each method, on the mock


async def every_method(client: trillm.AsyncOpenAI, tmp: Path) -> dict[str, Any]:
    """Every facade method once, on the mock; what each gave, as plain data."""
    chat = await client.chat.completions.create(model="mock/gpt-4o-mini", messages=MSGS,
                                                temperature=0.2)
    stream = await client.chat.completions.create(model="mock/gpt-4o-mini", messages=MSGS,
                                                  stream=True)
    chunks = [c.choices[0].delta.content async for c in stream]
    emb = await client.embeddings.create(model="mock/text-embedding-3-small",
                                         input=["a", "b"], dimensions=4)
    img = await client.images.generate(model="mock/dall-e-3", prompt="a cat", n=2,
                                       response_format="b64_json")
    audio = tmp / "hello.wav"
    audio.write_bytes(b"RIFF....")
    with audio.open("rb") as f:
        text = await client.audio.transcriptions.create(model="mock/whisper-1", file=f)
    plain = await client.audio.transcriptions.create(
        model="mock/whisper-1", file=("named.mp3", b"xyz"), response_format="text")
    speech = await client.audio.speech.create(model="mock/tts-1", input="hi", voice="alloy")
    models = await client.models.list(provider="mock")
    listed = [m.id async for m in client.models.list(provider="mock")]
    return {
        "chat": chat.choices[0].message.content, "chat_dict": dict(chat["choices"][0]["message"]),
        "chunks": chunks, "stream_closed": stream.closed,
        "emb": [(d.index, len(d.embedding)) for d in emb.data],
        "img": len(img.data), "img_b64": bool(img.data[0].b64_json),
        "text": text.text, "plain": plain,
        "speech": speech.content[:4], "models": [m.id for m in models.data], "listed": listed,
    }


EXPECTED = {
    "chat": "one two three", "chat_dict": {"role": "assistant", "content": "one two three"},
    "chunks": ["one", " two", " three", None], "stream_closed": True,
    "emb": [(0, 4), (1, 4)], "img": 2, "img_b64": True,
    "text": "Mock transcription of hello.wav", "plain": "Mock transcription of named.mp3",
    "speech": b"RIFF", "models": ["mock-chat", "mock-embedding"],
    "listed": ["mock-chat", "mock-embedding"],
}


async def test_every_method_under_trio(tmp_path: Path) -> None:
    async with trillm.AsyncOpenAI() as client:
        assert await every_method(client, tmp_path) == EXPECTED
        assert client._inner.statistics().open_streams == 0
    assert "not open" in repr(client)


def test_every_method_under_asyncio(tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        async with trillm.AsyncOpenAI() as client:
            got = await every_method(client, tmp_path)
        assert "not open" in repr(client)
        return got

    assert asyncio.run(asyncio.wait_for(main(), 20)) == EXPECTED


def test_without_async_with_under_asyncio(tmp_path: Path) -> None:
    client = trillm.AsyncOpenAI()  # made outside any loop, as at a module's top

    async def main() -> list[str]:
        got = await asyncio.gather(*[  # concurrent first calls open it once
            client.chat.completions.create(model="mock/m", messages=[
                {"role": "user", "content": f"n{i}"}]) for i in range(8)])
        assert "open" in repr(client)
        async for chunk in await client.chat.completions.create(
                model="mock/m", messages=MSGS, stream=True):
            assert chunk.choices
        await client.close()
        await client.close()  # idempotent
        return [r.choices[0].message.content for r in got]

    assert asyncio.run(asyncio.wait_for(main(), 20)) == [f"n{i}" for i in range(8)]
    assert "not open" in repr(client)


FACADE = trillm.AsyncOpenAI()  # module-level, used by two trio runs in a row


@pytest.mark.parametrize("run", [1, 2])
async def test_without_async_with_under_trio_each_run(run: int) -> None:
    async with trio.open_nursery() as nursery:  # concurrent first calls open it once
        for i in range(4):
            nursery.start_soon(lambda i=i: FACADE.chat.completions.create(
                model="mock/m", messages=[{"role": "user", "content": f"{run}-{i}"}]))
    assert "open" in repr(FACADE)
    r = await FACADE.chat.completions.create(model="mock/m", messages=MSGS)
    assert r.choices[0].message.content == "one two three"
    # left open: the run's end closes it, so the next test's run opens it again


def test_the_run_that_opened_it_closes_it() -> None:
    client = trillm.AsyncOpenAI()

    async def use() -> None:
        await client.models.list(provider="mock")
        assert "open" in repr(client)

    trio.run(use)
    assert "not open" in repr(client)
    trio.run(use)  # a second run opens it again
    assert "not open" in repr(client)


def test_open_in_one_loop_is_refused_in_another() -> None:
    client = trillm.AsyncOpenAI()

    async def under_asyncio() -> None:
        await client.models.list(provider="mock")

    async def under_trio() -> None:
        with pytest.raises(RuntimeError, match="open in another trio run"):
            await client.models.list(provider="mock")

    asyncio.run(under_asyncio())
    try:
        trio.run(under_trio)
    finally:
        asyncio.run(client.close())
    assert "not open" in repr(client)


async def test_stream_closes_on_break_and_in_async_with() -> None:
    async with trillm.AsyncOpenAI() as client:
        stream = await client.chat.completions.create(model="mock/m", messages=MSGS,
                                                      stream=True)
        async with stream:
            async for _ in stream:
                break
        assert stream.closed
        assert client._inner.statistics().open_streams == 0


# ------------------------------------------------------------------ the sync twin


def test_sync_openai(tmp_path: Path) -> None:
    with trillm.OpenAI() as client:
        r = client.chat.completions.create(model="mock/m", messages=MSGS)
        assert r.choices[0].message.content == "one two three"
        stream = client.chat.completions.create(model="mock/m", messages=MSGS, stream=True)
        assert isinstance(stream, trillm.SyncStream)
        assert [c.choices[0].delta.content for c in stream] == ["one", " two", " three", None]
        assert stream.closed
        assert len(client.embeddings.create(model="mock/e", input="x").data) == 1
        assert client.images.generate(model="mock/dall-e-3", prompt="p").data[0].url
        assert client.audio.transcriptions.create(
            model="mock/w", file=b"abc", response_format="srt") == "Mock transcription of audio"
        speech = client.audio.speech.create(model="mock/tts-1", input="hi", voice="alloy")
        assert isinstance(speech, SyncSpeechResponse) and speech.read()[:4] == b"RIFF"
        speech.write_to_file(tmp_path / "out.wav")
        assert (tmp_path / "out.wav").read_bytes() == speech.content
        with pytest.raises(TypeError, match="stream=True"):
            client.audio.speech.create(model="mock/tts-1", input="hi", voice="a", stream=True)
        assert client.models.list(provider="mock").data[0].id == "mock-chat"
        assert "open" in repr(client)
    assert "not open" in repr(client)
    client.close()  # idempotent


async def test_sync_openai_refuses_inside_trio() -> None:
    client = trillm.OpenAI()
    for stream in (False, True):
        with pytest.raises(RuntimeError, match="would block the running trio loop"):
            client.chat.completions.create(model="mock/m", messages=MSGS, stream=stream)


# ------------------------------------------------------------------ routing and models.list


def test_base_url_sends_every_model_whole_to_that_server(
        server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    names = ["gpt-4o-mini", "claude-3-5-haiku-latest", "meta-llama/Llama-3.1-8B-Instruct",
             "openai/gpt-oss-20b", "llama3"]

    async def main() -> list[str]:
        async with trillm.AsyncOpenAI(base_url=server.url + "/v1",
                                      default_headers={"x-team": "a"}) as client:
            out = []
            for name in names:
                r = await client.chat.completions.create(model=name, messages=MSGS)
                out.append(r.model)
            models = await client.models.list()
        assert [m.id for m in models.data] == ["gpt-4o-mini", "llama3"]
        return out

    assert asyncio.run(asyncio.wait_for(main(), 20)) == names
    posts = [r for r in server.requests if r.parsed.method == "POST"]
    assert [r.model for r in posts] == names
    assert {r.path for r in posts} == {"/v1/chat/completions"}
    assert all("authorization" not in r.headers and r.headers["x-team"] == "a"
               for r in server.requests)
    assert (server.requests[-1].parsed.method, server.requests[-1].path) == ("GET", "/v1/models")


async def test_base_url_with_a_key_sends_it(server: FakeOpenAI) -> None:
    async with trillm.AsyncOpenAI(base_url=server.url + "/v1/", api_key="sk-given-1234",
                                  max_retries=0) as client:
        with trio.fail_after(10):
            page = client.models.list()
            assert isinstance(page, ModelsPage)
            assert [m.id async for m in page] == ["gpt-4o-mini", "llama3"]
    assert server.requests[0].sent_secret("authorization", "Bearer sk-given-1234")


def test_without_base_url_trillms_routing_applies(
        server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-facade-test")

    async def main() -> None:
        async with trillm.AsyncOpenAI() as client:
            with pytest.raises(errors.NotFoundError):
                await client.chat.completions.create(model="claude-3-5-haiku-latest",
                                                     messages=MSGS, max_tokens=10)
            mocked = await client.chat.completions.create(model="mock/x", messages=MSGS)
            assert mocked.choices[0].message.content == "one two three"

    asyncio.run(asyncio.wait_for(main(), 20))
    (req,) = server.requests
    assert (req.parsed.method, req.path, req.model) == ("POST", "/v1/messages",
                                                        "claude-3-5-haiku-latest")
    assert req.sent_secret("x-api-key", "sk-ant-facade-test")


def test_models_list_against_openai_base_url(openai_env: FakeOpenAI) -> None:
    with trillm.OpenAI() as client:
        assert [m.id for m in client.models.list().data] == ["gpt-4o-mini", "llama3"]
    (req,) = openai_env.requests
    assert (req.parsed.method, req.path, req.parsed.json) == ("GET", "/v1/models", None)
    assert req.sent_secret("authorization", "Bearer sk-facade-test-key")


async def test_unsupported_sdk_keyword() -> None:
    async with trillm.AsyncOpenAI() as client:
        with pytest.raises(TypeError, match="extra_query"):
            await client.chat.completions.create(model="mock/m", messages=MSGS,
                                                 extra_query={"a": "b"})


# ------------------------------------------------------------------ the error names


def test_sdk_error_names_exist_on_trillm() -> None:
    from trillm import (  # noqa: F401 - the names the SDK exports at its top level
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        ConflictError,
        InternalServerError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        UnprocessableEntityError,
    )

    assert APITimeoutError is errors.Timeout is trillm.errors.APITimeoutError
    assert RateLimitError is errors.RateLimitError
    assert issubclass(RateLimitError, APIStatusError)
    assert not issubclass(APIConnectionError, APIStatusError)


async def test_sdk_error_names_catch_the_facades_errors() -> None:
    async with trillm.AsyncOpenAI(max_retries=0) as client:
        with pytest.raises(trillm.APIStatusError) as info:
            await client.chat.completions.create(
                model="mock/m", messages=MSGS, mock_response=errors.RateLimitError("slow"))
        assert isinstance(info.value, trillm.RateLimitError) and info.value.status_code == 429
        with pytest.raises(trillm.APITimeoutError):
            await client.chat.completions.create(model="mock/m", messages=MSGS,
                                                 mock_latency=5, timeout=0.01)
        with pytest.raises(trillm.APIConnectionError):
            await client.embeddings.create(
                model="mock/e", input="x", mock_response=errors.APIConnectionError("down"))


def test_sdk_error_names_under_asyncio() -> None:
    async def main() -> None:
        async with trillm.AsyncOpenAI(timeout=0.05, max_retries=0) as client:
            with pytest.raises(trillm.APITimeoutError) as info:
                await client.chat.completions.create(model="mock/m", messages=MSGS,
                                                     mock_latency=5)
            assert isinstance(info.value, TimeoutError)

    asyncio.run(asyncio.wait_for(main(), 20))


def test_import_trillm_stays_cheap() -> None:
    import subprocess
    import sys

    code = ("import sys, trillm; assert 'trillm.openai_compat' not in sys.modules; "
            "from trillm import AsyncOpenAI, OpenAI; "
            "assert AsyncOpenAI.__module__ == 'trillm.openai_compat'; "
            "assert 'AsyncOpenAI' in trillm.__all__ and 'OpenAI' in trillm.__all__")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
