"""trillm.testing.FakeLLM in memory: every verb on every wire format, plain and streamed,
on virtual time (autojump MockClock, exact times), through trillm's own Client."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import trillm
from trillm import errors
from trillm.accumulate import stream_chunk_builder
from trillm.retry import RetryPolicy
from trillm.testing import FakeLLM, UnmatchedRequest
from trillm.types import ModelResponse

KEY = "sk-test-key-0123456789"
FORMATS: dict[str, dict[str, Any]] = {
    "openai": {"model": "openai/gpt-4o-mini"},
    "anthropic": {"model": "anthropic/claude-3-5-haiku-latest"},
    "gemini": {"model": "gemini/gemini-2.0-flash"},
    "azure": {"model": "azure/my-deployment", "api_base": "https://res.openai.azure.com"},
}
WIRE = sorted(FORMATS)
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]


def bare(fmt: str) -> str:
    return str(FORMATS[fmt]["model"]).split("/", 1)[1]


def client(fake: FakeLLM, **kw: Any) -> trillm.Client:
    kw.setdefault("retry", RetryPolicy(jitter=0))
    return trillm.Client(transport=fake.transport(), api_key=KEY, **kw)


async def ask(c: trillm.Client, fmt: str, stream: bool, **kw: Any
              ) -> tuple[ModelResponse, list[tuple[float, str | None]]]:
    """The answer, and for a stream each chunk's (virtual time, content)."""
    args = {**FORMATS[fmt], "messages": MESSAGES, **kw}
    if not stream:
        return await c.acompletion(**args), []
    seen, chunks = [], []
    async with c.stream(**args) as s:
        async for chunk in s:
            chunks.append(chunk)
            seen.append((trio.current_time(), chunk.choices[0].delta.content))
    return stream_chunk_builder(chunks), seen


both = pytest.mark.parametrize("stream", [False, True], ids=["plain", "sse"])
every = pytest.mark.parametrize("fmt", WIRE)


# ---------------------------------------------------------------- reply


@every
@both
async def test_reply_text(fmt: str, stream: bool, autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(model=bare(fmt)).reply("Hello there, friend")
    async with client(fake) as c:
        r, seen = await ask(c, fmt, stream)
    assert r.choices[0].message.content == "Hello there, friend"
    assert r.choices[0].finish_reason == "stop"
    (req,) = fake.requests
    assert req.provider == fmt
    assert req.operation == "chat"
    assert req.model == bare(fmt)
    assert req.stream is stream
    assert [m["role"] for m in req.messages] == ["system", "user"]
    assert req.text == "Say hi"
    assert req.completed and not req.cancelled_by_client
    assert req.chunks_sent == (3 if stream else 1)  # a stream: one chunk per word
    if stream:
        assert "".join(t or "" for _, t in seen) == "Hello there, friend"


@every
@both
async def test_reply_tool_calls(fmt: str, stream: bool,
                                autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(model=bare(fmt)).reply(tool_calls=[
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_time", "arguments": {"tz": "CET"}},
    ])
    async with client(fake) as c:
        r, _ = await ask(c, fmt, stream)
    calls = r.choices[0].message.tool_calls
    assert calls is not None
    assert [(t.function.name, json.loads(t.function.arguments)) for t in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {"tz": "CET"})]
    assert all(t.id for t in calls)
    assert r.choices[0].finish_reason == "tool_calls"


def sent_back(fmt: str, body: bytes) -> list[tuple[str, Any, Any]]:
    """What the client sent back of the answer's tool calls, read from the raw body:
    ``("call", id, thought signature)`` and ``("result", id, name)``, in the wire's own
    fields (Anthropic ``tool_use``/``tool_result``, Gemini ``functionCall``/
    ``functionResponse`` and ``thoughtSignature``, OpenAI ``tool_calls``/``tool``)."""
    sent = json.loads(body)
    out: list[tuple[str, Any, Any]] = []
    if fmt == "anthropic":
        for turn in sent["messages"]:
            for b in turn["content"] if isinstance(turn["content"], list) else ():
                if b["type"] == "tool_use":
                    out.append(("call", b["id"], None))
                elif b["type"] == "tool_result":
                    out.append(("result", b["tool_use_id"], None))
    elif fmt == "gemini":
        for turn in sent["contents"]:
            for p in turn["parts"]:
                if "functionCall" in p:
                    out.append(("call", p["functionCall"].get("id"), p.get("thoughtSignature")))
                elif "functionResponse" in p:
                    r = p["functionResponse"]
                    out.append(("result", r.get("id"), r["name"]))
    else:
        for m in sent["messages"]:
            for t in m.get("tool_calls") or ():
                google = (t.get("extra_content") or {}).get("google") or {}
                out.append(("call", t["id"], google.get("thought_signature")))
            if m["role"] == "tool":
                out.append(("result", m["tool_call_id"], None))
    return out


@every
@both
async def test_tool_call_ids_and_thought_signatures_go_back(
        fmt: str, stream: bool, autojump_clock: trio.testing.MockClock) -> None:
    """A call's own id (Gemini 3 sends ids too) and Gemini's thought signature (on Gemini's
    wire and OpenAI's, as Google's OpenAI-compatible API sends it; Anthropic's has no place
    for it) reach the client, which sends them back with the results; a call without an id
    gets the kind the wire has (Gemini: none, trillm derives one)."""
    signature = {"google": {"thought_signature": "c2lnLTE="}}
    fake = FakeLLM()
    fake.on(when=lambda r: len(r.messages) > len(MESSAGES)).reply("done")
    fake.on().reply(tool_calls=[
        {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "own-id-7",
         "extra_content": signature},
        {"name": "get_time", "arguments": {"tz": "CET"}}])
    async with client(fake) as c:
        r, _ = await ask(c, fmt, stream)
        message = r.choices[0].message
        calls = message.tool_calls or ()
        messages = [*MESSAGES, message,
                    *({"role": "tool", "tool_call_id": t.id, "content": "ok"} for t in calls)]
        last, _ = await ask(c, fmt, stream, messages=messages)
    made = "call_0_1" if fmt == "gemini" else "call_1"
    assert [t.id for t in calls] == ["own-id-7", made]
    gemini = fmt == "gemini"
    carried = fmt != "anthropic"  # OpenAI's wire as Google's OpenAI-compatible API has it
    assert [t.extra_content for t in calls] == [signature if carried else None, None]
    assert last.choices[0].message.content == "done"
    sig = "c2lnLTE=" if carried else None
    own, derived = ("own-id-7", None) if gemini else ("own-id-7", made)
    names = ("get_weather", "get_time") if gemini else (None, None)
    assert sent_back(fmt, fake.requests[1].body) == [
        ("call", own, sig), ("call", derived, None),
        ("result", own, names[0]), ("result", derived, names[1])]


def test_tool_calls_check_their_extra_content() -> None:
    with pytest.raises(TypeError, match="extra_content"):
        FakeLLM().on().reply(tool_calls=[{"name": "f", "extra_content": "sig"}])


@every
@both
async def test_reply_json(fmt: str, stream: bool, autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(model=bare(fmt)).reply(json={"name": "Ada", "age": 36})
    async with client(fake) as c:
        r, _ = await ask(c, fmt, stream)
    assert json.loads(r.choices[0].message.content or "") == {"name": "Ada", "age": 36}


@every
@both
async def test_unmatched_requests_are_echoed(fmt: str, stream: bool,
                                             autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(model="some-other-model").reply("not me")
    async with client(fake) as c:
        r, _ = await ask(c, fmt, stream)
    assert r.choices[0].message.content == "Say hi"
    assert fake.requests[0].rule is None


# ---------------------------------------------------------------- stream, with exact times


@every
@both
async def test_stream_pieces_with_delays(fmt: str, stream: bool,
                                         autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(model=bare(fmt)).stream(["Hel", "lo", " world"], delay=0.25)
    async with client(fake) as c:
        r, seen = await ask(c, fmt, stream)
    assert r.choices[0].message.content == "Hello world"
    assert trio.current_time() == 0.75
    if stream:
        assert [(t, s) for t, s in seen if s] == [(0.25, "Hel"), (0.5, "lo"), (0.75, " world")]
    assert fake.requests[0].chunks_sent == (3 if stream else 1)


# ---------------------------------------------------------------- fail


@every
@both
async def test_fail_429_retry_after_then_answer(fmt: str, stream: bool,
                                                autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(model=bare(fmt)).fail(429, retry_after=2).fail(429, retry_after=3).reply("ok")
    async with client(fake, max_retries=3) as c:
        r, _ = await ask(c, fmt, stream)
        assert r.choices[0].message.content == "ok"
        assert [q.started_at for q in fake.requests] == [0.0, 2.0, 5.0]
        assert [q.status for q in fake.requests] == [429, 429, 200]
        r, _ = await ask(c, fmt, stream)  # the last answer repeats
    assert r.choices[0].message.content == "ok"
    assert trio.current_time() == 5.0


@every
async def test_fail_500_backs_off_and_400_does_not_retry(
    fmt: str, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeLLM()
    fake.on(model=bare(fmt)).fail(500).times(2)
    fake.on(model=bare(fmt)).fail(400)
    async with client(fake, max_retries=2) as c:
        with pytest.raises(errors.BadRequestError) as caught:
            await ask(c, fmt, False)
    assert [q.started_at for q in fake.requests] == [0.0, 0.5, 1.5]  # back-off 0.5, then 1
    assert caught.value.status_code == 400
    assert "scripted 400" in caught.value.message


@every
async def test_fail_with_a_body_of_our_own(fmt: str,
                                           autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(model=bare(fmt)).fail(status=418, body={"error": {"message": "I am a teapot"}})
    async with client(fake, max_retries=0) as c:
        with pytest.raises(errors.BadRequestError, match="teapot") as caught:
            await ask(c, fmt, True)
    assert caught.value.status_code == 418


async def test_gemini_429_carries_retry_info(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(provider="gemini").fail(429, retry_after=7)
    async with client(fake, max_retries=0) as c:
        with pytest.raises(errors.RateLimitError) as caught:
            await ask(c, "gemini", False)
    assert caught.value.retry_after == 7
    body: Any = caught.value.body
    assert body["error"]["details"][0]["retryDelay"] == "7s"


# ---------------------------------------------------------------- disconnect and hang


@every
@both
async def test_disconnect_before_the_answer_is_retried(
    fmt: str, stream: bool, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeLLM()
    fake.on(model=bare(fmt)).disconnect().reply("back")
    async with client(fake, max_retries=1) as c:
        r, _ = await ask(c, fmt, stream)
    assert r.choices[0].message.content == "back"
    assert fake.requests[0].status is None and not fake.requests[0].completed


@every
async def test_disconnect_mid_stream_is_a_stream_error(
    fmt: str, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeLLM()
    fake.on(model=bare(fmt)).disconnect(after_chunks=2, pieces=["a", "b", "c", "d"])
    got: list[str] = []
    async with client(fake, max_retries=0) as c:
        with pytest.raises(errors.StreamError):
            async with c.stream(**FORMATS[fmt], messages=MESSAGES) as s:
                async for chunk in s:
                    got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "ab"
    (req,) = fake.requests
    assert req.chunks_sent == 2 and not req.completed and not req.cancelled_by_client


@every
async def test_disconnect_mid_body_of_a_plain_answer(
    fmt: str, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeLLM()
    fake.on(model=bare(fmt)).disconnect(after_chunks=1)
    async with client(fake, max_retries=0) as c:
        with pytest.raises(errors.APIConnectionError, match="middle of the response body"):
            await ask(c, fmt, False)
    assert fake.requests[0].chunks_sent == 1


@every
@both
async def test_hang_ends_with_the_timeout_and_is_cancelled_by_the_client(
    fmt: str, stream: bool, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeLLM()
    fake.on(model=bare(fmt)).hang()
    async with client(fake, max_retries=0, timeout=3) as c:
        with pytest.raises(errors.Timeout):
            await ask(c, fmt, stream)
    assert trio.current_time() == 3.0
    (req,) = fake.requests
    assert req.cancelled_by_client and not req.completed and req.status is None


# ---------------------------------------------------------------- matching


async def test_times_then_the_next_rule(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(model="gpt-4o-mini").reply("first").reply("second").times(3)
    fake.on(model="gpt-4o-mini").reply("after")
    async with client(fake) as c:
        answers = [(await ask(c, "openai", False))[0].choices[0].message.content
                   for _ in range(5)]
    assert answers == ["first", "second", "second", "after", "after"]


async def test_first_matching_rule_wins_and_when_sees_the_request(
    autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeLLM()
    fake.on(when=lambda r: "weather" in (r.text or "")).reply("sunny")
    fake.on(model="openai/gpt-4o-mini").reply("model rule")
    fake.on(model="gpt-4o-mini").reply("never: the one above comes first")
    async with client(fake) as c:
        weather = await c.acompletion(model="openai/gpt-4o-mini",
                                      messages=[{"role": "user", "content": "weather?"}])
        other = await c.acompletion(model="openai/gpt-4o-mini", messages=MESSAGES)
    assert weather.choices[0].message.content == "sunny"
    assert other.choices[0].message.content == "model rule"
    assert [r.rule for r in fake.requests] == [0, 1]


async def test_concurrent_requests_are_answered_by_match_not_arrival(
    autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeLLM()
    for i in range(5):
        fake.on(when=lambda r, i=i: r.text == f"q{i}").reply(f"a{i}", delay=5 - i)
    async with client(fake) as c:
        jobs = [partial(c.acompletion, model="gpt-4o-mini",
                        messages=[{"role": "user", "content": f"q{i}"}]) for i in range(5)]
        results = await trillm.gather(*jobs)
    assert [r.choices[0].message.content for r in results] == [f"a{i}" for i in range(5)]
    assert trio.current_time() == 5.0


async def test_strict_mode_fails_with_a_diff_against_the_nearest_rule(
    autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeLLM(strict=True)
    fake.on(model="gpt-4o", provider="anthropic").reply("x")
    fake.on(model="gpt-4o").reply("y")
    async with client(fake, max_retries=0) as c:
        with pytest.raises(errors.InternalServerError):
            await ask(c, "openai", False)
    with pytest.raises(UnmatchedRequest) as caught:
        fake.check()
    text = str(caught.value)
    assert "model='gpt-4o-mini'" in text
    assert "nearest rule #1: fake.on(model='gpt-4o').reply('y')" in text
    assert "- model: 'gpt-4o'" in text and "+ model: 'gpt-4o-mini'" in text


async def test_strict_mode_with_no_rules_says_so() -> None:
    fake = FakeLLM(strict=True)
    async with client(fake, max_retries=0) as c:
        with pytest.raises(errors.InternalServerError, match="there are no rules"):
            await ask(c, "anthropic", False)


def test_verbs_check_their_arguments() -> None:
    fake = FakeLLM()
    with pytest.raises(TypeError, match="list of pieces"):
        fake.on().stream("abc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="after the last verb"):
        fake.on().reply("a").times(1).reply("b")
    with pytest.raises(ValueError, match=">= 0"):
        fake.on().times(-1)
    with pytest.raises(ValueError, match="seconds"):
        fake.on().reply("a", delay=-1)


# ---------------------------------------------------------------- cancellation by the client


async def test_hedge_loser_is_cancelled_by_the_client(
    autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeLLM()
    fake.on(model="gpt-4o-mini").reply("slow", delay=5).times(1)
    fake.on(model="gpt-4o-mini").reply("fast", delay=0.5)
    async with client(fake) as c:
        r = await trillm.hedge(partial(c.acompletion, model="gpt-4o-mini", messages=MESSAGES),
                               delay=1)
    assert r.choices[0].message.content == "fast"
    assert trio.current_time() == 1.5
    slow, fast = fake.requests
    assert slow.cancelled_by_client and not slow.completed
    assert fast.completed and not fast.cancelled_by_client


async def test_race_loser_stream_is_cancelled_mid_body(
    autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeLLM()
    fake.on(model="claude-3-5-haiku-latest").stream(["a", "b", "c", "d"], delay=1)
    fake.on(model="gemini-2.0-flash").stream(["x", "y"], delay=1)

    async def read(fmt: str) -> str:
        async with client(fake) as c:
            r, _ = await ask(c, fmt, True)
        return r.choices[0].message.content or ""

    assert await trillm.race(partial(read, "anthropic"), partial(read, "gemini")) == "xy"
    assert trio.current_time() == 2.0
    loser, winner = sorted(fake.requests, key=lambda r: r.provider)
    assert loser.provider == "anthropic" and loser.cancelled_by_client
    assert loser.chunks_sent == 2 and not loser.completed
    assert winner.completed and winner.chunks_sent == 2


async def test_leaving_a_stream_early_is_recorded(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on().stream(["a", "b", "c"], delay=1)
    async with client(fake) as c, c.stream(model="gpt-4o-mini", messages=MESSAGES) as s:
        async for chunk in s:
            if chunk.choices[0].delta.content:
                break
    (req,) = fake.requests
    assert req.cancelled_by_client and req.chunks_sent == 1


# ---------------------------------------------------------------- assertions


async def test_requests_and_assert_called(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    async with client(fake) as c:
        await ask(c, "openai", False, temperature=0.5)
        await ask(c, "openai", True)
        await ask(c, "gemini", False, temperature=0.1)
    assert len(fake.assert_called(model="gpt-4o-mini", times=2)) == 2
    fake.assert_called(model="gemini/gemini-2.0-flash")
    fake.assert_called(provider="anthropic", times=0)
    with pytest.raises(AssertionError, match=r"expected a call \(model='claude'\) at least once"):
        fake.assert_called(model="claude")
    with pytest.raises(AssertionError, match="got 2"):
        fake.assert_called(model="gpt-4o-mini", times=3)
    first, _, gem = fake.requests
    assert first.params["temperature"] == 0.5
    assert gem.params["generationConfig"] == {"temperature": 0.1}
    assert json.loads(first.body)["messages"][1] == {"role": "user", "content": "Say hi"}


@every
async def test_secrets_are_redacted_in_recorded_headers(
    fmt: str, autojump_clock: trio.testing.MockClock
) -> None:
    fake = FakeLLM()
    async with client(fake) as c:
        await ask(c, fmt, False)
    (req,) = fake.requests
    assert KEY not in json.dumps(dict(req.headers)) and KEY not in req.path
    secret = {"openai": "authorization", "azure": "api-key", "anthropic": "x-api-key",
              "gemini": "x-goog-api-key"}[fmt]
    assert req.headers[secret] == "[REDACTED]"


# ---------------------------------------------------------------- the other operations


@pytest.mark.parametrize("fmt", ["openai", "gemini"])
async def test_embeddings(fmt: str, autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    model = {"openai": "openai/text-embedding-3-small", "gemini": "gemini/text-embedding-004"}
    async with client(fake) as c:
        r = await c.aembedding(model=model[fmt], input=["a", "b", "a"])
    vectors = [e.embedding for e in r.data]
    assert len(vectors) == 3 and vectors[0] == vectors[2] != vectors[1]
    assert fake.requests[0].operation == "embeddings"


async def test_images_audio_and_models(autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeLLM()
    fake.on(operation="transcription").reply("hello from the audio")
    async with client(fake) as c:
        img = await c.aimage_generation(model="dall-e-3", prompt="a cat", n=2,
                                        response_format="b64_json")
        text = await c.atranscription(model="whisper-1", file=b"RIFF....WAVE")
        speech = await c.aspeech(model="tts-1", input="hi", voice="alloy")
        models = await c.alist_models("openai")
    assert len(img.data) == 2 and img.data[0].b64_json
    assert text.text == "hello from the audio"
    assert speech.content[:4] == b"RIFF"
    assert [m.id for m in models.data] == ["fake-chat", "fake-embedding"]
    assert [r.operation for r in fake.requests] == ["images", "transcription", "speech", "models"]
    assert fake.requests[1].model == "whisper-1"
    assert fake.requests[1].params["file"] == "audio"


async def test_plain_httpx_client_on_the_transport() -> None:
    fake = FakeLLM()
    fake.on().fail(404)
    async with httpx.AsyncClient(transport=fake.transport(), base_url="http://fake") as h:
        r = await h.post("/v1/chat/completions", json={"model": "m", "messages": []})
        unknown = await h.get("/nothing/here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert unknown.status_code == 404  # a rule's fail comes first, even for unknown paths


def test_import_trillm_does_not_import_the_kit() -> None:
    code = "import sys, trillm; print(any(m.startswith('trillm.testing') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@every
@both
async def test_fail_with_a_body_and_reply_json_streamed_too(
    fmt: str, stream: bool, autojump_clock: trio.testing.MockClock
) -> None:
    """``fail(500)``, ``fail(status=, body=)`` and ``reply(json=)`` on every wire format, a
    stream request included, with ``times(n)`` handing over to the next rule."""
    fake = FakeLLM()
    fake.on(model=bare(fmt)).fail(500).fail(status=400, body={
        "error": {"message": "no such thing", "type": "invalid_request_error"}}).reply(
        json={"city": "Paris"}).times(3)
    fake.on(model=bare(fmt)).reply("after the first rule")
    async with client(fake, max_retries=0) as c:
        with pytest.raises(errors.InternalServerError):
            await ask(c, fmt, stream)
        with pytest.raises(errors.BadRequestError, match="no such thing"):
            await ask(c, fmt, stream)
        answered, _ = await ask(c, fmt, stream)
        after, _ = await ask(c, fmt, stream)
    assert json.loads(answered.choices[0].message.content or "") == {"city": "Paris"}
    assert after.choices[0].message.content == "after the first rule"
    assert [q.status for q in fake.requests] == [500, 400, 200, 200]
    assert [q.rule for q in fake.requests] == [0, 0, 0, 1]
