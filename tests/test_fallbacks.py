"""``fallbacks=[...]``: the next model after a retryable or context-window failure."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
import trio.testing

import trillm
from trillm import errors

MSGS = [{"role": "user", "content": "x"}]


def answer(model: str, text: str = "ok") -> dict[str, object]:
    return {"id": "1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}]}


def client_with(statuses: dict[str, list[int]], seen: list[tuple[str, float]]) -> trillm.Client:
    """Each model answers with its list of statuses in turn (then 200)."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        model = body["model"]
        seen.append((model, trio.current_time()))
        queue = statuses.get(model, [])
        status = queue.pop(0) if queue else 200
        if status == 200:
            if body.get("stream"):
                event = {"id": "1", "object": "chat.completion.chunk", "created": 0,
                         "model": model, "choices": [{"index": 0, "delta": {"content": model},
                                                      "finish_reason": "stop"}]}
                sse = f"data: {json.dumps(event)}\n\ndata: [DONE]\n\n".encode()
                return httpx.Response(200, headers={"content-type": "text/event-stream"},
                                      content=sse)
            return httpx.Response(200, json=answer(model, f"from {model}"))
        if status == 400:
            return httpx.Response(400, json={"error": {
                "message": "too long", "code": "context_length_exceeded"}})
        return httpx.Response(status, json={"error": {"message": f"status {status}"}})

    return trillm.Client(transport=httpx.MockTransport(handler), api_key="sk-test",
                         retry=trillm.RetryPolicy(jitter=0), max_retries=1)


async def test_falls_back_after_retries(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[tuple[str, float]] = []
    async with client_with({"a": [500, 500]}, seen) as client:
        r = await client.acompletion("openai/a", MSGS, fallbacks=["openai/b"])
    assert r.model == "b" and r.choices[0].message.content == "from b"
    assert seen == [("a", 0.0), ("a", 0.5), ("b", 0.5)]


async def test_context_window_error_falls_back_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[str, float]] = []
    async with client_with({"small": [400]}, seen) as client:
        r = await client.acompletion("openai/small", MSGS, fallbacks=["openai/large"])
    assert r.model == "large"
    assert seen == [("small", 0.0), ("large", 0.0)]


async def test_non_retryable_error_does_not_fall_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[str, float]] = []
    async with client_with({"a": [401]}, seen) as client:
        with pytest.raises(errors.AuthenticationError):
            await client.acompletion("openai/a", MSGS, fallbacks=["openai/b"])
    assert [m for m, _ in seen] == ["a"]


async def test_all_failing_raises_the_last_with_the_others_in_notes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[str, float]] = []
    async with client_with({"a": [503, 503], "b": [429, 429]}, seen) as client:
        with pytest.raises(errors.RateLimitError) as info:
            await client.acompletion("openai/a", MSGS, fallbacks=["openai/b"])
    notes = getattr(info.value, "__notes__", [])
    assert len(notes) == 1 and "openai/a failed: ServiceUnavailableError" in notes[0]


async def test_fallbacks_are_validated_before_any_traffic() -> None:
    seen: list[tuple[str, float]] = []
    async with client_with({}, seen) as client:
        with pytest.raises(errors.BadRequestError, match="nosuch"):
            await client.acompletion("openai/a", MSGS, fallbacks=["nosuch/model"])
    assert seen == []


async def test_stream_falls_back_before_the_first_chunk(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[str, float]] = []
    async with client_with({"a": [503, 503]}, seen) as client:
        async with client.stream("openai/a", MSGS, fallbacks=["openai/b"]) as s:
            text = [c.choices[0].delta.content async for c in s]
    assert text == ["b"]


async def test_deadline_spans_every_model(autojump_clock: trio.testing.MockClock) -> None:
    seen: list[tuple[str, float]] = []
    async with client_with({"a": [500, 500], "b": [500, 500]}, seen) as client:
        with pytest.raises(errors.InternalServerError):
            await client.acompletion("openai/a", MSGS, fallbacks=["openai/b"], deadline=0.6,
                                     max_retries=3)
    # a: 0 and 0.5 (the next back-off, 1 s, would end after the deadline); b: 0.5 only
    assert seen == [("a", 0.0), ("a", 0.5), ("b", 0.5)]
