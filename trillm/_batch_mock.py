"""The mock's batches: OpenAI's Batch API answered in this process, finishing after a delay.

A ``mock/`` model's batch steps (see :data:`trillm._call.BATCHES`) are answered
here, through the same seam as every mock answer (``HTTPRequestSpec.local``),
in OpenAI's wire format, so the openai provider's batch translation reads them
as it reads a server's.  The state (files and jobs) lives in a registry of the
current trio run (a ``RunVar``): a job submitted in one run is unknown to
another.  Times are on trio's clock, so a job finishes after
``mock_batch_delay`` seconds of virtual time under the autojump clock.

Each request's answer is the mock's chat answer (``providers/mock.answer``);
a request whose body carries ``mock_response`` answers that text, and one
carrying ``mock_error`` (``{"status_code", "message"}``) answers that error.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import trio

from ._mock_wire import LocalAnswer, MockOptions
from ._records import record_repr
from ._wire import HTTPRequestSpec
from .batch_types import BatchStep
from .providers import mock
from .types import ChatRequest

__all__ = ["DEFAULT_DELAY", "answer"]

#: Seconds a mock batch takes to finish, unless ``mock_batch_delay=`` says otherwise.
DEFAULT_DELAY = 1.0
_JSON = (("content-type", "application/json"),)


@attrs.define(repr=False)
class _Job:

    __repr__ = record_repr

    id: str
    input_file_id: str
    created: float
    ready_at: float
    lines: list[dict[str, Any]]
    metadata: Any
    status: str = "in_progress"
    output_file_id: str | None = None
    failed: int = 0


@attrs.define(repr=False)
class _Registry:

    __repr__ = record_repr

    files: dict[str, bytes] = attrs.Factory(dict)
    jobs: dict[str, _Job] = attrs.Factory(dict)
    counter: int = 0

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_mock{self.counter}"


_REGISTRY: trio.lowlevel.RunVar[_Registry] = trio.lowlevel.RunVar("trillm.mock_batches")


def _registry() -> _Registry:
    try:
        return _REGISTRY.get()
    except LookupError:
        registry = _Registry()
        _REGISTRY.set(registry)
        return registry


def _ok(options: MockOptions, data: Any) -> LocalAnswer:
    return LocalAnswer(200, _JSON, (json.dumps(data).encode(),), latency=options.latency)


def _not_found(options: MockOptions, what: str) -> LocalAnswer:
    body = {"error": {"message": f"No such {what} in this trio run (the mock's batches live "
                                 "in the run that submitted them)",
                      "type": "invalid_request_error", "code": None}}
    return LocalAnswer(404, _JSON, (json.dumps(body).encode(),), latency=options.latency)


def answer(options: MockOptions, step: BatchStep, spec: HTTPRequestSpec) -> LocalAnswer:
    """The mock's answer to one batch step, in OpenAI's format."""
    if isinstance(options.response, BaseException):
        return LocalAnswer(latency=options.latency, error=options.response)
    reg = _registry()
    now = trio.current_time()
    if step.step == "upload":
        file_id = reg.next_id("file")
        reg.files[file_id] = step.content or b""
        return _ok(options, {"id": file_id, "object": "file", "purpose": "batch",
                             "bytes": len(step.content or b""), "filename": "batch.jsonl"})
    if step.step == "create":
        data = reg.files.get(step.file_id or "")
        if data is None:
            return _not_found(options, f"file {step.file_id!r}")
        lines = [json.loads(line) for line in data.splitlines() if line.strip()]
        delay = step.params.get("mock_batch_delay", DEFAULT_DELAY)
        job = _Job(reg.next_id("batch"), step.file_id or "", now, now + delay, lines,
                   step.metadata)
        reg.jobs[job.id] = job
        return _ok(options, _batch_json(job, now))
    if step.step == "download":
        content = reg.files.get(step.file_id or "")
        if content is None:
            return _not_found(options, f"file {step.file_id!r}")
        return LocalAnswer(200, (("content-type", "application/jsonl"),),
                           tuple(content[i:i + 65536] for i in range(0, len(content), 65536))
                           or (b"",), latency=options.latency)
    found = reg.jobs.get(step.batch_id or "")
    if found is None:
        return _not_found(options, f"batch {step.batch_id!r}")
    if step.step == "cancel" and found.status == "in_progress" and now < found.ready_at:
        found.status = "cancelled"
    _advance(reg, found, now, options)
    return _ok(options, _batch_json(found, now))


def _advance(reg: _Registry, job: _Job, now: float, options: MockOptions) -> None:
    """Finish *job* once its time came: render its output file."""
    if job.status != "in_progress" or now < job.ready_at:
        return
    out = []
    for line in job.lines:
        result, ok = _result(line, options)
        job.failed += not ok
        out.append(json.dumps(result, separators=(",", ":")).encode())
    file_id = reg.next_id("file")
    reg.files[file_id] = b"\n".join(out) + b"\n"
    job.output_file_id = file_id
    job.status = "completed"


def _result(line: dict[str, Any], options: MockOptions) -> tuple[dict[str, Any], bool]:
    body = dict(line.get("body") or {})
    said = body.pop("mock_response", None)
    failure = body.pop("mock_error", None)
    custom_id = line.get("custom_id")
    if isinstance(failure, dict):
        status = int(failure.get("status_code") or 500)
        error = {"error": {"message": str(failure.get("message") or "mock error"),
                           "type": "mock_error", "code": None}}
        return ({"id": f"batch_req_{custom_id}", "custom_id": custom_id,
                 "response": {"status_code": status, "request_id": "", "body": error},
                 "error": None}, False)
    params = {k: v for k, v in body.items() if k not in ("model", "messages")}
    req = ChatRequest("mock", str(body.get("model") or "mock"),
                      tuple(body.get("messages") or ()), False, params)
    opts = attrs.evolve(options, latency=0.0, response=said if isinstance(said, str)
                        else options.response)
    local = mock.answer(opts, req, HTTPRequestSpec("POST", "mock://batch", json=body))
    chat = json.loads(b"".join(local.chunks))
    return ({"id": f"batch_req_{custom_id}", "custom_id": custom_id,
             "response": {"status_code": 200, "request_id": "", "body": chat},
             "error": None}, True)


def _batch_json(job: _Job, now: float) -> dict[str, Any]:
    total = len(job.lines)
    done = job.status == "completed"
    return {
        "id": job.id, "object": "batch", "endpoint": "/v1/chat/completions",
        "input_file_id": job.input_file_id, "completion_window": "24h",
        "status": job.status, "output_file_id": job.output_file_id, "error_file_id": None,
        "created_at": mock.CREATED,
        "model": job.lines[0].get("body", {}).get("model") if job.lines else None,
        "request_counts": {"total": total, "completed": total - job.failed if done else 0,
                           "failed": job.failed if done else 0},
        "metadata": job.metadata,
    }
