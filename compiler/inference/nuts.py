"""Phase 4 (alternative), NUTS: `Program` + `Data` -> `NutsResult`.

Runs Pyro's NUTS on the same compiled model that SVI fits (enumerated
discrete latents are summed out the same way), chains one after another with
their own seeds, and measures convergence with ArviZ's rank-normalised split
R̂ and bulk effective sample size across chains (Vehtari et al. 2021).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pyro
import torch
from pyro import poutine
from pyro.infer.mcmc import MCMC, NUTS

from compiler.backend.build import CompiledModel
from compiler.errors import FitError
from compiler.inference import params
from compiler.inference.config import NutsConfig
from compiler.inference.diagnose import initialise

RHAT_CONVERGED = 1.01


@dataclass(frozen=True)
class NutsResult:
    draws: dict[str, torch.Tensor]  # site -> (chains * samples, *shape)
    rhat: dict[str, torch.Tensor]
    ess: dict[str, torch.Tensor]
    divergences: int
    seconds: float

    @property
    def converged(self) -> bool:
        return all(bool((r < RHAT_CONVERGED).all()) for r in self.rhat.values() if torch.isfinite(r).all())


def fit_nuts(compiled: CompiledModel, data, config: NutsConfig) -> NutsResult:
    if compiled.ir.params:
        raise FitError("NUTS samples latents only; this spec has point parameters "
                       f"({', '.join(p.name for p in compiled.ir.params)})",
                       compiled.ir.site_spans[compiled.ir.params[0].name],
                       "fit it with SVI (the default), which learns params, or make them latents")
    with params.scope():
        initialise(compiled, data)  # a distribution that refuses its arguments is reported at its statement
        started = time.perf_counter()
        chains, divergences = [], 0
        scored_model, scored_data = compiled.scored(data)
        for chain in range(config.chains):
            params.fresh(config.seed + chain)
            kernel = NUTS(scored_model, target_accept_prob=config.target_accept,
                          max_plate_nesting=compiled.ir.max_plate_nesting)
            mcmc = MCMC(kernel, num_samples=config.samples, warmup_steps=config.warmup, disable_progbar=True)
            mcmc.run(scored_data)
            chains.append(_with_lets(compiled, data, mcmc.get_samples()))
            divergences += len(mcmc.diagnostics()["divergences"]["chain 0"])
    names = chains[0].keys()
    stacked = {name: torch.stack([c[name] for c in chains]) for name in names}  # (chains, samples, *shape)
    rhat = {name: _diagnostic("rhat", value) if config.chains > 1 else torch.full(value.shape[2:], float("nan"))
            for name, value in stacked.items()}
    ess = {name: _diagnostic("ess", value) for name, value in stacked.items()}
    draws = {name: value.reshape((-1,) + value.shape[2:]) for name, value in stacked.items()}
    return NutsResult(draws, rhat, ess, divergences, time.perf_counter() - started)


def _diagnostic(which: str, draws: torch.Tensor) -> torch.Tensor:
    """ArviZ's R̂ or bulk ESS per element of (chains, draws, *shape) draws."""
    from arviz_stats.base import array_stats

    compute = array_stats.rhat if which == "rhat" else array_stats.ess
    return torch.as_tensor(compute(draws.double().numpy(), chain_axis=0, draw_axis=1))


def _with_lets(compiled: CompiledModel, data, samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The sampled latents (enumerated ones are summed out, as in SVI), plus every
    let recomputed on each draw by replaying the model under a draws plate."""
    model_ir = compiled.ir
    kept = {s.name: samples[s.name] for s in model_ir.guided_latents}
    lets = [s for s in model_ir.lets if not s.transformed_data]
    if not lets:
        return kept
    count = next(iter(samples.values())).shape[0]
    dim = -(model_ir.max_plate_nesting + 1)
    with torch.no_grad(), pyro.plate("_draws", count, dim=dim):
        conditioned = {name: _at_draws_dim(value, s, dim) for name, value in kept.items()
                       for s in model_ir.guided_latents if s.name == name}
        trace = poutine.trace(poutine.condition(compiled.model, conditioned)).get_trace(data)
    for let in lets:
        value = trace.nodes[let.name]["value"]
        kept[let.name] = value.reshape((count,) + tuple(value.shape[value.dim() - len(let.shape):]))
    return kept


def _at_draws_dim(value: torch.Tensor, latent, dim: int) -> torch.Tensor:
    """(draws, *shape) -> the layout Pyro gives a site under a draws plate at `dim`."""
    padding = -dim - 1 - len(latent.plates)
    return value.reshape((value.shape[0],) + (1,) * padding + tuple(value.shape[1:]))
