"""Minibatch deterministic ADVI: L-BFGS in rounds, each holding one batch of rows, the
batch's log-likelihood corrected by a control variate (`control_variates`)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import torch

from compiler.backend.build import CompiledModel
from compiler.errors import PplError
from compiler.inference import control_variates, diagnose, distributed, interrupt, minibatch, params
from compiler.inference.config import RunConfig
from compiler.inference.elbo import default_particles, elbo, too_few_pairs
from compiler.inference.fixed_draws import FixedDraws
from compiler.inference.lbfgs import Progress, guided_sites, last, maximise
from compiler.inference.progress import ProgressBar
from compiler.inference.records import Note, Objective, Run

# Minibatch L-BFGS has converged once a round moves every guide location less than
# this many of its scales (posterior sds), within MAX_ROUNDS rounds. Each round's scales carry the curvature of
# its one batch, so the answer averages the rounds from there on, until they have held
# AVERAGED_ROWS rows between them (linear regression, batches of 40 of 200 rows: sds
# 0.95-1.42 of the full-data fit's from one round).
ROUND_TOLERANCE, MAX_ROUNDS, AVERAGED_ROWS = 0.1, 30, 1_000


def fit_in_rounds(compiled: CompiledModel, objective: Objective, config: RunConfig, seed: int, rate_factor: float,
                  max_steps: int) -> Run:
    """Deterministic ADVI on batches (control_variates.py): each round holds one batch,
    and L-BFGS maximises the ELBO with the batch's log-likelihood corrected by the
    full-data gradient at the round's anchor (the guide's centre when the round
    starts), a smooth function that is exact at the anchor. The first round fits
    the batch alone, scaled up, to bring the anchor near the posterior."""
    batching, data = minibatch.batched(compiled, objective.data, config.batch_size)
    _refuse_unsplit_slices(batching, config.batch_size)
    generator = torch.Generator(device="cpu").manual_seed(seed + distributed.rank())
    batch = batching.sample(data, generator)
    params.fresh(seed)
    diagnose.initialise(compiled, batch, objective.model)
    parameters = params.unconstrained()
    coordinates = params.coordinates(compiled)
    particles = config.particles or default_particles(compiled, data, "lbfgs", coordinates, config.batch_size)
    objective_elbo, draws = elbo(compiled, particles), FixedDraws(guided_sites(compiled), seed)
    control = control_variates.ControlVariate(compiled, objective.model, batching)
    loss = functools.partial(objective_elbo.differentiable_loss, control.batched_model, compiled.guide, batch)
    to_average = math.ceil(AVERAGED_ROWS / config.batch_size)
    # By default the cap is on each round's iterations, as on one fit's over all the rows.
    limit = config.steps or config.max_steps or max_steps * (MAX_ROUNDS + to_average)
    rounds = _Rounds()
    # Rounds end when their average has settled, before any cap: the bar has no total.
    with ProgressBar(config.progress, "iteration", "L-BFGS rounds") as bar:
        try:
            while True:
                before = {name: location.detach().clone() for name, location in params.locations(compiled).items()}
                progress = Progress(limit - rounds.iterations, None,
                                    lambda done, value: bar.show(rounds.iterations + done, None, value))
                maximise(loss, parameters, progress, draws, rate_factor,
                         lambda value, iteration: diagnose.diverged(compiled, Objective(objective.model, batch), value,
                                                                    rounds.iterations + iteration - 1))
                rounds.record(progress, _moved(compiled, before) if rounds.count else math.inf)
                if (rounds.averaged >= to_average or (not rounds.averaged and rounds.count >= MAX_ROUNDS)
                        or rounds.iterations >= limit):
                    break
                batch = batching.sample(data, generator)
                control.move_anchor(data, batch)
                loss = functools.partial(objective_elbo.differentiable_loss, control.step_model, control.step_guide,
                                         batch, control.linearised(batch))
        except interrupt.Interrupted:  # the average so far, else where the interrupted round started
            rounds.interrupted = True
    params.restore(rounds.average)
    converged = rounds.averaged >= to_average or (config.steps is not None and not rounds.interrupted)
    return Run(rounds.elbo, last(rounds.elbo), rounds.iterations, converged, rounds.interrupted,
               [rounds.note(config.batch_size, dict(batching.rows.sizes), to_average)]
               + too_few_pairs(particles, coordinates))


@dataclass
class _Rounds:
    """What minibatch L-BFGS's rounds have done so far (the loop owns it)."""

    count: int = 0
    iterations: int = 0
    moved: float = math.inf  # by the last round, in guide scales
    averaged: int = 0  # rounds averaged since convergence
    average: dict[str, torch.Tensor] = field(default_factory=dict)
    elbo: list[float] = field(default_factory=list)
    interrupted: bool = False

    def record(self, progress: Progress, moved: float) -> None:
        self.count, self.iterations, self.moved = self.count + 1, self.iterations + progress.iterations, moved
        self.elbo += progress.elbo
        if self.averaged or moved < ROUND_TOLERANCE:
            self.averaged += 1
            params.accumulate(self.average, self.averaged)

    def note(self, batch_size: int, sizes: dict[str, int], to_average: int) -> Note:
        return Note("minibatch_lbfgs", {"rounds": self.count, "batch_size": batch_size, "sizes": sizes,
                                        "averaged": self.averaged, "to_average": to_average, "moved": self.moved})


def _refuse_unsplit_slices(batching: minibatch.Batching, batch_size: int) -> None:
    """Every process must take part in the same rounds: refuse where some slice is no longer than a batch."""
    split = torch.tensor(float(bool(batching.rows.sizes)))
    if distributed.mean(split).item() < 1.0:
        raise PplError(f"--batch-size {batch_size:,} is at least as long as some process's slice of the rows, "
                       "so that process has nothing to subsample", hint="use a smaller --batch-size, or fewer "
                       "processes, or --optimizer adam")


def _moved(compiled: CompiledModel, before: dict[str, torch.Tensor]) -> float:
    """How far the normal guide's locations moved from `before`, in its scales."""
    scales = params.scales(compiled)
    with torch.no_grad():
        return max(float(((location - before[name]).abs() / scales[name]).max())
                   for name, location in params.locations(compiled).items())
