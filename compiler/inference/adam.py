"""Stochastic SVI: Adam steps on fresh draws, on the two-phase schedule of `schedule`
(explore until the ELBO is level, then refine with a decaying rate and averaged
iterates); with --batch-size a new batch each step, corrected by a control
variate where one applies."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from pyro.infer import SVI
from pyro.optim import LambdaLR, clipped_adam

from compiler.backend.build import CompiledModel
from compiler.inference import control_variates, diagnose, distributed, interrupt, minibatch, params
from compiler.inference.config import RunConfig
from compiler.inference.elbo import AveragedELBO, default_particles, elbo
from compiler.inference.progress import ProgressBar
from compiler.inference.records import Note, Objective, Run
from compiler.inference.schedule import Schedule, is_level


def maximise(compiled: CompiledModel, data, objective: Objective, config: RunConfig, seed: int,
             rate_factor: float, max_steps: int) -> Run:
    """One run of Adam steps from a fresh initialisation, the learning rate scaled by `rate_factor`."""
    particles = config.particles or default_particles(compiled, data, "adam", batch_size=config.batch_size)
    loss = AveragedELBO(elbo(compiled, particles, config.jit))
    steps = _steps(compiled, objective.model, objective.data, config, particles, seed + distributed.rank())
    params.fresh(seed)
    diagnose.initialise(compiled, steps.sample, objective.model)
    schedule = Schedule(config.lr_decay, config.tolerance, max_steps, config.steps, config.average)
    svi = SVI(steps.model, steps.guide, _optimizer(config.lr * rate_factor, schedule), loss=loss.loss,
              loss_and_grads=loss.loss_and_grads)
    with ProgressBar(config.progress, "step", "Adam", config.steps) as bar, warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # The total is known once refinement starts (or with fixed steps); until then, only the cap is.
        schedule.on_record = lambda step, value: bar.show(
            step + 1, None if schedule.refine_from is None else schedule.total_steps, value)
        interrupted = _optimise(svi, compiled, Objective(objective.model, steps.sample), schedule, steps.arguments)
    converged = schedule.converged if config.steps is None else is_level(schedule.elbo, config.tolerance)
    return Run(schedule.elbo, _final_elbo(schedule.elbo), len(schedule.elbo), converged, interrupted, steps.notes)


@dataclass(frozen=True)
class _Steps:
    """What Adam steps on: the model and guide, a function giving each step's
    arguments, data in memory to initialise and diagnose with (a batch where the
    data stay on disk), and notes for the report."""

    model: Any
    guide: Any
    arguments: Callable[[], tuple]
    sample: Any
    notes: list[Note] = field(default_factory=list)


def _steps(compiled: CompiledModel, model, data, config: RunConfig, particles: int, seed: int) -> _Steps:
    """The data bound for --jit (torch.jit traces tensors only); for --batch-size a
    new batch each step, with a control variate where one applies; else the data."""
    if config.jit:
        return _Steps(functools.partial(model, data), functools.partial(compiled.guide, data), lambda: (), data)
    if config.batch_size is None:
        return _Steps(model, compiled.guide, lambda: (data,), data)
    batching, data = minibatch.batched(compiled, data, config.batch_size)
    if not batching.rows.sizes:  # the fit has said so
        return _Steps(model, compiled.guide, lambda: (data,), data)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    seen = {"batch_size": config.batch_size, "sizes": dict(batching.rows.sizes)}
    sample = batching.sample(data, generator) if minibatch.on_disk(data) else data
    if not control_variates.applies(compiled, batching):
        return _Steps(minibatch.ScaleObservations(batching.scales)(model), compiled.guide,
                      lambda: (batching.sample(data, generator),), sample, [Note("minibatch_svi", seen)])
    control = control_variates.ControlVariate(compiled, model, batching)
    arguments = control_variates.ControlledSteps(control, data, generator, particles)
    return _Steps(control.step_model, control.step_guide, arguments, sample,
                  [Note("minibatch_svi_controlled", {**seen, "anchor_every": arguments.anchor_every})])


def _optimizer(lr: float, schedule: Schedule) -> LambdaLR:
    # ClippedAdam clips gradient norms (robust first steps); the schedule sets its rate.
    return LambdaLR({"optimizer": clipped_adam.ClippedAdam, "optim_args": {"lr": lr},
                     "lr_lambda": schedule.lr_factor})


def _optimise(svi: SVI, compiled: CompiledModel, diagnosed: Objective, schedule: Schedule, step_args) -> bool:
    """The SVI loop; returns whether the user interrupted it (the state of the last
    finished step is kept). A non-finite loss restores the last finite parameters
    and raises `FitError`, naming the site that `diagnosed` (a model and data in
    memory) finds non-finite."""
    average: dict[str, torch.Tensor] = {}
    averaged = 0
    step = 0
    with interrupt.caught():
        while step < schedule.total_steps:  # which grows once the ELBO is level
            if interrupt.requested():
                return True
            last_finite = params.snapshot()
            try:
                loss = svi.step(*step_args())
            except ValueError:  # a distribution refused a non-finite argument, or an underflowed draw
                loss = math.nan
            if not math.isfinite(loss):
                raise diagnose.diverged(compiled, diagnosed, loss, step, last_finite)
            svi.optim.step()  # advance the learning-rate schedule
            schedule.record(step, -loss)
            if schedule.averaging(step):
                averaged += 1
                params.accumulate(average, averaged)
            step += 1
    params.restore(average)
    return False


def _final_elbo(trace: list[float]) -> float:
    if not trace:
        return math.nan
    tail = trace[-max(1, len(trace) // 10):]
    return sum(tail) / len(tail)
