"""docs/notebook.ipynb, the Python API in a notebook: a hierarchical model fitted from a DataFrame,
its report, its check, predictions for new rows and a comparison of two models. It is committed
executed (so that it renders on GitHub) through the public API only; the slow test runs it again."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

import compiler

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebook.ipynb"


def _read():
    return nbformat.read(NOTEBOOK, as_version=4)


def _code_cells(notebook) -> dict[str, nbformat.NotebookNode]:
    return {cell.id: cell for cell in notebook.cells if cell.cell_type == "code"}


def _shown(cell, kind: str = "text/html") -> str:
    """What a cell displays as `kind` (its result's rich form)."""
    return "".join(output.get("data", {}).get(kind, "") for output in cell.outputs)


def _assert_ran_and_shows_what_it_should(notebook) -> None:
    cells = _code_cells(notebook)
    assert [cell.execution_count for cell in cells.values()] == list(range(1, len(cells) + 1))
    for cell in cells.values():
        assert all(output.output_type != "error" for output in cell.outputs), cell.id
        assert all(output.get("name") != "stderr" for output in cell.outputs), cell.id  # no stray warnings
    assert "radon.ppl: ok" in _shown(cells["program"])
    report = _shown(cells["report"])
    assert "<table" in report and "mu_a" in report and "a[7]" in report and "warning" not in report
    assert _shown(cells["check"], "text/plain").startswith("(True, 0.")  # converged, k̂ below 1, ...
    assert _shown(cells["check"], "text/plain").endswith(", [])")  # ... and no warnings
    raised = _shown(cells["warnings"], "text/plain")
    assert "ConvergenceWarning" in raised and "still changing after 5 steps" in raised
    assert len(re.findall(r"<tr>\s*<th>\d</th>", _shown(cells["predict"]))) == 3  # a row per new home
    ranking = re.findall(r"<th>(hierarchical|pooled)</th>", _shown(cells["compare"]))
    assert ranking == ["hierarchical", "pooled"]  # county intercepts predict better than one for all


def test_the_notebook_is_valid_and_committed_with_its_outputs():
    notebook = _read()
    nbformat.validate(notebook)
    _assert_ran_and_shows_what_it_should(notebook)


def test_the_notebooks_code_uses_only_the_public_api():
    for cell in _code_cells(_read()).values():
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("compiler"):
                assert node.module == "compiler" and all(a.name in compiler.__all__ for a in node.names), cell.id
            elif isinstance(node, ast.Import):
                assert all(a.name == "compiler" or not a.name.startswith("compiler.") for a in node.names), cell.id
            elif isinstance(node, ast.Attribute):
                private = node.attr.startswith("_") and not node.attr.endswith("__")  # `__name__` is Python's
                assert not private, f"{cell.id}: {node.attr}"
                if isinstance(node.value, ast.Name) and node.value.id == "compiler":
                    assert node.attr in compiler.__all__, f"{cell.id}: compiler.{node.attr}"


@pytest.mark.slow
def test_the_notebook_runs_from_top_to_bottom():
    from nbclient import NotebookClient

    notebook = _read()
    for cell in _code_cells(notebook).values():
        cell.outputs, cell.execution_count = [], None
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    _assert_ran_and_shows_what_it_should(notebook)
