"""Scale: minibatch SVI, data on disk and data-parallel processes, measured here.

1. Throughput, rows scored per second by Adam steps over all the data, in one
   process and in two (`torchrun --nproc-per-node 2 ... --distributed`):
   logistic regression, N = 10^6, K = 2. Each figure is differential, so that
   start-up, posterior draws and k̂ cancel: (steps(400) - steps(100)) x N x
   particles / (wall(400) - wall(100)).
2. Logistic regression at N = 10^6 (.npy files): the full-data fit against
   minibatch fits (--batch-size, with the control variate: L-BFGS in rounds,
   and Adam steps): seconds, and the errors of the posterior means and sds
   against the exact mean-field answer.
3. The coin at N = 10^7: from JSON, from a .npy file on disk (its sufficient
   statistics read a chunk at a time), and the same with --batch-size: seconds,
   mean and sd against the exact posterior, peak memory.

    python bench/scaling.py          # about five minutes; prints Markdown
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import PEAK_KIB, ROOT, SPECS, exact_coin

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]


def run(command: list[str]) -> tuple[float, dict, int]:
    """Wall seconds, the JSON report and the peak memory (MiB, `common.PEAK_KIB`) of one pplc process."""
    code = ("import sys\nfrom compiler.cli import main\n"
            f"code = main({command!r})\n"
            f"print('peak', {PEAK_KIB} // 1024, file=sys.stderr)")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    seconds = time.perf_counter() - started
    peak = int(result.stderr.split("peak")[-1])
    return seconds, json.loads(result.stdout), peak


def run_distributed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(TORCHRUN + ["-m", "compiler", *command, "--distributed"], capture_output=True, text=True,
                   cwd=ROOT, check=True)
    return time.perf_counter() - started


def logistic_data(directory: Path, n: int) -> tuple[Path, Path]:
    """The same rows as one JSON file and as a directory of .npy files."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-(-0.5 + X @ np.array([1.5, -2.0]))))).astype(int)
    path = directory / "logistic.json"
    path.write_text(json.dumps({"N": n, "K": 2, "X": X.tolist(), "y": y.tolist()}))
    arrays = directory / "logistic"
    arrays.mkdir()
    np.save(arrays / "X.npy", X)
    np.save(arrays / "y.npy", y.astype(np.int8))
    (arrays / "sizes.json").write_text(json.dumps({"N": n, "K": 2}))
    return path, arrays


def exact_mean_field(arrays: Path) -> dict:
    """The logistic regression's posterior mode (Newton's method) and the mean-field sds
    of the Gaussian there, 1 / sqrt(diag(precision)): the normal guide's optimum, to
    O(1/N), at N = 10^6."""
    X, y = np.load(arrays / "X.npy"), np.load(arrays / "y.npy")
    design = np.c_[np.ones(len(y)), X]
    w = np.zeros(3)
    for _ in range(30):
        p = 1 / (1 + np.exp(-design @ w))
        precision = (design * (p * (1 - p))[:, None]).T @ design + np.eye(3) / 2.5**2
        w = w + np.linalg.solve(precision, design.T @ (y - p) - w / 2.5**2)
    sd = 1 / np.sqrt(np.diag(precision))
    return {"alpha": {"mean": w[0], "sd": sd[0]}, "beta": {"mean": w[1:], "sd": sd[1:]}}


def throughput(data: Path, n: int) -> list[str]:
    spec = str(SPECS / "logistic_regression.ppl")
    lines = ["| processes | rows per second |", "|---|---|"]
    for processes in (1, 2):
        walls = {}
        for steps in (100, 400):
            command = ["run", spec, "--data", str(data), "--optimizer", "adam", "--steps", str(steps), "--json"]
            walls[steps] = run(command)[0] if processes == 1 else run_distributed(command)
        particles = 4  # Adam's default at 10^6 observations (infer.default_particles)
        rate = (400 - 100) * n * particles / (walls[400] - walls[100])
        lines.append(f"| {processes} | {rate:,.0f} |")
        print(lines[-1], flush=True)
    return lines


def worst_errors(report: dict, reference: dict) -> tuple[float, float]:
    """The largest |mean error| in reference sds, and the sd ratio furthest from 1."""
    means, ratios = [], []
    for name, summary in report.items():
        sd = np.ravel(reference[name]["sd"])
        means += list(np.abs(np.ravel(summary["mean"]) - np.ravel(reference[name]["mean"])) / sd)
        ratios += list(np.ravel(summary["sd"]) / sd)
    return max(means), max(ratios, key=lambda ratio: abs(np.log(ratio)))


def minibatch_against_full(arrays: Path) -> list[str]:
    spec = str(SPECS / "logistic_regression.ppl")
    exact = exact_mean_field(arrays)
    lines = ["| fit | seconds (whole process) | worst mean error (sds) | worst sd ratio | peak MiB |",
             "|---|---|---|---|---|"]
    for label, options in [("full data, L-BFGS (default)", [])] + [
            (f"--batch-size {batch:,} (L-BFGS in rounds, the default)", ["--batch-size", str(batch)])
            for batch in (1_000, 10_000, 100_000)] + [
            (f"--batch-size {batch:,} --optimizer adam", ["--batch-size", str(batch), "--optimizer", "adam"])
            for batch in (1_000, 10_000)]:
        seconds, report, peak = run(["run", spec, "--data", str(arrays), *options, "--json"])
        error, ratio = worst_errors(report["posterior"], exact)
        lines.append(f"| {label} | {seconds:.1f} | {error:.2f} | {ratio:.2f} | {peak} |")
        print(lines[-1], flush=True)
    return lines


def coin_on_disk(directory: Path, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    flips = (rng.random(n) < 0.3).astype(np.int8)
    np.save(directory / "x.npy", flips)
    mean, sd = exact_coin(int(flips.sum(dtype=np.int64)), n)
    (directory / "coin.json").write_text(json.dumps({"N": n, "x": flips.tolist()}))
    lines = ["| fit | seconds (whole process) | mean error / exact sd | sd / exact sd | peak MiB |",
             "|---|---|---|---|---|"]
    spec = str(SPECS / "coin.ppl")
    for label, command in (("JSON", ["--data", str(directory / "coin.json")]),
                           (".npy on disk", ["--data", str(directory / "x.npy")]),
                           (".npy on disk, --batch-size 10,000", ["--data", str(directory / "x.npy"),
                                                                  "--batch-size", "10000"])):
        seconds, report, peak = run(["run", spec, *command, "--json"])
        f = report["posterior"]["f"]
        lines.append(f"| {label} | {seconds:.1f} | {(f['mean'] - mean) / sd:+.2f} | {f['sd'] / sd:.2f} | {peak} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        data, arrays = logistic_data(directory, 1_000_000)
        print("\nLogistic regression, N = 10^6: Adam steps over all rows\n")
        throughput(data, 1_000_000)
        print("\nLogistic regression, N = 10^6: minibatches against full-data fits and the exact answer\n")
        minibatch_against_full(arrays)
        print("\nThe coin, N = 10^7\n")
        coin_on_disk(directory, 10_000_000)


if __name__ == "__main__":
    main()
