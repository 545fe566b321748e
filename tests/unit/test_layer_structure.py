"""The layer's shape, kept by tests: no import cycles, the module map complete, handlers thin.

The import graph is read from the source (every `import`/`from ... import` of an acexport module, at module
level or inside a function), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "common"
PACKAGE = LAYER / "acexport"


def _module_name(path: Path) -> str:
    parts = path.relative_to(LAYER).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


@cache   # each module parsed once per run, whichever tests ask
def _imports(path: Path) -> frozenset[str]:
    """The acexport modules `path` imports (a `from pkg import name` counts pkg.name when it is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("acexport"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("acexport"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    return frozenset(name for name in found if name in MODULES)


def _graph() -> dict[str, set[str]]:
    # A package's __init__ is imported before any of its modules: an edge to "acexport.jobs.x" also means one
    # to "acexport.jobs"; the package inits here import nothing, which keeps that edge harmless.
    return {name: _imports(path) - {name} for name, path in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_layer_has_no_import_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_package_inits_import_nothing():
    for name, path in MODULES.items():
        if path.name == "__init__.py":
            assert not _imports(path), f"{name} imports {_imports(path)}: keep package inits empty of imports"


def test_no_flat_job_modules_beside_the_jobs_package():
    assert not list(PACKAGE.glob("job_*.py"))


def test_the_ac_side_does_not_reach_into_credentials_or_jobs():
    graph = _graph()
    for name in MODULES:
        if name.startswith("acexport.ac."):
            bad = {m for m in graph[name] if m.startswith(("acexport.credentials", "acexport.jobs"))}
            assert not bad, f"{name} imports {bad}"


def test_only_handlers_import_the_page_export_module():
    importers = {name for name, deps in _graph().items() if "acexport.exports" in deps}
    assert not importers, f"{importers} import acexport.exports (share code through acexport.ac.records)"


def test_the_module_map_lists_every_module():
    """The package docstring's map (and docs/architecture.md's) names every module of the layer."""
    doc = (PACKAGE / "__init__.py").read_text()
    mapped: set[str] = set()
    package = "acexport"
    for line in doc.splitlines():
        sub = re.match(r"^    ([a-z_]+)/\s", line)
        top = re.match(r"^    ([a-z_]+)\s{2,}\S", line)
        inner = re.match(r"^      ([a-z_]+)\s{2,}\S", line)
        if sub:
            package = f"acexport.{sub.group(1)}"
            mapped.add(package)
        elif top:
            package = "acexport"
            mapped.add(f"acexport.{top.group(1)}")
        elif inner:
            mapped.add(f"{package}.{inner.group(1)}")
    modules = {name for name in MODULES if name != "acexport"}
    assert modules - mapped == set(), "modules missing from the map in acexport/__init__.py"
    assert mapped - modules == set(), "the map in acexport/__init__.py names modules that do not exist"
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    missing = {name for name in modules if f"{name.split('.', 1)[1].replace('.', '/')}" not in architecture}
    assert not missing, f"docs/architecture.md's module map misses {sorted(missing)}"


def test_handlers_import_only_the_layer_and_powertools():
    for app in (ROOT / "functions").glob("*/app.py"):
        for node in ast.walk(ast.parse(app.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] in {"acexport", "aws_lambda_powertools", "__future__"}, \
                    f"{app.parent.name} imports {name}: handlers stay thin, code lives in the layer"
