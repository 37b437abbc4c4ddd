"""trillm's test kit: a scriptable fake LLM for testing code that calls LLMs.

``FakeLLM`` speaks OpenAI (chat, embeddings, images, audio, models, the
Responses API), Anthropic Messages and Gemini ``generateContent`` /
``streamGenerateContent``, in JSON and SSE, with answers rendered by trillm's
own providers.  Script it by
matching (``fake.on(model=..., when=...)`` then ``.reply()``, ``.stream()``,
``.fail()``, ``.disconnect()``, ``.hang()``, ``.times()``), plug it in memory
(``trillm.Client(transport=fake.transport())``, virtual time friendly) or on a
loopback port (``async with fake.serve() as url``), and check
``fake.requests`` / ``fake.assert_called(...)``.  Record a real provider's answers
once with ``fake.record(path, upstream=...)`` and answer from them with
``fake.replay(path)`` (a cassette: JSONL, secrets scrubbed).

``import trillm`` does not import this package: it loads on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._fake import FakeLLM, Rule, UnmatchedRequest
    from ._memory import FakeTransport
    from ._record import FakeRequest

__all__ = ["FakeLLM", "FakeRequest", "FakeTransport", "Rule", "UnmatchedRequest"]

# Loaded on first use, so the pytest plugin (trillm.testing.pytest_plugin) costs
# nothing in a test session that never asks for a fixture.
_HOMES = {"FakeLLM": "_fake", "Rule": "_fake", "UnmatchedRequest": "_fake",
          "FakeTransport": "_memory", "FakeRequest": "_record"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'trillm.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
