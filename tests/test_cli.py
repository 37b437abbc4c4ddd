"""The ``trillm`` command: output and exit codes (0 ok, 1 API error, 2 usage, 130 interrupted)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from trillm import cli


def test_streams_a_mock_answer(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["complete", "-m", "mock/echo", "hello there"]) == 0
    assert capsys.readouterr().out == "hello there\n"


def test_no_stream_and_system_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["complete", "-m", "mock/x", "--no-stream", "-s", "be brief", "hi"]) == 0
    assert capsys.readouterr().out == "hi\n"


def test_prompt_from_stdin(monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("from stdin"))
    assert cli.main(["complete", "-m", "mock/x", "-"]) == 0
    assert capsys.readouterr().out == "from stdin\n"


def test_api_error_is_one_line_exit_1(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    assert cli.main(["complete", "-m", "gpt-4o-mini", "hi"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "AuthenticationError" in err and "OPENAI_API_KEY" in err
    assert "Traceback" not in err


def test_unknown_provider_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["complete", "-m", "nosuch/model", "hi"]) == 1
    assert "BadRequestError" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["complete"], ["complete", "hi"], ["frobnicate"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert "usage" in capsys.readouterr().err


@contextlib.contextmanager
def _cli_against_a_listener(
    *args: str,
) -> Iterator[tuple[socket.socket, subprocess.Popen[bytes]]]:
    """A listening socket on 127.0.0.1 and the CLI (a real process) asking it for an answer."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(10)
        port = listener.getsockname()[1]
        proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
        env = {k: v for k, v in os.environ.items() if k.lower() not in proxies}
        proc = subprocess.Popen(
            [sys.executable, "-m", "trillm.cli", "complete", "-m", "openai/gpt-4o-mini",
             "--api-base", f"http://127.0.0.1:{port}/v1", *args, "hi"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        yield listener, proc


def test_interrupt_exits_130() -> None:
    """A real process, a server that accepts but never answers, and a real SIGINT."""
    with _cli_against_a_listener() as (listener, proc):
        try:
            conn, _ = listener.accept()  # the request is on its way: the CLI is inside trio
            with conn:
                time.sleep(0.2)
                proc.send_signal(signal.SIGINT)
                _, err = proc.communicate(timeout=10)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert b"Traceback" not in err


def test_timeout_also_bounds_a_stream_that_stalls_after_its_headers() -> None:
    """A real process and a server that sends the headers and one event, then nothing:
    ``--timeout`` (no idle timeout given) ends it, exit 1, instead of hanging for ever."""
    event = (b'data: {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "m",'
             b' "choices": [{"index": 0, "delta": {"content": "partial"}}]}\n\n')
    with _cli_against_a_listener("--timeout", "1") as (listener, proc):
        try:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"transfer-encoding: chunked\r\n\r\n"
                             + f"{len(event):x}\r\n".encode() + event + b"\r\n")
                out, err = proc.communicate(timeout=20)  # stalls, never the end chunk
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert out.startswith(b"partial")
    assert b"idle_timeout=1" in err and b"Traceback" not in err
