"""An open streaming response's body, read chunk by chunk within its bounds.

:class:`StreamingBody` is what ``Transport.open_stream`` returns once the headers
arrived; the stream machinery (``_stream``) reads it.  Loaded with the first stream (a
plain call never reads a body this way).  httpx is named here for type checkers only:
the response is the transport's, and so are closing it and naming its errors, which the
transport that opened it does (:class:`BodyOwner`, passed in: this module imports no
transport).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Protocol, cast

import trio

from . import errors
from ._body_limits import BodyLimitExceeded, Inflater, inflater_for, over_size
from ._transport_errors import too_large

if TYPE_CHECKING:
    import httpx

    from ._wire import HTTPRequestSpec

__all__ = ["BodyOwner", "StreamingBody"]


class BodyOwner(Protocol):
    """What a body asks of the transport that opened it."""

    @property
    def wire_errors(self) -> tuple[type[Exception], ...]:
        """What reading a body can raise below the Client."""
        ...

    def body_error(self, exc: Exception, spec: HTTPRequestSpec) -> errors.APIError:
        """The trillm error for *exc*, raised while a body of *spec* was read."""
        ...

    async def abandon(self, response: httpx.Response,
                      chunks: AsyncGenerator[bytes, None]) -> None:
        """Stop reading the body and close its connection; never raises."""
        ...

    async def close_response(self, response: httpx.Response) -> None:
        """Close the response, its body read to the end; never raises."""
        ...


class StreamingBody:
    """An open streaming response, returned once its headers arrived.

    ``receive_some()`` gives the next body bytes, ``b""`` at the end and after
    it.  A cancelled ``receive_some`` leaves the body unusable (httpcore closes
    the connection): the next call raises ``APIConnectionError``.  Past
    *max_bytes* decoded bytes (or a decompression bomb's first MiB) it raises
    ``APIError`` and closes the connection.  The connection is given back when
    the end is read; always ``aclose()`` the stream.
    """

    __slots__ = ("_chunks", "_closed", "_eof", "_error", "_finished", "_inflater", "_left",
                 "_limit", "_owner", "_response", "_spec", "headers", "status")

    def __init__(self, response: httpx.Response, spec: HTTPRequestSpec,
                 max_bytes: float, owner: BodyOwner) -> None:
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self._response, self._spec = response, spec
        self._owner = owner
        # the body as the transport gives it (not decoded), straight from response.stream
        self._chunks = cast("AsyncGenerator[bytes, None]",
                            cast("httpx.AsyncByteStream", response.stream).__aiter__())
        self._limit = self._left = max_bytes  # _left: bytes the body may still give
        # A body compressed although we asked for identity is decoded here, within bounds.
        self._inflater = inflater_for(response.headers.get("content-encoding"), max_bytes)
        self._finished = self._eof = self._closed = False
        self._error: errors.APIError | None = None

    async def receive_some(self) -> bytes:
        """The next body bytes; ``b""`` at the end of the body and every call after it."""
        if self._finished:
            await trio.lowlevel.checkpoint()
            if self._eof or self._closed:
                return b""
            error = self._error or errors.APIConnectionError(
                "the response body is unusable: an earlier read was cancelled")
            raise type(error)(error.message, provider=self._spec.provider or None,
                              model=self._spec.model or None)
        self._finished = True  # stays so if this read is cancelled or fails
        try:
            if self._inflater is None:
                chunk = await self._chunks.__anext__()
                while not chunk:
                    chunk = await self._chunks.__anext__()
            else:
                chunk = await self._inflate(self._inflater)  # within both bounds
        except StopAsyncIteration:
            self._eof = True
        except self._owner.wire_errors as exc:
            self._error = self._owner.body_error(exc, self._spec)
            raise self._error from exc
        except BodyLimitExceeded as exc:
            self._error = too_large(exc, self._spec)
        else:
            self._left -= len(chunk)
            if self._left >= 0:
                self._finished = False
                return chunk
            self._error = too_large(over_size(self._limit), self._spec)
        if self._error is not None:  # a bound: stop the body now, and the connection with it
            await self._owner.abandon(self._response, self._chunks)
            raise self._error from None
        await self._owner.close_response(self._response)  # the end: give the connection back now
        return b""

    async def _inflate(self, inflater: Inflater) -> bytes:
        """The next decoded bytes of a compressed body; StopAsyncIteration at its end."""
        while not (piece := inflater.pull()):
            try:
                raw = await self._chunks.__anext__()
            except StopAsyncIteration:
                if piece := inflater.finish():
                    return piece
                raise
            inflater.feed(raw)
        return piece

    async def aread(self) -> bytes:
        """The rest of the body (for error bodies)."""
        parts = []
        while chunk := await self.receive_some():
            parts.append(chunk)
        return b"".join(parts)

    async def aclose(self) -> None:
        """Close body and response: idempotent, shielded, never raises (Cancelled included)."""
        if self._closed:
            return
        self._closed = self._finished = True
        if self._eof:
            await self._owner.close_response(self._response)
        else:
            await self._owner.abandon(self._response, self._chunks)
