"""Pareto k̂ against how wrong the mean-field sds are, per target program.

For every spec in specs/ without enumerated latents: fit at seed 0, and the
report's PSIS k̂ of p(x, z)/q(z) and sd of log p(x, z)/q(z) (4,000 draws of
the fitted guide), and the range of fitted sd / reference sd over every
element against `<spec>.reference.json`. Run from the repository root:

    python bench/importance.py            # the table in docs/inference.md
    python bench/importance.py --seed 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from compiler import compile_file

SPECS = Path(__file__).resolve().parent.parent / "specs"


def sd_ratios(report, reference: dict) -> np.ndarray:
    return np.concatenate([np.ravel(summary.sd) / np.ravel(reference[name]["sd"])
                           for name, summary in report.posterior.items() if name in reference])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    seed = parser.parse_args().seed
    print("| program | k̂ | sd of log p/q | sd ratio |\n|---|---|---|---|")
    for path in sorted(SPECS.glob("*.ppl")):
        program = compile_file(path)
        if any(latent.enumerated for latent in program.ir.latents):
            continue
        report = program.fit(seed=seed)
        reference = json.loads(path.with_name(path.stem + ".reference.json").read_text())["posterior"]
        ratios = sd_ratios(report, reference)
        print(f"| {path.stem} | {report.khat:.2f} | {report.log_ratio_sd:.2g} | {ratios.min():.2f}–{ratios.max():.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
