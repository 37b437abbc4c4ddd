"""``loads``: :func:`json.loads` for the stream parsers' hot path, same results, less overhead.

``json.loads(text)`` wraps the C scanner in three Python layers (``loads``,
``JSONDecoder.decode``, ``raw_decode``) and matches a whitespace regex on each
side of the document.  A streamed event is one compact JSON document, so
:func:`loads` calls the scanner directly and accepts its answer when it
consumed the whole text; anything else (leading or trailing whitespace, an
empty or malformed text, trailing garbage) goes through ``json.loads`` itself,
so the value, the error raised and its message are exactly ``json.loads``'s.
That saves about 40% of the decoding cost of a small event (about 1 µs).
"""

from __future__ import annotations

import json
from json.scanner import make_scanner
from typing import Any

__all__ = ["loads"]

# The C scanner; it clears its memo on every call.  (typeshed types make_scanner's
# argument as the scanner itself: a JSONDecoder has all it reads.)
_scan = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]
_json_loads = json.loads


def loads(text: str) -> Any:
    """``json.loads(text)``: the same value, or the same error."""
    try:
        obj, end = _scan(text, 0)
    except StopIteration:  # no JSON value at offset 0: let json.loads say why
        return _json_loads(text)
    if end != len(text):  # trailing whitespace is fine, anything else is an error
        return _json_loads(text)
    return obj
