"""Does the report's uncertainty match the reference, and does it warn when, and only when,
it does not?

For every spec with a reference posterior (specs/*.reference.json: long NUTS runs or
exact answers; specs/posteriordb/*.reference.json: long Stan runs), fits at default
settings (seed 0) and with the mean-field guide's own covariance (`--covariance
mean-field --no-resample`, pplc's answer before linear response), and prints per
posterior and method:

    worst mean err  max over elements of |mean - reference mean| / reference sd
    sd ratio        min-max over elements of sd / reference sd
    s               wall seconds of the fit (compiling and loading the data excluded)
    k̂ ± se (S)      PSIS's k̂ on the reported approximation, its standard error and the
                    number of importance draws behind it
    sd log w        the sd of its log weights
    shift           how far reweighting moves some coordinate's mean (in sds) or its log sd
    rs              whether the reported draws were resampled by those weights (y/n)
    draws var       how far the fitted means varied over the choice of fixed draws, where
                    the fit noted it (and repeated itself with more)
    off / warned    the REPORTED answer (after any resampling) truly off (a mean off by
                    > 0.25 reference sd or an sd outside 0.75-1.33x) / the report warned
                    that its answer may be wrong

then the confusion table of warned against truly off for the default. The table in
docs/inference.md is this script's output. Run from the repository root:

    python bench/uncertainty.py                 # every posterior (about 10 minutes on a quiet machine)
    python bench/uncertainty.py --only radon    # those whose name contains "radon"
    python bench/uncertainty.py --record rows.jsonl   # also each row's numbers, one JSON object a line
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

from compiler import compile_file

ROOT = Path(__file__).resolve().parent.parent
MEAN_OFF, SD_LOW, SD_HIGH = 0.25, 0.75, 1.33
METHODS = {"default": {}, "mean-field": {"covariance": "mean-field", "resample": False}}
# Warnings that say the approximation itself may be wrong (not, e.g., that data were dropped).
DOUBTS = ("Pareto k̂", "sds of correlated latents may be too small")
DRAWS_VARIED = re.compile(r"varied by up to ([0-9.e+-]+) posterior sds")


def specs(only: str | None) -> list[Path]:
    found = sorted(ROOT.glob("specs/*.reference.json")) + sorted(ROOT.glob("specs/posteriordb/*.reference.json"))
    paths = [p.with_name(p.name.replace(".reference.json", ".ppl")) for p in found]
    return [p for p in paths if only is None or only in p.stem]


def compare(spec: Path, report) -> tuple[float, float, float]:
    """Worst mean error in reference sds, and the smallest and largest sd ratio."""
    reference = json.loads(spec.with_name(spec.stem + ".reference.json").read_text())["posterior"]
    errors, ratios = [], []
    order = np.argsort(report.posterior["mu"].mean) if spec.stem == "mixture" else None  # exchangeable components
    for site, expected in reference.items():
        mean, sd = np.asarray(report.posterior[site].mean), np.asarray(report.posterior[site].sd)
        if order is not None and mean.ndim:
            mean, sd = mean[order], sd[order]
        ref_mean, ref_sd = np.asarray(expected["mean"]), np.asarray(expected["sd"])
        errors.append(np.max(np.abs(mean - ref_mean) / ref_sd))
        ratios += list(np.ravel(sd / ref_sd))
    return float(max(errors)), float(min(ratios)), float(max(ratios))


def measure(spec: Path, options: dict) -> dict:
    program = compile_file(spec)
    data = program.load_data()
    started = time.perf_counter()
    report = program.fit(data, seed=0, **options)
    seconds = time.perf_counter() - started
    error, low, high = compare(spec, report)
    varied = [float(m.group(1)) for w in report.warnings if (m := DRAWS_VARIED.search(w))]
    return {"error": error, "low": low, "high": high, "seconds": seconds, "khat": report.khat,
            "khat_error": report.khat_error, "khat_draws": report.khat_draws, "threshold": report.khat_threshold,
            "log_sd": report.log_ratio_sd,
            "shift": report.reweighting_shift, "resampled": report.resampled, "draws_varied": max(varied, default=None),
            "off": error > MEAN_OFF or low < SD_LOW or high > SD_HIGH,
            "warned": any(doubt in w for w in report.warnings for doubt in DOUBTS)}


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def table_row(spec: Path, method: str, row: dict) -> str:
    khat = "-" if row["khat"] is None else (
        f"{row['khat']:.2f} ± {_number(row['khat_error'], '.2f')} ({row['khat_draws']})")
    return (f"| {spec.stem} | {method} | {row['error']:.2f} | {row['low']:.2f}-{row['high']:.2f} | "
            f"{row['seconds']:.1f} | {khat} | {_number(row['log_sd'], '.2g')} | {_number(row['shift'], '.2f')} | "
            f"{'y' if row['resampled'] else 'n'} | {_number(row['draws_varied'], '.2g')} | "
            f"{'off' if row['off'] else 'ok'} / {'warned' if row['warned'] else '-'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only")
    parser.add_argument("--record", type=Path, help="append each row's numbers to this file, one JSON object a line")
    args = parser.parse_args()
    print("| posterior | method | worst mean err | sd ratio | s | k̂ ± se (draws) | sd log w | shift | rs | "
          "draws var | off / warned |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    confusion = {(off, warned): 0 for off in (True, False) for warned in (True, False)}
    for spec in specs(args.only):
        for method, options in METHODS.items():
            row = measure(spec, options)
            print(table_row(spec, method, row), flush=True)
            if args.record:
                with args.record.open("a") as record:
                    record.write(json.dumps({"posterior": spec.stem, "method": method, **row}) + "\n")
            if method == "default":
                confusion[(row["off"], row["warned"])] += 1
    print(f"\ndefault: off and warned {confusion[(True, True)]}, off and not warned (misses) "
          f"{confusion[(True, False)]}, ok and warned (false alarms) {confusion[(False, True)]}, "
          f"ok and not warned {confusion[(False, False)]}")


if __name__ == "__main__":
    main()
