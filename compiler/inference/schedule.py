"""When to stop SVI, and how the learning rate moves: a two-phase schedule.

Exploration runs at the full learning rate until the ELBO is level: the mean
of the last window of steps differs from the window before by less than the
tolerance (relative, like Stan's tol_rel_obj) or than twice its own Monte Carlo
standard error (so a noisy ELBO does not run forever), twice in a row.
Refinement then decays the rate to `lr_decay * lr` while averaging the iterates
(Polyak-Ruppert), which removes the optimiser's jitter from the answer. With a
fixed step count the whole run is one refinement phase, as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW = 100  # steps per ELBO window compared
CHECKS_IN_A_ROW = 2
MIN_REFINEMENT = 400


@dataclass
class Schedule:
    """Mutable state of one run (the SVI loop owns it; nothing else sees it)."""

    decay: float
    tolerance: float
    max_steps: int
    fixed_steps: int | None
    average_fraction: float
    refine_from: int | None = None
    refine_steps: int = 0
    level_checks: int = 0
    converged: bool = False
    elbo: list[float] = field(default_factory=list)
    on_record: Callable[[int, float], None] | None = None  # told (step, ELBO) after each step

    def __post_init__(self):
        if self.fixed_steps is not None:
            self.refine_from, self.refine_steps = 0, self.fixed_steps

    @property
    def total_steps(self) -> int:
        if self.refine_from is None:
            return self.max_steps
        return self.refine_from + self.refine_steps

    def lr_factor(self, step: int) -> float:
        if self.refine_from is None or step < self.refine_from:
            return 1.0
        return self.decay ** ((step - self.refine_from) / self.refine_steps)

    def averaging(self, step: int) -> bool:
        """Whether this step's iterate joins the average."""
        if self.refine_from is None:
            return False
        if self.fixed_steps is not None:
            return step >= self.fixed_steps * (1 - self.average_fraction)
        return step >= self.refine_from

    def record(self, step: int, elbo: float) -> None:
        """Log one step's ELBO; while exploring, start refinement once the ELBO is level."""
        self.elbo.append(elbo)
        if self.on_record:
            self.on_record(step, elbo)
        if self.refine_from is not None or (step + 1) % (WINDOW // 2):
            return
        self.level_checks = self.level_checks + 1 if is_level(self.elbo, self.tolerance) else 0
        explored_to_the_cap = step + 1 + MIN_REFINEMENT >= self.max_steps
        if self.level_checks >= CHECKS_IN_A_ROW or explored_to_the_cap:
            self.converged = self.level_checks >= CHECKS_IN_A_ROW
            self.refine_from = step + 1
            self.refine_steps = min(max(MIN_REFINEMENT, (step + 1) // 2), self.max_steps - step - 1)


def is_level(elbo: list[float], tolerance: float) -> bool:
    """The last window's mean ELBO is within tolerance (or the noise) of the window before."""
    if len(elbo) < 2 * WINDOW:
        return False
    last, previous = elbo[-WINDOW:], elbo[-2 * WINDOW:-WINDOW]
    mean_last, mean_previous = sum(last) / WINDOW, sum(previous) / WINDOW
    noise = 2 * math.sqrt((_variance(last) + _variance(previous)) / WINDOW)
    return abs(mean_last - mean_previous) <= max(noise, tolerance * abs(mean_last))


def _variance(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)
