"""The mock provider's time: its latency, and its error, raised through the retry loop.

The plan comes from the sans-I/O :mod:`trillm.providers.mock`; only the sleeping
happens here, on trio's clock (so ``MockClock`` drives it).
"""

from __future__ import annotations

import copy
from typing import Any

import trio

from ._stream import ScriptedChunkSource
from .providers import mock

__all__ = ["answer", "open_stream"]


async def _wait(plan: mock.MockPlan) -> None:
    """The mock's latency (a checkpoint even without one), then its error if it has one."""
    if plan.latency:
        await trio.sleep(plan.latency)
    else:
        await trio.lowlevel.checkpoint()
    if plan.error is not None:
        # A fresh copy per attempt, so retries and fallbacks never pile notes or
        # tracebacks onto the one instance the caller passed.
        try:
            error = copy.copy(plan.error)
        except Exception:  # noqa: BLE001 - one that cannot be copied is raised as given
            error = plan.error
        raise error


async def answer(plan: mock.MockPlan) -> Any:
    """The planned answer, after the latency (or the planned error)."""
    await _wait(plan)
    assert plan.response is not None
    return plan.response


async def open_stream(plan: mock.MockPlan) -> ScriptedChunkSource[Any]:
    """The planned chunks as a stream source, after the latency (or the planned error)."""
    await _wait(plan)
    return ScriptedChunkSource(plan.chunks, plan.chunk_delay)
