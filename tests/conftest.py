"""Shared pytest configuration for trillm's tests (kept deliberately small)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Let `.venv/bin/pytest` import the package from the checkout without an
# editable install (`pythonpath = ["."]` in pyproject would do the same).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to 127.0.0.1: a proxy set in the environment must not reroute them."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
