"""The package's layers point one way, and no module imports itself back.

Every ``import`` in every module of ``swarmmesh/`` counts, the ones inside functions too
(they hide loops as well as any).  A newcomer reads the direction off this table:
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "swarmmesh"

# Which layer may import which (besides itself): the imports the code makes, no more, so
# that a new edge is a decision someone takes here.  The direction, top to bottom:
#   ui -> runs -> testbed -> control -> dataplane -> model
#   lifecycle -> model (the orchestrator drives a testbed it is handed, imports none);
#   trace (a path predicted and parsed, pure) -> dataplane, model;
#   agents -> model; traffic -> agents, machine; machine and model import nothing of ours.
ALLOWED = {
    "model": set(),
    "machine": set(),
    "dataplane": {"model"},
    "agents": {"model"},
    "control": {"dataplane", "model"},
    "trace": {"dataplane", "model"},
    "traffic": {"agents", "machine"},
    "testbed": {"control", "dataplane", "agents", "machine", "model"},
    "lifecycle": {"model"},
    "runs": {"lifecycle", "testbed", "traffic", "agents", "machine", "model", "dataplane",
             "trace"},
    "ui": {"runs", "lifecycle", "testbed", "machine", "model", "dataplane", "trace"},
}
OUTSIDE = ("experiments", "topologies", "controllers", "swarmmesh_experiments")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, name: str, known: set[str]) -> list[str]:
    """Every module ``path`` imports (absolute names; a ``from X import y`` counts as
    ``X.y`` when that is a module, else as ``X``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            out += subs or [base]
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {i for i in imports_of(p, m, known) if i in known and i != m}
            for m, p in mods.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "root"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import loop, as the list of modules around it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (loop := visit(n)):
                return loop
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (loop := visit(m)):
            return loop
    return None


def test_the_cycle_finder_finds_a_loop_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_loop_inside_the_package():
    assert find_cycle(graph()) is None, f"import loop: {' -> '.join(find_cycle(graph()))}"


def test_every_module_belongs_to_a_layer():
    stray = [m for m in modules() if layer(m) not in ALLOWED and m != "swarmmesh"]
    assert not stray, f"modules outside the layers {sorted(ALLOWED)}: {stray}"


def test_imports_point_one_way():
    wrong = sorted(f"{m} imports {n}" for m, deps in graph().items() for n in deps
                   if layer(n) not in ("root", layer(m))
                   and layer(n) not in ALLOWED.get(layer(m), set()))
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("outside", OUTSIDE)
def test_the_package_imports_nothing_from_the_entry_points(outside):
    mods = modules()
    bad = [f"{m}: {i}" for m, p in mods.items() for i in imports_of(p, m, set(mods))
           if i == outside or i.startswith(outside + ".")]
    assert not bad, bad


def test_the_package_finds_no_path_of_its_own():
    """No sys.path surgery and no repo-root arithmetic inside the package."""
    bad = [f"{m}" for m, p in modules().items()
           if "sys.path.insert" in p.read_text() or "sys.path.append" in p.read_text()]
    assert not bad, bad


# The project's size rules: a module says one thing, an experiment is a short script.
MAX_MODULE_LINES = 500
MAX_EXPERIMENT_LINES = 400


def test_no_module_of_the_package_is_over_500_lines():
    big = {m: n for m, p in modules().items()
           if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not big, f"split by concern (a new module per concern): {big}"


def test_no_experiment_is_over_400_lines():
    experiments = PACKAGE.parent / "experiments"
    big = {p.name: n for p in sorted(experiments.glob("*.py"))
           if (n := len(p.read_text().splitlines())) > MAX_EXPERIMENT_LINES}
    assert not big, f"move its tables and figures to swarmmesh/runs: {big}"
