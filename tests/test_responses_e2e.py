"""The Responses API end to end on 127.0.0.1 (real sockets, real clock, every wait bounded): an
OpenAI-compatible base and Azure's v1 route, plain and streamed, the 404 of a server without
the API, the sync API, the asyncio bridge and the OpenAI facade against a FakeLLM answering
the recorded payloads (served from a thread for code outside trio); the tests about the
connection itself (its reuse, its closing on cancellation, a body ending before the terminal
event) stay on tests/fakeserver.py, which counts and watches connections; and the mock through
the sync API and asyncio."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import trio

import trillm
from tests.fake_openai import serving_in_thread
from tests.fakeserver import Reply, Request, open_fake_server
from trillm import errors
from trillm.testing import FakeLLM, FakeRequest

FIXTURES = Path(__file__).parent / "fixtures" / "openai"
GUARD = 10.0
TEXT = "Hi there! How can I help?"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def wire_events(name: str = "responses_stream_text.sse") -> list[bytes]:
    return [part + b"\n\n" for part in fixture(name).split(b"\n\n") if part]


def handler(request: Request) -> Reply:
    """The Responses API at /v1/responses (and Azure's /openai/v1/responses); 404 elsewhere."""
    if request.path.split("?")[0] not in ("/v1/responses", "/openai/v1/responses"):
        return Reply.json({"detail": "Not Found"}, status=404)
    if request.json().get("stream"):
        return Reply.sse(wire_events())
    return Reply.json(json.loads(fixture("responses_stream_text.json")))


RESPONSES_PATHS = ("/v1/responses", "/openai/v1/responses")


def recorded(request: FakeRequest) -> Any:
    """The recorded answer of the Responses API: the SSE events, or the JSON response."""
    if json.loads(request.body).get("stream"):
        return wire_events()
    return json.loads(fixture("responses_stream_text.json"))


def responses_fake() -> FakeLLM:
    """A FakeLLM with the Responses API at /v1/responses (and Azure's /openai/v1/responses),
    answering the recorded payloads; 404 elsewhere."""
    fake = FakeLLM()
    fake.on(when=lambda r: r.path.split("?")[0] in RESPONSES_PATHS).respond(recorded)
    fake.on().respond({"detail": "Not Found"}, status=404)
    return fake


def body(request: FakeRequest) -> dict[str, Any]:
    return json.loads(request.body)


# ------------------------------------------------------------------ under trio


async def test_plain_and_streamed_against_an_openai_compatible_server() -> None:
    with trio.fail_after(GUARD):
        async with open_fake_server(handler) as server, trillm.Client(
                api_base=server.base_url + "/v1", api_key="sk-e2e-test-key") as client:
            plain = await client.aresponses("openai/gpt-4.1", "hi", instructions="Be brief.")
            async with client.responses_stream("openai/gpt-4.1", "hi") as s:
                events = [e async for e in s]
                streamed = await s.final_response()
            again = await client.aresponses("openai/gpt-4.1", "hi")
            stats = client.statistics()
    assert plain.output_text == streamed.output_text == again.output_text == TEXT
    assert streamed == plain  # the same record (headers and raw are not compared)
    assert events[-1].type == "response.completed"
    assert "".join(e.delta or "" for e in events) == TEXT
    first, second, _ = server.requests
    assert first.path == "/v1/responses"
    assert first.headers["authorization"] == "Bearer sk-e2e-test-key"
    assert first.json() == {"model": "gpt-4.1", "input": "hi", "instructions": "Be brief."}
    assert second.json() == {"model": "gpt-4.1", "input": "hi", "stream": True}
    assert server.connections_opened == 1  # the stream gave its connection back
    assert (stats.open_streams, stats.requests_in_flight) == (0, 0)


async def test_azure_uses_its_v1_route() -> None:
    fake = responses_fake()
    with trio.fail_after(GUARD):
        async with fake.serve() as url, trillm.Client() as client:
            kw: dict[str, Any] = {"api_base": url, "api_key": "azure-key-0123456"}
            r = await client.aresponses("azure/my-gpt4o-deployment", "hi", **kw)
            async with client.responses_stream("azure/my-gpt4o-deployment", "hi",
                                               api_version="preview", **kw) as s:
                final = await s.final_response()
    assert r.output_text == final.output_text == TEXT
    plain, streamed = fake.requests
    assert plain.path == "/openai/v1/responses"
    assert streamed.path == "/openai/v1/responses?api-version=preview"
    assert plain.sent_secret("api-key", "azure-key-0123456")
    assert "authorization" not in plain.headers
    assert body(plain)["model"] == "my-gpt4o-deployment"


async def test_a_server_without_the_responses_api_says_so() -> None:
    fake = responses_fake()
    with trio.fail_after(GUARD):
        async with fake.serve() as url, trillm.Client() as client:
            with pytest.raises(errors.NotFoundError, match="no Responses API") as info:
                await client.aresponses("openai/llama3", "hi", api_base=url)
    assert f"POST {url}/responses answered 404" in str(info.value)
    assert len(fake.requests) == 1  # a 404 is not retried


async def test_cancelling_mid_stream_closes_the_connection() -> None:
    def slow(request: Request) -> Reply:
        return Reply.sse(wire_events()[:5], no_end=True)

    with trio.fail_after(GUARD):
        async with open_fake_server(slow) as server, trillm.Client(
                api_base=server.base_url + "/v1", api_key="k") as client:
            got = []
            with trio.move_on_after(0.5) as scope:
                async with client.responses_stream("openai/gpt-4.1", "hi") as s:
                    async for e in s:
                        got.append(e.type)
            assert scope.cancelled_caught
            assert s.closed
            await server.wait_all_closed()
            assert client.statistics().open_streams == 0
    assert got[0] == "response.created" and "response.completed" not in got


async def test_the_end_of_the_body_before_the_terminal_event_is_a_stream_error() -> None:
    def cut(request: Request) -> Reply:
        return Reply.sse(wire_events()[:6])

    with trio.fail_after(GUARD):
        async with open_fake_server(cut) as server, trillm.Client(
                api_base=server.base_url + "/v1", api_key="k") as client:
            async with client.responses_stream("openai/gpt-4.1", "hi") as s:
                with pytest.raises(errors.StreamError, match="truncated"):
                    async for _ in s:
                        pass
            assert client.statistics().open_streams == 0
    assert len(server.requests) == 1


async def test_the_facade_under_trio() -> None:
    fake = responses_fake()
    with trio.fail_after(GUARD):
        async with fake.serve() as url:
            async with trillm.AsyncOpenAI(base_url=url + "/v1",
                                          api_key="k") as client:
                r = await client.responses.create(model="gpt-4.1", input="hi")
                stream = await client.responses.create(model="gpt-4.1", input="hi",
                                                       stream=True)
                async with stream:
                    deltas = [e.delta async for e in stream if e.delta]
    assert r.output_text == "".join(deltas) == TEXT
    assert [body(q)["model"] for q in fake.requests] == ["gpt-4.1", "gpt-4.1"]


# ------------------------------------------------------------------ sync and asyncio


def test_sync_plain_and_streamed() -> None:
    fake = responses_fake()
    with serving_in_thread(fake) as url:
        kw: dict[str, Any] = {"api_base": url + "/v1", "api_key": "k"}
        r = trillm.responses("openai/gpt-4.1", "hi", **kw)
        s = trillm.responses("openai/gpt-4.1", "hi", stream=True, **kw)
        assert isinstance(s, trillm.SyncResponseStream)
        with s:
            first = next(s)
            final = s.final_response()
        assert s.closed
        types = [e.type for e in trillm.responses("openai/gpt-4.1", "hi", stream=True, **kw)]
        facade = trillm.OpenAI(base_url=url + "/v1", api_key="k")
        with facade:
            fr = facade.responses.create(model="gpt-4.1", input="hi")
            fdeltas = [e.delta for e in facade.responses.create(model="gpt-4.1", input="hi",
                                                                 stream=True) if e.delta]
    assert r.output_text == final.output_text == fr.output_text == "".join(fdeltas) == TEXT
    assert first.type == "response.created"
    assert types[-1] == "response.completed"
    assert len(fake.requests) == 5


def test_sync_with_the_mock() -> None:
    r = trillm.responses("mock/x", "sync echo")
    assert r.output_text == "sync echo"
    events = list(trillm.responses("mock/x", "one two", stream=True))
    assert [e.delta for e in events if e.delta] == ["one", " two"]
    assert events[-1].response is not None and events[-1].response.output_text == "one two"


async def test_the_sync_call_refuses_inside_trio() -> None:
    with pytest.raises(RuntimeError, match=r"await trillm\.aresponses"):
        trillm.responses("mock/x", "hi")
    with pytest.raises(RuntimeError, match=r"trillm\.responses_stream"):
        trillm.responses("mock/x", "hi", stream=True)


def test_under_asyncio() -> None:
    async def main(base: str) -> dict[str, Any]:
        kw: dict[str, Any] = {"api_base": base, "api_key": "k"}
        r = await trillm.aresponses("openai/gpt-4.1", "hi", **kw)
        async with trillm.responses_stream("openai/gpt-4.1", "hi", **kw) as s:
            types = [e.type async for e in s]
            text = s.output_text
            final = await s.final_response()
        async with trillm.responses_stream("mock/x", "a b c") as m:
            await m.__anext__()
            mock_final = await m.final_response()
        facade = trillm.AsyncOpenAI(base_url=base, api_key="k")
        async with facade:
            stream = await facade.responses.create(model="gpt-4.1", input="hi", stream=True)
            async with stream:
                fdeltas = [e.delta async for e in stream if e.delta]
        return {"r": r.output_text, "types": types, "text": text, "final": final.output_text,
                "mock": mock_final.output_text, "facade": "".join(fdeltas)}

    with serving_in_thread(responses_fake()) as url:
        got = asyncio.run(main(url + "/v1"))
    assert got["r"] == got["text"] == got["final"] == got["facade"] == TEXT
    assert got["types"][0] == "response.created" and got["types"][-1] == "response.completed"
    assert got["mock"] == "a b c"
