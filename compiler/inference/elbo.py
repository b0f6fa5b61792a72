"""The objective: Pyro's ELBO for a compiled model, how many particles it averages, and
its average over the processes of a distributed fit."""

from __future__ import annotations

import math

import numpy as np
import torch
from pyro.infer import ELBO, JitTrace_ELBO, JitTraceEnum_ELBO, Trace_ELBO, TraceEnum_ELBO

from compiler.backend.build import CompiledModel
from compiler.frontend.analysis import collapsible, statistics_key
from compiler.inference import distributed, params
from compiler.inference.records import Note

# Vectorised particles cut the gradient noise that one-particle SVI leaves in the
# fit (measured on the coin: mean errors of up to 2.5 % with one, under 0.4 % with
# 16). Their cost grows with the observations scored one by one (statements scored
# from sufficient statistics count once), so large data gets fewer: 4 still held the
# million-flip coin's sd within 0.1 % (scored flip by flip, before the fast path),
# where one particle missed it by 6.6 %. L-BFGS's fixed antithetic draws get the
# means of a Gaussian posterior exactly with any even number, and its scales once
# there is a pair per coordinate to whiten (dadvi.py); 32 (16 pairs) at least, for
# the non-Gaussian ones. L-BFGS keeps each evaluation's graph for its gradient, so it
# affords half Adam's terms: for the million flips scored one by one, one antithetic
# pair fitted as well as two (sd +1.57 % both) at a peak of 756 MiB instead of 1,061 MiB
# (ru_maxrss of processes the bench started, inflated alike by the parent's size).
# But with fewer pairs than coordinates the scales are biased where coordinates
# correlate: logistic regression at N = 10^6 (3 coordinates) came out with sds 12 %
# and 24 % too small from one pair, exact from three (bench/scaling.py); so L-BFGS
# keeps a pair per coordinate while that costs at most WHITENING_TERMS (three pairs
# at 10^6 rows: 13 s instead of 6 s, 502 MiB peak), and says so where it cannot.
PARTICLES, MIN_PARTICLES = {"adam": 16, "lbfgs": 32}, {"adam": 4, "lbfgs": 2}


TERMS_PER_EVALUATION = {"adam": 4_000_000, "lbfgs": 2_000_000}


MAX_LBFGS_PARTICLES, TERMS_PER_STEP = 256, TERMS_PER_EVALUATION["adam"]


WHITENING_TERMS = 4 * TERMS_PER_EVALUATION["lbfgs"]


def default_particles(compiled: CompiledModel, data, optimizer: str = "lbfgs", coordinates: int = 0,
                      batch_size: int | None = None) -> int:
    wanted = max(PARTICLES[optimizer], min(MAX_LBFGS_PARTICLES, 2 * coordinates + 2))
    terms = max(observed_terms(compiled, data, batch_size), 1)
    particles = max(MIN_PARTICLES[optimizer], min(wanted, TERMS_PER_EVALUATION[optimizer] // terms))
    if optimizer == "lbfgs" and 2 * coordinates * terms <= WHITENING_TERMS:
        particles = max(particles, 2 * coordinates)
    return particles // 2 * 2


def too_few_pairs(particles: int, coordinates: int) -> list[Note]:
    if coordinates < 2 or particles >= 2 * coordinates:
        return []
    return [Note("too_few_pairs", {"pairs": particles // 2, "coordinates": coordinates})]


def observed_terms(compiled: CompiledModel, data, batch_size: int | None = None) -> int:
    """Log-density terms per particle an evaluation computes: one per observation (per
    row of a batch, with `batch_size`), one per statement scored from sufficient
    statistics. A statement scored from per-group statistics (`linear_normal`) counts its
    rows, as scored one by one, so that it keeps the particles it had: counted by its
    groups, a 1,000-group hierarchy on 10^5 rows would whiten with 2,008 particles (1.3 s
    an evaluation) where its 20 (0.02 s) reach the bench's bar, and where they leave too
    large a sampling error the linear-response check doubles them."""
    return sum(1 if collapsible(observe) else _one_by_one(observe, data, batch_size) for observe in compiled.ir.observed)


def computed_terms(compiled: CompiledModel, data) -> int:
    """Log-density terms per particle the scored model (`CompiledModel.scored`) computes with `data`,
    its data: a statement scored from statistics counts their size, where `observed_terms` counts
    its rows to keep the fit's particles (a 1,000-group hierarchy on 10^5 rows: 3,003 against 10^5)."""
    terms = 0
    for observe in compiled.ir.observed:
        key = statistics_key(observe)
        if key in data:
            terms += sum(math.prod(np.shape(part)) for part in data[key])
        else:
            terms += 1 if collapsible(observe) else _one_by_one(observe, data, None)
    return terms


def _one_by_one(observe, data, batch_size: int | None) -> int:
    shape = np.shape(data[observe.name])
    rows = min(shape[0], batch_size) if shape and batch_size else (shape[0] if shape else 1)
    return math.prod(shape[1:]) * rows


def elbo(compiled: CompiledModel, particles: int, jit: bool = False) -> ELBO:
    """Pyro's ELBO for this model: over its enumerated latents where it has any, particles vectorised."""
    enumerated = any(latent.enumerated for latent in compiled.ir.latents)
    kind = {(False, False): Trace_ELBO, (True, False): TraceEnum_ELBO,
            (False, True): JitTrace_ELBO, (True, True): JitTraceEnum_ELBO}[(enumerated, jit)]
    return kind(max_plate_nesting=compiled.ir.max_plate_nesting, num_particles=particles, vectorize_particles=True)


class AveragedELBO:
    """An ELBO whose loss and gradients are averaged over the processes of a distributed
    fit (each holds a shard of the data, its observations scaled); in a single process,
    the ELBO itself. SVI takes its two methods as `loss` and `loss_and_grads`."""

    def __init__(self, inner: ELBO):
        self.inner = inner

    def loss(self, model, guide, *args, **kwargs) -> float:
        return distributed.mean(torch.as_tensor(self.inner.loss(model, guide, *args, **kwargs))).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.inner.loss_and_grads(model, guide, *args, **kwargs)
        distributed.average_gradients(params.unconstrained())
        return distributed.mean(torch.as_tensor(loss)).item()


def per_draw_log_prob(trace, count: int) -> torch.Tensor:
    """Each site's log-density summed over everything but the draws dim (the leftmost)."""
    trace.compute_log_prob()
    total = torch.zeros(count, dtype=torch.float64)
    for site in trace.nodes.values():
        if site["type"] == "sample":
            log_prob = site["log_prob"]
            total = total + (log_prob.reshape(log_prob.shape[0], -1).sum(-1) if log_prob.dim() else log_prob)
    return total
