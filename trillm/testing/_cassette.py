"""Cassettes: exchanges with a real provider recorded as JSONL, and answered from again.

``fake.record(path, upstream=...)`` forwards every request the fake receives to
the upstream server (a base URL such as ``"https://api.openai.com"``, or an
``httpx.AsyncBaseTransport``; by default the provider's own host) and appends
each finished exchange to *path*, one JSON object a line::

    {"request": {"method": "POST", "path": "/v1/chat/completions",
                 "headers": {...}, "body": {...the JSON body...}},
     "response": {"status": 200, "headers": {...}, "after": 0.41,
                  "chunks": [{"after": 0.0, "text": "data: {...}\\n\\n"}, ...],
                  "cut": false}}

``after`` is the time from the request to the response's headers, then from
one body chunk to the next (an SSE stream is kept chunk by chunk, as it came).
Every API key the request carried (its secret headers, a ``key=`` query value,
their echoes in bodies and headers) and every known key shape is replaced by
``[REDACTED]``; ``set-cookie`` and the like are dropped.  A body that is not
UTF-8 is kept as ``"b64"``.

``fake.replay(path)`` answers from the cassette: a request matches an exchange
when its method, path (secrets redacted) and canonical body (JSON with sorted
keys, whitespace ignored) are the same; several exchanges for one request are
answered in their recorded order, the last one repeating (a recorded 429 then
200 replays as such).  A request the cassette lacks fails the test with a diff
against the nearest recorded request (:class:`~trillm.testing.UnmatchedRequest`).

Recording never happens by itself: ``record`` refuses to overwrite an existing
cassette unless ``overwrite=True``, and ``replay`` never goes to the network.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import difflib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import httpx
import trio

from .. import errors
from ._answers import Plan
from ._formats import ParsedRequest
from ._record import FakeRequest

__all__ = ["Cassette", "Recorder", "Relay", "canonical_body"]

#: Where each provider's own API lives, for ``record()`` without ``upstream``.
HOSTS = {"openai": "https://api.openai.com", "anthropic": "https://api.anthropic.com",
         "gemini": "https://generativelanguage.googleapis.com"}
#: Request headers not worth keeping (the transport's own), and never forwarded.
_HOP = frozenset({"host", "content-length", "connection", "accept-encoding", "user-agent",
                  "transfer-encoding", "keep-alive"})
#: Response headers not kept or passed on: the body is stored decoded.
_DROP = frozenset({"content-length", "content-encoding", "transfer-encoding", "connection",
                   "set-cookie", "keep-alive", "date"})


def canonical_body(body: Any) -> str:
    """A request body (bytes, text, or parsed JSON) as matching compares it: JSON with
    sorted keys and no whitespace (key order and layout do not matter), else its text."""
    value = body
    if isinstance(body, bytes | str):
        try:
            value = json.loads(body) if body else None
        except (ValueError, RecursionError):
            return body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _secrets(headers: Mapping[str, str], target: str) -> tuple[str, ...]:
    """The key values a request carries (its secret headers, a ``key=`` query value)."""
    found = []
    for name, value in headers.items():
        if name.lower() in errors.SECRET_HEADERS:
            found.append(value)
            if " " in value:  # "Bearer sk-..."
                found.append(value.split(" ", 1)[1])
    for part in target.partition("?")[2].split("&"):
        if part.startswith("key="):
            found.append(part[4:])
    return tuple(s for s in found if len(s) >= 4)


def _scrub_json(value: Any, secrets: tuple[str, ...]) -> Any:
    return errors.redact_body(value, secrets)


def _body_for_file(body: bytes, secrets: tuple[str, ...]) -> Any:
    if not body:
        return None
    try:
        return {"json": _scrub_json(json.loads(body), secrets)}
    except (ValueError, RecursionError):
        pass
    try:
        return {"text": errors.redact(body.decode("utf-8"), secrets)}
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(body).decode()}


def _body_from_file(saved: Any) -> bytes:
    if not saved:
        return b""
    if "json" in saved:
        return json.dumps(saved["json"]).encode()
    if "text" in saved:
        return str(saved["text"]).encode()
    return base64.b64decode(saved["b64"])


def _chunk_for_file(after: float, data: bytes, secrets: tuple[str, ...]) -> dict[str, Any]:
    try:
        return {"after": round(after, 6), "text": errors.redact(data.decode("utf-8"), secrets)}
    except UnicodeDecodeError:
        return {"after": round(after, 6), "b64": base64.b64encode(data).decode()}


def _chunks_for_file(raw: list[tuple[float, bytes]], secrets: tuple[str, ...]
                     ) -> list[dict[str, Any]]:
    """The body chunks as saved: each scrubbed, after joining the chunks a secret (or a
    character) is cut across, so no part of a key survives a chunk boundary; a joined chunk
    arrives when its last piece did."""
    out: list[dict[str, Any]] = []
    group, wait = b"", 0.0
    for after, data in raw:
        if group and _safe_cut(group, data, secrets):
            out.append(_chunk_for_file(wait, group, secrets))
            group, wait = b"", 0.0
        group, wait = group + data, wait + after
    if group:
        out.append(_chunk_for_file(wait, group, secrets))
    return out


def _safe_cut(before: bytes, after: bytes, secrets: tuple[str, ...]) -> bool:
    """Whether the body may be saved cut between *before* and *after*: no UTF-8 character
    and nothing :func:`errors.redact` scrubs spans the cut (binary bodies always may)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        head = decoder.decode(before)
        if decoder.getstate()[0]:
            return False  # a character cut in two
        tail = codecs.getincrementaldecoder("utf-8")().decode(after)  # its cut end: later
    except UnicodeDecodeError:
        return True  # not text: nothing to scrub
    return errors.redact(head + tail, secrets) == (
        errors.redact(head, secrets) + errors.redact(tail, secrets))


def _headers_for_file(headers: Any, secrets: tuple[str, ...], drop: frozenset[str]
                      ) -> dict[str, str]:
    kept = [(k, v) for k, v in headers if k.lower() not in drop]
    return errors.redact_headers(kept, secrets)


def _key(method: str, path: str, body: Any) -> tuple[str, str, str]:
    return method.upper(), path, canonical_body(body)


# ---------------------------------------------------------------- replay


class Cassette:
    """A recorded cassette, answering the requests it holds (see the module's docs)."""

    def __init__(self, path: str | os.PathLike[str], *, timing: bool = True) -> None:
        self.path = Path(path)
        self.timing = timing
        self.exchanges: list[Mapping[str, Any]] = []
        with self.path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        self.exchanges.append(json.loads(line))
                    except ValueError as exc:
                        raise ValueError(f"{self.path}:{n}: not a JSON line ({exc})") from exc
        self._uses: dict[tuple[str, str, str], int] = {}

    def _saved_key(self, exchange: Mapping[str, Any]) -> tuple[str, str, str]:
        req = exchange["request"]
        body = (req.get("body") or {}).get("json", (req.get("body") or {}).get("text"))
        return _key(req["method"], req["path"], body)

    def answer(self, parsed: ParsedRequest, target: str) -> Plan | str:
        """The plan that replays the exchange *parsed* matches, or (a miss) the message
        saying how it differs from the nearest recorded request."""
        secrets = _secrets(dict(parsed.headers), target)
        path = errors.redact(target, secrets)
        saved = _body_for_file(parsed.body, secrets)
        body = None if saved is None else saved.get("json", saved.get("text"))
        key = _key(parsed.method, path, body)
        matches = [e for e in self.exchanges if self._saved_key(e) == key]
        if not matches:
            return self._miss(key)
        uses = self._uses.get(key, 0)
        self._uses[key] = uses + 1
        return self._plan(matches[min(uses, len(matches) - 1)]["response"])

    def _plan(self, response: Mapping[str, Any]) -> Plan:
        chunks = response.get("chunks") or ()
        frames = tuple(_body_from_file(c) for c in chunks)
        delays = tuple(float(c.get("after") or 0) for c in chunks) if self.timing else ()
        return Plan(int(response["status"]), tuple(dict(response.get("headers") or {}).items()),
                    frames, 0.0, float(response.get("after") or 0) if self.timing else 0.0,
                    cut=bool(response.get("cut")), delays=delays)

    def _miss(self, key: tuple[str, str, str]) -> str:
        head = (f"the cassette {self.path} has no exchange for {key[0]} {key[1]} with this "
                "body (re-record it explicitly with fake.record(path, overwrite=True))")
        if not self.exchanges:
            return head + "; the cassette is empty"

        def shown(k: tuple[str, str, str]) -> list[str]:
            try:
                body = json.dumps(json.loads(k[2]), indent=1, sort_keys=True)
            except (ValueError, RecursionError):
                body = k[2]
            return [f"{k[0]} {k[1]}", *body.splitlines()]

        saved = [self._saved_key(e) for e in self.exchanges]
        nearest = max(saved, key=lambda k: difflib.SequenceMatcher(
            None, "\n".join(shown(k)), "\n".join(shown(key))).ratio())
        diff = "\n".join(difflib.unified_diff(shown(nearest), shown(key), "recorded",
                                              "this request", lineterm="", n=2))
        return f"{head}\nthe nearest recorded request differs so:\n{diff}"


# ---------------------------------------------------------------- record


class Recorder:
    """Forwards requests upstream and appends each finished exchange to a cassette."""

    def __init__(self, path: str | os.PathLike[str],
                 upstream: str | httpx.AsyncBaseTransport | None, *,
                 overwrite: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(
                f"the cassette {self.path} exists: replay it with fake.replay(path), or "
                "re-record it explicitly with fake.record(path, ..., overwrite=True)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("", encoding="utf-8")
        self.upstream = upstream

    def relay(self, parsed: ParsedRequest, target: str, headers: Any,
              request: FakeRequest) -> Plan:
        """A plan whose answer comes from upstream, as it comes."""
        if isinstance(self.upstream, str):
            base, transport = self.upstream.rstrip("/"), None
        elif self.upstream is not None:
            base, transport = "http://upstream", self.upstream
        else:
            base, transport = HOSTS.get(parsed.provider, ""), None
            if not base:
                raise ValueError(f"record(): no known host for a {parsed.provider} request "
                                 f"({parsed.method} {parsed.path}): pass upstream=")
        sent = [(k, v) for k, v in headers if k.lower() not in _HOP]
        return Plan(relay=Relay(self, parsed, target, base + target, sent, transport, request))

    def save(self, exchange: Mapping[str, Any]) -> None:
        """Append one exchange (a small synchronous write, once the exchange ended)."""
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(exchange, ensure_ascii=False) + "\n")


class Relay:
    """One request forwarded upstream: opened by the carrier (the in-memory transport or the
    loopback server), read chunk by chunk, saved to the cassette when it ends."""

    def __init__(self, recorder: Recorder, parsed: ParsedRequest, target: str, url: str,
                 headers: list[tuple[str, str]], transport: httpx.AsyncBaseTransport | None,
                 request: FakeRequest) -> None:
        self.recorder, self.parsed, self.target, self.url = recorder, parsed, target, url
        self.headers, self.transport, self.request = headers, transport, request
        self.secrets = _secrets(dict(headers), target)
        self.status = 0
        self.response_headers: tuple[tuple[str, str], ...] = ()
        self._raw: list[tuple[float, bytes]] = []  # (seconds since the last, bytes)
        self.after = 0.0
        self._own: httpx.AsyncHTTPTransport | None = None
        self._response: httpx.Response | None = None
        self._body: Any = None
        self._last = math.nan
        self._ended = False

    async def open(self) -> tuple[int, tuple[tuple[str, str], ...]]:
        """Send the request upstream; the status and headers to pass on.

        The transport is driven directly (no ``httpx.AsyncClient``, whose body
        generators trio would find unfinished when a client gives up), and the body is
        asked for uncompressed, so what is passed on is what is saved."""
        start = trio.current_time()
        if self.transport is None:
            self.transport = self._own = httpx.AsyncHTTPTransport()
        request = httpx.Request(self.parsed.method, self.url, content=self.parsed.body,
                                headers=[*self.headers, ("accept-encoding", "identity")])
        try:
            self._response = await self.transport.handle_async_request(request)
        except BaseException:
            await self.aclose()
            raise
        self._last = trio.current_time()
        self.after = self._last - start
        self.status = self._response.status_code
        self.response_headers = tuple(
            (k, v) for k, v in self._response.headers.multi_items() if k.lower() not in _DROP)
        self._body = cast(httpx.AsyncByteStream, self._response.stream).__aiter__()
        return self.status, self.response_headers

    async def next_chunk(self) -> bytes | None:
        """The next body chunk from upstream (None at its end); a broken upstream
        connection is saved as a cut and raised."""
        try:
            data: bytes = await self._body.__anext__()
        except StopAsyncIteration:
            self.end(cut=False)
            return None
        except httpx.TransportError:
            self.end(cut=True)
            raise
        now = trio.current_time()
        if data:
            self._raw.append((now - self._last, data))
        self._last = now
        return data

    def end(self, *, cut: bool) -> None:
        """Save the exchange (once; an exchange the client gave up on is not saved)."""
        if self._ended:
            return
        self._ended = True
        p = self.parsed
        self.recorder.save({
            "request": {
                "method": p.method, "path": errors.redact(self.target, self.secrets),
                "headers": _headers_for_file(self.headers, self.secrets, _HOP),
                "body": _body_for_file(p.body, self.secrets),
            },
            "response": {
                "status": self.status,
                "headers": _headers_for_file(self.response_headers, self.secrets, _DROP),
                "after": round(self.after, 6),
                "chunks": _chunks_for_file(self._raw, self.secrets), "cut": cut,
            },
        })

    async def aclose(self) -> None:
        """Close the upstream response (an unfinished exchange is dropped): shielded,
        bounded in time, and it never raises."""
        finished, self._ended = self._ended, True
        with trio.move_on_after(5, shield=True):
            response, body = self._response, self._body
            if response is not None and body is not None and not finished:
                network = response.extensions.get("network_stream")
                if network is not None:  # httpcore's nested body generators end when the
                    with contextlib.suppress(Exception):  # socket is closed and read on
                        await network.aclose()
                    with contextlib.suppress(Exception):
                        while True:
                            await body.__anext__()
                with contextlib.suppress(Exception):
                    await getattr(body, "aclose", trio.lowlevel.checkpoint)()
            if response is not None:
                with contextlib.suppress(Exception):
                    await response.aclose()
            if self._own is not None:
                with contextlib.suppress(Exception):
                    await self._own.aclose()
