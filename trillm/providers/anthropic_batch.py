"""Anthropic's Message Batches API, sans-I/O: the batch, its status, its result lines.

``POST /v1/messages/batches`` takes ``{"requests": [{"custom_id", "params"}]}``
(each ``params`` the body ``/v1/messages`` would get); ``GET
/v1/messages/batches/{id}`` tells its ``processing_status`` (``in_progress``,
``canceling``, ``ended``); ``POST .../{id}/cancel`` cancels it; once ended its
``results_url`` serves JSONL lines ``{"custom_id", "result": {"type":
"succeeded", "message": {...}}}`` (or ``errored`` with the error body,
``canceled``, ``expired``).  Messages are decoded by the chat provider's own
``parse_chat`` (passed in as *p*), errors by its error rules.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from .. import errors
from ..batch_types import BatchItem, BatchJob, BatchRequestCounts, BatchStep, unix_seconds
from ..types import ChatRequest
from .base import HTTPRequestSpec, ProviderConfig, batch_step_answer, loads_json

__all__ = ["AnthropicBatches"]

_STATUS = {"in_progress": "in_progress", "canceling": "cancelling"}


class AnthropicBatches:
    """The batch translation of Anthropic's Messages API."""

    #: A batch holds at most 100,000 requests and 256 MB (a margin is kept for framing).
    max_requests = 100_000
    max_bytes = 250 * 2**20
    needs_upload = False

    def __init__(self, api_version: str) -> None:
        self.api_version = api_version

    def _headers(self, step: BatchStep, cfg: ProviderConfig) -> tuple[tuple[str, str], ...]:
        headers: tuple[tuple[str, str], ...] = (("anthropic-version", self.api_version),)
        if cfg.api_key:
            headers = (("x-api-key", cfg.api_key), *headers)
        return headers + tuple((step.extra_headers or {}).items())

    def _url(self, cfg: ProviderConfig, rest: str = "") -> str:
        return f"{cfg.api_base.rstrip('/')}/v1/messages/batches{rest}"

    def encode(self, p: Any, custom_id: str, req: ChatRequest, cfg: ProviderConfig) -> bytes:
        """One request as an item of the batch's ``requests``."""
        body = dict(p.build_chat(req, cfg).json)
        body.pop("stream", None)
        item = {"custom_id": custom_id, "params": body}
        return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()

    def payload(self, items: list[bytes]) -> bytes:
        """The create request's body."""
        return b'{"requests":[' + b",".join(items) + b"]}"

    def build(self, p: Any, step: BatchStep, cfg: ProviderConfig) -> HTTPRequestSpec:
        """The HTTP request of one step (``create``, ``get``, ``cancel``, ``download``)."""
        headers = self._headers(step, cfg)
        common: dict[str, Any] = {"provider": step.provider, "model": step.model}
        if step.step == "create":
            return HTTPRequestSpec("POST", self._url(cfg), (*headers, *_JSON),
                                   content=step.content, **common)
        if step.step == "get":
            return HTTPRequestSpec("GET", self._url(cfg, f"/{_q(step.batch_id)}"), headers,
                                   **common)
        if step.step == "cancel":
            return HTTPRequestSpec("POST", self._url(cfg, f"/{_q(step.batch_id)}/cancel"),
                                   headers, **common)
        if step.step == "download":
            url = step.url or self._url(cfg, f"/{_q(step.batch_id)}/results")
            return HTTPRequestSpec("GET", url, headers, **common)
        raise ValueError(f"no batch step {step.step!r}")

    def parse(self, p: Any, body: bytes, step: BatchStep, cfg: ProviderConfig) -> Any:
        """A step's 2xx answer as a :class:`BatchJob`."""
        data = batch_step_answer(body, step, cfg)
        return self.job(data, step.provider, step.model or None)

    def job(self, data: dict[str, Any], provider: str, model: str | None) -> BatchJob:
        """A message batch as a :class:`BatchJob` (statuses in the common words)."""
        c = data.get("request_counts") or {}
        succeeded, errored = int(c.get("succeeded") or 0), int(c.get("errored") or 0)
        canceled, expired = int(c.get("canceled") or 0), int(c.get("expired") or 0)
        total = int(c.get("processing") or 0) + succeeded + errored + canceled + expired
        state = data.get("processing_status")
        status = _STATUS.get(str(state), "in_progress")
        if state == "ended":
            if data.get("cancel_initiated_at"):
                status = "cancelled"
            elif expired and not (succeeded or errored):
                status = "expired"
            else:
                status = "completed"
        return BatchJob(data["id"], provider, status,
                        BatchRequestCounts(total, succeeded, errored + canceled + expired),
                        unix_seconds(data.get("created_at")), model, raw=data)

    def result_sources(self, job: BatchJob) -> list[BatchStep]:
        """What to download for a done job: its ``results_url``."""
        raw = job.raw if isinstance(job.raw, dict) else {}
        if job.status not in ("completed", "cancelled", "expired", "failed"):
            return []
        return [BatchStep(job.provider, job.model or "", "download", batch_id=job.id,
                          url=raw.get("results_url") or None)]

    def job_failure(self, job: BatchJob) -> str | None:
        """Anthropic's jobs do not fail whole."""
        return None

    def parse_line(self, p: Any, line: bytes, job: BatchJob, cfg: ProviderConfig) -> BatchItem:
        """One result line as a :class:`BatchItem`."""
        model = job.model or ""
        data = loads_json(line, provider=job.provider, model=model, secrets=cfg.secrets)
        custom_id = str(data.get("custom_id")) if isinstance(data, dict) else ""
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, dict):
            result = {}
        kind = result.get("type")
        req = ChatRequest(job.provider, model, ())
        try:
            if kind == "succeeded":
                message = json.dumps(result.get("message")).encode()
                return BatchItem(custom_id, p.parse_chat(message, req, cfg))
            if kind == "errored":
                error = result.get("error")
                if not isinstance(error, dict) or error.get("type") != "error":
                    error = {"type": "error", "error": error}
                # the chat parser raises the error body as its class, as from a direct call
                p.parse_chat(json.dumps(error).encode(), req, cfg)
            why = {"canceled": "the batch was cancelled before this request ran",
                   "expired": "the batch expired before this request ran"}.get(
                str(kind), f"no result for this request ({kind!r})")
            cls = errors.RequestTimeoutError if kind == "expired" else errors.APIError
            return BatchItem(custom_id, error=cls(why, provider=job.provider, model=job.model))
        except errors.APIError as exc:
            return BatchItem(custom_id, error=exc)


_JSON = (("content-type", "application/json"),)


def _q(value: str | None) -> str:
    return quote(value or "", safe="")
