"""Call hooks: one start and one end per logical call, an event per attempt, first chunks.

Every operation, plain and streamed, on the mock and on an in-memory transport under
the autojump clock (exact virtual times); retries, fallbacks, errors, cancellation,
a hook that raises, per-call hooks, content only on request, contextvars.
"""

from __future__ import annotations

import contextvars
import functools
import gc
import json
import logging
import weakref
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.hooks import AttemptInfo, CallInfo, CallResult
from trillm.testing import FakeLLM, FakeRequest, FakeTransport

MSGS = [{"role": "user", "content": "hello there"}]
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class Recorder:
    """Keeps every event, with the request id of the context it ran in."""

    def __init__(self, capture_content: bool = False) -> None:
        self.capture_content = capture_content
        self.events: list[tuple[str, Any]] = []
        self.starts: list[CallInfo] = []
        self.attempts: list[AttemptInfo] = []
        self.ends: list[CallResult] = []
        self.contexts: list[str] = []

    def on_call_start(self, info: CallInfo) -> str:
        self.starts.append(info)
        self.events.append(("start", info.operation))
        self.contexts.append(REQUEST_ID.get())
        return info.call_id

    def on_attempt_end(self, state: str, attempt: AttemptInfo) -> None:
        assert state == self.starts[-1].call_id or any(s.call_id == state for s in self.starts)
        self.attempts.append(attempt)
        self.events.append(("attempt", attempt.number))

    def on_first_chunk(self, state: str) -> None:
        self.events.append(("first", trio.current_time()))

    def on_call_end(self, state: str, result: CallResult) -> None:
        self.ends.append(result)
        self.events.append(("end", result.error_type))
        self.contexts.append(REQUEST_ID.get())


def chat_json(model: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "hi"}}],
            "usage": usage or {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


def chat_sse(model: str) -> bytes:
    base = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 0, "model": model}
    return sse(
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "a"}}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "b"}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": {
            "prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 4}}},
    )


def ok(req: FakeRequest) -> Any:
    """The hand-written 200 answer: :func:`chat_sse` as one chunk, or :func:`chat_json`."""
    return [chat_sse(req.model or "")] if req.stream else chat_json(req.model or "")


def scripted(statuses: dict[str, list[int]], delay: float = 0.0) -> FakeTransport:
    """Each model answers its statuses in turn, then 200 (chat, plain or streamed), each
    answer *delay* seconds after its request."""
    fake = FakeLLM()
    for model, queue in statuses.items():
        rule = fake.on(model=model)
        for status in queue:
            rule.fail(status, body={"error": {"message": f"status {status}"}}, delay=delay)
        rule.respond(ok, delay=delay)
    fake.on().respond(ok, delay=delay)
    return fake.transport()


def client(hook: Any, transport: Any = None, **kw: Any) -> trillm.Client:
    return trillm.Client(hooks=[hook], transport=transport, api_key="sk-secret-hooks",
                         retry=trillm.RetryPolicy(jitter=0), **kw)


# ---------------------------------------------------------------- every operation


async def test_chat_plain_one_start_one_attempt_one_end(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    async with client(rec, scripted({}, delay=0.25)) as c:
        r = await c.acompletion("openai/gpt-4o-mini", MSGS, temperature=0.5, max_tokens=9)
    assert [e[0] for e in rec.events] == ["start", "attempt", "end"]
    info = rec.starts[0]
    assert (info.operation, info.provider, info.model, info.stream) == (
        "chat", "openai", "gpt-4o-mini", False)
    assert info.params == {"temperature": 0.5, "max_tokens": 9}
    assert (info.server_address, info.server_port) == ("api.openai.com", 443)
    assert info.content is None  # the hook did not ask for content
    a = rec.attempts[0]
    assert (a.number, a.status_code, a.error, a.will_retry, a.duration) == (1, 200, None,
                                                                             False, 0.25)
    end = rec.ends[0]
    assert end.response is r and end.error is None and end.attempts == 1
    assert (end.response_id, end.response_model, end.finish_reasons) == (
        "chatcmpl-1", "gpt-4o-mini", ("stop",))
    assert end.usage.total_tokens == 10 and end.duration == 0.25
    assert end.time_to_first_chunk is None and end.cost is None


async def test_content_only_for_a_hook_that_asks() -> None:
    rec = Recorder(capture_content=True)
    async with trillm.Client(hooks=[rec]) as c:
        await c.acompletion("mock/x", MSGS)
        await c.aresponses("mock/x", "what is 2+2", instructions="be short")
    assert rec.starts[0].content == tuple(MSGS)
    assert rec.starts[1].content == "what is 2+2"
    assert "instructions" not in rec.starts[1].params  # content never in params


@pytest.mark.parametrize(("operation", "call"), [
    ("embeddings", lambda c: c.aembedding("mock/e", ["a", "b"])),
    ("images", lambda c: c.aimage_generation("mock/i", "a cat")),
    ("transcription", lambda c: c.atranscription("mock/w", b"RIFF....")),
    ("speech", lambda c: c.aspeech("mock/tts", "hello", "alloy")),
    ("responses", lambda c: c.aresponses("mock/r", "hi")),
    ("models", lambda c: c.alist_models("mock")),
])
async def test_every_operation_plain(operation: str, call: Any) -> None:
    rec = Recorder()
    async with trillm.Client(hooks=[rec]) as c:
        answer = await call(c)
    assert rec.events == [("start", operation), ("attempt", 1), ("end", None)]
    assert rec.starts[0].provider == "mock" and rec.starts[0].stream is False
    assert rec.ends[0].response is answer or rec.ends[0].response == answer
    if operation in ("embeddings", "responses"):
        assert rec.ends[0].usage is not None and rec.ends[0].usage.total_tokens > 0
    if operation == "responses":
        assert rec.ends[0].finish_reasons == ("completed",)


async def test_embedding_batches_are_one_call(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    inputs = [f"text {i}" for i in range(5000)]  # over openai's batch size of 2048: 3 batches
    async with trillm.Client(hooks=[rec]) as c:
        r = await c.aembedding("mock/e", inputs)
    assert len(r.data) == 5000
    assert [e[0] for e in rec.events] == ["start", "attempt", "attempt", "attempt", "end"]
    assert rec.starts[0].fallbacks == ()
    assert rec.ends[0].attempts == 3


async def test_chat_stream_first_chunk_and_end_at_close_with_usage(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    async with client(rec, scripted({}, delay=0.5)) as c:
        async with c.stream("openai/gpt-4o-mini", MSGS) as s:
            assert [e[0] for e in rec.events] == ["start", "attempt"]
            await trio.sleep(1)
            text = [chunk.choices[0].delta.content async for chunk in s]
            assert [e[0] for e in rec.events] == ["start", "attempt", "first", "end"]
    assert text[:2] == ["a", "b"]
    assert rec.starts[0].stream is True
    end = rec.ends[0]
    assert end.error is None and end.finish_reasons == ("stop",)
    assert end.usage.prompt_tokens_details == {"cached_tokens": 4}
    assert end.time_to_first_chunk == 1.5 and end.duration == 1.5
    assert end.response.choices[0].message.content == "ab"


async def test_stream_closed_early_ends_once_without_error() -> None:
    rec = Recorder()
    async with trillm.Client(hooks=[rec]) as c:
        async with c.stream("mock/x", MSGS) as s:
            async for _ in s:
                break
        await s.aclose()  # again: nothing more
    assert [e[0] for e in rec.events] == ["start", "attempt", "first", "end"]
    assert rec.ends[0].error is None


async def test_stream_cancelled_midway_ends_with_the_cancellation(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    async with trillm.Client(hooks=[rec]) as c:
        with trio.move_on_after(1.5):
            async with c.stream("mock/x", MSGS, mock_chunk_delay=1) as s:
                async for _ in s:
                    pass
    assert [e[0] for e in rec.events][-1] == "end"
    assert [e[0] for e in rec.events].count("end") == 1
    assert rec.ends[0].error_type == "Cancelled"
    assert isinstance(rec.ends[0].error, trio.Cancelled)
    assert rec.ends[0].duration == 1.5 and rec.ends[0].time_to_first_chunk == 1


@pytest.mark.parametrize("operation", ["responses", "speech"])
async def test_other_streams(operation: str) -> None:
    rec = Recorder()
    async with trillm.Client(hooks=[rec]) as c:
        if operation == "responses":
            async with c.responses_stream("mock/r", "hi") as s:
                final = await s.final_response()
            assert rec.ends[0].response is not None
            assert rec.ends[0].response.id == final.id
            assert rec.ends[0].usage.total_tokens == final.usage.total_tokens
        else:
            s = await c.aspeech("mock/tts", "hello", "alloy", stream=True)
            async with s:
                async for _ in s:
                    pass
    assert [e[0] for e in rec.events] == ["start", "attempt", "first", "end"]
    assert rec.starts[0].operation == operation and rec.starts[0].stream
    assert rec.ends[0].error is None


# ---------------------------------------------------------------- retries, fallbacks, errors


async def test_the_records_are_whole_frozen_records_and_call_ids_differ() -> None:
    """The pipeline builds the records with a faster constructor than ``__init__``: each
    is still the frozen attrs record, every field set; call ids are 16 hex digits."""
    rec = Recorder()

    class Starts:  # no on_attempt_end: no AttemptInfo is built for it, the others get theirs
        def __init__(self) -> None:
            self.ends: list[CallResult] = []

        def on_call_start(self, info: CallInfo) -> None:
            return None

        def on_call_end(self, state: None, result: CallResult) -> None:
            self.ends.append(result)

    starts = Starts()
    async with trillm.Client(hooks=[starts, rec], transport=scripted({}),
                             api_key="sk-secret-hooks") as c:
        for _ in range(3):
            await c.acompletion("openai/gpt-4o-mini", MSGS)
    assert len(rec.attempts) == 3 and starts.ends == rec.ends
    records: list[Any] = [*rec.starts, *rec.attempts, *rec.ends]
    for record in records:
        assert attrs.evolve(record) == record  # __init__ rebuilds the same record
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            record.provider = "x"
    ids = [s.call_id for s in rec.starts]
    assert len(set(ids)) == 3
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)


async def test_retries_then_success(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    async with client(rec, scripted({"gpt-4o-mini": [429, 500]})) as c:
        await c.acompletion("openai/gpt-4o-mini", MSGS)
    assert [e[0] for e in rec.events] == ["start", "attempt", "attempt", "attempt", "end"]
    first, second, third = rec.attempts
    assert (first.status_code, first.error_type, first.will_retry, first.retry_delay) == (
        429, "RateLimitError", True, 0.5)
    assert (second.status_code, second.error_type, second.retry_delay) == (
        500, "InternalServerError", 1.0)
    assert (third.status_code, third.error, third.will_retry) == (200, None, False)
    assert rec.ends[0].attempts == 3 and rec.ends[0].duration == 1.5


async def test_fallbacks_one_call_the_answering_model(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    async with client(rec, scripted({"a": [500, 500]}), max_retries=1) as c:
        r = await c.acompletion("openai/a", MSGS, fallbacks=["openai/b"])
    assert r.model == "b"
    assert rec.starts[0].model == "a" and rec.starts[0].fallbacks == ("openai/b",)
    assert [(a.model, a.number, a.will_retry) for a in rec.attempts] == [
        ("a", 1, True), ("a", 2, False), ("b", 1, False)]
    end = rec.ends[0]
    assert (end.model, end.response_model, end.attempts, end.error) == ("b", "b", 3, None)


async def test_an_error_ends_the_call_with_it(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    async with client(rec, scripted({"gpt-4o-mini": [400]})) as c:
        with pytest.raises(errors.BadRequestError) as caught:
            await c.acompletion("openai/gpt-4o-mini", MSGS)
    assert [e for e in rec.events] == [("start", "chat"), ("attempt", 1),
                                       ("end", "BadRequestError")]
    assert rec.ends[0].error is caught.value and rec.ends[0].response is None


async def test_a_stream_that_fails_to_open_ends_with_the_error(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    async with client(rec, scripted({"gpt-4o-mini": [401]})) as c:
        with pytest.raises(errors.AuthenticationError):
            async with c.stream("openai/gpt-4o-mini", MSGS):
                pass
    assert rec.events == [("start", "chat"), ("attempt", 1), ("end", "AuthenticationError")]


async def test_cancelled_during_an_attempt(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    async with client(rec, scripted({}, delay=5)) as c:
        with trio.move_on_after(1):
            await c.acompletion("openai/gpt-4o-mini", MSGS)
    assert rec.events == [("start", "chat"), ("attempt", 1), ("end", "Cancelled")]
    assert rec.attempts[0].error_type == "Cancelled" and rec.attempts[0].duration == 1
    assert rec.ends[0].duration == 1


async def test_cancelled_during_the_back_off(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    async with client(rec, scripted({"gpt-4o-mini": [503, 503]})) as c:
        with trio.move_on_after(0.25):
            await c.acompletion("openai/gpt-4o-mini", MSGS)
    assert rec.events == [("start", "chat"), ("attempt", 1), ("end", "Cancelled")]


async def test_waits_for_the_slot_and_the_rate_limit_turn(
        autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    async with client(rec, scripted({}, delay=1), max_concurrency=1,
                      rate_limits={"openai/gpt-4o-mini": trillm.RateLimit(rpm=120)}) as c:
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(functools.partial(c.acompletion, "openai/gpt-4o-mini", MSGS))
    waits = sorted((a.rate_limit_wait, a.slot_wait) for a in rec.attempts)
    # the second request's turn comes at 0.5 s; then it waits for the slot until 1 s
    assert waits == [(0.0, 0.0), (0.5, 0.5)]


# ---------------------------------------------------------------- robustness


class Broken:
    def on_call_start(self, info: CallInfo) -> None:
        raise RuntimeError("hook bug at start")

    def on_call_end(self, state: Any, result: CallResult) -> None:
        raise ValueError("hook bug at end")


async def test_a_hook_that_raises_is_logged_and_changes_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    with caplog.at_level(logging.WARNING, logger="trillm"):
        async with trillm.Client(hooks=[Broken(), rec]) as c:
            r = await c.acompletion("mock/x", MSGS)
    assert r.choices[0].message.content
    assert [e[0] for e in rec.events] == ["start", "attempt", "end"]  # the others still ran
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "on_call_start" in warnings[0].getMessage()
    assert "on_call_end" in warnings[1].getMessage()
    assert warnings[1].exc_info is not None and warnings[1].exc_info[0] is ValueError


async def test_per_call_hooks_run_after_the_clients() -> None:
    order: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def on_call_end(self, state: Any, result: CallResult) -> None:
            order.append(self.name)

    async with trillm.Client(hooks=[Named("client")]) as c:
        await c.acompletion("mock/x", MSGS, hooks=[Named("call")])
        await c.acompletion("mock/x", MSGS)
    assert order == ["client", "call", "client"]


async def test_not_a_hook_is_refused_before_traffic() -> None:
    with pytest.raises(TypeError, match="not a trillm hook"):
        trillm.Client(hooks=[object()])
    async with trillm.Client() as c:
        with pytest.raises(errors.BadRequestError, match="not a trillm hook"):
            await c.acompletion("mock/x", MSGS, hooks=[42])


async def test_no_hooks_means_no_observer() -> None:
    c = trillm.Client()
    assert c._defaults.observer is None
    assert c._defaults.plain_options().observer is None


class _State:
    """A hook's per-call state, weakly referenceable."""


class _WeakStates:
    def __init__(self) -> None:
        self.refs: list[weakref.ref[_State]] = []

    def on_call_start(self, info: CallInfo) -> _State:
        state = _State()
        self.refs.append(weakref.ref(state))
        return state

    def on_call_end(self, state: _State, result: CallResult) -> None:
        pass


@pytest.mark.parametrize("stream", [False, True])
async def test_an_observed_call_makes_no_reference_cycle(stream: bool) -> None:
    # A call held its observation and the observation held the call: every observed call
    # (its hooks' states, an OpenTelemetry span with them) became cyclic garbage, which
    # only the collector frees; at high call rates that collector's work doubled what the
    # OpenTelemetry hook cost.  Freed by reference counting alone, they die at once.
    hook = _WeakStates()
    gc.collect()
    gc.disable()
    try:
        async with client(hook, scripted({})) as c:
            if stream:
                async with c.stream("openai/gpt-4o-mini", MSGS) as s:
                    async for _ in s:
                        pass
            else:
                await c.acompletion("openai/gpt-4o-mini", MSGS)
            await trio.lowlevel.checkpoint()
            assert len(hook.refs) == 1
            assert hook.refs[0]() is None
    finally:
        gc.enable()


async def test_contextvars_flow_into_hooks_in_gather_tasks() -> None:
    rec = Recorder()

    async def ask(i: int) -> None:
        REQUEST_ID.set(f"req-{i}")
        await c.acompletion("mock/x", MSGS)

    async with trillm.Client(hooks=[rec]) as c:
        await trillm.gather(*(functools.partial(ask, i) for i in range(3)))
    assert sorted(rec.contexts) == sorted([f"req-{i}" for i in range(3)] * 2)


async def test_the_module_level_functions_take_hooks() -> None:
    rec = Recorder()
    await trillm.acompletion("mock/x", MSGS, hooks=[rec])
    assert [e[0] for e in rec.events] == ["start", "attempt", "end"]


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-latest",
                                   "gemini/gemini-2.0-flash"])
async def test_no_log_line_holds_the_key(model: str, caplog: pytest.LogCaptureFixture,
                                         autojump_clock: trio.testing.MockClock) -> None:
    key = "sk-very-secret-0123456789"

    fake = FakeLLM()  # echoes the key back, as some do
    fake.on().respond(lambda req: {"error": {"message": f"bad key {key} at {req.url}"}},
                      status=503)
    with caplog.at_level(logging.DEBUG, logger="trillm"):
        async with trillm.Client(transport=fake.transport(), api_key=key,
                                 hooks=[Broken()], max_retries=2,
                                 retry=trillm.RetryPolicy(jitter=0)) as c:
            with pytest.raises(errors.APIError):
                await c.acompletion(model, MSGS)
    lines = [r.getMessage() for r in caplog.records if r.name == "trillm"]
    assert sum("retrying" in line for line in lines) == 2  # at INFO
    assert any("giving up" in line for line in lines)
    assert all(key not in line for line in lines)
    assert key not in caplog.text  # the hooks' failure tracebacks included


async def test_batch_steps_are_batch_calls(autojump_clock: trio.testing.MockClock) -> None:
    """The provider batch APIs report each HTTP step as one call of operation 'batch'
    (docs/observability.md): the mock's submit uploads then creates, a status is one."""
    rec = Recorder()
    async with trillm.Client(hooks=[rec]) as c:
        job = await c.batches.submit("mock/b", [{"messages": MSGS}], mock_batch_delay=1)
        await c.batches.status(job)
    assert [e for e in rec.events if e[0] != "attempt"] == [
        ("start", "batch"), ("end", None), ("start", "batch"), ("end", None),
        ("start", "batch"), ("end", None)]
    assert {s.provider for s in rec.starts} == {"mock"}
