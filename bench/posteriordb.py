"""How close does pplc's default fit come to posteriordb's reference posteriors?

For every spec in specs/posteriordb/ (real posteriordb data sets, each model
reconstructed from its Stan program), fits at default settings
(`compile_file(spec).fit(seed=0)`) and compares the fitted posterior with
`<posterior>.reference.json` beside the spec (long Stan NUTS runs summarised
from posteriordb's reference draws, or an exact/quadrature posterior where
the reference file's "method" says so). One row per posterior:

    worst mean err  max over every parameter element of |fitted mean - reference mean| / reference sd,
                    and the element it was reached at (pplc's 0-based names: beta[0] is Stan's beta[1])
    sd ratio        min and max over every element of fitted sd / reference sd
    mf sd ratio     the smallest sd ratio an exact mean-field Gaussian fit would reach
                    (the reference's "meanfield_sd_ratio"; "-" where it has none); a fitted sd
                    ratio near it is as good as a mean-field guide can do
    steps, converged, seconds
                    SVI steps taken, whether the default stopping rule called it converged,
                    and the wall time of the fit (compiling and loading data excluded)

Run from the repository root:

    python bench/posteriordb.py                   # default settings, seed 0
    python bench/posteriordb.py --optimizer adam  # stochastic SVI instead of L-BFGS
    python bench/posteriordb.py --steps 5000      # exactly 5000 steps per fit

It prints a Markdown table (the one in docs/inference.md).
    python bench/posteriordb.py --only kidiq # only posteriors whose name contains "kidiq"
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from compiler import compile_file

SPECS = Path(__file__).resolve().parent.parent / "specs" / "posteriordb"


def element_names(site: str, shape: tuple[int, ...]) -> list[str]:
    """'beta' of shape (2,) -> ['beta[0]', 'beta[1]'], in the flattened (C) order."""
    if not shape:
        return [site]
    return [f"{site}[{', '.join(map(str, index))}]" for index in np.ndindex(*shape)]


def compare(report, reference: dict) -> tuple[float, str, float, float, float | None]:
    """(worst |mean error| in reference sds, its element, min sd ratio, max sd ratio,
    min mean-field sd ratio of the reference or None) over every referenced element."""
    errors, names, ratios, meanfield = [], [], [], []
    for site, expected in reference["posterior"].items():
        fitted = report.posterior[site]
        ref_mean, ref_sd = np.asarray(expected["mean"], float), np.asarray(expected["sd"], float)
        mean = np.asarray(fitted.mean, float).reshape(ref_mean.shape)
        sd = np.asarray(fitted.sd, float).reshape(ref_sd.shape)
        errors.extend(np.ravel(np.abs(mean - ref_mean) / ref_sd))  # in element_names' (C) order
        names.extend(element_names(site, ref_mean.shape))
        ratios.extend(np.ravel(sd / ref_sd))
        if "meanfield_sd_ratio" in expected:
            meanfield.extend(np.ravel(expected["meanfield_sd_ratio"]))
    worst = int(np.argmax(errors))
    return errors[worst], names[worst], min(ratios), max(ratios), (min(meanfield) if meanfield else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None,
                        help="run exactly N steps per fit instead of the default stopping rule")
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="only posteriors whose name contains this text")
    args = parser.parse_args()

    config = {"seed": args.seed, "optimizer": args.optimizer}
    if args.steps is not None:
        config["steps"] = args.steps
    print(f"optimizer {args.optimizer}, seed {args.seed}\n")
    print("| posterior | worst mean err / ref sd | sd ratio | mean-field sd ratio | steps | converged | k̂ | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for spec in sorted(SPECS.glob("*.ppl")):
        name = spec.stem
        if args.only not in name:
            continue
        reference_file = spec.with_suffix(".reference.json")
        if not reference_file.exists():
            print(f"| {name} | no {reference_file.name}: skipped |")
            continue
        reference = json.loads(reference_file.read_text())
        started = time.perf_counter()
        try:
            program = compile_file(spec)
            data = program.load_data()
            started = time.perf_counter()
            report = program.fit(data, **config)
        except Exception as error:  # a pplc failure is a result: report it, go on with the next
            seconds = time.perf_counter() - started
            message = str(error).splitlines()[0] if str(error) else ""
            print(f"| {name} | FAILED after {seconds:.1f} s: {type(error).__name__}: {message} |", flush=True)
            continue
        seconds = time.perf_counter() - started
        worst, where, low, high, meanfield = compare(report, reference)
        mf = "-" if meanfield is None else f"{meanfield:.3f}"
        khat = "-" if report.khat is None else f"{report.khat:.2f}"
        print(f"| {name} | {worst:.2f} ({where}) | {low:.2f}–{high:.2f} | {mf} | {report.steps} | "
              f"{report.converged} | {khat} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
