"""Phase 5 -> 4: every call results make into the inference engine, in one place.

`results` reads the engine through these functions only, so that a renamed or
reshaped engine function is a change to one line here. Torch, Pyro and the
engine load when one of them first runs, never on import (`pplc check` loads
neither).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from compiler.data.values import Data
    from compiler.inference.config import NutsConfig, RunConfig
    from compiler.inference.nuts import NutsResult
    from compiler.inference.records import FitResult
    from compiler.results.program import CompiledProgram


def run_config(**options: Any) -> RunConfig:
    from compiler.inference.config import RunConfig

    return RunConfig(**options)


def nuts_config(**options: Any) -> NutsConfig:
    from compiler.inference.config import NutsConfig

    return NutsConfig(**options)


def fit(program: CompiledProgram, data: Data, config: RunConfig) -> FitResult:
    from compiler.inference import fit as infer

    return infer.fit(program.compiled, data, config)


def sample(program: CompiledProgram, data: Data, config: NutsConfig) -> NutsResult:
    from compiler.inference import nuts

    return nuts.fit_nuts(program.compiled, data, config)


def redraw(program: CompiledProgram, data: Data, guide_state: dict[str, Any], count: int, seed: int, kind: str | None,
           corrected: tuple[list[float], list[list[float]]] | None, resample: bool,
           weighted_draws: int) -> tuple[dict[str, torch.Tensor], Any]:
    """The draws a saved fit reported, made again from its guide and seed, and the Gaussian
    they came from (`approximation.redraw`):
    `kind` names the Gaussian they came from, `corrected` is the linear-response one's mean
    and the rows of its scale_tril's lower triangle."""
    import torch

    from compiler.inference import approximation, params

    if corrected is not None:
        mean, rows = corrected
        scale_tril = torch.zeros(len(mean), len(mean), dtype=torch.float64)
        for row, values in enumerate(rows):
            scale_tril[row, :row + 1] = torch.as_tensor(values, dtype=torch.float64)
        corrected = torch.as_tensor(mean, dtype=torch.float64), scale_tril
    with params.scope(guide_state):
        return approximation.redraw(program.compiled, data, count, seed, kind, corrected, resample, weighted_draws)


def gaussian_kinds(program: CompiledProgram, data: Data) -> frozenset[str]:
    """The Gaussians a fit of this spec to these data could draw its report from."""
    from compiler.inference import approximation

    return approximation.kinds(program.compiled, data)


def coordinates(program: CompiledProgram, guide_state: dict[str, Any]) -> int:
    """The unconstrained coordinates of the guide's normal factors (a Gaussian's dimension)."""
    from compiler.inference import params

    with params.scope(guide_state):
        return params.coordinates(program.compiled)


def posterior_predictive(program: CompiledProgram, data: Data, latents: dict[str, torch.Tensor], count: int,
                         seed: int, guide_state: dict[str, Any] | None) -> dict[str, torch.Tensor]:
    """Observed sites for `data`, one draw per draw of the latents (`posterior.posterior_predictive`)."""
    from compiler.inference import posterior

    return posterior.posterior_predictive(program.compiled, data, latents, count, seed, guide_state)


def log_likelihood(program: CompiledProgram, data: Data, draws: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from compiler.inference import pointwise

    return pointwise.log_likelihood(program.compiled, data, draws)


def prior_predictive(program: CompiledProgram, data: Data, count: int, seed: int) -> dict[str, torch.Tensor]:
    from compiler.inference import posterior

    return posterior.prior_predictive(program.compiled, data, count, seed)


def guide_shapes(program: CompiledProgram, data: Data) -> dict[str, tuple[int, ...]]:
    """The shape of every parameter of the guide (and of the spec's `param`s) for these data."""
    from compiler.inference import posterior

    return posterior.guide_shapes(program.compiled, data)


def restore_guide(program: CompiledProgram, data: Data, values: dict) -> tuple[dict[str, Any], dict]:
    """Saved unconstrained guide parameters as a guide state: the state, and each
    parameter's constrained value and its constraint."""
    from compiler.inference import params, posterior

    state = posterior.restore_guide(program.compiled, data, values)
    with params.scope(state):
        return state, {name: (value, state["constraints"][name]) for name, value in params.constrained().items()}


def guide_scope(guide_state: dict[str, Any] | None) -> AbstractContextManager:
    """A param store holding the guide a fit left (its state), or with None a fresh one."""
    from compiler.inference import params

    return params.scope(guide_state)


def note_sentences(result: FitResult) -> list[str]:
    """What the engine noted about the fit, in words."""
    from compiler.results import notes

    return [notes.sentence(note) for note in result.notes]


def hdi(draws: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """The 94 % highest-density interval along the draws' dim (the leading one by default): (..., 2)."""
    from compiler.inference import stats

    return stats.hdi(draws, dim=dim)


def reports_here() -> bool:
    """Whether this process prints a fit: every process of a distributed fit holds the same one."""
    from compiler.inference import distributed

    return distributed.rank() == 0
