"""The ``trillm`` command (public API only).

``trillm complete -m MODEL "prompt"`` streams the answer to stdout
(``--no-stream`` prints it once).  Exit codes: 0 success, 1 an API error (one
line on stderr, no traceback), 2 usage error, 130 interrupted.  With
``-m mock/<anything>`` it works offline.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import trio

import trillm

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trillm", description="Talk to LLM APIs from the command line (trio inside)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("complete", help="send one prompt and print the answer")
    p.add_argument("prompt", help="the user message ('-' reads it from stdin)")
    p.add_argument("-m", "--model", required=True,
                   help="provider/model, e.g. openai/gpt-4o-mini or mock/echo")
    p.add_argument("-s", "--system", help="a system message to send first")
    p.add_argument("--no-stream", action="store_true", help="print the answer in one piece")
    p.add_argument("--temperature", type=float)
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--api-base", help="send to this OpenAI-compatible base URL")
    p.add_argument("--timeout", type=float, help="seconds per attempt")
    p.add_argument("--max-retries", type=int)
    return parser


async def _complete(args: argparse.Namespace, prompt: str) -> None:
    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    kwargs: dict[str, Any] = {
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
        "api_base": args.api_base,
        "timeout": args.timeout,
        "max_retries": args.max_retries,
    }
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    out = sys.stdout
    if args.no_stream:
        response = await trillm.acompletion(args.model, messages, **kwargs)
        out.write((response.choices[0].message.content or "") + "\n")
        return
    async with trillm.stream(args.model, messages, **kwargs) as stream:
        async for chunk in stream:
            text = chunk.choices[0].delta.content
            if text:
                out.write(text)
                out.flush()
    out.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return int(exc.code) if isinstance(exc.code, int) else 2
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    try:
        trio.run(_complete, args, prompt)
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    except trillm.errors.APIError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"trillm: error: {type(exc).__name__}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
