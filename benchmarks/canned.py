"""The canned OpenAI answers nginx serves, and what a client must read back from them.

Both bodies are written to files in nginx's temporary document root by
:mod:`nginx_server`; the drivers check every answer against
:data:`EXPECTED_CONTENT` / :data:`EXPECTED_STREAM_CONTENT`.
"""

from __future__ import annotations

import json
from typing import Any

MODEL = "openai/gpt-4o-mini"  # what trillm is asked for
WIRE_MODEL = "gpt-4o-mini"  # what goes into the request body
MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "Hello"}]
API_KEY = "sk-bench"

#: Body of the raw-httpx requests: what trillm sends for the same call (model + messages).
REQUEST_BODY: dict[str, Any] = {"model": WIRE_MODEL, "messages": MESSAGES}
STREAM_REQUEST_BODY: dict[str, Any] = {
    **REQUEST_BODY,
    "stream": True,
    "stream_options": {"include_usage": True},
}

EXPECTED_CONTENT = "Hello! How can I help you today?"

STREAM_WORDS = 200  # content events per stream (sN phases); CPU per chunk divides by this
LONG_STREAM_WORDS = 5000  # content events of a long stream (sNx5000 phases)
#: content events of each of many concurrent streams (s1000x1000): long enough that the
#: per-chunk figure is the chunks' and not their requests' (a request over nginx costs about
#: as much CPU as 100 chunks: a fifth more per chunk of a 200-chunk stream's, 1/10 of 1,000's)
MANY_STREAMS_WORDS = 1000
#: The stream lengths nginx serves (each at its own path: nginx_server.sse_path).
STREAM_LENGTHS = (STREAM_WORDS, MANY_STREAMS_WORDS, LONG_STREAM_WORDS)

_ID = "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
_CREATED = 1741569952
_SERVED_MODEL = "gpt-4o-mini-2024-07-18"
_FINGERPRINT = "fp_06737a9306"

_PROSE = (
    "Sure! Here is a short overview of how structured concurrency works in trio. Every task "
    "runs inside a nursery, and the nursery block does not exit until all of its children "
    "have finished. Timeouts are cancel scopes, so cancelling a block cancels everything "
    "inside it, and errors always propagate to the parent instead of being lost. This makes "
    "it easy to reason about resources: a connection opened inside a nursery is closed when "
    "the block exits, whether it finished normally, failed, or was cancelled from outside."
)


def stream_pieces(n: int = STREAM_WORDS) -> list[str]:
    """The *n* one-word content pieces of a canned stream."""
    words = _PROSE.split()
    out: list[str] = []
    while len(out) < n:
        for w in words:
            out.append(w if not out else " " + w)
            if len(out) == n:
                break
    return out


def expected_stream_content(n: int = STREAM_WORDS) -> str:
    """What the content pieces of an *n*-chunk canned stream join to."""
    return "".join(stream_pieces(n))


STREAM_PIECES: list[str] = stream_pieces()
EXPECTED_STREAM_CONTENT = "".join(STREAM_PIECES)

_USAGE: dict[str, Any] = {
    "prompt_tokens": 9,
    "completion_tokens": 10,
    "total_tokens": 19,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def completion_body() -> bytes:
    """A realistic ``chat.completion`` object (about 600 bytes, compact JSON)."""
    return _dumps(
        {
            "id": _ID,
            "object": "chat.completion",
            "created": _CREATED,
            "model": _SERVED_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": EXPECTED_CONTENT,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _USAGE,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }
    ).encode()


def _chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> str:
    return _dumps(
        {
            "id": _ID,
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": _SERVED_MODEL,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
            "choices": choices,
            "usage": usage,
        }
    )


def stream_body(n: int = STREAM_WORDS) -> bytes:
    """A realistic OpenAI SSE body.

    *n* (200 by default) ``chat.completion.chunk`` events of one word each (the first also carries
    the role), then OpenAI's finish chunk (empty delta, ``finish_reason: "stop"``),
    the usage chunk (``choices: []``, as with ``stream_options.include_usage``)
    and ``data: [DONE]``.
    """
    events: list[str] = []
    for i, word in enumerate(stream_pieces(n)):
        delta: dict[str, Any] = {"content": word}
        if i == 0:
            delta = {"role": "assistant", "content": word, "refusal": None}
        events.append(
            _chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])
        )
    events.append(_chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
    events.append(_chunk([], usage=_USAGE))
    events.append("[DONE]")
    return "".join(f"data: {e}\n\n" for e in events).encode()


#: ``data:`` events per stream other than ``[DONE]`` (words + finish + usage).
STREAM_EVENTS = STREAM_WORDS + 2


def stream_events(n: int = STREAM_WORDS) -> int:
    """``data:`` events of an *n*-chunk stream other than ``[DONE]``."""
    return n + 2


# --- embeddings: the same vectors as base64 float32 (trillm's default) and as JSON floats ---

EMBED_INPUTS = 16  # vectors per answer; CPU per vector divides by this
EMBED_DIMENSIONS = 1536  # text-embedding-3-small's
EMBED_MODEL = "openai/text-embedding-3-small"
EMBED_INPUT_TEXTS = [f"benchmark input {i}" for i in range(EMBED_INPUTS)]


def embedding_vectors() -> list[list[float]]:
    """Deterministic float32 values in (-0.1, 0.1), as an embedding model gives."""
    import struct

    out = []
    state = 12345
    for _ in range(EMBED_INPUTS):
        vec = []
        for _ in range(EMBED_DIMENSIONS):
            state = (state * 1103515245 + 12345) % 2**31
            value = (state / 2**31 - 0.5) / 5
            vec.append(struct.unpack("<f", struct.pack("<f", value))[0])  # float32-exact
        out.append(vec)
    return out


def embedding_body(b64: bool) -> bytes:
    """An ``/embeddings`` answer: base64 little-endian float32, or JSON floats."""
    import base64
    import struct

    data = []
    for i, vec in enumerate(embedding_vectors()):
        value: Any = vec
        if b64:
            value = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    usage = {"prompt_tokens": 64, "total_tokens": 64}
    return _dumps({"object": "list", "data": data, "model": "text-embedding-3-small",
                   "usage": usage}).encode()
