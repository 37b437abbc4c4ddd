"""Fake batch servers for tests: OpenAI's (and Azure's), Anthropic's and Gemini's batch wire
formats, as handlers for ``tests.fakeserver`` (real sockets on 127.0.0.1).

Each keeps what it was sent (``created``: the requests of each job, in the
provider's form) and answers every request with the echo of its last user
message, except requests whose text contains ``FAIL``, which end in an error.
A job is ``in_progress`` for the first ``polls`` status requests, then done.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.fakeserver import Reply, Request, openai_chat_json


def _text(messages: list[dict[str, Any]]) -> str:
    return str(messages[-1]["content"])


def _multipart_file(request: Request) -> tuple[dict[str, str], bytes]:
    """The fields and the file of a multipart upload."""
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    fields: dict[str, str] = {}
    data = b""
    for part in request.body.split(b"--" + boundary):
        if b"\r\n\r\n" not in part:
            continue
        head, _, value = part.partition(b"\r\n\r\n")
        value = value.removesuffix(b"\r\n")
        name = re.search(rb'name="([^"]+)"', head)
        if name is None:
            continue
        if b"filename=" in head:
            data = value
        else:
            fields[name.group(1).decode()] = value.decode()
    return fields, data


class FakeOpenAIBatches:
    """OpenAI's Batch API (``azure=True``: Azure's paths, ``api-version`` and ``api-key``)."""

    def __init__(self, *, polls: int = 1, azure: bool = False) -> None:
        self.polls = polls
        self.azure = azure
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.created: list[list[dict[str, Any]]] = []
        self.gets = 0

    def _path(self, request: Request) -> str:
        path, _, query = request.path.partition("?")
        if self.azure:
            assert query == "api-version=2024-10-21", query
            assert request.headers.get("api-key") == "az-key"
            assert "authorization" not in request.headers
            return path.removeprefix("/openai")
        assert request.headers.get("authorization") == "Bearer sk-test"
        return path.removeprefix("/v1")

    def __call__(self, request: Request) -> Reply:
        path = self._path(request)
        if request.method == "POST" and path == "/files":
            fields, data = _multipart_file(request)
            assert fields == {"purpose": "batch"}
            file_id = f"file-{len(self.files)}"
            self.files[file_id] = data
            return Reply.json({"id": file_id, "object": "file", "purpose": "batch"})
        if request.method == "POST" and path == "/batches":
            body = request.json()
            assert body["completion_window"] == "24h"
            assert body["endpoint"] == ("/chat/completions" if self.azure
                                        else "/v1/chat/completions")
            lines = [json.loads(x) for x in self.files[body["input_file_id"]].splitlines()]
            self.created.append(lines)
            job = {"id": f"batch_{len(self.jobs)}", "object": "batch", "status": "validating",
                   "created_at": 1_711_471_533, "input_file_id": body["input_file_id"],
                   "metadata": body.get("metadata"), "polls": 0,
                   "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
            self.jobs[job["id"]] = job
            return Reply.json({k: v for k, v in job.items() if k != "polls"})
        m = re.fullmatch(r"/batches/([^/]+)(/cancel)?", path)
        if m:
            job = self.jobs[m.group(1)]
            if m.group(2):
                job["status"] = "cancelling"
                job["polls"] = -10**9
            else:
                self.gets += 1
                job["polls"] += 1
                if job["polls"] > self.polls and job["status"] != "completed":
                    self._finish(job)
                elif job["status"] == "validating":
                    job["status"] = "in_progress"
            return Reply.json({k: v for k, v in job.items() if k != "polls"})
        m = re.fullmatch(r"/files/([^/]+)/content", path)
        if m:
            return Reply(200, [("content-type", "application/octet-stream")],
                         chunks=_cut(self.files[m.group(1)], 7))
        return Reply.json({"error": {"message": f"no route {path}"}}, status=404)

    def _finish(self, job: dict[str, Any]) -> None:
        lines = [json.loads(x) for x in self.files[job["input_file_id"]].splitlines()]
        out, err = [], []
        for line in lines:
            text = _text(line["body"]["messages"])
            if "FAIL" in text:
                err.append({"id": "r", "custom_id": line["custom_id"], "response": {
                    "status_code": 400, "request_id": "req_1", "body": {"error": {
                        "message": "bad request " + text, "type": "invalid_request_error",
                        "code": None}}}, "error": None})
            elif "EXPIRE" in text:
                err.append({"id": "r", "custom_id": line["custom_id"], "response": None,
                            "error": {"code": "batch_expired", "message": "expired"}})
            else:
                out.append({"id": "r", "custom_id": line["custom_id"], "response": {
                    "status_code": 200, "request_id": "req_1",
                    "body": openai_chat_json(text, model=line["body"]["model"])},
                    "error": None})
        job["status"] = "completed"
        for key, rows in (("output_file_id", out), ("error_file_id", err)):
            if rows:
                file_id = f"file-{len(self.files)}"
                self.files[file_id] = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
                job[key] = file_id
        job["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}


def _cut(data: bytes, n: int) -> list[bytes | float]:
    """*data* in *n* chunks cut at odd places (so lines straddle chunks)."""
    size = max(1, len(data) // n + 1)
    return [data[i:i + size] for i in range(0, len(data), size)]


class FakeAnthropicBatches:
    """Anthropic's Message Batches API."""

    def __init__(self, base: str = "", *, polls: int = 1) -> None:
        self.base = base
        self.polls = polls
        self.jobs: dict[str, dict[str, Any]] = {}
        self.created: list[list[dict[str, Any]]] = []

    def __call__(self, request: Request) -> Reply:
        assert request.headers.get("x-api-key") == "sk-ant-test"
        assert request.headers.get("anthropic-version") == "2023-06-01"
        path = request.path
        if request.method == "POST" and path == "/v1/messages/batches":
            reqs = request.json()["requests"]
            self.created.append(reqs)
            job = {"id": f"msgbatch_{len(self.jobs)}", "type": "message_batch",
                   "processing_status": "in_progress", "created_at": "2024-08-20T18:37:24.100435Z",
                   "request_counts": {"processing": len(reqs), "succeeded": 0, "errored": 0,
                                      "canceled": 0, "expired": 0},
                   "results_url": None, "cancel_initiated_at": None, "_polls": 0, "_reqs": reqs}
            self.jobs[job["id"]] = job
            return Reply.json(_public(job))
        m = re.fullmatch(r"/v1/messages/batches/([^/]+)(/cancel|/results)?", path)
        if m:
            job = self.jobs[m.group(1)]
            if m.group(2) == "/results":
                return Reply(200, [("content-type", "application/binary")],
                             chunks=_cut(job["_results"], 5))
            if m.group(2) == "/cancel":
                job["processing_status"] = "canceling"
                job["cancel_initiated_at"] = "2024-08-20T18:38:00Z"
            else:
                job["_polls"] += 1
                if job["_polls"] > self.polls and job["processing_status"] == "in_progress":
                    self._finish(job)
            return Reply.json(_public(job))
        return Reply.json({"type": "error", "error": {"type": "not_found_error",
                                                      "message": path}}, status=404)

    def _finish(self, job: dict[str, Any]) -> None:
        rows = []
        ok = bad = 0
        for r in job["_reqs"]:
            text = _text(r["params"]["messages"])
            if "FAIL" in text:
                bad += 1
                rows.append({"custom_id": r["custom_id"], "result": {"type": "errored", "error": {
                    "type": "error", "error": {"type": "invalid_request_error",
                                               "message": "bad " + text}}}})
            else:
                ok += 1
                rows.append({"custom_id": r["custom_id"], "result": {"type": "succeeded",
                             "message": {
                                 "id": "msg_1", "type": "message", "role": "assistant",
                                 "model": r["params"]["model"],
                                 "content": [{"type": "text", "text": text}],
                                 "stop_reason": "end_turn",
                                 "usage": {"input_tokens": 3, "output_tokens": 2}}}})
        job["_results"] = b"".join(json.dumps(x).encode() + b"\n" for x in rows)
        job["processing_status"] = "ended"
        job["results_url"] = f"{self.base}/v1/messages/batches/{job['id']}/results"
        job["request_counts"] = {"processing": 0, "succeeded": ok, "errored": bad,
                                 "canceled": 0, "expired": 0}


def _public(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if not k.startswith("_")}


class FakeGeminiBatches:
    """Gemini's Batch API with inline requests (long-running operations)."""

    def __init__(self, *, polls: int = 1) -> None:
        self.polls = polls
        self.jobs: dict[str, dict[str, Any]] = {}
        self.created: list[list[dict[str, Any]]] = []

    def __call__(self, request: Request) -> Reply:
        assert request.headers.get("x-goog-api-key") == "g-test"
        path = request.path
        m = re.fullmatch(r"/v1beta/models/([^/:]+):batchGenerateContent", path)
        if m and request.method == "POST":
            batch = request.json()["batch"]
            assert batch["display_name"]
            reqs = batch["input_config"]["requests"]["requests"]
            self.created.append(reqs)
            name = f"batches/b{len(self.jobs)}"
            job = {"name": name, "model": f"models/{m.group(1)}", "reqs": reqs, "polls": 0,
                   "state": "BATCH_STATE_PENDING"}
            self.jobs[name] = job
            return Reply.json(self._operation(job))
        m = re.fullmatch(r"/v1beta/(batches/[^/:]+)(:cancel)?", path)
        if m and m.group(1) in self.jobs:
            job = self.jobs[m.group(1)]
            if m.group(2):
                job["state"] = "BATCH_STATE_CANCELLED"
                return Reply.json({})
            job["polls"] += 1
            if job["polls"] > self.polls and job["state"] == "BATCH_STATE_PENDING":
                job["state"] = "BATCH_STATE_SUCCEEDED"
            return Reply.json(self._operation(job))
        return Reply.json({"error": {"code": 404, "message": path, "status": "NOT_FOUND"}},
                          status=404)

    def _operation(self, job: dict[str, Any]) -> dict[str, Any]:
        n = len(job["reqs"])
        done = job["state"] == "BATCH_STATE_SUCCEEDED"
        failed = sum("FAIL" in _gemini_text(r) for r in job["reqs"]) if done else 0
        op: dict[str, Any] = {"name": job["name"], "metadata": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": job["model"], "displayName": "x",
            "createTime": "2025-07-01T10:00:00.123456789Z",
            "state": job["state"], "name": job["name"],
            "batchStats": {"requestCount": str(n), "successfulRequestCount": str(n - failed),
                           "failedRequestCount": str(failed)} if done else {
                               "requestCount": str(n), "pendingRequestCount": str(n)}}}
        if done:
            op["done"] = True
            answers = []
            for r in job["reqs"]:
                text = _gemini_text(r)
                if "FAIL" in text:
                    answers.append({"error": {"code": 400, "message": "bad " + text,
                                              "status": "INVALID_ARGUMENT"},
                                    "metadata": r["metadata"]})
                else:
                    answers.append({"response": {
                        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                        "finishReason": "STOP", "index": 0}],
                        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2,
                                          "totalTokenCount": 5},
                        "modelVersion": job["model"].removeprefix("models/")},
                        "metadata": r["metadata"]})
            op["response"] = {"@type": "type.googleapis.com/google.ai.generativelanguage."
                                       "v1main.GenerateContentBatchOutput",
                              "inlinedResponses": {"inlinedResponses": answers}}
        return op


def _gemini_text(r: dict[str, Any]) -> str:
    return str(r["request"]["contents"][-1]["parts"][0]["text"])
