"""``RedisRateStore``: rate limits shared by every worker, on a Redis or Valkey server.

Several processes (on one machine or many) that must share one provider quota
give their Clients the same store::

    store = RedisRateStore("redis://cache.internal:6379", prefix="trillm")
    async with trillm.Client(rate_limits={"openai": RateLimit(rpm=3000)},
                             rate_store=store) as client:
        ...

The arithmetic is :mod:`trillm.limits`' GCRA in reservation form, done by one
Lua script on the server, on the server's clock (``TIME``): workers whose
clocks disagree still agree on the schedule, because no worker's clock is
read.  Each booking is one round trip (``EVALSHA``) that answers "wait this
long"; nobody polls.  A request counted against several keys (a model and
its provider) is booked on all of them in that one call, at the slowest
key's slot (:meth:`~trillm.limits.RateStore.reserve_many`).  A 429's pause
and the token corrections after a response go to the same keys, so a pause
set by one worker holds back every worker's next request on that key.

Each key is a hash (the ``TAT`` per dimension, the pause, the last start)
plus a list of the bookings whose start has not come (so a booking given
back under cancellation is undone exactly, as in the in-memory store), both
named ``{prefix}:rate:<key>``: the prefix is a hash tag, so every key of one
store lives in one slot and a multi-key script is legal on a cluster too.
Keys expire a minute after their schedule runs out.  Each process passes its
limits with every call (the server keeps only times), so every worker must
configure the same limits.

Failures: every call to the server runs under a time limit (``timeout``,
1 s by default), so a dead or stuck server never hangs a request.  A
booking that fails raises :class:`trillm.errors.RateStoreError` naming the
store (``on_store_error="fail"``, the default) or, with ``"allow"``, is
logged at WARNING and lets the request go unpaced.  A correction that fails
(a pause, a give-back, a token settlement) is logged and dropped in both
modes: it never fails a request that was already sent or is being
cancelled.  coredis reconnects on the next call once the server is back.

The connection belongs to a trio system task started on first use in each
trio run (coredis needs a task to own its connection pool; a system task
keeps coredis' own tasks out of the caller's nursery), closed when the run
ends or by :meth:`RedisRateStore.aclose`.  This is the only module that
imports coredis (``pip install trillm[redis]``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs
import trio

try:
    import coredis
    import coredis.retry
except ImportError as exc:
    raise ImportError("trillm.redis needs coredis: pip install 'trillm[redis]'") from exc

from . import errors
from ._records import record_repr
from .limits import REQUESTS, TOKENS, RateLimit

__all__ = ["RedisRateStore"]

_log = logging.getLogger("trillm")

#: How often, at most, "the store is failing" is logged again while it keeps failing.
_WARN_EVERY = 10.0
#: How long closing the connection may take, even under cancellation.
_CLOSE_TIMEOUT = 2.0

# KEYS: a (state hash, bookings list) pair per rate key.
# ARGV[1] the operation, ARGV[2] the number of rate keys, then the operation's arguments.
#   reserve: probe (1/0), max_wait (< 0: none), not_before, cost of requests, cost of tokens
#            ('' when not given), then per key: seconds per request, per token ('' when not
#            limited) and the tolerance
#   adjust:  delta of requests, of tokens ('' when not given), seconds per request, per token
#   pause:   seconds
# Times are seconds on the server's clock, stored with 17 significant digits.
_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op = ARGV[1]
local n = tonumber(ARGV[2])

local function num(s)
  if s == nil or s == false or s == '' then return nil end
  return tonumber(s)
end
local function fmt(x) return string.format('%.17g', x) end
local function split(entry)
  local f = {}
  for part in string.gmatch(entry .. '|', '([^|]*)|') do f[#f + 1] = part end
  return f
end
local function forget_started(q)
  while true do
    local head = redis.call('LINDEX', q, 0)
    if not head then return end
    if tonumber(split(head)[1]) < now then redis.call('LPOP', q) else return end
  end
end
local function keep(h, q)
  local v = redis.call('HMGET', h, 'tr', 'tt', 'pu', 'ls')
  local horizon = now
  for i = 1, 4 do
    local x = num(v[i])
    if x and x > horizon then horizon = x end
  end
  local ttl = math.ceil((horizon - now + 60) * 1000)
  redis.call('PEXPIRE', h, ttl)
  redis.call('PEXPIRE', q, ttl)
end
local function earliest(tat, cost, interval, tol)
  return math.max(tat or now, now) + math.min(0, cost * interval - tol)
end

if op == 'reserve' then
  local probe = ARGV[3] == '1'
  local max_wait = tonumber(ARGV[4])
  local not_before = tonumber(ARGV[5])
  local cr, ct = num(ARGV[6]), num(ARGV[7])
  local st = {}
  local start = now
  for i = 1, n do
    local v = redis.call('HMGET', KEYS[2 * i - 1], 'tr', 'tt', 'pu', 'ls')
    local b = 7 + 3 * (i - 1)
    st[i] = {tr = num(v[1]), tt = num(v[2]), pu = num(v[3]), ls = num(v[4]),
             ir = num(ARGV[b + 1]), it = num(ARGV[b + 2]), tol = tonumber(ARGV[b + 3])}
    if st[i].pu and st[i].pu > start then start = st[i].pu end
  end
  if probe then return fmt(start - now) end
  start = math.max(start, now + not_before)
  for i = 1, n do
    local s = st[i]
    if s.ls and s.ls > start then start = s.ls end
    if s.ir and cr then start = math.max(start, earliest(s.tr, cr, s.ir, s.tol)) end
    if s.it and ct then start = math.max(start, earliest(s.tt, ct, s.it, s.tol)) end
  end
  local wait = start - now
  if max_wait >= 0 and wait > max_wait then return false end
  for i = 1, n do
    local s, h, q = st[i], KEYS[2 * i - 1], KEYS[2 * i]
    forget_started(q)
    local mr, mt = '', ''
    if s.ir and cr then
      local tat = math.max(s.tr or now, now)
      local new = math.max(tat, start) + cr * s.ir
      redis.call('HSET', h, 'tr', fmt(new))
      mr = fmt(new - tat)
    end
    if s.it and ct then
      local tat = math.max(s.tt or now, now)
      local new = math.max(tat, start) + ct * s.it
      redis.call('HSET', h, 'tt', fmt(new))
      mt = fmt(new - tat)
    end
    local prev = ''
    if s.ls then prev = fmt(s.ls) end
    local entry = fmt(start) .. '|' .. fmt(ct or 0) .. '|' .. mr .. '|' .. mt .. '|' .. prev
    redis.call('RPUSH', q, entry)
    redis.call('HSET', h, 'ls', fmt(start))
    keep(h, q)
  end
  return fmt(wait)
elseif op == 'adjust' then
  local h, q = KEYS[1], KEYS[2]
  local dr, dt = num(ARGV[3]), num(ARGV[4])
  local ir, it = num(ARGV[5]), num(ARGV[6])
  local v = redis.call('HMGET', h, 'tr', 'tt', 'ls')
  local tr, tt, ls = num(v[1]), num(v[2]), v[3]
  forget_started(q)
  while dr and dr <= -1 do
    local entry = redis.call('RPOP', q)
    if not entry then break end
    local f = split(entry)
    if f[3] ~= '' and tr then tr = math.max(tr - tonumber(f[3]), now) end
    if f[4] ~= '' and tt then tt = math.max(tt - tonumber(f[4]), now) end
    ls = f[5]
    dr = dr + 1
    dt = (dt or 0) + tonumber(f[2])
  end
  if ir and dr and dr ~= 0 then tr = math.max(math.max(tr or now, now) + dr * ir, now) end
  if it and dt and dt ~= 0 then tt = math.max(math.max(tt or now, now) + dt * it, now) end
  if tr then redis.call('HSET', h, 'tr', fmt(tr)) end
  if tt then redis.call('HSET', h, 'tt', fmt(tt)) end
  if ls and ls ~= '' then redis.call('HSET', h, 'ls', ls) else redis.call('HDEL', h, 'ls') end
  keep(h, q)
  return '0'
elseif op == 'pause' then
  local h, q = KEYS[1], KEYS[2]
  local until_ = now + tonumber(ARGV[3])
  local pu = num(redis.call('HGET', h, 'pu'))
  if not pu or until_ > pu then redis.call('HSET', h, 'pu', fmt(until_)) end
  keep(h, q)
  return '0'
end
return redis.error_reply('trillm rate store: unknown operation ' .. tostring(op))
"""


def _number(x: float | None) -> str:
    return "" if x is None else repr(float(x))


def _check_costs(values: Mapping[str, float], what: str, *, signed: bool = False) -> None:
    for dim, value in values.items():
        if not (math.isfinite(value) and (signed or value >= 0)):
            kind = "a finite number" if signed else "a finite number >= 0"
            raise ValueError(f"{what} of {dim!r} must be {kind}, not {value!r}")


def _address(url: str) -> str:
    """*url* without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else "***@"
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{user}{host}{url.split(parts.netloc, 1)[1]}"


# coredis 6.9 makes a connection's memory streams in __init__ and closes them only in the
# `async with` that follows a successful connect: every attempt against a dead server
# left six open streams, each a ResourceWarning when collected.  Closing them when
# run() ends, however it ends, is what the `async with` would have done.
_BUFFERS = ("_write_buffer_in", "_write_buffer_out", "_push_message_buffer_in",
            "_push_message_buffer_out", "_streamed_message_buffer_in",
            "_streamed_message_buffer_out")


class _ClosesItsBuffers:
    async def run(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().run(*args, **kwargs)  # type: ignore[misc]
        finally:
            for name in _BUFFERS:
                stream = getattr(self, name, None)
                if stream is not None:
                    stream.close()


def _client(url: str, timeout: float) -> Any:
    """A coredis client for *url* that never retries on its own (a script that ran but
    whose answer was lost must not be run twice) and connects within *timeout*."""
    pool = coredis.ConnectionPool.from_url(url, connect_timeout=timeout)
    pool.connection_class = type(
        "Connection", (_ClosesItsBuffers, pool.connection_class), {})
    return coredis.Redis(connection_pool=pool, retry_policy=coredis.retry.NoRetryPolicy())


@attrs.define(eq=False, repr=False)
class _Connection:
    """One trio run's connection: a coredis client owned by a system task."""

    __repr__ = record_repr

    ready: trio.Event = attrs.Factory(trio.Event)
    closing: trio.Event = attrs.Factory(trio.Event)
    done: trio.Event = attrs.Factory(trio.Event)
    client: Any = None
    script: Any = None
    failure: BaseException | None = None


class RedisRateStore:
    """A :class:`~trillm.limits.RateStore` on a Redis or Valkey server, shared by every worker.

    *url* is a ``redis://``, ``rediss://`` or ``unix://`` URL; *prefix* names
    this store's keys (``{prefix}:rate:<key>``; no braces).  *timeout* bounds
    every call to the server, connecting included.  *on_store_error* says what
    a booking does when the server fails: ``"fail"`` raises
    :class:`trillm.errors.RateStoreError`; ``"allow"`` logs at WARNING and lets
    the request go unpaced.  One store may serve several Clients, and several
    trio runs (each has its own connection).
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379",
        *,
        prefix: str = "trillm",
        on_store_error: Literal["fail", "allow"] = "fail",
        timeout: float = 1.0,
    ) -> None:
        if not isinstance(url, str) or not url:
            raise TypeError(f"url must be a redis:// URL, not {url!r}")
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be a non-empty string without braces, not {prefix!r}")
        if on_store_error not in ("fail", "allow"):
            raise ValueError(f'on_store_error must be "fail" or "allow", not {on_store_error!r}')
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
                or not (0 < timeout < math.inf):
            raise ValueError(f"timeout must be a finite number of seconds > 0, not {timeout!r}")
        self._url = url
        self._prefix = prefix
        self._on_error = on_store_error
        self._timeout = float(timeout)
        self._limits: dict[str, tuple[str, str, str]] = {}
        self._conn: trio.lowlevel.RunVar[_Connection | None] = trio.lowlevel.RunVar(
            f"trillm.redis.{id(self):x}", default=None)
        self._failing = False
        self._warned_at = -math.inf
        self.name = f"the rate-limit store at {_address(url)} (prefix {prefix!r})"

    def __repr__(self) -> str:
        return f"<RedisRateStore {_address(self._url)} prefix={self._prefix!r}>"

    # -------------------------------------------------------------- the RateStore protocol

    def configure(self, key: str, limit: RateLimit) -> None:
        """Set (or replace) *key*'s limit in this process; every worker passes the same."""
        intervals = limit.intervals()
        self._limits[key] = (_number(intervals.get(REQUESTS)), _number(intervals.get(TOKENS)),
                             repr(limit.tolerance))

    async def reserve(
        self, key: str, costs: Mapping[str, float], max_wait: float, *, not_before: float = 0.0
    ) -> float | None:
        """Book a slot on *key* now (one round trip); how long to wait, or ``None`` (refused)."""
        return await self._reserve((key,), costs, max_wait, not_before)

    async def reserve_many(
        self, keys: Sequence[str], costs: Mapping[str, float], max_wait: float
    ) -> float | None:
        """Book one request on every key at the slowest key's slot, in one script call."""
        if isinstance(keys, str):
            raise TypeError("keys must be a sequence of strings, not one string")
        return await self._reserve(tuple(dict.fromkeys(keys)), costs, max_wait, 0.0)

    async def adjust(self, key: str, delta: Mapping[str, float]) -> None:
        """Correct a booking (a negative ``requests`` gives the latest one back exactly)."""
        _check_costs(delta, "delta", signed=True)
        per_request, per_token, _ = self._limits.get(key, ("", "", "0"))
        if delta.get(REQUESTS, 0.0) > -1 and not (per_request and delta.get(REQUESTS)) \
                and not (per_token and delta.get(TOKENS)):
            await trio.lowlevel.checkpoint()  # changes no limited dimension: no round trip
            return
        args = ["adjust", "1", _number(delta.get(REQUESTS)), _number(delta.get(TOKENS)),
                per_request, per_token]
        await self._correct("a correction", key, args)

    async def pause(self, key: str, seconds: float) -> None:
        """Let nothing on *key* start, in any worker, before *seconds* from now."""
        if not (isinstance(seconds, int | float) and 0 <= seconds < math.inf):
            raise ValueError(f"pause seconds must be a finite number >= 0, not {seconds!r}")
        await self._correct("a pause", key, ["pause", "1", repr(float(seconds))])

    # -------------------------------------------------------------- lifetime

    async def aclose(self) -> None:
        """Close this trio run's connection (the next call opens a new one)."""
        conn = self._conn.get()
        if conn is not None:
            conn.closing.set()
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await conn.done.wait()
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> RedisRateStore:
        await trio.lowlevel.checkpoint()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self._conn.get()
        if conn is not None:  # no checkpoint: it must not replace an exception on its way out
            conn.closing.set()
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await conn.done.wait()

    # -------------------------------------------------------------- the calls

    def _keys(self, keys: Sequence[str]) -> list[str]:
        out = []
        for key in keys:
            name = f"{{{self._prefix}}}:rate:{key}"
            out += [name, name + ":queue"]
        return out

    async def _reserve(
        self, keys: Sequence[str], costs: Mapping[str, float], max_wait: float, not_before: float
    ) -> float | None:
        _check_costs(costs, "cost")
        if math.isnan(max_wait):
            raise ValueError("max_wait must be a number of seconds, not nan")
        if not keys:
            await trio.lowlevel.checkpoint()
            return 0.0
        args = ["reserve", str(len(keys)), "0" if costs else "1",
                "-1" if max_wait == math.inf else repr(max(float(max_wait), 0.0)),
                repr(float(not_before)), _number(costs.get(REQUESTS)),
                _number(costs.get(TOKENS))]
        for key in keys:
            args += self._limits.get(key, ("", "", "0"))
        reply, failure = await self._run(self._keys(keys), args)
        if failure is None:
            return None if reply is None else max(float(reply), 0.0)
        what = "a pause check" if not costs else "a booking"
        if self._on_error == "fail":
            raise errors.RateStoreError(
                f"{self.name} failed during {what}: {failure}") from failure
        self._warn(f"{what} failed ({failure}); the request goes unpaced")
        return 0.0

    async def _correct(self, what: str, key: str, args: list[str]) -> None:
        _, failure = await self._run(self._keys((key,)), args)
        if failure is not None:
            self._warn(f"{what} on {key!r} failed ({failure}); dropped")

    async def _run(self, keys: list[str], args: list[str]) -> tuple[Any, BaseException | None]:
        """One script call under the time limit: (its reply, None) or (None, what failed)."""
        failure: BaseException | None = None
        reply: Any = None
        with trio.move_on_after(self._timeout) as scope:
            try:
                conn = await self._connection()
                reply = await conn.script(keys=keys, args=args)
            except Exception as exc:  # noqa: BLE001 - coredis', OSError, anyio's: all "failed"
                failure = exc
        if scope.cancel_called:
            failure = TimeoutError(f"no answer within {self._timeout:g} s")
        if failure is None and self._failing:
            self._failing = False
            self._warned_at = -math.inf  # the next outage is reported at once
            _log.warning("%s answers again", self.name)
        elif failure is not None:
            self._failing = True
        return reply, failure

    async def _connection(self) -> _Connection:
        conn = self._conn.get()
        if conn is None or conn.done.is_set():
            conn = _Connection()
            self._conn.set(conn)
            trio.lowlevel.spawn_system_task(self._own, conn, name=f"trillm.redis {self._url}")
        await conn.ready.wait()
        if conn.client is None:
            raise ConnectionError(f"the connection closed ({conn.failure!r})")
        return conn

    async def _own(self, conn: _Connection) -> None:
        # A system task: it must never raise (that would be a TrioInternalError), so
        # every error of coredis' own tasks is kept and logged; Cancelled (the run
        # ending) passes.
        try:
            client = _client(self._url, self._timeout)
            async with client:
                conn.client = client
                conn.script = client.register_script(_SCRIPT)
                conn.ready.set()
                await conn.closing.wait()
        except* Exception as group:  # noqa: BLE001 - kept and logged (see above)
            conn.failure = group.exceptions[0]
            _log.debug("%s: the connection ended: %r", self.name, group)
        finally:
            conn.client = None
            conn.ready.set()
            conn.done.set()

    def _warn(self, message: str) -> None:
        now = trio.current_time()
        if now - self._warned_at >= _WARN_EVERY or now < self._warned_at:
            self._warned_at = now
            _log.warning("%s: %s", self.name, message)
