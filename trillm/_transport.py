"""HTTP/1.1 over httpx: the only trillm module that imports httpx at run time.

httpcore 1.0.9's pool re-scans every connection for every idle one on each
request, so one big pool costs 5-6x more CPU per request at 256 concurrent
requests than at 1 (research/transport-scaling.md).  :class:`StackTransport`
keeps, per origin (scheme, host, port), a LIFO stack of free connections, each
httpcore's own ``AsyncHTTPConnection``, sent to as httpx's transport sends to its
pool (httpcore's errors raised as httpx's): no pool has anything to scan, and a
request in flight holds no pool, pool request or httpx transport frame (1.3 KB
less, and 530 bytes less per connection; an origin behind a proxy still gets a
one-connection ``httpx.AsyncHTTPTransport``).  A request pops the most recently used
one (the warmest), dropping it if the server closed it while idle (as httpcore's
pool checks), or makes one; closing the response pushes it back if the body was
read to the end and the connection stayed open (not after ``Connection: close`` or
HTTP/1.0), and closes it otherwise (after an error, a cancellation, a bound too).  Idle ones older
than ``keepalive_expiry`` are closed from the cold end; all share one SSL
context, built when the first ``https`` origin is used (loading the CA bundle costs
tens of milliseconds and about 1.5 MB, which a client of a plain-HTTP local server
never needs).  Public httpx and httpcore API only, except
``httpx._utils.get_environment_proxies`` (how httpx reads the proxy variables).

Stale keep-alive: httpcore probes an idle connection before reusing it.  If the
server closes it between that probe and our write, the request fails with
WriteError, ReadError or "Server disconnected without sending a response"
before any response; on a transport taken from the stack, the request is then
sent once more, at once, on a new connection.  A new connection is never retried.

:class:`Transport`, which the Client uses, builds the ``httpx.Request`` itself
and calls the transport directly (``AsyncClient`` costs ~0.1 ms per request);
it is where httpx, httpcore and OS errors become :mod:`trillm.errors`.  trillm's
cancel scopes do the timing: the call's ``timeout`` / ``deadline`` bound the connect
phase too, and httpx gets a connect limit of its own only when the Client was given
``connect_timeout=`` (a fixed default would fail requests of a process busy opening
thousands of connections, which the server never refused).  It reads raw
bodies and decodes gzip / deflate itself, within ``max_response_bytes`` and the
decompression-bomb bound of :mod:`trillm._body_limits`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import ssl
import zlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias, cast

import httpx
import trio
from httpx._utils import get_environment_proxies  # private: how httpx reads the proxy env

from . import errors
from ._body_iterators import DelayedChunks, OneChunk
from ._body_limits import BodyLimitExceeded, inflater_for, over_size
from ._cancel import only_cancelled, raise_bare
from ._transport_errors import (
    WireErrorKind,
    bad_request,
    header_error,
    too_large,
    wire_error,
)
from ._wire import HTTPRequestSpec, RawResponse

if TYPE_CHECKING:
    import httpcore

    from ._statistics import TransportStatistics
    from ._stream_body import StreamingBody

__all__ = ["StackTransport", "Transport", "route_default_transport"]

USER_AGENT = "trillm/0.1.0"
# gzip for whole bodies (as the official SDKs ask; decoded here, within the bounds of
# _body_limits); none for streams, whose chunks are read from the response stream itself.
# As bytes: httpx keeps bytes as they are (a str is encoded again on every request).
_SEND_HEADERS = ((b"user-agent", USER_AGENT.encode()), (b"accept", b"application/json"),
                 (b"accept-encoding", b"gzip, deflate"))
_STREAM_HEADERS = ((b"user-agent", USER_AGENT.encode()), (b"accept", b"application/json"),
                   (b"accept-encoding", b"identity"))
_DEFAULT_NAMES = frozenset(name.decode() for name, _ in _SEND_HEADERS + _STREAM_HEADERS)
_CONTENT_TYPE_JSON = (b"content-type", b"application/json")
_Headers = tuple[tuple[bytes, bytes], ...]


def _extensions(connect_timeout: float | None) -> dict[str, Any]:
    """The request extensions telling httpcore its limits: none but *connect_timeout*."""
    return {"timeout": httpx.Timeout(None, connect=connect_timeout).as_dict()}
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # == json.dumps(...)
_CLOSE_TIMEOUT = 1.0  # seconds a shielded close may take
DEFAULT_MAX_RESPONSE_BYTES = 256 * 2**20
_STALE: tuple[type[Exception], ...] = (
    httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError)
# httpx maps httpcore's errors to its own, but a few paths (closing nested body
# generators) can still let one through.  httpcore is imported on first use, as
# httpx itself does, to keep `import trillm` cheap: _load_httpcore() widens these
# tuples when the first Transport is made, before anything can raise them.
_BAD_URL: tuple[type[Exception], ...] = (httpx.InvalidURL, httpx.UnsupportedProtocol)
_LOCAL_PROTOCOL: tuple[type[Exception], ...] = (httpx.LocalProtocolError,)
_PROXY: tuple[type[Exception], ...] = (httpx.ProxyError,)
_CONNECT_TIMEOUT: tuple[type[Exception], ...] = (httpx.ConnectTimeout,)
_CONNECT: tuple[type[Exception], ...] = (httpx.ConnectError,)
#: httpcore's errors that a direct connection's request or body may raise, each raised
#: as httpx's (``_as_httpx``), so a StackTransport keeps httpx's transport contract.
_CORE_ERRORS: tuple[type[Exception], ...] = ()
_HTTPX_OF: dict[type[Exception], type[Exception]] = {}
#: Everything sending or reading can raise below the Client: translated, never leaked.
_WIRE_ERRORS: tuple[type[Exception], ...] = (
    httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError,
    trio.BrokenResourceError, trio.ClosedResourceError, zlib.error,  # zlib: _body_limits
)


def _load_httpcore() -> None:
    global _BAD_URL, _LOCAL_PROTOCOL, _PROXY, _CONNECT_TIMEOUT, _CONNECT, _WIRE_ERRORS
    global _STALE, _CORE_ERRORS, httpcore
    if len(_LOCAL_PROTOCOL) > 1:
        return
    import httpcore

    _BAD_URL += (httpcore.UnsupportedProtocol,)
    _LOCAL_PROTOCOL += (httpcore.LocalProtocolError,)
    _PROXY += (httpcore.ProxyError,)
    _CONNECT_TIMEOUT += (httpcore.ConnectTimeout,)
    _CONNECT += (httpcore.ConnectError,)
    _WIRE_ERRORS += (
        httpcore.ConnectionNotAvailable, httpcore.ProxyError, httpcore.UnsupportedProtocol,
        httpcore.ProtocolError, httpcore.TimeoutException, httpcore.NetworkError,
    )
    # a reused connection httpcore finds busy or broken: sent again on a new one
    _STALE += (httpcore.ConnectionNotAvailable,)
    _CORE_ERRORS = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
                    httpcore.ProxyError, httpcore.UnsupportedProtocol)
    _HTTPX_OF.update({  # httpx's own table (httpx/_transports/default.py)
        httpcore.TimeoutException: httpx.TimeoutException,
        httpcore.ConnectTimeout: httpx.ConnectTimeout,
        httpcore.ReadTimeout: httpx.ReadTimeout,
        httpcore.WriteTimeout: httpx.WriteTimeout,
        httpcore.PoolTimeout: httpx.PoolTimeout,
        httpcore.NetworkError: httpx.NetworkError,
        httpcore.ConnectError: httpx.ConnectError,
        httpcore.ReadError: httpx.ReadError,
        httpcore.WriteError: httpx.WriteError,
        httpcore.ProxyError: httpx.ProxyError,
        httpcore.UnsupportedProtocol: httpx.UnsupportedProtocol,
        httpcore.ProtocolError: httpx.ProtocolError,
        httpcore.LocalProtocolError: httpx.LocalProtocolError,
        httpcore.RemoteProtocolError: httpx.RemoteProtocolError,
    })


def _as_httpx(exc: Exception) -> Exception:
    """httpx's error for one of httpcore's, with its text (as httpx's transport maps it)."""
    for kind in type(exc).__mro__:
        mapped = _HTTPX_OF.get(kind)
        if mapped is not None:
            return mapped(str(exc))
    return exc


# ---------------------------------------------------------------- the stack transport


class _ProxyRule:
    """One proxy mount (``all://*.example.com``...), matched as ``httpx.AsyncClient`` does."""

    def __init__(self, pattern: str, proxy: httpx.Proxy | None) -> None:
        url = httpx.URL(pattern)
        self.proxy, self.port = proxy, url.port
        self.scheme = "" if url.scheme == "all" else url.scheme
        self.host = "" if url.host == "*" else url.host  # "*.x": subdomains; "*x": x too
        self.priority = (self.port is None, -len(self.host), -len(self.scheme))

    def matches(self, url: httpx.URL) -> bool:
        host, want = url.host, self.host
        if (self.scheme and self.scheme != url.scheme) or self.port not in (None, url.port):
            return False
        if want.startswith("*."):
            return host.endswith(want[1:]) and len(host) > len(want) - 1
        if want.startswith("*"):
            return host == want[1:] or host.endswith("." + want[1:])
        return not want or host == want


def _proxy_rules(proxy: str | None, trust_env: bool) -> list[_ProxyRule]:
    if proxy is not None:
        return [_ProxyRule("all://", httpx.Proxy(proxy))]
    env = get_environment_proxies() if trust_env else {}
    rules = [_ProxyRule(k, None if v is None else httpx.Proxy(v)) for k, v in env.items()]
    return sorted(rules, key=lambda r: r.priority)  # most specific first, as httpx does


# One connection on a stack: httpcore's own for a direct origin, a one-connection httpx
# transport for an origin reached through a proxy.
if TYPE_CHECKING:
    _Conn: TypeAlias = httpcore.AsyncHTTPConnection | httpx.AsyncHTTPTransport
else:
    _Conn = Any
# An origin's free connections and when each was freed; the right end is the warmest.
_Free = deque[tuple[_Conn, float]]
# Per origin: its free connections, its proxy (None: direct) and its SSL context.
_Stack = tuple[_Free, httpx.Proxy | None, ssl.SSLContext | None]
_DEFAULT_PORTS = {b"http": 80, b"https": 443}


class StackTransport(httpx.AsyncBaseTransport):
    """Per origin, a LIFO stack of HTTP/1.1 connections (httpcore's, one by one).

    ``proxy`` applies to every request; without it, with ``trust_env``,
    HTTP(S)_PROXY / ALL_PROXY / NO_PROXY apply as in ``httpx.AsyncClient``.
    Also usable as ``httpx.AsyncClient(transport=StackTransport())``.
    """

    def __init__(
        self, *, proxy: str | None = None, trust_env: bool = True, keepalive_expiry: float = 5.0
    ) -> None:
        _load_httpcore()
        self._expiry = keepalive_expiry
        self._trust_env = trust_env
        self._ssl: ssl.SSLContext | None = None  # built for the first https origin
        # trio's, shared (a StackTransport runs under trio only): not httpcore's default of
        # one AutoBackend per connection, each asking sniffio on every connect
        self._network = httpcore.TrioBackend()
        self._limits = httpx.Limits(
            max_connections=1, max_keepalive_connections=1, keepalive_expiry=keepalive_expiry
        )
        self._rules = _proxy_rules(proxy, trust_env)
        self._stacks: dict[tuple[bytes, bytes, int | None], _Stack] = {}
        self._busy: set[_Conn] = set()
        self._closed = False

    def proxy_for(self, url: httpx.URL) -> httpx.Proxy | None:
        """The proxy a request to *url* goes through (None: direct)."""
        return next((rule.proxy for rule in self._rules if rule.matches(url)), None)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("this trillm transport is closed")
        url = request.url
        key = (url.raw_scheme, url.raw_host, url.port)
        stack = self._stacks.get(key)
        if stack is None:
            if url.scheme not in ("http", "https"):
                raise httpx.UnsupportedProtocol(f"unsupported protocol '{url.scheme}://'")
            stack = self._stacks[key] = (deque(), self.proxy_for(url), self._verify(url))
        free, proxy, verify = stack
        if free and free[0][1] < trio.current_time() - self._expiry:
            await self._expire(free)
        fresh = not free
        while True:
            if self._closed:  # closed while this request awaited (an expiry, a close)
                raise RuntimeError("this trillm transport is closed")
            if fresh:
                conn = self._connection(url, proxy, verify)
            else:
                conn = free.pop()[0]
                if proxy is None and cast("httpcore.AsyncHTTPConnection", conn).has_expired():
                    # the server closed it while it was idle
                    await _close_all([conn])
                    fresh = not free
                    continue
            self._busy.add(conn)
            response: httpx.Response | None = None
            try:
                if proxy is None:
                    # as httpx's transport sends to its pool, inline: no frame of its own
                    # held for every request in flight
                    try:
                        answer = await cast("httpcore.AsyncHTTPConnection",
                                            conn).handle_async_request(_core_request(request))
                    except _CORE_ERRORS as exc:
                        raise _as_httpx(exc) from exc
                    response = httpx.Response(answer.status, headers=answer.headers,
                                              stream=cast(httpx.AsyncByteStream, answer.stream),
                                              extensions=answer.extensions)
                else:
                    response = await cast(httpx.AsyncHTTPTransport, conn).handle_async_request(
                        request)
            except _STALE as exc:  # a reused connection the server had closed: retry once
                if fresh or (isinstance(exc, httpx.RemoteProtocolError)
                             and "without sending a response" not in str(exc)):
                    raise
                if not isinstance(request.stream, _Body | httpx.ByteStream):
                    raise  # a body that can be sent once only (a caller's generator)
                fresh = True
            finally:
                if response is None:  # an error or a cancellation: the connection is suspect
                    with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                        await self._discard(conn)
            if response is not None:
                inner = cast(httpx.AsyncByteStream, response.stream)
                network = response.extensions.get("network_stream")
                response.stream = _GiveBack(inner, self, free, conn, network)
                return response

    def _connection(self, url: httpx.URL, proxy: httpx.Proxy | None,
                    verify: ssl.SSLContext | None) -> _Conn:
        """A new connection to *url*'s origin (opened by its first request)."""
        if proxy is not None:
            return httpx.AsyncHTTPTransport(verify=cast(ssl.SSLContext, verify),
                                            limits=self._limits, proxy=proxy)
        port = url.port or _DEFAULT_PORTS[url.raw_scheme]
        return httpcore.AsyncHTTPConnection(httpcore.Origin(url.raw_scheme, url.raw_host, port),
                                            ssl_context=verify, keepalive_expiry=self._expiry,
                                            network_backend=self._network)

    def _verify(self, url: httpx.URL) -> ssl.SSLContext | None:
        """The ``verify=`` of an origin's transports: the Client's one SSL context for
        ``https``.  A plain ``http`` origin never does TLS (its transports are its own; a
        proxy's TLS is the proxy's): its transports get None, which httpx passes on as it
        is, so no context is built for it (httpcore would build its own verifying one if
        TLS were ever asked of it, never an unverified one)."""
        if url.scheme != "https":
            return None
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context(trust_env=self._trust_env)  # loaded once
        return self._ssl

    async def _discard(self, conn: _Conn) -> None:
        self._busy.discard(conn)
        await _close_all([conn])

    async def _expire(self, free: _Free) -> None:
        limit, old = trio.current_time() - self._expiry, []
        while free and free[0][1] < limit:
            old.append(free.popleft()[0])
        await _close_all(old)

    def statistics(self) -> TransportStatistics:
        """Connections waiting on the stacks, and checked out."""
        idle = sum(len(stack[0]) for stack in self._stacks.values())
        from ._statistics import TransportStatistics

        return TransportStatistics(idle_connections=idle, active_connections=len(self._busy))

    async def aclose(self) -> None:
        """Close every idle connection now; checked-out ones are closed when given back."""
        self._closed = True
        idle = [t for stack in self._stacks.values() for t, _ in stack[0]]
        for stack in self._stacks.values():
            stack[0].clear()  # a request between awaits must not pop one closed here
        self._stacks.clear()
        await _close_all(idle)


def _core_request(request: httpx.Request) -> httpcore.Request:
    """httpcore's request for *request*, as httpx's transport makes it (the body stays
    httpcore's: ``_GiveBack`` maps its errors)."""
    url = request.url
    return httpcore.Request(
        request.method,
        httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
        headers=request.headers.raw, content=request.stream, extensions=request.extensions,
    )


class _GiveBack(httpx.AsyncByteStream):
    """A response body that gives its connection back to the stack when closed."""

    def __init__(self, inner: httpx.AsyncByteStream, owner: StackTransport, free: _Free,
                 transport: _Conn, network: object) -> None:
        self._inner, self._owner, self._free = inner, owner, free
        self._transport: _Conn | None = transport
        self._network = network  # httpcore's network stream (a public response extension)
        self._done = self.broken = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._inner:
                yield part
        except _CORE_ERRORS as exc:  # a direct connection's body: httpx's error, as httpx's
            raise _as_httpx(exc) from exc
        self._done = True  # the whole body arrived: the connection can be reused

    async def aclose(self) -> None:
        transport, self._transport = self._transport, None
        if transport is None:
            return
        reusable = False
        try:
            if not self.broken:  # broken: its socket was closed under it, so httpcore must
                try:  # not see it as idle (it would probe fd -1)
                    await self._inner.aclose()
                except _CORE_ERRORS as exc:
                    raise _as_httpx(exc) from exc
                reusable = self._done and not self._owner._closed and _still_open(self._network)
        finally:
            if reusable:
                self._owner._busy.discard(transport)
                self._free.append((transport, trio.current_time()))
            else:
                with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                    await self._owner._discard(transport)


def _still_open(network: object) -> bool:
    """False once httpcore closed the connection after a response (``Connection: close``,
    HTTP/1.0): such a transport has nothing left to reuse and must not count as idle."""
    get_extra_info = getattr(network, "get_extra_info", None)
    sock = None if get_extra_info is None else get_extra_info("socket")
    return sock is None or sock.fileno() != -1


async def _close_all(conns: list[_Conn]) -> None:
    """Close connections, shielded from cancellation and bounded in time; errors don't
    matter."""
    if conns:
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            for conn in conns:
                with contextlib.suppress(*_WIRE_ERRORS):
                    await conn.aclose()


async def _close_response(response: httpx.Response) -> None:
    """``response.aclose()``, shielded and bounded in time; errors don't matter."""
    if not response.is_closed:
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True), contextlib.suppress(*_WIRE_ERRORS):
            await response.aclose()


class _Body(httpx.AsyncByteStream):
    """A request body sent as one chunk from a plain iterator object.

    httpx's own byte stream iterates with an async generator; when the caller
    cancels in the middle of sending (a large upload), that generator is left
    suspended and trio warns when it is collected.  An iterator object has
    nothing to finalize.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return OneChunk(self._data)


# ---------------------------------------------------------------- in-process answers


async def _answer_locally(spec: HTTPRequestSpec) -> httpx.Response:
    """The response of a request that ``spec.local`` answers in this process.

    Its latency and chunk delays are ``trio.sleep``s, so virtual time drives
    them; its error is raised as given (a fresh copy per attempt, so retries
    never pile notes onto the caller's instance) and is not translated.
    """
    assert spec.local is not None
    answer = spec.local(spec)
    if answer.latency:
        await trio.sleep(answer.latency)
    else:
        await trio.lowlevel.checkpoint()
    if answer.error is not None:
        try:
            error = copy.copy(answer.error)
        except Exception:  # noqa: BLE001 - one that cannot be copied is raised as given
            error = answer.error
        raise error
    return httpx.Response(answer.status, headers=list(answer.headers),
                          stream=_LocalBody(answer.chunks, answer.chunk_delay))


class _LocalBody(httpx.AsyncByteStream):
    """An in-process body: its chunks, each after *delay* seconds (an iterator object,
    so a cancelled read leaves no async generator to finalize)."""

    def __init__(self, chunks: tuple[bytes, ...], delay: float) -> None:
        self._chunks, self._delay = chunks, delay

    def __aiter__(self) -> AsyncIterator[bytes]:
        return DelayedChunks(self._chunks, self._delay)


# ---------------------------------------------------------------- what the Client uses


async def _abandon(response: httpx.Response, chunks: AsyncGenerator[bytes, None]) -> None:
    """Stop reading a body before its end: close its connection (never reused) and finish
    the body generators.  Shielded, bounded in time, never raises (Cancelled included)."""
    with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
        network = response.extensions.get("network_stream")
        if network is not None:
            # aclose() on the outer of httpx's and httpcore's nested body generators
            # leaves the inner ones suspended, and trio warns when they are collected.
            # Closing the socket and reading on makes all of them raise and finish.
            if isinstance(response.stream, _GiveBack):
                response.stream.broken = True  # never reuse, even if all was read
            with contextlib.suppress(*_WIRE_ERRORS):
                await network.aclose()
            with contextlib.suppress(StopAsyncIteration, RuntimeError, *_WIRE_ERRORS):
                while True:
                    await chunks.__anext__()
        # RuntimeError: being read in another task; closing the response closes the socket.
        with contextlib.suppress(RuntimeError, *_WIRE_ERRORS):
            await getattr(chunks, "aclose", _no_close)()
    await _close_response(response)


async def _no_close() -> None:
    pass


#: Where every Transport without a user transport sends instead of the network (the test
#: kit's ``fake_llm`` fixture sets it); read once per request.
_ROUTE: httpx.AsyncBaseTransport | None = None


def route_default_transport(transport: httpx.AsyncBaseTransport | None) -> None:
    """Send every request of every Client made without ``transport=`` (the default
    Client and the sync API's included) to *transport*; None restores the network."""
    global _ROUTE
    _ROUTE = transport


class Transport:
    """Sends :class:`HTTPRequestSpec` requests; one per Client.

    ``transport=None`` builds a :class:`StackTransport`; any other
    ``httpx.AsyncBaseTransport`` (``httpx.MockTransport`` too) is used as given
    and stays the user's to close: :meth:`aclose` leaves it open and
    :meth:`statistics` reports zeros for it.  ``max_response_bytes`` bounds the
    decoded bytes of one response, whole or streamed (``math.inf``: no bound;
    see :mod:`trillm._body_limits`); the Client passes its own on.
    ``connect_timeout`` (seconds, None: none of its own) bounds opening a connection,
    within the call's own time limits.
    """

    __slots__ = ("_connect_timeout", "_extensions", "_header_cache", "_max_bytes", "_stack",
                 "_transport", "_urls")

    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None,
                 proxy: str | None = None, trust_env: bool = True,
                 keepalive_expiry: float = 5.0,
                 max_response_bytes: float = DEFAULT_MAX_RESPONSE_BYTES,
                 connect_timeout: float | None = None) -> None:
        if not max_response_bytes > 0:  # NaN too
            raise ValueError("max_response_bytes must be a number of bytes > 0 "
                             f"(math.inf: no bound), not {max_response_bytes!r}")
        if connect_timeout is not None and not connect_timeout > 0:
            raise ValueError(f"connect_timeout must be seconds > 0 or None, "
                             f"not {connect_timeout!r}")
        if connect_timeout == math.inf:
            connect_timeout = None
        self._max_bytes = max_response_bytes
        self._connect_timeout = connect_timeout
        self._extensions = _extensions(connect_timeout)
        _load_httpcore()
        self._stack: StackTransport | None = None
        if transport is None:
            transport = self._stack = StackTransport(
                proxy=proxy, trust_env=trust_env, keepalive_expiry=keepalive_expiry
            )
        elif proxy is not None:
            raise ValueError("pass proxy= or transport=, not both")
        self._transport = transport
        self._urls: dict[str, httpx.URL] = {}  # each URL parsed once: ~9 us per request
        # a request's own headers as sent, by the tuple the provider built (see _headers_of)
        self._header_cache: dict[tuple[tuple[str, str], ...],
                                 tuple[AbstractSet[str], tuple[tuple[Any, Any], ...]]] = {}

    def _build(self, spec: HTTPRequestSpec, defaults: _Headers) -> httpx.Request:
        """The ``httpx.Request`` of *spec* (a plain function: nothing it uses to build the
        request stays alive, in a suspended frame, while the answer is awaited)."""
        try:
            names, given = self._headers_of(spec.headers)
            # (bytes, bytes) and (str, str) pairs: httpx takes each as it is
            headers: list[Any] = list(defaults) if names.isdisjoint(_DEFAULT_NAMES) else [
                h for h in defaults if h[0].decode() not in names]
            headers.extend(given)
            content = spec.content
            if spec.json is not None:
                content = _JSON.encode(spec.json).encode()
                if "content-type" not in names:
                    headers.append(_CONTENT_TYPE_JSON)
            url = self._urls.get(spec.url)
            if url is None:
                if len(self._urls) >= 64:
                    self._urls.clear()
                url = self._urls[spec.url] = httpx.URL(spec.url)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise _bad_request(exc, spec) from exc
        # A header httpx or h11 refuses is raised unchained, outside the except block:
        # their texts quote the value, and a value may be an API key (a newline from a file).
        try:
            if content is None:
                return httpx.Request(spec.method, url, headers=headers,
                                     extensions=self._extensions)
            # our own body stream: httpx's is an async generator (see _Body)
            # httpx adds Host and Content-Length only to bodies it streams itself
            headers.append((b"host", url.netloc))
            headers.append((b"content-length", b"%d" % len(content)))
            return httpx.Request(spec.method, url, headers=headers, stream=_Body(content),
                                 extensions=self._extensions)
        except (ValueError, TypeError):  # UnicodeEncodeError included
            pass
        raise header_error(headers, spec) from None

    def _headers_of(self, pairs: tuple[tuple[str, str], ...]
                    ) -> tuple[AbstractSet[str], tuple[tuple[Any, Any], ...]]:
        """The lower-case names of a request's own headers, and the headers as httpx is
        given them: ASCII bytes, encoded once per distinct set of headers (a provider hands
        every request the same tuple) rather than by httpx on every request; as they are
        when one is not ASCII text, for httpx to refuse as before."""
        try:
            hit = self._header_cache.get(pairs)
        except TypeError:  # an unhashable value: httpx refuses it
            return {name.lower() for name, _ in pairs}, pairs
        if hit is None:
            names = frozenset(name.lower() for name, _ in pairs)
            encoded: tuple[tuple[Any, Any], ...]
            try:
                encoded = tuple((name.encode("ascii"), value.encode("ascii"))
                                for name, value in pairs)
            except (AttributeError, UnicodeError):
                encoded = pairs
            if len(self._header_cache) >= 64:
                self._header_cache.clear()
            hit = self._header_cache[pairs] = (names, encoded)
        return hit

    def _sender(self) -> httpx.AsyncBaseTransport:
        return self._transport if _ROUTE is None or self._stack is None else _ROUTE

    def _not_sent(self, exc: BaseException, spec: HTTPRequestSpec,
                  request: httpx.Request) -> NoReturn:
        """Raise, in the ``except`` block of a send that failed, what the caller sees instead
        of *exc* (a wire error, or a group from trio's connect nursery)."""
        if not isinstance(exc, BaseExceptionGroup):
            proxy = None if self._stack is None else self._stack.proxy_for(request.url)
            via = None if proxy is None else str(proxy.url)
            raise _translate(cast(Exception, exc), spec, in_body=False, via=via,
                             connect_timeout=self._connect_timeout) from exc
        cancelled = only_cancelled(exc)
        if cancelled is not None:
            raise_bare(cancelled)  # one bare Cancelled: a single call never raises a group
        raise  # the group being handled, as it is

    async def _request(self, spec: HTTPRequestSpec, defaults: _Headers) -> httpx.Response:
        if spec.local is not None:  # answered in this process (the mock): no connection
            return await _answer_locally(spec)
        request = self._build(spec, defaults)
        try:
            return await self._sender().handle_async_request(request)
        except _LOCAL_PROTOCOL:
            pass  # h11 refused a header: raised below, unchained
        except _WIRE_ERRORS as exc:
            self._not_sent(exc, spec, request)
        except BaseExceptionGroup as group:  # from trio's connect nursery (happy eyeballs)
            self._not_sent(group, spec, request)
        raise header_error(request.headers.raw, spec) from None

    async def send(self, spec: HTTPRequestSpec) -> RawResponse:
        """Send *spec*, read the whole (decoded) body and close the response.

        The body is decoded here, never past ``max_response_bytes`` nor a
        decompression bomb's first MiB (httpx's ``aread()`` would inflate it all).
        """
        # _request's steps inline: one suspended frame fewer per request in flight
        if spec.local is not None:  # answered in this process (the mock): no connection
            response = await _answer_locally(spec)
        else:
            request = self._build(spec, _SEND_HEADERS)
            sent: httpx.Response | None = None
            try:
                sent = await self._sender().handle_async_request(request)
            except _LOCAL_PROTOCOL:
                pass  # h11 refused a header: raised below, unchained
            except _WIRE_ERRORS as exc:
                self._not_sent(exc, spec, request)
            except BaseExceptionGroup as group:  # from trio's connect nursery (happy eyeballs)
                self._not_sent(group, spec, request)
            if sent is None:
                raise header_error(request.headers.raw, spec) from None
            response = sent
        # the body as the transport gives it (not decoded)
        chunks = cast(AsyncGenerator[bytes, None],
                      cast(httpx.AsyncByteStream, response.stream).__aiter__())
        limit = self._max_bytes
        parts: list[bytes] = []
        finished = False  # not response.is_closed: httpx closes a Response(content=...) at once
        try:
            inflater = inflater_for(response.headers.get("content-encoding"), limit)
            if inflater is None:
                size = 0
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise over_size(limit)
                    parts.append(chunk)
            else:
                async for chunk in chunks:
                    inflater.feed(chunk)
                    while piece := inflater.pull():
                        parts.append(piece)
                parts.append(inflater.finish())
            await response.aclose()  # all read: the connection goes back to the stack
            finished = True
        except _WIRE_ERRORS as exc:
            raise _translate(exc, spec, in_body=True) from exc
        except BodyLimitExceeded as exc:
            raise too_large(exc, spec) from None
        finally:
            if not finished:  # an error, a bound or a cancellation mid-body
                with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                    await _abandon(response, chunks)
        return RawResponse(response.status_code, response.headers, b"".join(parts))

    async def open_stream(self, spec: HTTPRequestSpec) -> StreamingBody:
        """Send *spec* and return once the response headers arrived."""
        from ._stream_body import StreamingBody  # with the first stream

        return StreamingBody(await self._request(spec, _STREAM_HEADERS), spec, self._max_bytes,
                             self)

    # What a StreamingBody asks of the transport that opened it (_stream_body.BodyOwner).
    @property
    def wire_errors(self) -> tuple[type[Exception], ...]:
        """What reading a body can raise below the Client (translated, never leaked)."""
        return _WIRE_ERRORS

    def body_error(self, exc: Exception, spec: HTTPRequestSpec) -> errors.APIError:
        """The trillm error for *exc*, raised while a body of *spec* was read."""
        return _translate(exc, spec, in_body=True)

    async def abandon(self, response: httpx.Response,
                      chunks: AsyncGenerator[bytes, None]) -> None:
        """Stop reading *response*'s body (*chunks*: its iterator) and close its connection
        (see ``_abandon``)."""
        await _abandon(response, chunks)

    async def close_response(self, response: httpx.Response) -> None:
        """Close *response*, its body read to the end (its connection given back)."""
        await _close_response(response)

    async def aclose(self) -> None:
        """Close every pooled connection (a user-supplied transport is left open)."""
        if self._stack is not None:
            await self._stack.aclose()

    def statistics(self) -> TransportStatistics:
        """Idle and checked-out pooled connections (zeros for a user-supplied transport)."""
        if self._stack is None:
            from ._statistics import TransportStatistics

            return TransportStatistics(idle_connections=0, active_connections=0)
        return self._stack.statistics()


# ---------------------------------------------------------------- error translation


def _bad_request(exc: Exception, spec: HTTPRequestSpec) -> errors.APIError:
    return bad_request(exc, spec, bad_url=isinstance(exc, _BAD_URL))


def _translate(exc: Exception, spec: HTTPRequestSpec, *, in_body: bool,
              via: str | None = None, connect_timeout: float | None = None) -> errors.APIError:
    """The trillm error for a wire error (raised ``from exc``); *via* is the proxy used."""
    return wire_error(exc, spec, _kind_of(exc), in_body=in_body, via=via,
                      connect_timeout=connect_timeout)


def _kind_of(exc: Exception) -> WireErrorKind:
    """Which of httpx's and httpcore's error classes *exc* is, as _transport_errors asks."""
    if isinstance(exc, _BAD_URL):
        return "bad_url"
    if isinstance(exc, _LOCAL_PROTOCOL):
        return "local_protocol"
    if isinstance(exc, _PROXY):
        return "proxy"
    if isinstance(exc, _CONNECT_TIMEOUT):
        return "connect_timeout"
    if isinstance(exc, _CONNECT):
        return "connect"
    if isinstance(exc, httpx.DecodingError | zlib.error):
        return "decoding"
    return "broken"
