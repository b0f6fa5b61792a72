"""What the benchmark scripts share: paths, the coin's exact posterior, timing
whole processes, and reading a process's own peak memory."""

from __future__ import annotations

import math
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

# A Python expression for this process's own peak resident memory in KiB (VmHWM):
# Linux carries ru_maxrss over from the parent through fork and exec, so a child of
# a large process would report the parent's size.
PEAK_KIB = "next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM'))"


def exact_coin(heads: int, flips: int) -> tuple[float, float]:
    """Mean and sd of the coin's exact posterior, Beta(10 + heads, 10 + tails)."""
    a, b = 10 + heads, 10 + flips - heads
    return a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))


def wall_time(command: list[str], repeats: int) -> float:
    """Median wall seconds of a whole process, run from the repository root."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def available(module: str | None) -> bool:
    """Whether an optional library (a benchmark's column) is installed; None: pplc's own, always."""
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True
