"""Acceptance: the asyncio examples of LiteLLM's and RiteLLM's async guides run on trillm with
only their import changed, under real asyncio.

The examples live in ``tests/fixtures/seed_guides/*.md`` as users paste them (see its README).
Each runs as a script under plain ``asyncio.run`` with ``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``
and ``GEMINI_API_BASE`` pointing at trillm.testing's FakeLLM served from a thread on 127.0.0.1.
Also here: a notebook cell's top-level ``await`` in a real IPython shell with its default asyncio
autoawait, and the FastAPI apps (the guide's, and docs/asyncio.md's with its SSE relay) served
by uvicorn.

These are plain ``def`` tests (pytest-trio runs every ``async def`` test under trio). Every wait
is bounded: ``hang_guard`` for the scripts, socket timeouts and joins for the servers.
"""

from __future__ import annotations

import contextlib
import gc
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_docs import (
    TEXT,
    close_ipython_asyncio_loop,
    hang_guard,
    script_docs_providers,
    serve_fake_providers,
)
from trillm.testing import FakeLLM

ROOT = Path(__file__).resolve().parent.parent
GUIDES = ROOT / "tests" / "fixtures" / "seed_guides"
BLOCK = re.compile(r"^## (.*?)\n.*?^```python([^\n]*)\n(.*?)^```", re.S | re.M)
GUARD = 20


def _examples() -> list[tuple[str, dict[str, str], str]]:
    found = []
    for path in sorted(GUIDES.glob("*.md")):
        for m in BLOCK.finditer(path.read_text()):
            words = m.group(2).split()
            flags = dict(w.partition("=")[::2] for w in words)
            slug = re.sub(r"[^a-z0-9]+", "-", m.group(1).lower()).strip("-")
            found.append((f"{path.stem}:{slug}", flags, m.group(3)))
    return found


EXAMPLES = _examples()
SCRIPTS = [(where, flags, code) for where, flags, code in EXAMPLES if "app" not in flags]


def _stalled_event(word: str) -> bytes:
    event = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini",
             "choices": [{"index": 0, "delta": {"content": word}}]}
    return f"data: {json.dumps(event)}\n\n".encode()


class Upstream(FakeLLM):
    """The docs' fake providers (``mode="answer"``), or with one fault: ``hang`` (read the
    request, never answer) or ``stall`` (a stream's two events, then silence; other requests
    answered).  :meth:`closed_by_client` waits, from the test's thread, until the client
    closed a request the fake was still answering."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode == "hang":
            self.on().hang()
        elif mode == "stall":
            self.on(when=lambda r: r.stream).respond(
                [_stalled_event("Hello"), _stalled_event(" there")], then="hang")
        script_docs_providers(self)

    def closed_by_client(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not any(r.cancelled_by_client for r in list(self.requests)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


@contextlib.contextmanager
def upstream(mode: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstream]:
    fake = Upstream(mode)
    with serve_fake_providers(fake) as base:
        monkeypatch.setenv("OPENAI_BASE_URL", base + "/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-seed-test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", base)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-seed-test-key")
        monkeypatch.setenv("GEMINI_API_BASE", base)
        monkeypatch.setenv("GEMINI_API_KEY", "seed-test-gemini-key")
        yield fake


def test_the_guides_examples_are_all_here() -> None:
    names = [where for where, _, _ in EXAMPLES]
    assert len([n for n in names if n.startswith("litellm")]) >= 15
    assert len([n for n in names if n.startswith("ritellm")]) >= 9
    for where, _, code in EXAMPLES:  # only the import changed
        assert "litellm" not in code.replace("trillm", ""), where


@pytest.mark.parametrize(("where", "flags", "code"), SCRIPTS, ids=[w for w, _, _ in SCRIPTS])
def test_guide_example_runs_under_asyncio(
    where: str, flags: dict[str, str], code: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with upstream(flags.get("upstream", "answer"), monkeypatch) as server:
        with hang_guard(GUARD):
            if "raises" in flags:
                assert flags["raises"] == "TypeError"
                with pytest.raises(TypeError, match="async for") as info:
                    exec(compile(code, where, "exec"), {"__name__": "__main__"})
                assert "async for" in str(info.value)
            elif "warns" in flags:  # a stream left open with `break`: closed when collected
                assert flags["warns"] == "ResourceWarning"
                with pytest.warns(ResourceWarning, match="async with"):
                    exec(compile(code, where, "exec"), {"__name__": "__main__"})
                    gc.collect()
            else:
                exec(compile(code, where, "exec"), {"__name__": "__main__"})
        out = capsys.readouterr().out
        if flags.get("expect") == "timed-out":
            assert out.strip() == "Request timed out"
            assert server.closed_by_client(GUARD)  # wait_for closed the connection
        elif "raises" not in flags:
            assert out.strip(), "the example printed nothing"
            assert "API error" not in out and "failed" not in out, out


def test_a_notebook_cell_awaits_at_top_level_under_asyncio(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A real IPython shell with its default autoawait (asyncio), cells as the guides write."""
    interactive = pytest.importorskip("IPython.core.interactiveshell")
    cells = [
        "%autoawait asyncio\nimport asyncio\nfrom trillm import acompletion",
        'response = await acompletion(\n    model="gpt-4",\n'
        '    messages=[{"role": "user", "content": "Hello, how are you?"}]\n)\n'
        "print(response.choices[0].message.content)",
        'response = await acompletion(model="gpt-4", stream=True,\n'
        '                             messages=[{"role": "user", "content": "a poem"}])\n'
        "async for chunk in response:\n"
        "    if chunk.choices[0].delta.content:\n"
        '        print(chunk.choices[0].delta.content, end="")\n'
        "print()",
        "results = await asyncio.gather(\n"
        '    *[acompletion(model="gpt-4", messages=[{"role": "user", "content": f"{i}?"}])\n'
        "      for i in range(5)],\n"
        '    acompletion(model="gpt-4", messages=[{"content": "no role"}]),\n'
        "    return_exceptions=True,\n)\n"
        "print([type(r).__name__ for r in results])",
        "response = await asyncio.wait_for(\n"
        '    acompletion(model="gpt-4", messages=[{"role": "user", "content": "hi"}]),\n'
        "    timeout=10.0)\n"
        "print(response['choices'][0]['message']['content'])",
    ]
    shell = interactive.InteractiveShell.instance()
    try:
        with upstream("answer", monkeypatch), hang_guard(GUARD):
            assert shell.loop_runner.__class__.__name__ == "_AsyncIORunner"  # the default
            for cell in cells:
                result = shell.run_cell(cell)
                assert result.success, f"{cell!r} failed: {result.error_in_exec!r}"
    finally:
        interactive.InteractiveShell.clear_instance()
        close_ipython_asyncio_loop()
    lines = capsys.readouterr().out.splitlines()
    assert lines == [TEXT, TEXT, str(["ModelResponse"] * 5 + ["BadRequestError"]), TEXT]


# ------------------------------------------------------------------ FastAPI served by uvicorn


def _app(code: str, where: str) -> Any:
    pytest.importorskip("fastapi")
    namespace: dict[str, Any] = {"__name__": where}
    exec(compile(code, where, "exec"), namespace)
    return namespace["app"]


@contextlib.contextmanager
def uvicorn_serving(app: Any) -> Iterator[str]:
    """Serve *app* with uvicorn (its asyncio loop, in a thread) on a free 127.0.0.1 port."""
    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            loop="asyncio", http="h11", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + GUARD
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped before it started"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(GUARD)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


def test_the_guides_fastapi_app_under_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    (where, _, code), = [e for e in EXAMPLES if "app" in e[1]]
    app = _app(code, where)
    with upstream("answer", monkeypatch), uvicorn_serving(app) as base:
        r = httpx.post(base + "/chat", json={"message": "Hello"}, timeout=GUARD)
        assert r.status_code == 200
        assert r.json() == {"response": TEXT}
        claude = {"message": "Hi", "model": "claude-3-5-sonnet-20241022"}
        r = httpx.post(base + "/chat", json=claude, timeout=GUARD)
        assert r.json() == {"response": TEXT}


def _docs_asyncio_app() -> Any:
    page = ROOT / "docs" / "asyncio.md"
    (code,) = [m.group(1) for m in re.finditer(r"```python\n(.*?)```", page.read_text(), re.S)
               if "FastAPI()" in m.group(1)]
    return _app(code, "asyncio.md")


def test_the_docs_fastapi_app_under_uvicorn_relays_a_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = _docs_asyncio_app()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with upstream("answer", monkeypatch), uvicorn_serving(app) as base:
        with httpx.Client(base_url=base, timeout=GUARD) as client:
            assert client.post("/chat", json=body).json() == {"answer": TEXT}
            with client.stream("POST", "/chat/stream", json=body) as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                events = [line[len("data: "):] for line in r.iter_lines()
                          if line.startswith("data: ")]
            assert events[-1] == "[DONE]"
            assert "".join(json.loads(e)["text"] for e in events[:-1]) == TEXT
            mock = {"model": "mock/echo", "messages": [{"role": "user", "content": "a b c"}]}
            assert client.post("/chat", json=mock).json() == {"answer": "a b c"}


def test_a_client_leaving_the_uvicorn_stream_closes_the_upstream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = _docs_asyncio_app()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with upstream("stall", monkeypatch) as server, uvicorn_serving(app) as base:
        with httpx.Client(base_url=base, timeout=GUARD) as client:
            with client.stream("POST", "/chat/stream", json=body) as r:
                got: list[str] = []
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        got.append(line)
                    if len(got) == 2:
                        break
            assert got == ['data: {"text": "Hello"}', 'data: {"text": " there"}']
        assert server.closed_by_client(GUARD)  # the relay closed its upstream response
