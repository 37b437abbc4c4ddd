"""The providers' batch APIs: submit many chat requests at once, then follow the job up.

OpenAI, Azure, Anthropic and Gemini run a batch of requests within 24 hours
at half price.  :class:`Batches` (``client.batches``; the module-level
``trillm.abatch_submit`` / ``abatch_status`` / ``abatch_cancel`` /
``abatch_wait`` / ``abatch_results`` use the default client's) speaks to them
through the one call pipeline: every HTTP step (upload, create, get, cancel,
download) is a call of the :data:`~trillm._call.BATCHES` operation, so
timeouts, retries and the concurrency limit apply as to any call, and the
``mock/`` provider answers them in process (``_batch_mock``).

Submitting translates each request (a dict of ``acompletion`` keywords) with
the provider's own chat build step, and sends them in as few provider jobs as
its limits allow (request count and bytes): several jobs stand behind one
:class:`~trillm.batch_types.BatchJob` (its ``parts``).  Reading the results
streams the provider's result files line by line (never the whole file in
memory) and decodes each answer with the provider's own chat parser, so a
result's ``response`` is the ``ModelResponse`` a direct call gives.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import trio

from . import errors
from ._call import BATCHES, Call, Pipeline
from ._options import ClientDefaults, call_options, check_messages
from ._outside import trio_or_bridge
from .batch_types import BatchItem, BatchJob, BatchStep, combine_parts, job_from_ref
from .types import ChatRequest

if TYPE_CHECKING:
    from ._options import CallOptions
    from ._stream import AudioStream
    from .routing import Route

__all__ = ["BatchResults", "Batches"]

#: The keywords of a call that are options of its HTTP steps, not of its requests.
_STEP_OPTIONS = frozenset({"timeout", "deadline", "max_retries", "retry", "api_key",
                           "api_base", "api_version", "headers", "extra_headers",
                           "mock_response", "mock_latency"})
#: Request keywords that only a direct call can honour.
_CALL_ONLY = frozenset({"stream", "fallbacks", "timeout", "deadline", "idle_timeout",
                        "max_retries", "retry", "api_key", "api_base", "api_version",
                        "headers", "extra_headers", "mock_latency", "mock_chunk_delay",
                        "mock_tool_calls", "num_retries", "request_timeout"})


def _options(defaults: ClientDefaults, options: Mapping[str, Any]) -> CallOptions:
    unknown = sorted(set(options) - _STEP_OPTIONS)
    if unknown:
        raise errors.BadRequestError(
            f"unknown keyword{'s' if len(unknown) > 1 else ''} for a batch call: "
            f"{', '.join(unknown)} (the requests' own parameters go in each request dict)")
    return call_options(defaults, {}, **options)


def _model_of(job: BatchJob | str) -> tuple[str, tuple[str, ...], str | None]:
    """``(routing model, part ids, the job's model)`` of a job or of its ``ref``."""
    if isinstance(job, BatchJob):
        model = job.model
        return f"{job.provider}/{model or '*'}", job.part_ids, model
    provider, ids = job_from_ref(job)
    return f"{provider}/*", ids, None


class Batches:
    """The providers' batch APIs on one Client (``client.batches``).

    Every method takes the options of the HTTP steps as keywords (``timeout``,
    ``max_retries``, ``api_key``, ``api_base``, ``api_version``, ``headers``,
    ``extra_headers``, ``mock_latency``); a job may be given as the
    :class:`~trillm.batch_types.BatchJob` or as its ``ref`` string.
    """

    __slots__ = ("_defaults", "_pipeline")

    def __init__(self, pipeline: Pipeline, defaults: ClientDefaults) -> None:
        self._pipeline = pipeline
        self._defaults = defaults

    # -------------------------------------------------------------- steps

    def _calls(self, model: str, options: CallOptions, step: BatchStep,
               stream: str | None = None) -> list[Call]:
        def request(route: Route, provider: Any) -> list[BatchStep]:
            return [attrs.evolve(step, provider=route.provider, model=route.model,
                                 extra_headers=options.headers)]

        return self._pipeline.prepare(BATCHES, model, options, request, stream=stream)

    async def _run(self, model: str, options: CallOptions, step: BatchStep,
                   stream: str | None = None) -> Any:
        return await self._pipeline.run(lambda: self._calls(model, options, step, stream))

    def _probe(self, model: str, options: CallOptions) -> Call:
        """The routed provider and its configuration for *model* (nothing is sent)."""
        return self._calls(model, options, BatchStep("", "", "get"))[0]

    # -------------------------------------------------------------- submit

    @trio_or_bridge
    async def submit(
        self, model: str, requests: Iterable[Mapping[str, Any]], *,
        custom_ids: Iterable[str] | None = None, metadata: Mapping[str, str] | None = None,
        mock_batch_delay: float | None = None, **options: Any,
    ) -> BatchJob:
        """Submit *requests* (dicts of ``acompletion`` keywords: ``messages`` and the body
        parameters) to *model*'s provider batch API; the job, as the provider reports it.

        *custom_ids* name the requests in the results (default ``"0"``, ``"1"``, ...);
        *metadata* goes with each provider job that takes it.  An input over the
        provider's limits goes as several jobs behind the one handle returned.
        ``mock_batch_delay`` is how long a ``mock/`` batch takes (default 1 s).
        """
        await trio.lowlevel.checkpoint()  # a checkpoint, also when refusing at once
        opts = _options(self._defaults, options)
        probe = self._probe(model, opts)
        if mock_batch_delay is not None and not (
                isinstance(mock_batch_delay, int | float) and mock_batch_delay >= 0):
            raise errors.BadRequestError(
                f"mock_batch_delay must be a number of seconds >= 0, not {mock_batch_delay!r}")
        p, cfg, route_req = probe.provider, probe.cfg, probe.req
        translator = p.batches
        mocked = route_req.provider == "mock"
        ids = iter(custom_ids) if custom_ids is not None else None
        seen: set[str] = set()
        parts: list[BatchJob] = []
        items: list[bytes] = []
        size = 0

        async def flush() -> None:
            nonlocal items, size
            payload = translator.payload(items)
            count = len(items)
            items, size = [], 0
            try:
                parts.append(await self._submit_part(model, opts, translator, payload, count,
                                                     metadata, mock_batch_delay))
            except errors.APIError as exc:
                if parts:
                    exc.add_note("these parts of the batch were submitted before: "
                                 + ", ".join(p.ref for p in parts))
                raise

        for i, request in enumerate(requests):
            cid = str(next(ids)) if ids is not None else str(i)
            if cid in seen:
                raise errors.BadRequestError(f"custom_id {cid!r} is given twice")
            seen.add(cid)
            line = translator.encode(p, cid, self._chat_request(route_req, request, i, mocked),
                                     cfg)
            if items and (len(items) >= translator.max_requests
                          or size + len(line) + 1 > translator.max_bytes):
                await flush()
            items.append(line)
            size += len(line) + 1
        if ids is not None and next(ids, None) is not None:
            raise errors.BadRequestError("custom_ids has more ids than there are requests")
        if not items and not parts:
            raise errors.BadRequestError("a batch needs at least one request")
        if items:
            await flush()
        return combine_parts(parts, provider=route_req.provider, model=route_req.model)

    def _chat_request(self, route_req: BatchStep, request: Mapping[str, Any], i: int,
                      mocked: bool) -> ChatRequest:
        if not isinstance(request, Mapping):
            raise errors.BadRequestError(
                f"requests[{i}] must be a dict of acompletion keywords, not "
                f"{type(request).__name__}")
        params = dict(request)
        messages = check_messages(params.pop("messages", None))
        wanted = params.pop("model", None)
        if wanted is not None and wanted not in (route_req.model,
                                                 f"{route_req.provider}/{route_req.model}"):
            raise errors.BadRequestError(
                f"requests[{i}] names the model {wanted!r}; a batch goes to one model "
                f"({route_req.provider}/{route_req.model})")
        refused = sorted(k for k in params if k in _CALL_ONLY)
        if refused:
            raise errors.BadRequestError(
                f"requests[{i}] has {', '.join(refused)}, which only a direct call takes; "
                "a batch's HTTP options go to abatch_submit")
        said = params.pop("mock_response", None)
        extra_body = params.pop("extra_body", None)
        drop = bool(params.pop("drop_params", False))
        params = {k: v for k, v in params.items() if v is not None}
        if mocked and said is not None:  # carried to the mock in the request's body
            if isinstance(said, errors.APIError):
                params["mock_error"] = {"status_code": said.status_code,
                                        "message": said.message}
            else:
                params["mock_response"] = str(said)
        return ChatRequest(route_req.provider, route_req.model, messages, False, params,
                           extra_body, None, drop)

    async def _submit_part(self, model: str, opts: CallOptions, translator: Any,
                           payload: bytes, count: int, metadata: Mapping[str, str] | None,
                           delay: float | None) -> BatchJob:
        params = {} if delay is None else {"mock_batch_delay": float(delay)}
        meta = dict(metadata) if metadata else None
        if translator.needs_upload:
            file_id = await self._run(model, opts, BatchStep(
                "", "", "upload", content=payload, count=count))
            job = await self._run(model, opts, BatchStep(
                "", "", "create", file_id=file_id, metadata=meta, count=count, params=params))
        else:
            job = await self._run(model, opts, BatchStep(
                "", "", "create", content=payload, metadata=meta, count=count, params=params))
        assert isinstance(job, BatchJob)
        return job

    # -------------------------------------------------------------- follow-up

    @trio_or_bridge
    async def status(self, job: BatchJob | str, **options: Any) -> BatchJob:
        """The job as the provider reports it now (every part asked)."""
        model, ids, job_model = _model_of(job)
        opts = _options(self._defaults, options)
        parts = [await self._run(model, opts, BatchStep("", "", "get", batch_id=i))
                 for i in ids]
        provider = model.partition("/")[0]
        parts = [attrs.evolve(p, model=p.model or job_model) for p in parts]
        return combine_parts(parts, provider=provider, model=job_model or parts[0].model)

    @trio_or_bridge
    async def cancel(self, job: BatchJob | str, **options: Any) -> BatchJob:
        """Ask the provider to cancel the job (every part); the job as it is then."""
        model, ids, _ = _model_of(job)
        opts = _options(self._defaults, options)
        for i in ids:
            await self._run(model, opts, BatchStep("", "", "cancel", batch_id=i))
        return await self.status(job, **options)

    @trio_or_bridge
    async def wait(self, job: BatchJob | str, *, poll: float = 30.0,
                   **options: Any) -> BatchJob:
        """Ask for the job's status every *poll* seconds (``trio.sleep``: cancellable)
        until it is done; the done job.  Bound it with ``trio.fail_after`` if need be."""
        if isinstance(poll, bool) or not isinstance(poll, int | float) or not poll > 0 \
                or poll == math.inf:
            raise errors.BadRequestError(f"poll must be a number of seconds > 0, not {poll!r}")
        while True:
            current = await self.status(job, **options)
            if current.done:
                return current
            await trio.sleep(poll)

    def results(self, job: BatchJob | str, **options: Any) -> BatchResults:
        """``async for item in client.batches.results(job)``: every request's
        :class:`~trillm.batch_types.BatchItem`, streamed from the provider's result
        files (the job must be done: see :meth:`wait`)."""
        return BatchResults(self, job, options)


class BatchResults:
    """The results of a done job, one :class:`~trillm.batch_types.BatchItem` at a time.

    An async iterator (a class: no cancel scope stays open between items) and
    an async context manager; leaving ``async with`` or ``aclose()`` closes the
    download in progress.  Items come in the provider's order (OpenAI's output
    file, then its error file; Anthropic's results; Gemini's in input order).
    """

    def __init__(self, batches: Batches, job: BatchJob | str, options: dict[str, Any]) -> None:
        self._batches = batches
        self._job = job
        self._options = options
        self._pending: collections.deque[BatchItem] = collections.deque()
        self._parts: collections.deque[BatchJob] | None = None
        self._sources: collections.deque[BatchStep] = collections.deque()
        self._part: BatchJob | None = None
        self._stream: AudioStream | None = None
        self._tail = b""
        self._probe: Call | None = None
        self._model = ""
        self._opts: CallOptions | None = None
        self._closed = False

    def __aiter__(self) -> BatchResults:
        return self

    @trio_or_bridge
    async def __aenter__(self) -> BatchResults:
        return self

    @trio_or_bridge
    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @trio_or_bridge
    async def aclose(self) -> None:
        """Stop: close the download in progress (if any)."""
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.aclose()

    @trio_or_bridge
    async def __anext__(self) -> BatchItem:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            try:
                await self._fill()
            except BaseException:
                await self.aclose()
                raise
        await trio.lowlevel.checkpoint()
        return self._pending.popleft()

    async def _fill(self) -> None:
        """One step: read a chunk of the open download, or open the next, or the next part."""
        b = self._batches
        if self._stream is not None:
            try:
                chunk = await self._stream.__anext__()
            except StopAsyncIteration:
                stream, self._stream = self._stream, None
                await stream.aclose()
                self._lines(b"", final=True)
                return
            self._lines(chunk)
            return
        if self._sources:
            assert self._opts is not None
            self._stream = await b._run(self._model, self._opts, self._sources.popleft(),
                                        stream="bytes")
            return
        if self._parts is None:
            self._model = _model_of(self._job)[0]
            self._opts = _options(b._defaults, self._options)
            self._probe = b._probe(self._model, self._opts)
            job = await b.status(self._job, **self._options)
            self._parts = collections.deque(job.parts or (job,))
            return
        if not self._parts:
            self._closed = True
            return
        part = self._part = self._parts.popleft()
        translator = self._probe.provider.batches if self._probe else None
        assert translator is not None and self._probe is not None
        if not part.done:
            raise errors.BadRequestError(
                f"the batch job {part.ref} is {part.status}, not done: wait for it first "
                "(await trillm.abatch_wait(job))", provider=part.provider, model=part.model)
        failure = translator.job_failure(part)
        if failure is not None and part.status == "failed":
            raise errors.APIError(f"the batch job {part.ref} failed: {failure}",
                                  provider=part.provider, model=part.model)
        if hasattr(translator, "inline_results"):
            self._pending.extend(translator.inline_results(self._probe.provider, part,
                                                           self._probe.cfg))
        self._sources.extend(translator.result_sources(part))

    def _lines(self, chunk: bytes, *, final: bool = False) -> None:
        """Decode every whole line of the download so far (and the last one at its end)."""
        assert self._probe is not None and self._part is not None
        data = self._tail + chunk
        lines = data.split(b"\n")
        self._tail = b"" if final else lines.pop()
        p, cfg, part = self._probe.provider, self._probe.cfg, self._part
        for line in lines:
            if line.strip():
                self._pending.append(p.batches.parse_line(p, line, part, cfg))
