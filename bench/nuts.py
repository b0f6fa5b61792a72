"""NUTS as users run it: pplc against PyMC's default `pm.sample()` and NumPyro's NUTS,
whole process, in one run.

Models: the coin (10 flips), eight schools (non-centred), radon (85 county
intercepts, centred) and a hierarchical logistic regression (800 rows, 8 groups,
two covariates; data generated here, seeded). Every run is a fresh process
(interpreter, imports, data, compilation, warm-up and sampling). Reported per
tool: whole-process seconds, the smallest bulk ESS over every scalar element, ESS
per second (that ESS over those seconds), the largest R̂, and divergences.

- pplc: `pplc run SPEC --method nuts --json` at its defaults (2 chains in parallel,
  200 warm-up iterations from the VI fit's warm start, 1,000 draws).
- PyMC: `pm.sample(random_seed=0)` at its defaults (chains = cores, here 2, in
  parallel; 1,000 tuning and 1,000 draws each).
- NumPyro: `NUTS` with 2 chains in parallel (`chain_method="parallel"`, a host
  device per core), 1,000 warm-up and 1,000 draws, as PyMC.

PyMC and NumPyro are optional (`pip install -e '.[bench]'`); a missing one is
skipped with a note. ESS and R̂ for every tool by ArviZ (pplc's own are the same
formulas, tests/test_stats.py).

    python bench/nuts.py --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, SPECS, available

HIERARCHICAL_LOGISTIC = """# Hierarchical logistic regression: 8 groups' intercepts around a common mean.
data N: int
data J: int
data K: int
data group: int<lower=0, upper=J-1>[N]
data X: real[N, K]
data y: int<lower=0, upper=1>[N]

latent mu ~ Normal(0, 2)
latent tau ~ HalfNormal(1)
latent a[J] ~ Normal(mu, tau)
latent beta[K] ~ Normal(0, 2)
observe y[i] ~ Bernoulli(logits=a[group[i]] + X[i] @ beta)
"""
MODELS = ("coin", "eight_schools", "radon", "hierarchical_logistic")
TOOLS = {"pplc": None, "pymc": "pymc", "numpyro": "numpyro"}


def hierarchical_logistic_data() -> dict:
    rng = np.random.default_rng(0)
    n, j, k = 800, 8, 2
    group = rng.integers(0, j, n)
    x = rng.normal(size=(n, k))
    a = 0.3 + 0.7 * rng.normal(size=j)
    logits = a[group] + x @ np.array([0.8, -0.5])
    y = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(int)
    return {"N": n, "J": j, "K": k, "group": group.tolist(), "X": x.tolist(), "y": y.tolist()}


def spec_and_data(model: str, folder: Path) -> tuple[Path, Path]:
    if model != "hierarchical_logistic":
        return SPECS / f"{model}.ppl", SPECS / f"{model}.data.json"
    spec, data = folder / f"{model}.ppl", folder / f"{model}.data.json"
    spec.write_text(HIERARCHICAL_LOGISTIC)
    data.write_text(json.dumps(hierarchical_logistic_data()))
    return spec, data


def run_pplc(spec: Path, data: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "compiler", "run", str(spec), "--data", str(data),
                           "--method", "nuts", "--json"], cwd=ROOT, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    report = json.loads(done.stdout)
    ess = [e for s in report["posterior"].values() for e in np.ravel(s["ess"])]
    rhat = [r for s in report["posterior"].values() for r in np.ravel(s["rhat"])]
    return {"seconds": seconds, "ess": min(ess), "rhat": max(rhat), "divergences": report["divergences"]}


def run_child(tool: str, model: str, data: Path) -> dict:
    """Another tool in a fresh process: this script with --child."""
    started = time.perf_counter()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, __file__, "--child", tool, "--model", model, "--data", str(data)],
                          cwd=ROOT, check=True, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, **json.loads(done.stdout.strip().splitlines()[-1])}


def child(tool: str, model: str, data_path: Path) -> None:
    data = json.loads(data_path.read_text())
    idata = (sample_pymc if tool == "pymc" else sample_numpyro)(model, data)
    import arviz as az

    ess = az.ess(idata, method="bulk")
    rhat = az.rhat(idata)
    divergences = int(idata.sample_stats["diverging"].sum())
    print(json.dumps({"ess": min(float(ess[v].min()) for v in ess.data_vars),
                      "rhat": max(float(rhat[v].max()) for v in rhat.data_vars), "divergences": divergences}))


def sample_pymc(model: str, data: dict):
    import pymc as pm

    with pm.Model():
        if model == "coin":
            f = pm.Beta("f", 10, 10)
            pm.Bernoulli("x", f, observed=np.array(data["x"]))
        elif model == "eight_schools":
            mu, tau = pm.Normal("mu", 0, 5), pm.HalfCauchy("tau", 5)
            raw = pm.Normal("theta_raw", 0, 1, shape=data["J"])
            pm.Normal("y", mu + tau * raw, np.array(data["sigma"]), observed=np.array(data["y"]))
        elif model == "radon":
            mu_a, sigma_a = pm.Normal("mu_a", 0, 10), pm.HalfNormal("sigma_a", 5)
            a = pm.Normal("a", mu_a, sigma_a, shape=data["J"])
            b, sigma_y = pm.Normal("b", 0, 10), pm.HalfNormal("sigma_y", 5)
            pm.Normal("y", a[np.array(data["county"])] + b * np.array(data["basement"]), sigma_y,
                      observed=np.array(data["log_radon"]))
        else:
            mu, tau = pm.Normal("mu", 0, 2), pm.HalfNormal("tau", 1)
            a = pm.Normal("a", mu, tau, shape=data["J"])
            beta = pm.Normal("beta", 0, 2, shape=data["K"])
            pm.Bernoulli("y", logit_p=a[np.array(data["group"])] + np.array(data["X"]) @ beta,
                         observed=np.array(data["y"]))
        return pm.sample(random_seed=0, progressbar=False)


def sample_numpyro(model: str, data: dict):
    import arviz as az
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    def program():
        if model == "coin":
            f = numpyro.sample("f", dist.Beta(10, 10))
            numpyro.sample("x", dist.Bernoulli(f), obs=jnp.array(data["x"]))
        elif model == "eight_schools":
            mu, tau = numpyro.sample("mu", dist.Normal(0, 5)), numpyro.sample("tau", dist.HalfCauchy(5))
            raw = numpyro.sample("theta_raw", dist.Normal(0, 1).expand([data["J"]]))
            numpyro.sample("y", dist.Normal(mu + tau * raw, jnp.array(data["sigma"])), obs=jnp.array(data["y"]))
        elif model == "radon":
            mu_a, sigma_a = numpyro.sample("mu_a", dist.Normal(0, 10)), numpyro.sample("sigma_a", dist.HalfNormal(5))
            a = numpyro.sample("a", dist.Normal(mu_a, sigma_a).expand([data["J"]]))
            b, sigma_y = numpyro.sample("b", dist.Normal(0, 10)), numpyro.sample("sigma_y", dist.HalfNormal(5))
            numpyro.sample("y", dist.Normal(a[jnp.array(data["county"])] + b * jnp.array(data["basement"]), sigma_y),
                           obs=jnp.array(data["log_radon"]))
        else:
            mu, tau = numpyro.sample("mu", dist.Normal(0, 2)), numpyro.sample("tau", dist.HalfNormal(1))
            a = numpyro.sample("a", dist.Normal(mu, tau).expand([data["J"]]))
            beta = numpyro.sample("beta", dist.Normal(0, 2).expand([data["K"]]))
            logits = a[jnp.array(data["group"])] + jnp.array(data["X"]) @ beta
            numpyro.sample("y", dist.Bernoulli(logits=logits), obs=jnp.array(data["y"]))

    mcmc = MCMC(NUTS(program), num_warmup=1000, num_samples=1000, num_chains=2, chain_method="parallel",
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0))
    return az.from_numpyro(mcmc)




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--child", choices=("pymc", "numpyro"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model, args.data)
        return
    tools = [tool for tool, module in TOOLS.items() if available(module)]
    for tool in set(TOOLS) - set(tools):
        print(f"({tool} is not installed: its column is skipped; pip install -e '.[bench]')")
    print(f"cores: {len(os.sched_getaffinity(0))}; medians of {args.repeats} whole-process run(s)\n")
    print("| model | tool | seconds | min bulk ESS | ESS/s | max R̂ | divergences |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for model in args.models:
            spec, data = spec_and_data(model, Path(folder))
            for tool in tools:
                runs = [run_pplc(spec, data) if tool == "pplc" else run_child(tool, model, data)
                        for _ in range(args.repeats)]
                seconds = statistics.median(r["seconds"] for r in runs)
                ess = statistics.median(r["ess"] for r in runs)
                rhat = max(r["rhat"] for r in runs)
                divergences = max(r["divergences"] for r in runs)
                print(f"| {model} | {tool} | {seconds:.1f} | {ess:.0f} | {ess / seconds:.1f} | {rhat:.3f} | "
                      f"{divergences} |", flush=True)


if __name__ == "__main__":
    main()
