"""Values of the providers' batch APIs: ``BatchJob``, ``BatchRequestCounts``, ``BatchItem``.

A :class:`BatchJob` is one handle for what :func:`trillm.abatch_submit` sent.
When the input was over a provider's limits (request count or bytes) it went
as several provider jobs: they are the handle's ``parts``, and its ``id``
joins their ids with ``+``.  ``job.ref`` (``"openai:batch_abc"``) names a job
in one string, for the command line and for storing: ``abatch_status`` and
the other functions take it in place of the job.

Statuses use OpenAI's words for every provider: ``validating``,
``in_progress``, ``finalizing``, ``cancelling`` (still running) and
``completed``, ``failed``, ``expired``, ``cancelled`` (done).  Pure values:
no I/O.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import attrs

from . import errors
from ._records import HIDDEN, Record, record, record_repr
from .types import ModelResponse

__all__ = [
    "RUNNING",
    "TERMINAL",
    "BatchItem",
    "BatchJob",
    "BatchPartRequest",
    "BatchRequestCounts",
    "BatchStep",
    "combine_parts",
    "error_dict",
    "job_from_ref",
    "unix_seconds",
]

#: The statuses of a job that is done: its results can be read (those it has).
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
#: The statuses of a job still running, in the order a job goes through them.
RUNNING = ("validating", "in_progress", "finalizing", "cancelling")


@record
@attrs.frozen(repr=False)
class BatchRequestCounts(Record):
    """How many of a job's requests there are, and how many finished well or badly."""

    total: int = 0
    completed: int = 0
    failed: int = 0


@record
@attrs.frozen(repr=False)
class BatchJob(Record):
    """One provider batch job, or several behind one handle (``parts``).

    ``status`` is in OpenAI's words (see the module's docstring); ``created_at``
    is Unix seconds; ``raw`` is the provider's JSON (a list of them for parts).
    """

    id: str
    provider: str
    status: str
    request_counts: BatchRequestCounts = attrs.field(factory=BatchRequestCounts)
    created_at: int = 0
    model: str | None = None
    parts: tuple[BatchJob, ...] = ()
    raw: Any = attrs.field(default=None, repr=False, eq=False, metadata=HIDDEN)

    @property
    def done(self) -> bool:
        """Whether the job (every part of it) has stopped running."""
        return self.status in TERMINAL

    @property
    def ref(self) -> str:
        """The job in one string, ``"provider:id"``, that :func:`job_from_ref` reads back."""
        return f"{self.provider}:{self.id}"

    @property
    def part_ids(self) -> tuple[str, ...]:
        """The provider's ids of the jobs behind this handle."""
        return tuple(p.id for p in self.parts) if self.parts else (self.id,)


@record
@attrs.frozen(repr=False)
class BatchItem(Record):
    """One request's result: ``response`` (as the direct call gives it) or ``error``."""

    custom_id: str
    response: ModelResponse | None = None
    error: errors.APIError | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; an error as ``{"type", "message", "status_code"}``."""
        out: dict[str, Any] = {"custom_id": self.custom_id}
        if self.response is not None:
            out["response"] = self.response.to_dict()
        if self.error is not None:
            out["error"] = error_dict(self.error)
        return out


def error_dict(error: BaseException) -> dict[str, Any]:
    """An error as the JSON the batch results and ``trillm batch`` write."""
    return {"type": type(error).__name__, "message": str(error),
            "status_code": getattr(error, "status_code", None)}


@attrs.frozen(repr=False)
class BatchPartRequest:
    """One request of a batch, translated: its id and its body in the provider's form."""

    __repr__ = record_repr

    custom_id: str
    body: Any


@attrs.frozen(repr=False)
class BatchStep:
    """The request record of one HTTP step of the batch APIs (the pipeline's ``req``).

    ``step`` is ``"upload"`` (``content``: the JSONL file), ``"create"``
    (``file_id`` or ``content``: the requests, ``metadata``), ``"get"`` /
    ``"cancel"`` (``batch_id``) or ``"download"`` (``file_id`` or ``url``).
    """

    __repr__ = record_repr

    provider: str
    model: str
    step: str
    batch_id: str | None = None
    file_id: str | None = None
    url: str | None = None
    content: bytes | None = attrs.field(default=None, repr=False)
    count: int = 0
    metadata: Any = None
    extra_headers: Any = attrs.field(default=None, repr=False)
    params: Any = attrs.field(factory=dict)


def job_from_ref(ref: str) -> tuple[str, tuple[str, ...]]:
    """``(provider, part ids)`` of a :attr:`BatchJob.ref` (``"openai:batch_a+batch_b"``)."""
    provider, colon, ids = ref.partition(":") if isinstance(ref, str) else ("", "", "")
    parts = tuple(i for i in ids.split("+") if i)
    if not colon or not provider or not parts:
        raise errors.BadRequestError(
            f"not a batch job reference: {ref!r} (expected 'provider:id', as BatchJob.ref "
            "gives, e.g. 'openai:batch_abc123')")
    return provider, parts


def combine_parts(parts: list[BatchJob], *, provider: str, model: str | None) -> BatchJob:
    """One handle over several provider jobs: ids joined, counts summed, one status."""
    if len(parts) == 1:
        return parts[0]
    statuses = [p.status for p in parts]
    running = [s for s in RUNNING if s in statuses]
    if any(s not in TERMINAL for s in statuses):
        status = "cancelling" if "cancelling" in statuses else (
            running[0] if running and all(s == running[0] for s in statuses) else "in_progress")
    elif len(set(statuses)) == 1:
        status = statuses[0]
    else:
        status = "completed" if "completed" in statuses else "failed"
    counts = BatchRequestCounts(*(sum(getattr(p.request_counts, f) for p in parts)
                                  for f in ("total", "completed", "failed")))
    return BatchJob("+".join(p.id for p in parts), provider, status, counts,
                    min(p.created_at for p in parts), model, tuple(parts),
                    [p.raw for p in parts])


_FRACTION = re.compile(r"(\.\d{6})\d+")


def unix_seconds(stamp: Any) -> int:
    """An RFC 3339 time (``"2024-08-20T18:37:24.100435Z"``, nanoseconds too) as Unix
    seconds; 0 when it is missing or not a time."""
    if not isinstance(stamp, str) or not stamp:
        return 0
    text = _FRACTION.sub(r"\1", stamp.strip()).replace("Z", "+00:00").replace("z", "+00:00")
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return 0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp())
