"""Bodies as async iterator objects rather than async generators.

A cancelled read leaves an async generator suspended, and trio warns when it is
collected; an iterator object has nothing to finalize.  :class:`OneChunk` sends a
request body; :class:`DelayedChunks` gives an in-process (mock) answer's body.
"""

from __future__ import annotations

from collections import deque

import trio

__all__ = ["DelayedChunks", "OneChunk"]


class OneChunk:
    """A request body: its one chunk, then the end."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> OneChunk:
        return self

    async def __anext__(self) -> bytes:
        data, self._data = self._data, None
        if data is None:
            raise StopAsyncIteration
        return data


class DelayedChunks:
    """An in-process body: its chunks, each after *delay* seconds (a ``trio.sleep``, so
    virtual time drives it)."""

    __slots__ = ("_delay", "_left")

    def __init__(self, chunks: tuple[bytes, ...], delay: float) -> None:
        self._left = deque(chunks)
        self._delay = delay

    def __aiter__(self) -> DelayedChunks:
        return self

    async def __anext__(self) -> bytes:
        if not self._left:
            raise StopAsyncIteration
        if self._delay:
            await trio.sleep(self._delay)
        return self._left.popleft()
