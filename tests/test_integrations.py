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

from tests.fakeserver import Reply, Request, open_fake_server, openai_chat_json, openai_sse

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


def upstream(request: Request) -> Reply:
    if request.json().get("stream"):
        return Reply.sse(openai_sse(["Hello", " there"])[:3], no_end=True)  # then it hangs
    return Reply.json(openai_chat_json("Hello!"))


async def test_fastapi_app_under_hypercorn_relays_and_cancels_upstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = docs_app()
    from hypercorn.config import Config
    from hypercorn.trio import serve

    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with trio.fail_after(GUARD):
        async with open_fake_server(upstream) as up:
            monkeypatch.setenv("OPENAI_BASE_URL", up.base_url + "/v1")
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
                await up.wait_all_closed()  # the upstream saw its connection closed
                shutdown.set()
