"""trillm's test kit: a scriptable fake LLM for testing code that calls LLMs.

``FakeLLM`` speaks OpenAI (chat, embeddings, images, audio, models), Anthropic
Messages and Gemini ``generateContent`` / ``streamGenerateContent``, in JSON
and SSE, with answers rendered by trillm's own providers.  Script it by
matching (``fake.on(model=..., when=...)`` then ``.reply()``, ``.stream()``,
``.fail()``, ``.disconnect()``, ``.hang()``, ``.times()``), plug it in memory
(``trillm.Client(transport=fake.transport())``, virtual time friendly) or on a
loopback port (``async with fake.serve() as url``), and check
``fake.requests`` / ``fake.assert_called(...)``.

``import trillm`` does not import this package: it loads on first use.
"""

from __future__ import annotations

from ._fake import FakeLLM, Rule, UnmatchedRequest
from ._memory import FakeTransport
from ._record import FakeRequest

__all__ = ["FakeLLM", "FakeRequest", "FakeTransport", "Rule", "UnmatchedRequest"]
