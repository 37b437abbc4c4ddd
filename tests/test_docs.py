"""Every code block of README.md and docs/*.md runs, so the docs never rot.

Python blocks run as scripts (each calls ``trio.run`` or ``asyncio.run`` itself), or, when
their first line is ``# test_<name>.py``, as pytest files in a pytest subprocess; scripts run with
``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL`` and ``GEMINI_API_BASE`` pointing at
trillm.testing's FakeLLM on 127.0.0.1 answering in each provider's shape (served from a
thread: real sockets, real clock), and ``trillm ...`` lines of
``sh`` blocks run through the CLI's ``main``.  ``pip`` and ``python3 -m venv``
lines are what the README's set-up commands do, which CI runs itself.  Each Python block
also runs with no key and no base URL set (offline, as a reader pastes it), unless a line next to
it says what it needs and how to run it offline.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_openai import hang_guard, serving_in_thread
from tests.redis_server import NO_SERVER, RedisServer, server_binaries
from trillm import cli
from trillm.testing import FakeLLM, FakeRequest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(kind: str) -> list[tuple[str, str]]:
    """The blocks of *kind*; for ``python``, the scripts (a pytest file, a block whose first
    line is ``# test_....py``, is ``pytest_files()``'s)."""
    found = []
    for path in DOCS:
        for n, m in enumerate(BLOCK.finditer(path.read_text())):
            if m.group(1) == kind and not (kind == "python" and _pytest_name(m.group(2))):
                found.append((f"{path.name}#{n}", m.group(2)))
    return found


def _pytest_name(code: str) -> str | None:
    first = code.split("\n", 1)[0].strip()
    name = first.removeprefix("# ").strip()
    if first.startswith("# ") and name.startswith("test_") and name.endswith(".py"):
        return name
    return None


def pytest_files() -> list[tuple[str, str, str]]:
    """``(where, file name, code)`` of every ``python`` block that is a pytest file."""
    found = []
    for path in DOCS:
        for n, m in enumerate(BLOCK.finditer(path.read_text())):
            name = _pytest_name(m.group(2)) if m.group(1) == "python" else None
            if name:
                found.append((f"{path.name}#{n}", name, m.group(2)))
    return found


TEXT = "Hello from the fake server"


def _sse(events: list[tuple[str | None, dict[str, object]]]) -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {json.dumps(data)}\n\n")
    return "".join(out).encode()


def _openai(body: dict[str, object]) -> tuple[bytes, str]:
    model = body["model"]
    if not body.get("stream"):
        return json.dumps({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": TEXT}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8},
        }).encode(), "application/json"
    words = [(" " if i else "") + w for i, w in enumerate(TEXT.split(" "))]
    chunks: list[tuple[str | None, dict[str, object]]] = [
        (None, {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": model,
                "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
        for w in words]
    chunks.append((None, {"id": "c1", "object": "chat.completion.chunk", "created": 0,
                          "model": model,
                          "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):  # as OpenAI: no choices
        chunks.append((None, {"id": "c1", "object": "chat.completion.chunk", "created": 0,
                              "model": model, "choices": [],
                              "usage": {"prompt_tokens": 3, "completion_tokens": 5,
                                        "total_tokens": 8}}))
    return _sse(chunks) + b"data: [DONE]\n\n", "text/event-stream"


def _openai_embeddings(body: dict[str, object]) -> tuple[bytes, str]:
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = [{"object": "embedding", "index": i, "embedding": [0.6, 0.8, 0.0, 0.0]}
            for i in range(len(texts))]
    return json.dumps({"object": "list", "model": body["model"], "data": data,
                       "usage": {"prompt_tokens": 3, "total_tokens": 3}}).encode(), \
        "application/json"


def _openai_images(body: dict[str, object]) -> tuple[bytes, str]:
    n = body.get("n") or 1
    assert isinstance(n, int)
    data = [{"url": f"https://images.example/{i}.png", "revised_prompt": body["prompt"]}
            for i in range(n)]
    return json.dumps({"created": 0, "data": data}).encode(), "application/json"


def _anthropic(body: dict[str, object]) -> tuple[bytes, str]:
    model = body["model"]
    usage = {"input_tokens": 3, "output_tokens": 5}
    if not body.get("stream"):
        return json.dumps({
            "id": "msg_1", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": TEXT}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": usage,
        }).encode(), "application/json"
    start = {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 1}}}
    events: list[tuple[str | None, dict[str, object]]] = [
        ("message_start", start),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
    ]
    for i, w in enumerate(TEXT.split(" ")):
        events.append(("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": (" " if i else "") + w}}))
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 5}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return _sse(events), "text/event-stream"


def _gemini(path: str) -> tuple[bytes, str]:
    model = path.split("/models/")[1].split(":")[0]
    usage = {"promptTokenCount": 3, "candidatesTokenCount": 5, "totalTokenCount": 8}

    def response(text: str, last: bool) -> dict[str, object]:
        cand: dict[str, object] = {"content": {"role": "model", "parts": [{"text": text}]},
                                   "index": 0}
        out: dict[str, object] = {"candidates": [cand], "modelVersion": model,
                                  "responseId": "r1"}
        if last:
            cand["finishReason"] = "STOP"
            out["usageMetadata"] = usage
        return out

    if ":streamGenerateContent" not in path:
        return json.dumps(response(TEXT, True)).encode(), "application/json"
    words = [(" " if i else "") + w for i, w in enumerate(TEXT.split(" "))]
    return _sse([(None, response(w, i == len(words) - 1)) for i, w in enumerate(words)]), \
        "text/event-stream"


def docs_answer(request: FakeRequest) -> bytes | list[bytes]:
    """OpenAI (chat, embeddings, images), Anthropic and Gemini answers, chosen by the path:
    a JSON body, or an SSE stream (a list of chunks)."""
    body = json.loads(request.body)
    if request.path.startswith("/v1/messages"):
        payload, ctype = _anthropic(body)
    elif request.path.startswith("/v1beta/models/"):
        payload, ctype = _gemini(request.path)
    elif request.path.endswith("/embeddings"):
        payload, ctype = _openai_embeddings(body)
    elif request.path.endswith("/images/generations"):
        payload, ctype = _openai_images(body)
    else:
        payload, ctype = _openai(body)
    return [payload] if ctype == "text/event-stream" else payload


def script_docs_providers(fake: FakeLLM) -> FakeLLM:
    """Script *fake* as the docs' fake providers: a POST with a JSON body gets
    :func:`docs_answer`, anything else a 501."""
    fake.on(when=lambda r: r.parsed.method == "POST" and isinstance(r.parsed.json, dict)
            ).respond(docs_answer)
    fake.on().fail(501, body={"error": {"message": "the docs' fake providers answer JSON "
                                                   "POSTs only"}})
    return fake


@contextlib.contextmanager
def serve_fake_providers(fake: FakeLLM | None = None) -> Iterator[str]:
    """*fake* (by default the docs' fake providers) served on 127.0.0.1 from a thread (its
    own trio run: the examples run their own event loops); yields its base URL (no path)."""
    with serving_in_thread(fake if fake is not None else
                           script_docs_providers(FakeLLM())) as base:
        yield base


@pytest.fixture(scope="module")
def fake_server() -> Iterator[str]:
    with serve_fake_providers() as base:
        yield base


@pytest.fixture(autouse=True)
def _restore_trillm_logger() -> Iterator[None]:
    """docs/logging.md turns the `trillm` logger up to DEBUG; the rest of the suite runs without."""
    log = logging.getLogger("trillm")
    level, handlers = log.level, list(log.handlers)
    try:
        yield
    finally:
        log.setLevel(level)
        log.handlers[:] = handlers


@pytest.fixture
def docs_env(fake_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-test-key")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_server)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-docs-test-key")
    monkeypatch.setenv("GEMINI_API_BASE", fake_server)
    monkeypatch.setenv("GEMINI_API_KEY", "docs-test-gemini-key")


def _compiled(code: str, where: str) -> object:
    """*code* as a reader's script runs it: without this file's ``from __future__ import
    annotations``, which compile() would pass on (pydantic models in an example would then
    hold string annotations that name classes in no module, and fail)."""
    return compile(code, where, "exec", dont_inherit=True)


#: Optional packages an example may import (the ``test`` extra installs them); where one is
#: missing, the example is skipped rather than failed.
OPTIONAL_MODULES = ("opentelemetry.sdk",)


def _skip_without_optional_modules(code: str) -> None:
    for module in OPTIONAL_MODULES:
        if f"from {module}" in code or f"import {module}" in code:
            pytest.importorskip(module)


@contextlib.contextmanager
def redis_for(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An example reading ``REDIS_URL`` gets a real server there (tests/redis_server.py); it
    is skipped only when no redis-server or valkey-server binary can be found."""
    if "REDIS_URL" not in code:
        yield
        return
    binaries = server_binaries()
    if not binaries:
        pytest.skip(NO_SERVER)
    server = RedisServer(binaries[0], tmp_path)
    try:
        monkeypatch.setenv("REDIS_URL", server.url)
        yield
    finally:
        server.stop()


@pytest.mark.parametrize(("where", "code"), blocks("python"), ids=[w for w, _ in blocks("python")])
def test_python_block_runs(
    where: str, code: str, docs_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _skip_without_optional_modules(code)
    with redis_for(code, tmp_path, monkeypatch), hang_guard(30):
        exec(_compiled(code, where), {"__name__": "__main__"})


def _says_what_it_needs(where: str) -> bool:
    """Whether the paragraph just before or just after the block says how to run it offline."""
    name, _, index = where.partition("#")
    path = next(p for p in DOCS if p.name == name)
    text = path.read_text()
    found = list(BLOCK.finditer(text))
    m = found[int(index)]
    before = text[found[int(index) - 1].end() if int(index) else 0:m.start()]
    after = text[m.end():found[int(index) + 1].start() if int(index) + 1 < len(found) else None]
    near = before.strip().split("\n\n")[-1] + "\n" + after.strip().split("\n\n")[0]
    return "offline" in near and ("Needs" in near or "needs" in near)


@pytest.mark.parametrize(("where", "code"), blocks("python"), ids=[w for w, _ in blocks("python")])
def test_python_block_runs_offline_or_says_what_it_needs(
    where: str, code: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pasted with no key and no base URL set, an example runs (on the mock), or a line next to it
    says what it needs and how to run it offline."""
    if _says_what_it_needs(where):
        return
    _skip_without_optional_modules(code)
    for name in list(os.environ):
        if name.endswith(("_API_KEY", "_BASE_URL", "_API_BASE")):
            monkeypatch.delenv(name)
    with hang_guard(30):
        exec(_compiled(code, where), {"__name__": "__main__"})




@pytest.mark.parametrize(("where", "name", "code"), pytest_files(),
                         ids=[w for w, _, _ in pytest_files()])
def test_pytest_block_passes(where: str, name: str, code: str, tmp_path: Path) -> None:
    """A block that is a pytest file (first line ``# test_....py``) passes as a reader runs
    it: saved under its name and run by pytest in a subprocess, with pytest-trio's
    ``trio_mode`` and trillm's plugin, offline (no key, no base URL, no network but
    loopback).  Its tests may skip (an optional package missing), never fail."""
    (tmp_path / name).write_text(code)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\ntrio_mode = true\nfilterwarnings = error\n")
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_API_KEY", "_BASE_URL", "_API_BASE")) and k != "PYTEST_ADDOPTS"}
    env.update({"PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:trillm",
         "-p", "trillm.testing.pytest_plugin", "-W", "error", str(tmp_path / name)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, env=env)
    assert done.returncode == 0, f"{where}:\n{done.stdout}\n{done.stderr}"
    # an optional package missing (the openai SDK) skips a block: that is all it may do
    assert re.search(r"\d+ (passed|skipped)", done.stdout), done.stdout
    assert "failed" not in done.stdout and "error" not in done.stdout.lower(), done.stdout


def _ipython_pages() -> list[tuple[str, list[str]]]:
    pages = []
    for path in DOCS:
        cells = [m.group(2) for m in BLOCK.finditer(path.read_text()) if m.group(1) == "ipython"]
        if cells:
            pages.append((path.name, cells))
    return pages


@pytest.mark.parametrize(("page", "cells"), _ipython_pages(), ids=[p for p, _ in _ipython_pages()])
def test_notebook_cells_run_in_ipython(page: str, cells: list[str], docs_env: None) -> None:
    """``ipython`` blocks are the cells of one notebook, run in order by a real IPython shell."""
    interactive = pytest.importorskip("IPython.core.interactiveshell")
    shell = interactive.InteractiveShell.instance()
    try:
        with hang_guard(60):
            for cell in cells:
                result = shell.run_cell(cell)
                assert result.success, f"{page}: {cell!r} failed: {result.error_in_exec!r}"
    finally:
        interactive.InteractiveShell.clear_instance()
        close_ipython_asyncio_loop()


def close_ipython_asyncio_loop() -> None:
    """IPython keeps one asyncio loop for ``%autoawait asyncio`` cells and never closes it."""
    from IPython.core import async_helpers

    loop = async_helpers._asyncio_event_loop
    if loop is not None and not loop.is_closed():
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


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
    assert len(pytest_files()) >= 5
    assert _cli_lines()
