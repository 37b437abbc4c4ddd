"""OpenAI's (and Azure's) Batch API, sans-I/O: the JSONL file, the batch, the result lines.

A batch goes in two steps: the requests as a JSONL file uploaded to
``POST /files`` (multipart, ``purpose=batch``), then ``POST /batches`` with
that file's id, ``endpoint`` and ``completion_window="24h"``.  ``GET
/batches/{id}`` tells its status; when it is done its ``output_file_id`` and
``error_file_id`` name two JSONL files (``GET /files/{id}/content``) whose
lines carry each request's answer or error by ``custom_id``.  Azure serves the
same at ``{base}/openai/files`` and ``{base}/openai/batches`` with an
``api-version``, and takes the deployment as each line's ``model``.

Each answer is decoded by the chat provider's own ``parse_chat`` (passed in
as *p*), so it is the :class:`~trillm.types.ModelResponse` a direct call gives.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from .. import errors
from ..batch_types import BatchItem, BatchJob, BatchRequestCounts, BatchStep
from ..types import ChatRequest
from .base import HTTPRequestSpec, ProviderConfig, batch_step_answer, loads_json, multipart_body

__all__ = ["AZURE_BATCHES", "OPENAI_BATCHES", "OpenAIBatches"]

_DEFAULT_AZURE_VERSION = "2024-10-21"
_JSON = (("content-type", "application/json"),)


class OpenAIBatches:
    """The batch translation of OpenAI (``azure=False``) or Azure OpenAI (``azure=True``)."""

    #: A batch file holds at most 50,000 requests and 200 MB (a margin is kept for framing).
    max_requests = 50_000
    max_bytes = 190 * 2**20
    needs_upload = True

    def __init__(self, *, azure: bool) -> None:
        self.azure = azure

    # ---------------------------------------------------------- requests

    def _url(self, cfg: ProviderConfig, path: str) -> str:
        if not self.azure:
            return f"{cfg.api_base}/{path}"
        version = quote(cfg.api_version or _DEFAULT_AZURE_VERSION, safe="")
        return f"{cfg.api_base}/openai/{path}?api-version={version}"

    def encode(self, p: Any, custom_id: str, req: ChatRequest, cfg: ProviderConfig) -> bytes:
        """One request as a line of the batch file (the body ``build_chat`` would send)."""
        body = dict(p.build_chat(req, cfg).json)
        body.pop("stream", None)
        body.pop("stream_options", None)
        url = "/chat/completions" if self.azure else "/v1/chat/completions"
        line = {"custom_id": custom_id, "method": "POST", "url": url, "body": body}
        return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode()

    def payload(self, items: list[bytes]) -> bytes:
        """The batch file: one request a line."""
        return b"\n".join(items) + b"\n"

    def build(self, p: Any, step: BatchStep, cfg: ProviderConfig) -> HTTPRequestSpec:
        """The HTTP request of one step (``upload``, ``create``, ``get``, ``cancel``,
        ``download``)."""
        headers = p.auth_headers(cfg) + tuple((step.extra_headers or {}).items())
        common: dict[str, Any] = {"provider": step.provider, "model": step.model}
        if step.step == "upload":
            ctype, data = multipart_body(
                {"purpose": "batch"},
                {"file": ("trillm-batch.jsonl", step.content or b"", "application/jsonl")})
            return HTTPRequestSpec("POST", self._url(cfg, "files"),
                                   (*headers, ("content-type", ctype)), content=data, **common)
        if step.step == "create":
            body: dict[str, Any] = {
                "input_file_id": step.file_id,
                "endpoint": "/chat/completions" if self.azure else "/v1/chat/completions",
                "completion_window": "24h",
            }
            if step.metadata:
                body["metadata"] = dict(step.metadata)
            return HTTPRequestSpec("POST", self._url(cfg, "batches"), headers, json=body,
                                   **common)
        if step.step == "get":
            return HTTPRequestSpec("GET", self._url(cfg, f"batches/{_q(step.batch_id)}"),
                                   headers, **common)
        if step.step == "cancel":
            return HTTPRequestSpec(
                "POST", self._url(cfg, f"batches/{_q(step.batch_id)}/cancel"), headers,
                **common)
        if step.step == "download":
            return HTTPRequestSpec(
                "GET", self._url(cfg, f"files/{_q(step.file_id)}/content"), headers, **common)
        raise ValueError(f"no batch step {step.step!r}")

    # ---------------------------------------------------------- answers

    def parse(self, p: Any, body: bytes, step: BatchStep, cfg: ProviderConfig) -> Any:
        """A step's 2xx answer: the file id (``upload``) or a :class:`BatchJob`."""
        data = batch_step_answer(body, step, cfg)
        if step.step == "upload":
            return data["id"]
        return self.job(data, step.provider)

    def job(self, data: dict[str, Any], provider: str) -> BatchJob:
        """A batch object as a :class:`BatchJob` (its statuses are the common words)."""
        counts = data.get("request_counts") or {}
        return BatchJob(
            data["id"], provider, str(data.get("status") or "validating"),
            BatchRequestCounts(int(counts.get("total") or 0), int(counts.get("completed") or 0),
                               int(counts.get("failed") or 0)),
            int(data.get("created_at") or 0), data.get("model"), raw=data)

    def result_sources(self, job: BatchJob) -> list[BatchStep]:
        """The files to download for a done job: its output file, then its error file."""
        raw = job.raw if isinstance(job.raw, dict) else {}
        return [BatchStep(job.provider, job.model or "", "download", file_id=raw[key])
                for key in ("output_file_id", "error_file_id") if raw.get(key)]

    def job_failure(self, job: BatchJob) -> str | None:
        """Why a failed job has no results (its validation errors), or None."""
        raw = job.raw if isinstance(job.raw, dict) else {}
        data = (raw.get("errors") or {}).get("data") if isinstance(raw.get("errors"), dict) \
            else None
        if not data:
            return None
        return "; ".join(
            f"line {e.get('line')}: {e.get('message')}" if e.get("line") is not None
            else str(e.get("message")) for e in data[:5] if isinstance(e, dict))

    def parse_line(self, p: Any, line: bytes, job: BatchJob, cfg: ProviderConfig) -> BatchItem:
        """One line of an output or error file as a :class:`BatchItem`."""
        model = job.model or ""
        data = loads_json(line, provider=job.provider, model=model, secrets=cfg.secrets)
        custom_id = str(data.get("custom_id")) if isinstance(data, dict) else ""
        req = ChatRequest(job.provider, model, ())
        response = data.get("response") if isinstance(data, dict) else None
        try:
            if isinstance(response, dict):
                status = response.get("status_code")
                body = json.dumps(response.get("body")).encode()
                if isinstance(status, int) and status >= 300:
                    return BatchItem(custom_id, error=p.parse_error(status, {}, body, req, cfg))
                if response.get("body") is not None:
                    return BatchItem(custom_id, p.parse_chat(body, req, cfg))
            err = data.get("error") if isinstance(data, dict) else None
            if not isinstance(err, dict):
                err = {"message": "the batch gave no answer for this request"}
            return BatchItem(custom_id, error=_line_error(err, job, cfg))
        except errors.APIError as exc:
            return BatchItem(custom_id, error=exc)


def _line_error(err: dict[str, Any], job: BatchJob, cfg: ProviderConfig) -> errors.APIError:
    """A request-level error of an error file (``{"code", "message"}``) as its class."""
    code = str(err.get("code") or "")
    message = str(err.get("message") or code or "the request failed")
    cls: type[errors.APIError] = errors.APIError
    if code in ("batch_expired", "request_timeout"):
        cls = errors.RequestTimeoutError
    elif code == "rate_limit_exceeded":
        cls = errors.RateLimitError
    elif code in ("invalid_request", "invalid_json", "invalid_request_error"):
        cls = errors.BadRequestError
    return cls(message, provider=job.provider, model=job.model, body=err, secrets=cfg.secrets)


def _q(value: str | None) -> str:
    return quote(value or "", safe="")


#: OpenAI's (and every OpenAI-compatible server's) batch translation.
OPENAI_BATCHES = OpenAIBatches(azure=False)
#: Azure OpenAI's.
AZURE_BATCHES = OpenAIBatches(azure=True)
