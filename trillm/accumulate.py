"""Accumulate stream chunks into the answer the plain (non-streamed) call gives."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .structured import parse_response
from .types import (
    EMPTY_STREAM_CHOICES,
    Choice,
    Delta,
    FunctionCall,
    FunctionDelta,
    Message,
    ModelResponse,
    StreamChoice,
    StreamChunk,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["ChunkAccumulator", "chunks_from_response", "stream_chunk_builder"]


class _ChoiceParts:
    __slots__ = ("content", "finish_reason", "logprobs", "reasoning", "refusal", "role", "tools")

    def __init__(self) -> None:
        self.role = "assistant"
        self.content: list[str] = []  # empty until a delta carries a content string
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.finish_reason: str | None = None
        self.logprobs: Any = None  # the chunks' logprobs so far (lists concatenated)
        # tool index -> [id, type, name, argument fragments, extra_content]
        self.tools: dict[int, list[Any]] = {}

    def message(self) -> Message:
        calls = tuple(
            ToolCall(id=t[0] or "", type=t[1] or "function",
                     function=FunctionCall(name=t[2] or "", arguments="".join(t[3])),
                     extra_content=t[4])
            for _, t in sorted(self.tools.items())
        )
        return Message(
            role=self.role,
            content="".join(self.content) if self.content else None,
            tool_calls=calls or None,
            reasoning_content="".join(self.reasoning) if self.reasoning else None,
            refusal="".join(self.refusal) if self.refusal else None,
        )


class ChunkAccumulator:
    """Folds chunks one at a time into what :meth:`build` returns as a whole answer.

    It keeps only the text pieces (strings), never the chunks themselves, so a
    long stream does not pile up objects for the garbage collector to scan.
    """

    __slots__ = ("_first", "_parts", "_usage")

    def __init__(self) -> None:
        self._first: tuple[str, int, str, str | None] | None = None
        self._usage: Usage | None = None
        self._parts: dict[int, _ChoiceParts] = {}

    def add(self, chunk: StreamChunk) -> None:
        """Fold in one chunk."""
        if self._first is None:  # what the answer's id, model, ... come from (not the chunk)
            self._first = (chunk.id, chunk.created, chunk.model, chunk.system_fingerprint)
        if chunk.usage is not None:
            self._usage = chunk.usage
        parts = self._parts
        for sc in chunk.choices:
            p = parts.get(sc.index)
            if p is None:
                p = parts[sc.index] = _ChoiceParts()
            d = sc.delta
            if d.content is not None:  # "" too: content stays None only if none came
                p.content.append(d.content)
            if d.role:
                p.role = d.role
            if d.reasoning_content:
                p.reasoning.append(d.reasoning_content)
            if d.refusal is not None:  # likewise
                p.refusal.append(d.refusal)
            if d.tool_calls:
                _add_tool_calls(p, d.tool_calls)
            if sc.finish_reason is not None:
                p.finish_reason = sc.finish_reason
            if sc.logprobs is not None:
                _add_logprobs(p, sc.logprobs)

    def build(self) -> ModelResponse:
        """The whole answer so far; ``ValueError`` when no chunk was added."""
        first = self._first
        if first is None:
            raise ValueError("cannot build a response from an empty stream")
        # A usage-only chunk adds an empty delta to choice 0, which changes nothing.
        choices = tuple(
            Choice(index=i, message=p.message(), finish_reason=p.finish_reason,
                   logprobs=_copy_logprobs(p.logprobs))
            for i, p in sorted(self._parts.items())
        )
        rid, created, model, fingerprint = first
        return ModelResponse(
            id=rid, created=created, model=model, choices=choices, usage=self._usage,
            system_fingerprint=fingerprint,
        )


def _add_tool_calls(p: _ChoiceParts, deltas: Iterable[Any]) -> None:
    for tc in deltas:
        t = p.tools.get(tc.index)
        if t is None:
            t = p.tools[tc.index] = [None, None, None, [], None]
        if tc.id:
            t[0] = tc.id
        if tc.type:
            t[1] = tc.type
        if tc.function is not None:
            if tc.function.name:
                t[2] = tc.function.name
            if tc.function.arguments:
                t[3].append(tc.function.arguments)
        if tc.extra_content is not None:
            t[4] = tc.extra_content


def _add_logprobs(p: _ChoiceParts, logprobs: Any) -> None:
    """Fold one chunk's ``logprobs`` into the choice's: lists (``content``, ``refusal``)
    are concatenated, other values kept from the first chunk that had them."""
    have = p.logprobs
    if type(logprobs) is not dict or (have is not None and type(have) is not dict):
        p.logprobs = logprobs  # not OpenAI's shape: the last one wins
        return
    if have is None:
        have = p.logprobs = {}
    for key, value in logprobs.items():
        if type(value) is list:
            tokens = have.get(key)
            if type(tokens) is list:
                tokens.extend(value)
            else:
                have[key] = list(value)  # a copy: it is extended in place later
        elif have.get(key) is None:
            have[key] = value


def _copy_logprobs(logprobs: Any) -> Any:
    """A copy that later chunks do not change (the lists are extended in place)."""
    if type(logprobs) is not dict:
        return logprobs
    return {k: list(v) if type(v) is list else v for k, v in logprobs.items()}


def stream_chunk_builder(
    chunks: Iterable[StreamChunk], messages: Any = None, *, response_format: Any = None
) -> ModelResponse:
    """Build the :class:`ModelResponse` that a stream of *chunks* amounts to.

    Content, reasoning and tool-call argument fragments are concatenated per
    choice (tool calls by their ``index``), and so are the ``logprobs`` token
    lists (``content``, ``refusal``); the last finish reason and the last usage
    seen win.  ``content`` (and ``refusal``) stay None unless some delta carried
    a string for them (an empty one included), as in the official OpenAI SDK.  Raises
    ``ValueError`` for an empty stream.

    The chunks do not carry the call's ``response_format``: pass it again as
    ``response_format=`` to get ``message.parsed`` (and the structured-output errors)
    as the plain call gives them.  *messages* is taken for LiteLLM's signature and not
    used: the usage comes from the chunks.
    """
    acc = ChunkAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    response = acc.build()
    if response_format is None:
        return response
    return parse_response(response, response_format)


def chunks_from_response(response: ModelResponse) -> tuple[StreamChunk, ...]:
    """A whole answer as the chunks a stream of it would give (one per choice, then usage).

    For servers that answer ``stream=True`` with one JSON body;
    ``stream_chunk_builder`` of the result gives *response* back.
    """
    def chunk(choices: tuple[StreamChoice, ...], usage: Usage | None = None) -> StreamChunk:
        return StreamChunk(response.id, response.created, response.model, choices, usage,
                           system_fingerprint=response.system_fingerprint)

    out = []
    for c in response.choices:
        m = c.message
        calls = tuple(
            ToolCallDelta(i, t.id, t.type, FunctionDelta(t.function.name, t.function.arguments),
                          t.extra_content)
            for i, t in enumerate(m.tool_calls or ())
        )
        delta = Delta(m.role, m.content, calls or None, m.reasoning_content, m.refusal)
        out.append(chunk((StreamChoice(c.index, delta, c.finish_reason, c.logprobs),)))
    if response.usage is not None or not out:
        out.append(chunk(EMPTY_STREAM_CHOICES, response.usage))
    return tuple(out)
