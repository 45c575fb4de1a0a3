"""The import graph of eemo_pipeline's subpackages: no cycle, and the domain code stays free of Dagster.

Every import is read from the source with ``ast`` (imports inside functions included), so the test sees what
a lazy import would pull in too.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import eemo_pipeline

PACKAGE = Path(eemo_pipeline.__file__).parent
DOMAIN = ("sources", "labels", "vad", "generation", "subsets", "training", "evaluation", "tasks")
# The Dagster layer: assets, their resources, checks, partitions and jobs, and the definitions that assemble them.
FORBIDDEN_IN_DOMAIN = ("eemo_pipeline.assets", "eemo_pipeline.resources", "eemo_pipeline.checks", "eemo_pipeline.partitions",
                       "eemo_pipeline.jobs", "eemo_pipeline.definitions", "dagster")
# Subsets, training and evaluation share what they need through eemo_pipeline.tasks, never each other.
SIBLINGS = ("subsets", "training", "evaluation")
# The shared top-level modules (DESIGN.md's layout: settings, constants, frames; the contracts loader, storage
# paths, progress); any domain package may import them, and they import none of the packages.
LEAVES = ("settings", "constants", "frames", "contracts", "storage", "progress")
# DESIGN.md's layout: what each package with an arrow in the picture may import besides the leaves.
ALLOWED = {
    "sources": set(),
    "subsets": {"tasks", "labels", "vad", "sources"},  # never generation, training or evaluation
    "training": {"tasks"},
    "evaluation": {"tasks", "generation", "labels", "sources"},
}


def _imports(path: Path) -> set[str]:
    """The absolute module names ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def _unit(path: Path, package: Path) -> str:
    """The subpackage (or top-level module) of eemo_pipeline that ``path`` belongs to."""
    parts = path.relative_to(package).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def _graph() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> the files that import it."""
    return _graph_of(PACKAGE)


@functools.cache
def _graph_of(package: Path) -> dict[str, dict[str, set[str]]]:
    graph: dict[str, dict[str, set[str]]] = {}
    for path in sorted(package.rglob("*.py")):
        unit = _unit(path, package)
        graph.setdefault(unit, {})
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "eemo_pipeline" and len(parts) > 1 and parts[1] != unit:
                target = parts[1]
                if (package / target).is_dir() or (package / f"{target}.py").is_file():
                    graph[unit].setdefault(target, set()).add(str(path.relative_to(package)))
    return graph


def _cycle(graph: dict[str, dict[str, set[str]]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, {})):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_subpackages_import_no_cycle() -> None:
    graph = _graph()
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or []) + ": " + "; ".join(
        f"{a} -> {b} in {sorted(graph[a][b])}" for a, b in zip(cycle or [], (cycle or [])[1:]))


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b": set()}, "b": {"c": set()}, "c": {"a": set()}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b": set()}, "b": {}}) is None


def test_domain_code_imports_no_dagster_assets_or_definitions() -> None:
    offending = []
    for unit in DOMAIN:
        for path in sorted((PACKAGE / unit).rglob("*.py")):
            for name in _imports(path):
                if any(name == bad or name.startswith(f"{bad}.") for bad in FORBIDDEN_IN_DOMAIN):
                    offending.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert not offending, offending


def test_subsets_training_and_evaluation_share_only_tasks() -> None:
    graph = _graph()
    crossing = [f"{a} -> {b} in {sorted(graph[a][b])}" for a in SIBLINGS for b in SIBLINGS if b in graph.get(a, {})]
    assert not crossing, crossing
    assert all("tasks" in graph[unit] for unit in SIBLINGS)


@pytest.mark.parametrize("unit", sorted(ALLOWED))
def test_each_package_imports_what_the_layout_allows(unit: str) -> None:
    imported = _graph()[unit]
    beyond = {target: sorted(files) for target, files in imported.items()
              if target not in ALLOWED[unit] and target not in LEAVES}
    assert not beyond, f"{unit} imports {beyond}; DESIGN.md's layout allows {sorted(ALLOWED[unit])} and the leaves"


def test_subsets_never_import_generation() -> None:
    assert "generation" not in _graph()["subsets"], _graph()["subsets"].get("generation")


def test_leaves_import_only_leaves() -> None:
    graph = _graph()
    offending = {leaf: sorted(set(graph.get(leaf, {})) - set(LEAVES)) for leaf in LEAVES}
    assert not any(offending.values()), offending


def test_the_layout_check_finds_a_forbidden_import(tmp_path: Path) -> None:
    """The graph reads a new file's imports: a subsets module importing generation is caught."""
    package = tmp_path / "eemo_pipeline"
    for unit in ("subsets", "generation"):
        (package / unit).mkdir(parents=True)
        (package / unit / "__init__.py").write_text("")
    (package / "subsets" / "bad.py").write_text("def f():\n    from eemo_pipeline.generation import validators\n")
    assert "generation" in _graph_of(package)["subsets"]
