"""Every trillm attrs class shows itself through one shared ``__repr__``, in attrs' format.

attrs compiles a ``__repr__`` for each class it builds unless told ``repr=False``; that
was about a fifth of ``import trillm`` (and 4 KiB a class).  ``record_repr`` gives the
same text from the class's fields.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import attrs
import pytest

import trillm
from trillm._records import record_repr


def _pair() -> tuple[type[Any], type[Any]]:
    def fields() -> dict[str, Any]:
        return {
            "name": attrs.field(),
            "secret": attrs.field(default="sk-hidden", repr=False),
            "size": attrs.field(default=3, repr=lambda v: f"<{v} bytes>"),
            "items": attrs.field(factory=list),
            "inner": attrs.field(default=None),
        }

    by_attrs = attrs.make_class("Thing", fields(), frozen=True, slots=True)
    shared = attrs.make_class("Thing", fields(), frozen=True, slots=True, repr=False)
    shared.__repr__ = record_repr  # type: ignore[method-assign]
    return by_attrs, shared


@pytest.mark.parametrize("make", [
    lambda cls: cls("a"),
    lambda cls: cls("b", "key", 10, [1, "two", None], cls("in", items=[()])),
    lambda cls: cls("", size=0, inner={"k": cls("deep")}),
], ids=["defaults", "nested", "in-a-dict"])
def test_same_text_as_attrs(make: Any) -> None:
    by_attrs, shared = _pair()
    assert repr(make(shared)) == repr(make(by_attrs))
    assert "sk-hidden" not in repr(make(shared)) and "key" not in repr(make(shared))


def test_a_record_inside_itself_shows_dots_as_attrs_does() -> None:
    by_attrs, shared = _pair()
    texts = []
    for cls in (by_attrs, shared):
        loop = cls("loop")
        loop.items.append(loop)
        texts.append(repr(loop))
    assert texts[0] == texts[1] == "Thing(name='loop', size=<3 bytes>, items=[...], inner=None)"


def _all_modules() -> list[str]:
    return [info.name for info in pkgutil.walk_packages(trillm.__path__, "trillm.")]


def test_no_trillm_class_has_an_attrs_compiled_repr() -> None:
    compiled = []
    for name in _all_modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and attrs.has(value) and value.__module__ == name:
                code = getattr(value.__repr__, "__code__", None)
                if code is not None and code.co_filename.startswith("<attrs generated"):
                    compiled.append(f"{name}.{value.__qualname__}")
    assert not compiled, f"say repr=False and use _records.record_repr: {compiled}"
