"""Gemini's Batch API with inline requests, sans-I/O: the batch, its state, its answers.

``POST /v1beta/models/{model}:batchGenerateContent`` takes ``{"batch":
{"display_name", "input_config": {"requests": {"requests": [{"request": <the
generateContent body>, "metadata": {"key": custom_id}}]}}}}`` and answers a
long-running operation named ``batches/{id}``; ``GET /v1beta/batches/{id}``
tells its ``state`` (``BATCH_STATE_PENDING``, ``_RUNNING``, ``_SUCCEEDED``,
``_FAILED``, ``_CANCELLED``, ``_EXPIRED``) and, once done, carries the answers
inline (``inlinedResponses``), each with its request's ``metadata.key``;
``POST /v1beta/batches/{id}:cancel`` cancels it.  Answers are decoded by the
chat provider's own ``parse_chat`` (passed in as *p*), errors by its rules.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from .. import errors
from ..batch_types import BatchItem, BatchJob, BatchRequestCounts, BatchStep, unix_seconds
from ..types import ChatRequest
from .base import HTTPRequestSpec, ProviderConfig, loads_json

__all__ = ["GeminiBatches"]

_STATES = {"PENDING": "validating", "QUEUED": "validating", "RUNNING": "in_progress",
           "SUCCEEDED": "completed", "FAILED": "failed", "CANCELLED": "cancelled",
           "CANCELLING": "cancelling", "EXPIRED": "expired", "PAUSED": "in_progress"}
_JSON = (("content-type", "application/json"),)


class GeminiBatches:
    """The batch translation of the Gemini API (inline requests and answers)."""

    #: Inline batches are kept modest: the API takes about 20 MB of inline requests.
    max_requests = 50_000
    max_bytes = 19 * 2**20
    needs_upload = False

    def _headers(self, step: BatchStep, cfg: ProviderConfig) -> tuple[tuple[str, str], ...]:
        headers: tuple[tuple[str, str], ...] = ()
        if cfg.api_key:
            headers = (("x-goog-api-key", cfg.api_key),)
        return headers + tuple((step.extra_headers or {}).items())

    def encode(self, p: Any, custom_id: str, req: ChatRequest, cfg: ProviderConfig) -> bytes:
        """One request as an inline request of the batch (its ``metadata.key`` the id)."""
        body = p.build_chat(req, cfg).json
        item = {"request": body, "metadata": {"key": custom_id}}
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()

    def payload(self, items: list[bytes]) -> bytes:
        """The create request's body."""
        return (b'{"batch":{"display_name":"trillm-batch","input_config":{"requests":'
                b'{"requests":[' + b",".join(items) + b"]}}}}")

    def build(self, p: Any, step: BatchStep, cfg: ProviderConfig) -> HTTPRequestSpec:
        """The HTTP request of one step (``create``, ``get``, ``cancel``)."""
        headers = self._headers(step, cfg)
        common: dict[str, Any] = {"provider": step.provider, "model": step.model}
        base = f"{cfg.api_base}/v1beta"
        if step.step == "create":
            model = quote(step.model.removeprefix("models/"), safe="")
            return HTTPRequestSpec("POST", f"{base}/models/{model}:batchGenerateContent",
                                   (*headers, *_JSON), content=step.content, **common)
        name = _name(step.batch_id)
        if step.step == "get":
            return HTTPRequestSpec("GET", f"{base}/{name}", headers, **common)
        if step.step == "cancel":
            return HTTPRequestSpec("POST", f"{base}/{name}:cancel", (*headers, *_JSON),
                                   json={}, **common)
        raise ValueError(f"no batch step {step.step!r}")

    def parse(self, p: Any, body: bytes, step: BatchStep, cfg: ProviderConfig) -> Any:
        """A step's 2xx answer: a :class:`BatchJob` (None for ``cancel``, which says nothing)."""
        if step.step == "cancel":
            return None
        data = loads_json(body, provider=step.provider, model=step.model, secrets=cfg.secrets)
        batch = _batch_of(data)
        if not isinstance(batch.get("name"), str):
            raise errors.APIError(
                f"unexpected answer from {step.provider} to the batch step {step.step!r}: "
                "no batch name", provider=step.provider, model=step.model, secrets=cfg.secrets)
        return self.job(data, step.provider, step.model or None)

    def job(self, data: Any, provider: str, model: str | None) -> BatchJob:
        """An operation (or a batch) as a :class:`BatchJob` (statuses in the common words)."""
        batch = _batch_of(data)
        state = str(batch.get("state") or "")
        status = _STATES.get(state.rsplit("_", 1)[-1] if "_STATE_" in state else state,
                             "in_progress")
        if status not in ("completed", "failed", "cancelled", "expired") and \
                isinstance(data, dict) and data.get("done") and data.get("error"):
            status = "failed"
        stats = batch.get("batchStats") or {}
        counts = BatchRequestCounts(int(stats.get("requestCount") or 0),
                                    int(stats.get("successfulRequestCount") or 0),
                                    int(stats.get("failedRequestCount") or 0))
        name = str(batch["name"])
        job_model = batch.get("model")
        if isinstance(job_model, str):
            job_model = job_model.removeprefix("models/")
        return BatchJob(name, provider, status, counts, unix_seconds(batch.get("createTime")),
                        model or job_model, raw=data)

    def result_sources(self, job: BatchJob) -> list[BatchStep]:
        """Nothing to download: the answers are inline in the done job."""
        return []

    def job_failure(self, job: BatchJob) -> str | None:
        """Why a failed job has no answers (its operation's error), or None."""
        raw = job.raw if isinstance(job.raw, dict) else {}
        err = raw.get("error")
        return str(err.get("message")) if isinstance(err, dict) and err.get("message") else None

    def inline_results(self, p: Any, job: BatchJob, cfg: ProviderConfig) -> list[BatchItem]:
        """The answers carried by a done job, in order, as :class:`BatchItem`s."""
        items = _inlined(job.raw)
        req = ChatRequest(job.provider, job.model or "", ())
        out = []
        for i, item in enumerate(items):
            meta = item.get("metadata") if isinstance(item, dict) else None
            key = meta.get("key") if isinstance(meta, dict) else None
            custom_id = str(key) if key is not None else str(i)
            try:
                if isinstance(item, dict) and item.get("response") is not None:
                    body = json.dumps(item["response"]).encode()
                    out.append(BatchItem(custom_id, p.parse_chat(body, req, cfg)))
                    continue
                err = item.get("error") if isinstance(item, dict) else None
                if not isinstance(err, dict):
                    err = {"code": 500, "message": "the batch gave no answer for this request"}
                code = err.get("code")
                status = code if isinstance(code, int) and 400 <= code <= 599 else 500
                out.append(BatchItem(custom_id, error=p.parse_error(
                    status, {}, json.dumps({"error": err}).encode(), req, cfg)))
            except errors.APIError as exc:
                out.append(BatchItem(custom_id, error=exc))
        return out


def _name(batch_id: str | None) -> str:
    name = batch_id or ""
    if not name.startswith("batches/"):
        name = f"batches/{name}"
    return "batches/" + quote(name.removeprefix("batches/"), safe="")


def _batch_of(data: Any) -> dict[str, Any]:
    """The batch record of an operation (its ``metadata``) or of a bare batch."""
    if not isinstance(data, dict):
        return {}
    meta = data.get("metadata")
    if isinstance(meta, dict) and ("state" in meta or "batchStats" in meta):
        return {"name": data.get("name"), **meta}
    return data


def _inlined(data: Any) -> list[Any]:
    """The inline answers of an operation, wherever its version keeps them."""
    if not isinstance(data, dict):
        return []
    for holder in (data.get("response"), _batch_of(data).get("output"), data.get("output")):
        if not isinstance(holder, dict):
            continue
        inlined = holder.get("inlinedResponses")
        if isinstance(inlined, dict):
            inlined = inlined.get("inlinedResponses")
        if isinstance(inlined, list):
            return inlined
    return []
