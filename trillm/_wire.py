"""Neutral wire records shared by the providers (L0) and the I/O layer (L2).

A provider turns a request into an :class:`HTTPRequestSpec`; the transport
sends it.  A provider's stream parser (:class:`StreamParser`) turns SSE events
into chunks; the stream machinery drives it.  Neither side imports the other:
both import these records, so the I/O layer never imports ``providers/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from .sse import SSEEvent
    from .types import StreamChunk

__all__ = ["HTTPRequestSpec", "ProviderConfig", "StreamParser"]


@attrs.frozen
class ProviderConfig:
    """Where and as whom to send: resolved by the Client from arguments and environment.

    ``key_var`` names the environment variable a missing key should be set in;
    ``api_key`` is never shown in a repr.
    """

    name: str
    api_base: str
    api_key: str | None = attrs.field(default=None, repr=False)
    key_var: str | None = None
    api_version: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values to scrub from errors and logs."""
        return (self.api_key,) if self.api_key else ()


@attrs.frozen
class HTTPRequestSpec:
    """One HTTP request, as data.  ``headers`` may hold keys, so it is never shown."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=False)
    json: Any = None
    content: bytes | None = attrs.field(default=None, repr=False)
    provider: str = ""
    model: str = ""


class StreamParser(Protocol):
    """Turns a provider's stream events into OpenAI-shaped chunks (stateful, per stream)."""

    def feed(self, event: SSEEvent) -> StreamChunk | None:
        """Translate one event; None for events that carry nothing for the caller."""
        ...

    @property
    def done(self) -> bool:
        """True once the provider's end marker (or a finish reason) was seen."""
        ...

    @property
    def finished(self) -> bool:
        """True once the answer's finish reason was seen (every choice seen has one).

        An end marker without it (llama.cpp's server interrupted mid-answer sends
        ``[DONE]``) leaves the answer cut short, so a broken connection after it
        is truncation.
        """
        ...
