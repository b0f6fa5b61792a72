"""Time to answer: seconds until the posterior is right, pplc against hand-written
Pyro, Pyro + JIT, NumPyro and PyMC, in one run.

The coin (Beta(10, 10) prior, N flips with 60 % heads, exact posterior
Beta(10 + heads, 10 + tails)) at N = 10, 10^3, 10^5, 10^6. The bar: the
posterior mean within 1 % and the sd within 10 % of exact. Each hand-written
fit is an AutoNormal guide (a normal on the logit scale), one particle, Adam
at --lr, checked every 100 steps (the checks themselves off the clock), at
most 20,000 steps or --cap seconds. pplc's fit is its default
(`Program.fit`: L-BFGS, posterior draws and k̂ included), checked at the end.

Every run is a fresh process, as a user's would be. Two figures per cell:
"fit", seconds from the start of fitting until the bar (imports and data
excluded; JIT compilation and whatever the first step sets up included, such
as torch.optim's one-time import of torch._dynamo); and "whole", the
process's wall time from launch until the bar (interpreter, imports, data),
less the checks. pplc's whole process is `pplc run --json` reading a data
file, checked on its JSON.

The regression and hierarchical target programs against NumPyro's AutoNormal
on the same data: until every posterior mean is within 0.25 reference sds of
`specs/<program>.reference.json` (NUTS), a bar mean-field reaches on all of
them (docs/inference.md).

NumPyro and PyMC are optional (`pip install -e '.[bench]'`); a missing one is
skipped with a note. Medians of --repeats runs (at least 2 at N = 10^6).
Appends its tables to bench/RESULTS.md with --write.

    python bench/time_to_answer.py --repeats 3 --write   # about 20 minutes

The larger models of issue 22 (logistic regression to N = 10^6, radon, J = 1,000 groups) against
tuned NumPyro and PyMC, with CPU seconds and ratios: bench/scale_models.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from common import ROOT, SPECS, available, exact_coin, wall_time

SIZES = (10, 1_000, 100_000, 1_000_000)
CHECK_EVERY, MAX_STEPS = 100, 20_000
MEAN_BAR, SD_BAR = 0.01, 0.10  # relative to the exact posterior's mean and sd
REFERENCE_BAR = 0.25  # programs: every mean within this many reference sds
# Draws behind each check of a logit-normal guide's mean and sd: their Monte Carlo
# error (0.5 % of the sd) is a twentieth of the sd bar.
CHECK_DRAWS = np.random.default_rng(0).standard_normal(20_000)
PROGRAMS = ("linear_regression", "logistic_regression", "poisson_regression", "radon", "eight_schools")
COIN_COLUMNS = {"pyro": "Pyro AutoNormal", "pyro-jit": "Pyro AutoNormal + JIT",
                "numpyro": "NumPyro AutoNormal (jit)", "pymc": "PyMC ADVI (Adam)"}
NEEDS = {"numpyro": "numpyro", "pymc": "pymc"}


@dataclass(frozen=True)
class Reached:
    seconds: float | None  # of fitting, until the bar; None: not within the caps
    steps: int | None
    excluded: float = 0.0  # seconds spent checking, off the clock
    cpu: float | None = None  # CPU seconds (user + sys, all threads) of fitting, the checks taken off
    excluded_cpu: float = 0.0  # CPU seconds spent checking


class Clock:
    """Seconds of fitting, wall and CPU, with the checks on the bar taken off."""

    def __init__(self):
        self.started, self.started_cpu = time.perf_counter(), time.process_time()
        self.excluded = self.excluded_cpu = 0.0

    @contextlib.contextmanager
    def paused(self):
        paused, paused_cpu = time.perf_counter(), time.process_time()
        yield
        self.excluded += time.perf_counter() - paused
        self.excluded_cpu += time.process_time() - paused_cpu

    def seconds(self) -> float:
        return time.perf_counter() - self.started - self.excluded

    def cpu(self) -> float:
        return time.process_time() - self.started_cpu - self.excluded_cpu

    def reached(self, steps: int | None) -> Reached:
        if steps is None:
            return Reached(None, None, self.excluded, None, self.excluded_cpu)
        return Reached(self.seconds(), steps, self.excluded, self.cpu(), self.excluded_cpu)


def flips(n: int) -> np.ndarray:
    return (np.random.default_rng(n).random(n) < 0.6).astype(np.float64)


def coin_on_bar(mean: float, sd: float, exact: tuple[float, float]) -> bool:
    return abs(mean - exact[0]) <= MEAN_BAR * exact[0] and abs(sd - exact[1]) <= SD_BAR * exact[1]


def logit_normal_on_bar(loc: float, scale: float, exact: tuple[float, float]) -> bool:
    f = 1 / (1 + np.exp(-(loc + scale * CHECK_DRAWS)))
    return coin_on_bar(float(f.mean()), float(f.std()), exact)


def within_reference(means: dict[str, np.ndarray], reference: dict, bar: float = REFERENCE_BAR) -> bool:
    return all(np.all(np.abs(np.ravel(means[name]) - np.ravel(ref["mean"])) <= bar * np.ravel(ref["sd"]))
               for name, ref in reference.items() if name in means)


def steps_until(step: Callable[[], None], on_bar: Callable[[], bool], cap: float, clock: Clock) -> Reached:
    """Run `step` until `on_bar()` (asked every CHECK_EVERY steps, off the clock)."""
    for done in range(1, MAX_STEPS + 1):
        step()
        if done % CHECK_EVERY == 0:
            with clock.paused():
                if on_bar():
                    return clock.reached(done)
            if clock.seconds() > cap:
                break
    return clock.reached(None)


# The coin, hand-written (each run in a process of its own) ----------------------------


def pyro_coin(x: np.ndarray, lr: float, cap: float, jit: bool) -> Reached:
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import SVI, JitTrace_ELBO, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    def model(x):
        f = pyro.sample("f", dist.Beta(10.0, 10.0))
        with pyro.plate("N", x.shape[0]):
            pyro.sample("x", dist.Bernoulli(f), obs=x)

    exact = exact_coin(int(x.sum()), len(x))
    data = torch.as_tensor(x, dtype=torch.float32)
    pyro.set_rng_seed(0)
    clock = Clock()
    guide = AutoNormal(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": lr}), (JitTrace_ELBO if jit else Trace_ELBO)())

    def on_bar() -> bool:
        return logit_normal_on_bar(pyro.param("AutoNormal.locs.f").item(), pyro.param("AutoNormal.scales.f").item(),
                                   exact)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's tracer warnings
        return steps_until(lambda: svi.step(data), on_bar, cap, clock)


def numpyro_svi(model, model_args, lr: float | Callable, cap: float, on_bar) -> Reached:
    """NumPyro's AutoNormal and Adam (`lr`: a rate, or a schedule of the step number), one jitted
    update per step; `on_bar(guide, params)`."""
    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    clock = Clock()
    guide = AutoNormal(model)
    svi = SVI(model, guide, numpyro.optim.Adam(lr), Trace_ELBO())
    state = [svi.init(jax.random.PRNGKey(0), *model_args)]
    update = jax.jit(svi.update)

    def step() -> None:
        state[0], _ = update(state[0], *model_args)

    return steps_until(step, lambda: on_bar(guide, svi.get_params(state[0])), cap, clock)


def numpyro_coin(x: np.ndarray, lr: float, cap: float) -> Reached:
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    def model(x):
        f = numpyro.sample("f", dist.Beta(10.0, 10.0))
        with numpyro.plate("N", x.shape[0]):
            numpyro.sample("x", dist.Bernoulli(f), obs=x)

    exact = exact_coin(int(x.sum()), len(x))
    return numpyro_svi(model, (jnp.asarray(x),), lr, cap, lambda guide, params: logit_normal_on_bar(
        float(params["f_auto_loc"]), float(params["f_auto_scale"]), exact))


class OnBar(Exception):
    pass


def pymc_coin(x: np.ndarray, lr: float, cap: float) -> Reached:
    import pymc as pm

    exact = exact_coin(int(x.sum()), len(x))
    clock = Clock()
    done = 0

    def check(approximation, losses, step):
        nonlocal done
        done = step
        if step % CHECK_EVERY == 0:
            with clock.paused():
                if logit_normal_on_bar(float(approximation.mean.eval()[0]), float(approximation.std.eval()[0]), exact):
                    raise OnBar
            if clock.seconds() > cap:
                raise StopIteration

    with pm.Model(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pytensor's BLAS advice
        f = pm.Beta("f", 10, 10)
        pm.Bernoulli("x", p=f, observed=x)
        try:
            pm.fit(MAX_STEPS, method="advi", obj_optimizer=pm.adam(learning_rate=lr), callbacks=[check],
                   progressbar=False, random_seed=0)
        except OnBar:
            return clock.reached(done)
    return clock.reached(None)


def pplc_coin(x: np.ndarray) -> Reached:
    from compiler import compile_file

    program = compile_file(SPECS / "coin.ppl")
    data = program.load_data({"N": len(x), "x": x.astype(int).tolist()})
    clock = Clock()
    report = program.fit(data)
    f = report.posterior["f"]
    return clock.reached(report.steps if coin_on_bar(f.mean, f.sd, exact_coin(int(x.sum()), len(x))) else None)


# The target programs ----------------------------------------------------------------------


def reference_of(name: str) -> dict:
    return json.loads((SPECS / f"{name}.reference.json").read_text())["posterior"]


def pplc_program(name: str) -> Reached:
    from compiler import compile_file

    program = compile_file(SPECS / f"{name}.ppl")
    data = program.load_data()
    clock = Clock()
    report = program.fit(data)
    means = {site: np.asarray(summary.mean) for site, summary in report.posterior.items()}
    return clock.reached(report.steps if within_reference(means, reference_of(name)) else None)


def numpyro_program(name: str, lr: float, cap: float) -> Reached:
    import jax
    from numpyro.infer import Predictive

    model, model_args = numpyro_model(name, json.loads((SPECS / f"{name}.data.json").read_text()))
    reference = reference_of(name)

    def on_bar(guide, params) -> bool:
        draws = Predictive(model, guide=guide, params=params, num_samples=2000)(jax.random.PRNGKey(1), *model_args)
        return within_reference({site: np.asarray(value).mean(0) for site, value in draws.items()}, reference)

    return numpyro_svi(model, model_args, lr, cap, on_bar)


def numpyro_model(name: str, data: dict):
    """A hand-written NumPyro model of specs/<name>.ppl, and its arguments."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    arrays = {key: jnp.asarray(value) for key, value in data.items() if isinstance(value, (list, np.ndarray))}
    if name == "linear_regression":
        def model(X, y):
            alpha = numpyro.sample("alpha", dist.Normal(0, 10))
            beta = numpyro.sample("beta", dist.Normal(0, 10).expand([X.shape[1]]).to_event(1))
            sigma = numpyro.sample("sigma", dist.HalfNormal(5))
            with numpyro.plate("N", X.shape[0]):
                numpyro.sample("y", dist.Normal(alpha + X @ beta, sigma), obs=y)
        return model, (arrays["X"], arrays["y"])
    if name == "logistic_regression":
        def model(X, y):
            alpha = numpyro.sample("alpha", dist.Normal(0, 2.5))
            beta = numpyro.sample("beta", dist.Normal(0, 2.5).expand([X.shape[1]]).to_event(1))
            with numpyro.plate("N", X.shape[0]):
                numpyro.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)
        return model, (arrays["X"], arrays["y"].astype(jnp.float32))
    if name == "poisson_regression":
        def model(x, count):
            a = numpyro.sample("a", dist.Normal(0, 5))
            b = numpyro.sample("b", dist.Normal(0, 5))
            with numpyro.plate("N", x.shape[0]):
                numpyro.sample("count", dist.Poisson(jnp.exp(a + b * x)), obs=count)
        return model, (arrays["x"], arrays["count"])
    if name == "radon":
        def model(county, basement, log_radon):
            mu_a = numpyro.sample("mu_a", dist.Normal(0, 10))
            sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(5))
            with numpyro.plate("J", data["J"]):
                a = numpyro.sample("a", dist.Normal(mu_a, sigma_a))
            b = numpyro.sample("b", dist.Normal(0, 10))
            sigma_y = numpyro.sample("sigma_y", dist.HalfNormal(5))
            with numpyro.plate("N", log_radon.shape[0]):
                numpyro.sample("log_radon", dist.Normal(a[county] + b * basement, sigma_y), obs=log_radon)
        return model, (arrays["county"], arrays["basement"], arrays["log_radon"])
    if name == "eight_schools":
        def model(y, sigma):
            mu = numpyro.sample("mu", dist.Normal(0, 5))
            tau = numpyro.sample("tau", dist.HalfCauchy(5))
            with numpyro.plate("J", y.shape[0]):
                theta_raw = numpyro.sample("theta_raw", dist.Normal(0, 1))
                numpyro.deterministic("theta", mu + tau * theta_raw)
                numpyro.sample("y", dist.Normal(mu + tau * theta_raw, sigma), obs=y)
        return model, (arrays["y"], arrays["sigma"])
    raise KeyError(name)


def child(kind: str, target: str, lr: float, cap: float) -> Reached:
    """One run, in this process: `target` is a data size for the coin, else a program."""
    if kind == "pplc-program":
        return pplc_program(target)
    if kind == "numpyro-program":
        return numpyro_program(target, lr, cap)
    x = flips(int(target))
    if kind == "pplc":
        return pplc_coin(x)
    if kind in ("pyro", "pyro-jit"):
        return pyro_coin(x, lr, cap, jit=kind == "pyro-jit")
    return {"numpyro": numpyro_coin, "pymc": pymc_coin}[kind](x, lr, cap)


# The parent: processes, medians, tables ----------------------------------------------------


@dataclass(frozen=True)
class Measured:
    fit: float | None
    whole: float | None
    steps: int | None
    fit_cpu: float | None = None  # CPU seconds (user + sys, all threads), where measured
    whole_cpu: float | None = None


def in_a_process(kind: str, target: str, args) -> Measured:
    command = [sys.executable, __file__, "--child", kind, "--target", target, "--lr", str(args.lr), "--cap", str(args.cap)]
    started = time.perf_counter()
    output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    wall = time.perf_counter() - started
    reached = Reached(**json.loads(output.splitlines()[-1]))
    if reached.seconds is None:
        return Measured(None, None, None)
    return Measured(reached.seconds, wall - reached.excluded, reached.steps)


def pplc_command(spec: Path, data_file: str | None, on_bar: Callable[[dict], bool]) -> Measured:
    command = [sys.executable, "-m", "compiler", "run", str(spec), "--json"]
    if data_file is not None:
        command += ["--data", data_file]
    started = time.perf_counter()
    output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    wall = time.perf_counter() - started
    fitted = json.loads(output)
    return Measured(None, wall, fitted["steps"]) if on_bar(fitted) else Measured(None, None, None)


def median_of(runs: list[Measured]) -> Measured:
    if not runs or any(run.whole is None for run in runs):
        return Measured(None, None, None)

    def median(field: str) -> float | None:
        values = [getattr(run, field) for run in runs]
        return None if None in values else statistics.median(values)

    return Measured(median("fit"), median("whole"), int(median("steps")), median("fit_cpu"), median("whole_cpu"))


def cell(measured: Measured, cap: float) -> str:
    if measured.whole is None:
        return f"not within {MAX_STEPS:,} steps or {cap:g} s"

    def cpu(seconds: float | None) -> str:
        return "" if seconds is None else f" / CPU {seconds:.2f} s"

    fit = "" if measured.fit is None else f"fit {measured.fit:.2f} s{cpu(measured.fit_cpu)}, "
    return f"{fit}whole {measured.whole:.2f} s{cpu(measured.whole_cpu)} ({measured.steps:,} steps)"


def coin_table(args, competitors: list[str]) -> list[str]:
    lines = ["| N | pplc: `Program.fit` | pplc: `pplc run` | " + " | ".join(COIN_COLUMNS[c] for c in competitors) + " |",
             "|---" * (3 + len(competitors)) + "|"]
    for n in args.sizes:
        x = flips(n)
        exact = exact_coin(int(x.sum()), len(x))
        repeats = max(args.repeats, 2) if n >= 1_000_000 else args.repeats

        def on_bar(fitted: dict) -> bool:
            f = fitted["posterior"]["f"]
            return coin_on_bar(f["mean"], f["sd"], exact)

        with tempfile.TemporaryDirectory() as scratch:
            data_file = Path(scratch) / "coin.json"
            data_file.write_text(json.dumps({"N": n, "x": x.astype(int).tolist()}))
            whole = [pplc_command(SPECS / "coin.ppl", str(data_file), on_bar) for _ in range(repeats)]
        row = [f"{n:,}", cell(median_of([in_a_process("pplc", str(n), args) for _ in range(repeats)]), args.cap),
               cell(median_of(whole), args.cap)]
        row += [cell(median_of([in_a_process(kind, str(n), args) for _ in range(repeats)]), args.cap)
                for kind in competitors]
        lines.append("| " + " | ".join(row) + " |")
        print(lines[-1], flush=True)
    return lines


def program_table(args) -> list[str]:
    lines = ["| program | pplc: `Program.fit` | pplc: `pplc run` | NumPyro AutoNormal (jit) |", "|---|---|---|---|"]
    for name in PROGRAMS:
        reference = reference_of(name)

        def on_bar(fitted: dict) -> bool:
            return within_reference({site: np.asarray(s["mean"]) for site, s in fitted["posterior"].items()}, reference)

        row = [cell(median_of([in_a_process("pplc-program", name, args) for _ in range(args.repeats)]), args.cap),
               cell(median_of([pplc_command(SPECS / f"{name}.ppl", None, on_bar) for _ in range(args.repeats)]), args.cap),
               cell(median_of([in_a_process("numpyro-program", name, args) for _ in range(args.repeats)]), args.cap)]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
        print(lines[-1], flush=True)
    return lines


def import_seconds(modules: str, repeats: int) -> float:
    return wall_time([sys.executable, "-c", f"import {modules}"], repeats)




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate for the hand-written fits")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds of fitting before a run is given up")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--write", action="store_true", help="append the tables to bench/RESULTS.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asdict(child(args.child, args.target, args.lr, args.cap))))
        return
    missing = sorted({module for module in NEEDS.values() if not available(module)})
    notes = [f"{module} is not installed: its columns are left out (pip install -e '.[bench]')" for module in missing]
    imports = {"torch, pyro": import_seconds("torch, pyro", args.repeats)}
    imports.update({modules: import_seconds(modules, args.repeats) for module, modules in
                    (("numpyro", "jax, numpyro"), ("pymc", "pymc")) if module not in missing})
    imported = ", ".join(f"`import {modules}` {seconds:.2f} s" for modules, seconds in imports.items())
    print(f"fresh processes, medians: {imported}", *notes, sep="\n", flush=True)
    competitors = [kind for kind in COIN_COLUMNS if NEEDS.get(kind) not in missing]
    coin = coin_table(args, competitors)
    programs = program_table(args) if "numpyro" not in missing else []
    if args.write:
        text = ["", "## Time to answer (`python bench/time_to_answer.py`)", "",
                f"Every run a fresh process; medians of {args.repeats} runs ({max(args.repeats, 2)} at N = 10^6). "
                "Hand-written fits: "
                f"AutoNormal, one particle, Adam lr {args.lr}, checked every {CHECK_EVERY} steps off the clock. "
                f"fit: from the start of fitting (imports and data excluded, JIT and first-step set-up included); "
                f"whole: the process's wall time to the answer. For scale: {imported}. {' '.join(notes)}", "",
                "The coin: posterior mean within 1 %, sd within 10 % of the exact Beta posterior.", "", *coin, ""]
        if programs:
            text += [f"The target programs: every posterior mean within {REFERENCE_BAR} reference sds.", "",
                     *programs, ""]
        with open(ROOT / "bench" / "RESULTS.md", "a") as results:
            results.write("\n".join(text))


if __name__ == "__main__":
    main()
