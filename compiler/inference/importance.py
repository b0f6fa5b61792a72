"""How far the fitted guide can be trusted: PSIS's Pareto k̂ of the importance ratios
p(x, z)/q(z) over draws from it, and their spread."""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine

from compiler.backend.build import CompiledModel
from compiler.inference import distributed
from compiler.inference.elbo import TERMS_PER_STEP, observed_terms
from compiler.inference.posterior import DRAWS_PLATE
from compiler.inference.records import Importance, Objective
from compiler.inference.stats import pareto_khat

# Importance ratios behind k̂: PSIS fits the largest 3 sqrt(S) of them, 189 of 4,000.
# Large data scored one by one get fewer (at least 200), so that k̂ never costs more
# than about 50 steps' worth of log-densities.
PSIS_DRAWS, PSIS_MIN_DRAWS, PSIS_TERMS = 4000, 200, 50 * TERMS_PER_STEP


def importance(compiled: CompiledModel, data, objective: Objective | None = None) -> Importance | None:
    """PSIS's Pareto k̂ and the spread of the log ratios over draws from the fitted
    guide (the objective's model: in a distributed fit, the mean over the
    processes of their scaled shards' is the full log joint). None for models
    with enumerated latents, whose p(x, z) would need them summed out per draw,
    and for those without guide factors (q is empty: nothing to check)."""
    if any(latent.enumerated for latent in compiled.ir.latents) or not compiled.ir.guided_latents:
        return None
    terms = max(observed_terms(compiled, data), 1)
    count = max(PSIS_MIN_DRAWS, min(PSIS_DRAWS, PSIS_TERMS // terms))
    chunk = min(count, max(1, TERMS_PER_STEP // terms))
    objective = objective or Objective(*compiled.scored(data))
    ratios = torch.cat([_log_ratios(objective.model, compiled, objective.data, chunk)
                        for _ in range(math.ceil(count / chunk))])
    ratios = distributed.mean(ratios[:count])
    return Importance(pareto_khat(ratios.cpu().numpy()), ratios.std().item())


def _log_ratios(model, compiled: CompiledModel, data, count: int) -> torch.Tensor:
    """log p(x, z) - log q(z) for `count` guide draws, vectorised under a draws plate."""
    nesting = compiled.ir.max_plate_nesting
    with torch.no_grad(), pyro.plate(DRAWS_PLATE, count, dim=-(nesting + 1)):
        guide_trace = poutine.trace(compiled.guide).get_trace(data)
        model_trace = poutine.trace(poutine.replay(model, guide_trace)).get_trace(data)
        return _per_draw_log_prob(model_trace, count) - _per_draw_log_prob(guide_trace, count)


def _per_draw_log_prob(trace, count: int) -> torch.Tensor:
    """Each site's log-density summed over everything but the draws dim (the leftmost)."""
    trace.compute_log_prob()
    total = torch.zeros(count, dtype=torch.float64)
    for site in trace.nodes.values():
        if site["type"] == "sample":
            log_prob = site["log_prob"]
            total += log_prob.reshape(log_prob.shape[0], -1).sum(-1) if log_prob.dim() else log_prob
    return total
