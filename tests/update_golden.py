"""Rewrite the golden files of generated code: `python tests/update_golden.py`.

`tests/golden/<spec>.py` is what `pplc emit specs/<spec>.ppl` prints, for every
spec in specs/ and specs/posteriordb/ (the latter under golden/posteriordb/).
tests/test_codegen.py compares them with what codegen emits now, so a change to
generated code is a reviewable diff of these files. Run this after such a
change, and read the diff before committing it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GOLDEN = Path(__file__).resolve().parent / "golden"


def golden_specs() -> list[Path]:
    """Every example spec that has a golden file."""
    return sorted(SPECS.glob("*.ppl")) + sorted(SPECS.glob("posteriordb/*.ppl"))


def golden_file(spec: Path) -> Path:
    return GOLDEN / spec.relative_to(SPECS).with_suffix(".py")


def emitted(spec: Path) -> str:
    """What `pplc emit` prints for the spec."""
    from compiler import compile_file

    return compile_file(spec).code.source


def main() -> int:
    for spec in golden_specs():
        path = golden_file(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = emitted(spec)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # this checkout's compiler, whatever is installed
    sys.exit(main())
