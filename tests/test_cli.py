"""The ``trillm`` command: output and exit codes (0 ok, 1 API error, 2 usage, 130 interrupted)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

import trillm
from trillm import cli, errors


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


def test_api_error_is_one_line_and_a_hint_exit_1(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    assert cli.main(["complete", "-m", "gpt-4o-mini", "hi"]) == 1
    err = capsys.readouterr().err
    error, hint = err.splitlines()  # the error, then a hint naming the flag for api_key=
    assert "AuthenticationError" in error and "OPENAI_API_KEY" in error
    assert hint.startswith("trillm: hint:") and "--api-key" in hint
    assert "Traceback" not in err


def test_unknown_provider_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["complete", "-m", "nosuch/model", "hi"]) == 1
    assert "BadRequestError" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["complete"], ["complete", "hi"], ["frobnicate"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert "usage" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"trillm {trillm.__version__}\n"


def test_api_key_and_time_flags_reach_the_call(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[dict[str, Any]] = []
    real = trillm.Client.acompletion

    async def spy(self: trillm.Client, model: str, *args: Any, **kwargs: Any) -> Any:
        calls.append({"model": model, **kwargs})
        return await real(self, "mock/echo", *args, **kwargs)  # offline, whatever the model

    monkeypatch.setattr(trillm.Client, "acompletion", spy)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    for mode in [], ["--no-stream"]:
        assert cli.main(["complete", "-m", "openai/gpt-4o-mini", *mode,
                         "--api-key", "sk-from-the-flag", "--idle-timeout", "2.5",
                         "--deadline", "30", "--timeout", "inf", "hi"]) == 0
        assert capsys.readouterr().out == "hi\n"
    for call in calls:
        assert call["model"] == "openai/gpt-4o-mini"
        assert call["api_key"] == "sk-from-the-flag"
        assert (call["idle_timeout"], call["deadline"], call["timeout"]) == (2.5, 30, math.inf)


@pytest.mark.parametrize("flag", ["--timeout", "--idle-timeout", "--deadline"])
@pytest.mark.parametrize("value", ["-1", "0", "nan", "NaN", "soon", ""])
def test_bad_times_are_usage_errors(flag: str, value: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["complete", "-m", "mock/echo", flag, value, "hi"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "usage:" in err and f"argument {flag}:" in err and "seconds" in err


def test_bad_max_retries_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["complete", "-m", "mock/echo", "--max-retries", "-1", "hi"]) == 2
    assert "argument --max-retries:" in capsys.readouterr().err


@pytest.mark.parametrize(("error", "flag"), [
    (errors.Timeout("no response within timeout=1 s"), "--timeout for timeout="),
    (errors.Timeout("no stream event within idle_timeout=1 s"),
     "--idle-timeout for idle_timeout="),
    (errors.BadRequestError("no API base URL for azure: set AZURE_API_BASE or pass api_base="),
     "--api-base for api_base="),
])
def test_an_error_naming_an_argument_gets_a_hint_naming_the_flag(
    error: errors.APIError, flag: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def fails(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(trillm, "acompletion", fails)
    assert cli.main(["complete", "-m", "mock/echo", "--no-stream", "hi"]) == 1
    error_line, hint = capsys.readouterr().err.splitlines()
    assert error_line.startswith("trillm: error: ")
    assert hint == f"trillm: hint: on the command line, use {flag}"


@pytest.mark.parametrize("mode", [[], ["--no-stream"]])
def test_json_prints_the_whole_response_once(mode: list[str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["complete", "-m", "mock/echo", "--json", *mode, "one two three"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)  # the whole output is one JSON document: no text before it
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"] == {"role": "assistant", "content": "one two three"}
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("mode", [[], ["--no-stream"], ["--json"]])
def test_closed_stdout_exits_0_quietly(mode: list[str], buffered: bool) -> None:
    """``trillm complete ... | head -c 1``: the pipe is closed before anything is written,
    so every write fails (EPIPE); no traceback, no "Exception ignored" at exit, status 0.
    Buffered (a shell's default) the error comes at a flush, unbuffered at a write."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trillm.cli", "complete", "-m", "mock/echo", *mode, "hi"],
            stdout=write_end, stderr=subprocess.PIPE, env=env,
        )
    finally:
        os.close(write_end)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert (proc.returncode, err) == (0, b"")


class _ClosedStdout(io.StringIO):
    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_pipe_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedStdout())
    assert cli.main(["complete", "-m", "mock/echo", "hi"]) == 0


def test_an_api_error_with_stdout_closed_is_still_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    async def fails(*args: Any, **kwargs: Any) -> Any:
        raise errors.RateLimitError("slow down")

    monkeypatch.setattr(trillm, "acompletion", fails)
    monkeypatch.setattr(sys, "stdout", _ClosedStdout())
    assert cli.main(["complete", "-m", "mock/echo", "--no-stream", "hi"]) == 1
    assert "RateLimitError: slow down" in capsys.readouterr().err


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
    assert b"trillm: hint: on the command line, use --idle-timeout for idle_timeout=" in err
