"""Compile time against spec size: the seconds `compile_source` and building the
functions (`program.model`: one `exec` of the generated source) take for specs of
1,000 to 10,000 `let` statements, and the microseconds per statement, which stay
flat where compile time is linear.

Two shapes: a chain of lets (`let v0 = 1.0`, `let v{k} = v{k-1} + 1.0`: transformed
data), and lets on a latent each scored by an observe (`let m{k} = mu + k`,
`observe y{k} ~ Normal(m{k}, 1)`: three statements per let, a model site each).

    python bench/compile_time.py          # about half a minute; prints Markdown
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from compiler import compile_source

SIZES = (1_000, 2_000, 5_000, 10_000)


def chain_of_lets(count: int) -> str:
    return "\n".join(["let v0 = 1.0"] + [f"let v{k} = v{k - 1} + 1.0" for k in range(1, count)])


def lets_each_observed(count: int) -> str:
    lines = ["latent mu ~ Normal(0, 1)"]
    for k in range(count):
        lines += [f"data y{k}: real", f"let m{k} = mu + {k}.0", f"observe y{k} ~ Normal(m{k}, 1)"]
    return "\n".join(lines)


SHAPES = {"chain of lets": chain_of_lets, "lets each observed": lets_each_observed}


def compile_seconds(text: str) -> tuple[float, float]:
    """Wall and CPU seconds to compile the spec and build its functions (CPU time is the
    steadier figure on a shared machine)."""
    wall, cpu = time.perf_counter(), time.process_time()
    compile_source(text, "bench.ppl").model  # noqa: B018 - building the functions is what is timed
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    compile_seconds(chain_of_lets(2))  # torch's import, once, outside the timings
    print("| spec | lets | statements | wall s | CPU s | CPU µs per statement |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, shape in SHAPES.items():
        for size in SIZES:
            text = shape(size)
            statements = text.count("\n") + 1
            wall, cpu = compile_seconds(text)
            print(f"| {name} | {size:,} | {statements:,} | {wall:.2f} | {cpu:.2f} | {cpu / statements * 1e6:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
