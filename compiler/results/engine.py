"""Phase 5 -> 4: every call results make into the inference engine, in one place.

`results` reads the engine through these functions only, so that a renamed or
reshaped engine function is a change to one line here. Torch, Pyro and the
engine load when one of them first runs, never on import (`pplc check` loads
neither).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from compiler.data.values import Data
    from compiler.inference.config import NutsConfig, RunConfig
    from compiler.inference.fit import FitResult
    from compiler.inference.nuts import NutsResult
    from compiler.results.program import CompiledProgram


def run_config(**options: Any) -> RunConfig:
    from compiler.inference.config import RunConfig

    return RunConfig(**options)


def nuts_config(**options: Any) -> NutsConfig:
    from compiler.inference.config import NutsConfig

    return NutsConfig(**options)


def fit(program: CompiledProgram, data: Data, config: RunConfig) -> FitResult:
    from compiler.inference import fit as infer

    return infer.fit(program, data, config)


def sample(program: CompiledProgram, data: Data, config: NutsConfig) -> NutsResult:
    from compiler.inference import nuts

    return nuts.fit_nuts(program, data, config)


def posterior_draws(program: CompiledProgram, data: Data, count: int, seed: int) -> dict[str, torch.Tensor]:
    """Draws from the guide in Pyro's param store (`restore_guide` put it there)."""
    import pyro

    from compiler.inference import fit as infer

    pyro.set_rng_seed(seed)
    return infer.posterior_draws(program, data, count)


def posterior_predictive(program: CompiledProgram, data: Data, count: int, seed: int,
                         guide_state: dict[str, Any]) -> dict[str, torch.Tensor]:
    from compiler.inference import fit as infer

    return infer.predictive_draws(program, data, count, seed, guide_state=guide_state)


def prior_predictive(program: CompiledProgram, data: Data, count: int, seed: int) -> dict[str, torch.Tensor]:
    from compiler.inference import fit as infer

    return infer.predictive_draws(program, data, count, seed, from_posterior=False)


def guide_shapes(program: CompiledProgram, data: Data) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter of the guide (and of the spec's `param`s) for these data."""
    import pyro

    from compiler.inference import fit as infer

    pyro.clear_param_store()
    infer.initialise(program, data)  # every pyro.param, at its initial value and its shape
    return {name: tuple(value.shape) for name, value in pyro.get_param_store().named_parameters()}


def restore_guide(program: CompiledProgram, data: Data, values: dict) -> tuple[dict[str, Any], dict]:
    """Saved unconstrained guide parameters put back into Pyro's param store: the
    store's state, and each parameter's constrained value and its constraint."""
    import pyro

    from compiler.inference import fit as infer

    state = infer.restore_guide(program, data, values)
    return state, {name: (value, state["constraints"][name]) for name, value in pyro.get_param_store().items()}


def use_guide(guide_state: dict[str, Any] | None) -> None:
    """The guide a fit left (its state), or with None a fresh one, in Pyro's param store."""
    import pyro

    if guide_state is None:
        pyro.clear_param_store()
    else:
        pyro.get_param_store().set_state(guide_state)


def hdi(draws: torch.Tensor) -> torch.Tensor:
    """The 94 % highest-density interval over the leading (draws) dim: (..., 2)."""
    from compiler.inference import stats

    return stats.hdi(draws)


def reports_here() -> bool:
    """Whether this process prints a fit: every process of a distributed fit holds the same one."""
    from compiler.inference import distributed

    return distributed.rank() == 0
