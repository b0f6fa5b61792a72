"""How far the fitted guide can be trusted: PSIS's Pareto k̂ of the importance ratios
p(x, z)/q(z) over draws from it, and their spread."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyro
import torch
from pyro import poutine

from compiler.backend.build import CompiledModel
from compiler.inference import diagnose, distributed, joint, params, sampled_rows
from compiler.inference.elbo import TERMS_PER_STEP, observed_terms, per_draw_log_prob
from compiler.inference.fixed_draws import FixedNoise, Noise
from compiler.inference.lbfgs import guided_sites
from compiler.inference.linear_response import Gaussian
from compiler.inference.posterior import DRAWS_PLATE
from compiler.inference.records import Importance, Objective
from compiler.inference.stats import khat_threshold, pareto_khat, psis

# Importance ratios behind k̂: PSIS fits the largest 3 sqrt(S) of them, 189 of 4,000.
# They are priced like the fit: their log-densities (no gradient, about a third of the
# cost of one with it) come to at most DIAGNOSTIC_SHARE of those the fit evaluated with
# gradients, or FREE_TERMS where that is more (a few milliseconds), and never more than
# PSIS_TERMS; at least PSIS_MIN_DRAWS draws, whose k̂ the report gives with its error.
PSIS_DRAWS, PSIS_MIN_DRAWS, PSIS_TERMS = 4000, 200, 50 * TERMS_PER_STEP
DIAGNOSTIC_SHARE, GRADIENT_COST, FREE_TERMS = 0.1, 3, TERMS_PER_STEP
RESAMPLING_ESS = 1000  # (`Weighted.worth_resampling`)


def draw_count(compiled: CompiledModel, data, fitted_draws: int) -> int:
    """How many importance draws for this model and data after a fit that evaluated
    `fitted_draws` draws of the ELBO with their gradients (iterations times particles)."""
    terms = max(observed_terms(compiled, data), 1)
    budget = max(FREE_TERMS, DIAGNOSTIC_SHARE * GRADIENT_COST * fitted_draws * terms)
    return max(PSIS_MIN_DRAWS, min(PSIS_DRAWS, PSIS_TERMS // terms, int(budget // terms)))


def draws_at_once(compiled: CompiledModel, data, count: int) -> int:
    """How many of `count` importance draws one vectorised evaluation takes: a step's terms."""
    return min(count, max(1, TERMS_PER_STEP // max(observed_terms(compiled, data), 1)))


@dataclass(frozen=True)
class Weighted:
    """Draws of the unconstrained coordinates from a Gaussian, with their PSIS weights."""

    values: torch.Tensor  # (draws, D)
    log_weights: torch.Tensor  # (draws,), Pareto-smoothed and normalised
    importance: Importance
    reliable: bool  # k̂ below the threshold for this many draws: the weights can be used

    @property
    def worth_resampling(self) -> bool:
        """Resampling by these weights adds the Monte Carlo error of their effective draws to every
        mean, about 1 / sqrt(ESS) sds: with RESAMPLING_ESS or more that is at most 0.03, and they are
        resampled by (the correction matters most in the tails of constrained sites, which a shift in
        the unconstrained space understates: eight schools' tau, sd 2.2x the reference without it).
        With fewer (importance draws priced by a large data set's terms), only where the shift is
        more than the largest of the 2D moves (means in sds and log sds), each with that error, would
        reach by chance (sqrt(2 ln 2D) errors) plus one error: logistic regression at N = 10^5
        (200 draws) had a coefficient resampled 0.13 sds off, and 0.01 without."""
        weights = torch.softmax(self.log_weights, 0)
        effective = 1 / float((weights * weights).sum())
        chance = math.sqrt(2 * math.log(2 * self.values.shape[-1])) + 1
        return effective >= RESAMPLING_ESS or (self.importance.shift or 0.0) > chance / math.sqrt(effective)


def of_gaussian(compiled: CompiledModel, objective: Objective, gaussian: Gaussian, count: int, chunk: int,
                generator: torch.Generator) -> Weighted:
    """Draws z = T(u), u from `gaussian`, and their importance ratios p(x, z) / q(z), with q the
    Gaussian pushed through the guide's transforms: log p(x, z) + log |J(u)| - log N(u). On a
    large data set the ratios score a sample of the rows (`sampled_rows`) where its error allows."""
    values = torch.cat([gaussian.sample(min(chunk, count - start), generator) for start in range(0, count, chunk)])

    def score(model, data, part: torch.Tensor):
        return _gaussian_log_ratios(compiled, model, data, gaussian, part)

    estimate = sampled_rows.log_ratios(compiled, objective, values, score, generator)
    ratios = estimate.log_ratios if estimate else torch.cat(
        [score(objective.model, objective.data, part)[0] for part in values.split(chunk)])
    smoothed, khat = psis(ratios.cpu().numpy())
    shift = _reweighting_shift(values, torch.as_tensor(smoothed))
    checked = Importance(khat, ratios.std().item(), khat_threshold(count), shift, count,
                         estimate.sampled if estimate else None)
    reliable = khat is None or khat <= khat_threshold(count)
    return Weighted(values, torch.as_tensor(smoothed), checked, reliable)


def _reweighting_shift(values: torch.Tensor, log_weights: torch.Tensor) -> float:
    """The largest change reweighting makes to a coordinate's mean (in its sds) or to the log of its sd."""
    weights = torch.softmax(log_weights, 0)[:, None]
    mean, sd = values.mean(0), values.std(0, correction=0)  # as the weighted sd, over the draws themselves
    weighted_mean = (weights * values).sum(0)
    weighted_sd = (weights * (values - weighted_mean) ** 2).sum(0).sqrt()
    return max(((weighted_mean - mean).abs() / sd).max().item(), (weighted_sd / sd).log().abs().max().item())


def _gaussian_log_ratios(compiled: CompiledModel, model, data, gaussian: Gaussian, values: torch.Tensor):
    """Each of `values`' log ratio, and the model's trace that scored it."""
    with FixedNoise(guided_sites(compiled), noise_at(compiled, gaussian, values)):
        # The guide's log q(z) is log N(u; m, s) - log |J(u)| for its own N (mean-field or joint).
        ratios, model_trace = _log_ratios(model, compiled, data, len(values))
    own = joint.log_density(compiled, values) if joint.applies(compiled) else sum(
        torch.distributions.Normal(location.detach().reshape(-1), scale.detach().reshape(-1))
        .log_prob(values[:, b.start:b.start + b.size]).sum(-1) for b, location, scale in _factors(compiled, gaussian))
    return ratios + own - gaussian.log_prob(values), model_trace


def _factors(compiled: CompiledModel, gaussian: Gaussian):
    located, scaled = params.locations(compiled), params.scales(compiled)
    return [(b, located[b.latent], scaled[b.latent]) for b in gaussian.blocks]


def noise_at(compiled: CompiledModel, gaussian: Gaussian, values: torch.Tensor) -> Noise:
    """The noise that makes each normal guide factor (or the joint guide) draw its part of `values` (draws, D)."""
    if joint.applies(compiled):
        return joint.noise_at(compiled, values)
    factors = {b.latent: (b, location.detach(), scale.detach()) for b, location, scale in _factors(compiled, gaussian)}

    def noise(site: str, shape: torch.Size) -> torch.Tensor:
        block, location, scale = factors[site]
        part = values[:, block.start:block.start + block.size].reshape((len(values),) + block.shape)
        return ((part - location) / scale).reshape(shape)

    return noise


def importance(compiled: CompiledModel, data, fitted_draws: int, objective: Objective | None = None) -> Importance | None:
    """PSIS's Pareto k̂ and the spread of the log ratios over draws from the fitted
    guide (the objective's model: in a distributed fit, the mean over the
    processes of their scaled shards' is the full log joint). None for models
    with enumerated latents, whose p(x, z) would need them summed out per draw,
    and for those without guide factors (q is empty: nothing to check)."""
    if any(latent.enumerated for latent in compiled.ir.latents) or not compiled.ir.guided_latents:
        return None
    count = draw_count(compiled, data, fitted_draws)
    chunk = draws_at_once(compiled, data, count)
    objective = objective or Objective(*compiled.scored(data))
    ratios = torch.cat([_log_ratios(objective.model, compiled, objective.data, chunk)[0]
                        for _ in range(math.ceil(count / chunk))])
    ratios = distributed.mean(ratios[:count])
    return Importance(pareto_khat(ratios.cpu().numpy()), ratios.std().item(), khat_threshold(count), draws=count)


def _log_ratios(model, compiled: CompiledModel, data, count: int):
    """log p(x, z) - log q(z) for `count` guide draws, vectorised under a draws plate, and the model's trace."""
    nesting = compiled.ir.max_plate_nesting
    with torch.no_grad(), diagnose.checked_once(), pyro.plate(DRAWS_PLATE, count, dim=-(nesting + 1)):
        guide_trace = poutine.trace(compiled.guide).get_trace(data)
        model_trace = poutine.trace(poutine.replay(model, guide_trace)).get_trace(data)
        return per_draw_log_prob(model_trace, count) - per_draw_log_prob(guide_trace, count), model_trace
