"""A single call raises one bare exception, never a group (DESIGN.md).

When the caller cancels a nursery a call runs (its own, or trio's connect nursery), the
group holds only ``Cancelled`` leaves, and these pass one of them on.  Split off
:mod:`trillm.concurrency` (which re-exports them), so that the pipeline and the
transport do not import the fan-out helpers a plain call never uses.
"""

from __future__ import annotations

from typing import NoReturn

import trio

__all__ = ["only_cancelled", "raise_bare"]


def only_cancelled(group: BaseExceptionGroup[BaseException]) -> trio.Cancelled | None:
    """The first leaf of *group* if every leaf is a ``trio.Cancelled``, else None."""
    first = None
    todo = list(group.exceptions)
    while todo:
        exc = todo.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            todo[:0] = exc.exceptions
        elif not isinstance(exc, trio.Cancelled):
            return None
        elif first is None:
            first = exc
    return first


def raise_bare(cancelled: trio.Cancelled) -> NoReturn:
    """Raise *cancelled* alone, its own ``__context__`` kept (as trio unwraps a group)."""
    context = cancelled.__context__
    try:
        raise cancelled
    finally:
        cancelled.__context__ = context
        del cancelled, context
