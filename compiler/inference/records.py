"""What the inference phase hands on: immutable records of a fit, its runs, and the
notes the report turns into sentences (`results/notes.py`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Note:
    """Something the report should say about how the fit went: a `kind` from
    results/notes.py's table and the values its sentence quotes."""

    kind: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SampledRows:
    """Importance ratios scored on a sample of the rows (`sampled_rows`)."""

    rows: int  # sampled, with replacement
    out_of: int  # all of them
    error: float  # the root mean square over the draws of each log ratio's standard error


@dataclass(frozen=True)
class Importance:
    """How far the fitted guide q is from the posterior, read from the importance
    ratios p(x, z)/q(z) over draws from q (Yao, Vehtari, Simpson & Gelman 2018)."""

    khat: float | None  # Pareto k̂ of their upper tail; None where the tail is flat
    log_sd: float  # the sd of log p(x, z)/q(z): how much the weights vary at all
    threshold: float = 0.7  # k̂ above it makes the weights unreliable for this many draws
    # How far reweighting moves the approximation: the largest change of a coordinate's mean
    # (in its sds) or of the log of its sd; None where the draws were not kept (the guide's own).
    shift: float | None = None
    draws: int = 0  # behind k̂
    sampled: SampledRows | None = None  # where the ratios scored a sample of the rows; None: every row

    @property
    def khat_error(self) -> float | None:
        """k̂'s standard error, (1 + k) / sqrt(M) for the M = min(S / 5, 3 sqrt(S)) ratios of the
        tail PSIS fits: the generalised Pareto maximum-likelihood estimate's asymptotic sd (Smith 1987)."""
        if self.khat is None or not self.draws:
            return None
        return (1 + self.khat) / math.sqrt(min(self.draws / 5, 3 * math.sqrt(self.draws)))


@dataclass(frozen=True)
class FitResult:
    optimizer: str  # lbfgs | adam
    elbo_trace: tuple[float, ...]
    elbo: float
    steps: int  # Adam steps or L-BFGS iterations
    converged: bool
    draws: dict[str, torch.Tensor]  # site -> (draws, *shape) for latents and lets
    params: dict[str, torch.Tensor]  # the model's point parameters θ
    discrete: dict[str, torch.Tensor]  # enumerated latent -> (*shape, values) probabilities
    guide_state: dict[str, Any]  # the fitted guide's parameters (`params.State`), on the CPU
    seconds: float
    interrupted: bool = False
    notes: tuple[Note, ...] = ()  # how the fit was retried or batched, where it was
    importance: Importance | None = None  # k̂ and the spread of p(x, z)/q(z); None where not computed
    covariance: str | None = None  # the Gaussian the draws come from: "linear-response" | "mean-field"; None: the guide
    resampled: bool = False  # the draws were resampled by their PSIS weights
    gaussian: Any = None  # that Gaussian (`linear_response.Gaussian`: mean, scale_tril, blocks); None: the guide


@dataclass(frozen=True)
class Run:
    """One attempt at the optimum, by whichever optimiser."""

    elbo: list[float]  # per Adam step, or per L-BFGS call of lbfgs.ITERATIONS_PER_CALL iterations
    estimate: float  # the reported ELBO
    steps: int
    converged: bool
    interrupted: bool
    notes: list[Note] = field(default_factory=list)
    fixed_draws: Any = None  # deterministic ADVI's `FixedDraws` (None for Adam): the linear response needs them
    particles: int = 0


@dataclass(frozen=True)
class Objective:
    """What a fit evaluates: the scored model (`CompiledModel.scored`) and its data; in a
    distributed fit, this process's shard of the data, its observations scaled."""

    model: Any
    data: Any
    notes: tuple[Note, ...] = ()
