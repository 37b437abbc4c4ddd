"""What the fake LLM records of one request, and what its transport and server need of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import attrs
import trio

from ._answers import Plan
from ._formats import ParsedRequest, last_user_text, secret_digest

__all__ = ["Answering", "FakeRequest"]


class Answering(Protocol):
    """What the in-memory transport and the loopback server answer through (a FakeLLM)."""

    def handle(self, method: str, target: str, headers: Any, body: bytes, *,
               scheme: str = "http") -> tuple[FakeRequest, Plan]:
        """Record one request and plan its answer."""
        ...

    def check(self) -> None:
        """Raise the first error the requests met (strict mode's unmatched requests)."""
        ...


@attrs.define(eq=False, repr=False)
class FakeRequest:
    """One request the fake received, and what became of its answer.

    ``messages`` are in OpenAI's roles (``system``, ``user``, ``assistant``,
    ``tool``), whatever the wire format; ``params`` are the rest of the body
    (provider names); ``headers`` have their secrets replaced by
    ``[REDACTED]`` (:meth:`sent_secret` checks what one held); ``body`` is the raw
    request body; ``url`` the URL the client addressed.  ``completed`` turns true
    once the whole answer was handed to the client; ``cancelled_by_client``
    when the client closed or cancelled the request before that (what a
    ``race``/``hedge`` loser does); ``chunks_sent`` counts the body chunks sent
    (a streamed answer sends one per piece).  ``rule`` is the index of the
    rule that answered (in the order of ``fake.on`` calls; None: the echo).
    """

    parsed: ParsedRequest = attrs.field(repr=False)
    rule: int | None = None
    status: int | None = None
    started_at: float = 0.0
    completed: bool = False
    cancelled_by_client: bool = False
    chunks_sent: int = 0
    scheme: str = "http"
    _ended: trio.Event = attrs.field(factory=trio.Event, init=False, repr=False)

    def mark_completed(self) -> None:
        """The whole answer was handed to the client (the transport and the server call it)."""
        self.completed = True
        self._ended.set()

    def mark_cancelled(self) -> None:
        """The client closed or cancelled the request before the end of the answer."""
        if not self.completed:
            self.cancelled_by_client = True
        self._ended.set()

    def mark_broken(self) -> None:
        """The fake broke the connection, as scripted (``disconnect``)."""
        self._ended.set()

    async def wait_ended(self) -> None:
        """Wait until the answer ended: completed, cancelled by the client, or cut as
        scripted.  Over loopback the server notices a client's close a moment later
        than the client makes it: wait for this before checking ``cancelled_by_client``."""
        await self._ended.wait()

    @property
    def provider(self) -> str:
        """``"openai"``, ``"azure"``, ``"anthropic"``, ``"gemini"`` or ``"unknown"``."""
        return self.parsed.provider

    @property
    def operation(self) -> str:
        """``"chat"``, ``"embeddings"``, ``"images"``, ``"transcription"``, ``"speech"``,
        ``"models"``, ``"responses"`` or ``"unknown"``."""
        return self.parsed.operation

    @property
    def model(self) -> str | None:
        """The model asked for (from the body, or the URL for Gemini and Azure)."""
        return self.parsed.model

    @property
    def stream(self) -> bool:
        """Whether a streamed answer was asked for."""
        return self.parsed.stream

    @property
    def messages(self) -> tuple[Mapping[str, Any], ...]:
        """The chat messages, in OpenAI's roles."""
        return self.parsed.messages

    @property
    def params(self) -> Mapping[str, Any]:
        """The body's other fields (``temperature``, ``tools``, ``generationConfig``, ...)."""
        return self.parsed.params

    @property
    def headers(self) -> Mapping[str, str]:
        """The request headers (lower-case names), secrets redacted."""
        return self.parsed.headers

    def sent_secret(self, header: str, value: str) -> bool:
        """Whether the redacted *header* was sent with exactly *value*
        (``req.sent_secret("authorization", "Bearer sk-test")``): checked against a salted
        digest, so the secret itself is never kept."""
        digest = self.parsed.secret_digests.get(header.lower())
        return digest is not None and digest == secret_digest(value)

    @property
    def body(self) -> bytes:
        """The raw request body."""
        return self.parsed.body

    @property
    def path(self) -> str:
        """The path and query as sent (a ``key=`` value redacted)."""
        return self.parsed.path

    @property
    def url(self) -> str:
        """The URL the client addressed: its scheme (in memory, the client's own; over
        loopback ``http``), the ``Host`` header and :attr:`path`."""
        return f"{self.scheme}://{self.parsed.headers.get('host', '')}{self.path}"

    @property
    def text(self) -> str | None:
        """The text of the last user message, or None."""
        return last_user_text(self.parsed.messages)

    def __repr__(self) -> str:
        state = ("completed" if self.completed else "cancelled by the client"
                 if self.cancelled_by_client else "unfinished")
        return (f"<FakeRequest {self.parsed.method} {self.path} {self.provider} "
                f"model={self.model!r} stream={self.stream} status={self.status} {state}>")
