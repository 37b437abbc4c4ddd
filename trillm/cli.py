"""The ``trillm`` command (public API only).

``trillm complete -m MODEL "prompt"`` streams the answer to stdout
(``--no-stream`` prints it once; ``--json`` prints the whole response as JSON,
once, at the end).  Exit codes: 0 success (also when stdout is closed early,
as by ``| head``), 1 an API error (one line on stderr, no traceback, and a
hint line when the message names a Python argument that is a flag here), 2
usage error (also a time that is not a number of seconds > 0), 130
interrupted.  With ``-m mock/<anything>`` it works offline.

``trillm fake-server --port 8000`` serves a :class:`trillm.testing.FakeLLM` (the
echo, or ``--reply TEXT``) until Ctrl-C, so code written for the official SDKs
can run against it: ``OPENAI_BASE_URL=http://127.0.0.1:8000/v1``.

``trillm batch run INPUT.jsonl -o OUTPUT.jsonl -m MODEL`` answers a JSONL file of
requests, resumably; ``--provider-batch``, ``trillm batch status JOB`` and
``trillm batch results JOB -o OUTPUT.jsonl`` use a provider's batch API
(``trillm._batch_cli``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import trio

import trillm

from . import _batch_cli

__all__ = ["main"]

#: The library's argument names that an error message may tell the user to pass, and
#: the flag that sets each one here.
_FLAGS = {
    "api_key": "--api-key",
    "api_base": "--api-base",
    "timeout": "--timeout",
    "idle_timeout": "--idle-timeout",
    "deadline": "--deadline",
    "max_retries": "--max-retries",
    "max_tokens": "--max-tokens",
    "temperature": "--temperature",
}
_ARGUMENT = re.compile(r"\b([a-z_]+)=")


def _seconds(text: str) -> float:
    """A time limit flag's value: a number of seconds > 0 (``inf``: no limit)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:  # also NaN
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds > 0 (inf for no limit), not {text!r}")
    return value


def _count(text: str) -> int:
    """A count flag's value: an int >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trillm", description="Talk to LLM APIs from the command line (trio inside)."
    )
    parser.add_argument("--version", action="version", version=f"trillm {trillm.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("complete", help="send one prompt and print the answer")
    p.add_argument("prompt", help="the user message ('-' reads it from stdin)")
    p.add_argument("-m", "--model", required=True,
                   help="provider/model, e.g. openai/gpt-4o-mini or mock/echo")
    p.add_argument("-s", "--system", help="a system message to send first")
    p.add_argument("--no-stream", action="store_true", help="print the answer in one piece")
    p.add_argument("--json", action="store_true",
                   help="print the whole response as JSON, once, at the end")
    p.add_argument("--temperature", type=float)
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--api-key", help="the API key (default: the provider's variable, "
                                     "e.g. OPENAI_API_KEY)")
    p.add_argument("--api-base", help="send to this OpenAI-compatible base URL")
    p.add_argument("--timeout", type=_seconds, help="seconds per attempt")
    p.add_argument("--idle-timeout", type=_seconds,
                   help="seconds a stream may go without an event (default: --timeout)")
    p.add_argument("--deadline", type=_seconds,
                   help="seconds for the whole call, retries included")
    p.add_argument("--max-retries", type=_count)
    _batch_cli.add_parser(sub, _seconds, _count)
    f = sub.add_parser("fake-server", help="serve a fake LLM (OpenAI, Anthropic, Gemini) "
                                           "on a local port, for tests and demos")
    f.add_argument("--port", type=_count, default=8000, help="TCP port (0: any free one)")
    f.add_argument("--host", default="127.0.0.1", help="address to listen on")
    f.add_argument("--reply", help="answer this text to every chat (default: echo the "
                                   "last user message)")
    return parser


async def _fake_server(args: argparse.Namespace) -> None:
    from trillm.testing import FakeLLM  # loaded only for this command

    fake = FakeLLM()
    if args.reply is not None:
        fake.on().reply(args.reply)
    async with fake.serve(host=args.host, port=args.port) as url:
        sys.stdout.write(f"trillm fake LLM on {url} (OpenAI clients: OPENAI_BASE_URL={url}/v1; "
                         f"Anthropic and Gemini clients: {url}); Ctrl-C stops it\n")
        sys.stdout.flush()
        await trio.sleep_forever()


async def _complete(args: argparse.Namespace, prompt: str) -> None:
    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    kwargs: dict[str, Any] = {
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
        "api_key": args.api_key,
        "api_base": args.api_base,
        "timeout": args.timeout,
        "idle_timeout": args.idle_timeout,
        "deadline": args.deadline,
        "max_retries": args.max_retries,
    }
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    out = sys.stdout
    if args.no_stream:
        response = await trillm.acompletion(args.model, messages, **kwargs)
    else:
        async with trillm.stream(args.model, messages, **kwargs) as stream:
            if not args.json:
                async for chunk in stream:
                    text = chunk.choices[0].delta.content
                    if text:
                        out.write(text)
                        out.flush()
                out.write("\n")
                return
            response = await stream.final_response()  # built from the stream, printed once
    if args.json:
        out.write(json.dumps(response.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        out.write((response.choices[0].message.content or "") + "\n")


def _hint(exc: BaseException) -> str | None:
    """A line naming the flags for the Python arguments (``api_key=``) that *exc* mentions."""
    names = [n for n in dict.fromkeys(_ARGUMENT.findall(str(exc))) if n in _FLAGS]
    if not names:
        return None
    flags = ", ".join(f"{_FLAGS[n]} for {n}=" for n in names)
    return f"trillm: hint: on the command line, use {flags}\n"


def _run(args: argparse.Namespace, prompt: str) -> int:
    try:
        trio.run(_complete, args, prompt)
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    except trillm.errors.APIError as exc:
        try:
            sys.stdout.flush()  # what was printed goes before the error line
        except BrokenPipeError:  # stdout is closed; the error still goes to stderr
            _stdout_to_devnull()
        sys.stderr.write(f"trillm: error: {type(exc).__name__}: {exc}\n")
        hint = _hint(exc)
        if hint:
            sys.stderr.write(hint)
        return 1
    sys.stdout.flush()  # here, not at exit: a closed pipe is an error we can still catch
    return 0


def _stdout_to_devnull() -> None:
    """After a broken pipe: what is still buffered goes nowhere, quietly, also at exit."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return int(exc.code) if isinstance(exc.code, int) else 2
    if args.command == "batch":
        return _batch_cli.run(args)
    if args.command == "fake-server":
        try:
            trio.run(_fake_server, args)
        except KeyboardInterrupt:
            return 0
        except OSError as exc:  # the port is taken, the address is not ours
            sys.stderr.write(f"trillm: error: cannot serve on {args.host}:{args.port}: {exc}\n")
            return 1
        return 0
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    try:
        return _run(args, prompt)
    except BrokenPipeError:  # stdout closed early (`trillm complete ... | head -c 1`)
        _stdout_to_devnull()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
