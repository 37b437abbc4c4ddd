"""Bounds on one response body: its decoded size, and how far a compressed one inflates.

``max_response_bytes`` (a Transport keyword, which the Client's passes on; 256
MiB by default, ``math.inf`` for none) bounds the decoded bytes of one response, whole or
streamed, identity or compressed.  A compressed body is also refused once it
passes 1 MiB decoded at more than 100:1 (decoded to compressed bytes): no real
JSON answer compresses past ~20:1, a gzip bomb does ~1000:1.

:class:`Inflater` decodes gzip and deflate incrementally with zlib's
``max_length``, so inflating never runs more than :data:`STEP` bytes past a
bound, however much one network read would inflate to (64 KiB of a gzip bomb
is 64 MiB).  httpx's own decoders inflate each read whole.  Other codings are
passed through undecoded (trillm asks for gzip and deflate only; httpx too
ignores codings it cannot decode).  Pure: zlib only; the transport does the I/O.
"""

from __future__ import annotations

import math
import zlib

__all__ = ["MAX_RATIO", "RATIO_FLOOR", "STEP", "BodyLimitExceeded", "Inflater", "inflater_for",
           "over_size"]

STEP = 64 * 1024  # most decoded bytes one inflate step makes
RATIO_FLOOR = 2**20  # the ratio bound applies past this many decoded bytes
MAX_RATIO = 100
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class BodyLimitExceeded(Exception):
    """A response body passed a bound; ``str()`` says which and names the knob."""


def _size(n: float) -> str:
    if n >= 2**20:
        return f"{n / 2**20:.4g} MiB"
    return f"{n / 1024:.4g} KiB" if n >= 1024 else f"{n:g} bytes"


def over_size(limit: float) -> BodyLimitExceeded:
    """The error for a body past *limit* decoded bytes."""
    return BodyLimitExceeded(
        f"is larger than max_response_bytes={limit:,.0f} ({_size(limit)}): pass a larger "
        "max_response_bytes= to the Client (math.inf: no bound) if such answers are expected"
    )


def inflater_for(content_encoding: str | None, limit: float) -> Inflater | None:
    """An :class:`Inflater` for a gzip or deflate body, None for any other."""
    if content_encoding is None or content_encoding == "identity":  # the common cases first
        return None
    codings = [c for c in content_encoding.lower().replace(" ", "").split(",")
               if c and c != "identity"]
    if len(codings) != 1 or codings[0] not in _WBITS:
        return None  # not ours to decode: br, zstd, stacked codings (never asked for)
    return Inflater(_WBITS[codings[0]], limit)


class Inflater:
    """Incremental gzip / deflate decoding in bounded steps, enforcing both bounds.

    ``feed(raw)``, then ``pull()`` until it gives ``b""`` (more input needed);
    at the end of the body, ``finish()`` once.  Raises :class:`BodyLimitExceeded`
    past a bound and ``zlib.error`` on corrupt data.
    """

    __slots__ = ("_decoded", "_fed", "_finished", "_floor", "_limit", "_pending", "_raw_ok",
                 "_z")

    def __init__(self, wbits: int, limit: float) -> None:
        self._z = zlib.decompressobj(wbits)
        self._raw_ok = wbits == zlib.MAX_WBITS  # "deflate" may come without zlib's header
        self._pending = b""  # input not consumed yet
        self._fed = self._decoded = 0
        self._limit = limit
        self._floor = RATIO_FLOOR if limit != math.inf else math.inf  # inf: no bound at all
        self._finished = False

    def feed(self, data: bytes) -> None:
        self._pending = self._pending + data if self._pending else data
        self._fed += len(data)

    def pull(self) -> bytes:
        """The next decoded bytes (at most :data:`STEP`), ``b""`` when more input is needed."""
        if self._z.eof or self._finished:  # data after the end is ignored, as httpx does
            self._pending = b""
            return b""
        try:
            piece = self._z.decompress(self._pending, STEP)
        except zlib.error:
            if not self._raw_ok:
                raise
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as httpx retries
            piece = self._z.decompress(self._pending, STEP)
        if self._pending:
            self._raw_ok = False  # the header checked out
        self._pending = self._z.unconsumed_tail
        if piece:
            self._count(len(piece))
        return piece

    def finish(self) -> bytes:
        """At the end of the body (every ``pull()`` done): what zlib still holds, once."""
        if self._z.eof or self._finished:
            return b""
        self._finished = True
        rest = self._z.flush()  # a truncated body's last bytes (small: all input is consumed)
        self._count(len(rest))
        return rest

    def _count(self, n: int) -> None:
        self._decoded += n
        if self._decoded > self._limit:
            raise over_size(self._limit)
        if self._decoded > self._floor:
            used = self._fed - len(self._pending)
            if self._decoded > MAX_RATIO * used:
                raise BodyLimitExceeded(
                    f"inflates past {MAX_RATIO}:1 ({_size(self._decoded)} from {_size(used)} "
                    "compressed): refused as a likely decompression bomb (no real answer "
                    "compresses past ~20:1); max_response_bytes=math.inf on the Client turns "
                    "both bounds off"
                )
