"""Bad specs: every error class has a golden file with its exact text, line and column.

`tests/errors/NAME.ppl` is a spec with one mistake; `NAME.expected` is what
`pplc check NAME.ppl` prints on stderr (run from that folder). A change to a
message is a reviewable diff of the golden file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from compiler.cli import main

ERRORS = Path(__file__).parent / "errors"
CASES = sorted(p.stem for p in ERRORS.glob("*.ppl"))


@pytest.mark.parametrize("case", CASES)
def test_error_message_matches_its_golden_file(case, capsys, monkeypatch):
    monkeypatch.chdir(ERRORS)
    assert main(["check", f"{case}.ppl"]) == 2
    assert capsys.readouterr().err == (ERRORS / f"{case}.expected").read_text()


@pytest.mark.parametrize("case", CASES)
def test_error_message_has_location_source_line_caret_and_hint(case):
    header, quoted, caret = (ERRORS / f"{case}.expected").read_text().splitlines()
    name, line, column, rest = header.split(":", 3)
    assert name == f"{case}.ppl" and rest.startswith(" error: ")
    source_line = (ERRORS / f"{case}.ppl").read_text().splitlines()[int(line) - 1]
    assert quoted == f"  {line} | {source_line}"
    marker = caret.split("| ", 1)[1]
    assert marker.index("^") == int(column) - 1
    assert marker.rstrip("^ ").strip(), "a hint follows the caret"


def test_every_error_class_has_a_golden_file():
    assert len(CASES) >= 20
    assert all((ERRORS / f"{case}.expected").is_file() for case in CASES)


def test_golden_files_are_not_stale():
    assert not [f for f in os.listdir(ERRORS) if f.endswith(".expected") and f[:-9] not in CASES]
