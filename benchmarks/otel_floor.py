"""The OpenTelemetry SDK's floor under trillm's hook, in one process and one run.

    python benchmarks/otel_floor.py

Prints, in µs of CPU per call (``time.process_time``): a trillm request at c=32 over an
in-memory ``httpx.MockTransport`` with no hooks and with ``OpenTelemetryHook`` (the
bench's SDK setup, ``driver.otel_hooks``), and the SDK's own calls for one observed request
made directly in a loop: one span with the ten attributes the hook records and three
histogram points with the duration's and the token counts' attributes.  The ratios are
to the no-hook request of the same run.  Needs opentelemetry-sdk (the ``test`` extra).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import canned
from driver import otel_hooks

import trillm

WORKERS, CALLS = 32, 60


def _request_cost(hooks: list[Any] | None) -> float:
    body = canned.completion_body()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    async def run(calls: int) -> None:
        extra = {"hooks": hooks} if hooks else {}
        async with trillm.Client(api_base="http://bench.invalid/v1", api_key="sk-bench",
                                 transport=httpx.MockTransport(answer),
                                 max_concurrency=WORKERS, **extra) as client:
            async def worker() -> None:
                for _ in range(calls):
                    await client.acompletion(canned.MODEL, canned.MESSAGES)

            async with trio.open_nursery() as nursery:
                for _ in range(WORKERS):
                    nursery.start_soon(worker)

    trio.run(run, 10)  # warm-up
    t0 = time.process_time()
    trio.run(run, CALLS)
    return (time.process_time() - t0) / (WORKERS * CALLS)


def _sdk_cost(rounds: int = 5000) -> float:
    from opentelemetry import context
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.trace import SpanKind

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()  # the bench's setup (driver.otel_hooks)
    tracer_provider.add_span_processor(BatchSpanProcessor(Drop()))
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("trillm")
    tracer = tracer_provider.get_tracer("trillm")
    duration = meter.create_histogram("gen_ai.client.operation.duration", unit="s")
    tokens = meter.create_histogram("gen_ai.client.token.usage", unit="{token}")
    span_attrs = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "server.address": "127.0.0.1",
        "server.port": 8080, "gen_ai.response.id": "chatcmpl-1",
        "gen_ai.response.model": canned.WIRE_MODEL, "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 19, "gen_ai.usage.output_tokens": 10}
    metric = {k: span_attrs[k] for k in ("gen_ai.operation.name", "gen_ai.provider.name",
                                          "gen_ai.request.model", "server.address",
                                          "server.port", "gen_ai.response.model")}
    inputs = {**metric, "gen_ai.token.type": "input"}
    outputs = {**metric, "gen_ai.token.type": "output"}
    t0 = time.process_time()
    for _ in range(rounds):
        span = tracer.start_span("chat gpt-4o-mini", context.get_current(), SpanKind.CLIENT,
                                 span_attrs, start_time=time.time_ns())
        tokens.record(19, inputs)
        tokens.record(10, outputs)
        duration.record(0.25, metric)
        span.end()
    return (time.process_time() - t0) / rounds


def main() -> None:
    """Print the three figures and their ratios to the no-hook request."""
    plain = _request_cost(None)
    observed = _request_cost(otel_hooks())
    sdk = _sdk_cost()
    print(f"trillm request, c={WORKERS}, in memory, no hooks:  {plain * 1e6:8.1f} µs")
    print(f"... with OpenTelemetryHook:                     {observed * 1e6:8.1f} µs  "
          f"({observed / plain:.2f}x)")
    print(f"the SDK's calls alone (span + 3 points), warm:  {sdk * 1e6:8.1f} µs  "
          f"({sdk / plain:.2f}x the no-hook request)")


if __name__ == "__main__":
    main()
