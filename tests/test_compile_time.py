"""Compile time is linear in the number of statements (`bench/compile_time.py` measures it):
compiling a spec and building its functions must never rescan every statement per statement,
as codegen once did (8,000 lets took over four minutes)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "compile_time.py"
_spec = importlib.util.spec_from_file_location("compile_time", BENCH)
compile_time = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compile_time)

SPECS = {  # statements -> spec text
    "chain of lets": lambda statements: compile_time.chain_of_lets(statements),
    "lets each observed": lambda statements: compile_time.lets_each_observed(statements // 3),
}


def cpu_seconds(text: str) -> float:
    """CPU seconds to compile the spec and build its functions (steadier than the wall clock
    on a shared machine)."""
    started = time.process_time()
    compile_time.compile_source(text, "bench.ppl").model  # noqa: B018 - building the functions is timed too
    return time.process_time() - started


@pytest.mark.parametrize("shape", SPECS)
def test_ten_thousand_statements_compile_in_seconds_and_in_four_times_the_time_of_2500(shape):
    cpu_seconds(SPECS[shape](3))  # torch's import, outside the timings
    quarter, full = cpu_seconds(SPECS[shape](2_500)), cpu_seconds(SPECS[shape](10_000))
    assert full < 10  # about 2 s here
    assert full / quarter < 6.5, (quarter, full)  # linear: about 4; quadratic: 16 (the old code: over 10)
