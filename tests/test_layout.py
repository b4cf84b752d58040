"""The shape of the house, checked: no import cycles, the core free of Prefect, the HTTP
framework only in the HTTP face, and a test folder for every package.

Imports are read from the source (AST), not by importing: a lazy import inside a function
counts for the Prefect and framework rules (it runs when called), and not for cycles (a
module-level cycle is what breaks an import order; a lazy one is the usual way out of it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("evalkeeper", "evaluators", "tasks", "flows", "deployments")
FACES = ("evalkeeper.cli", "evalkeeper.http")
"""The only core modules that may touch Prefect (docs/architecture.md)."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for pkg in PACKAGES
        for p in sorted((ROOT / pkg).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, *, module_level_only: bool) -> set[str]:
    """Absolute names imported by a file (`from a.b import c` gives `a.b` and `a.b.c`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, ast.Import) and (top or not module_level_only):
                found.update(a.name for a in child.names)
            elif (
                isinstance(child, ast.ImportFrom)
                and (top or not module_level_only)
                and child.level == 0
                and child.module
            ):
                found.add(child.module)
                found.update(f"{child.module}.{a.name}" for a in child.names)
            is_scope = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, top and not is_scope)

    visit(tree, True)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {n for n in _imports(path, module_level_only=True) if n in modules}
        graph[name] = targets - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def strong(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_level_import_cycle() -> None:
    graph = _graph()
    # package faces (`__init__`) re-export their modules: an edge into a package's own
    # submodule from its __init__ is how a face works, not a cycle of ideas
    for name in graph:
        graph[name] = {t for t in graph[name] if not (t.startswith(name + "."))}
    assert _cycles(graph) == []


def _core_modules() -> dict[str, Path]:
    return {
        n: p
        for n, p in _modules().items()
        if n.startswith("evalkeeper") and not any(n == f or n.startswith(f + ".") for f in FACES)
    }


@pytest.mark.parametrize("forbidden", ["prefect", "flows", "tasks"])
def test_the_core_never_imports_prefect_flows_or_tasks(forbidden: str) -> None:
    offenders = {
        name: sorted(
            i
            for i in _imports(path, module_level_only=False)
            if i == forbidden or i.startswith(forbidden + ".")
        )
        for name, path in _core_modules().items()
    }
    assert {n: i for n, i in offenders.items() if i} == {}


def test_the_http_framework_stays_in_the_http_face() -> None:
    allowed = ("evalkeeper.http", "evalkeeper.testing")  # the face, and the test servers
    offenders = {
        name: sorted(
            i
            for i in _imports(path, module_level_only=False)
            if i.split(".")[0] in ("fastapi", "starlette", "uvicorn")
        )
        for name, path in _modules().items()
        if not any(name == a or name.startswith(a + ".") for a in allowed)
        and not name.startswith("evalkeeper.cli")  # `listen` starts uvicorn
    }
    assert {n: i for n, i in offenders.items() if i} == {}


def test_every_package_has_its_test_folder() -> None:
    packages = [
        p.name for p in sorted((ROOT / "evalkeeper").iterdir()) if (p / "__init__.py").exists()
    ]
    packages = [p for p in packages if p != "testing"]  # the fakes tests use, tested through them
    packages += ["evaluators", "flows", "deployments"]
    missing = [p for p in packages if not list((ROOT / "tests" / p).glob("test_*.py"))]
    assert missing == []
