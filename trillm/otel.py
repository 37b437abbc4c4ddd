"""OpenTelemetry for trillm: GenAI spans and metrics from the call hooks.

``pip install trillm[otel]`` (it needs ``opentelemetry-api`` only; the SDK and
exporters are yours to set up), then::

    client = trillm.Client(hooks=[OpenTelemetryHook()])

Each logical call (its retries and fallbacks inside) is one CLIENT span named
``"{operation} {model}"`` with the GenAI semantic conventions' attributes, a
``trillm.retry`` event per retry, and three histograms: the operation's
duration, its token usage (input and output), and for streams the time to the
first chunk.  The span's parent is whatever span is current in the calling task
when the call starts (hooks run there, so ``contextvars`` carry the trace, also
into ``trillm.gather`` tasks); the span itself is not made current.  Message
content is recorded only with ``capture_content=True``.

The span is handed to the tracer once, when the call ends, with the time the call
started as its start time, the parent context of its start, and all its
attributes at once (those of the request and of the answer, so a sampler sees
them all); its retry events keep the times they happened at.  Nothing can be a
child of it (it is never current), so nothing is lost by this, and the SDK checks
and copies each attribute once rather than twice: about a third of what a span
costs.  Span processors see the span start and end together, at its end.

The conventions for generative AI are still moving: every attribute, metric and
event name used here is in the tables below, and only there.
"""

from __future__ import annotations

import json
import time
from typing import Any

from opentelemetry import context, metrics, trace
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


class _CallState:
    """One call so far (what ``on_call_start`` returns): how its span will start."""

    __slots__ = ("attributes", "context", "events", "key", "name", "request_model",
                 "start_time")

    def __init__(self, name: str, attributes: dict[str, Any], parent: Any,
                 key: tuple[Any, ...], request_model: str) -> None:
        self.name = name
        self.attributes = attributes
        self.context = parent
        self.key = key
        self.request_model = request_model
        self.start_time = time.time_ns()
        self.events: list[tuple[dict[str, Any], int]] | None = None


#: How many distinct attribute sets each cache keeps (then it starts over).
_CACHE_SIZE = 512


class OpenTelemetryHook:
    """A trillm hook that records GenAI spans and metrics (see the module's docstring).

    *tracer_provider* and *meter_provider* default to the global ones;
    *capture_content* records the messages sent and received (as JSON strings in
    ``gen_ai.input.messages`` / ``gen_ai.output.messages``): off by default, as
    they may hold personal data.

    Per call it starts and ends one span, at the call's end (see the module's
    docstring), and records two or three histogram points.  The attributes that recur
    (operation, provider, model, server; the answering model and error type on the
    metrics) are built once per distinct set and reused.
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
        # (operation, provider, model, address, port) -> (span name, common attributes)
        self._starts: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}
        # (start key, response model, error type) -> the metrics' attributes: the
        # duration's, the input tokens', the output tokens'
        self._metric_attrs: dict[tuple[Any, ...],
                                 tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}

    def _start_attributes(self, key: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
        operation, provider, model, address, port = key
        common: dict[str, Any] = {
            _A["operation"]: operation,
            _A["provider"]: PROVIDER_NAMES.get(provider, provider),
            _A["request_model"]: model,
        }
        if address is not None:
            common[_A["server_address"]] = address
            if port is not None:
                common[_A["server_port"]] = port
        if len(self._starts) >= _CACHE_SIZE:
            self._starts.clear()
        found = self._starts[key] = (f"{operation} {model}", common)
        return found

    def _end_attributes(self, key: tuple[Any, ...]
                        ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        start, response_model, error = key
        metric = dict((self._starts.get(start) or self._start_attributes(start))[1])
        if response_model:
            metric[_A["response_model"]] = response_model
        if error is not None:
            metric[_A["error_type"]] = error
        if len(self._metric_attrs) >= _CACHE_SIZE:
            self._metric_attrs.clear()
        found = self._metric_attrs[key] = (metric, {**metric, _A["token_type"]: "input"},
                                           {**metric, _A["token_type"]: "output"})
        return found

    def on_call_start(self, info: CallInfo) -> _CallState:
        """Note the call's start: its time, its parent context, its request attributes."""
        key = (info.operation, info.provider, info.model, info.server_address,
               info.server_port)
        name, attributes = self._starts.get(key) or self._start_attributes(key)
        params = info.params
        if params:
            extra = {}
            for param, name_of in _REQUEST_PARAMS:
                value = params.get(param)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    extra[_A[name_of]] = value
            if extra:
                attributes = {**attributes, **extra}
        if self.capture_content and info.content is not None:
            attributes = {**attributes, _A["input_messages"]: _json(info.content)}
        return _CallState(name, attributes, context.get_current(), key, info.model)

    def on_attempt_end(self, state: _CallState, attempt: AttemptInfo) -> None:
        """A retry: an event on the span, at this time."""
        if not attempt.will_retry:
            return
        event: dict[str, Any] = {_A["attempt"]: attempt.number,
                                 _A["retry_delay"]: attempt.retry_delay or 0.0}
        if attempt.error_type is not None:
            event[_A["error_type"]] = attempt.error_type
        if attempt.status_code is not None:
            event[_A["status_code"]] = attempt.status_code
        if state.events is None:
            state.events = []
        state.events.append((event, time.time_ns()))

    def on_call_end(self, state: _CallState, result: CallResult) -> None:
        """The call's span, with every attribute, from its start to now; the histograms."""
        attributes = dict(state.attributes)  # the cached dict stays as it is
        error = None
        if result.error is not None:
            error = attributes[_A["error_type"]] = (result.error_type
                                                    or type(result.error).__name__)
        if result.model != state.request_model:  # a fallback answered
            attributes[_A["request_model"]] = result.model
        if result.response_id:
            attributes[_A["response_id"]] = result.response_id
        if result.response_model:
            attributes[_A["response_model"]] = result.response_model
        if result.finish_reasons:
            attributes[_A["finish_reasons"]] = result.finish_reasons
        counts = None
        if result.usage is not None:
            counts = token_counts(result.usage)
            attributes[_A["input_tokens"]] = counts.input
            attributes[_A["output_tokens"]] = counts.output
            if counts.cached:
                attributes[_A["cache_read_tokens"]] = counts.cached
            if counts.cache_write:
                attributes[_A["cache_creation_tokens"]] = counts.cache_write
            if counts.reasoning:
                attributes[_A["reasoning_tokens"]] = counts.reasoning
        if self.capture_content and result.response is not None:
            out = _output_messages(result.response)
            if out is not None:
                attributes[_A["output_messages"]] = _json(out)
        span = self._tracer.start_span(state.name, state.context, SpanKind.CLIENT,
                                       attributes, start_time=state.start_time)
        if state.events is not None:
            for event, at in state.events:
                span.add_event(_A["retry_event"], event, at)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        key = (state.key, result.response_model or None, error)
        metric, inputs, outputs = self._metric_attrs.get(key) or self._end_attributes(key)
        if counts is not None:
            self._tokens.record(counts.input, inputs)
            self._tokens.record(counts.output, outputs)
        self._duration.record(result.duration, metric)
        if result.time_to_first_chunk is not None:
            self._first_chunk.record(result.time_to_first_chunk, metric)
        span.end()
