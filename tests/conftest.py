"""Shared pytest configuration for trillm's tests (kept deliberately small)."""

from __future__ import annotations

import sys
from pathlib import Path

# Let `.venv/bin/pytest` import the package from the checkout without an
# editable install (`pythonpath = ["."]` in pyproject would do the same).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
