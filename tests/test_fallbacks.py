"""``fallbacks=[...]``: the next model after a retryable or context-window failure."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.testing import FakeLLM

MSGS = [{"role": "user", "content": "x"}]


def client_with(statuses: dict[str, list[int]]) -> tuple[trillm.Client, FakeLLM]:
    """Each model answers with its list of statuses in turn, then 200: ``from <model>``."""
    fake = FakeLLM()
    for model, queue in statuses.items():
        rule = fake.on(model=model)
        for status in queue:
            if status == 400:
                rule.fail(400, body={"error": {"message": "too long",
                                               "code": "context_length_exceeded"}})
            else:
                rule.fail(status, body={"error": {"message": f"status {status}"}})
        rule.times(len(queue))
    fake.on().reply(lambda req: f"from {req.model}")
    client = trillm.Client(transport=fake.transport(), api_key="sk-test",
                           retry=trillm.RetryPolicy(jitter=0), max_retries=1)
    return client, fake


def seen(fake: FakeLLM) -> list[tuple[str | None, float]]:
    return [(q.model, q.started_at) for q in fake.requests]


async def test_falls_back_after_retries(autojump_clock: trio.testing.MockClock) -> None:
    client, fake = client_with({"a": [500, 500]})
    async with client:
        r = await client.acompletion("openai/a", MSGS, fallbacks=["openai/b"])
    assert r.model == "b" and r.choices[0].message.content == "from b"
    assert seen(fake) == [("a", 0.0), ("a", 0.5), ("b", 0.5)]


async def test_context_window_error_falls_back_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, fake = client_with({"small": [400]})
    async with client:
        r = await client.acompletion("openai/small", MSGS, fallbacks=["openai/large"])
    assert r.model == "large"
    assert seen(fake) == [("small", 0.0), ("large", 0.0)]


async def test_non_retryable_error_does_not_fall_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, fake = client_with({"a": [401]})
    async with client:
        with pytest.raises(errors.AuthenticationError):
            await client.acompletion("openai/a", MSGS, fallbacks=["openai/b"])
    assert [m for m, _ in seen(fake)] == ["a"]


async def test_all_failing_raises_the_last_with_the_others_in_notes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, fake = client_with({"a": [503, 503], "b": [429, 429]})
    async with client:
        with pytest.raises(errors.RateLimitError) as info:
            await client.acompletion("openai/a", MSGS, fallbacks=["openai/b"])
    notes = getattr(info.value, "__notes__", [])
    assert len(notes) == 1 and "openai/a failed: ServiceUnavailableError" in notes[0]
    assert [(q.model, q.status) for q in fake.requests] == [
        ("a", 503), ("a", 503), ("b", 429), ("b", 429)]


async def test_fallbacks_are_validated_before_any_traffic() -> None:
    client, fake = client_with({})
    async with client:
        with pytest.raises(errors.BadRequestError, match="nosuch"):
            await client.acompletion("openai/a", MSGS, fallbacks=["nosuch/model"])
    assert seen(fake) == []


async def test_stream_falls_back_before_the_first_chunk(
    autojump_clock: trio.testing.MockClock,
) -> None:
    client, fake = client_with({"a": [503, 503]})
    async with client:
        async with client.stream("openai/a", MSGS, fallbacks=["openai/b"]) as s:
            text = "".join([c.choices[0].delta.content or "" async for c in s])
    assert text == "from b"
    assert seen(fake) == [("a", 0.0), ("a", 0.5), ("b", 0.5)] and fake.requests[2].stream


async def test_deadline_spans_every_model(autojump_clock: trio.testing.MockClock) -> None:
    client, fake = client_with({"a": [500, 500], "b": [500, 500]})
    async with client:
        with pytest.raises(errors.InternalServerError):
            await client.acompletion("openai/a", MSGS, fallbacks=["openai/b"], deadline=0.6,
                                     max_retries=3)
    # a: 0 and 0.5 (the next back-off, 1 s, would end after the deadline); b: 0.5 only
    assert seen(fake) == [("a", 0.0), ("a", 0.5), ("b", 0.5)]
