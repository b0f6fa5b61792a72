"""docs/language.md is checked against the compiler: every ```ppl example
compiles, every ```text error example prints what pplc prints now, and the
distribution and function tables list every row of the compiler's tables."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from compiler import compile_source
from compiler.cli import main
from compiler.frontend import distributions, functions

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
HEADING = re.compile(r"^#{1,6} (.+)$", re.M)


def blocks(info: str) -> list[tuple[str, str]]:
    """(id, body) of each fenced block with this info string; the id is the
    nearest heading above it and the block's number under that heading."""
    text = DOC.read_text(encoding="utf-8")
    found, counts, heading, prose_from = [], {}, "top", 0
    for fence in FENCE.finditer(text):
        # Headings come from the prose between fences, never from `#` comments in code.
        heading = ([heading] + HEADING.findall(text, prose_from, fence.start()))[-1]
        prose_from = fence.end()
        if fence.group(1) != info:
            continue
        slug = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")
        counts[slug] = counts.get(slug, 0) + 1
        found.append((f"{slug}-{counts[slug]}", fence.group(2)))
    return found


PPL = blocks("ppl")
TEXT = blocks("text")


def test_the_reference_has_examples():
    assert len(PPL) >= 15
    assert len(TEXT) >= 5


@pytest.mark.parametrize("source", [b for _, b in PPL], ids=[i for i, _ in PPL])
def test_ppl_example_compiles_to_pyro(source):
    program = compile_source(source, name="language.md")
    assert program.code.source.strip()


def session(block: str) -> tuple[dict[str, str], str, str]:
    """Split a `$ cat FILE` ... `$ pplc ...` transcript into the files, the
    command and its quoted output."""
    parts = re.split(r"^\$ (.*)\n", block, flags=re.M)
    assert parts[0] == "", "an error example starts with `$ cat FILE`"
    steps = list(zip(parts[1::2], parts[2::2]))
    files = {}
    for command, body in steps[:-1]:
        verb, _, name = command.partition(" ")
        assert verb == "cat", command
        files[name] = body
    command, output = steps[-1]
    assert command.startswith("pplc "), command
    return files, command, output


@pytest.mark.parametrize("block", [b for _, b in TEXT], ids=[i for i, _ in TEXT])
def test_error_example_is_what_pplc_prints_now(block, tmp_path, monkeypatch, capsys):
    files, command, output = session(block)
    for name, body in files.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    status = main(shlex.split(command)[1:])
    printed = capsys.readouterr()
    assert status != 0
    assert printed.out + printed.err == output


def test_tables_list_every_distribution_and_function():
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in distributions.TABLE if not re.search(rf"^\| `{name}` \|", text, re.M)]
    missing += [name for name in functions.TABLE if not re.search(rf"^\| `{name}\(", text, re.M)]
    assert not missing, f"docs/language.md does not list {missing} in its tables"
