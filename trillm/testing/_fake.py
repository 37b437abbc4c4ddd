"""``FakeLLM``: a scriptable fake of the OpenAI, Anthropic and Gemini APIs.

Rules are matched, not consumed in arrival order, so concurrent tests stay
deterministic: the first rule (in the order they were added) whose criteria
match answers.  Each verb of a rule queues an answer; the last one repeats.
"""

from __future__ import annotations

import difflib
import json as jsonlib
import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import trio

from ._answers import Answer, Plan, error_plan, make_plan, tool_calls_of
from ._formats import ParsedRequest, parse_request
from ._record import FakeRequest

if TYPE_CHECKING:
    import os

    import httpx

    from ._cassette import Cassette, Recorder
    from ._memory import FakeTransport

__all__ = ["FakeLLM", "FakeRequest", "Rule", "UnmatchedRequest"]


class UnmatchedRequest(AssertionError):
    """A request no rule matched, in ``strict`` mode: the message says which rule came
    nearest and how the request differs from it."""


def _model_matches(wanted: str, req: ParsedRequest) -> bool:
    got = req.model or ""
    return wanted in (got, f"{req.provider}/{got}", f"models/{got}")


class Rule:
    """What to answer to the requests that match: made by :meth:`FakeLLM.on`.

    Each verb queues one answer and returns the rule, so they chain:
    ``fake.on(model="m").fail(429).fail(429).reply("ok")`` answers 429, 429,
    then ``"ok"`` every time after.  ``.times(n)`` after the last verb makes the
    rule stop matching after *n* more uses.  A rule without a verb echoes.
    """

    def __init__(self, index: int, model: str | None, when: Callable[[FakeRequest], bool] | None,
                 provider: str | None, operation: str | None) -> None:
        self.index = index
        self.model, self.when, self.provider, self.operation = model, when, provider, operation
        self.answers: list[Answer] = []
        self.uses = 0
        self.limit: int | None = None  # uses left, once .times() was called

    def __repr__(self) -> str:
        crit = [f"{k}={v!r}" for k, v in (("model", self.model), ("provider", self.provider),
                                          ("operation", self.operation)) if v is not None]
        if self.when is not None:
            crit.append(f"when={getattr(self.when, '__name__', 'predicate')}")
        verbs = "".join(a.describe() for a in self.answers)
        times = f".times({self.limit})" if self.limit is not None else ""
        return f"fake.on({', '.join(crit)}){verbs}{times}"

    # -------------------------------------------------------------- verbs

    def _add(self, answer: Answer) -> Rule:
        if self.limit is not None:
            raise ValueError(".times(n) comes after the last verb of a rule")
        if not (answer.delay >= 0 and answer.piece_delay >= 0):
            raise ValueError("delays are seconds >= 0")
        self.answers.append(answer)
        return self

    def reply(self, text: str | Callable[[FakeRequest], str] | None = None, *,
              tool_calls: Sequence[Any] | None = None, json: Any = None,
              delay: float = 0.0) -> Rule:
        """Answer *text* (None: echo the last user message; a function: the text it
        returns for the :class:`FakeRequest`), and/or *tool_calls*
        (``[{"name": ..., "arguments": {...}, "id"?: ..., "extra_content"?: ...}]`` or
        :class:`~trillm.types.ToolCall`; a call without an id gets one, for Gemini the
        one trillm derives, which is not sent; ``extra_content={"google":
        {"thought_signature": ...}}`` is sent as Gemini's ``thoughtSignature``), or
        *json* (a value sent as the JSON text of the answer), after *delay* seconds.
        A streamed request gets the answer word by word."""
        if json is not None:
            text = jsonlib.dumps(json)
        calls = tool_calls_of(tool_calls) if tool_calls else None
        return self._add(Answer("reply", text, calls, delay=delay))

    def stream(self, pieces: Sequence[str], *, delay: float = 0.0,
               headers_delay: float = 0.0) -> Rule:
        """Stream *pieces*, one chunk each, *delay* seconds before each, after the
        headers sent *headers_delay* seconds after the request (a request that does not
        stream gets them joined, after all the delays)."""
        if isinstance(pieces, str):
            raise TypeError("stream() takes a list of pieces, e.g. stream(['Hel', 'lo'])")
        return self._add(Answer("stream", pieces=tuple(pieces), piece_delay=delay,
                                delay=headers_delay))

    def respond(self, body: Any, *, status: int = 200,
                headers: Mapping[str, str] | None = None, delay: float = 0.0,
                chunk_delay: float = 0.0, then: str = "end") -> Rule:
        """Answer exactly *body*, whatever the request's format: ``bytes`` or ``str`` as
        one body, a list of ``bytes`` as body chunks (an SSE stream, say), any other value
        as its JSON, or a function of the :class:`FakeRequest` returning one of these.
        The headers come *delay* seconds after the request, each chunk *chunk_delay*
        seconds after the one before; the content type is JSON (a list of chunks:
        ``text/event-stream``) unless *headers* give one.  *then* says what follows the
        body: ``"end"``, ``"hang"`` (the connection stays open, silent) or
        ``"disconnect"`` (it breaks).  For recorded payloads and answers the providers'
        render steps would not send."""
        if then not in ("end", "hang", "disconnect"):
            raise ValueError('then= is "end", "hang" or "disconnect"')
        if not (chunk_delay >= 0):
            raise ValueError("delays are seconds >= 0")
        heads = tuple((k.lower(), v) for k, v in (headers or {}).items())
        return self._add(Answer("respond", raw=body, status=status, headers=heads, delay=delay,
                                piece_delay=chunk_delay, then=then))

    def fail(self, status: int = 500, *, retry_after: float | None = None,
             body: bytes | str | Mapping[str, Any] | None = None,
             headers: Mapping[str, str] | None = None, delay: float = 0.0) -> Rule:
        """Answer HTTP *status* with the provider's error body (or *body*), a
        ``Retry-After`` header when *retry_after* is given (and Gemini's RetryInfo)."""
        if isinstance(body, Mapping):
            raw: bytes | None = jsonlib.dumps(body).encode()
        else:
            raw = body.encode() if isinstance(body, str) else body
        heads = tuple((k.lower(), v) for k, v in (headers or {}).items())
        return self._add(Answer("fail", status=status, retry_after=retry_after, body=raw,
                                headers=heads, delay=delay))

    def disconnect(self, *, after_chunks: int | None = None,
                   pieces: Sequence[str] | None = None) -> Rule:
        """Break the connection: before any answer (``after_chunks=None``), or after
        the headers and *after_chunks* body chunks (a stream of *pieces*, by default the
        echo's words; a plain answer's body is two chunks)."""
        if after_chunks is not None and after_chunks < 0:
            raise ValueError("after_chunks must be >= 0")
        return self._add(Answer("disconnect", pieces=tuple(pieces) if pieces else None,
                                after_chunks=after_chunks))

    def hang(self) -> Rule:
        """Never answer (until the client gives up: a timeout or a cancellation)."""
        return self._add(Answer("hang"))

    def times(self, n: int) -> Rule:
        """Stop matching after *n* more uses."""
        if n < 0:
            raise ValueError("times(n) needs n >= 0")
        self.limit = n
        return self

    # -------------------------------------------------------------- matching

    def mismatches(self, request: FakeRequest) -> list[tuple[str, str, str]]:
        """``(criterion, wanted, got)`` for each criterion *request* fails (empty: a match)."""
        req = request.parsed
        out = []
        if self.limit is not None and self.limit <= 0:
            out.append(("times", f"{self.uses} use(s) allowed", "one more"))
        if self.model is not None and not _model_matches(self.model, req):
            out.append(("model", repr(self.model), repr(req.model)))
        if self.provider is not None and self.provider != req.provider:
            out.append(("provider", repr(self.provider), repr(req.provider)))
        if self.operation is not None and self.operation != req.operation:
            out.append(("operation", repr(self.operation), repr(req.operation)))
        if not out and self.when is not None and not self.when(request):
            out.append(("when", "the predicate to return True", "False"))
        return out

    def take(self) -> Answer:
        """The next answer (the last one repeats); counts one use."""
        answer = self.answers[min(self.uses, len(self.answers) - 1)] if self.answers else (
            Answer("reply"))
        self.uses += 1
        if self.limit is not None:
            self.limit -= 1
        return answer


class FakeLLM:
    """A scriptable fake LLM server speaking OpenAI, Anthropic and Gemini, plain and SSE.

    Plug it in memory (``trillm.Client(transport=fake.transport())``: no
    sockets, every delay a ``trio.sleep``, so virtual time drives it) or on a
    loopback port (``async with fake.serve() as url``).  Script it with
    :meth:`on`; check it with :attr:`requests` and :meth:`assert_called`.  A
    request no rule matches gets the echo of its last user message, or, with
    ``strict=True``, fails with :class:`UnmatchedRequest`.
    """

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self.rules: list[Rule] = []
        #: Every request received, in arrival order.
        self.requests: list[FakeRequest] = []
        #: Unmatched requests in strict mode or replay (raised again by :meth:`check`).
        self.errors: list[UnmatchedRequest] = []
        #: The cassette being replayed (:meth:`replay`), or recorded (:meth:`record`).
        self.cassette: Cassette | None = None
        self.recorder: Recorder | None = None

    def on(self, model: str | None = None, *, when: Callable[[FakeRequest], bool] | None = None,
           provider: str | None = None, operation: str | None = None) -> Rule:
        """A new rule for the requests for *model* (``"gpt-4o"`` or ``"openai/gpt-4o"``)
        for which *when* (given the :class:`FakeRequest`) returns true; *provider* and
        *operation* narrow it further."""
        rule = Rule(len(self.rules), model, when, provider, operation)
        self.rules.append(rule)
        return rule

    def record(self, path: str | os.PathLike[str],
               upstream: str | httpx.AsyncBaseTransport | None = None, *,
               overwrite: bool = False) -> FakeLLM:
        """Record a cassette: from now on every request is forwarded to *upstream* (a base
        URL such as ``"https://api.openai.com"``, or an ``httpx.AsyncBaseTransport``; by
        default the provider's own host), answered as upstream answers, and each exchange
        that ends is appended to *path* as a JSON line, secrets scrubbed (rules are not
        consulted).  An existing *path* is kept unless *overwrite* is true: re-recording is
        always asked for, never automatic.  Returns the fake."""
        from ._cassette import Recorder

        self.cassette = None
        self.recorder = Recorder(path, upstream, overwrite=overwrite)
        return self

    def replay(self, path: str | os.PathLike[str], *, timing: bool = True) -> FakeLLM:
        """Answer from the cassette at *path* (recorded by :meth:`record`): a request matches
        an exchange with the same method, path and canonical body (JSON key order and
        whitespace ignored); a miss fails with a diff against the nearest recorded request
        (:class:`UnmatchedRequest`, raised again by :meth:`check`).  Rules added with
        :meth:`on` still come first.  *timing* false answers without the recorded waits.
        Returns the fake."""
        from ._cassette import Cassette

        self.recorder = None
        self.cassette = Cassette(path, timing=timing)
        return self

    def transport(self) -> FakeTransport:
        """An ``httpx.AsyncBaseTransport`` answering in memory, for ``Client(transport=)``
        or ``httpx.AsyncClient(transport=)``."""
        from ._memory import FakeTransport

        return FakeTransport(self)

    def serve(self, *, host: str = "127.0.0.1", port: int = 0
              ) -> AbstractAsyncContextManager[str]:
        """``async with fake.serve() as url:`` a loopback HTTP server (``url`` is
        ``http://127.0.0.1:PORT``; OpenAI clients use ``url + "/v1"``)."""
        from ._server import serve

        return serve(self, host=host, port=port)

    # -------------------------------------------------------------- answering

    def handle(self, method: str, target: str, headers: Any, body: bytes, *,
               scheme: str = "http") -> tuple[FakeRequest, Plan]:
        """Record one request and plan its answer (what the transport and server call);
        *scheme* is the one the client addressed (``"https"`` for a provider's own host)."""
        parsed = parse_request(method, target, headers, body)
        request = FakeRequest(parsed, started_at=_now(), scheme=scheme)
        self.requests.append(request)
        if self.recorder is not None:
            return request, self.recorder.relay(parsed, target, headers, request)
        for rule in self.rules:
            if not rule.mismatches(request):
                request.rule = rule.index
                answer = rule.take()
                break
        else:
            if self.cassette is not None:
                played = self.cassette.answer(parsed, target)
                if isinstance(played, Plan):
                    request.status = played.status
                    return request, played
                error = UnmatchedRequest(played)
                self.errors.append(error)
                return request, error_plan(parsed, 500, str(error))
            if self.strict:
                error = UnmatchedRequest(self._unmatched(request))
                self.errors.append(error)
                return request, error_plan(parsed, 500, str(error))
            answer = Answer("reply")
        plan = make_plan(parsed, answer.resolve(request), f"fake-{len(self.requests)}")
        request.status = None if plan.hang or plan.cut_before_headers else plan.status
        if plan.cut_before_headers:
            request.mark_broken()
        return request, plan

    def _unmatched(self, request: FakeRequest) -> str:
        head = (f"no rule of the FakeLLM matched {request.parsed.method} {request.path} "
                f"({request.provider} {request.operation}, model={request.model!r}, "
                f"stream={request.stream}, last user message={request.text!r})")
        if not self.rules:
            return head + "; there are no rules (add one with fake.on(...))"
        scored = [(len(r.mismatches(request)), r.index, r) for r in self.rules]
        _, _, nearest = min(scored, key=lambda s: (s[0], s[1]))
        wanted = [f"{k}: {w}" for k, w, _ in nearest.mismatches(request)]
        got = [f"{k}: {g}" for k, _, g in nearest.mismatches(request)]
        diff = "\n".join(difflib.ndiff(wanted, got))
        return (f"{head}\nnearest rule #{nearest.index}: {nearest!r}\n"
                f"(- the rule wants, + the request has)\n{diff}")

    # -------------------------------------------------------------- checking

    def check(self) -> None:
        """Raise the first :class:`UnmatchedRequest` seen (strict mode), if any."""
        if self.errors:
            raise self.errors[0]

    def assert_called(self, *, model: str | None = None, provider: str | None = None,
                      operation: str | None = None, times: int | None = None
                      ) -> list[FakeRequest]:
        """The requests for *model* (and *provider*, *operation*); fails unless there
        were exactly *times* of them (at least one when *times* is None)."""
        found = [
            r for r in self.requests
            if (model is None or _model_matches(model, r.parsed))
            and (provider is None or r.provider == provider)
            and (operation is None or r.operation == operation)
        ]
        if (times is None and not found) or (times is not None and len(found) != times):
            what = ", ".join(f"{k}={v!r}" for k, v in (("model", model), ("provider", provider),
                                                       ("operation", operation)) if v)
            expected = "at least once" if times is None else f"{times} time(s)"
            seen = "\n".join(f"  {r!r}" for r in self.requests) or "  (none)"
            raise AssertionError(f"expected a call ({what or 'any'}) {expected}, got "
                                 f"{len(found)}; the fake received:\n{seen}")
        return found


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # outside a trio run (a thread): no clock to read
        return math.nan
