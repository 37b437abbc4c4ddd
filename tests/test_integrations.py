"""docs/integrations.md's FastAPI app, served for real by Hypercorn on trio, in front of a fake
upstream: both routes answer, and a client that disconnects mid-stream closes the upstream."""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from trillm.testing import FakeLLM

PAGE = Path(__file__).resolve().parent.parent / "docs" / "integrations.md"
GUARD = 15


def docs_app() -> Any:
    pytest.importorskip("fastapi")
    code = next(m.group(1) for m in re.finditer(r"```python\n(.*?)```", PAGE.read_text(), re.S)
                if "FastAPI()" in m.group(1))
    namespace: dict[str, Any] = {"__name__": "docs_app"}
    exec(compile(code, "integrations.md", "exec"), namespace)
    return namespace["app"]


async def read_two_events_then_disconnect(base: str, body: dict[str, Any]) -> list[bytes]:
    """A plain socket client (httpx's nested body generators would warn when cut short)."""
    url = httpx.URL(base)
    payload = json.dumps(body).encode()
    stream = await trio.open_tcp_stream(url.host, url.port or 80)
    async with stream:
        await stream.send_all(
            b"POST /chat/stream HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
        )
        data = b""
        while data.count(b"data: ") < 2:
            more = await stream.receive_some()
            assert more, "the server closed the stream early"
            data += more
    return [line.strip() for line in data.split(b"\n") if line.startswith(b"data: ")][:2]


def sse_chunk(delta: dict[str, Any]) -> bytes:
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
             "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": delta,
                                                  "finish_reason": None}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


def upstream() -> FakeLLM:
    """The upstream OpenAI: a plain answer, or a stream's first events and then silence."""
    fake = FakeLLM()
    fake.on(when=lambda req: req.stream).respond(
        [sse_chunk({"role": "assistant", "content": ""}), sse_chunk({"content": "Hello"}),
         sse_chunk({"content": " there"})], then="hang")
    fake.on().reply("Hello!")
    return fake


async def test_fastapi_app_under_hypercorn_relays_and_cancels_upstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = docs_app()
    from hypercorn.config import Config
    from hypercorn.trio import serve

    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with trio.fail_after(GUARD):
        up = upstream()
        async with up.serve() as up_url:
            monkeypatch.setenv("OPENAI_BASE_URL", up_url + "/v1")
            monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
            config = Config()
            config.bind = ["127.0.0.1:0"]
            config.accesslog = config.errorlog = None
            shutdown = trio.Event()
            async with trio.open_nursery() as nursery:

                serving = partial(serve, app, config, shutdown_trigger=shutdown.wait)
                base = (await nursery.start(serving))[0]  # Hypercorn reports its binds
                async with httpx.AsyncClient() as client:
                    r = await client.post(base + "/chat", json=body)
                    assert r.json() == {"answer": "Hello!"}
                got = await read_two_events_then_disconnect(base, body)
                assert got[1] == b'data: {"text": "Hello"}'
                await up.requests[1].wait_ended()  # the upstream saw its connection closed
                assert up.requests[1].stream and up.requests[1].cancelled_by_client
                shutdown.set()
