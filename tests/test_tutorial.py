"""docs/how-pplc-works.md quotes real pplc output: each `$ pplc ...` command in a
console block is run here, and its output must be what the document shows."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from compiler.cli import main

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "how-pplc-works.md"


def console_blocks() -> list[tuple[str, str]]:
    blocks = re.findall(r"```console\n(.*?)```", TUTORIAL.read_text(), re.S)
    commands = []
    for block in blocks:
        first, _, rest = block.partition("\n")
        assert first.startswith("$ pplc "), first
        commands.append((first[2:], rest))
    return commands


def test_the_tutorial_quotes_commands():
    assert len(console_blocks()) >= 5


@pytest.mark.parametrize(("command", "quoted"), console_blocks(), ids=[c for c, _ in console_blocks()])
def test_quoted_output_is_what_pplc_prints_now(command, quoted, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(shlex.split(command)[1:]) == 0
    assert capsys.readouterr().out == quoted


def test_python_example_runs(monkeypatch):
    monkeypatch.chdir(ROOT)
    code = re.findall(r"```python\n(import pyro\nimport torch.*?)```", TUTORIAL.read_text(), re.S)[0]
    exec(compile(code, str(TUTORIAL), "exec"), {})  # noqa: S102 - the document's own example
