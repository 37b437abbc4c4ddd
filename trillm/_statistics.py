"""The snapshots ``Client.statistics()`` returns: what a Client and its transport hold.

Imported with the first ``statistics()`` call (every attrs class costs a compile at import,
and a call does not need these).
"""

from __future__ import annotations

import attrs

from ._records import record_repr

__all__ = ["ClientStatistics", "TransportStatistics"]


@attrs.frozen(repr=False)
class TransportStatistics:
    """Pooled connections: waiting on the stacks, and checked out by a request or stream."""

    __repr__ = record_repr

    idle_connections: int
    active_connections: int


@attrs.frozen(repr=False)
class ClientStatistics:
    """A snapshot of what a Client holds, to check that nothing leaked."""

    __repr__ = record_repr

    requests_in_flight: int
    open_streams: int
    idle_connections: int
    active_connections: int
