"""The base of trillm's answer records (attribute access, and a read-only ``Mapping``
view over the public fields that are not None: ``r["choices"][0]``; ``to_dict()``), and
:class:`Usage`, the token counts chat and embeddings answers share.

Shared by :mod:`trillm.types` (which re-exports ``Usage``), the records beyond chat,
:mod:`trillm.response_types` and :mod:`trillm.batch_types`; pure (attrs only).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, TypeVar, cast

import attrs

__all__ = ["HIDDEN", "Record", "Usage", "record"]

_R = TypeVar("_R", bound="Record")

#: The metadata of a field kept out of the Mapping view (``raw``, ``headers``).
HIDDEN = {"hidden": True}


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Record(Mapping[str, Any]):
    """Read-only mapping view over the public, non-None fields of an attrs record."""

    __slots__ = ()
    _keys: ClassVar[tuple[str, ...]] = ()
    _keyset: ClassVar[frozenset[str]] = frozenset()

    def __getitem__(self, key: str) -> Any:
        if key in self._keyset:
            value = getattr(self, key)
            if value is not None:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._keys if getattr(self, k) is not None)

    def __len__(self) -> int:
        return sum(1 for k in self._keys if getattr(self, k) is not None)

    def __contains__(self, key: object) -> bool:
        return key in self._keyset and getattr(self, key) is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: nested records become dicts, tuples lists; None omitted."""
        out: dict[str, Any] = {}
        for k in self._keys:
            v = getattr(self, k)
            if v is not None:
                out[k] = _plain(v)
        return out


def record(cls: type[_R]) -> type[_R]:
    """Index the public fields of *cls*, a frozen attrs class.

    Used as ``@record`` above ``@attrs.frozen`` (not calling ``attrs.frozen``
    itself), so that mypy's attrs plugin sees every record's fields.
    """
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(cast(Any, cls))
    keys = tuple(f.name for f in fields if not f.metadata.get("hidden"))
    cls._keys = keys
    cls._keyset = frozenset(keys)
    return cls


@record
@attrs.frozen
class Usage(Record):
    """Token counts; the ``*_details`` hold provider breakdowns (cache, reasoning)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: Mapping[str, Any] | None = None
    completion_tokens_details: Mapping[str, Any] | None = None
