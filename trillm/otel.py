"""OpenTelemetry for trillm: GenAI spans and metrics from the call hooks.

``pip install trillm[otel]`` (it needs ``opentelemetry-api`` only; the SDK and
exporters are yours to set up), then::

    client = trillm.Client(hooks=[OpenTelemetryHook()])

Each logical call (its retries and fallbacks inside) is one CLIENT span named
``"{operation} {model}"`` with the GenAI semantic conventions' attributes, a
``trillm.retry`` event per retry, and three histograms: the operation's
duration, its token usage (input and output), and for streams the time to the
first chunk.  The span's parent is whatever span is current in the calling task
(hooks run there, so ``contextvars`` carry the trace, also into
``trillm.gather`` tasks); the span itself is not made current.  Message content
is recorded only with ``capture_content=True``.

The conventions for generative AI are still moving: every attribute, metric and
event name used here is in the tables below, and only there.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .hooks import AttemptInfo, CallInfo, CallResult
from .usage import token_counts

__all__ = ["ATTRIBUTES", "METRICS", "PROVIDER_NAMES", "OpenTelemetryHook"]

#: trillm's name for each value -> the attribute it is recorded as.
ATTRIBUTES: dict[str, str] = {
    "operation": "gen_ai.operation.name",
    "provider": "gen_ai.provider.name",
    "request_model": "gen_ai.request.model",
    "max_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "response_id": "gen_ai.response.id",
    "response_model": "gen_ai.response.model",
    "finish_reasons": "gen_ai.response.finish_reasons",
    "input_tokens": "gen_ai.usage.input_tokens",
    "output_tokens": "gen_ai.usage.output_tokens",
    "cache_read_tokens": "gen_ai.usage.cache_read.input_tokens",
    "cache_creation_tokens": "gen_ai.usage.cache_creation.input_tokens",
    "reasoning_tokens": "gen_ai.usage.reasoning.output_tokens",
    "token_type": "gen_ai.token.type",
    "input_messages": "gen_ai.input.messages",
    "output_messages": "gen_ai.output.messages",
    "server_address": "server.address",
    "server_port": "server.port",
    "error_type": "error.type",
    "status_code": "http.response.status_code",
    # trillm's own, on the retry event
    "retry_event": "trillm.retry",
    "attempt": "trillm.attempt",
    "retry_delay": "trillm.retry.delay",
}

#: trillm's name for each histogram -> (instrument name, unit, description).
METRICS: dict[str, tuple[str, str, str]] = {
    "duration": ("gen_ai.client.operation.duration", "s", "GenAI operation duration"),
    "token_usage": ("gen_ai.client.token.usage", "{token}",
                    "Number of input and output tokens used"),
    "time_to_first_chunk": ("gen_ai.client.operation.time_to_first_chunk", "s",
                            "Time to receive the first chunk of a streamed answer"),
}

#: trillm's provider names that the conventions spell otherwise (the rest as they are).
PROVIDER_NAMES: dict[str, str] = {"gemini": "gcp.gemini", "azure": "azure.ai.openai"}

_A = ATTRIBUTES
#: The request parameters recorded, by trillm's (OpenAI's) parameter name.
_REQUEST_PARAMS = (("max_tokens", "max_tokens"), ("max_completion_tokens", "max_tokens"),
                   ("max_output_tokens", "max_tokens"), ("temperature", "temperature"),
                   ("top_p", "top_p"))
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                     20.48, 40.96, 81.92)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                  16777216, 67108864)


def _json(value: Any) -> str:
    def plain(v: Any) -> Any:
        to_dict = getattr(v, "to_dict", None)
        return to_dict() if callable(to_dict) else str(v)

    return json.dumps(value, default=plain, ensure_ascii=False)


def _output_messages(response: Any) -> Any:
    choices = getattr(response, "choices", None)
    if choices:
        return [c.message for c in choices]
    text = getattr(response, "output_text", None)
    return text if isinstance(text, str) else None


class OpenTelemetryHook:
    """A trillm hook that records GenAI spans and metrics (see the module's docstring).

    *tracer_provider* and *meter_provider* default to the global ones;
    *capture_content* records the messages sent and received (as JSON strings in
    ``gen_ai.input.messages`` / ``gen_ai.output.messages``): off by default, as
    they may hold personal data.
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None,
                 meter_provider: metrics.MeterProvider | None = None,
                 capture_content: bool = False) -> None:
        self.capture_content = capture_content
        self._tracer = trace.get_tracer("trillm", tracer_provider=tracer_provider)
        meter = metrics.get_meter("trillm", meter_provider=meter_provider)
        name, unit, desc = METRICS["duration"]
        self._duration = meter.create_histogram(
            name, unit=unit, description=desc,
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS))
        name, unit, desc = METRICS["token_usage"]
        self._tokens = meter.create_histogram(
            name, unit=unit, description=desc,
            explicit_bucket_boundaries_advisory=list(_TOKEN_BUCKETS))
        name, unit, desc = METRICS["time_to_first_chunk"]
        self._first_chunk = meter.create_histogram(
            name, unit=unit, description=desc,
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS))

    def on_call_start(self, info: CallInfo) -> tuple[Any, dict[str, Any]]:
        """Open the call's span (a child of the caller's current span)."""
        common: dict[str, Any] = {
            _A["operation"]: info.operation,
            _A["provider"]: PROVIDER_NAMES.get(info.provider, info.provider),
            _A["request_model"]: info.model,
        }
        if info.server_address is not None:
            common[_A["server_address"]] = info.server_address
            if info.server_port is not None:
                common[_A["server_port"]] = info.server_port
        attributes = dict(common)
        params = info.params
        for param, key in _REQUEST_PARAMS:
            value = params.get(param)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attributes[_A[key]] = value
        if self.capture_content and info.content is not None:
            attributes[_A["input_messages"]] = _json(info.content)
        span = self._tracer.start_span(f"{info.operation} {info.model}", kind=SpanKind.CLIENT,
                                       attributes=attributes)
        return span, common

    def on_attempt_end(self, state: tuple[Any, dict[str, Any]], attempt: AttemptInfo) -> None:
        """A retry: an event on the span."""
        if not attempt.will_retry:
            return
        event: dict[str, Any] = {_A["attempt"]: attempt.number,
                                 _A["retry_delay"]: attempt.retry_delay or 0.0}
        if attempt.error_type is not None:
            event[_A["error_type"]] = attempt.error_type
        if attempt.status_code is not None:
            event[_A["status_code"]] = attempt.status_code
        state[0].add_event(_A["retry_event"], event)

    def on_call_end(self, state: tuple[Any, dict[str, Any]], result: CallResult) -> None:
        """Close the span with the answer's attributes; record the histograms."""
        span, common = state
        metric = common
        if result.model != common[_A["request_model"]]:  # a fallback answered
            span.set_attribute(_A["request_model"], result.model)
        if result.response_id:
            span.set_attribute(_A["response_id"], result.response_id)
        if result.response_model:
            span.set_attribute(_A["response_model"], result.response_model)
            metric = {**common, _A["response_model"]: result.response_model}
        if result.finish_reasons:
            span.set_attribute(_A["finish_reasons"], result.finish_reasons)
        if result.error is not None:
            error = result.error_type or type(result.error).__name__
            span.set_attribute(_A["error_type"], error)
            span.set_status(Status(StatusCode.ERROR, error))
            metric = {**metric, _A["error_type"]: error}
        if result.usage is not None:
            c = token_counts(result.usage)
            span.set_attribute(_A["input_tokens"], c.input)
            span.set_attribute(_A["output_tokens"], c.output)
            if c.cached:
                span.set_attribute(_A["cache_read_tokens"], c.cached)
            if c.cache_write:
                span.set_attribute(_A["cache_creation_tokens"], c.cache_write)
            if c.reasoning:
                span.set_attribute(_A["reasoning_tokens"], c.reasoning)
            self._tokens.record(c.input, {**metric, _A["token_type"]: "input"})
            self._tokens.record(c.output, {**metric, _A["token_type"]: "output"})
        if self.capture_content and result.response is not None:
            out = _output_messages(result.response)
            if out is not None:
                span.set_attribute(_A["output_messages"], _json(out))
        self._duration.record(result.duration, metric)
        if result.time_to_first_chunk is not None:
            self._first_chunk.record(result.time_to_first_chunk, metric)
        span.end()
