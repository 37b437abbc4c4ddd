"""The layer rules of DESIGN.md ("Modules and layers"), checked on the source with `ast`.

Nothing is imported: every module under ``trillm/`` is parsed, its imports are
resolved to modules of the package (or to outside distributions), and each
import is checked against the layer table below.  Dependencies point down
only::

    L4  __init__ _default _sync _bridge openai_compat otel testing cli   entry points
    L3  client _call batch _fanout                                       orchestration
    L2  _transport _stream redis                                         I/O (trio)
    L1  limits concurrency tools                                         generic async
    L0  types errors _wire sse retry routing structured providers/*      stdlib + attrs only

and the "nevers" hold, whatever the context of the import (function-level and
``if TYPE_CHECKING:`` imports count, except where said):

* L0 imports nothing but the stdlib and attrs: no trio, httpx, anyio, asyncio, ...
* L1 and the I/O layer (L2) never import ``providers/``; providers import one
  another only where azure builds on openai.
* httpx/httpcore only in ``_transport`` and the test kit (others may name them
  under ``if TYPE_CHECKING:``); coredis only in ``redis``.
* ``concurrency`` is generic: nothing HTTP- or provider-related.
* No import cycle, and no module uses another module's ``_private`` names.

A new module must be given a layer here before the test passes.
"""

from __future__ import annotations

import ast
import fnmatch
import itertools
import sys
import textwrap
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs
import pytest

from tests.layering_cases import BROKEN, CLEAN, FOLLOWED

# Module names relative to the package; "__init__" is the package itself and
# "providers" the providers package.  Patterns use fnmatch.  A layer for a module
# that does not exist yet is harmless: imports of it are checked by that layer.
LAYERS: dict[str, int] = {
    "types": 0,
    "_records": 0,  # the record base (Mapping view, to_dict) and Usage, under every record
    "_statistics": 0,  # the snapshots Client.statistics() returns (imported with the first)
    "_beyond_chat": 0,  # embeddings, images, audio, model lists records: types' lazy part
    "_stream_records": 0,  # a stream's chunk records: types' other lazy part
    "_tool_records": 0,  # a tool call's records: loaded with the first tool call
    "errors": 0,
    "sse": 0,
    "retry": 0,
    "routing": 0,
    "structured": 0,
    "response_types": 0,  # the Responses API's records (request, Response, items, events)
    "accumulate": 0,  # stream_chunk_builder: pure, over types (not in DESIGN.md's table)
    "_wire": 0,  # neutral wire records shared by providers and I/O
    "_mock_wire": 0,  # the mock's knobs and in-process answers (with the first mocked call)
    "_options": 0,  # a call's options, settled from the Client's and the call's: pure
    "hooks": 0,  # the hook records and the dispatcher the pipeline fires (its clock passed in)
    "usage": 0,  # normalized token counts, Prices, cost(), the per-model totals
    "_json": 0,  # json.loads with less overhead, for the stream parsers' hot path
    "providers": 0,
    "providers.*": 0,
    "limits": 1,
    "concurrency": 1,
    "_cancel": 1,  # one bare Cancelled out of a group (split off concurrency)
    "tools": 1,
    "_transport": 2,
    "_body_limits": 2,  # response size and decompression-bomb bounds (pure), split off _transport
    "_body_iterators": 2,  # request and in-process bodies as iterator objects, off _transport
    "_transport_errors": 2,  # what the transport's errors say (no httpx), split off _transport
    "_stream_body": 2,  # an open streaming response's body (no httpx at run time), off _transport
    "_stream": 2,
    "_response_stream": 2,  # ResponseStream: a Responses API event stream over _stream's base
    "_files": 2,  # audio files in and out (trio file I/O)
    "redis": 2,
    "client": 3,
    "_call": 3,  # the one call pipeline
    "_responses": 3,  # the Responses API's call preparation (input and tools checked)
    "_count_tokens": 3,  # acount_tokens: the COUNT_TOKENS operation over the pipeline
    "batch": 3,
    "_outside": 3,  # where async methods run outside trio: the bridge's registered runner
    "_fanout": 3,  # client-side fan-out (abatch_completion, several models)
    "batch_types": 0,  # the batch APIs' records (BatchJob, BatchItem, ...): pure
    "_batch_mock": 3,  # the mock's batches: an in-run registry on trio's clock
    "__init__": 4,
    "_default": 4,
    "_sync": 4,
    "_bridge": 4,
    "openai_compat": 4,
    "otel": 4,
    "testing": 4,
    "testing.*": 4,
    "cli": 4,
    "_batch_cli": 4,  # `trillm batch` (public API only)
}
LAYER_NAMES = {0: "L0", 1: "L1", 2: "L2", 3: "L3", 4: "L4"}

#: Distributions an L0 module may not import, whatever the context.
L0_FORBIDDEN = frozenset({"trio", "httpx", "httpcore", "anyio", "asyncio", "outcome", "sniffio"})
#: Outside the standard library, all an L0 module may import.
L0_THIRD_PARTY = frozenset({"attrs", "attr"})
#: Distributions only some modules (fnmatch patterns) may import, and whether the
#: others may still name them under `if TYPE_CHECKING:` (httpx types are public API).
HTTPX_OWNERS = frozenset({"_transport", "testing", "testing.*"})
OWNED: dict[str, tuple[frozenset[str], bool]] = {
    "httpx": (HTTPX_OWNERS, True),
    "httpcore": (HTTPX_OWNERS, True),
    "coredis": (frozenset({"redis"}), False),
}
#: Generic modules (like trio's high-level modules over _core) and what they may
#: never import: anything HTTP- or provider-related.
GENERIC = frozenset({"concurrency"})
HTTP_OR_PROVIDERS = frozenset(
    {"_transport", "_stream", "_wire", "providers", "providers.*", "httpx", "httpcore"}
)
#: Provider modules that may build on another provider.
PROVIDER_EXCEPTIONS = frozenset({
    ("providers.azure", "providers.openai"),
    # a provider's own split-off parts: the Responses API's translation and mock rendering
    ("providers.openai", "providers.openai_responses"),
    ("providers.openai", "providers.openai_read"),
    ("providers.openai", "providers.openai_stream"),
    ("providers.openai_stream", "providers.openai_read"),
    ("providers.mock", "providers.mock_responses"),
    # each provider attaches its own render steps (the inverse of its parse steps)
    ("providers.openai", "providers.openai_render"),
    ("providers.openai", "providers.openai_responses_render"),
    ("providers.anthropic", "providers.anthropic_render"),
    ("providers.gemini", "providers.gemini_render"),
    # each provider attaches its batch API's translation
    ("providers.openai", "providers.openai_batch"),
    ("providers.azure", "providers.openai_batch"),
    ("providers.anthropic", "providers.anthropic_batch"),
    ("providers.gemini", "providers.gemini_batch"),
})
PROVIDER_SHARED = frozenset({"providers", "providers.base", "providers.render"})
#: At most this many import cycles are spelled out (fixing them shows the rest).
MAX_CYCLES = 20


@attrs.frozen
class Import:
    """One import statement's target, resolved."""

    line: int
    target: str  # a package module ("errors", "providers.base", "__init__") or a top-level name
    internal: bool
    type_checking: bool  # inside `if TYPE_CHECKING:`


@attrs.frozen
class Module:
    """One parsed module of the package."""

    name: str  # relative: "client", "providers.openai", "__init__"
    path: Path
    where: str  # "trillm/providers/openai.py", for messages
    tree: ast.Module


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


def _from_base(mod: Module, node: ast.ImportFrom, top: str) -> list[str] | str | None:
    """Where `from X import ...` imports from, as relative parts of the package;
    None when X is outside the package, a message when it goes above it."""
    if node.level == 0:
        assert node.module is not None
        parts = node.module.split(".")
        return parts[1:] if parts[0] == top else None
    package = _package_of(mod.name, mod.path)
    up = node.level - 1
    if up > len(package):
        return f"{mod.where}:{node.lineno}: relative import goes above the package"
    extra = node.module.split(".") if node.module else []
    return package[: len(package) - up] + extra


def _is_submodule(dotted: str, modules: Iterable[str]) -> bool:
    # A module exists when its file does, or when LAYERS names it (not written yet).
    return dotted in modules or dotted in LAYERS


def _imports(mod: Module, modules: dict[str, Module], top: str) -> Iterator[Import | str]:
    """The resolved imports of one module (or an error string)."""
    for node, tc in _walk(mod.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == top:
                    yield Import(node.lineno, ".".join(parts[1:]) or "__init__", True, tc)
                else:
                    yield Import(node.lineno, parts[0], False, tc)
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(mod, node, top)
            if base is None:
                assert node.module is not None
                yield Import(node.lineno, node.module.split(".")[0], False, tc)
                continue
            if isinstance(base, str):
                yield base
                continue
            # `from X import y`: y is a submodule of X, or else a name defined in X.
            for alias in node.names:
                sub = ".".join([*base, alias.name])
                if alias.name != "*" and _is_submodule(sub, modules):
                    yield Import(node.lineno, sub, True, tc)
                else:
                    yield Import(node.lineno, ".".join(base) or "__init__", True, tc)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


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


def _in_providers(name: str) -> bool:
    return name == "providers" or name.startswith("providers.")


# ------------------------------------------------------------------ rule: imports by layer


def _outside_import_problem(name: str, layer: int, imp: Import) -> str | None:
    dist = imp.target
    if layer == 0 and dist in L0_FORBIDDEN:
        return f"L0 module {name!r} imports {dist} (L0 is pure: stdlib and attrs only)"
    if layer == 0 and dist not in sys.stdlib_module_names and dist not in L0_THIRD_PARTY:
        return f"L0 module {name!r} imports {dist} (only stdlib and attrs)"
    if name in GENERIC and dist in HTTP_OR_PROVIDERS:
        return (
            f"{name!r} imports {dist}: it is generic over async callables and knows "
            "nothing about HTTP (move the HTTP part to the caller)"
        )
    owners, annotations_elsewhere = OWNED.get(dist, (None, False))
    if owners is None or _matches(name, owners):
        return None
    only = ", ".join(sorted(owners))
    if not annotations_elsewhere:
        return f"{name!r} imports {dist} (only {only} may; go through it instead)"
    if not imp.type_checking:
        return (
            f"{name!r} imports {dist} at run time (only {only} may; "
            "put annotation-only imports under `if TYPE_CHECKING:`)"
        )
    return None


def _internal_import_problem(name: str, layer: int, target: str, target_layer: int) -> str | None:
    if target_layer > layer:
        return (
            f"{LAYER_NAMES[layer]} module {name!r} imports "
            f"{LAYER_NAMES[target_layer]} module {target!r} (dependencies point down)"
        )
    if name in GENERIC and _matches(target, HTTP_OR_PROVIDERS):
        return (
            f"{name!r} imports {target!r}: it is generic over async callables and knows "
            "nothing about HTTP or providers (move that part to the caller)"
        )
    if layer == 1 and _in_providers(target):
        return f"L1 module {name!r} imports {target!r} (no providers)"
    if layer == 2 and _in_providers(target):
        return (
            f"L2 (I/O) module {name!r} imports {target!r} (the I/O layer never imports "
            "providers/: move what both need to _wire, or pass it in)"
        )
    if _is_provider(name) and _is_provider(target) and (name, target) not in PROVIDER_EXCEPTIONS:
        return f"provider {name!r} imports provider {target!r} (share code through providers.base)"
    return None


def check_imports(modules: dict[str, Module], top: str) -> list[str]:
    problems: list[str] = []
    for name, mod in modules.items():
        layer = layer_of(name)
        if layer is None:
            continue  # reported as a module without a layer
        for imp in _imports(mod, modules, top):
            if isinstance(imp, str):
                problems.append(imp)
                continue
            problem = None
            if not imp.internal:
                problem = _outside_import_problem(name, layer, imp)
            elif imp.target != name:
                target_layer = layer_of(imp.target)
                if target_layer is not None:
                    problem = _internal_import_problem(name, layer, imp.target, target_layer)
                elif imp.target not in modules:
                    problem = f"{name!r} imports {top}.{imp.target}, which does not exist"
            if problem:
                problems.append(f"{mod.where}:{imp.line}: {problem}")
    return problems


# ------------------------------------------------------------------ rule: no import cycle

Graph = dict[str, dict[str, Import]]  # module -> imported module -> its first import


def _strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components of *graph*, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def _elementary_cycles(graph: Graph, component: list[str]) -> list[list[str]]:
    """Every cycle inside one component, each once: it starts at its smallest module."""
    members = set(component)
    cycles: list[list[str]] = []

    def extend(path: list[str]) -> None:
        for w in sorted(graph[path[-1]]):
            if len(cycles) >= MAX_CYCLES:
                return
            if w == path[0]:
                cycles.append([*path, w])
            elif w in members and w > path[0] and w not in path:
                extend([*path, w])

    for start in component:
        extend([start])
    return cycles


def check_cycles(modules: dict[str, Module], top: str) -> list[str]:
    """Every import cycle among the package's modules, whatever the imports' context."""
    graph: Graph = {name: {} for name in modules}
    for name, mod in modules.items():
        for imp in _imports(mod, modules, top):
            if not isinstance(imp, Import) or not imp.internal or imp.target == name:
                continue
            if imp.target in modules:  # (a module named in LAYERS may not exist yet)
                graph[name].setdefault(imp.target, imp)  # the first import of it, by line
    problems: list[str] = []
    for component in _strongly_connected(graph):
        if len(component) < 2:
            continue
        for cycle in _elementary_cycles(graph, component)[: MAX_CYCLES - len(problems)]:
            edges = []
            for a, b in itertools.pairwise(cycle):
                imp = graph[a][b]
                note = " (under TYPE_CHECKING)" if imp.type_checking else ""
                edges.append(f"\n    {modules[a].where}:{imp.line}: {a} imports {b}{note}")
            problems.append(
                f"import cycle {' -> '.join(cycle)}:{''.join(edges)}\n"
                "  break it: move what they share into a lower module, or pass it in"
            )
        if len(problems) >= MAX_CYCLES:
            problems.append(f"(more import cycles not shown; fix these {MAX_CYCLES} first)")
            break
    return problems


# ------------------------------------------------------------------ rule: no foreign privates
# A module may not use another package module's `_private` names:
#   (a) `from .x import _y` (a private submodule such as `from . import _sync` is fine);
#   (b) `m._y` where `m` names a package module (`_sync._RUNNER`, `trillm.errors._redact`);
#   (c) `expr._y` on anything but `self`, `cls` or `super()`, when the module does not
#       define `_y` itself: a heuristic that catches `client._setup()` in another module
#       and lets a module's own helper classes touch each other's privates.
# Dunder names are public, and outside libraries' privates (`sys._getframe`) are not ours.


def _is_private(name: str) -> bool:
    return len(name) > 1 and name.startswith("_") and not (name[:2] == name[-2:] == "__")


def _defined_names(tree: ast.Module) -> set[str]:
    """Names a module defines: defs, classes, assignment targets (`x = `, `x._y = `,
    `_y: int` in a class body) and the strings of `__slots__` literals."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            out.add(node.attr)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(
            node.value, ast.Tuple | ast.List
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__slots__" for t in targets):
                for elt in node.value.elts:
                    if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                        out.add(elt.value)
    return out


def _bindings(mod: Module, modules: dict[str, Module], top: str) -> tuple[dict[str, str], set[str]]:
    """Local names bound to package modules (name -> module), and names bound by
    imports from outside the package (`sys`, `lowlevel`: their privates are not ours)."""
    package: dict[str, str] = {}
    outside: set[str] = set()
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] != top:
                    outside.add(alias.asname or parts[0])
                elif alias.asname:
                    package[alias.asname] = ".".join(parts[1:]) or "__init__"
                else:
                    package[top] = "__init__"  # `import trillm.x` binds trillm
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(mod, node, top)
            for alias in node.names:
                local = alias.asname or alias.name
                sub = ".".join([*base, alias.name]) if isinstance(base, list) else ""
                if base is None:
                    outside.add(local)
                elif _is_submodule(sub, modules):
                    package[local] = sub
    return package, outside


def _module_of(expr: ast.expr, package: dict[str, str], modules: dict[str, Module]) -> str | None:
    """The package module an expression names (`_sync`, `trillm.errors`), if any."""
    if isinstance(expr, ast.Name):
        return package.get(expr.id)
    if isinstance(expr, ast.Attribute):
        base = _module_of(expr.value, package, modules)
        if base is not None:
            sub = expr.attr if base == "__init__" else f"{base}.{expr.attr}"
            return sub if _is_submodule(sub, modules) else None
    return None


def _is_own(expr: ast.expr) -> bool:
    """`self`, `cls` or `super()`: an object's own attributes."""
    if isinstance(expr, ast.Call):
        return isinstance(expr.func, ast.Name) and expr.func.id == "super"
    return isinstance(expr, ast.Name) and expr.id in ("self", "cls")


def _root(expr: ast.expr) -> str | None:
    while isinstance(expr, ast.Attribute):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def _private_uses(
    mod: Module, modules: dict[str, Module], top: str, defined: set[str]
) -> Iterator[tuple[int, str, str | None]]:
    """(line, private name, owning module or None when unknown) for each use."""
    package, outside = _bindings(mod, modules, top)
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.ImportFrom):  # (a) `from .x import _y`
            base = _from_base(mod, node, top)
            if not isinstance(base, list):
                continue
            owner = ".".join(base) or "__init__"
            for alias in node.names:
                submodule = _is_submodule(".".join([*base, alias.name]), modules)
                if _is_private(alias.name) and owner != mod.name and not submodule:
                    yield node.lineno, alias.name, owner
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Load)
            and _is_private(node.attr)
            and not _is_own(node.value)
        ):
            module = _module_of(node.value, package, modules)
            if module is not None:  # (b) `_sync._RUNNER`, `trillm.errors._redact`
                sub = node.attr if module == "__init__" else f"{module}.{node.attr}"
                if module != mod.name and not _is_submodule(sub, modules):
                    yield node.lineno, node.attr, module
            elif node.attr not in defined and _root(node.value) not in outside:
                yield node.lineno, node.attr, None  # (c) `client._setup()`, defined elsewhere


def check_private_names(modules: dict[str, Module], top: str) -> list[str]:
    """Uses of another module's `_private` names, one message per module and name."""
    defined = {name: _defined_names(mod.tree) for name, mod in modules.items()}
    problems: list[str] = []
    for name, mod in modules.items():
        uses: dict[tuple[str, str | None], list[int]] = defaultdict(list)
        for line, private, owner in _private_uses(mod, modules, top, defined[name]):
            uses[private, owner].append(line)
        for (private, owner), lines in sorted(uses.items(), key=lambda item: item[1][0]):
            first, *more = sorted(set(lines))
            owners = [owner] if owner else sorted(n for n, d in defined.items() if private in d)
            whose = f" ({', '.join(owners)})" if owners else ""
            also = f" (also line{'s' if len(more) > 1 else ''} {', '.join(map(str, more))})"
            problems.append(
                f"{mod.where}:{first}: {name!r} uses {private!r}, a private name of another "
                f"module{whose}{also if more else ''}: make it public there, or move this code "
                "into that module"
            )
    return problems


# ------------------------------------------------------------------ all rules


def check_package(root: Path) -> list[str]:
    """Every layering violation in the package at *root* (a directory with __init__.py)."""
    top = root.name
    problems: list[str] = []
    modules: dict[str, Module] = {}
    for name, path in _module_names(root).items():
        where = f"{top}/{path.relative_to(root).as_posix()}"
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as exc:
            problems.append(f"{where}: cannot parse: {exc}")
            continue
        modules[name] = Module(name, path, where, tree)
    unknown = sorted(n for n in modules if layer_of(n) is None)
    if unknown:
        problems.insert(
            0,
            "modules without a layer (add them to LAYERS in tests/test_layering.py): "
            + ", ".join(unknown),
        )
    problems += check_imports(modules, top)
    problems += check_cycles(modules, top)
    problems += check_private_names(modules, top)
    return problems


# ------------------------------------------------------------------ the real package

PACKAGE = Path(__file__).resolve().parents[1] / "trillm"


def test_package_layering() -> None:
    problems = check_package(PACKAGE)
    assert not problems, "\n".join(problems)


DESIGN_TABLE = {  # DESIGN.md's, module by module
    0: "types errors _wire sse retry routing structured providers providers.base "
    "providers.openai providers.azure providers.anthropic providers.gemini providers.mock",
    1: "limits concurrency tools",
    2: "_transport _stream redis",
    3: "client _call batch _fanout",
    4: "__init__ _default _sync _bridge openai_compat otel testing testing.fake cli",
}


def test_design_modules_have_layers() -> None:
    for layer, names in DESIGN_TABLE.items():
        for name in names.split():
            assert layer_of(name) == layer, name


# ------------------------------------------------------------------ tests of the test


def make_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "trillm"
    for rel, text in {"__init__.py": "", "providers/__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


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


# ------------------------------------------------------------------ tests of the test, by table
# Layers, the "nevers", cycles and private names: packages in tests/layering_cases.py
# that break a rule (exactly the expected problems are reported) and packages that
# follow it (nothing is reported).


@pytest.mark.parametrize("case", BROKEN)
def test_rule_broken_is_reported(tmp_path: Path, case: str) -> None:
    files, expected = BROKEN[case]
    problems = check_package(make_package(tmp_path, files))
    assert len(problems) == len(expected), "\n".join(problems)
    for parts in expected:
        assert any(all(part in p for part in parts) for p in problems), (parts, problems)


@pytest.mark.parametrize("case", FOLLOWED)
def test_rule_followed_is_not_reported(tmp_path: Path, case: str) -> None:
    assert check_package(make_package(tmp_path, FOLLOWED[case])) == []


def test_a_cycle_reads_as_a_chain_of_imports(tmp_path: Path) -> None:
    files = {
        "types.py": "from . import errors\n",
        "errors.py": "def f():\n    from . import types\n",
    }
    assert check_package(make_package(tmp_path, files)) == [
        "import cycle errors -> types -> errors:\n"
        "    trillm/errors.py:2: errors imports types\n"
        "    trillm/types.py:1: types imports errors\n"
        "  break it: move what they share into a lower module, or pass it in"
    ]
