"""The approximation the report's draws come from: the fitted mean-field guide, its
linear-response correction (`linear_response`), or a joint guide's own Gaussian
(`joint`), and each one reweighted by PSIS and resampled (`importance`) where k̂
says the weights can be trusted.

A fit with the normal guide on data in memory gets, by default, the
linear-response Gaussian resampled: means and sds that match long NUTS runs on
near-Gaussian posteriors, and PSIS's correction of skew and tails on the rest
(docs/inference.md has the measurements). Fits that cannot have it (the native
guide, batches, processes, enumerated latents, data read row by row from disk)
keep the guide's own draws.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import pyro
import torch

from compiler.backend.build import CompiledModel
from compiler.inference import joint, lanczos, linear_response, minibatch, params
from compiler.inference.config import RunConfig
from compiler.inference.elbo import MAX_LBFGS_PARTICLES, too_few_pairs
from compiler.inference.importance import Weighted, draw_count, draws_at_once, importance, noise_at, of_gaussian
from compiler.inference.posterior import posterior_draws
from compiler.inference.records import Importance, Note, Objective, Run

MAX_DOUBLINGS = 3  # the draw check doubles the fixed draws at most this many times


@dataclass(frozen=True)
class Posterior:
    draws: dict[str, torch.Tensor]
    importance: Importance | None
    covariance: str | None  # "linear-response" | "mean-field" | "full-rank" | "low-rank"; None: the guide's own draws
    resampled: bool
    gaussian: linear_response.Gaussian | None
    notes: list[Note]
    run: Run  # the run the answer comes from (a refit with more draws, where the check asked for one)


def gaussian_applies(compiled: CompiledModel, data, config: RunConfig, subsampled: bool) -> bool:
    """Whether the report's draws can come from a Gaussian over every guided latent."""
    normal = params.normal_factors(compiled)
    return (config.covariance != "guide" and not subsampled and not config.distributed
            and bool(compiled.ir.guided_latents)
            and (joint.applies(compiled) or all(s.name in normal for s in compiled.ir.guided_latents))
            and not any(s.enumerated for s in compiled.ir.latents)
            and not minibatch.read_by_row_on_disk(compiled, data))


def posterior(compiled: CompiledModel, data, objective: Objective, config: RunConfig, subsampled: bool, run: Run,
              refit: Callable[[int], Run]) -> Posterior:
    """Draws for the report from the best approximation this fit affords; `refit(particles)`
    fits again with more fixed draws when the draw check asks for them."""
    if run.interrupted or not gaussian_applies(compiled, data, config, subsampled):
        checked = None if minibatch.read_by_row_on_disk(compiled, data) else importance(
            compiled, data, fitted_draws(run), objective)
        return Posterior(posterior_draws(compiled, data, config.draws), checked, None, False, None, [], run)
    gaussian, notes, run = gaussian_of_fit(compiled, objective, config, run, refit)
    draws, weighted, resampled = from_gaussian(compiled, data, objective, gaussian, config.draws, config.seed,
                                               config.resample, draw_count(compiled, data, fitted_draws(run)))
    return Posterior(draws, weighted.importance, gaussian.kind, resampled, gaussian, notes, run)


def guide_scale_notes(compiled: CompiledModel, run: Run, covariance: str | None) -> list[Note]:
    """Where the report's sds are an L-BFGS guide's own scales (mean-field, or the guide's draws): whether
    it had too few antithetic pairs to decorrelate its draws, which biases those scales. A covariance
    measured from the ELBO's curvature, to which every draw contributes a full Hessian, is not biased
    by it: on a logistic regression with predictors correlated 0.95 (N = 2,000), one pair gave the
    mean-field sds 22 % below 32 pairs' and the linear-response sds within 0.3 % of them."""
    if run.fixed_draws is None or covariance not in (None, "mean-field"):
        return []
    return too_few_pairs(run.particles, params.coordinates(compiled))


def fitted_draws(run: Run) -> int:
    """The draws of the ELBO the fit evaluated with gradients, at least: what diagnostics are priced by."""
    return run.steps * max(run.particles, 1)


def from_gaussian(compiled: CompiledModel, data, objective: Objective, gaussian: linear_response.Gaussian, count: int,
                  seed: int, resample: bool, weighted_draws: int) -> tuple[dict[str, torch.Tensor], Weighted, bool]:
    """`count` draws of every latent and let from `gaussian` through the guide's transforms,
    weighted by PSIS over `weighted_draws` importance draws and, with `resample` where the weights
    can be trusted, resampled by them (whether they were is the last item); the same seed, guide
    and `weighted_draws` give the same draws."""
    total, chunk = weighted_draws, draws_at_once(compiled, data, weighted_draws)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    weighted = of_gaussian(compiled, objective, gaussian, total, chunk, generator)
    # Weights that are not all finite (a Gaussian far out, read from a crafted file) are never resampled by.
    resample = (resample and weighted.reliable and bool(weighted.log_weights.isfinite().all())
                and weighted.worth_resampling)
    if resample:
        chosen = torch.multinomial(weighted.log_weights.exp(), count, replacement=True, generator=generator)
        values = weighted.values[chosen]
    else:
        values = gaussian.sample(count, generator)
    return posterior_draws(compiled, data, count, noise=noise_at(compiled, gaussian, values)), weighted, resample


def kinds(compiled: CompiledModel, data) -> frozenset[str]:
    """The kinds of Gaussian (`Gaussian.kind`) a fit of this spec to these data could draw from."""
    if not gaussian_applies(compiled, data, RunConfig(), subsampled=False):
        return frozenset()
    if joint.applies(compiled):
        return frozenset({joint.KINDS[compiled.guide_family]})
    return frozenset({"linear-response", "mean-field"})


def redraw(compiled: CompiledModel, data, count: int, seed: int, kind: str | None,
           corrected: tuple[torch.Tensor, torch.Tensor] | None, resample: bool,
           weighted_draws: int) -> tuple[dict[str, torch.Tensor], linear_response.Gaussian | None]:
    """The draws a fit made, made again from its guide (the param store's) and seed, and the
    Gaussian they came from: the one of `kind` (the linear-response one has `corrected` =
    (mean, scale_tril)), drawn from as `from_gaussian` drew, or with `kind` None the guide itself."""
    if kind is None:
        pyro.set_rng_seed(seed)
        return posterior_draws(compiled, data, count), None
    objective = Objective(*compiled.scored(data))
    # A fit saved before diagnostics were priced by the fit's own cost (no `khat_draws`) drew
    # as many as the terms allowed, as any count does with an unlimited budget.
    weighted_draws = weighted_draws or draw_count(compiled, data, sys.maxsize)
    if kind == "linear-response":
        gaussian = linear_response.Gaussian(linear_response.blocks(compiled), *corrected, kind)
    else:
        gaussian = joint.gaussian(compiled, objective) if joint.applies(compiled) else linear_response.mean_field(compiled)
    return from_gaussian(compiled, data, objective, gaussian, count, seed, resample, weighted_draws)[0], gaussian


def gaussian_of_fit(compiled: CompiledModel, objective: Objective, config: RunConfig, run: Run,
                    refit: Callable[[int], Run] | None = None) -> tuple[linear_response.Gaussian, list[Note], Run]:
    """The linear-response Gaussian where it applies and H is positive definite (after
    the draw check, refitting with more draws while it asks for them; without `refit`, as
    first measured), else the mean-field one; a joint guide's own Gaussian (`joint`)."""
    if joint.applies(compiled):
        return joint.gaussian(compiled, objective), [], run
    if config.covariance == "mean-field" or run.fixed_draws is None:
        return linear_response.mean_field(compiled), [], run
    if (count := params.coordinates(compiled)) > linear_response.MAX_COORDINATES:
        # (`gaussian_applies` has checked the rest: every factor normal, nothing enumerated.)
        return linear_response.mean_field(compiled), [Note("linear_response_too_large", {
            "coordinates": count, "limit": linear_response.MAX_COORDINATES})], run
    notes: list[Note] = []
    for _ in range(MAX_DOUBLINGS + 1):
        corrected = linear_response.measure(compiled, objective, run.fixed_draws, run.particles)
        if corrected.gaussian is None:
            return linear_response.mean_field(compiled), notes + [Note("hessian_not_positive_definite")], run
        if not corrected.converged:
            notes.append(Note("lanczos_unsettled", {"vectors": lanczos.MAX_VECTORS}))
        more = min(2 * run.particles, MAX_LBFGS_PARTICLES)
        if (refit is None or corrected.draw_error <= linear_response.DRAW_ERROR or more == run.particles
                or len(notes) == MAX_DOUBLINGS):
            return corrected.gaussian, notes, run
        notes.append(Note("more_draws", {"error": corrected.draw_error, "particles": run.particles, "more": more}))
        run = refit(more)
    return corrected.gaussian, notes, run
