"""Every code block of README.md and docs/*.md runs, so the docs never rot.

Python blocks run as scripts (each calls ``trio.run`` itself) with
``OPENAI_BASE_URL`` pointing at a small fake OpenAI-compatible server on
127.0.0.1 (a thread, real sockets, real clock), and ``trillm ...`` lines of
``sh`` blocks run through the CLI's ``main``.  ``pip`` and ``python3 -m venv``
lines are what the README's set-up commands do, which CI runs itself.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import shlex
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from trillm import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(kind: str) -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for n, m in enumerate(BLOCK.finditer(path.read_text())):
            if m.group(1) == kind:
                found.append((f"{path.name}#{n}", m.group(2)))
    return found


class _FakeOpenAI(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        text = "Hello from the fake server"
        if body.get("stream"):
            events = []
            for i, word in enumerate(text.split(" ")):
                chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0,
                         "model": body["model"],
                         "choices": [{"index": 0, "delta": {"content": (" " if i else "") + word},
                                      "finish_reason": None}]}
                events.append(f"data: {json.dumps(chunk)}\n\n")
            last = {"id": "c1", "object": "chat.completion.chunk", "created": 0,
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            events += [f"data: {json.dumps(last)}\n\n", "data: [DONE]\n\n"]
            payload = "".join(events).encode()
            ctype = "text/event-stream"
        else:
            payload = json.dumps({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
            }).encode()
            ctype = "application/json"
        self.send_response(200)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def docs_env(fake_openai: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-test-key")


@pytest.mark.parametrize(("where", "code"), blocks("python"), ids=[w for w, _ in blocks("python")])
def test_python_block_runs(where: str, code: str, docs_env: None) -> None:
    with hang_guard(30):
        exec(compile(code, where, "exec"), {"__name__": "__main__"})


@contextlib.contextmanager
def hang_guard(seconds: float) -> Iterator[None]:
    """Fail instead of hanging: the blocks run trio.run themselves, so no fail_after fits."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"a docs example ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _cli_lines() -> list[str]:
    lines = []
    for _, code in blocks("sh"):
        for line in code.splitlines():
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith(("trillm ", ".venv/bin/trillm ")):
                    lines.append(part)
    return lines


@pytest.mark.parametrize("line", _cli_lines())
def test_cli_line_runs(line: str, docs_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    with hang_guard(30):
        assert cli.main(shlex.split(line)[1:]) == 0
    assert capsys.readouterr().out.strip()


def test_docs_have_examples() -> None:
    assert len(blocks("python")) >= 10
    assert _cli_lines()
