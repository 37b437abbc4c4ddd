"""Shared pytest configuration for trillm's tests (kept deliberately small)."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

# Let `.venv/bin/pytest` import the package from the checkout without an
# editable install (`pythonpath = ["."]` in pyproject would do the same).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


from tests.fake_openai import FakeOpenAI, serving  # noqa: E402
from trillm._statistics import TransportStatistics  # noqa: E402 - after the path set-up
from trillm._transport import Transport  # noqa: E402
from trillm._wire import HTTPRequestSpec  # noqa: E402

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to 127.0.0.1: a proxy set in the environment must not reroute them."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    t = Transport()
    try:
        yield t
    finally:
        await t.aclose()
    # An async generator of httpx/httpcore left suspended would make trio warn
    # (ResourceWarning, an error here) when collected: collect now, inside the test.
    gc.collect()


def make_spec(url: str, body: Any = None, **kw: Any) -> HTTPRequestSpec:
    kw.setdefault("provider", "openai")
    kw.setdefault("model", "gpt-4o-mini")
    body = {"model": "gpt-4o-mini"} if body is None else body
    return HTTPRequestSpec("POST", url, json=body, **kw)


def stats(idle: int, active: int) -> TransportStatistics:
    return TransportStatistics(idle_connections=idle, active_connections=active)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``anyio`` run under anyio's plugin on its backends, not trio mode's."""
    for item in items:
        if item.get_closest_marker("anyio") is not None:
            item.own_markers = [m for m in item.own_markers if m.name != "trio"]


# The threaded fake OpenAI server of the facade and article tests.
@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with serving() as fake:
        yield fake


@pytest.fixture
def openai_env(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-facade-test-key")
    return server
