"""``aembedding``: request shape, base64 decoding, batching in order under the limits, mock."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.testing import FakeLLM


def openai_answer(inputs: list[str], b64: bool = False) -> dict[str, object]:
    def vec(text: str) -> object:
        floats = [float(len(text)), 0.5, -1.0]
        if b64:
            return base64.b64encode(struct.pack("<3f", *floats)).decode()
        return floats

    return {"object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": i, "embedding": vec(t)}
                     for i, t in enumerate(inputs)],
            "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}}


async def test_request_shape_and_parsing() -> None:
    fake = FakeLLM()
    fake.on().respond(lambda req: openai_answer(
        req.params["input"] if isinstance(req.params["input"], list) else [req.params["input"]],
        req.params.get("encoding_format") == "base64"))
    async with trillm.Client(transport=fake.transport(), api_key="sk-test") as c:
        r = await c.aembedding("text-embedding-3-small", ["hello", "hi"], dimensions=3)
        b = await c.aembedding("openai/text-embedding-3-small", "hey", encoding_format="base64")
    first = fake.requests[0]
    assert (first.provider, first.operation, first.path) == ("openai", "embeddings",
                                                             "/v1/embeddings")
    assert first.headers["host"] == "api.openai.com"
    assert json.loads(first.body) == {"model": "text-embedding-3-small",
                                      "input": ["hello", "hi"], "dimensions": 3,
                                      "encoding_format": "base64"}  # by default
    assert [e.embedding for e in r.data] == [(5.0, 0.5, -1.0), (2.0, 0.5, -1.0)]
    assert r["data"][1]["index"] == 1
    assert r.usage is not None and r.usage.total_tokens == 2
    assert b.data[0].embedding == (3.0, 0.5, -1.0)  # base64 float32 decoded for you


@pytest.mark.parametrize("chosen", ["float", "base64"])
async def test_the_callers_encoding_format_is_kept(chosen: str) -> None:
    fake = FakeLLM()
    fake.on().respond(lambda request: openai_answer(json.loads(request.body)["input"],
                                                    chosen == "base64"))
    async with trillm.Client(transport=fake.transport(), api_key="sk-test") as c:
        r = await c.aembedding("openai/text-embedding-3-small", ["abcd"],
                               encoding_format=chosen)
        via_extra = await c.aembedding("openai/text-embedding-3-small", ["abcd"],
                                       extra_body={"encoding_format": chosen})
    sent = [json.loads(q.body) for q in fake.requests]
    assert [b["encoding_format"] for b in sent] == [chosen, chosen]
    assert r.data[0].embedding == via_extra.data[0].embedding == (4.0, 0.5, -1.0)


async def test_base64_vectors_decode_to_the_floats_json_would_give() -> None:
    # float32 on the wire either way: base64 carries the same values in fewer bytes.
    floats = [0.1, -2.5e-3, 3.0e7, 1.0 / 3.0]
    packed = struct.pack("<4f", *floats)
    as_json = list(struct.unpack("<4f", packed))  # what float32 values print as floats

    def answer(request: Any) -> Any:
        b64 = json.loads(request.body)["encoding_format"] == "base64"
        vec: object = base64.b64encode(packed).decode() if b64 else as_json
        return {"object": "list", "model": "m", "data": [
            {"object": "embedding", "index": 0, "embedding": vec}]}

    fake = FakeLLM()
    fake.on().respond(answer)
    async with trillm.Client(transport=fake.transport(), api_key="sk-test") as c:
        default = await c.aembedding("openai/text-embedding-3-small", "x")
        plain = await c.aembedding("openai/text-embedding-3-small", "x", encoding_format="float")
    assert default.data[0].embedding == plain.data[0].embedding == tuple(as_json)
    assert all(type(x) is float for x in default.data[0].embedding)
    assert [json.loads(q.body)["encoding_format"] for q in fake.requests] == ["base64", "float"]


async def test_10000_inputs_in_batches_of_2048_two_at_a_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on().respond(lambda req: openai_answer(req.params["input"]), delay=1)
    inputs = [f"text number {i}" for i in range(10_000)]
    async with trillm.Client(transport=fake.transport(), api_key="sk-test",
                             max_concurrency=2) as client:
        r = await client.aembedding("openai/text-embedding-3-small", inputs)
    assert sorted(len(q.params["input"]) for q in fake.requests) == [1808, 2048, 2048, 2048,
                                                                     2048]
    assert [q.started_at for q in fake.requests] == [0, 0, 1, 1, 2]  # two in flight at most
    assert trio.current_time() == 3.0  # 5 batches, 2 at a time
    assert [e.index for e in r.data] == list(range(10_000))
    assert [e.embedding[0] for e in r.data] == [float(len(t)) for t in inputs]  # in order
    assert r.usage is not None and r.usage.total_tokens == 10_000


async def test_a_failing_batch_raises_one_bare_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeLLM()
    fake.on(when=lambda req: req.params["input"][0] == "t2048").fail(
        400, body={"error": {"message": "bad input"}})
    fake.on().respond(lambda req: openai_answer(req.params["input"]), delay=5)
    async with trillm.Client(transport=fake.transport(), api_key="k") as client:
        with pytest.raises(errors.BadRequestError, match="bad input"):
            await client.aembedding("openai/text-embedding-3-small",
                                    [f"t{i}" for i in range(5000)])
    assert trio.current_time() == 0.0  # the others were cancelled at once
    assert len(fake.requests) == 3
    assert [q.status for q in fake.requests if q.rule == 0] == [400]
    assert all(q.cancelled_by_client for q in fake.requests if q.rule == 1)


async def test_mock_embeddings_are_deterministic_offline() -> None:
    a = await trillm.aembedding("mock/embed", ["same text", "other"], dimensions=4)
    b = await trillm.aembedding("mock/embed", "same text", dimensions=4)
    assert a.data[0].embedding == b.data[0].embedding
    assert a.data[0].embedding != a.data[1].embedding
    assert len(a.data[0].embedding) == 4
    assert abs(sum(x * x for x in a.data[0].embedding) - 1.0) < 1e-9
    with pytest.raises(errors.RateLimitError):
        await trillm.aembedding("mock/embed", "x", max_retries=0,
                                mock_response=errors.RateLimitError("slow"))


async def test_bad_input_is_refused_before_any_traffic() -> None:
    async with trillm.Client() as client:
        with trio.testing.assert_checkpoints(), pytest.raises(errors.BadRequestError):
            await client.aembedding("mock/embed", [])
        with pytest.raises(errors.BadRequestError, match=r"input\[1\]"):
            await client.aembedding("mock/embed", ["ok", 3])  # type: ignore[list-item]
        with pytest.raises(errors.BadRequestError, match="not available"):
            await client.aembedding("anthropic/claude-3-5-haiku-latest", "x", api_key="k")


async def test_azure_embeddings_use_the_deployment_url(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeLLM()
    async with trillm.Client(transport=fake.transport(), api_key="k",
                             api_base="https://r.openai.azure.com") as client:
        r = await client.aembedding("azure/emb", "x")
    (sent,) = fake.requests
    assert sent.headers["host"] == "r.openai.azure.com"
    assert sent.path.startswith("/openai/deployments/emb/embeddings?")
    assert (sent.provider, sent.model, sent.operation) == ("azure", "emb", "embeddings")
    assert len(r.data) == 1


async def test_gemini_batch_embed_contents(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().respond(lambda req: {"embeddings": [
        {"values": [float(len(r["content"]["parts"][0]["text"])), 1.0]}
        for r in req.params["requests"]]})
    texts = [f"t{i}" for i in range(250)]
    async with trillm.Client(transport=fake.transport(), api_key="g-key") as client:
        r = await client.aembedding("gemini/text-embedding-004", texts, dimensions=2)
    assert len(fake.requests) == 3  # batches of 100, 100 and 50
    first = next(q for q in fake.requests if b'"t0"' in q.body)
    assert first.headers["host"] == "generativelanguage.googleapis.com"
    assert first.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert first.sent_secret("x-goog-api-key", "g-key")
    one = json.loads(first.body)["requests"][0]
    assert one == {"model": "models/text-embedding-004", "content": {"parts": [{"text": "t0"}]},
                   "outputDimensionality": 2}
    assert [e.embedding[0] for e in r.data] == [float(len(t)) for t in texts]
    assert r.usage is None
