"""`import trillm` stays cheap: what a plain chat call does not need is imported on first use.

Every attrs class costs a compile when its module is imported, so the Responses API, the
batch APIs, hooks and prices, the sync API and the asyncio bridge, the records beyond chat
(embeddings, images, audio, model lists), the stream machinery and the mock load when first
used.  Every public
name must still resolve, as an attribute and through ``from trillm import ...``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import trillm
import trillm.types

#: Modules a plain `import trillm` and a first chat call must not import.
LAZY_MODULES = (
    "trillm._batch_mock",
    "trillm._mock_wire",
    "trillm._beyond_chat",
    "trillm._bridge",
    "trillm._count_tokens",
    "trillm._fanout",
    "trillm._files",
    "trillm._response_stream",
    "trillm._responses",
    "trillm._stream",
    "trillm._stream_body",
    "trillm._stream_records",
    "trillm._tool_records",
    "trillm._statistics",
    "trillm._sync",
    "trillm.accumulate",
    "trillm.batch",
    "trillm.batch_types",
    "trillm.concurrency",
    "trillm.hooks",
    "trillm.limits",
    "trillm.openai_compat",
    "trillm.otel",
    "trillm.providers.anthropic",
    "trillm.providers.azure",
    "trillm.providers.count_tokens",
    "trillm.providers.gemini",
    "trillm.providers.mock",
    "trillm.providers.mock_responses",
    "trillm.providers.openai_batch",
    "trillm.providers.openai_render",
    "trillm.providers.openai_stream",
    "trillm.providers.render",
    "trillm.providers.openai_responses",
    "trillm.providers.openai_responses_render",
    "trillm.redis",
    "trillm.response_types",
    "trillm.sse",
    "trillm.structured",
    "trillm.testing",
    "trillm.tools",
    "trillm.usage",
)


def _loaded_after(code: str) -> set[str]:
    """The trillm modules loaded in a fresh interpreter after running *code*."""
    script = code + ("\nimport sys\n"
                     "print(' '.join(m for m in sys.modules if m.startswith('trillm')))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60)
    return set(out.stdout.split())


def test_every_public_name_resolves() -> None:
    for name in trillm.__all__:
        assert getattr(trillm, name) is not None, name
        exec(f"from trillm import {name}", {})  # the import form users write
    assert set(trillm.__all__) <= set(dir(trillm))


def test_lazy_names_are_the_same_objects() -> None:
    from trillm import _beyond_chat, response_types

    assert trillm.EmbeddingResponse is trillm.types.EmbeddingResponse
    assert trillm.types.ModelList is _beyond_chat.ModelList
    assert trillm.Response is response_types.Response
    assert trillm.ClientStatistics is trillm.client.ClientStatistics
    assert set(trillm.types.__all__) <= set(dir(trillm.types))
    for name in trillm.types.__all__:
        assert getattr(trillm.types, name) is not None, name


def test_unknown_names_still_raise_attribute_error() -> None:
    for module in (trillm, trillm.types):
        with pytest.raises(AttributeError, match="no_such_name"):
            getattr(module, "no_such_name")  # noqa: B009


def test_import_trillm_leaves_the_lazy_modules_unimported() -> None:
    loaded = _loaded_after("import trillm")
    assert "trillm.client" in loaded
    assert loaded.isdisjoint(LAZY_MODULES), sorted(loaded & set(LAZY_MODULES))


def test_a_first_chat_call_leaves_them_unimported_too() -> None:
    code = textwrap.dedent("""
        import json
        import httpx, trio, trillm

        BODY = json.dumps({"id": "c", "object": "chat.completion", "created": 1,
                           "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason":
                           "stop", "message": {"role": "assistant", "content": "hi"}}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                     "total_tokens": 2}}).encode()

        def handler(request):
            return httpx.Response(200, content=BODY,
                                  headers={"content-type": "application/json"})

        async def main():
            async with trillm.Client(transport=httpx.MockTransport(handler),
                                     api_key="sk-test", timeout=30) as client:
                r = await client.acompletion("openai/gpt-4o-mini",
                                             [{"role": "user", "content": "Hi"}])
                assert r.choices[0].message.content == "hi"

        trio.run(main)
        # nor the stream's record classes (each an attrs class: memory and a compile)
        assert "StreamChunk" not in vars(trillm.types), "a plain call made StreamChunk"
    """)
    loaded = _loaded_after(code)
    assert loaded.isdisjoint(LAZY_MODULES), sorted(loaded & set(LAZY_MODULES))


def test_each_lazy_part_loads_when_used() -> None:
    loaded = _loaded_after("import trillm\ntrillm.Response\ntrillm.types.EmbeddingRequest\n"
                           "trillm.BatchJob\ntrillm.Prices\ntrillm.StreamChunk\ntrillm.ToolCall")
    assert {"trillm.response_types", "trillm._beyond_chat", "trillm.batch_types",
            "trillm.usage", "trillm._stream_records", "trillm._tool_records"} <= loaded
