"""The default Client behind the module-level functions, one per trio run.

An httpx connection is bound to the trio run that opened it, and every
``trio.run`` (each pytest-trio test, each script) is a new run, so the default
client lives in a ``trio.lowlevel.RunVar``: made on first use inside a run, and
closed by a system task when that run's main task ends (system tasks are
cancelled then).  Two ``trio.run`` calls in a row each get their own.
"""

from __future__ import annotations

import logging

import trio

from .client import Client

__all__ = ["default_client"]

_DEFAULT: trio.lowlevel.RunVar[Client | None] = trio.lowlevel.RunVar(
    "trillm.default_client", default=None
)


def default_client() -> Client:
    """This run's default Client, opened on first use; outside a trio run (under asyncio),
    the background run's, whose calls the asyncio bridge runs there."""
    if not trio.lowlevel.in_trio_run():
        from ._sync import background_run

        return background_run().client
    client = _DEFAULT.get()
    if client is None:
        client = Client()
        client.open()
        _DEFAULT.set(client)
        trio.lowlevel.spawn_system_task(_close_at_exit, client, name="trillm-default-client")
    return client


async def _close_at_exit(client: Client) -> None:
    try:
        await trio.sleep_forever()
    finally:
        # A system task that raises crashes the whole run (TrioInternalError): log instead.
        try:
            with trio.move_on_after(5, shield=True):
                await client.aclose()
        except Exception:
            logging.getLogger("trillm").exception("closing the default trillm client failed")
