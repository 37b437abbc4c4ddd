"""Turning an OpenAI Chat Completions SSE stream into
:class:`~trillm.types.StreamChunk` values: :class:`OpenAIStreamParser`, the hot path of
every OpenAI-compatible stream (one ``feed_data`` or ``feed`` per event).

Sans-I/O, like every provider module.  Imported when a stream is opened (and re-exported
by :mod:`trillm.providers.openai`), so a plain call loads neither it nor the stream records.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .. import errors
from .._json import loads as _loads
from .._stream_records import (
    EMPTY_STREAM_CHOICES,
    Delta,
    FunctionDelta,
    StreamChoice,
    StreamChunk,
    ToolCallDelta,
    stream_choice,
    stream_chunk,
    text_delta,
)
from .base import ProviderConfig
from .openai_read import error_from_body, parse_usage, reasoning_text

if TYPE_CHECKING:
    from ..sse import SSEEvent

__all__ = ["OpenAIStreamParser"]

_EMPTY_DELTA = Delta()


def _setters(cls: type[Any], *names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of the frozen, slotted attrs record *cls*, one per field, in the
    order *names* gives (which must name every field: a record built with them has each
    slot set, as its ``__init__`` would); the ones ``positional_builder`` binds."""
    if sorted(names) != sorted(f.name for f in attrs.fields(cls)):
        raise TypeError(f"{cls.__name__}'s fields are not {names}")
    return tuple(vars(cls)[name].__set__ for name in names)


# The records of the common chunk (one text delta), set slot by slot (every field).
_new = object.__new__
_d_role, _d_content, _d_tool_calls, _d_reasoning, _d_refusal = _setters(
    Delta, "role", "content", "tool_calls", "reasoning_content", "refusal")
_c_index, _c_delta, _c_finish, _c_logprobs = _setters(
    StreamChoice, "index", "delta", "finish_reason", "logprobs")
_k_id, _k_created, _k_model, _k_choices, _k_usage, _k_object, _k_fingerprint, _k_raw = _setters(
    StreamChunk, "id", "created", "model", "choices", "usage", "object", "system_fingerprint",
    "raw")


def _tool_delta(t: Mapping[str, Any], i: int) -> ToolCallDelta:
    f = t.get("function")
    index = t.get("index")
    if index is None:
        index = i
    elif type(index) is not int:
        raise TypeError(f"a tool call index {index!r} that is not an integer")
    name = args = None
    if f:
        name, args = f.get("name"), f.get("arguments")
        if type(args) is dict:  # a few servers send an object, as in plain answers
            args = json.dumps(args)
    tid, kind = t.get("id"), t.get("type")
    for value in (tid, kind, name, args):
        if value is not None and type(value) is not str:
            raise TypeError(f"a tool call field {value!r} that is not a string")
    extra = t.get("extra_content")
    return ToolCallDelta(index, tid, kind, FunctionDelta(name, args) if f else None,
                         extra if type(extra) is dict else None)


def _check_logprobs(logprobs: Any) -> None:
    if type(logprobs) is not dict:
        raise TypeError("logprobs that are not an object")
    for key in ("content", "refusal"):
        tokens = logprobs.get(key)
        if tokens is not None and type(tokens) is not list:
            raise TypeError(f"logprobs.{key} that is not a list")


class OpenAIStreamParser:
    """Turns one OpenAI-style SSE stream into :class:`StreamChunk` values.

    ``done`` turns true at ``data: [DONE]`` or at the first chunk carrying a
    ``finish_reason`` (for any choice); ``finished`` once every choice seen has
    had its ``finish_reason``.  Events after it are still parsed (the
    usage chunk follows the finish reason).  A choices-less event without usage
    (Azure's prompt-filter event) gives None.
    """

    __slots__ = ("_cfg", "_done", "_finished", "_model", "_provider", "_seen")

    def __init__(self, provider: str, model: str, cfg: ProviderConfig | None = None) -> None:
        self._provider = provider
        self._model = model
        self._cfg = cfg  # only for scrubbing its key out of errors
        self._done = False
        self._seen: set[int] = set()  # choice indexes
        self._finished: set[int] = set()  # ... that had their finish reason

    @property
    def done(self) -> bool:
        """True once ``[DONE]`` or a finish reason was seen."""
        return self._done

    @property
    def finished(self) -> bool:
        """True once every choice seen has had its finish reason (and one has)."""
        return bool(self._finished) and self._seen <= self._finished

    def feed(self, event: SSEEvent) -> StreamChunk | None:
        """Translate one event; raises the mapped error for an in-stream error event."""
        if event.event == "error":
            obj = self._load(event.data)
            if obj is None:
                return None
            raise self._error(obj, event.data)
        return self.feed_data(event.data)

    def feed_data(self, data: str) -> StreamChunk | None:
        """:meth:`feed` for a plain ``message`` event: its data alone."""
        if data[:1] != "{" and data.strip() == "[DONE]":  # _load, inlined (the hot path)
            self._done = True
            return None
        try:
            obj = _loads(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise self._malformed(data, str(exc)) from exc
        if type(obj) is not dict:
            raise self._malformed(data, "not a JSON object")
        # The common chunk: one choice adding a piece of text, nothing else (no error,
        # usage, finish reason or logprobs).  Checked and built in one pass, with the
        # checks _chunk makes; any other shape (a malformed one too) goes to _chunk.
        get = obj.get
        raw_choices = get("choices")
        if (type(raw_choices) is list and len(raw_choices) == 1 and "error" not in obj
                and get("usage") is None and "x_groq" not in obj):
            c = raw_choices[0]
            if type(c) is dict:
                d = c.get("delta")
                index = c.get("index")
                rid, created = get("id") or "", get("created") or 0
                model, fingerprint = get("model") or self._model, get("system_fingerprint")
                kind = get("object") or "chat.completion.chunk"
                if (type(d) is dict and len(d) == 1 and type(content := d.get("content")) is str
                        and c.get("finish_reason") is None and c.get("logprobs") is None
                        and type(index) is int and type(rid) is str and type(created) is int
                        and type(model) is str and type(kind) is str
                        and (fingerprint is None or type(fingerprint) is str)):
                    if index not in self._seen:
                        self._seen.add(index)
                    delta = _new(Delta)
                    _d_role(delta, None)
                    _d_content(delta, content)
                    _d_tool_calls(delta, None)
                    _d_reasoning(delta, None)
                    _d_refusal(delta, None)
                    choice = _new(StreamChoice)
                    _c_index(choice, index)
                    _c_delta(choice, delta)
                    _c_finish(choice, None)
                    _c_logprobs(choice, None)
                    chunk = _new(StreamChunk)
                    _k_id(chunk, rid)
                    _k_created(chunk, created)
                    _k_model(chunk, model)
                    _k_choices(chunk, (choice,))
                    _k_usage(chunk, None)
                    _k_object(chunk, kind)
                    _k_fingerprint(chunk, fingerprint)
                    _k_raw(chunk, obj)
                    return chunk
        return self._chunk(obj, data)

    def _load(self, data: str) -> dict[str, Any] | None:
        """The event's JSON object; None for ``[DONE]`` (the end marker, then noted)."""
        if data[:1] != "{" and data.strip() == "[DONE]":
            self._done = True
            return None
        try:
            obj = _loads(data)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise self._malformed(data, str(exc)) from exc
        if type(obj) is not dict:
            raise self._malformed(data, "not a JSON object")
        return obj

    def _error(self, obj: dict[str, Any], data: str) -> errors.APIError:
        """The mapped error of an in-stream error event."""
        try:
            return error_from_body(obj, provider=self._provider, model=self._model,
                                   cfg=self._cfg)
        except RecursionError as deep:  # nested too deeply to copy or redact
            raise self._malformed(data, "an error event nested too deeply") from deep

    def _chunk(self, obj: dict[str, Any], data: str) -> StreamChunk | None:
        """Every shape of event, checked field by field (:meth:`feed_data`'s general path)."""
        if obj.get("error") is not None:
            raise self._error(obj, data)
        try:  # a wrong shape (a string where an object belongs) is a malformed event
            u = obj.get("usage")
            if u is None:
                x = obj.get("x_groq")  # Groq puts the final usage here
                if x is not None:
                    u = x.get("usage")
            usage = parse_usage(u) if u else None
            if usage is not None and not (type(usage.prompt_tokens) is int
                                          and type(usage.completion_tokens) is int
                                          and type(usage.total_tokens) is int):
                raise TypeError("token counts that are not integers")
            raw_choices = obj.get("choices")
            if raw_choices:
                if type(raw_choices) is not list:
                    raise TypeError("choices that are not a list")
                choices = []
                for i, c in enumerate(raw_choices):
                    d = c.get("delta")
                    if (type(d) is dict and len(d) == 1
                            and type(content := d.get("content")) is str):
                        delta = text_delta(content)  # the common case: a piece of text
                    elif d:
                        tcs = d.get("tool_calls")
                        reasoning = d.get("reasoning_content")
                        if reasoning is None and "reasoning" in d:
                            reasoning = reasoning_text(d)
                        role, content, refusal = d.get("role"), d.get("content"), d.get("refusal")
                        if ((content is not None and type(content) is not str)
                                or (role is not None and type(role) is not str)
                                or (refusal is not None and type(refusal) is not str)
                                or (reasoning is not None and type(reasoning) is not str)):
                            raise TypeError("a role, content, refusal or reasoning not a string")
                        if tcs and type(tcs) is not list:
                            raise TypeError("tool_calls that are not a list")
                        delta = Delta(
                            role,
                            content,
                            tuple([_tool_delta(t, j) for j, t in enumerate(tcs)]) if tcs else None,
                            reasoning,
                            refusal,
                        )
                    else:
                        delta = _EMPTY_DELTA
                    finish = c.get("finish_reason")
                    index = c.get("index")
                    if index is None:
                        index = i
                    elif type(index) is not int:
                        raise TypeError(f"a choice index {index!r} that is not an integer")
                    self._seen.add(index)
                    if finish is not None:
                        if type(finish) is not str:
                            raise TypeError(f"a finish_reason {finish!r} that is not a string")
                        self._done = True
                        self._finished.add(index)
                    logprobs = c.get("logprobs")
                    if logprobs is not None:
                        _check_logprobs(logprobs)
                    choices.append(stream_choice(index, delta, finish, logprobs))
                chunk_choices = tuple(choices)
            elif usage is None:
                return None
            else:
                chunk_choices = EMPTY_STREAM_CHOICES
            rid, created = obj.get("id") or "", obj.get("created") or 0
            model, fingerprint = obj.get("model") or self._model, obj.get("system_fingerprint")
            kind = obj.get("object") or "chat.completion.chunk"
            if type(created) is float:  # a few servers send time.time()
                created = int(created)
            if (type(rid) is not str or type(created) is not int or type(model) is not str
                    or type(kind) is not str
                    or (fingerprint is not None and type(fingerprint) is not str)):
                raise TypeError("an id, created, model, object or system_fingerprint of the "
                                "wrong type")
            return stream_chunk(
                rid,
                created,
                model,
                chunk_choices,
                usage,
                kind,
                fingerprint,
                obj,
            )
        except (AttributeError, TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise self._malformed(data, f"unexpected shape: {exc}") from exc

    def _malformed(self, data: str, why: str) -> errors.StreamError:
        return errors.StreamError(
            f"malformed stream event from {self._provider} ({why}): {data[:200]!r}",
            provider=self._provider, model=self._model,
            secrets=self._cfg.secrets if self._cfg is not None else (),
        )
