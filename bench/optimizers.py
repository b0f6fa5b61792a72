"""L-BFGS on fixed draws (deterministic ADVI) against stochastic Adam SVI, on the
target programs in specs/: how close each gets to the reference posterior, in
how many steps and seconds. The measurement behind the default optimizer.

For every program, optimizer and seed: the worst mean error over every element
of every referenced site, in reference sds; the range of fitted sd / reference
sd; steps (L-BFGS iterations or Adam steps); and the seconds of `fit` (compile
and data loading excluded; posterior draws and k̂ included). Mixture components
are exchangeable and compared sorted by their mean, as the reference is.

Run from the repository root:

    python bench/optimizers.py            # seeds 0, 1, 2
    python bench/optimizers.py --seeds 5
    python bench/optimizers.py --optimizers lbfgs --particles 8   # the particle default
    python bench/optimizers.py --optimizers adam --lr 0.01        # Adam's learning rate

It prints a Markdown table (the one in docs/inference.md).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from guides import PROGRAMS, SPECS, errors  # bench/ is the script's own folder, first on sys.path

from compiler import compile_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam"], choices=("lbfgs", "adam"))
    parser.add_argument("--particles", type=int, default=None, help="ELBO particles (default: pplc's own)")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam's learning rate (default 0.05)")
    args = parser.parse_args()
    print("| program | optimizer | worst mean err / ref sd | sd ratio | steps | seconds |")
    print("|---|---|---|---|---|---|")
    for name in PROGRAMS:
        program = compile_file(SPECS / f"{name}.ppl")
        data = program.load_data()
        reference = json.loads((SPECS / f"{name}.reference.json").read_text())
        for optimizer in args.optimizers:
            rows = []
            for seed in range(args.seeds):
                started = time.perf_counter()
                report = program.fit(data, seed=seed, optimizer=optimizer, particles=args.particles, lr=args.lr)
                rows.append((*errors(report, reference, name), report.steps,
                             time.perf_counter() - started))
            worst, low, high, steps, seconds = zip(*rows)
            print(f"| {name} | {optimizer} | {max(worst):.2f} | {min(low):.2f}–{max(high):.2f} | "
                  f"{min(steps)}–{max(steps)} | {np.median(seconds):.2f} |", flush=True)


if __name__ == "__main__":
    main()
