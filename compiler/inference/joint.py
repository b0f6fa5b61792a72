"""The joint guides (`--guide fullrank`, `--guide lowrank`) as the Gaussian the report's
draws come from.

A joint guide draws every guided latent's unconstrained coordinates at once from
one Gaussian (codegen's `_joint`), so the fitted guide is itself the Gaussian that
`approximation` reweights by PSIS and resamples: no linear response is needed.
"""

from __future__ import annotations

import math

import torch
from pyro import poutine
from torch.distributions import biject_to

from compiler.backend.build import CompiledModel
from compiler.inference import params
from compiler.inference.fixed_draws import Noise
from compiler.inference.linear_response import Block, Gaussian
from compiler.inference.records import Objective

KINDS = {"fullrank": "full-rank", "lowrank": "low-rank"}


def applies(compiled: CompiledModel) -> bool:
    return compiled.code.joint_site is not None


def gaussian(compiled: CompiledModel, objective: Objective) -> Gaussian:
    """The fitted joint guide over its coordinates, each latent's block named."""
    fitted = _fitted(compiled)
    if "scale_tril" in fitted:
        scale_tril = fitted["scale_tril"]
    else:
        factor = fitted["cov_factor"]
        scale_tril = torch.linalg.cholesky(factor @ factor.T + torch.diag(fitted["cov_diag"]))
    return Gaussian(layout(compiled, objective), fitted["loc"], scale_tril, KINDS[compiled.guide_family])


def layout(compiled: CompiledModel, objective: Objective) -> tuple[Block, ...]:
    """Each guided latent's block of the joint vector, in the guide's order. Its shape on the
    real line is the model's support's bijection's (a simplex of K has K - 1 coordinates),
    read from one run of the guide and the model, as Pyro's AutoContinuous reads it."""
    with torch.no_grad():
        guide_trace = poutine.trace(compiled.guide).get_trace(objective.data)
        model_trace = poutine.trace(poutine.replay(objective.model, guide_trace)).get_trace(objective.data)
    found, start = [], 0
    for latent in compiled.ir.guided_latents:
        site = model_trace.nodes[latent.name]
        shape = tuple(biject_to(site["fn"].support).inv.forward_shape(site["value"].shape))
        found.append(Block(latent.name, start, shape))
        start += math.prod(shape)
    return tuple(found)


def log_density(compiled: CompiledModel, values: torch.Tensor) -> torch.Tensor:
    """The fitted joint guide's log-density of unconstrained `values` (draws, D)."""
    fitted = _fitted(compiled)
    if "scale_tril" in fitted:
        guide = torch.distributions.MultivariateNormal(fitted["loc"], scale_tril=fitted["scale_tril"])
    else:
        guide = torch.distributions.LowRankMultivariateNormal(fitted["loc"], fitted["cov_factor"], fitted["cov_diag"])
    return guide.log_prob(values)


def noise_at(compiled: CompiledModel, values: torch.Tensor) -> Noise:
    """The noise that makes the joint site draw `values` (draws, D): L⁻¹(v - loc); for the
    low-rank guide, none along W and (v - loc) / sqrt(d) on the diagonal."""
    fitted = _fitted(compiled)
    centred = values - fitted["loc"]
    if "scale_tril" in fitted:
        e = torch.linalg.solve_triangular(fitted["scale_tril"], centred.T, upper=False).T
    else:
        e = torch.cat([centred.new_zeros(len(values), fitted["cov_factor"].shape[-1]),
                       centred / fitted["cov_diag"].sqrt()], dim=1)

    def noise(site: str, shape: torch.Size) -> torch.Tensor:
        return e.reshape(shape)

    return noise


def _fitted(compiled: CompiledModel) -> dict[str, torch.Tensor]:
    """The joint guide's parameters as its Gaussian takes them: loc and scale_tril, or loc, cov_factor
    and cov_diag (codegen's `_joint`: S W, W lower trapezoidal, and S²)."""
    fitted = {role: value.detach() for role, value in params.joint(compiled).items()}
    if "scale" in fitted:
        scale = fitted.pop("scale")
        fitted["cov_factor"], fitted["cov_diag"] = fitted["cov_factor"].tril() * scale.unsqueeze(-1), scale**2
    return fitted
