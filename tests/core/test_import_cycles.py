"""No import circles among the product's modules (DESIGN.md: dependencies point one way).

The graph is read from the source with ``ast``, not by importing: every ``import`` and
``from … import`` anywhere in a module (function-level ones too: a circle broken only by
deferring an import is still a circle), relative imports resolved, ``from pkg import name``
counted as an edge to ``pkg`` (its ``__init__`` runs and hands out *name*) and to ``pkg.name``
where that is a module: so ``pkg/__init__`` re-exporting from a module that imports ``from pkg``
is a circle, as issue 25 counts them. Imports under ``if TYPE_CHECKING:`` are left out: they never run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("dcim", "collectors", "optimizer", "alerts", "dashboards", "simulator")

# Circles wholly inside these packages are tolerated while issue 25's owners rework them (the
# store split, the dashboard pages, the twin); the lead empties this once they are done.
PENDING: tuple[str, ...] = ()


def modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(tree: ast.Module):
    """Every Import/ImportFrom node, skipping ``if TYPE_CHECKING:`` bodies."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules *module* imports."""
    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: list[str] = []
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
            continue
        base = node.module or ""
        if node.level:
            anchor = package[:len(package) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        names.append(base)  # "from pkg import x" runs pkg/__init__ and reads x from it, module or not
        names += [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
    return {r for r in map(resolve, names) if r and r != module}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found = []
    for root, targets in graph.items():
        if root in index:
            continue
        work = [(root, iter(sorted(targets)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def graph_of(known: dict[str, Path]) -> dict[str, set[str]]:
    return {name: imported(name, path, known) for name, path in known.items()}


def test_the_checker_finds_a_circle_and_resolves_relative_imports(tmp_path):
    files = {"pkg/__init__.py": "from pkg.b import B\n", "pkg/a.py": "from . import b\n",
             "pkg/b.py": "from .a import x\nB = 1\n", "pkg/c.py": "from typing import TYPE_CHECKING\n"
             "if TYPE_CHECKING:\n    from pkg.a import x\n", "pkg/d.py": "def f():\n    import pkg.c\n"}
    known = {}
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        parts = rel[:-3].split("/")
        known[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = graph_of(known)
    assert graph == {"pkg": {"pkg.b"}, "pkg.a": {"pkg", "pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": set(),
                     "pkg.d": {"pkg.c"}}
    assert circles(graph) == [["pkg", "pkg.a", "pkg.b"]]


def test_no_import_circles():
    found = circles(graph_of(modules()))
    pending = [c for c in found if all(m.startswith(PENDING) for m in c)]
    new = [c for c in found if c not in pending]
    assert not new, "import circles: " + "; ".join(" ↔ ".join(c) for c in new)
    if pending:
        pytest.skip("circles left in packages being reworked (issue 25): "
                    + "; ".join(" ↔ ".join(c) for c in pending))
