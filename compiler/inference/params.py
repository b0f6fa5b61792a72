"""The guide's parameters while pplc works on them: the only module that touches Pyro's
param store.

Every fit, every draw from a fitted guide and every restore runs inside `scope`:
a param store of its own, so that a user's parameters are neither cleared nor
changed by pplc, and a fitted guide is a value (`state`) handed on, not
something left behind in a global store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyro
import torch

from compiler.backend.build import CompiledModel
from compiler.backend.guide import JOINT_FAMILIES, JOINT_ROLES, NATIVE_FACTORS

State = dict[str, Any]  # Pyro's param-store state: {"params": {...}, "constraints": {...}}
NATIVE_FAMILIES = frozenset(label for label, _ in NATIVE_FACTORS.values())


@contextmanager
def scope(state: State | None = None) -> Iterator[None]:
    """A param store of pplc's own meanwhile, starting from `state` (empty by default);
    the caller's store is put back afterwards, as it was."""
    inside = {"params": dict(state["params"]), "constraints": dict(state["constraints"])} if state else None
    with pyro.get_param_store().scope(inside):
        yield


def clear() -> None:
    pyro.clear_param_store()


def fresh(seed: int) -> None:
    """No parameters yet, and torch's generator at `seed`: a fit starts here."""
    clear()
    pyro.set_rng_seed(seed)


def state() -> State:
    """The parameters as they are now, copied (what a fit hands on)."""
    current = pyro.get_param_store().get_state()
    return {"params": {name: value.detach().clone().requires_grad_(value.requires_grad)
                       for name, value in current["params"].items()},
            "constraints": dict(current["constraints"])}


def set_state(values: State) -> None:
    pyro.get_param_store().set_state(values)


def constraints() -> dict[str, Any]:
    """Each parameter's constraint, by name (its value is `transform_to(constraint)` of its unconstrained one)."""
    return dict(pyro.get_param_store().get_state()["constraints"])


def named() -> dict[str, torch.Tensor]:
    """Each parameter in unconstrained space, by name."""
    return dict(pyro.get_param_store().named_parameters())


def unconstrained() -> list[torch.Tensor]:
    """The tensors an optimiser moves (each parameter in unconstrained space)."""
    return [value for _, value in pyro.get_param_store().named_parameters()]


def snapshot() -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in pyro.get_param_store().named_parameters()}


def restore(values: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, value in pyro.get_param_store().named_parameters():
            if name in values:
                value.copy_(values[name])


def accumulate(average: dict[str, torch.Tensor], count: int) -> None:
    """Running mean of the unconstrained parameters over the averaging window."""
    with torch.no_grad():
        for name, value in pyro.get_param_store().named_parameters():
            if name not in average:
                average[name] = value.detach().clone()
            else:
                average[name] += (value.detach() - average[name]) / count


def non_finite() -> list[str]:
    """The parameters an update has broken (a NaN or an infinity anywhere in them)."""
    return [name for name, value in pyro.get_param_store().named_parameters() if not torch.isfinite(value).all()]


def normal_factors(compiled: CompiledModel) -> dict[str, tuple[str, str]]:
    """Latent -> the (location, scale) parameter names of its guide factor, for the factors
    that draw through a normal (every one in the normal guide; the native guide's Beta,
    Gamma and Dirichlet factors have none, and the joint guides no factor per latent)."""
    if compiled.guide_family in JOINT_FAMILIES:
        return {}
    return {latent: names[:2] for latent, names in compiled.code.guide_parameters.items()
            if compiled.code.guide_families[latent] not in NATIVE_FAMILIES}


def joint(compiled: CompiledModel) -> dict[str, torch.Tensor]:
    """A joint guide's parameters by role (loc, then scale_tril, or cov_factor and scale),
    constrained, as created so far; empty for the other guides."""
    roles = JOINT_ROLES.get(compiled.guide_family, ())
    return {role: value(f"joint.{role}") for role in roles if exists(f"joint.{role}")}


def constrained() -> dict[str, torch.Tensor]:
    """Each parameter in its constrained space, by name."""
    return dict(pyro.get_param_store().items())


def value(name: str) -> torch.Tensor:
    """A parameter in its constrained space (a scale is positive)."""
    return pyro.param(name)


def exists(name: str) -> bool:
    return name in pyro.get_param_store()


def locations(compiled: CompiledModel) -> dict[str, torch.Tensor]:
    """Latent -> its normal guide factor's location, as created so far."""
    return {latent: value(loc) for latent, (loc, _) in normal_factors(compiled).items() if exists(loc)}


def scales(compiled: CompiledModel) -> dict[str, torch.Tensor]:
    return {latent: value(scale) for latent, (_, scale) in normal_factors(compiled).items() if exists(scale)}


def log_scales(compiled: CompiledModel) -> list[torch.Tensor]:
    """The normal factors' scales in unconstrained space (their logs), as the optimiser moves them."""
    names = {scale for _, scale in normal_factors(compiled).values()}
    return [value for name, value in named().items() if name in names]


def mean_field_curvature(compiled: CompiledModel) -> torch.Tensor:
    """The -ELBO's Hessian diagonal at the mean-field optimum of a Gaussian posterior, in the
    unconstrained parameters' order: 1/scale² for a location (the optimum's scale is the
    conditional sd), 2 for a log-scale and for anything else."""
    fitted = scales(compiled)
    by_location = {loc: fitted[latent] for latent, (loc, _) in normal_factors(compiled).items() if latent in fitted}
    return torch.cat([by_location[name].detach().reshape(-1) ** -2 if name in by_location
                      else torch.full((value.numel(),), 2.0, dtype=torch.float64)
                      for name, value in named().items()])


def coordinates(compiled: CompiledModel) -> int:
    """How many standard normal numbers a draw from the guide takes: the normal factors'
    locations' size; a joint guide's coordinates (and its rank, for the low-rank one)."""
    if found := joint(compiled):
        return found["loc"].numel() + (found["cov_factor"].shape[-1] if "cov_factor" in found else 0)
    return sum(location.numel() for location in locations(compiled).values())
