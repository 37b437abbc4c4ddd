"""trillm.otel.OpenTelemetryHook against opentelemetry-sdk's in-memory exporters.

Spans (name, kind, GenAI attributes, retry events, errors, cancellation, content only
when asked, parent/child across trillm.gather) and the three histograms, on every
operation, plain and streamed.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
import trio
import trio.testing

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

import trillm
from trillm import errors
from trillm.otel import ATTRIBUTES, OpenTelemetryHook
from trillm.testing import FakeLLM, FakeTransport

MSGS = [{"role": "user", "content": "hello there"}]


class Telemetry:
    def __init__(self, capture_content: bool = False) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.hook = OpenTelemetryHook(self.tracer_provider, self.meter_provider,
                                      capture_content=capture_content)

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        out = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        out += [(dict(p.attributes or {}), p) for p in m.data.data_points]
        return out


@pytest.fixture
def otel() -> Telemetry:
    return Telemetry()


def chat_json(model: str) -> dict[str, Any]:
    return {"id": "chatcmpl-9", "object": "chat.completion", "created": 0,
            "model": f"{model}-2024-07-18",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 70, "completion_tokens": 30, "total_tokens": 100,
                      "prompt_tokens_details": {"cached_tokens": 64},
                      "completion_tokens_details": {"reasoning_tokens": 12}}}


def scripted(statuses: dict[str, list[int]], delay: float = 0.0) -> FakeTransport:
    """Each model answers its statuses in turn, then 200 with :func:`chat_json`, each answer
    *delay* seconds after its request."""
    fake = FakeLLM()
    for model, queue in statuses.items():
        rule = fake.on(model=model)
        for status in queue:
            rule.fail(status, body={"error": {"message": f"status {status}"}}, delay=delay)
        rule.respond(lambda req: chat_json(req.model or ""), delay=delay)
    fake.on().respond(lambda req: chat_json(req.model or ""), delay=delay)
    return fake.transport()


def client(otel: Telemetry, transport: Any = None, **kw: Any) -> trillm.Client:
    return trillm.Client(hooks=[otel.hook], transport=transport, api_key="sk-otel",
                         retry=trillm.RetryPolicy(jitter=0), **kw)


async def test_a_chat_span_with_the_genai_attributes(
        otel: Telemetry, autojump_clock: trio.testing.MockClock) -> None:
    async with client(otel, scripted({}, delay=0.25)) as c:
        await c.acompletion("openai/gpt-4o-mini", MSGS, temperature=0.2, max_tokens=50,
                            top_p=0.9)
    (span,) = otel.finished()
    assert span.name == "chat gpt-4o-mini" and span.kind == SpanKind.CLIENT
    a = dict(span.attributes or {})
    assert a == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 50, "gen_ai.request.top_p": 0.9,
        "server.address": "api.openai.com", "server.port": 443,
        "gen_ai.response.id": "chatcmpl-9", "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 70, "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.cache_read.input_tokens": 64,
        "gen_ai.usage.reasoning.output_tokens": 12,
    }
    assert span.status.status_code == StatusCode.UNSET
    assert "gen_ai.input.messages" not in a  # no content without capture_content
    ((attrs, point),) = otel.points("gen_ai.client.operation.duration")
    assert point.sum == 0.25 and point.count == 1
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    tokens = {attrs["gen_ai.token.type"]: p.sum
              for attrs, p in otel.points("gen_ai.client.token.usage")}
    assert tokens == {"input": 70, "output": 30}
    assert otel.points("gen_ai.client.operation.time_to_first_chunk") == []


async def test_retries_are_events_and_errors_set_the_status(
        otel: Telemetry, autojump_clock: trio.testing.MockClock) -> None:
    async with client(otel, scripted({"gpt-4o-mini": [429, 429, 429]}), max_retries=2) as c:
        with pytest.raises(errors.RateLimitError):
            await c.acompletion("openai/gpt-4o-mini", MSGS)
    (span,) = otel.finished()
    assert [e.name for e in span.events] == ["trillm.retry", "trillm.retry"]
    assert dict(span.events[1].attributes or {}) == {
        "trillm.attempt": 2, "trillm.retry.delay": 1.0, "error.type": "RateLimitError",
        "http.response.status_code": 429}
    assert span.status.status_code == StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "RateLimitError"
    ((attrs, point),) = otel.points("gen_ai.client.operation.duration")
    assert attrs["error.type"] == "RateLimitError" and point.sum == 1.5


async def test_a_fallback_answering(otel: Telemetry,
                                    autojump_clock: trio.testing.MockClock) -> None:
    async with client(otel, scripted({"a": [500]}), max_retries=0) as c:
        await c.acompletion("openai/a", MSGS, fallbacks=["openai/b"])
    (span,) = otel.finished()
    assert span.name == "chat a"
    a = span.attributes or {}
    assert a["gen_ai.request.model"] == "b" and a["gen_ai.response.model"] == "b-2024-07-18"
    assert span.status.status_code == StatusCode.UNSET


async def test_cancellation_ends_the_span(otel: Telemetry,
                                          autojump_clock: trio.testing.MockClock) -> None:
    async with client(otel, scripted({}, delay=10)) as c:
        with trio.move_on_after(2):
            await c.acompletion("openai/gpt-4o-mini", MSGS)
    (span,) = otel.finished()
    assert (span.attributes or {})["error.type"] == "Cancelled"
    assert span.status.status_code == StatusCode.ERROR


async def test_streams_time_to_first_chunk_and_usage(
        otel: Telemetry, autojump_clock: trio.testing.MockClock) -> None:
    async with client(otel) as c:
        async with c.stream("mock/x", MSGS, mock_latency=0.5, mock_chunk_delay=0.25) as s:
            async for _ in s:
                pass
    (span,) = otel.finished()
    assert span.name == "chat x"
    a = span.attributes or {}
    assert a["gen_ai.provider.name"] == "mock" and a["gen_ai.usage.output_tokens"] > 0
    ((_, ttfc),) = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert ttfc.sum == 0.75


@pytest.mark.parametrize(("operation", "call"), [
    ("embeddings", lambda c: c.aembedding("mock/e", ["a", "b"])),
    ("images", lambda c: c.aimage_generation("mock/i", "a cat")),
    ("transcription", lambda c: c.atranscription("mock/w", b"RIFF....")),
    ("speech", lambda c: c.aspeech("mock/tts", "hello", "alloy")),
    ("responses", lambda c: c.aresponses("mock/r", "hi")),
])
async def test_every_operation(otel: Telemetry, operation: str, call: Any) -> None:
    async with client(otel) as c:
        await call(c)
    (span,) = otel.finished()
    assert span.name == f"{operation} {span.attributes['gen_ai.request.model']}"
    assert span.attributes["gen_ai.operation.name"] == operation
    assert span.status.status_code == StatusCode.UNSET


@pytest.mark.parametrize("operation", ["responses", "speech"])
async def test_other_streams(otel: Telemetry, operation: str) -> None:
    async with client(otel) as c:
        if operation == "responses":
            async with c.responses_stream("mock/r", "hi") as s:
                await s.final_response()
        else:
            async with await c.aspeech("mock/tts", "hi", "alloy", stream=True) as s:
                async for _ in s:
                    pass
    (span,) = otel.finished()
    assert span.attributes["gen_ai.operation.name"] == operation
    assert len(otel.points("gen_ai.client.operation.time_to_first_chunk")) == 1


async def test_content_only_when_asked() -> None:
    otel = Telemetry(capture_content=True)
    async with client(otel) as c:
        await c.acompletion("mock/x", MSGS, mock_response="the answer")
    a = otel.finished()[0].attributes or {}
    assert json.loads(a["gen_ai.input.messages"]) == MSGS
    assert json.loads(a["gen_ai.output.messages"])[0]["content"] == "the answer"


async def test_parent_and_children_across_gather(otel: Telemetry) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    async with client(otel) as c:
        with tracer.start_as_current_span("handle request") as parent:
            await trillm.gather(*(functools.partial(c.acompletion, "mock/x", MSGS)
                                  for _ in range(3)))
        await c.acompletion("mock/x", MSGS)  # outside: a root span
    spans = otel.finished()
    children = [s for s in spans if s.name == "chat x"]
    assert len(children) == 4
    parent_id = parent.get_span_context().span_id
    trace_id = parent.get_span_context().trace_id
    inside = [s for s in children if s.parent is not None]
    assert len(inside) == 3
    assert all(s.parent.span_id == parent_id and s.context.trace_id == trace_id
               for s in inside)
    assert len({s.context.span_id for s in inside}) == 3


async def test_a_stream_is_the_child_of_the_span_current_when_it_opened(
        otel: Telemetry) -> None:
    # The span is handed to the tracer when the call ends; its parent is still the span
    # that was current when the call started, also when it ends outside that span.
    tracer = otel.tracer_provider.get_tracer("app")
    async with client(otel) as c:
        with tracer.start_as_current_span("handle request") as parent:
            s = await c.acompletion("mock/x", MSGS, stream=True)
        with tracer.start_as_current_span("elsewhere"):
            async with s:
                async for _ in s:
                    pass
    (span,) = [s for s in otel.finished() if s.name == "chat x"]
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
    assert span.start_time is not None and span.end_time is not None
    assert parent.end_time is not None and span.start_time < parent.end_time < span.end_time


async def test_retry_events_keep_their_times(
        otel: Telemetry, autojump_clock: trio.testing.MockClock) -> None:
    async with client(otel, scripted({"gpt-4o-mini": [503, 503]}), max_retries=2) as c:
        await c.acompletion("openai/gpt-4o-mini", MSGS)
    (span,) = otel.finished()
    times = [span.start_time, *(e.timestamp for e in span.events), span.end_time]
    assert [e.name for e in span.events] == ["trillm.retry", "trillm.retry"]
    assert times == sorted(times) and len(set(times)) == 4


async def test_provider_names_follow_the_conventions(otel: Telemetry) -> None:
    fake = FakeLLM(strict=True)
    fake.on(provider="gemini").respond({
        "candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1,
                          "totalTokenCount": 4}})
    async with client(otel, fake.transport()) as c:
        await c.acompletion("gemini/gemini-2.0-flash", MSGS)
    a = otel.finished()[0].attributes or {}
    assert a["gen_ai.provider.name"] == "gcp.gemini"
    assert a["server.address"] == "generativelanguage.googleapis.com"


def test_attribute_names_live_in_one_table() -> None:
    assert ATTRIBUTES["provider"] == "gen_ai.provider.name"
    import inspect

    import trillm.otel as module

    source = inspect.getsource(module)
    body = source[source.index("class OpenTelemetryHook"):]
    assert '"gen_ai.' not in body and '"server.' not in body and '"error.' not in body
