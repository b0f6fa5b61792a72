"""Time to answer at scale (issue 22): pplc against tuned NumPyro and PyMC on larger models.

Rows: logistic regression with 5 predictors at N = 10^4, 10^5, 10^6 (specs/logistic_regression.ppl,
synthetic data); radon (specs/radon.ppl, its data and NUTS reference); and a hierarchical regression
with J = 1,000 groups and N = 10^5 rows (specs/radon.ppl's model, y ~ Normal(a[g] + b x, sigma),
a[j] ~ Normal(mu, tau), on synthetic data). The synthetic data are drawn with a fixed seed and written
to a temporary folder as Parquet (and a JSON of sizes) that every tool reads.

The bar: every posterior mean within 0.1 reference sds (regressions) or 0.25 (hierarchies). The
references are cached in bench/references/<row>.json with the command that made them:
NumPyro NUTS for logistic N = 10^4 and the J = 1,000 hierarchy, a Laplace approximation at the MAP for
logistic N >= 10^5 (see `laplace_logistic`).

Columns, each run a fresh process, tools alternated within a repeat (pplc run, Program.fit,
NumPyro, PyMC, then again), medians of the repeats:
- pplc: `pplc run SPEC --data DATA --json` (whole process) and `Program.fit` (fit seconds);
- NumPyro, tuned: AutoNormal, Adam lr 0.05 halved every 1,000 steps, checked every 100 steps off the
  clock, stopped at the first check on the bar (an oracle: the best any stopping rule could do);
- PyMC: ADVI with the same schedule (the learning rate a shared variable the callback halves).
Wall and CPU seconds (user + sys of the process, all its threads) side by side, and the ratio
pplc / the fastest anchor, whole process and fit.

    python bench/scale_models.py --quick            # one repeat, logistic N = 10^4 and radon
    python bench/scale_models.py --repeats 3 --write
    python bench/scale_models.py --reference hierarchical_J1000   # recompute a cached reference
    python bench/scale_models.py --rows hierarchical_J1000 --tools pplc-run pplc-fit --repeats 1   # pplc alone
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from common import ROOT, SPECS, available
from time_to_answer import (
    CHECK_EVERY,
    MAX_STEPS,
    Clock,
    Measured,
    OnBar,
    Reached,
    cell,
    import_seconds,
    median_of,
    numpyro_model,
    numpyro_svi,
    within_reference,
)

REFERENCES = ROOT / "bench" / "references"
LEARNING_RATE, HALVED_EVERY = 0.05, 1_000
POSTERIOR_DRAWS = 2_000  # behind each check of an anchor's means: their Monte Carlo error is ~2 % of an sd
PREDICTORS = 5
GROUPS, GROUPED_ROWS = 1_000, 100_000
TOOLS = {"pplc-run": None, "pplc-fit": None, "numpyro": "numpyro", "pymc": "pymc"}  # tool -> the module it needs


@dataclass(frozen=True)
class Row:
    name: str
    title: str
    spec: str  # a model of specs/
    bar: float  # reference sds
    size: int  # rows of data, for --quick


ROWS = [Row(f"logistic_N{n}", f"logistic regression, {PREDICTORS} predictors, N = {n:,}", "logistic_regression", 0.1, n)
        for n in (10_000, 100_000, 1_000_000)]
ROWS += [Row("radon", "radon (J = 85, N = 900)", "radon", 0.25, 900),
         Row("hierarchical_J1000", f"hierarchical regression, J = {GROUPS:,}, N = {GROUPED_ROWS:,}", "radon", 0.25,
             GROUPED_ROWS)]
QUICK_SIZE = 10_000  # --quick keeps the rows of at most this many data rows
BY_NAME = {row.name: row for row in ROWS}


# The data ----------------------------------------------------------------------------------------------


def logistic_data(n: int) -> dict[str, np.ndarray]:
    """Standard normal predictors, y from alpha -0.5 and beta (1, -0.8, 0.5, 0, 0.3)."""
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, PREDICTORS))
    logits = -0.5 + X @ np.array([1.0, -0.8, 0.5, 0.0, 0.3])
    return {"X": X, "y": (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(np.int64)}


def hierarchical_data() -> dict[str, np.ndarray | int]:
    """radon.ppl's names: every group has N / J rows; mu_a 1.5, sigma_a 0.3, b -0.6, sigma_y 0.7."""
    rng = np.random.default_rng(GROUPS)
    county = rng.permutation(np.arange(GROUPED_ROWS) % GROUPS)
    a = 1.5 + 0.3 * rng.standard_normal(GROUPS)
    basement = rng.standard_normal(GROUPED_ROWS)
    return {"J": GROUPS, "county": county, "basement": basement,
            "log_radon": a[county] - 0.6 * basement + 0.7 * rng.standard_normal(GROUPED_ROWS)}


def data_of(row: Row) -> dict[str, np.ndarray | int]:
    if row.name == "radon":
        return read_data(SPECS / "radon.data.json")
    if row.name == "hierarchical_J1000":
        return hierarchical_data()
    return logistic_data(row.size)


def fingerprint(data: dict[str, np.ndarray | int]) -> str:
    digest = hashlib.sha256()
    for name in sorted(data):
        digest.update(name.encode() + np.ascontiguousarray(data[name]).tobytes())  # a size as a 0-d array
    return digest.hexdigest()


def write_data(row: Row, folder: Path) -> Path:
    """The row's data as files pplc reads: radon's own JSON, else a folder of a Parquet table (a matrix
    X as columns X[0], X[1], ...) and a JSON of the sizes no column gives."""
    if row.name == "radon":
        return SPECS / "radon.data.json"
    import pyarrow as pa
    import pyarrow.parquet as pq

    data, columns, sizes = data_of(row), {}, {}
    for name, value in data.items():
        if np.ndim(value) == 0:
            sizes[name] = value
        elif np.ndim(value) == 2:
            columns.update({f"{name}[{k}]": value[:, k] for k in range(value.shape[1])})
        else:
            columns[name] = value
    target = folder / row.name
    target.mkdir()
    pq.write_table(pa.table(columns), target / "table.parquet")
    if sizes:
        (target / "sizes.json").write_text(json.dumps(sizes))
    return target


def read_data(path: Path) -> dict[str, np.ndarray | int]:
    """What `write_data` wrote: arrays, and sizes as ints (the anchors' data loading, on their clock)."""
    if path.is_file():
        return {name: value if isinstance(value, int) else np.asarray(value)
                for name, value in json.loads(path.read_text()).items()}
    import pyarrow.parquet as pq

    table = pq.read_table(path / "table.parquet")
    data = {name: table.column(name).to_numpy() for name in table.column_names if "[" not in name}
    matrices = sorted({name.split("[")[0] for name in table.column_names if "[" in name})
    for matrix in matrices:
        width = sum(name.startswith(matrix + "[") for name in table.column_names)
        data[matrix] = np.column_stack([table.column(f"{matrix}[{k}]").to_numpy() for k in range(width)])
    sizes = path / "sizes.json"
    if sizes.exists():
        data.update(json.loads(sizes.read_text()))
    return data


# The references ----------------------------------------------------------------------------------------


def reference_file(row: Row) -> Path:
    return SPECS / "radon.reference.json" if row.name == "radon" else REFERENCES / f"{row.name}.json"


def reference_of(row: Row) -> dict:
    """The row's reference posterior ({site: {"mean", "sd"}}), as cached (`ensure_reference`)."""
    return json.loads(reference_file(row).read_text())["posterior"]


def on_bar(means: dict[str, np.ndarray], reference: dict, row: Row) -> bool:
    """Every site of the reference estimated, and every mean within the row's bar."""
    return set(reference) <= set(means) and within_reference(means, reference, row.bar)


def ensure_reference(row: Row) -> None:
    """Computes and caches the row's reference when it is missing or was made from other data."""
    if row.name == "radon":
        return
    data = data_of(row)
    path = reference_file(row)
    if path.exists():
        if json.loads(path.read_text())["data_sha256"] == fingerprint(data):
            return
        print(f"{path.name} was made from other data: recomputing it", flush=True)
    compute_reference(row, data)


def compute_reference(row: Row, data: dict[str, np.ndarray]) -> dict:
    print(f"computing the reference of {row.name} ...", flush=True)
    started = time.perf_counter()
    if row.spec == "logistic_regression" and row.size >= 100_000:
        method, posterior, extra = "Laplace approximation at the MAP (Newton's method, numpy)", laplace_logistic(data), {}
    else:
        chains, warmup, draws = 2, 1_000, 4_000 if row.spec == "logistic_regression" else 1_000
        method = f"NUTS (NumPyro), {chains} chains x {draws} draws after {warmup} warm-up"
        posterior, extra = nuts_reference(row, data, chains, warmup, draws)
    reference = {"command": f"python bench/scale_models.py --reference {row.name}", "method": method,
                 "seconds": round(time.perf_counter() - started, 1), "machine": machine(), **extra,
                 "data_sha256": fingerprint(data), "posterior": posterior}
    REFERENCES.mkdir(exist_ok=True)
    path = REFERENCES / f"{row.name}.json"
    scratch = path.with_suffix(".json.tmp")
    scratch.write_text(json.dumps(reference, indent=1) + "\n")
    scratch.replace(path)
    print(f"wrote {path.relative_to(ROOT)} ({reference['seconds']} s)", flush=True)
    return reference


def laplace_logistic(data: dict[str, np.ndarray], prior_sd: float = 2.5) -> dict:
    """The Normal at the posterior mode with the inverse Hessian there, for logistic_regression.ppl.

    Exact enough for N >= 10^5: the posterior mean sits O(1/N) from the mode (the skewness term of
    the Laplace expansion) while the posterior sd is O(1/sqrt(N)), so the gap is O(1/sqrt(N)) sds.
    Against NUTS at N = 10^4 it is at most 0.035 sds (NUTS's own Monte Carlo error of 0.01 included;
    tests/test_bench_scale_models.py), so about 0.01 at 10^5 and 0.004 at 10^6: a tenth or less of
    the bar of 0.1 sds."""
    Z = np.column_stack([np.ones(len(data["y"])), data["X"]])
    y = data["y"].astype(np.float64)
    theta = np.zeros(Z.shape[1])
    for _ in range(50):  # the log posterior is strictly concave: Newton converges in a handful of steps
        p = 1 / (1 + np.exp(-(Z @ theta)))
        gradient = Z.T @ (y - p) - theta / prior_sd**2
        hessian = (Z * (p * (1 - p))[:, None]).T @ Z + np.eye(len(theta)) / prior_sd**2
        step = np.linalg.solve(hessian, gradient)
        theta += step
        if np.max(np.abs(step)) < 1e-12:
            break
    sd = np.sqrt(np.diag(np.linalg.inv(hessian)))
    return {"alpha": {"mean": float(theta[0]), "sd": float(sd[0])},
            "beta": {"mean": theta[1:].tolist(), "sd": sd[1:].tolist()}}


def nuts_reference(row: Row, data: dict[str, np.ndarray], chains: int, warmup: int, draws: int) -> tuple[dict, dict]:
    import jax
    import numpyro
    from numpyro.diagnostics import summary
    from numpyro.infer import MCMC, NUTS

    numpyro.enable_x64()
    model, model_args = numpyro_model(row.spec, data)
    mcmc = MCMC(NUTS(model, target_accept_prob=0.9), num_warmup=warmup, num_samples=draws, num_chains=chains,
                chain_method="sequential", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), *model_args)
    samples = {name: np.asarray(value) for name, value in mcmc.get_samples(group_by_chain=True).items()}
    diagnostics = summary(samples)
    posterior = {name: {"mean": value.mean((0, 1)).tolist(), "sd": value.std((0, 1)).tolist()}
                 for name, value in samples.items()}
    return posterior, {"max_rhat": round(float(max(np.max(d["r_hat"]) for d in diagnostics.values())), 4),
                       "min_ess": int(min(np.min(d["n_eff"]) for d in diagnostics.values()))}


def machine() -> str:
    return f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"


def versions() -> str:
    """The libraries timed, as installed (read from their metadata, without importing them)."""
    found = []
    for package in ("torch", "pyro-ppl", "jax", "numpyro", "pymc"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{package} {metadata.version(package)}")
    return ", ".join(found)


# One run, in a process of its own -------------------------------------------------------------------------


def halving(step: int):
    """The tuned schedule: LEARNING_RATE halved every HALVED_EVERY steps (step: 0-based, a jax or Python int)."""
    return LEARNING_RATE * 0.5 ** (step // HALVED_EVERY)


def pplc_fit(row: Row, data_path: Path) -> Reached:
    from compiler import compile_file

    program = compile_file(SPECS / f"{row.spec}.ppl")
    data = program.load_data(str(data_path))
    reference = reference_of(row)
    clock = Clock()
    report = program.fit(data)
    means = {site: np.asarray(summary.mean) for site, summary in report.posterior.items()}
    return clock.reached(report.steps if on_bar(means, reference, row) else None)


def numpyro_tuned(row: Row, data_path: Path, cap: float) -> Reached:
    import jax

    reference = reference_of(row)
    model, model_args = numpyro_model(row.spec, read_data(data_path))

    def check(guide, params) -> bool:
        draws = guide.sample_posterior(jax.random.PRNGKey(1), params, sample_shape=(POSTERIOR_DRAWS,))
        return on_bar({site: np.asarray(value).mean(0) for site, value in draws.items()}, reference, row)

    return numpyro_svi(model, model_args, halving, cap, check)


def pymc_tuned(row: Row, data_path: Path, cap: float) -> Reached:
    import pymc as pm
    import pytensor

    reference = reference_of(row)
    data = read_data(data_path)
    learning_rate = pytensor.shared(np.float64(LEARNING_RATE))
    with pm.Model() as model, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pytensor's BLAS advice
        pymc_model(row.spec, data)
        clock, done, draw = Clock(), 0, []

        def callback(approximation, losses, step) -> None:
            nonlocal done
            done = step
            learning_rate.set_value(np.float64(halving(step)))
            if step % CHECK_EVERY:
                return
            with clock.paused():
                if not draw:  # compiled once, at the first check, off the clock
                    draw.append(pytensor.function([], approximation.sample_node(model.free_RVs, size=POSTERIOR_DRAWS)))
                means = {rv.name: value.mean(0) for rv, value in zip(model.free_RVs, draw[0](), strict=True)}
                if on_bar(means, reference, row):
                    raise OnBar
            if clock.seconds() > cap:
                raise StopIteration

        try:
            pm.fit(MAX_STEPS, method="advi", obj_optimizer=pm.adam(learning_rate=learning_rate), callbacks=[callback],
                   progressbar=False, random_seed=0)
        except OnBar:
            return clock.reached(done)
    return clock.reached(None)


def pymc_model(spec: str, data: dict[str, np.ndarray]) -> None:
    """A hand-written PyMC model of specs/<spec>.ppl, in the model context."""
    import pymc as pm

    if spec == "logistic_regression":
        alpha = pm.Normal("alpha", 0, 2.5)
        beta = pm.Normal("beta", 0, 2.5, shape=data["X"].shape[1])
        pm.Bernoulli("y", logit_p=alpha + pm.math.dot(data["X"], beta), observed=data["y"])
    elif spec == "radon":
        mu_a, sigma_a = pm.Normal("mu_a", 0, 10), pm.HalfNormal("sigma_a", 5)
        a = pm.Normal("a", mu_a, sigma_a, shape=int(data["J"]))
        b, sigma_y = pm.Normal("b", 0, 10), pm.HalfNormal("sigma_y", 5)
        pm.Normal("log_radon", a[data["county"]] + b * data["basement"], sigma_y, observed=data["log_radon"])
    else:
        raise KeyError(spec)


def child(tool: str, row: Row, data_path: Path, cap: float) -> Reached:
    if tool == "pplc-fit":
        return pplc_fit(row, data_path)
    return {"numpyro": numpyro_tuned, "pymc": pymc_tuned}[tool](row, data_path, cap)


# The parent: processes, medians, the table -----------------------------------------------------------------


MISSED = Measured(None, None, None)


def timed_process(command: list[str]) -> tuple[str, float, float]:
    """stdout, wall seconds and CPU seconds (user + sys, from the children's rusage) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if finished.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {finished.returncode}:\n{finished.stderr[-3000:]}")
    return finished.stdout, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_once(tool: str, row: Row, data_path: Path, cap: float) -> Measured:
    if tool == "pplc-run":
        command = [sys.executable, "-m", "compiler", "run", str(SPECS / f"{row.spec}.ppl"), "--data", str(data_path),
                   "--json"]
        output, wall, cpu = timed_process(command)
        fitted = json.loads(output)
        means = {site: np.asarray(summary["mean"]) for site, summary in fitted["posterior"].items()}
        return Measured(None, wall, fitted["steps"], whole_cpu=cpu) if on_bar(means, reference_of(row), row) else MISSED
    command = [sys.executable, __file__, "--child", tool, "--row", row.name, "--data", str(data_path), "--cap", str(cap)]
    output, wall, cpu = timed_process(command)
    reached = Reached(**json.loads(output.splitlines()[-1]))
    if reached.seconds is None:
        return MISSED
    return Measured(reached.seconds, wall - reached.excluded, reached.steps, reached.cpu, cpu - reached.excluded_cpu)


def ratio(pplc: float | None, anchors: list[float | None]) -> str:
    reached = [seconds for seconds in anchors if seconds is not None]
    return "–" if pplc is None or not reached else f"{pplc / min(reached):.2f}"


def measure_row(row: Row, tools: list[str], args, folder: Path) -> str:
    ensure_reference(row)
    data_path = write_data(row, folder)
    runs: dict[str, list[Measured]] = {tool: [] for tool in tools}
    for _ in range(args.repeats):
        for tool in tools:  # alternated, so that a change in the machine's load falls on every tool
            runs[tool].append(run_once(tool, row, data_path, args.cap))
    medians = {tool: median_of(measured) for tool, measured in runs.items()}
    anchors = [medians[tool] for tool in tools if tool not in ("pplc-run", "pplc-fit")]
    cells = [cell(medians[tool], args.cap) for tool in tools]
    cells.append(ratio(medians.get("pplc-run", MISSED).whole, [anchor.whole for anchor in anchors]))
    cells.append(ratio(medians.get("pplc-fit", MISSED).fit, [anchor.fit for anchor in anchors]))
    return f"| {row.title} | " + " | ".join(cells) + " |"


COLUMN_TITLES = {"pplc-run": "pplc: `pplc run`", "pplc-fit": "pplc: `Program.fit`",
                 "numpyro": "NumPyro AutoNormal, tuned", "pymc": "PyMC ADVI, tuned"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help=f"one repeat, the rows of at most {QUICK_SIZE:,} data rows")
    parser.add_argument("--rows", nargs="+", choices=list(BY_NAME), help="these rows only")
    parser.add_argument("--tools", nargs="+", choices=list(TOOLS), help="these tools only (pplc-run, pplc-fit: pplc's)")
    parser.add_argument("--cap", type=float, default=120.0, help="seconds of fitting before an anchor's run is given up")
    parser.add_argument("--write", action="store_true", help="append the table to bench/RESULTS.md")
    parser.add_argument("--reference", choices=[row.name for row in ROWS if row.name != "radon"],
                        help="recompute and cache this row's reference, and nothing else")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--row", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asdict(child(args.child, BY_NAME[args.row], Path(args.data), args.cap))))
        return
    if args.reference:
        row = BY_NAME[args.reference]
        compute_reference(row, data_of(row))
        return
    if args.quick:
        args.repeats = 1
    rows = [BY_NAME[name] for name in args.rows] if args.rows else ROWS
    rows = [row for row in rows if row.size <= QUICK_SIZE] if args.quick else rows
    tools = [tool for tool, module in TOOLS.items() if available(module) and (not args.tools or tool in args.tools)]
    notes = [f"{TOOLS[tool]} is not installed: its column is left out" for tool in TOOLS
             if tool not in tools and (not args.tools or tool in args.tools)]
    torch_import = import_seconds("torch, pyro", args.repeats)
    lines = ["| model | " + " | ".join(COLUMN_TITLES[tool] for tool in tools) + " | pplc / fastest anchor, whole "
             "| pplc / fastest anchor, fit |", "|---" * (len(tools) + 3) + "|"]
    print(f"`import torch, pyro` {torch_import:.2f} s", *notes, *lines, sep="\n", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for row in rows:
            lines.append(measure_row(row, tools, args, Path(folder)))
            print(lines[-1], flush=True)
    if args.write:
        write_results(lines, args, torch_import, notes)


def write_results(lines: list[str], args, torch_import: float, notes: list[str]) -> None:
    runs = "one run each" if args.repeats == 1 else f"medians of {args.repeats} runs"
    text = ["", f"## Time to answer at scale (`python bench/scale_models.py`), {datetime.date.today().isoformat()}", "",
            f"{machine()}, {versions()}; `python -c \"import torch, pyro\"` {torch_import:.2f} s. Every run a fresh "
            f"process, the tools alternated, {runs}. pplc: its default fit (posterior draws and k̂ "
            f"included). Anchors (NumPyro AutoNormal, PyMC mean-field ADVI): Adam lr {LEARNING_RATE} halved "
            f"every {HALVED_EVERY:,} steps, checked every {CHECK_EVERY} steps off the clock and stopped at the first "
            f"check on the bar (an oracle), at most {MAX_STEPS:,} steps or {args.cap:g} s. fit: seconds from the start "
            "of fitting (imports and data excluded); whole: the process's wall time to the answer; CPU: user + sys "
            "seconds of the process, all threads. The bar: every posterior mean within 0.1 reference sds "
            "(regressions) or 0.25 (hierarchies); the references in bench/references/. " + " ".join(notes), "",
            *lines, ""]
    with open(ROOT / "bench" / "RESULTS.md", "a") as results:
        results.write("\n".join(text))


if __name__ == "__main__":
    main()
