"""What the convenience of a spec file costs: pplc against hand-written Pyro, in one run.

Rows (pplc-against-other rows: the fastest of --repeats alternated runs of each side;
other rows: medians; ratios printed beside them):

- SVI step cost: pplc's compiled coin model and guide against a hand-written
  vectorised Pyro model with the same guide family (a Normal on the logit
  scale), one particle, Adam, per 1,000 steps, at N = 10, 10^3, 10^5, 10^6;
- `--jit` (Pyro's JitTrace_ELBO) against the plain step, per N;
- the Pyro SVI tutorial's style (a Python loop of one `pyro.sample` per flip)
  at N = 10 and 10^3;
- NumPyro's SVI (AutoNormal, one jitted update per step, compilation excluded,
  NumPyro's default float32) on the same model and data, if installed
  (`pip install -e '.[bench]'`);
- the radon and logistic regression programs: compiled against hand-written
  models with Pyro's AutoNormal guide, per 1,000 steps;
- compile time (parse + check + codegen) of every spec in specs/;
- whole-process wall time of `pplc check` and `pplc run specs/coin.ppl`, and of
  `python -c "import torch, pyro"`;
- time to the coin's accuracy bar (mean within 1 %, sd within 5 % of the exact
  Beta posterior): pplc's default fit against hand-written Pyro with Adam,
  checked every 100 steps;
- the N = 10^6 coin at default settings: steps, seconds, accuracy, peak memory.

Writes bench/RESULTS.md with the tables and the machine they ran on.

    python bench/run.py --repeats 5   # about ten minutes
    python bench/run.py --repeats 1   # quicker, noisier
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import pyro
import pyro.distributions as dist
import torch
from common import PEAK_KIB, ROOT, SPECS, exact_coin, wall_time
from pyro.infer import SVI, JitTrace_ELBO, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from pyro.optim import Adam

from compiler import compile_file
from compiler.api import compute_in_float64

STEPS = {10: 1000, 1_000: 1000, 100_000: 200, 1_000_000: 40}  # timed steps per size (scaled to 1,000)


# Hand-written Pyro ------------------------------------------------------------------


def coin_model(x):
    f = pyro.sample("f", dist.Beta(10.0, 10.0))
    with pyro.plate("N", x.shape[0]):
        pyro.sample("x", dist.Bernoulli(f), obs=x)


def coin_guide(x):
    loc = pyro.param("f.loc", lambda: torch.tensor(0.0))
    scale = pyro.param("f.scale", lambda: torch.tensor(0.1), constraint=dist.constraints.positive)
    pyro.sample("f", dist.TransformedDistribution(dist.Normal(loc, scale), dist.transforms.SigmoidTransform()))


def tutorial_model(x):
    f = pyro.sample("f", dist.Beta(10.0, 10.0))
    for i in range(len(x)):
        pyro.sample(f"obs_{i}", dist.Bernoulli(f), obs=x[i])


def tutorial_guide(x):
    coin_guide(x)


def radon_model(county, basement, log_radon, J):
    mu_a = pyro.sample("mu_a", dist.Normal(0.0, 10.0))
    sigma_a = pyro.sample("sigma_a", dist.HalfNormal(5.0))
    with pyro.plate("J", J):
        a = pyro.sample("a", dist.Normal(mu_a, sigma_a))
    b = pyro.sample("b", dist.Normal(0.0, 10.0))
    sigma_y = pyro.sample("sigma_y", dist.HalfNormal(5.0))
    with pyro.plate("N", len(log_radon)):
        pyro.sample("log_radon", dist.Normal(a[county] + b * basement, sigma_y), obs=log_radon)


def logistic_model(X, y):
    alpha = pyro.sample("alpha", dist.Normal(0.0, 2.5))
    with pyro.plate("K", X.shape[1]):
        beta = pyro.sample("beta", dist.Normal(0.0, 2.5))
    with pyro.plate("N", X.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)


# Measurements ----------------------------------------------------------------------------


def seconds_per_1000_steps(model, guide, args, steps: int, repeats: int, elbo=Trace_ELBO) -> float:
    times = []
    for _ in range(repeats):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        svi = SVI(model, guide, Adam({"lr": 0.01}), elbo())
        for _ in range(5):  # warm-up: parameters created, caches filled
            svi.step(*args)
        started = time.perf_counter()
        for _ in range(steps):
            svi.step(*args)
        times.append((time.perf_counter() - started) * 1000 / steps)
    return statistics.median(times)


def paired(first, second, steps: tuple[int, int], repeats: int) -> tuple[float, float]:
    """Seconds per 1,000 steps of two (model, guide, args, elbo) runs, alternated repeat
    by repeat, each side's fastest repeat: on this shared machine the same 10^6-flip
    step took 14 to 29 ms from one repeat to the next, so the least-disturbed run is
    the measurement, and alternating exposes both sides to the same disturbances."""
    times = ([], [])
    for _ in range(repeats):
        for side, (model, guide, args, elbo), count in zip(times, (first, second), steps):
            side.append(seconds_per_1000_steps(model, guide, args, count, 1, elbo))
    return min(times[0]), min(times[1])


def flips(n: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(n)
    return (torch.rand(n, generator=generator) < 0.6).double()


def coin_rows(heading: str, sizes, other, repeats: int, ratio) -> list[str]:
    """The compiled coin's step against `other(program, data, x)` (a model, guide, args,
    ELBO and step count), one row per N: `| N | pplc | other | ratio(pplc, other) |`."""
    program = compile_file(SPECS / "coin.ppl")
    rows = [f"| N | pplc (s / 1,000 steps) | {heading} |", "|---|---|---|---|"]
    for n, steps in sizes:
        x = flips(n)
        data = program.load_data({"x": x.long().tolist()})
        *side, other_steps = other(program, data, x, steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            ours, theirs = paired((program.model, program.guide, (data,), Trace_ELBO), side, (steps, other_steps),
                                  repeats)
        rows.append(f"| {n:,} | {ours:.3f} | {theirs:.3f} | {ratio(ours, theirs)} |")
        print(rows[-1], flush=True)
    return rows


def step_costs(repeats: int) -> list[str]:
    return coin_rows("hand-written Pyro | ratio", STEPS.items(),
                     lambda program, data, x, steps: (coin_model, coin_guide, (x,), Trace_ELBO, steps),
                     repeats, lambda ours, theirs: f"{ours / theirs:.2f}")


def jit_costs(repeats: int) -> list[str]:
    """`--optimizer adam --jit`: the compiled coin's step with Pyro's JitTrace_ELBO, the data bound."""
    return coin_rows("pplc --jit | speed-up", STEPS.items(),
                     lambda program, data, x, steps: (functools.partial(program.model, data),
                                                      functools.partial(program.guide, data), (), JitTrace_ELBO,
                                                      steps),
                     repeats, lambda ours, theirs: f"{ours / theirs:.2f}×")


def tutorial_costs(repeats: int) -> list[str]:
    # The loop runs one Python statement per flip: 20 steps at N = 10^3 already take seconds.
    return coin_rows("tutorial loop | pplc is faster by", ((10, 1000), (1_000, 1000)),
                     lambda program, data, x, steps: (tutorial_model, tutorial_guide, (x,), Trace_ELBO,
                                                      1000 if len(x) <= 10 else 20),
                     repeats, lambda ours, theirs: f"{theirs / ours:.0f}×")


def numpyro_costs(repeats: int) -> list[str]:
    try:
        import jax
        import numpyro
    except ImportError:
        return ["NumPyro is not installed here (`pip install numpyro` adds this table)."]
    from numpyro.infer import SVI as NumPyroSVI
    from numpyro.infer import Trace_ELBO as NumPyroELBO
    from numpyro.infer.autoguide import AutoNormal as NumPyroAutoNormal

    def model(x):
        f = numpyro.sample("f", numpyro.distributions.Beta(10.0, 10.0))
        with numpyro.plate("N", x.shape[0]):
            numpyro.sample("x", numpyro.distributions.Bernoulli(f), obs=x)

    program = compile_file(SPECS / "coin.ppl")
    rows = ["| N | pplc (s / 1,000 steps) | NumPyro AutoNormal, jit | ratio |", "|---|---|---|---|"]
    for n, steps in STEPS.items():
        x = flips(n)
        data = program.load_data({"x": x.long().tolist()})
        compiled = seconds_per_1000_steps(program.model, program.guide, (data,), steps, repeats)
        svi = NumPyroSVI(model, NumPyroAutoNormal(model), numpyro.optim.Adam(0.01), NumPyroELBO())
        observed = jax.numpy.asarray(x.numpy())
        update = jax.jit(svi.update)
        times = []
        for _ in range(repeats):
            state = svi.init(jax.random.PRNGKey(0), observed)
            state, loss = update(state, observed)  # compiles; not timed
            loss.block_until_ready()
            started = time.perf_counter()
            for _ in range(steps):
                state, loss = update(state, observed)
            loss.block_until_ready()
            times.append((time.perf_counter() - started) * 1000 / steps)
        other = statistics.median(times)
        rows.append(f"| {n:,} | {compiled:.3f} | {other:.4f} | {compiled / other:.1f} |")
        print(rows[-1], flush=True)
    return rows


def regression_costs(repeats: int) -> list[str]:
    rows = ["| program | pplc (s / 1,000 steps) | hand-written + AutoNormal | ratio |", "|---|---|---|---|"]
    radon = compile_file(SPECS / "radon.ppl")
    raw = json.loads((SPECS / "radon.data.json").read_text())
    data = radon.load_data()
    args = (torch.tensor(raw["county"]), torch.tensor(raw["basement"], dtype=torch.float64),
            torch.tensor(raw["log_radon"], dtype=torch.float64), raw["J"])
    logistic = compile_file(SPECS / "logistic_regression.ppl")
    raw_logistic = json.loads((SPECS / "logistic_regression.data.json").read_text())
    logistic_args = (torch.tensor(raw_logistic["X"], dtype=torch.float64),
                     torch.tensor(raw_logistic["y"], dtype=torch.float64))
    for name, program, model, model_args in (("radon", radon, radon_model, args),
                                             ("logistic_regression", logistic, logistic_model, logistic_args)):
        loaded = data if name == "radon" else program.load_data()
        compiled, hand = paired((program.model, program.guide, (loaded,), Trace_ELBO),
                                (model, AutoNormal(model), model_args, Trace_ELBO), (1000, 1000), repeats)
        rows.append(f"| {name} | {compiled:.3f} | {hand:.3f} | {compiled / hand:.2f} |")
        print(rows[-1], flush=True)
    return rows


def compile_times() -> list[str]:
    rows = ["| spec | compile (ms) |", "|---|---|"]
    for spec in sorted(SPECS.glob("*.ppl")) + sorted((SPECS / "posteriordb").glob("*.ppl")):
        times = []
        for _ in range(5):
            started = time.perf_counter()
            compile_file(spec)
            times.append((time.perf_counter() - started) * 1000)
        rows.append(f"| {spec.relative_to(SPECS)} | {statistics.median(times):.1f} |")
    return rows


def process_times(repeats: int) -> list[str]:
    pplc = [sys.executable, "-m", "compiler"]
    rows = ["| command | wall time (s) |", "|---|---|"]
    for label, command in (("python -c \"import torch, pyro\"", [sys.executable, "-c", "import torch, pyro"]),
                           ("pplc check specs/coin.ppl", pplc + ["check", "specs/coin.ppl"]),
                           ("pplc run specs/coin.ppl", pplc + ["run", "specs/coin.ppl"])):
        rows.append(f"| `{label}` | {wall_time(command, repeats):.2f} |")
        print(rows[-1], flush=True)
    return rows


MILLION_FIT = f"""
import time
from compiler import compile_file
program = compile_file("specs/coin.ppl")
started = time.perf_counter()
report = program.fit({{"x": [1] * 600_000 + [0] * 400_000}}, seed=0)
print(report.steps, time.perf_counter() - started, report.posterior["f"].mean, report.posterior["f"].sd,
      {PEAK_KIB})
"""


def million_flips(runs: int = 3) -> list[str]:
    """The N = 10^6 coin, each run in a fresh process: the fit against the exact
    posterior, and peak resident memory (which varies from run to run here)."""
    exact_mean, exact_sd = exact_coin(600_000, 1_000_000)
    rows = ["| run | steps | fit (s) | mean error | sd error | peak memory |", "|---|---|---|---|---|---|"]
    for run in range(1, runs + 1):
        result = subprocess.run([sys.executable, "-c", MILLION_FIT], cwd=ROOT, check=True, capture_output=True,
                                text=True)
        steps, seconds, mean, sd, peak_kib = result.stdout.split()
        rows.append(f"| {run} | {steps} | {float(seconds):.1f} | {100 * (float(mean) / exact_mean - 1):+.4f} % | "
                    f"{100 * (float(sd) / exact_sd - 1):+.2f} % | {int(peak_kib) / 1024:.0f} MiB |")
    return rows


def time_to_accuracy() -> list[str]:
    """Seconds of fitting until mean within 1 % and sd within 5 % of Beta(16, 14), after a
    warm-up fit (pplc's includes its posterior draws and k̂)."""
    exact_mean, exact_sd = exact_coin(6, 10)
    program = compile_file(SPECS / "coin.ppl")
    data = program.load_data()
    program.fit(data, seed=1)  # one-time costs (lazy imports, torch's first optimizer) are not fitting time
    started = time.perf_counter()
    report = program.fit(data, seed=0)
    pplc_seconds = time.perf_counter() - started
    f = report.posterior["f"]
    pplc_ok = abs(f.mean - exact_mean) < 0.01 * exact_mean and abs(f.sd - exact_sd) < 0.05 * exact_sd
    x = data["x"].double()
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    svi = SVI(coin_model, coin_guide, Adam({"lr": 0.01}), Trace_ELBO())
    started, steps, hand_seconds = time.perf_counter(), 0, None
    while steps < 20_000:
        for _ in range(100):
            svi.step(x)
        steps += 100
        with torch.no_grad():
            draws = torch.sigmoid(pyro.param("f.loc") + pyro.param("f.scale") * torch.randn(20_000))
        if abs(draws.mean() - exact_mean) < 0.01 * exact_mean and abs(draws.std() - exact_sd) < 0.05 * exact_sd:
            hand_seconds = time.perf_counter() - started
            break
    hand = f"{steps} steps, {hand_seconds:.2f} s" if hand_seconds else "not within 20,000 steps"
    return ["| fit | to the bar |", "|---|---|",
            f"| pplc default (L-BFGS, fixed draws) | {report.steps} iterations, {pplc_seconds:.2f} s"
            f"{'' if pplc_ok else ' (missed the bar)'} |",
            f"| hand-written Pyro, Adam lr 0.01, 1 particle | {hand} |"]


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}, pyro {pyro.__version__}, "
            f"{torch.get_num_threads()} torch threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    compute_in_float64()  # as pplc computes: every row in float64
    sections = [
        ("SVI step cost, coin", step_costs(args.repeats)),
        ("Adam with --jit (Pyro's JitTrace_ELBO)", jit_costs(args.repeats)),
        ("Against the Pyro SVI tutorial's loop", tutorial_costs(args.repeats)),
        ("Against NumPyro", numpyro_costs(args.repeats)),
        ("Regressions", regression_costs(args.repeats)),
        ("Compile time", compile_times()),
        ("Whole process", process_times(args.repeats)),
        ("Time to the coin's accuracy bar", time_to_accuracy()),
        ("The coin at N = 1,000,000 (default settings, data from a Python list)", million_flips()),
    ]
    text = [f"# Benchmark results\n\n`python bench/run.py --repeats {args.repeats}` on {machine()}, "
            f"{time.strftime('%Y-%m-%d')}.\n"]
    for title, rows in sections:
        text.append(f"## {title}\n\n" + "\n".join(rows) + "\n")
    (ROOT / "bench" / "RESULTS.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
