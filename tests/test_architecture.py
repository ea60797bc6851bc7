"""The layout's rules, checked on the source: imports between top-level folders point one way,
the function imports nothing from the rest of the repository, and no private name is imported
from another module.

Folders are the top-level packages (``layers``, ``release``, ...) plus ``function`` (whose
modules are imported as ``inference`` and ``lambda_function``). ``tests`` may import anything.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
FUNCTION_MODULES = {"inference", "lambda_function"}
PACKAGES = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"}


def _folder_of(module: str) -> str | None:
    first = module.split(".")[0]
    if first in FUNCTION_MODULES:
        return "function"
    return first if first in PACKAGES else None


def _sources() -> list[Path]:
    return [p for folder in [*PACKAGES, "function"] for p in (ROOT / folder).rglob("*.py")]


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names imported from it)`` for every absolute import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


def folder_edges() -> dict[tuple[str, str], list[str]]:
    """``(importing folder, imported folder) -> files`` for every import across folders."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in _sources():
        source = path.relative_to(ROOT).parts[0]
        for module, _ in _imports(path):
            target = _folder_of(module)
            if target and target != source:
                edges[source, target].append(str(path.relative_to(ROOT)))
    return edges


def test_the_checker_sees_the_known_dependencies():
    edges = folder_edges()
    assert ("release", "function") in edges
    assert ("localtwin", "layers") in edges
    assert ("experiments", "localtwin") in edges


def test_no_two_folders_import_each_other():
    edges = folder_edges()
    both_ways = sorted(
        f"{a} <-> {b}: {edges[a, b][0]} and {edges[b, a][0]}" for a, b in edges if a < b and (b, a) in edges
    )
    assert both_ways == []


def test_the_folder_graph_has_no_cycle():
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in folder_edges():
        graph[a].add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph[start])

    assert sorted(f for f in list(graph) if reaches(f, f, {f})) == []


def test_the_function_imports_nothing_outside_function():
    assert sorted(b for a, b in folder_edges() if a == "function") == []


def test_no_private_name_is_imported_from_another_module():
    crossings = [
        f"{path.relative_to(ROOT)}: from {module} import {name}"
        for path in _sources()
        for module, names in _imports(path)
        if _folder_of(module)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert crossings == []
