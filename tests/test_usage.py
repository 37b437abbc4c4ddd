"""Usage in one shape on every provider and path, cost at given prices, per-model totals.

The per-provider mapping runs each provider's own parse step on recorded-style
payloads (tests/fixtures/<provider>/), plain and streamed, and reads the result
through ``token_counts``; then cost and ``Client(prices=)`` end to end.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.accumulate import stream_chunk_builder
from trillm.providers.anthropic import PROVIDER as ANTHROPIC
from trillm.providers.gemini import PROVIDER as GEMINI
from trillm.providers.openai import PROVIDER as OPENAI
from trillm.response_types import ResponsesRequest
from trillm.sse import SSEDecoder
from trillm.testing import FakeLLM
from trillm.types import ChatRequest, EmbeddingRequest, Usage
from trillm.usage import Prices, TokenCounts, UsageTotals, cost, token_counts, usage_of

FIXTURES = Path(__file__).parent / "fixtures"
MSGS = ({"role": "user", "content": "hi"},)


def fixture(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / name).read_bytes()


def chat(provider: str, model: str, stream: bool = False) -> ChatRequest:
    return ChatRequest(provider, model, MSGS, stream=stream)


def streamed(provider: Any, req: ChatRequest, raw: bytes) -> Any:
    parser = provider.stream_parser(req, None)
    chunks = [c for e in SSEDecoder().feed(raw) if (c := parser.feed(e)) is not None]
    return stream_chunk_builder(chunks).usage


# ---------------------------------------------------------------- the mapping per provider


def test_openai_details_plain() -> None:
    body = {"id": "c", "object": "chat.completion", "created": 0, "model": "o3-mini",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "x"}}],
            "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
                      "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 256}}}
    r = OPENAI.parse_chat(json.dumps(body).encode(), chat("openai", "o3-mini"), None)
    assert token_counts(r.usage) == TokenCounts(1200, 300, 1500, 1024, 0, 256)


def test_openai_streamed_usage_chunk() -> None:
    req = chat("openai", "gpt-4o-mini", stream=True)
    usage = streamed(OPENAI, req, fixture("openai", "stream_text.sse"))
    c = token_counts(usage)
    assert c.total == c.input + c.output > 0


def test_openai_embeddings() -> None:
    body = {"object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "usage": {"prompt_tokens": 8, "total_tokens": 8}}
    req = EmbeddingRequest("openai", "text-embedding-3-small", ("hello",))
    r = OPENAI.parse_embedding(json.dumps(body).encode(), req, None, offset=0, count=1)
    assert token_counts(r.usage) == TokenCounts(8, 0, 8)


def test_anthropic_cache_reads_and_writes_plain() -> None:
    r = ANTHROPIC.parse_chat(fixture("anthropic", "message_tool_use.json"),
                             chat("anthropic", "claude-3-5-sonnet-20241022"), None)
    # prompt tokens include the cache reads and writes, as OpenAI's do
    assert token_counts(r.usage) == TokenCounts(472 + 1024 + 2048, 91, 472 + 1024 + 2048 + 91,
                                                2048, 1024, 0)


def test_anthropic_cache_tokens_streamed() -> None:
    start = {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [], "stop_reason": None,
        "usage": {"input_tokens": 10, "cache_read_input_tokens": 300,
                  "cache_creation_input_tokens": 50, "output_tokens": 1}}}
    events = [
        start,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text",
                                                                      "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta",
                                                              "text": "hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"output_tokens": 12}},
        {"type": "message_stop"},
    ]
    raw = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
    usage = streamed(ANTHROPIC, chat("anthropic", "claude-x", True), raw)
    assert token_counts(usage) == TokenCounts(360, 12, 372, 300, 50, 0)


def test_gemini_thoughts_and_cached_content() -> None:
    r = GEMINI.parse_chat(fixture("gemini", "thinking.json"), chat("gemini", "gemini-2.5-flash"),
                          None)
    assert token_counts(r.usage) == TokenCounts(10, 35, 45, 0, 0, 28)
    body = json.loads(fixture("gemini", "generate_content.json"))
    body["usageMetadata"] = {"promptTokenCount": 4000, "cachedContentTokenCount": 3000,
                             "candidatesTokenCount": 20, "totalTokenCount": 4020}
    r = GEMINI.parse_chat(json.dumps(body).encode(), chat("gemini", "gemini-2.0-flash"), None)
    assert token_counts(r.usage) == TokenCounts(4000, 20, 4020, 3000, 0, 0)


def test_gemini_thoughts_streamed() -> None:
    req = chat("gemini", "gemini-2.5-flash", stream=True)
    usage = streamed(GEMINI, req, fixture("gemini", "stream_thinking.sse"))
    assert token_counts(usage) == TokenCounts(10, 35, 45, 0, 0, 28)


def test_responses_usage() -> None:
    req = ResponsesRequest("openai", "o3", "hi")
    r = OPENAI.parse_responses(fixture("openai", "responses_reasoning.json"), req, None)
    c = token_counts(r.usage)
    assert (c.input, c.output, c.total) == (r.usage.input_tokens, r.usage.output_tokens,
                                            r.usage.total_tokens)
    assert c.reasoning == r.usage.output_tokens_details.reasoning_tokens > 0
    as_chat = usage_of(r.usage)
    assert isinstance(as_chat, Usage)
    assert as_chat.completion_tokens_details == {"reasoning_tokens": c.reasoning}


def test_dict_forms_and_nothing() -> None:
    assert token_counts(None) == TokenCounts()
    assert token_counts({"prompt_tokens": 3, "completion_tokens": 4}) == TokenCounts(3, 4, 7)
    assert token_counts({"input_tokens": 3, "output_tokens": 4,
                         "input_tokens_details": {"cached_tokens": 2}}) == TokenCounts(
        3, 4, 7, 2)


# ---------------------------------------------------------------- cost


def test_cost_per_kind() -> None:
    prices = Prices(input=2.0, output=8.0, cached_input=0.5, cache_write=2.5)
    usage = Usage(1_000_000 + 200_000 + 100_000, 500_000, 0,
                  {"cached_tokens": 200_000, "cache_creation_tokens": 100_000},
                  {"reasoning_tokens": 100_000})
    # 1M plain at 2, 0.2M cached at 0.5, 0.1M written at 2.5, 0.5M output at 8
    assert cost(usage, prices) == pytest.approx(2.0 + 0.1 + 0.25 + 4.0)
    assert cost(usage, Prices(input=1, output=1)) == pytest.approx(1.3 + 0.5)
    assert cost(None, prices) == 0


@pytest.mark.parametrize("bad", [-1, "1", True, None])
def test_prices_are_checked(bad: Any) -> None:
    with pytest.raises(ValueError, match="per million"):
        Prices(input=bad, output=1)


def test_totals_add_up() -> None:
    t = UsageTotals()
    t.add("a/m", TokenCounts(10, 5, 15, 4, 1, 2), 0.5, False)
    t.add("a/m", None, None, True)
    t.add("b/m", TokenCounts(1, 1, 2), None, False)
    snap = t.snapshot()
    assert snap["a/m"] == trillm.ModelTotals(2, 1, 10, 5, 15, 4, 1, 2, 0.5)
    assert snap["b/m"].cost is None
    t.clear()
    assert t.snapshot() == {}


# ---------------------------------------------------------------- Client(prices=)


def answer(usage: dict[str, Any]) -> FakeLLM:
    """A fake answering "ok" with the hand-written *usage* (model "broken": a 400)."""
    fake = FakeLLM()
    fake.on(model="broken").fail(400, body={"error": {"message": "no"}})
    fake.on().respond(lambda req: {
        "id": "c", "object": "chat.completion", "created": 0, "model": req.model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "ok"}}],
        "usage": usage})
    return fake


async def test_client_prices_put_cost_on_answers_and_keep_totals() -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
             "prompt_tokens_details": {"cached_tokens": 600}}
    prices = {"openai/gpt-4o-mini": Prices(input=0.15, output=0.6, cached_input=0.075)}
    fake = answer(usage)
    async with trillm.Client(transport=fake.transport(), api_key="k", prices=prices) as c:
        r = await c.acompletion("openai/gpt-4o-mini", list(MSGS))
        await c.acompletion("openai/gpt-4o-mini", list(MSGS))
        other = await c.acompletion("openai/gpt-4o", list(MSGS))
        with pytest.raises(errors.BadRequestError):
            await c.acompletion("openai/broken", list(MSGS))
        totals = c.usage_totals()
    expected = (400 * 0.15 + 600 * 0.075 + 500 * 0.6) / 1e6
    assert r.cost == pytest.approx(expected)
    assert r["cost"] == pytest.approx(expected) and r.to_dict()["cost"] == r.cost
    assert other.cost is None and "cost" not in other
    mini = totals["openai/gpt-4o-mini"]
    assert (mini.calls, mini.errors, mini.prompt_tokens, mini.completion_tokens,
            mini.total_tokens, mini.cached_tokens) == (2, 0, 2000, 1000, 3000, 1200)
    assert mini.cost == pytest.approx(2 * expected)
    assert totals["openai/gpt-4o"].cost is None and totals["openai/gpt-4o"].calls == 1
    assert totals["openai/broken"] == trillm.ModelTotals(calls=1, errors=1)
    assert [(q.model, q.status) for q in fake.requests] == [
        ("gpt-4o-mini", 200), ("gpt-4o-mini", 200), ("gpt-4o", 200), ("broken", 400)]


async def test_no_prices_no_cost_and_no_totals() -> None:
    async with trillm.Client() as c:
        r = await c.acompletion("mock/x", list(MSGS))
        assert r.cost is None and c.usage_totals() == {}


async def test_streams_and_embeddings_and_responses_are_counted() -> None:
    prices = {"mock/x": Prices(input=1, output=2)}
    async with trillm.Client(prices=prices) as c:
        async with c.stream("mock/x", list(MSGS)) as s:
            final = await s.final_response()
        e = await c.aembedding("mock/x", ["a b", "c"])
        resp = await c.aresponses("mock/x", "hi")
        totals = c.usage_totals()["mock/x"]
    assert totals.calls == 3
    assert totals.prompt_tokens == (final.usage.prompt_tokens + e.usage.prompt_tokens
                                    + resp.usage.input_tokens)
    assert e.cost == pytest.approx(e.usage.prompt_tokens / 1e6)
    assert resp.cost == pytest.approx((resp.usage.input_tokens + 2 * resp.usage.output_tokens)
                                      / 1e6)


def sse_answer(usage: dict[str, Any]) -> Any:
    """A fake OpenAI chat stream (the kit's, in memory): two words, the finish chunk, the
    usage chunk, [DONE]."""
    base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini"}
    events = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "o"}}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "k"}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": usage},
    ]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    fake = FakeLLM()
    fake.on().respond([body.encode()], headers={"content-type": "text/event-stream"})
    return fake.transport()


class CostSeen:
    """A hook keeping the cost each call ended with."""

    def __init__(self) -> None:
        self.costs: list[float | None] = []

    def on_call_end(self, state: Any, result: Any) -> None:
        self.costs.append(result.cost)


@pytest.mark.parametrize("how", ["stream", "acompletion"])
async def test_a_streamed_answer_carries_its_cost(how: str) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
             "prompt_tokens_details": {"cached_tokens": 600}}
    prices = {"openai/gpt-4o-mini": Prices(input=0.15, output=0.6, cached_input=0.075)}
    seen = CostSeen()
    async with trillm.Client(transport=sse_answer(usage), api_key="k", prices=prices,
                             hooks=[seen]) as c:
        if how == "stream":
            async with c.stream("openai/gpt-4o-mini", list(MSGS)) as s:
                final = await s.final_response()
        else:
            async with await c.acompletion("openai/gpt-4o-mini", list(MSGS), stream=True) as s:
                assert "".join([ch.choices[0].delta.content or "" async for ch in s
                                if ch.choices]) == "ok"
                final = await s.final_response()  # after reading it all: the same answer
        totals = c.usage_totals()["openai/gpt-4o-mini"]
    expected = (400 * 0.15 + 600 * 0.075 + 500 * 0.6) / 1e6
    assert final.choices[0].message.content == "ok"
    assert final.cost == pytest.approx(expected)
    assert final["cost"] == final.cost
    assert seen.costs == [final.cost] and totals.cost == final.cost


async def test_a_streamed_answer_without_a_price_has_no_cost() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    async with trillm.Client(transport=sse_answer(usage), api_key="k",
                             prices={"openai/gpt-4o": Prices(input=1, output=1)}) as c:
        async with c.stream("openai/gpt-4o-mini", list(MSGS)) as s:
            final = await s.final_response()
    assert final.cost is None and "cost" not in final


async def test_a_structured_streamed_answer_carries_its_cost() -> None:
    prices = {"mock/x": Prices(input=1, output=2)}
    fmt = {"type": "json_object"}
    async with trillm.Client(prices=prices) as c:
        async with c.stream("mock/x", list(MSGS), response_format=fmt,
                            mock_response='{"a": 1}') as s:
            final = await s.final_response()
    assert final.choices[0].message.parsed == {"a": 1}
    assert final.cost == pytest.approx(
        (final.usage.prompt_tokens + 2 * final.usage.completion_tokens) / 1e6)


async def test_a_streamed_response_carries_its_cost() -> None:
    prices = {"mock/r": Prices(input=1, output=2)}
    async with trillm.Client(prices=prices) as c:
        async with c.responses_stream("mock/r", "one two three") as s:
            final = await s.final_response()
        totals = c.usage_totals()["mock/r"]
    assert final.usage.output_tokens > 0
    assert final.cost == pytest.approx(
        (final.usage.input_tokens + 2 * final.usage.output_tokens) / 1e6)
    assert totals.cost == final.cost


def test_a_streamed_answer_carries_its_cost_under_asyncio() -> None:
    # Under asyncio the stream lives in the background trio run; final_response()
    # delegates to it, cost included.
    prices = {"mock/x": Prices(input=1, output=2), "mock/r": Prices(input=3, output=4)}

    async def main() -> tuple[Any, Any]:
        async with trillm.Client(prices=prices) as c:
            async with c.stream("mock/x", list(MSGS)) as s:
                chat = await s.final_response()
            async with c.responses_stream("mock/r", "hi there") as r:
                response = await r.final_response()
        return chat, response

    chat, response = asyncio.run(main())
    assert chat.cost == pytest.approx(
        (chat.usage.prompt_tokens + 2 * chat.usage.completion_tokens) / 1e6)
    assert response.cost == pytest.approx(
        (3 * response.usage.input_tokens + 4 * response.usage.output_tokens) / 1e6)


async def test_a_cancelled_call_counts_as_an_error(
        autojump_clock: trio.testing.MockClock) -> None:
    async with trillm.Client(prices={}) as c:
        with trio.move_on_after(1):
            await c.acompletion("mock/x", list(MSGS), mock_latency=5)
        assert c.usage_totals()["mock/x"] == trillm.ModelTotals(calls=1, errors=1)


def test_prices_must_be_prices() -> None:
    with pytest.raises(TypeError, match=r"trillm\.Prices"):
        trillm.Client(prices={"openai/gpt-4o": {"input": 1}})  # type: ignore[dict-item]


@pytest.mark.parametrize("usage", [
    Usage(1200, 300, 1500, {"cached_tokens": 1024}, {"reasoning_tokens": 256}),
    Usage(360, 12, 372, {"cached_tokens": 300, "cache_creation_tokens": 50}),
    Usage(7, 3, 10, {}, None),
    Usage(None, None, None),  # type: ignore[arg-type]  # a server that sent nulls
])
def test_a_usage_record_counts_as_its_dict_form(usage: Usage) -> None:
    # token_counts reads a Usage record's fields directly (every call's answer has one);
    # the counts are those of the same usage as a plain dict.
    assert token_counts(usage) == token_counts(attrs.asdict(usage))
