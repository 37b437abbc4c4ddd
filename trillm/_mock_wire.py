"""The records of answers made in this process: a call's mock knobs
(:class:`MockOptions`) and the answer the ``mock/`` provider gives the transport in
place of a server's (:class:`LocalAnswer`, through ``HTTPRequestSpec.local``).

Loaded with the first mocked call, not by ``import trillm``: a call that is not mocked
never builds either.  Pure (attrs only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._records import record_repr

if TYPE_CHECKING:
    from .types import ModelResponse, ToolCall

__all__ = ["NO_MOCK", "LocalAnswer", "MockOptions"]


@attrs.frozen(repr=False)
class MockOptions:
    """The mock knobs of one call: what to answer (or raise) and how slowly (read by
    ``providers/mock``; a call's options hold one only when it set a knob)."""

    __repr__ = record_repr

    response: str | BaseException | ModelResponse | None = None
    latency: float = 0.0
    chunk_delay: float = 0.0
    tool_calls: tuple[ToolCall, ...] | None = None


@attrs.frozen(repr=False)
class LocalAnswer:
    """An answer made in this process instead of by a server (the ``mock/`` provider's).

    The transport waits ``latency`` seconds (before the headers), then raises a
    fresh copy of ``error`` when there is one, else answers ``status`` with
    ``headers`` and a body of ``chunks``, each after ``chunk_delay`` seconds.
    """

    __repr__ = record_repr

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    chunks: tuple[bytes, ...] = ()
    chunk_delay: float = 0.0
    latency: float = 0.0
    error: BaseException | None = None


#: The knobs of a mocked call that set none (a ``mock/`` model with no ``mock_*=``).
NO_MOCK = MockOptions()
