"""``trillm batch``: bulk JSONL from the command line (public API only).

``trillm batch run INPUT.jsonl -o OUTPUT.jsonl -m MODEL`` answers every line of
INPUT: ``{"custom_id": ..., "body": {...}}`` (OpenAI's batch line) or a bare
``{"messages": [...], ...}`` (its line number, from 1, is then its id).  Each
output line is ``{"custom_id", "response"}`` or ``{"custom_id", "error":
{"type", "message", "status_code"}}``.

* Memory stays flat in the input's size: lines stream through
  :func:`trillm.amap` with ``--concurrency`` in flight; the ids already in
  OUTPUT are kept as 8-byte digests in a sorted array.
* Resumable: re-running with the same OUTPUT skips every id already there
  (``--retry-errors`` sends the lines that ended in an error again, and drops
  their old error lines).  Every output line goes with one ``write`` to a file
  opened for appending, so no line is ever torn; a torn tail left by a crash
  of the machine is cut off on the next run.  OUTPUT is fsynced every 10,000
  lines and at the end.
* A progress bar on stderr (``tqdm``, from the ``cli`` extra: done / total,
  rate, ETA, errors) when stderr is a terminal and not ``--quiet``; a summary
  at the end.  Exit status 0 when every line succeeded, 1 when some failed,
  2 for a usage error, 130 on Ctrl-C (after writing everything that finished).
* ``--provider-batch`` submits through the provider's batch API
  (:func:`trillm.abatch_submit`) and prints the job's ref; ``trillm batch
  status JOB`` and ``trillm batch results JOB -o OUTPUT.jsonl`` follow it up.
"""

from __future__ import annotations

import argparse
import array
import bisect
import collections
import hashlib
import importlib
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import trio

import trillm

__all__ = ["add_parser", "run"]

_FSYNC_EVERY = 10_000


def add_parser(sub: Any, seconds: Any, count: Any) -> None:
    """Add ``trillm batch`` and its commands to the command line's subparsers."""
    b = sub.add_parser("batch", help="answer a JSONL file of requests (resumable), or use "
                                     "a provider's batch API")
    cmds = b.add_subparsers(dest="batch_command", required=True)
    r = cmds.add_parser("run", help="answer every line of INPUT into OUTPUT")
    r.add_argument("input", help="JSONL: {'custom_id', 'body'} or {'messages', ...} lines")
    r.add_argument("-o", "--output", required=True, help="JSONL results (appended; resumable)")
    r.add_argument("-m", "--model", required=True, help="provider/model, e.g. mock/echo")
    r.add_argument("--concurrency", type=count, default=16, help="requests in flight (16)")
    r.add_argument("--rpm", type=count, help="requests per minute for MODEL")
    r.add_argument("--tpm", type=count, help="tokens per minute for MODEL")
    r.add_argument("--redis", metavar="URL", help="share the rate limits on Redis/Valkey "
                                                   "(needs trillm[redis])")
    r.add_argument("--retry-errors", action="store_true",
                   help="send again the lines that ended in an error in OUTPUT")
    r.add_argument("--provider-batch", action="store_true",
                   help="submit through the provider's batch API; prints the job ref")
    r.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    for c in (r, cmds.add_parser("status", help="a provider batch job's status (JSON)"),
              cmds.add_parser("results", help="a done provider batch job's results")):
        if c is not r:
            c.add_argument("job", help="the job's ref, as --provider-batch printed it")
        c.add_argument("--api-key", help="the API key (default: the provider's variable)")
        c.add_argument("--api-base", help="send to this base URL")
        c.add_argument("--timeout", type=seconds, help="seconds per attempt")
        c.add_argument("--max-retries", type=count)
        if c.prog.endswith("results"):
            c.add_argument("-o", "--output", required=True, help="JSONL results")


def run(args: argparse.Namespace) -> int:
    """Run ``trillm batch ...``; the exit code."""
    if args.batch_command == "run" and args.redis and not args.provider_batch:
        try:  # issue 15's RedisRateStore, loaded only for --redis
            importlib.import_module("trillm.redis")
        except ImportError:
            sys.stderr.write("trillm: error: --redis needs the redis extra: "
                             "pip install 'trillm[redis]'\n")
            return 2
    job = {"run": _run, "status": _status, "results": _results}[args.batch_command]
    state = _State()
    try:
        return trio.run(job, args, state)
    except KeyboardInterrupt:
        return _interrupted(args, state)
    except BaseExceptionGroup as group:  # Ctrl-C delivered inside one of amap's tasks
        if group.split(KeyboardInterrupt)[0] is None:
            raise
        return _interrupted(args, state)
    except trillm.errors.APIError as exc:
        state.finish()
        sys.stderr.write(f"trillm: error: {type(exc).__name__}: {exc}\n")
        return 1
    except (OSError, ValueError) as exc:
        state.finish()
        sys.stderr.write(f"trillm: error: {exc}\n")
        return 2


def _interrupted(args: argparse.Namespace, state: _State) -> int:
    """Ctrl-C: every line that finished is written; the summary, and exit status 130."""
    state.finish()
    if not getattr(args, "quiet", False):
        sys.stderr.write(f"\ninterrupted; {state.summary()}\n")
    return 130


def _options(args: argparse.Namespace) -> dict[str, Any]:
    given = {"api_key": args.api_key, "api_base": args.api_base, "timeout": args.timeout,
             "max_retries": args.max_retries}
    return {k: v for k, v in given.items() if v is not None}


# ---------------------------------------------------------------- the output file


def _digest(custom_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(custom_id.encode(), digest_size=8).digest(), "big")


class _State:
    """The output file and the counts (also read after Ctrl-C)."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.done = 0
        self.skipped = 0
        self.errors = 0
        self.old_errors = 0
        self.unsynced = 0
        self.started = time.monotonic()
        self.path = ""

    def open(self, path: str, *, retry_errors: bool) -> array.array[int]:
        """Read what OUTPUT holds (cutting a torn tail), open it for appending; the sorted
        digests of the ids to skip."""
        self.path = path
        seen = array.array("Q")
        if os.path.exists(path):
            keep_errors = not retry_errors
            self._cut_torn_tail(path)
            if retry_errors:
                self._drop_error_lines(path)
            with open(path, "rb") as f:
                for line in f:
                    try:
                        item = json.loads(line)
                        cid = str(item["custom_id"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    if "error" in item:
                        if not keep_errors:
                            continue
                        self.old_errors += 1
                    seen.append(_digest(cid))
        seen = array.array("Q", sorted(seen))
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return seen

    @staticmethod
    def _cut_torn_tail(path: str) -> None:
        with open(path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            pos = size
            while pos > 0:  # back to the last newline
                step = min(65536, pos)
                f.seek(pos - step)
                block = f.read(step)
                cut = block.rfind(b"\n")
                if cut >= 0:
                    f.truncate(pos - step + cut + 1)
                    return
                pos -= step
            f.truncate(0)

    @staticmethod
    def _drop_error_lines(path: str) -> None:
        tmp = path + ".trillm-tmp"
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            for line in src:
                try:
                    if "error" in json.loads(line):
                        continue
                except ValueError:
                    continue
                dst.write(line)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, path)

    def write(self, item: dict[str, Any]) -> None:
        """One whole line, in one write to the appending file."""
        assert self.fd is not None
        data = json.dumps(item, ensure_ascii=False).encode() + b"\n"
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        self.done += 1
        if "error" in item:
            self.errors += 1
        self.unsynced += 1
        if self.unsynced >= _FSYNC_EVERY:
            os.fsync(self.fd)
            self.unsynced = 0

    def finish(self) -> None:
        """Flush OUTPUT to disk and close it."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.fsync(fd)
            os.close(fd)

    def summary(self) -> str:
        """One line: what was done."""
        took = time.monotonic() - self.started
        failed = self.errors + self.old_errors
        return (f"{self.done} answered in {took:.1f} s, {self.skipped} already in "
                f"{self.path or 'OUTPUT'}, {failed} with errors")


# ---------------------------------------------------------------- the input file


def _count_lines(path: str) -> int:
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                yield number, line


def _request(number: int, line: bytes) -> tuple[str, dict[str, Any] | None, str | None]:
    """``(custom_id, acompletion keywords, problem)`` of one input line."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        return str(number), None, f"line {number} is not JSON: {exc}"
    if not isinstance(data, dict):
        return str(number), None, f"line {number} is not a JSON object"
    if "body" in data and "custom_id" in data:
        body = data["body"]
        cid = str(data["custom_id"])
        if not isinstance(body, dict):
            return cid, None, f"line {number}: body is not a JSON object"
    else:
        body, cid = data, str(number)
    body = dict(body)
    for key in ("model", "stream", "stream_options"):
        body.pop(key, None)
    return cid, body, None


def _error(cid: str, kind: str, message: str, status: int | None) -> dict[str, Any]:
    return {"custom_id": cid, "error": {"type": kind, "message": message,
                                        "status_code": status}}


# ---------------------------------------------------------------- commands


def _bar(args: argparse.Namespace, total: int, initial: int) -> Any:
    if args.quiet or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        sys.stderr.write("trillm: no progress bar: pip install 'trillm[cli]' for one\n")
        return None
    return tqdm(total=total, initial=initial, unit="req", file=sys.stderr, dynamic_ncols=True,
                desc="trillm batch", smoothing=0.1)


async def _run(args: argparse.Namespace, state: _State) -> int:
    if args.provider_batch:
        return await _submit(args)
    seen = state.open(args.output, retry_errors=args.retry_errors)
    total = _count_lines(args.input)
    limits = None
    if args.rpm or args.tpm:
        limits = {args.model: trillm.RateLimit(rpm=args.rpm, tpm=args.tpm)}
    client_kw: dict[str, Any] = {"max_concurrency": args.concurrency, "rate_limits": limits}
    if args.redis:
        store = importlib.import_module("trillm.redis").RedisRateStore
        client_kw["rate_store"] = store(args.redis, prefix="trillm")
    options = _options(args)
    bar = _bar(args, total, 0)

    def todo() -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
        for number, line in _lines(args.input):
            cid, body, problem = _request(number, line)
            d = _digest(cid)
            i = bisect.bisect_left(seen, d)
            if i < len(seen) and seen[i] == d:
                state.skipped += 1
                if bar is not None:
                    bar.update(1)
                continue
            yield cid, body, problem

    async with trillm.Client(**client_kw) as client:

        async def answer(
            job: tuple[str, dict[str, Any] | None, str | None],
        ) -> dict[str, Any]:
            cid, body, problem = job
            if body is None:
                await trio.lowlevel.checkpoint()
                return _error(cid, "BadRequestError", problem or "bad line", None)
            body = dict(body)
            messages = body.pop("messages", None)
            try:
                response = await client.acompletion(args.model, messages, **body, **options)
            except trillm.errors.APIError as exc:
                return _error(cid, type(exc).__name__, str(exc), exc.status_code)
            except TypeError as exc:  # a keyword acompletion does not take
                return _error(cid, "BadRequestError", str(exc), None)
            return {"custom_id": cid, "response": response.to_dict()}

        async with trillm.amap(answer, todo(), limit=args.concurrency) as results:
            async for item in results:
                state.write(item)
                if bar is not None:
                    bar.update(1)
                    if "error" in item:
                        bar.set_postfix(errors=state.errors + state.old_errors, refresh=False)
    if bar is not None:
        bar.close()
    state.finish()
    if not args.quiet:
        sys.stderr.write(f"trillm batch: {state.summary()}\n")
    return 1 if state.errors + state.old_errors else 0


async def _submit(args: argparse.Namespace) -> int:
    ids: collections.deque[str] = collections.deque()

    def requests() -> Iterator[dict[str, Any]]:
        for number, line in _lines(args.input):
            cid, body, problem = _request(number, line)
            if body is None:
                raise ValueError(problem)
            ids.append(cid)
            yield body

    def custom_ids() -> Iterator[str]:
        while ids:
            yield ids.popleft()

    job = await trillm.abatch_submit(args.model, requests(), custom_ids=custom_ids(),
                                     **_options(args))
    sys.stdout.write(job.ref + "\n")
    if not args.quiet:
        sys.stderr.write(f"trillm batch: submitted {job.request_counts.total or ''} requests "
                         f"as {job.ref} ({job.status}); follow it with `trillm batch status "
                         f"{job.ref}`\n")
    return 0


async def _status(args: argparse.Namespace, state: _State) -> int:
    job = await trillm.abatch_status(args.job, **_options(args))
    out = {"ref": job.ref, "status": job.status, "done": job.done,
           "request_counts": job.request_counts.to_dict(), "created_at": job.created_at}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


async def _results(args: argparse.Namespace, state: _State) -> int:
    state.open(args.output, retry_errors=False)
    async with trillm.abatch_results(args.job, **_options(args)) as results:
        async for item in results:
            state.write(item.to_dict())
    state.finish()
    return 1 if state.errors else 0
