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

from collections.abc import Callable
from dataclasses import dataclass

import torch

from compiler.backend.build import CompiledModel
from compiler.inference import joint, lanczos, linear_response, minibatch, params
from compiler.inference.config import RunConfig
from compiler.inference.elbo import MAX_LBFGS_PARTICLES
from compiler.inference.importance import draw_count, importance, noise_at, of_gaussian
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
        checked = None if minibatch.read_by_row_on_disk(compiled, data) else importance(compiled, data, objective)
        return Posterior(posterior_draws(compiled, data, config.draws), checked, None, False, None, [], run)
    gaussian, notes, run = _gaussian(compiled, objective, config, run, refit)
    count, chunk = draw_count(compiled, data)
    generator = torch.Generator(device="cpu").manual_seed(config.seed)
    weighted = of_gaussian(compiled, objective, gaussian, count, chunk, generator)
    resample = config.resample and weighted.reliable
    if resample:
        chosen = torch.multinomial(weighted.log_weights.exp(), config.draws, replacement=True, generator=generator)
        values = weighted.values[chosen]
    else:
        values = gaussian.sample(config.draws, generator)
    draws = posterior_draws(compiled, data, config.draws, noise=noise_at(compiled, gaussian, values))
    return Posterior(draws, weighted.importance, gaussian.kind, resample, gaussian, notes, run)


def _gaussian(compiled: CompiledModel, objective: Objective, config: RunConfig, run: Run,
              refit: Callable[[int], Run]) -> tuple[linear_response.Gaussian, list[Note], Run]:
    """The linear-response Gaussian where it applies and H is positive definite (after
    the draw check, refitting with more draws while it asks for them), else the mean-field one;
    a joint guide's own Gaussian (`joint`)."""
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
        if corrected.draw_error <= linear_response.DRAW_ERROR or more == run.particles or len(notes) == MAX_DOUBLINGS:
            return corrected.gaussian, notes, run
        notes.append(Note("more_draws", {"error": corrected.draw_error, "particles": run.particles, "more": more}))
        run = refit(more)
    return corrected.gaussian, notes, run
