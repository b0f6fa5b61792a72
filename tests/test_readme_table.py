"""The README's "How it is built" table matches the tree: every module of the package is
in it, and every file it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _table_files() -> set[str]:
    section = ROOT.joinpath("README.md").read_text(encoding="utf-8").split("## How it is built", 1)[1]
    section = section.split("\n## ", 1)[0]
    files = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split("|")[1]
        names = re.findall(r"`([^`]+\.(?:py|lark))`", cell)
        folder = str(Path(names[0]).parent)
        files |= {name if "/" in name else f"{folder}/{name}" for name in names}
    return files


def test_every_module_of_the_package_is_in_the_table():
    modules = {str(p.relative_to(ROOT)) for p in ROOT.glob("compiler/**/*.py")
               if p.name not in ("__init__.py", "__main__.py")}
    missing = modules - _table_files()
    assert not missing, f"not in README's 'How it is built': {sorted(missing)}"


def test_every_file_the_table_names_exists():
    named = {name for name in _table_files() if not ROOT.joinpath(name).exists()}
    assert not named, f"README's 'How it is built' names files that do not exist: {sorted(named)}"
