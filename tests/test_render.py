"""The providers' render steps are the inverse of their parse steps (property tests).

For each provider: ``parse_chat(render_chat(x)) == x`` for every answer *x* the
provider can express, and the rendered SSE events, cut at arbitrary byte
boundaries and read by the real SSE decoder and the provider's stream parser,
accumulate to *x* again.  Plus the other operations (embeddings, images,
transcriptions, models) and error bodies.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trillm import errors
from trillm.accumulate import stream_chunk_builder
from trillm.providers import anthropic, gemini, openai
from trillm.providers.base import ProviderConfig
from trillm.providers.render import response_chunks, sse_event, words
from trillm.sse import SSEDecoder
from trillm.types import (
    ChatRequest,
    Choice,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    FunctionCall,
    ImageObject,
    ImageRequest,
    ImageResponse,
    Message,
    ModelInfo,
    ModelList,
    ModelResponse,
    ModelsRequest,
    StreamChunk,
    ToolCall,
    TranscriptionRequest,
    TranscriptionResponse,
    Usage,
)

TEXT = st.text(max_size=40)
SOME_TEXT = st.text(min_size=1, max_size=40)
NAME = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
SMALL = st.integers(0, 10_000)
ARGS = st.dictionaries(NAME, st.one_of(st.integers(-5, 5), TEXT, st.booleans()), max_size=3).map(
    json.dumps)
LOGPROBS = st.one_of(st.none(), st.builds(
    lambda ts: {"content": [{"token": t, "logprob": -0.5, "bytes": None, "top_logprobs": []}
                            for t in ts]}, st.lists(SOME_TEXT, min_size=1, max_size=3)))


def _cfg(name: str) -> ProviderConfig:
    return ProviderConfig(name=name, api_base="http://x")


def _req(provider: str) -> ChatRequest:
    return ChatRequest(provider, "requested-model", ({"role": "user", "content": "hi"},))


# ---------------------------------------------------------------- answers each provider can say


@st.composite
def openai_answers(draw: st.DrawFn) -> ModelResponse:
    choices = []
    for i in range(draw(st.integers(1, 3))):
        calls = draw(st.one_of(st.none(), st.lists(st.builds(
            lambda tid, name, args: ToolCall(tid, FunctionCall(name, args)),
            SOME_TEXT, TEXT, ARGS), min_size=1, max_size=3).map(tuple)))
        message = Message("assistant", draw(st.one_of(st.none(), TEXT)), calls,
                          draw(st.one_of(st.none(), SOME_TEXT)), draw(st.one_of(st.none(), TEXT)))
        finish = draw(st.one_of(st.none(), st.sampled_from(
            ["stop", "length", "tool_calls", "content_filter"])))
        choices.append(Choice(i, message, finish, draw(LOGPROBS)))
    usage = draw(st.one_of(st.none(), st.builds(
        Usage, SMALL, SMALL, SMALL,
        st.one_of(st.none(), st.fixed_dictionaries({"cached_tokens": SMALL})),
        st.one_of(st.none(), st.fixed_dictionaries({"reasoning_tokens": SMALL})))))
    return ModelResponse(draw(TEXT), draw(SMALL), draw(SOME_TEXT), tuple(choices), usage,
                         system_fingerprint=draw(st.one_of(st.none(), SOME_TEXT)))


@st.composite
def anthropic_answers(draw: st.DrawFn) -> ModelResponse:
    calls = draw(st.one_of(st.none(), st.lists(st.builds(
        lambda tid, name, args: ToolCall(tid, FunctionCall(name, args)),
        SOME_TEXT, TEXT, ARGS), min_size=1, max_size=3).map(tuple)))
    content = draw(st.one_of(st.none(), SOME_TEXT) if calls else TEXT)
    finish = draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter"]))
    # Anthropic's content_filter is its refusal stop, which sets message.refusal
    message = Message("assistant", content, calls, draw(st.one_of(st.none(), SOME_TEXT)),
                      anthropic.REFUSAL if finish == "content_filter" else None)
    read, write, fresh = draw(SMALL), draw(SMALL), draw(SMALL)
    completion = draw(SMALL)
    usage = draw(st.one_of(st.none(), st.just(Usage(
        read + write + fresh, completion, read + write + fresh + completion,
        {"cached_tokens": read, "cache_creation_tokens": write}))))
    return ModelResponse(draw(TEXT), 0, draw(SOME_TEXT), (Choice(0, message, finish),), usage)


GEMINI_ID = st.text("abcdef0123456789", min_size=8, max_size=8)
SIGNATURE = st.text("ABCDEFabcdef0123456789+/", min_size=1, max_size=12).map(
    lambda sig: {"google": {"thought_signature": sig}})


@st.composite
def gemini_answers(draw: st.DrawFn) -> ModelResponse:
    choices = []
    for i in range(draw(st.integers(1, 3))):
        n_calls = draw(st.integers(0, 3))
        # Gemini's own ids or the ones the parser derives; thought signatures or none
        calls = tuple(ToolCall(draw(st.one_of(st.just(f"call_{i}_{k}"), GEMINI_ID)),
                               FunctionCall(draw(NAME), draw(ARGS)), "function",
                               draw(st.one_of(st.none(), SIGNATURE)))
                      for k in range(n_calls)) or None
        content = draw(st.one_of(st.none(), SOME_TEXT) if calls else TEXT)
        message = Message("assistant", content, calls, draw(st.one_of(st.none(), SOME_TEXT)))
        finish = draw(st.sampled_from(["tool_calls" if calls else "stop", "length",
                                       "content_filter"]))
        choices.append(Choice(i, message, finish))
    thoughts, candidates = draw(SMALL), draw(SMALL)
    cached = draw(st.integers(0, 100))
    usage = draw(st.one_of(st.none(), st.builds(
        lambda p, total: Usage(p, candidates + thoughts, total,
                               {"cached_tokens": cached} if cached else None,
                               {"reasoning_tokens": thoughts} if thoughts else None),
        SMALL, SMALL)))
    return ModelResponse(draw(TEXT), 0, draw(SOME_TEXT), tuple(choices), usage)


PROVIDERS: dict[str, tuple[Any, Callable[[], st.SearchStrategy[ModelResponse]]]] = {
    "openai": (openai.PROVIDER, openai_answers),
    "anthropic": (anthropic.PROVIDER, anthropic_answers),
    "gemini": (gemini.PROVIDER, gemini_answers),
}


def _cut(text: str, cuts: Sequence[int]) -> list[str]:
    edges = [0, *sorted(c % (len(text) + 1) for c in cuts), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(edges) if b > a]


def _read_stream(provider: Any, wire: bytes, cuts: Sequence[int], req: ChatRequest
                 ) -> tuple[list[StreamChunk], Any]:
    edges = [0, *sorted(c % (len(wire) + 1) for c in cuts), len(wire)]
    decoder, parser = SSEDecoder(), provider.stream_parser(req, _cfg(provider.name))
    events = [e for a, b in itertools.pairwise(edges) for e in decoder.feed(wire[a:b])]
    events += decoder.close()
    chunks = [c for c in map(parser.feed, events) if c is not None]
    return chunks, parser


# ---------------------------------------------------------------- chat, plain and streamed


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_parse_of_render_is_identity(name: str, data: st.DataObject) -> None:
    provider, answers = PROVIDERS[name]
    x = data.draw(answers())
    req = _req(name)
    assert provider.parse_chat(provider.render_chat(x), req, _cfg(name)) == x


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@settings(max_examples=150, deadline=None)
@given(data=st.data(), wire_cuts=st.lists(st.integers(0, 10**6), max_size=12),
       text_cuts=st.lists(st.integers(0, 10**6), max_size=6))
def test_rendered_stream_accumulates_to_the_answer(
    name: str, data: st.DataObject, wire_cuts: list[int], text_cuts: list[int]
) -> None:
    provider, answers = PROVIDERS[name]
    x = data.draw(answers())
    chunks = response_chunks(x, lambda text: _cut(text, text_cuts))
    wire = b"".join(provider.render_chat_stream(chunks))
    got, parser = _read_stream(provider, wire, wire_cuts, _req(name))
    assert stream_chunk_builder(got) == x
    assert parser.done
    assert parser.finished == all(c.finish_reason is not None for c in x.choices)


def test_response_chunks_accumulate_to_the_response() -> None:
    x = ModelResponse("id", 5, "m", (Choice(0, Message(content="a b c"), "stop"),),
                      Usage(1, 2, 3))
    chunks = response_chunks(x)
    assert [c.choices[0].delta.content for c in chunks[1:4]] == ["a", " b", " c"]
    assert chunks[-1].usage == Usage(1, 2, 3)
    assert stream_chunk_builder(chunks) == x


@given(TEXT)
def test_words_lose_nothing(text: str) -> None:
    pieces = words(text)
    assert "".join(pieces) == text
    assert all(pieces)


def test_openai_stream_has_done_and_a_choiceless_usage_chunk() -> None:
    x = ModelResponse("c1", 1, "gpt", (Choice(0, Message(content="hi"), "stop"),), Usage(1, 1, 2))
    events = openai.PROVIDER.render_chat_stream(response_chunks(x))
    assert events[-1] == b"data: [DONE]\n\n"
    assert json.loads(events[-2].removeprefix(b"data: "))["choices"] == []
    assert openai.PROVIDER.render_chat_stream([], end=False) == []


def test_anthropic_stream_is_the_full_event_sequence() -> None:
    x = ModelResponse("msg_1", 0, "claude", (Choice(0, Message(
        content="Hi there", reasoning_content="hmm",
        tool_calls=(ToolCall("toolu_1", FunctionCall("f", '{"a": 1}')),)), "tool_calls"),),
        Usage(10, 5, 15, {"cached_tokens": 2, "cache_creation_tokens": 3}))
    events = anthropic.PROVIDER.render_chat_stream(response_chunks(x))
    names = [e.split(b"\n", 1)[0].decode() for e in events]
    assert names == ["event: " + n for n in [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_stop",  # thinking
        "content_block_start", "content_block_delta", "content_block_delta",  # text
        "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta",  # tool_use
        "content_block_stop",
        "message_delta", "message_stop"]]
    start = json.loads(events[0].split(b"data: ", 1)[1])
    assert start["message"]["usage"] == {"input_tokens": 5, "cache_creation_input_tokens": 3,
                                         "cache_read_input_tokens": 2, "output_tokens": 1}
    tool = json.loads(events[8].split(b"data: ", 1)[1])
    assert tool["content_block"] == {"type": "tool_use", "id": "toolu_1", "name": "f",
                                     "input": {}}
    assert json.loads(events[-2].split(b"data: ", 1)[1])["delta"]["stop_reason"] == "tool_use"
    cut = anthropic.PROVIDER.render_chat_stream(response_chunks(x), end=False)
    assert b"message_stop" not in b"".join(cut)


def test_gemini_sends_function_calls_whole_with_the_finish_reason() -> None:
    x = ModelResponse("r", 0, "gemini-2.0", (Choice(0, Message(
        tool_calls=(ToolCall("call_0_0", FunctionCall("get", '{"city": "Paris"}')),)),
        "tool_calls"),))
    events = gemini.PROVIDER.render_chat_stream(response_chunks(x))
    bodies = [json.loads(e.removeprefix(b"data: ")) for e in events]
    assert bodies == [{"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get", "args": {"city": "Paris"}}}]}, "index": 0,
        "finishReason": "STOP"}], "modelVersion": "gemini-2.0", "responseId": "r"}]


def test_sse_event_framing() -> None:
    assert sse_event({"a": 1}) == b'data: {"a":1}\n\n'
    assert sse_event("[DONE]", "done") == b"event: done\ndata: [DONE]\n\n"


# ---------------------------------------------------------------- the other operations


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(-1, 1, width=32), min_size=1, max_size=4), min_size=1,
                max_size=4), SMALL)
def test_embeddings_round_trip(vectors: list[list[float]], tokens: int) -> None:
    data = tuple(Embedding(i, tuple(v)) for i, v in enumerate(vectors))
    x = EmbeddingResponse(data, "emb", Usage(tokens, 0, tokens))
    req = EmbeddingRequest("openai", "emb", ("a",) * len(vectors))
    body = openai.PROVIDER.render_embedding(x)
    assert openai.PROVIDER.parse_embedding(body, req, count=len(vectors)) == x
    gx = EmbeddingResponse(data, "emb", None)
    gbody = gemini.PROVIDER.render_embedding(gx)
    assert gemini.PROVIDER.parse_embedding(gbody, req, count=len(vectors)) == gx


def test_images_transcriptions_and_models_round_trip() -> None:
    p = openai.PROVIDER
    img = ImageResponse(7, (ImageObject(url="http://x/1.png", revised_prompt="cat"),
                            ImageObject(b64_json="aGk=")))
    assert p.parse_image(p.render_image(img), ImageRequest("openai", "dall-e-3", "cat")) == img
    tr = TranscriptionResponse("hello", "english", 1.5, [{"id": 0, "text": "hello"}])
    treq = TranscriptionRequest("openai", "whisper-1", ("a.wav", b"", "audio/wav"))
    assert p.parse_transcription(p.render_transcription(tr), treq) == tr
    text_req = TranscriptionRequest("openai", "whisper-1", ("a.wav", b"", "audio/wav"),
                                    {"response_format": "text"})
    assert p.parse_transcription(p.render_transcription(TranscriptionResponse("hi"), "text"),
                                 text_req) == TranscriptionResponse("hi")
    models = ModelList((ModelInfo("a", 1, "me"), ModelInfo("b")))
    assert p.parse_models(p.render_models(models), ModelsRequest("openai", "a")) == models


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("name", sorted(PROVIDERS))
@pytest.mark.parametrize(("status", "cls"), [
    (400, errors.BadRequestError), (401, errors.AuthenticationError),
    (404, errors.NotFoundError), (429, errors.RateLimitError),
    (500, errors.InternalServerError), (503, errors.ServiceUnavailableError),
])
def test_rendered_errors_parse_to_their_class(name: str, status: int,
                                              cls: type[errors.APIError]) -> None:
    provider = PROVIDERS[name][0]
    body = provider.render_error(status, "it went wrong")
    err = provider.parse_error(status, {}, body, _req(name), _cfg(name))
    assert type(err) is cls
    assert err.status_code == status
    assert "it went wrong" in err.message


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_rendered_stream_errors_raise_from_the_parser(name: str) -> None:
    provider = PROVIDERS[name][0]
    wire = provider.render_stream_error(429, "slow down")
    parser = provider.stream_parser(_req(name), _cfg(name))
    (event,) = SSEDecoder().feed(wire)
    with pytest.raises(errors.RateLimitError, match="slow down"):
        parser.feed(event)


def test_anthropic_overloaded_and_gemini_retry_info() -> None:
    body = anthropic.PROVIDER.render_error(529, "busy")
    err = anthropic.PROVIDER.parse_error(529, {}, body, _req("anthropic"), _cfg("anthropic"))
    assert isinstance(err, errors.ServiceUnavailableError)
    body = gemini.PROVIDER.render_error(429, "quota", retry_after=2.5)
    err = gemini.PROVIDER.parse_error(429, {}, body, _req("gemini"), _cfg("gemini"))
    assert isinstance(err, errors.RateLimitError)
    assert err.retry_after == 2.5
