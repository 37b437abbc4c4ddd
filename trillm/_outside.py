"""Where trillm's async methods run when they are awaited outside a trio run.

Inside trio a method decorated with :func:`trio_or_bridge` runs as it is (one
``in_trio_run()`` check).  Elsewhere (asyncio) it goes to the runner the asyncio
bridge registered with :func:`run_outside_trio_with` (``trillm._bridge``, an entry
point this module never imports), which runs it on the background trio run.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import trio

__all__ = ["run_outside_trio_with", "trio_or_bridge"]

_F = TypeVar("_F", bound=Callable[..., Any])
_Outside = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]
_outside_trio: list[_Outside] = []


def run_outside_trio_with(runner: _Outside) -> None:
    """How a call awaited outside a trio run reaches one: the asyncio bridge registers
    itself here."""
    _outside_trio[:] = [runner]


def trio_or_bridge(method: _F) -> _F:
    """Run *method* (an async method) as it is inside trio; elsewhere through the bridge.

    Inside trio the method's own coroutine is returned (no extra frame): the trio
    path pays one ``in_trio_run()`` check for the bridge, nothing more.
    """

    @functools.wraps(method)
    def call(self: Any, /, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        if trio.lowlevel.in_trio_run() or not _outside_trio:
            return method(self, *args, **kwargs)  # type: ignore[no-any-return]
        return _outside_trio[0](functools.partial(method, self, *args, **kwargs))

    return cast("_F", call)
