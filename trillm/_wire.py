"""Neutral wire records shared by the providers (L0) and the I/O layer (L2).

A provider turns a request into an :class:`HTTPRequestSpec`; the transport
sends it.  A provider's stream parser (:class:`StreamParser`) turns SSE events
into chunks; the stream machinery drives it.  Neither side imports the other:
both import these records, so the I/O layer never imports ``providers/``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from ._records import record_repr

if TYPE_CHECKING:
    from ._mock_wire import LocalAnswer
    from .sse import SSEEvent
    from .types import StreamChunk

__all__ = ["HTTPRequestSpec", "ProviderConfig", "RawResponse", "StreamParser"]


@attrs.frozen(repr=False)
class ProviderConfig:
    """Where and as whom to send: resolved by the Client from arguments and environment.

    ``key_var`` names the environment variable a missing key should be set in;
    ``api_key`` is never shown in a repr.  ``custom_base`` is true when the base
    URL is not the provider's default (it came from ``api_base=`` or a base-URL
    variable such as ``OPENAI_BASE_URL``): a proxy, a local or another server,
    so errors about the key speak of "this server" rather than the provider.
    """

    __repr__ = record_repr

    name: str
    api_base: str
    api_key: str | None = attrs.field(default=None, repr=False)
    key_var: str | None = None
    api_version: str | None = None
    custom_base: bool = False

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values to scrub from errors and logs."""
        return (self.api_key,) if self.api_key else ()


@attrs.frozen(eq=False, repr=False)
class HTTPRequestSpec:
    """One HTTP request, as data.  ``headers`` may hold keys, so it is never shown.

    ``local``, when set, answers the request in this process (the transport
    calls it instead of opening a connection): the seam the mock provider
    answers through, so a mocked call takes the same path as a real one.
    """

    __repr__ = record_repr

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=False)
    json: Any = None
    content: bytes | None = attrs.field(default=None, repr=False)
    provider: str = ""
    model: str = ""
    local: Callable[[HTTPRequestSpec], LocalAnswer] | None = attrs.field(
        default=None, repr=False, eq=False
    )


@attrs.frozen(eq=False, repr=False)
class RawResponse:
    """A whole response, as the transport read it: status, headers (case-insensitive) and
    the decoded body."""

    __repr__ = record_repr

    status: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    content: bytes = attrs.field(repr=False)


class StreamParser(Protocol):
    """Turns a provider's stream events into OpenAI-shaped chunks (stateful, per stream).

    A parser may also have ``feed_data(data: str) -> StreamChunk | None``, giving what
    ``feed(SSEEvent(data))`` gives: the stream then hands it a plain message event
    (no ``event`` name but ``message``, no ``id`` or ``retry`` ever set) as its data
    string alone, and the decoder builds no :class:`~trillm.sse.SSEEvent` for it
    (``OpenAIStreamParser`` has one: its events are plain).  Other events still go to
    ``feed``.
    """

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
