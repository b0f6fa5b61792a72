"""The package's architecture, read from its imports: every module imports only from its
own layer or the layers below (cli -> api -> results -> inference -> {data, backend}
-> frontend -> errors), the two middle siblings never import each other, and no
chain of imports (lazy ones inside functions included) comes back to where it
started."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "compiler"

# Lower numbers lie below; modules of one layer may import each other (without cycles).
LAYERS = {
    "compiler.errors": 0, "compiler.precision": 0, "compiler.arrays": 0,
    "compiler.frontend": 1,
    "compiler.backend": 2, "compiler.data": 2,
    "compiler.inference": 3,
    "compiler.results": 4,
    "compiler.api": 5,
    "compiler.cli": 6, "compiler.cli_options": 6, "compiler.__main__": 6, "compiler": 7,
}
SIBLINGS = {"compiler.backend", "compiler.data"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """The compiler modules `name` imports anywhere in its text (resolved to modules)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            targets = [module for module in submodules if module in MODULES] or [node.module]
        else:
            continue
        found |= {target for target in targets if target in MODULES and target != name}
    return found


def _layer(name: str) -> tuple[str, int]:
    group = max((prefix for prefix in LAYERS if name == prefix or name.startswith(prefix + ".")), key=len)
    return group, LAYERS[group]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_module_imports_only_its_own_layer_or_those_below(name):
    group, layer = _layer(name)
    upward = [target for target in _imports(name) if _layer(target)[1] > layer]
    assert not upward, f"{name} (layer {group}) imports upward: {upward}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _layer(n)[0] in SIBLINGS))
def test_backend_and_data_never_import_each_other(name):
    group, _ = _layer(name)
    across = [target for target in _imports(name) if _layer(target)[0] in SIBLINGS - {group}]
    assert not across, f"{name} imports its sibling layer: {across}"


def test_no_chain_of_imports_comes_back_to_where_it_started():
    graph = {name: _imports(name) for name in MODULES}
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target] if target in path else [name, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, path + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_no_module_is_much_longer_than_400_lines():
    long = {name: lines for name, path in MODULES.items()
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 450}
    assert not long, f"modules over 450 lines: {long}"
