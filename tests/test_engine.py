"""`results/engine.py` is the one way from results into the inference engine; results import
neither `api` nor `cli`, nor one another in a cycle, and load no torch until they compute."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

import compiler

RESULTS = Path(compiler.__file__).parent / "results"
MODULES = sorted(RESULTS.glob("*.py"))


def _imports(path: Path, type_checking: bool) -> set[str]:
    """The compiler modules `path` imports, anywhere in it; with `type_checking` False,
    leaving out those under `if TYPE_CHECKING:` (for annotations only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = set()
    if not type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
                skipped |= {id(child) for statement in node.body for child in ast.walk(statement)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("compiler")}


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "engine.py"], ids=lambda p: p.name)
def test_only_the_engine_calls_into_inference(path):
    assert not {name for name in _imports(path, type_checking=False) if name.startswith("compiler.inference")}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_results_import_neither_api_nor_cli(path):
    upward = ("compiler.api", "compiler.cli")
    assert not {name for name in _imports(path, type_checking=True) if name.startswith(upward)}


def test_results_modules_import_one_another_without_a_cycle():
    names = {f"compiler.results.{path.stem}": path for path in MODULES}
    graph = {name: {imported for imported in _imports(path, type_checking=True) if imported in names}
             for name, path in names.items()}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {error.args[1]}")


def test_importing_the_fit_handle_loads_no_torch():
    code = ("import sys\nimport compiler.results.fit\n"
            "print([name for name in ('torch', 'pyro', 'numpy') if name in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr[-2000:]
