"""Driver mode: one (variant, phase) in this fresh process, result as one JSON line.

Run by ``bench.py`` as ``python benchmarks/bench.py --driver VARIANT PHASE ...``.
c workers (or 64 streams) loop in one nursery under ``trio.run`` (or, for the
asyncio variants, in one ``asyncio.TaskGroup`` under ``asyncio.run``); an untimed
warm-up comes first, then the timed part, then the in-flight requests drain
(untimed). Every answer is checked against the canned text.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import canned

# httpx's __init__ imports its optional command-line client (httpx._main: click and
# pygments, about 2.3 MB of RSS) whenever click is installed; httpx2 imports its own only
# when `httpx2.main` is asked for.  No variant uses either.  In `nox -s bench`'s venv
# (trillm and openai) click is absent, but a dev venv has it (uvicorn and ipython of the
# test extras bring click and pygments), and then every httpx-based process (raw-httpx,
# trillm, asyncopenai) carried 2.3 MB that raw-httpx2's did not: the peak-RSS ratios
# against raw httpx2 measured httpx's CLI, not the client.  Every driver runs as in the
# bench venv, whatever is installed: httpx then defines its stub `main` instead.
sys.modules.setdefault("httpx._main", None)  # type: ignore[assignment]

MAX_CONNECTIONS = 512


class ContentMismatch(AssertionError):
    pass


class Unavailable(Exception):
    """The variant cannot run here (e.g. trillm.Client is not written yet)."""


@dataclass
class Meter:
    """Counts finished items; takes the CPU/wall snapshots at the warm-up and stop marks.

    The clock is read after every finished item, so the timed part lasts at least
    ``min_time`` and ends with the first item after it.
    """

    warmup_items: int
    warmup_time: float
    min_time: float
    started: int = 0
    done: int = 0
    stopping: bool = False
    begin: float = field(default_factory=time.perf_counter)
    start: tuple[float, float, os.times_result, int] | None = None
    end: tuple[float, float, os.times_result, int] | None = None
    spans: list[Any] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def _snap(done: int) -> tuple[float, float, os.times_result, int]:
        return (time.perf_counter(), time.process_time(), os.times(), done)

    def finished_one(self) -> None:
        self.done += 1
        if self.start is None:
            if (
                self.done >= self.warmup_items
                and time.perf_counter() - self.begin >= self.warmup_time
            ):
                self.start = self._snap(self.done)
        elif self.end is None and time.perf_counter() - self.start[0] >= self.min_time:
            self.end = self._snap(self.done)
            self.stopping = True  # workers finish their current item, then stop

    def span(self, begin: tuple[float, float, os.times_result, int],
             end: tuple[float, float, os.times_result, int]) -> None:
        """Add a timed span (the phases that time only some parts of the process)."""
        self.spans.append((begin, end))

    def result(self, units_per_item: int) -> dict[str, Any]:
        if self.spans:
            items = sum(e[3] - b[3] for b, e in self.spans)
            cpu = sum(e[1] - b[1] for b, e in self.spans)
            wall = sum(e[0] - b[0] for b, e in self.spans)
            user = sum(e[2].user - b[2].user for b, e in self.spans)
            system = sum(e[2].system - b[2].system for b, e in self.spans)
        else:
            assert self.start is not None
            assert self.end is not None
            (w0, c0, t0, d0), (w1, c1, t1, d1) = self.start, self.end
            items, cpu, wall = d1 - d0, c1 - c0, w1 - w0
            user, system = t1.user - t0.user, t1.system - t0.system
        units = items * units_per_item
        return {**self.extra,
            "items": items,
            "units": units,
            "cpu_s": cpu,
            "user_s": user,
            "sys_s": system,
            "wall_s": wall,
            "cpu_per_unit_us": cpu / units * 1e6,
            "units_per_s": units / wall,
            "items_per_s": items / wall,
            "started": self.started,
            "finished": self.done,
        }


#: From this many workers on, the timed part is whole waves (see :func:`run_waves`).
WAVES_FROM = 512


async def run_waves(n: int, one: Callable[[], Awaitable[None]], meter: Meter) -> None:
    """Many long items at once: an untimed wave (every worker one item), then timed
    waves until ``min_time`` has passed, all workers starting together.

    With hundreds of concurrent streams every item takes about as long as the timed
    part, so counting only the items that end inside it (as :func:`run_workers` does)
    would leave most of the work it measured uncounted.
    """
    import trio

    async def wave() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(one_counted)

    async def one_counted() -> None:
        meter.started += 1
        await one()
        meter.done += 1

    began = time.perf_counter()
    await wave()
    while time.perf_counter() - began < meter.warmup_time:
        await wave()
    meter.start = meter._snap(meter.done)
    while meter.end is None:
        await wave()
        if time.perf_counter() - meter.start[0] >= meter.min_time:
            meter.end = meter._snap(meter.done)


async def run_workers(n: int, one: Callable[[], Awaitable[None]], meter: Meter) -> None:
    import trio

    if n >= WAVES_FROM:
        await run_waves(n, one, meter)
        return

    async def worker() -> None:
        while not meter.stopping:
            meter.started += 1
            await one()
            meter.finished_one()

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(worker)


async def run_workers_asyncio(n: int, one: Callable[[], Awaitable[None]], meter: Meter) -> None:
    """:func:`run_workers` under asyncio: the same loop, the workers in one TaskGroup."""
    import asyncio

    async def worker() -> None:
        while not meter.stopping:
            meter.started += 1
            await one()
            meter.finished_one()

    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(worker())


Spawn = Callable[[int, Callable[[], Awaitable[None]], Meter], Awaitable[None]]


def _check(got: object, expected: str) -> None:
    if got != expected:
        raise ContentMismatch(f"answer content {got!r:.80} != expected {expected!r:.80}")


# --- raw httpx ----------------------------------------------------------------------------


def _raw_client(module: str = "httpx", connections: int = MAX_CONNECTIONS,
                timeout: float = 60.0) -> Any:
    """``httpx.AsyncClient`` (or ``httpx2.AsyncClient``) with a pool big enough for any phase."""
    import importlib

    httpx = importlib.import_module(module)
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        headers={"Authorization": f"Bearer {canned.API_KEY}"},
        timeout=httpx.Timeout(timeout),
    )


def _httpx2() -> str:
    try:
        import httpx2  # noqa: F401
    except Exception as exc:
        raise Unavailable(f"import httpx2 failed: {exc!r}") from exc
    return "httpx2"


async def raw_httpx(base: str, workers: int, meter: Meter, module: str = "httpx") -> None:
    url = base + "/chat/completions"
    body = canned.REQUEST_BODY
    expected = canned.EXPECTED_CONTENT
    loads = json.loads
    async with _raw_client(module) as client:

        async def one() -> None:
            resp = await client.post(url, json=body)
            if resp.status_code != 200:
                raise RuntimeError(f"HTTP {resp.status_code}")
            _check(loads(resp.content)["choices"][0]["message"]["content"], expected)

        await run_workers(workers, one, meter)


async def raw_httpx_stream(
    base: str, workers: int, meter: Meter, words: int = canned.STREAM_WORDS,
    module: str = "httpx", checkpoints: bool = True,
) -> None:
    """``client.stream`` + ``aiter_bytes``: split lines, ``json.loads`` each event.

    With *checkpoints* (raw-httpx-stream), one ``trio.lowlevel.checkpoint()`` per
    event, as a streaming consumer would have; without (raw-httpx2-stream, the
    floor), none in the loop: the only yields are httpx's own reads.
    """
    import trio

    url = base + "/chat/completions"
    body = canned.STREAM_REQUEST_BODY
    expected = canned.expected_stream_content(words)
    n_events = canned.stream_events(words)
    loads = json.loads
    checkpoint = trio.lowlevel.checkpoint
    async with _raw_client(module) as client:

        async def one() -> None:
            pieces: list[str] = []
            events = 0
            done = False
            async with client.stream("POST", url, json=body) as resp:
                if resp.status_code != 200:
                    raise RuntimeError(f"HTTP {resp.status_code}")
                tail = b""
                async for data in resp.aiter_bytes():
                    if tail:
                        data = tail + data
                    lines = data.split(b"\n")
                    tail = lines.pop()  # a partial line waits for the next read
                    for line in lines:
                        if not line.startswith(b"data:"):
                            continue  # blank separator line, comment or other field
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            done = True
                            continue
                        event = loads(payload)
                        events += 1
                        choices = event["choices"]
                        if choices:
                            content = choices[0]["delta"].get("content")
                            if content:
                                pieces.append(content)
                        if checkpoints:
                            await checkpoint()
            if not done or events != n_events:
                raise ContentMismatch(f"stream ended after {events} events, [DONE]={done}")
            _check("".join(pieces), expected)

        await run_workers(workers, one, meter)


async def raw_httpx2(base: str, workers: int, meter: Meter) -> None:
    await raw_httpx(base, workers, meter, module=_httpx2())


async def raw_httpx2_stream(
    base: str, workers: int, meter: Meter, words: int = canned.STREAM_WORDS
) -> None:
    await raw_httpx_stream(base, workers, meter, words, module=_httpx2(), checkpoints=False)


# --- trillm -------------------------------------------------------------------------------


def _import_trillm() -> Any:
    try:
        import trillm
    except Exception as exc:
        raise Unavailable(f"import trillm failed: {exc!r}") from exc
    if not hasattr(trillm, "Client"):
        raise Unavailable("trillm.Client does not exist yet")
    return trillm


def otel_hooks() -> list[Any]:
    """trillm's OpenTelemetryHook on the SDK as an application would set it up: spans to a
    batch processor (an exporter that drops them) and metrics to a reader.  Without
    opentelemetry-sdk, the API's no-op providers (which cost next to nothing)."""
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError:
        from trillm.otel import OpenTelemetryHook

        return [OpenTelemetryHook()]
    from trillm.otel import OpenTelemetryHook

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Drop()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return [OpenTelemetryHook(tracer_provider, meter_provider)]


async def trillm_completion(
    base: str, workers: int, meter: Meter, spawn: Spawn = run_workers,
    hooks: Callable[[], list[Any]] | None = None,
) -> None:
    """Under trio, or under asyncio (``spawn=run_workers_asyncio``) through trillm's bridge;
    with *hooks* (``otel_hooks``), the OpenTelemetry hook on."""
    trillm = _import_trillm()
    expected = canned.EXPECTED_CONTENT
    model, messages = canned.MODEL, canned.MESSAGES
    extra = {"hooks": hooks()} if hooks is not None else {}
    async with trillm.Client(
        api_base=base, api_key=canned.API_KEY, max_concurrency=workers, **extra
    ) as client:

        async def one() -> None:
            r = await client.acompletion(model=model, messages=messages)
            _check(r.choices[0].message.content, expected)

        await spawn(workers, one, meter)


async def trillm_stream(
    base: str, workers: int, meter: Meter, words: int = canned.STREAM_WORDS,
    spawn: Spawn = run_workers, hooks: Callable[[], list[Any]] | None = None,
) -> None:
    trillm = _import_trillm()
    expected = canned.expected_stream_content(words)
    model, messages = canned.MODEL, canned.MESSAGES
    extra = {"hooks": hooks()} if hooks is not None else {}
    async with trillm.Client(
        api_base=base, api_key=canned.API_KEY, max_concurrency=workers, **extra
    ) as client:

        async def one() -> None:
            pieces: list[str] = []
            async with client.stream(model=model, messages=messages) as s:
                async for chunk in s:
                    pieces.append(chunk.choices[0].delta.content or "")
            _check("".join(pieces), expected)

        await spawn(workers, one, meter)


# --- sessions: a client and its one request, for the burst and held phases ---------------

One = Callable[[], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_session(base: str, n: int, module: str = "httpx") -> AsyncIterator[One]:
    url = base + "/chat/completions"
    body = canned.REQUEST_BODY
    expected = canned.EXPECTED_CONTENT
    async with _raw_client(module, max(n, MAX_CONNECTIONS), timeout=600.0) as client:

        async def one() -> None:
            resp = await client.post(url, json=body)
            if resp.status_code != 200:
                raise RuntimeError(f"HTTP {resp.status_code}")
            _check(json.loads(resp.content)["choices"][0]["message"]["content"], expected)

        yield one


@contextlib.asynccontextmanager
async def raw2_session(base: str, n: int) -> AsyncIterator[One]:
    async with raw_session(base, n, _httpx2()) as one:
        yield one


@contextlib.asynccontextmanager
async def trillm_session(base: str, n: int) -> AsyncIterator[One]:
    trillm = _import_trillm()
    expected = canned.EXPECTED_CONTENT
    model, messages = canned.MODEL, canned.MESSAGES
    async with trillm.Client(api_base=base, api_key=canned.API_KEY, max_concurrency=n) as client:

        async def one() -> None:
            r = await client.acompletion(model=model, messages=messages)
            _check(r.choices[0].message.content, expected)

        yield one


Session = Callable[[str, int], contextlib.AbstractAsyncContextManager[One]]
SESSIONS: dict[str, Session] = {
    "raw-httpx": raw_session,
    "raw-httpx2": raw2_session,
    "trillm": trillm_session,
}


async def _burst(one: One, n: int, meter: Meter) -> None:
    """*n* requests at once; every answer must arrive (one failure fails the run)."""
    import trio

    async def counted() -> None:
        meter.started += 1
        await one()
        meter.done += 1

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(counted)


async def cold_bursts(session: Session, base: str, n: int, meter: Meter) -> None:
    """TLS handshakes: bursts of *n* requests, each on a client of its own that has no
    connection yet, so every request opens one.  One untimed burst first; the clients
    are built and closed untimed (building one builds its ssl.SSLContext): only the
    bursts are timed."""
    bursts = -1
    while bursts < 2 or sum(e[0] - b[0] for b, e in meter.spans) < meter.min_time:
        async with session(base, n) as one:
            begin = meter._snap(meter.done)
            await _burst(one, n, meter)
            end = meter._snap(meter.done)
        bursts += 1
        if bursts > 0:
            meter.span(begin, end)
    meter.extra["bursts"] = bursts


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


async def held_wave(session: Session, base: str, n: int, meter: Meter) -> None:
    """*n* requests in flight at once, each held by the server: one timed wave after an
    untimed one of min(n, 100).  Reports the memory each request in flight adds (RSS at
    the wave's peak minus RSS before it, over n) besides the CPU per request."""
    import trio

    async with session(base, n) as one:
        await _burst(one, min(n, 100), meter)
        before = _rss_kib()
        peak = before
        done = False

        async def sample() -> None:
            nonlocal peak
            while not done:
                peak = max(peak, _rss_kib())
                await trio.sleep(0.05)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample)
            begin = meter._snap(meter.done)
            with _progress(meter, begin, n, before):
                await _burst(one, n, meter)
            end = meter._snap(meter.done)
            done = True
        meter.span(begin, end)
    meter.extra.update(rss_before_kib=before, rss_peak_kib=peak,
                       mem_per_inflight_kib=(peak - before) / n)


#: Prefix of the progress lines :func:`_progress` prints (``bench.py`` reads the last one
#: when it had to kill a driver at ``--driver-timeout``).
PROGRESS_PREFIX = "BENCH-PROGRESS "


@contextlib.contextmanager
def _progress(meter: Meter, begin: tuple[float, float, os.times_result, int], n: int,
              rss_before: int, every: float = 1.0) -> Iterator[None]:
    """While a timed wave runs, print one progress line a second from a thread: the CPU
    and wall time since the wave began, the answers so far, the RSS now.

    A thread, because a client whose pool work is quadratic can keep the event loop busy
    for minutes without a checkpoint.  If the orchestrator kills this process at
    ``--driver-timeout``, the last line is a lower bound on what the whole wave would have
    cost: CPU per request >= CPU so far / n, memory per request >= (RSS so far - RSS
    before) / n.  One line a second costs next to nothing.
    """
    import threading

    stop = threading.Event()
    wall0, cpu0, _, done0 = begin

    def beat() -> None:
        rss_max = rss_before
        while not stop.wait(every):
            rss_max = max(rss_max, _rss_kib())
            line = {"n": n, "cpu_s": time.process_time() - cpu0,
                    "wall_s": time.perf_counter() - wall0, "answered": meter.done - done0,
                    "rss_before_kib": rss_before, "rss_max_kib": rss_max}
            print(PROGRESS_PREFIX + json.dumps(line), flush=True)

    thread = threading.Thread(target=beat, name="bench-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def raise_file_limit() -> None:
    """As many open files as the hard limit allows (10,000 connections need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- embeddings: base64 (trillm's default) against JSON floats ----------------------------


async def trillm_embeddings(base: str, workers: int, meter: Meter, float_json: bool) -> None:
    """``aembedding`` of 16 inputs; nginx answers base64 at .../emb/v1 and floats at
    .../embf/v1 (trillm asks for base64 unless told ``encoding_format="float"``)."""
    trillm = _import_trillm()
    vectors = canned.embedding_vectors()
    expected = (vectors[0][0], vectors[-1][-1], len(vectors[0]))
    base = base.removesuffix("/json/v1") + ("/embf/v1" if float_json else "/emb/v1")
    kw = {"encoding_format": "float"} if float_json else {}
    async with trillm.Client(
        api_base=base, api_key=canned.API_KEY, max_concurrency=workers
    ) as client:

        async def one() -> None:
            r = await client.aembedding(canned.EMBED_MODEL, canned.EMBED_INPUT_TEXTS, **kw)
            e = r.data
            got = (e[0].embedding[0], e[-1].embedding[-1], len(e[0].embedding))
            if got != expected or len(e) != canned.EMBED_INPUTS:
                raise ContentMismatch(f"embeddings {got} != {expected}")

        await run_workers(workers, one, meter)


EMBEDDINGS: dict[str, Runner] = {
    "trillm": functools.partial(trillm_embeddings, float_json=False),
    "trillm-float": functools.partial(trillm_embeddings, float_json=True),
}


# --- the official OpenAI SDK under asyncio -------------------------------------------------


def _asyncopenai_client(base: str) -> Any:
    try:
        import openai
    except Exception as exc:
        raise Unavailable(f"import openai failed: {exc!r}") from exc
    return openai.AsyncOpenAI(base_url=base, api_key=canned.API_KEY, max_retries=0)


async def asyncopenai_completion(base: str, workers: int, meter: Meter) -> None:
    expected = canned.EXPECTED_CONTENT
    model, messages = canned.WIRE_MODEL, canned.MESSAGES
    async with _asyncopenai_client(base) as client:
        create = client.chat.completions.create

        async def one() -> None:
            r = await create(model=model, messages=messages)
            _check(r.choices[0].message.content, expected)

        await run_workers_asyncio(workers, one, meter)


async def asyncopenai_stream(
    base: str, workers: int, meter: Meter, words: int = canned.STREAM_WORDS
) -> None:
    expected = canned.expected_stream_content(words)
    model, messages = canned.WIRE_MODEL, canned.MESSAGES
    async with _asyncopenai_client(base) as client:
        create = client.chat.completions.create

        async def one() -> None:
            pieces: list[str] = []
            s = await create(
                model=model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
            async with s:
                async for chunk in s:
                    if chunk.choices:
                        content = chunk.choices[0].delta.content
                        if content:
                            pieces.append(content)
            _check("".join(pieces), expected)

        await run_workers_asyncio(workers, one, meter)


# --- entry --------------------------------------------------------------------------------

Runner = Callable[[str, int, Meter], Awaitable[None]]

# variant -> (runner for non-streaming phases, runner for streaming phases)
VARIANTS: dict[str, tuple[Runner | None, Runner | None]] = {
    "raw-httpx": (raw_httpx, None),
    "raw-httpx-stream": (None, raw_httpx_stream),
    "raw-httpx2": (raw_httpx2, None),
    "raw-httpx2-stream": (None, raw_httpx2_stream),
    "trillm": (trillm_completion, trillm_stream),
    "trillm-otel": (
        functools.partial(trillm_completion, hooks=otel_hooks),
        functools.partial(trillm_stream, hooks=otel_hooks),
    ),
    "trillm-float": (None, None),  # embeddings only (eN phases)
    "trillm-asyncio": (
        functools.partial(trillm_completion, spawn=run_workers_asyncio),
        functools.partial(trillm_stream, spawn=run_workers_asyncio),
    ),
    "asyncopenai": (asyncopenai_completion, asyncopenai_stream),
}
#: Variants whose driver runs ``asyncio.run`` instead of ``trio.run``.
ASYNCIO_VARIANTS = frozenset({"trillm-asyncio", "asyncopenai"})


@dataclass(frozen=True)
class Phase:
    """``cN``: N concurrent requests; ``sN`` / ``sNxM``: N concurrent streams of M chunks
    (200 by default; nginx serves 200 and 5,000); ``tN``: N concurrent requests over
    HTTPS; ``bN``: cold bursts of N HTTPS requests, each on a new connection (the
    handshakes); ``hN``: N requests in flight at once, each held by the server."""

    name: str
    workers: int
    streaming: bool
    chunks: int = 1  # content chunks per stream (units per item)
    kind: str = "c"

    @classmethod
    def parse(cls, name: str) -> Phase:
        kind, rest = name[:1], name[1:]
        num, _, per = rest.partition("x")
        ok = kind in ("c", "s", "t", "b", "h", "e") and num.isdigit() and int(num) >= 1
        if per:
            ok = ok and kind == "s" and per.isdigit() and int(per) in canned.STREAM_LENGTHS
        if not ok:
            raise ValueError(
                f"phase {name!r}: want c<N> (N concurrent requests), s<N> (N concurrent "
                f"200-chunk streams), s<N>x<M> (M in {canned.STREAM_LENGTHS}), t<N> (N "
                "concurrent HTTPS requests), b<N> (cold HTTPS bursts), h<N> (N held "
                "requests in flight) or e<N> (N concurrent embedding requests)"
            )
        if kind == "s":
            return cls(name, int(num), True, int(per) if per else canned.STREAM_WORDS, "s")
        if kind == "e":
            return cls(name, int(num), False, canned.EMBED_INPUTS, "e")  # unit: one vector
        return cls(name, int(num), False, 1, kind)


def supports(variant: str, phase: Phase) -> bool:
    if phase.kind == "e":
        return variant in EMBEDDINGS
    if phase.kind == "h":  # raw httpx needs ~30 s for 1,000 held requests: httpx2 only
        return variant in ("raw-httpx2", "trillm")
    if phase.kind == "b":
        return variant in SESSIONS
    if variant in ASYNCIO_VARIANTS and (
        phase.kind not in ("c", "s") or phase.workers >= WAVES_FROM
        or phase.chunks > canned.STREAM_WORDS
    ):
        return False  # the asyncio pair: requests and 64 streams (its own targets)
    if variant == "trillm-otel" and (phase.kind not in ("c", "s") or phase.workers >= WAVES_FROM
                                     or phase.chunks > canned.STREAM_WORDS):
        return False  # the hook's cost: requests and 64 streams, against trillm
    if variant == "raw-httpx-stream" and phase.workers >= WAVES_FROM:
        return False  # a checkpoint per event through httpcore 1.0's pool: minutes
    if (variant.startswith("raw-") and phase.workers >= WAVES_FROM
            and phase.chunks > canned.STREAM_WORDS):
        return False  # trillm's own ratio (s1000x1000 ÷ s1x5000): no reference needed
    plain, stream = VARIANTS[variant]
    return (stream if phase.streaming else plain) is not None


def drive(
    variant: str,
    phase_name: str,
    origin_json: str,
    origin_sse: str,
    min_time: float,
    warmup_time: float,
    tls_json: str | None = None,
    hold_json: str | None = None,
) -> dict[str, Any]:
    """Run one measurement; never raises (errors become ``status`` in the result)."""
    phase = Phase.parse(phase_name)
    out: dict[str, Any] = {"variant": variant, "phase": phase.name, "pid": os.getpid()}
    runner: Any = VARIANTS[variant][1 if phase.streaming else 0]
    extra: tuple[Any, ...] = ()
    base = origin_json
    if phase.kind in ("t", "b") and tls_json is None:
        return {**out, "status": "unavailable", "error": "no HTTPS server (openssl missing?)"}
    if phase.kind == "t":
        base = tls_json  # type: ignore[assignment]
    elif phase.kind in ("b", "h"):
        if variant not in SESSIONS:
            return {**out, "status": "failed", "error": f"{variant} has no {phase.name} mode"}
        runner = cold_bursts if phase.kind == "b" else held_wave
        extra = (SESSIONS[variant],)
        base = tls_json if phase.kind == "b" else hold_json  # type: ignore[assignment]
        raise_file_limit()
    elif phase.kind == "e":
        runner = EMBEDDINGS.get(variant)
    if runner is None:
        return {**out, "status": "failed", "error": f"{variant} has no {phase.name} mode"}
    warmup_items = max(phase.workers, 20 if phase.chunks < 1000 else 2)
    meter = Meter(warmup_items=warmup_items, warmup_time=warmup_time, min_time=min_time)
    if phase.streaming:
        base = origin_sse
        if phase.chunks != canned.STREAM_WORDS:  # .../sse/v1 -> .../sse5000/v1
            base = origin_sse.removesuffix("/sse/v1") + f"/sse{phase.chunks}/v1"
        extra = (phase.chunks,)
    try:
        if variant in ASYNCIO_VARIANTS:
            import asyncio

            asyncio.run(runner(base, phase.workers, meter, *extra))
        else:
            import trio

            if phase.kind in ("b", "h"):
                trio.run(runner, extra[0], base, phase.workers, meter)
            else:
                trio.run(runner, base, phase.workers, meter, *extra)
    except BaseException as exc:  # reported; the orchestrator decides
        leaf = exc
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) >= 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, KeyboardInterrupt):
            raise
        status = "unavailable" if isinstance(leaf, Unavailable) else "failed"
        return {
            **out,
            "status": status,
            "error": f"{type(leaf).__name__}: {leaf}",
            "traceback": "".join(traceback.format_exception(leaf))[-4000:],
        }
    units = phase.chunks
    rusage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        **out,
        "status": "ok",
        "unit": "chunk" if phase.streaming else "vector" if phase.kind == "e" else "request",
        "workers": phase.workers,
        "max_rss_kib": rusage.ru_maxrss,
        **meter.result(units),
    }
