"""The layer rules of DESIGN.md ("Modules and layers"), checked on the source with `ast`.

Nothing is imported: every module under ``trillm/`` is parsed, its imports are
resolved to modules of the package (or to outside distributions), and each
import is checked against the layer table below.  Dependencies point down
only::

    L4  __init__  _default  _sync  testing  cli     entry points; nothing below imports them
    L3  client                                      the one orchestrator
    L2  _transport  _stream                         I/O (trio; httpx only in _transport)
    L1  limits  concurrency                         generic async: no httpx, providers, client
    L0  types errors sse retry routing providers/*  stdlib + attrs only

A new module must be given a layer here before the test passes.
"""

from __future__ import annotations

import ast
import fnmatch
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

# Module names relative to the package; "__init__" is the package itself and
# "providers" the providers package.  Patterns use fnmatch.
LAYERS: dict[str, int] = {
    "types": 0,
    "errors": 0,
    "sse": 0,
    "retry": 0,
    "routing": 0,
    "accumulate": 0,  # stream_chunk_builder: pure, over types (not in DESIGN.md's table)
    "_wire": 0,  # neutral wire records shared by providers and I/O
    "_options": 0,  # a call's options, settled from the Client's and the call's: pure
    "providers": 0,
    "providers.*": 0,
    "limits": 1,
    "concurrency": 1,
    "_transport": 2,
    "_body_limits": 2,  # response size and decompression-bomb bounds (pure), split off _transport
    "_transport_errors": 2,  # what the transport's errors say (no httpx), split off _transport
    "_stream": 2,
    "_files": 2,  # audio files in and out (trio file I/O)
    "client": 3,
    "_call": 3,  # the one call pipeline
    "_fanout": 3,  # client-side fan-out (abatch_completion, several models)
    "__init__": 4,
    "_default": 4,
    "_sync": 4,
    "testing": 4,
    "cli": 4,
}
LAYER_NAMES = {0: "L0", 1: "L1", 2: "L2", 3: "L3", 4: "L4"}

#: Distributions an L0 module may not import, whatever the context.
L0_FORBIDDEN = frozenset({"trio", "httpx", "httpcore", "anyio", "asyncio", "outcome", "sniffio"})
#: Outside the standard library, all an L0 module may import.
L0_THIRD_PARTY = frozenset({"attrs", "attr"})
#: Only these modules may import httpx (and httpcore) at run time.
HTTPX = frozenset({"httpx", "httpcore"})
HTTPX_OWNERS = frozenset({"_transport"})
#: Provider modules that may build on another provider.
PROVIDER_EXCEPTIONS = frozenset({("providers.azure", "providers.openai")})
PROVIDER_SHARED = frozenset({"providers", "providers.base"})


@attrs.frozen
class Import:
    """One import statement's target, resolved."""

    line: int
    target: str  # a package module ("errors", "providers.base", "__init__") or a top-level name
    internal: bool
    type_checking: bool  # inside `if TYPE_CHECKING:`


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, type_checking: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node below *node*, with whether it sits under `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            yield child, type_checking
            yield child.test, type_checking
            for stmt in child.body:
                yield stmt, True
                yield from _walk(stmt, True)
            for stmt in child.orelse:
                yield stmt, type_checking
                yield from _walk(stmt, type_checking)
        else:
            yield child, type_checking
            yield from _walk(child, type_checking)


def _module_names(root: Path) -> dict[str, Path]:
    """Relative module name -> file, for every .py file under *root*."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        if any(part == "__pycache__" or part.startswith(".") for part in rel.parts):
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts) or "__init__"] = path
    return out


def _package_of(name: str, path: Path) -> list[str]:
    """The package a module's relative imports start from, as relative parts."""
    parts = [] if name == "__init__" else name.split(".")
    return parts if path.name == "__init__.py" else parts[:-1]


def _imports(
    name: str, path: Path, tree: ast.Module, modules: dict[str, Path], top: str
) -> Iterator[Import | str]:
    """The resolved imports of one module (or an error string)."""

    def internal(dotted: list[str], line: int, tc: bool) -> Import:
        target = ".".join(dotted) or "__init__"
        return Import(line, target, True, tc)

    for node, tc in _walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == top:
                    yield internal(parts[1:], node.lineno, tc)
                else:
                    yield Import(node.lineno, parts[0], False, tc)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module is not None
                parts = node.module.split(".")
                if parts[0] != top:
                    yield Import(node.lineno, parts[0], False, tc)
                    continue
                base = parts[1:]
            else:
                package = _package_of(name, path)
                up = node.level - 1
                if up > len(package):
                    yield f"{name}:{node.lineno}: relative import goes above the package"
                    continue
                extra = node.module.split(".") if node.module else []
                base = package[: len(package) - up] + extra
            # `from X import y`: y is a submodule when its file exists (or when it is
            # one of the modules named in LAYERS, even before it is written), else a
            # name defined in X.
            for alias in node.names:
                sub = ".".join([*base, alias.name])
                if alias.name != "*" and (sub in modules or sub in LAYERS):
                    yield internal([*base, alias.name], node.lineno, tc)
                else:
                    yield internal(base, node.lineno, tc)


def layer_of(name: str) -> int | None:
    """The layer of a relative module name, or None when it has none yet."""
    if name in LAYERS:
        return LAYERS[name]
    for pattern, layer in LAYERS.items():
        if fnmatch.fnmatchcase(name, pattern):
            return layer
    return None


def _is_provider(name: str) -> bool:
    return name.startswith("providers.") and name not in PROVIDER_SHARED


def check_package(root: Path) -> list[str]:
    """Every layering violation in the package at *root* (a directory with __init__.py)."""
    top = root.name
    modules = _module_names(root)
    problems: list[str] = []
    unknown = sorted(n for n in modules if layer_of(n) is None)
    if unknown:
        problems.append(
            "modules without a layer (add them to LAYERS in tests/test_layering.py): "
            + ", ".join(unknown)
        )
    stdlib = sys.stdlib_module_names
    for name, path in modules.items():
        layer = layer_of(name)
        if layer is None:
            continue
        where = f"{top}/{path.relative_to(root).as_posix()}"
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as exc:
            problems.append(f"{where}: cannot parse: {exc}")
            continue
        for imp in _imports(name, path, tree, modules, top):
            if isinstance(imp, str):
                problems.append(f"{top}/{imp}")
                continue
            at = f"{where}:{imp.line}"
            if not imp.internal:
                dist = imp.target
                if layer == 0 and dist in L0_FORBIDDEN:
                    problems.append(f"{at}: L0 module {name!r} imports {dist}")
                elif layer == 0 and dist not in stdlib and dist not in L0_THIRD_PARTY:
                    problems.append(
                        f"{at}: L0 module {name!r} imports {dist} (only stdlib and attrs)"
                    )
                elif dist in HTTPX and name not in HTTPX_OWNERS and not imp.type_checking:
                    problems.append(
                        f"{at}: {name!r} imports {dist} at run time (only _transport may; "
                        "put annotation-only imports under `if TYPE_CHECKING:`)"
                    )
                continue
            target = imp.target
            if target == name:
                continue
            target_layer = layer_of(target)
            if target_layer is None:
                if target not in modules:
                    problems.append(f"{at}: {name!r} imports {top}.{target}, which does not exist")
                continue  # an existing module without a layer is reported above
            if target_layer > layer:
                problems.append(
                    f"{at}: {LAYER_NAMES[layer]} module {name!r} imports "
                    f"{LAYER_NAMES[target_layer]} module {target!r} (dependencies point down)"
                )
            elif layer == 1 and (target == "providers" or target.startswith("providers.")):
                problems.append(f"{at}: L1 module {name!r} imports {target!r} (no providers)")
            elif (
                _is_provider(name)
                and _is_provider(target)
                and (name, target) not in PROVIDER_EXCEPTIONS
            ):
                problems.append(f"{at}: provider {name!r} imports provider {target!r}")
    return problems


# ------------------------------------------------------------------ the real package

PACKAGE = Path(__file__).resolve().parents[1] / "trillm"


def test_package_layering() -> None:
    problems = check_package(PACKAGE)
    assert not problems, "\n".join(problems)


def test_design_modules_have_layers() -> None:
    for name in (
        "types",
        "errors",
        "sse",
        "retry",
        "routing",
        "providers",
        "providers.base",
        "providers.openai",
        "providers.azure",
        "providers.anthropic",
        "providers.gemini",
        "providers.mock",
    ):
        assert layer_of(name) == 0, name
    assert layer_of("limits") == layer_of("concurrency") == 1
    assert layer_of("_transport") == layer_of("_stream") == 2
    assert layer_of("client") == 3
    for name in ("__init__", "_default", "_sync", "testing", "cli"):
        assert layer_of(name) == 4, name


# ------------------------------------------------------------------ tests of the test


def make_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "trillm"
    for rel, text in {"__init__.py": "", "providers/__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


CLEAN = {
    "__init__.py": """
        from . import errors as errors
        from .client import Client as Client
    """,
    "errors.py": "import re\nfrom typing import Any\n",
    "types.py": "import attrs\nimport attr\nfrom collections.abc import Mapping\n",
    "retry.py": """
        from . import errors
        from .errors import APIError
        import trillm.errors
    """,
    "sse.py": "from __future__ import annotations\n",
    "providers/base.py": """
        from .. import errors
        from ..retry import x
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from ..sse import SSEEvent
    """,
    "providers/openai.py": """
        from .base import x
        from . import base
        from .. import types
    """,
    "providers/azure.py": "from . import openai\nfrom .openai import build\n",
    "limits.py": "import trio\nimport outcome\nfrom . import errors\n",
    "concurrency.py": "import trio\n",
    "_transport.py": "import httpx\nimport httpcore\nimport trio\nfrom . import errors\n",
    "_stream.py": """
        import trio
        from . import _transport
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import httpx
    """,
    "client.py": """
        import typing
        from . import _stream, limits
        from .providers import openai
        if typing.TYPE_CHECKING:
            import httpx
        def f():
            from .providers import azure
    """,
    "_default.py": "from .client import Client\n",
    "_sync.py": "from . import _default\n",
    "cli.py": "import trillm\nfrom trillm import Client\n",
    "testing.py": "from . import client\n",
}


def test_clean_package_passes(tmp_path: Path) -> None:
    assert check_package(make_package(tmp_path, CLEAN)) == []


def test_l0_importing_trio_is_reported(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"types.py": "import attrs\nimport trio\n"})
    problems = check_package(root)
    assert len(problems) == 1
    assert "trillm/types.py:2" in problems[0]
    assert "trio" in problems[0]


@pytest.mark.parametrize("dist", sorted(L0_FORBIDDEN))
def test_every_forbidden_l0_import_is_reported(tmp_path: Path, dist: str) -> None:
    root = make_package(tmp_path, {"providers/gemini.py": f"from {dist} import thing\n"})
    assert [p for p in check_package(root) if dist in p and "providers/gemini.py" in p]


def test_l0_forbidden_even_under_type_checking_or_in_a_function(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "sse.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import trio\n",
            "retry.py": "def sleep():\n    import trio\n",
        },
    )
    problems = check_package(root)
    assert any("sse.py:3" in p for p in problems)
    assert any("retry.py:2" in p for p in problems)


def test_l0_third_party_is_reported(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"routing.py": "import requests\nimport json\nimport attrs\n"})
    problems = check_package(root)
    assert len(problems) == 1
    assert "requests" in problems[0]


def test_l1_importing_client_is_reported(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "client.py": "",
            "limits.py": "import trillm.client\n",
            "concurrency.py": "from . import client\n",
        },
    )
    problems = check_package(root)
    assert any("limits.py:1" in p and "'client'" in p for p in problems)
    assert any("concurrency.py:1" in p and "'client'" in p for p in problems)
    assert len(problems) == 2


def test_l1_importing_l2_or_providers_is_reported(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "_stream.py": "",
            "providers/openai.py": "",
            "limits.py": "from ._stream import Stream\n",
            "concurrency.py": "from .providers import openai\nfrom .providers import x\n",
        },
    )
    problems = check_package(root)
    assert any("limits.py:1" in p and "_stream" in p for p in problems)
    assert any("concurrency.py:1" in p and "providers.openai" in p for p in problems)
    assert any("concurrency.py:2" in p and "'providers'" in p for p in problems)
    assert len(problems) == 3


def test_httpx_outside_type_checking_is_reported(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "_transport.py": "import httpx\n",
            "client.py": "import httpx\n",
            "_stream.py": "from httpx import Response\n",
            "limits.py": "def f():\n    import httpcore\n",
        },
    )
    problems = check_package(root)
    assert any("client.py:1" in p and "httpx" in p for p in problems)
    assert any("_stream.py:1" in p and "httpx" in p for p in problems)
    assert any("limits.py:2" in p and "httpcore" in p for p in problems)
    assert not any("_transport.py" in p for p in problems)
    assert len(problems) == 3


def test_httpx_under_type_checking_is_allowed_above_l0(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "client.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    import httpx
                else:
                    import json
            """,
            "_stream.py": """
                import typing
                if typing.TYPE_CHECKING:
                    from httpx import Response
            """,
        },
    )
    assert check_package(root) == []


def test_else_branch_of_type_checking_is_run_time(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "client.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\n"
            "else:\n    import httpx\n",
        },
    )
    assert len(check_package(root)) == 1


def test_upward_imports_are_reported(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "client.py": "from . import _default\n",
            "_default.py": "",
            "_transport.py": "from .client import Client\n",
            "errors.py": "from trillm import __version__\n",
            "providers/mock.py": "from .. import _stream\n",
            "_stream.py": "",
        },
    )
    problems = check_package(root)
    assert any("client.py:1" in p and "'_default'" in p for p in problems)
    assert any("_transport.py:1" in p and "'client'" in p for p in problems)
    assert any("errors.py:1" in p and "'__init__'" in p for p in problems)
    assert any("providers/mock.py:1" in p and "'_stream'" in p for p in problems)
    assert len(problems) == 4


def test_relative_import_of_a_name_from_the_package_is_the_package(tmp_path: Path) -> None:
    # `from . import errors` is the submodule; `from . import acompletion` is __init__.
    root = make_package(
        tmp_path,
        {
            "errors.py": "",
            "client.py": "from . import errors\nfrom . import acompletion\n",
        },
    )
    problems = check_package(root)
    assert len(problems) == 1
    assert "client.py:2" in problems[0]
    assert "'__init__'" in problems[0]


def test_providers_do_not_import_one_another(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "providers/base.py": "",
            "providers/openai.py": "from .base import x\n",
            "providers/azure.py": "from .openai import x\n",
            "providers/anthropic.py": "from .openai import x\n",
            "providers/gemini.py": "from trillm.providers import anthropic\n",
            "providers/mock.py": "from . import openai\n",
        },
    )
    problems = check_package(root)
    assert any("anthropic.py:1" in p and "providers.openai" in p for p in problems)
    assert any("gemini.py:1" in p and "providers.anthropic" in p for p in problems)
    assert any("mock.py:1" in p and "providers.openai" in p for p in problems)
    assert len(problems) == 3


def test_openai_may_not_import_azure(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "providers/azure.py": "",
            "providers/openai.py": "from . import azure\n",
        },
    )
    assert len(check_package(root)) == 1


def test_unknown_modules_are_listed(tmp_path: Path) -> None:
    root = make_package(
        tmp_path, {"helpers.py": "import trio\n", "providers/x/y.py": "", "_cache.py": ""}
    )
    problems = check_package(root)
    assert problems == [
        "modules without a layer (add them to LAYERS in tests/test_layering.py): _cache, helpers"
    ]


def test_subpackage_of_providers_is_l0(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"providers/extra/__init__.py": "import httpx\n"})
    assert any("providers/extra/__init__.py:1" in p for p in check_package(root))


def test_syntax_error_is_reported(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"sse.py": "def broken(:\n"})
    problems = check_package(root)
    assert len(problems) == 1
    assert "cannot parse" in problems[0]


def test_modules_not_written_yet_are_checked_by_their_layer(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "client.py": "from ._transport import Transport\nfrom . import _stream\n",
            "errors.py": "from .limits import RateLimit\n",
            "retry.py": "from . import client\n",
        },
    )
    problems = check_package(root)
    assert any("errors.py:1" in p and "'limits'" in p for p in problems)
    assert any("retry.py:1" in p and "'client'" in p for p in problems)
    assert len(problems) == 2


def test_missing_unknown_internal_module_is_reported(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"client.py": "from ._helpers import thing\n"})
    assert check_package(root) == [
        "trillm/client.py:1: 'client' imports trillm._helpers, which does not exist"
    ]


def test_relative_import_above_package(tmp_path: Path) -> None:
    root = make_package(tmp_path, {"errors.py": "from .. import something\n"})
    assert any("above the package" in p for p in check_package(root))


def test_import_inside_providers_init(tmp_path: Path) -> None:
    # In providers/__init__.py, `from . import openai` is providers.openai.
    root = make_package(
        tmp_path,
        {
            "providers/openai.py": "",
            "providers/__init__.py": "from . import openai\nfrom .. import errors\n",
            "errors.py": "",
        },
    )
    assert check_package(root) == []
