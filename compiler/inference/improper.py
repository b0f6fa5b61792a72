"""Phase 4, infer, after the fit: the fitted normal guide -> the directions along which
the posterior is flat, among latents with improper priors (`Flat`, `HalfFlat`).

An improper prior gives a proper posterior only where the data pin its latent
down. Where they do not, no posterior exists, yet the mean-field ELBO may still
have a maximum: observing only a + b, the guide's scales are held by the
variance of a + b, and L-BFGS stops ("converged") anywhere along a - b. So the
check is on curvature, not on the ELBO: H, the Hessian of the negative ELBO in
the guide's locations of the improper latents at the guide's centre (every
normal factor drawing its location), which is -d² log p(x, z) in their
unconstrained values, the other latents held there; scaled by the guide's
scales, S H S. At a mean-field optimum its diagonal is near 1 (for a Gaussian
posterior exactly 1, as s_k² = 1 / Λ_kk). Along a direction the data leave
free it is 0: exactly for a shift the log joint ignores (a - b above), for a
log density that grows linearly (a HalfFlat scale nothing observes: log p = u
+ const on its log scale u), and where nothing holds a guide scale. A flat
direction is flat everywhere, so one point suffices, and the centre needs no
draws, which overflow once a guide scale has run away (where a fit diverges,
the check runs at its last finite state).

Its eigenvalue nearest 0 is the statistic: 1/sqrt of it is how many guide
scales the posterior reaches along that direction. The posteriordb posteriors
with improper priors measure 9.5e-4 and above, the improper examples 0 to
1.7e-11 (docs/inference.md, bench/improper.py); below FLAT (10^4 guide scales)
the fit is an error. Only the normal guide's factors have locations: a HalfFlat
latent under the native guide (a Gamma factor) is not checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from compiler.backend.build import CompiledModel
from compiler.errors import FitError
from compiler.frontend import distributions
from compiler.inference import distributed, params

FLAT = 1e-8
MAX_COORDINATES = 500  # each costs one Hessian-vector product; beyond this the check is skipped
SHOWN_DIRECTIONS, SMALL_COEFFICIENT = 3, 0.05  # a direction names coordinates above this share of its largest


@dataclass(frozen=True)
class Curvature:
    """The scaled curvature S H S of the fit's improper latents."""

    smallest: float  # its eigenvalue nearest 0 (in absolute value)
    flat: tuple[dict[str, float], ...]  # per eigenvalue below FLAT: coordinate label -> coefficient

    @property
    def latents(self) -> list[str]:
        return list(dict.fromkeys(label.split("[")[0] for direction in self.flat for label in direction))


def improper_latents(compiled: CompiledModel) -> list:
    """Guided latents under an improper prior whose guide factor has a location."""
    located = params.locations(compiled)
    return [latent for latent in compiled.ir.guided_latents
            if distributions.TABLE[latent.distribution.name].improper and latent.name in located]


def coordinates(compiled: CompiledModel, latents: list) -> int:
    """How many numbers the guide's locations of `latents` hold."""
    located = params.locations(compiled)
    return sum(located[latent.name].numel() for latent in latents)


def measure(compiled: CompiledModel, loss: Callable[[], torch.Tensor], latents: list | None = None,
            at_once: int = 1) -> Curvature | None:
    """S H S at the guide's current parameters, from `loss` (the negative ELBO of one
    particle at the guide's centre: `fixed_draws.at_the_centre`), over `latents` (by
    default the improper ones), its rows `at_once` at a time; None where there are
    none, too many coordinates, or the curvature is not finite there."""
    latents = improper_latents(compiled) if latents is None else latents
    located, scaled_by = params.locations(compiled), params.scales(compiled)
    locations = [located[latent.name] for latent in latents]
    if not 0 < coordinates(compiled, latents) <= MAX_COORDINATES:
        return None
    hessian = _hessian(loss, locations, at_once)
    if hessian is None:
        return None
    scales = torch.cat([scaled_by[latent.name].detach().reshape(-1) for latent in latents])
    scaled = scales[:, None] * hessian * scales[None, :]
    values, vectors = torch.linalg.eigh((scaled + scaled.T) / 2)
    labels = [label for latent in latents for label in _labels(latent.name, located[latent.name].shape)]
    # An eigenvector moves the scaled coordinates; S times it, the locations themselves.
    flat = tuple(_direction(labels, scales * vectors[:, k]) for k in range(len(values)) if values[k].abs() < FLAT)
    return Curvature(values.abs().min().item(), flat)


def _hessian(loss, locations: list[torch.Tensor], at_once: int) -> torch.Tensor | None:
    """The Hessian of `loss` in `locations` (flattened) at the guide's centre, `at_once`
    Hessian-vector products in one batched backward pass; averaged over the processes
    of a distributed fit, whose mean loss is the fit's (every process takes part, the
    one that failed too)."""
    count = sum(location.numel() for location in locations)
    try:
        value = loss()
        # allow_unused: with nothing but a Flat latent, no term reads its location (the guide's
        # own log density is computed from the noise, fixed_draws.Scored).
        gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, locations, create_graph=True,
                                                                         allow_unused=True, materialize_grads=True)])
        local = torch.cat([_rows(gradient, locations, basis) for basis in torch.eye(count).split(at_once)]).detach()
    except ValueError:  # a distribution refused a non-finite argument: no curvature to read
        local = torch.full((count, count), math.nan)
    hessian = distributed.mean(local)
    return hessian if torch.isfinite(hessian).all() else None


def _rows(gradient: torch.Tensor, locations: list[torch.Tensor], basis: torch.Tensor) -> torch.Tensor:
    """The Hessian's rows along `basis` (unit vectors); zero where the gradient does not
    depend on the locations at all (a Flat latent nothing else reads)."""
    if not gradient.requires_grad:
        return torch.zeros(len(basis), gradient.numel())
    parts = torch.autograd.grad(gradient, locations, grad_outputs=basis, is_grads_batched=True, retain_graph=True,
                                allow_unused=True, materialize_grads=True)
    return torch.cat([part.reshape(len(basis), -1) for part in parts], dim=1)


def _labels(name: str, shape: torch.Size) -> list[str]:
    """`a`, or `beta[0]`, `beta[1]`, ... as the report names elements."""
    if not shape:
        return [name]
    return [f"{name}[{', '.join(map(str, index))}]" for index in np.ndindex(*shape)]


def _direction(labels: list[str], vector: torch.Tensor) -> dict[str, float]:
    """The coordinates a flat direction moves, scaled so that the largest moves by 1."""
    largest = vector.abs().max()
    sign = 1.0 if vector[vector.abs().argmax()] > 0 else -1.0
    return {label: sign * (value / largest).item() for label, value in zip(labels, vector)
            if value.abs() > SMALL_COEFFICIENT * largest}


def refuse(compiled: CompiledModel, curvature: Curvature | None) -> None:
    """Raise the fitting error that names the latents along flat directions, if any."""
    if curvature is None or not curvature.flat:
        return
    names = curvature.latents
    shown = "; ".join(_combination(direction) for direction in curvature.flat[:SHOWN_DIRECTIONS])
    more = f" and {len(curvature.flat) - SHOWN_DIRECTIONS} more" if len(curvature.flat) > SHOWN_DIRECTIONS else ""
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    raise FitError(
        f"the posterior is improper: the data do not pin down {listed} (the log density has no curvature "
        f"along {shown}{more}), so there is no posterior to approximate",
        compiled.ir.site_spans.get(names[0]),
        f"give {listed} a proper prior (Normal(0, 10) instead of Flat(), HalfNormal(10) instead of "
        "HalfFlat()), or add data that determine them")


def _combination(direction: dict[str, float]) -> str:
    """`a - b`, `beta[1] + 0.5 beta[2]`: a direction as a sum of its coordinates."""
    terms = []
    for label, coefficient in direction.items():
        size = f"{abs(coefficient):.2g}"
        term = label if size == "1" else f"{size} {label}"
        if terms:
            terms.append(f"{'-' if coefficient < 0 else '+'} {term}")
        else:
            terms.append(f"-{term}" if coefficient < 0 else term)
    return " ".join(terms)
