"""Which guide family should be the default? Fits every target program in specs/
with both families (`normal`: a Normal in unconstrained space, as ADVI and Pyro's
AutoNormal; `native`: Beta, Gamma, Dirichlet where the support allows) at
default settings, and prints, per program and family: the largest mean error
in reference sds, the range of sd ratios (fitted / reference), steps and seconds.

    python bench/guides.py            # seed 0
    python bench/guides.py --seeds 3  # seeds 0, 1, 2
    python bench/guides.py --guide normal --guide fullrank --guide lowrank --only radon
                                      # the joint guides (docs/inference.md, "Full-rank and low-rank guides")
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from compiler import compile_file
from compiler.backend.codegen import GUIDE_FAMILIES

SPECS = Path(__file__).resolve().parent.parent / "specs"
PROGRAMS = ["coin", "noise_scale", "poisson_regression", "linear_regression", "logistic_regression",
            "radon", "eight_schools", "mixture"]


def errors(report, reference: dict, name: str) -> tuple[float, float, float]:
    """(max |mean error| in reference sds, min sd ratio, max sd ratio) over every element."""
    mean_errors, ratios = [], []
    for site, expected in reference["posterior"].items():
        mean, sd = np.asarray(report.posterior[site].mean), np.asarray(report.posterior[site].sd)
        if name == "mixture" and mean.ndim:
            order = np.argsort(report.posterior["mu"].mean)
            mean, sd = mean[order], sd[order]
        ref_sd = np.asarray(expected["sd"])
        mean_errors.append(np.max(np.abs(mean - np.asarray(expected["mean"])) / ref_sd))
        ratios.extend(np.atleast_1d(sd / ref_sd))
    return max(mean_errors), min(ratios), max(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--guide", action="append", choices=GUIDE_FAMILIES, help="default: normal and native")
    parser.add_argument("--only", action="append", choices=PROGRAMS, help="default: every program")
    args = parser.parse_args()
    print(f"{'program':<20}{'guide':<10}{'mean err/sd':>12}{'sd ratio':>16}{'steps':>7}{'seconds':>9}")
    for name in args.only or PROGRAMS:
        reference = json.loads((SPECS / f"{name}.reference.json").read_text())
        for family in args.guide or ("normal", "native"):
            program = compile_file(SPECS / f"{name}.ppl", guide=family)
            for seed in range(args.seeds):
                started = time.perf_counter()
                report = program.fit(seed=seed)
                seconds = time.perf_counter() - started
                worst, low, high = errors(report, reference, name)
                print(f"{name:<20}{family:<10}{worst:>12.2f}{f'{low:.2f}-{high:.2f}':>16}"
                      f"{report.steps:>7}{seconds:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
