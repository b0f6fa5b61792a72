"""Phase 4, infer: `Program` + `Data` + `RunConfig` -> `FitResult`.

Maximises the ELBO over vectorised particles, by default with L-BFGS on a
fixed set of draws (`dadvi`), or with stochastic Adam steps on the two-phase
schedule of `convergence` (explore until the ELBO is level, then refine with a
decaying rate and averaged iterates); then draws from the fitted guide and
measures how far it can be trusted (Pareto k̂).
"""

from __future__ import annotations

import functools
import math
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import SVI, JitTrace_ELBO, JitTraceEnum_ELBO, Trace_ELBO, TraceEnum_ELBO
from pyro.optim import LambdaLR, clipped_adam
from pyro.poutine.runtime import _PYRO_STACK
from pyro.poutine.uncondition_messenger import UnconditionMessenger

from compiler.errors import FitError, PplError
from compiler.frontend import ir
from compiler.frontend.analysis import collapsible
from compiler.inference import control_variates, devices, distributed, improper, minibatch, stats
from compiler.inference import lbfgs as dadvi
from compiler.inference.config import MAX_STEPS, RunConfig
from compiler.inference.schedule import Schedule, is_level

DISCRETE_DRAWS = 500  # guide draws behind each reported P(z = k): standard error at most 0.022

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
    guide_state: dict[str, Any]
    seconds: float
    interrupted: bool = False
    notes: tuple[str, ...] = ()  # how the fit was retried or batched, where it was
    importance: Importance | None = None  # k̂ and the spread of p(x, z)/q(z); None where not computed


RETRY_RATE_FACTOR = 0.1
ENUMERATED_STARTS = 4  # mixtures: label switching and merged components make local optima common
START_SEED_STRIDE = 1000  # seeds of the further starts: seed + k * stride


class _Diverged(FitError):
    """A non-finite ELBO during the fit: worth one retry from a fresh start."""


@dataclass(frozen=True)
class _Run:
    elbo: list[float]  # per Adam step, or per L-BFGS call of dadvi.ITERATIONS_PER_CALL iterations
    estimate: float  # the reported ELBO
    steps: int
    converged: bool
    interrupted: bool
    notes: list[str] = field(default_factory=list)


def _check_options(config: RunConfig, subsampled: bool, controlled: bool, guide_family: str) -> None:
    if config.jit and config.optimizer != "adam":
        raise PplError("--jit applies to Adam's steps; L-BFGS's fixed-draw ELBO is not jitted",
                       hint="add --optimizer adam, or drop --jit")
    if subsampled and config.optimizer == "lbfgs" and guide_family == "native":
        raise PplError("minibatch L-BFGS needs the normal guide: it measures each round's progress in the "
                       "normal factors' scales", hint="use --optimizer adam, or drop --guide native")
    if subsampled and not controlled and config.optimizer != "adam":
        raise PplError("--batch-size with L-BFGS needs the control variate, which models with point "
                       "parameters or enumerated latents, or two data plates split at once, do not get",
                       hint="use --optimizer adam")
    if subsampled and config.jit:
        raise PplError("--jit compiles a step with its data fixed, so it cannot take a new batch each step",
                       hint="drop --jit or --batch-size")


def fit(program, data, config: RunConfig) -> FitResult:
    """Fit on `config.device` (see `devices.on_device`); the result holds CPU tensors. Arrays
    in memory-mapped files are read whole unless each step takes a batch of them, or the
    fit needs only their sufficient statistics."""
    _refuse_empty_plates(data, _statements_fitted(program))
    if _nothing_to_fit(program):  # how to fit does not matter: the answer is computed exactly
        config = config.model_copy(update={"batch_size": None, "optimizer": config.optimizer or "lbfgs"})
    batching = minibatch.plan(program, data, config.batch_size) if config.batch_size is not None else None
    subsampled = batching is not None and bool(batching.rows.sizes)
    if not subsampled and not config.distributed and _on_disk(data):
        data = data.in_memory(keep_on_disk=minibatch.summarised_only(program))
    if config.distributed:
        config = config.model_copy(update={"device": distributed.device_of_this_process(config.device)})
    controlled = subsampled and control_variates.applies(program, batching)
    with devices.on_device(config.device):
        data = devices.moved(data, config.device)
        notes = []
        if config.optimizer is None:
            optimizer, why = _default_optimizer(program, data, config, subsampled, controlled)
            config, notes = config.model_copy(update={"optimizer": optimizer}), [why] if why else []
        return _fit(program, data, config, subsampled, controlled, notes)


# Minibatch L-BFGS takes its curvature from one batch a round; with fewer rows than
# this per coordinate a batch can nearly interpolate the data, and on posteriordb's
# models (batches of N/5) the rounds then diverged or stopped far away, where Adam
# steps did not (docs/scaling.md).
ROWS_PER_COORDINATE = 5


def _default_optimizer(program, data, config: RunConfig, subsampled: bool, controlled: bool) -> tuple[str, str | None]:
    """L-BFGS, but Adam for the native guide and for batches L-BFGS cannot take (and why, for the report)."""
    if program.guide_family == "native":
        return "adam", None
    if subsampled and not controlled:
        return "adam", ("Adam steps, not L-BFGS: these batches get no control variate (a model with point "
                        "parameters or enumerated latents, or two data plates split at once)")
    coordinates = _guide_coordinates(program, data) if subsampled else 0
    if config.batch_size is not None and config.batch_size < ROWS_PER_COORDINATE * coordinates:
        return "adam", (f"Adam steps, not L-BFGS: batches of {config.batch_size:,} rows have fewer than "
                        f"{ROWS_PER_COORDINATE} per guide coordinate ({coordinates})")
    return "lbfgs", None


def _guide_coordinates(program, data) -> int:
    """The normal guide's coordinates, counted on a trace of it (its parameters are
    created afresh by every fit)."""
    pyro.clear_param_store()
    with torch.no_grad():
        poutine.trace(program.guide).get_trace(data)
    return _coordinates(program)


def _fit(program, data, config: RunConfig, subsampled: bool, controlled: bool, notes: list[str]) -> FitResult:
    """`subsampled`: --batch-size leaves fewer rows than some data plate has; `controlled`:
    and its batches can be corrected by a control variate; `notes`: for the report."""
    started = time.perf_counter()
    _check_options(config, subsampled, controlled, program.guide_family)
    objective = _objective(program, data, config)
    notes = list(objective.notes) + notes
    if config.batch_size is not None and not subsampled:
        notes.append(f"--batch-size {config.batch_size}: nothing to subsample (every observation scored one by one "
                     "has at most that many rows, or is scored from sufficient statistics of all of them)")
    try:
        run = _attempt(program, data, objective, config, subsampled, config.seed, 1.0)
    except _Diverged as first:
        _refuse_improper(program, objective, config, subsampled)  # no step size mends a posterior that is not there
        # One retry from a fresh initialisation with steps a tenth as long, before giving up.
        what = ("L-BFGS steps scaled by" if config.optimizer == "lbfgs" else "Adam learning rate")
        rate = RETRY_RATE_FACTOR if config.optimizer == "lbfgs" else config.lr * RETRY_RATE_FACTOR
        notes.append(f"the first attempt failed ({first.message}); this fit is a retry from a fresh "
                     f"initialisation with {what} {rate:g}")
        try:
            run = _attempt(program, data, objective, config, subsampled, config.seed + 1, RETRY_RATE_FACTOR)
        except _Diverged as second:
            second.message += f"; a retry from a fresh initialisation with {what} {rate:g} failed too"
            raise second from None
    if not run.interrupted:
        notes += _refuse_improper(program, objective, config, subsampled)
    state = devices.on_cpu(pyro.get_param_store().get_state())
    draws = {name: value.cpu() for name, value in posterior_draws(program, data, config.draws).items()}
    lets_drawn = any(not s.transformed_data for s in program.ir.lets)
    empty = _empty_plate(data, _statements_of_model(program))
    if _read_by_row_on_disk(program, data):
        notes.append("the data stay on disk: lets and Pareto k̂ are left out (they need every row at once)")
    elif _on_disk(data) and lets_drawn:
        notes.append("the data stay on disk: lets are left out (they need every row at once)")
    elif lets_drawn and empty:
        notes.append(f"lets are left out: they are drawn by replaying the model, which cannot run with "
                     f"{empty[1].size} = 0 (Pyro's plates need at least one element)")
    params = {p.name: pyro.param(p.name).detach().cpu().clone() for p in program.ir.params}
    discrete = {name: value.cpu() for name, value in
                (discrete_posterior(program, data.in_memory() if _on_disk(data) else data, DISCRETE_DRAWS)
                 if config.discrete else {}).items()}
    checked = None if _read_by_row_on_disk(program, data) else importance(program, data, objective)
    return FitResult(config.optimizer, tuple(run.elbo), run.estimate, run.steps,
                     run.converged and not run.interrupted, draws, params, discrete, state,
                     time.perf_counter() - started, run.interrupted, tuple(run.notes + notes), checked)


def _attempt(program, data, objective: Objective, config: RunConfig, subsampled: bool, seed: int,
             rate_factor: float) -> _Run:
    """One fit from fresh initialisations, its steps scaled by `rate_factor`."""
    if _nothing_to_fit(program):
        return _log_evidence(program, objective, seed)
    max_steps = config.max_steps or MAX_STEPS[config.optimizer]
    with warnings.catch_warnings(), _handlers_kept():
        # A non-finite loss is caught and reported with its site; Pyro's own warning would only repeat it.
        warnings.filterwarnings("ignore", message="Encountered NaN")
        if config.optimizer == "adam":
            return _adam(program, data, objective, config, seed, rate_factor, max_steps)
        if subsampled:
            return _lbfgs_in_rounds(program, objective, config, seed, rate_factor, max_steps)
        return _lbfgs(program, data, objective, config, seed, rate_factor, max_steps)


def _nothing_to_fit(program) -> bool:
    """No params and no guide factors: the guide is empty, every latent enumerated out."""
    return not program.ir.params and not program.ir.guided_latents


def _log_evidence(program, objective: Objective, seed: int) -> _Run:
    """Nothing to fit: with an empty guide the ELBO is log p(x) itself (enumerated
    latents summed out), computed once, exactly."""
    _fresh_start(program, objective.data, seed, objective.model)
    loss = _elbo(program, particles=1).loss(objective.model, program.guide, objective.data)
    value = -distributed.mean(torch.as_tensor(loss)).item()
    if not math.isfinite(value):
        site = _nonfinite_site(program, objective)
        raise FitError(f"log p(x) is {value}" + (f" at site '{site}'" if site else ""),
                       program.ir.site_spans.get(site) if site else None,
                       "check the data against the distributions' arguments and supports")
    latents = ", and its only latents are enumerated (summed out exactly)" if program.ir.latents else " and no latents"
    return _Run([value], value, 0, True, False,
                [f"nothing to fit: the spec has no params{latents}, so the ELBO is log p(x) itself"])


def _refuse_improper(program, objective: Objective, config: RunConfig, subsampled: bool) -> list[str]:
    """A FitError where the posterior is flat along some improper latents (improper.py);
    a note for the report where there are too many of them to check. Batched fits are
    not checked: one batch may leave free what all the rows pin down."""
    latents = improper.improper_latents(program)
    if subsampled or not latents:
        return []
    if (count := improper.coordinates(latents)) > improper.MAX_COORDINATES:
        return [f"{count:,} coordinates have improper priors, more than the {improper.MAX_COORDINATES} whose "
                "curvature pplc checks, so an improper posterior would go unnoticed (docs/inference.md)"]
    improper.refuse(program, curvature(program, objective, config.seed))
    return []


def curvature(program, objective: Objective, seed: int, latents: list | None = None) -> improper.Curvature | None:
    """`improper.measure` of the guide in Pyro's param store: over `latents`, by default the
    improper ones; as many Hessian rows at once as the fit evaluates particles, for the
    same memory."""
    elbo = _elbo(program, particles=1)
    at_once = default_particles(program, objective.data, "lbfgs", _coordinates(program))
    return improper.measure(program, lambda: elbo.differentiable_loss(objective.model, program.guide, objective.data),
                            seed, latents, at_once)


def _statements_fitted(program) -> list:
    """The statements whose plates the fit's models declare: every latent, and every
    observation not scored from sufficient statistics."""
    return [s for s in program.ir.statements
            if isinstance(s, ir.Latent) or (isinstance(s, ir.Observe) and not collapsible(s))]


def _statements_of_model(program) -> list:
    """The statements whose plates `model` declares (replayed for lets, run for predictions)."""
    return [s for s in program.ir.statements if isinstance(s, (ir.Latent, ir.Observe))]


def _empty_plate(data, statements) -> tuple[Any, ir.Plate] | None:
    """A statement over a plate of size 0, and the plate: Pyro's plates refuse that
    size (they scale by full size / batch size), so the statement cannot be evaluated."""
    return next(((statement, plate) for statement in statements for plate in statement.plates
                 if int(data[plate.size] if isinstance(plate.size, str) else plate.size) == 0), None)


def _refuse_empty_plates(data, statements) -> None:
    """Observations scored from sufficient statistics need no plate, and with no rows add
    nothing; a statement that needs an empty plate is a fitting error."""
    if found := _empty_plate(data, statements):
        statement, plate = found
        raise FitError(f"'{statement.name}' ranges over {plate.size} = 0 elements, and Pyro's plates need at "
                       "least one; only an observe statement whose arguments are the same for every element "
                       "(scored from sufficient statistics) can have none",
                       statement.span, f"give {plate.size} at least one element, or leave the statement out")


@contextmanager
def _handlers_kept() -> Iterator[None]:
    """Pyro's stack of effect handlers as it was: a Ctrl-C that lands while a handler
    is entering or leaving can leave it there, and every later trace would then
    record its sites twice ("Multiple sample sites named 'f'", seen once in CI)."""
    depth = len(_PYRO_STACK)
    try:
        yield
    finally:
        del _PYRO_STACK[depth:]


def _fresh_start(program, data, seed: int, model=None) -> None:
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    initialise(program, data, model)


@dataclass(frozen=True)
class Objective:
    """What a fit evaluates: the scored model (`Program.scored`) and its data; in a
    distributed fit, this process's shard of the data, its observations scaled."""

    model: Any
    data: Any
    notes: tuple[str, ...] = ()


def _on_disk(data) -> bool:
    return bool(getattr(data, "on_disk", ()))


def _read_by_row_on_disk(program, data) -> bool:
    """Whether arrays on disk are read row by row (not only for their sufficient statistics)."""
    return bool(getattr(data, "on_disk", frozenset()) - minibatch.summarised_only(program))


def _objective(program, data, config: RunConfig) -> Objective:
    model, scored = program.compiled.scored(data)  # statistics of arrays on disk are read a chunk at a time
    if not config.distributed:
        return Objective(model, scored)
    distributed.start(config.device)
    sharded, scales = minibatch.shard(program, scored, distributed.rank(), distributed.world())
    return Objective(minibatch.ScaleObservations(scales)(model), sharded,
                     (f"distributed over {distributed.world()} processes, each holding a slice of every data plate",))


def _adam(program, data, objective: Objective, config: RunConfig, seed: int, rate_factor: float,
          max_steps: int) -> _Run:
    particles = config.particles or default_particles(program, data, "adam", batch_size=config.batch_size)
    elbo = _elbo(program, particles, config.jit)
    steps = _steps(program, objective.model, objective.data, config, particles, seed + distributed.rank())
    _fresh_start(program, steps.sample, seed, objective.model)
    schedule = Schedule(config.lr_decay, config.tolerance, max_steps, config.steps, config.average)
    svi = SVI(steps.model, steps.guide, _optimizer(config.lr * rate_factor, schedule), elbo)
    svi.loss_and_grads = _averaged(elbo.loss_and_grads)  # SVI ignores a loss_and_grads argument beside an ELBO
    with _ProgressBar(config.progress, "step") as bar, warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        schedule.on_record = lambda step, value: bar.show(step + 1, schedule.total_steps, value)
        interrupted = _optimise(svi, program, Objective(objective.model, steps.sample), schedule, steps.arguments)
    converged = schedule.converged if config.steps is None else is_level(schedule.elbo, config.tolerance)
    return _Run(schedule.elbo, _final_elbo(schedule.elbo), len(schedule.elbo), converged, interrupted,
                steps.notes)


@dataclass(frozen=True)
class _Steps:
    """What Adam steps on: the model and guide, a function giving each step's
    arguments, data in memory to initialise and diagnose with (a batch where the
    data stay on disk), and notes for the report."""

    model: Any
    guide: Any
    arguments: Callable[[], tuple]
    sample: Any
    notes: list[str] = field(default_factory=list)


def _steps(program, model, data, config: RunConfig, particles: int, seed: int) -> _Steps:
    """The data bound for --jit (torch.jit traces tensors only); for --batch-size a
    new batch each step, with a control variate where one applies; else the data."""
    if config.jit:
        return _Steps(functools.partial(model, data), functools.partial(program.guide, data), lambda: (), data)
    if config.batch_size is None:
        return _Steps(model, program.guide, lambda: (data,), data)
    batching, data = _batched(program, data, config.batch_size)
    if not batching.rows.sizes:  # _fit has said so
        return _Steps(model, program.guide, lambda: (data,), data)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    note = f"minibatch SVI: each step saw {config.batch_size:,} random rows of {_split_sizes(batching)}"
    sample = batching.sample(data, generator) if _on_disk(data) else data
    if not control_variates.applies(program, batching):
        return _Steps(minibatch.ScaleObservations(batching.scales)(model), program.guide,
                      lambda: (batching.sample(data, generator),), sample, [note])
    control = control_variates.ControlVariate(program, model, batching)
    arguments = control_variates.ControlledSteps(control, data, generator, particles)
    return _Steps(control.step_model, control.step_guide, arguments, sample,
                  [f"{note}, corrected by a control variate anchored on all of them every "
                   f"{arguments.anchor_every:,} steps"])


def _batched(program, data, batch_size: int) -> tuple[minibatch.Batching, Any]:
    """What each step or round subsamples, and the data with every array read into
    memory but those split into batches; arrays only summarised are left out."""
    batching = minibatch.plan(program, data, batch_size)
    if _on_disk(data):
        # The model scores these from their statistics; left in, every batch would carry them whole.
        summarised = minibatch.summarised_only(program)
        data = data.with_values({name: value for name, value in data.items() if name not in summarised})
        data = data.in_memory(keep_on_disk=frozenset(batching.rows.arrays))
    return batching, data


def _split_sizes(batching: minibatch.Batching) -> str:
    return ", ".join(f"{size} = {length:,}" for size, length in batching.rows.sizes.items())


def _averaged(loss_and_grads):
    """SVI's loss and gradients, averaged over the processes of a distributed fit."""

    def averaged(model, guide, *args, **kwargs) -> float:
        loss = loss_and_grads(model, guide, *args, **kwargs)
        distributed.average_gradients(value for _, value in pyro.get_param_store().named_parameters())
        return distributed.mean(torch.as_tensor(loss)).item()

    return averaged


def _lbfgs(program, data, objective: Objective, config: RunConfig, seed: int, rate_factor: float,
           max_steps: int) -> _Run:
    """Deterministic ADVI from each start; the start with the best ELBO is kept."""
    starts = config.starts or (ENUMERATED_STARTS if any(s.enumerated for s in program.ir.latents) else 1)
    best: tuple[_Run, dict] | None = None
    for start in range(starts):
        _fresh_start(program, objective.data, seed + start * START_SEED_STRIDE, objective.model)
        parameters = [value for _, value in pyro.get_param_store().named_parameters()]
        coordinates = _coordinates(program)
        particles = config.particles or default_particles(program, data, "lbfgs", coordinates)
        elbo = _elbo(program, particles)
        bar = _ProgressBar(config.progress, "iteration")
        total = config.steps or max_steps
        progress = dadvi.Progress(max_steps, config.steps, lambda done, value: bar.show(done, total, value))
        try:
            with bar:
                dadvi.maximise(lambda: elbo.differentiable_loss(objective.model, program.guide, objective.data),
                               parameters,
                               progress, dadvi.FixedDraws(seed), rate_factor,
                               lambda loss, iteration: _diverged(program, objective, loss, iteration - 1))
        except KeyboardInterrupt:  # maximise has put back the last finite state
            return _Run(progress.elbo, _last(progress.elbo), progress.iterations, False, True)
        run = _Run(progress.elbo, _last(progress.elbo), progress.iterations,
                   progress.converged or config.steps is not None, False, _too_few_pairs(particles, coordinates))
        if best is None or run.estimate > best[0].estimate:
            best = run, pyro.get_param_store().get_state()
    pyro.get_param_store().set_state(best[1])
    return best[0]


# Minibatch L-BFGS has converged once a round moves every guide location less than
# this many of its scales (posterior sds), within MAX_ROUNDS rounds. Each round's scales carry the curvature of
# its one batch, so the answer averages the rounds from there on, until they have held
# AVERAGED_ROWS rows between them (linear regression, batches of 40 of 200 rows: sds
# 0.95-1.42 of the full-data fit's from one round).
ROUND_TOLERANCE, MAX_ROUNDS, AVERAGED_ROWS = 0.1, 30, 1_000


def _lbfgs_in_rounds(program, objective: Objective, config: RunConfig, seed: int, rate_factor: float,
                     max_steps: int) -> _Run:
    """Deterministic ADVI on batches (control_variates.py): each round holds one batch,
    and L-BFGS maximises the ELBO with the batch's log-likelihood corrected by the
    full-data gradient at the round's anchor (the guide's centre when the round
    starts), a smooth function that is exact at the anchor. The first round fits
    the batch alone, scaled up, to bring the anchor near the posterior."""
    batching, data = _batched(program, objective.data, config.batch_size)
    _refuse_unsplit_slices(batching, config.batch_size)
    generator = torch.Generator(device="cpu").manual_seed(seed + distributed.rank())
    batch = batching.sample(data, generator)
    _fresh_start(program, batch, seed, objective.model)
    parameters = [value for _, value in pyro.get_param_store().named_parameters()]
    coordinates = _coordinates(program)
    particles = config.particles or default_particles(program, data, "lbfgs", coordinates, config.batch_size)
    elbo, draws = _elbo(program, particles), dadvi.FixedDraws(seed)
    control = control_variates.ControlVariate(program, objective.model, batching)
    loss = functools.partial(elbo.differentiable_loss, control.batched_model, program.guide, batch)
    to_average = math.ceil(AVERAGED_ROWS / config.batch_size)
    # By default the cap is on each round's iterations, as on one fit's over all the rows.
    limit = config.steps or config.max_steps or max_steps * (MAX_ROUNDS + to_average)
    rounds = _Rounds()
    with _ProgressBar(config.progress, "iteration") as bar:
        try:
            while True:
                before = _guide_locations(program)
                progress = dadvi.Progress(limit - rounds.iterations, None,
                                          lambda done, value: bar.show(rounds.iterations + done, limit, value))
                dadvi.maximise(loss, parameters, progress, draws, rate_factor,
                               lambda value, iteration: _diverged(program, Objective(objective.model, batch), value,
                                                                  rounds.iterations + iteration - 1))
                rounds.record(progress, _moved(program, before) if rounds.count else math.inf)
                if (rounds.averaged >= to_average or (not rounds.averaged and rounds.count >= MAX_ROUNDS)
                        or rounds.iterations >= limit):
                    break
                batch = batching.sample(data, generator)
                control.move_anchor(data, batch)
                loss = functools.partial(elbo.differentiable_loss, control.step_model, control.step_guide, batch,
                                         control.linearised(batch))
        except KeyboardInterrupt:  # the average so far, else where the interrupted round started
            rounds.interrupted = True
    _restore(rounds.average)
    converged = rounds.averaged >= to_average or (config.steps is not None and not rounds.interrupted)
    return _Run(rounds.elbo, _last(rounds.elbo), rounds.iterations, converged, rounds.interrupted,
                [rounds.note(config.batch_size, _split_sizes(batching), to_average)]
                + _too_few_pairs(particles, coordinates))


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

    def record(self, progress: dadvi.Progress, moved: float) -> None:
        self.count, self.iterations, self.moved = self.count + 1, self.iterations + progress.iterations, moved
        self.elbo += progress.elbo
        if self.averaged or moved < ROUND_TOLERANCE:
            self.averaged += 1
            _accumulate(self.average, self.averaged)

    def note(self, batch_size: int, sizes: str, to_average: int) -> str:
        held = f"minibatch VI: L-BFGS in {self.count} rounds, each holding {batch_size:,} random rows of {sizes}"
        if self.count <= 1:
            return f"{held}, scaled up: the fit stopped before a round corrected by the full-data gradient"
        ending = (f"the answer averages the last {self.averaged}" if self.averaged >= to_average else
                  f"the answer averages the last {self.averaged} of the {to_average} it should" if self.averaged else
                  f"the last round still moved the guide {self.moved:.2g} posterior sds")
        return f"{held}, corrected by a control variate (the full-data gradient at its anchor); {ending}"


def _refuse_unsplit_slices(batching: minibatch.Batching, batch_size: int) -> None:
    """Every process must take part in the same rounds: refuse where some slice is no longer than a batch."""
    split = torch.tensor(float(bool(batching.rows.sizes)))
    if distributed.mean(split).item() < 1.0:
        raise PplError(f"--batch-size {batch_size:,} is at least as long as some process's slice of the rows, "
                       "so that process has nothing to subsample", hint="use a smaller --batch-size, or fewer "
                       "processes, or --optimizer adam")


def _guide_locations(program) -> dict[str, torch.Tensor]:
    store = pyro.get_param_store()
    return {latent.name: store[f"{latent.name}.loc"].detach().clone() for latent in program.ir.guided_latents}


def _moved(program, before: dict[str, torch.Tensor]) -> float:
    """How far the normal guide's locations moved from `before`, in its scales."""
    store = pyro.get_param_store()
    with torch.no_grad():
        return max(float(((store[f"{name}.loc"] - location).abs() / store[f"{name}.scale"]).max())
                   for name, location in before.items())


class _ProgressBar:
    """tqdm on stderr: steps done of at most how many, the ELBO, steps/s and the
    time left at most; nothing unless asked for."""

    REFRESH_SECONDS = 0.2

    def __init__(self, shown: bool, unit: str):
        self.shown, self.unit = shown, unit
        self.bar = None
        self.last = 0.0

    def __enter__(self) -> _ProgressBar:
        if self.shown:
            from tqdm import tqdm

            self.bar = tqdm(unit=self.unit, leave=False, file=sys.stderr, dynamic_ncols=True, desc="fitting")
        return self

    def show(self, done: int, total: int, elbo: float) -> None:
        now = time.perf_counter()
        if self.bar is None or now - self.last < self.REFRESH_SECONDS:
            return
        self.last = now
        self.bar.total = total
        self.bar.n = done
        self.bar.set_postfix_str(f"ELBO {elbo:.6g}", refresh=False)
        self.bar.refresh()

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _last(elbo: list[float]) -> float:
    return elbo[-1] if elbo else math.nan


# Vectorised particles cut the gradient noise that one-particle SVI leaves in the
# fit (measured on the coin: mean errors of up to 2.5 % with one, under 0.4 % with
# 16). Their cost grows with the observations scored one by one (statements scored
# from sufficient statistics count once), so large data gets fewer: 4 still held the
# million-flip coin's sd within 0.1 % (scored flip by flip, before the fast path),
# where one particle missed it by 6.6 %. L-BFGS's fixed antithetic draws get the
# means of a Gaussian posterior exactly with any even number, and its scales once
# there is a pair per coordinate to whiten (dadvi.py); 32 (16 pairs) at least, for
# the non-Gaussian ones. L-BFGS keeps each evaluation's graph for its gradient, so it
# affords half Adam's terms: for the million flips scored one by one, one antithetic
# pair fitted as well as two (sd +1.57 % both) at a peak of 756 MiB instead of 1,061 MiB
# (ru_maxrss of processes the bench started, inflated alike by the parent's size).
# But with fewer pairs than coordinates the scales are biased where coordinates
# correlate: logistic regression at N = 10^6 (3 coordinates) came out with sds 12 %
# and 24 % too small from one pair, exact from three (bench/scaling.py); so L-BFGS
# keeps a pair per coordinate while that costs at most WHITENING_TERMS (three pairs
# at 10^6 rows: 13 s instead of 6 s, 502 MiB peak), and says so where it cannot.
PARTICLES, MIN_PARTICLES = {"adam": 16, "lbfgs": 32}, {"adam": 4, "lbfgs": 2}
TERMS_PER_EVALUATION = {"adam": 4_000_000, "lbfgs": 2_000_000}
MAX_LBFGS_PARTICLES, TERMS_PER_STEP = 256, TERMS_PER_EVALUATION["adam"]
WHITENING_TERMS = 4 * TERMS_PER_EVALUATION["lbfgs"]


def default_particles(program, data, optimizer: str = "lbfgs", coordinates: int = 0,
                      batch_size: int | None = None) -> int:
    wanted = max(PARTICLES[optimizer], min(MAX_LBFGS_PARTICLES, 2 * coordinates + 2))
    terms = max(_observed_terms(program, data, batch_size), 1)
    particles = max(MIN_PARTICLES[optimizer], min(wanted, TERMS_PER_EVALUATION[optimizer] // terms))
    if optimizer == "lbfgs" and 2 * coordinates * terms <= WHITENING_TERMS:
        particles = max(particles, 2 * coordinates)
    return particles // 2 * 2


def _too_few_pairs(particles: int, coordinates: int) -> list[str]:
    if coordinates < 2 or particles >= 2 * coordinates:
        return []
    return [f"L-BFGS drew {particles // 2} antithetic pairs for {coordinates} coordinates, too few to "
            "decorrelate them, so the sds of correlated coordinates may come out too small; --batch-size "
            "fits data this large without that bias (docs/scaling.md)"]


def _coordinates(program) -> int:
    """How many numbers the normal guide factors draw (their locations' size)."""
    store = pyro.get_param_store()
    return sum(store[f"{latent.name}.loc"].numel() for latent in program.ir.guided_latents
               if f"{latent.name}.loc" in store)


def _observed_terms(program, data, batch_size: int | None = None) -> int:
    """Log-density terms per particle an evaluation computes: one per observation (per
    row of a batch, with `batch_size`), one per statement scored from sufficient
    statistics."""
    terms = 0
    for observe in program.ir.observed:
        if collapsible(observe):
            terms += 1
            continue
        shape = np.shape(data[observe.name])
        rows = min(shape[0], batch_size) if shape and batch_size else (shape[0] if shape else 1)
        terms += math.prod(shape[1:]) * rows
    return terms


def _optimizer(lr: float, schedule: Schedule) -> LambdaLR:
    # ClippedAdam clips gradient norms (robust first steps); the schedule sets its rate.
    return LambdaLR({"optimizer": clipped_adam.ClippedAdam, "optim_args": {"lr": lr},
                     "lr_lambda": schedule.lr_factor})


def _elbo(program, particles: int, jit: bool = False):
    enumerated = any(latent.enumerated for latent in program.ir.latents)
    kind = {(False, False): Trace_ELBO, (True, False): TraceEnum_ELBO,
            (False, True): JitTrace_ELBO, (True, True): JitTraceEnum_ELBO}[(enumerated, jit)]
    return kind(max_plate_nesting=program.ir.max_plate_nesting, num_particles=particles, vectorize_particles=True)


def _optimise(svi: SVI, program, diagnosed: Objective, schedule: Schedule, step_args) -> bool:
    """The SVI loop; returns whether the user interrupted it. A non-finite loss
    restores the last finite parameters and raises `FitError`, naming the site
    that `diagnosed` (a model and data in memory) finds non-finite."""
    average: dict[str, torch.Tensor] = {}
    averaged = 0
    step = 0
    last_finite = _snapshot()
    try:
        while step < schedule.total_steps:
            last_finite = _snapshot()
            try:
                loss = svi.step(*step_args())
            except ValueError:  # a distribution refused a non-finite argument, or an underflowed draw
                loss = math.nan
            if not math.isfinite(loss):
                raise _diverged(program, diagnosed, loss, step, last_finite)
            svi.optim.step()  # advance the learning-rate schedule
            schedule.record(step, -loss)
            if schedule.averaging(step):
                averaged += 1
                _accumulate(average, averaged)
            step += 1
    except KeyboardInterrupt:  # wherever in the step it lands, the state before the step is kept
        _restore(last_finite)
        return True
    _restore(average)
    return False


def initialise(program, data, model=None) -> None:
    """Run the guide and the model (by default `program.model`) once, creating every
    pyro.param at its initial value so that even a first step that fails has a finite
    state to return to. A distribution that rejects its arguments or its data fails
    here, reported at its statement."""
    handlers = [poutine.trace(program.guide)]
    try:
        with torch.no_grad():
            guide_trace = handlers[0].get_trace(data)
            handlers.append(poutine.trace(poutine.replay(model or program.model, guide_trace)))
            handlers[1].get_trace(data).compute_log_prob()
    except (ValueError, RuntimeError, IndexError) as error:
        in_guide = len(handlers) == 1
        raise _rejected(program, error, handlers[-1].msngr.trace.nodes, in_guide) from None


def _rejected(program, error: Exception, reached, in_guide: bool) -> FitError:
    """Name the statement whose distribution refused: the one named in Pyro's
    message, else the first whose site the run did not reach."""
    model_ir = program.ir
    order = model_ir.guided_latents if in_guide else [
        s for s in model_ir.statements if not getattr(s, "transformed_data", False)]
    site = _site_in_message(program, str(error)) or next((s.name for s in order if s.name not in reached), None)
    where = f"'{site}'" if site else "the model"
    return FitError(f"{where} cannot be evaluated at the initial values: {_plain(error.__cause__ or error)}",
                    model_ir.site_spans.get(site) if site else None,
                    "check the arguments against what each distribution accepts (a scale > 0, "
                    "probabilities in [0, 1]); where they come from data, check the data")


_PARAMETER_REFUSED = re.compile(r"Expected parameter (\w+) .*? of distribution (\w+)\(.*?to satisfy the "
                                r"constraint (.+?), but found invalid values:\s*(.*)", re.S)
_VALUE_REFUSED = re.compile(r"Expected value argument .*? to be within the support \((.+?)\) of the "
                            r"distribution (\w+)", re.S)


def _plain(error: Exception) -> str:
    """Pyro's validation message in one line."""
    text = str(error)
    if match := _PARAMETER_REFUSED.search(text):
        name, family, constraint, found = match.groups()
        return f"the {name} of {family} must satisfy {constraint}, found {' '.join(found.split())[:60]}"
    if match := _VALUE_REFUSED.search(text):
        support, family = match.groups()
        return f"a value lies outside the support of {family} ({support})"
    return text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__


def _snapshot() -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in pyro.get_param_store().named_parameters()}


def _diverged(program, objective: Objective, loss: float, step: int,
              last_finite: dict[str, torch.Tensor] | None = None) -> _Diverged:
    """Put back the last finite state (where given), then name the site whose log-density
    is not finite there (the failing loss was computed at it), or whose guide parameters
    the failed update broke."""
    broken = [name for name, value in pyro.get_param_store().named_parameters() if not torch.isfinite(value).all()]
    if last_finite is not None:
        _restore(last_finite)
    site = _nonfinite_site(program, objective) or (broken[0].split(".")[0] if broken else None)
    where = f" at site '{site}'" if site else ""
    return _Diverged(f"the ELBO became {loss} at step {step + 1}{where}",
                    program.ir.site_spans.get(site) if site else None,
                    "try a smaller --lr, or check the priors and the scale of the data; "
                    "the parameters of the last finite step are kept")


def _nonfinite_site(program, objective: Objective) -> str | None:
    try:
        with torch.no_grad():
            guide_trace = poutine.trace(program.guide).get_trace(objective.data)
            model_trace = poutine.trace(poutine.replay(objective.model, guide_trace)).get_trace(objective.data)
            for trace in (model_trace, guide_trace):
                trace.compute_log_prob()
                for name, site in trace.nodes.items():
                    if "log_prob" in site and not torch.isfinite(site["log_prob"]).all():
                        return name
    except (ValueError, RuntimeError) as error:  # a distribution rejected a non-finite argument
        return _site_in_message(program, str(error))
    return None


def _site_in_message(program, message: str) -> str | None:
    return next((name for name in program.ir.site_spans if f"'{name}'" in message), None)


def _accumulate(average: dict[str, torch.Tensor], count: int) -> None:
    """Running mean of the unconstrained parameters over the averaging window."""
    with torch.no_grad():
        for name, value in pyro.get_param_store().named_parameters():
            if name not in average:
                average[name] = value.detach().clone()
            else:
                average[name] += (value.detach() - average[name]) / count


def _restore(values: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, value in pyro.get_param_store().named_parameters():
            if name in values:
                value.copy_(values[name])


def _final_elbo(trace: list[float]) -> float:
    if not trace:
        return math.nan
    tail = trace[-max(1, len(trace) // 10):]
    return sum(tail) / len(tail)


def posterior_draws(program, data, count: int) -> dict[str, torch.Tensor]:
    """Draws of every guided latent (from the guide) and every let (the model
    replayed on them), vectorised under one plate left of the model's plates."""
    model_ir = program.ir
    lets = [s for s in model_ir.lets if not s.transformed_data and not _on_disk(data)]
    if lets and _empty_plate(data, _statements_of_model(program)):
        lets = []  # `model` cannot run: _fit has said so
    with torch.no_grad(), pyro.plate("_draws", count, dim=-(model_ir.max_plate_nesting + 1)):
        trace = poutine.trace(program.guide).get_trace(data)
        if lets:
            trace = poutine.trace(poutine.replay(program.model, trace)).get_trace(data)
    return {s.name: _own_dims(trace.nodes[s.name]["value"], count, len(s.shape))
            for s in (*model_ir.guided_latents, *lets)}


def _own_dims(value: torch.Tensor, count: int, rank: int) -> torch.Tensor:
    """(draws, *shape): drop the unit dims Pyro pads between the draws plate and the site."""
    return value.reshape((count,) + tuple(value.shape[value.dim() - rank:]))


# Importance ratios behind k̂: PSIS fits the largest 3 sqrt(S) of them, 189 of 4,000.
# Large data scored one by one get fewer (at least 200), so that k̂ never costs more
# than about 50 steps' worth of log-densities.
PSIS_DRAWS, PSIS_MIN_DRAWS, PSIS_TERMS = 4000, 200, 50 * TERMS_PER_STEP


@dataclass(frozen=True)
class Importance:
    """How far the fitted guide q is from the posterior, read from the importance
    ratios p(x, z)/q(z) over draws from q (Yao, Vehtari, Simpson & Gelman 2018)."""

    khat: float | None  # Pareto k̂ of their upper tail; None where the tail is flat
    log_sd: float  # the sd of log p(x, z)/q(z): how much the weights vary at all


def importance(program, data, objective: Objective | None = None) -> Importance | None:
    """PSIS's Pareto k̂ and the spread of the log ratios over draws from the fitted
    guide (the objective's model: in a distributed fit, the mean over the
    processes of their scaled shards' is the full log joint). None for models
    with enumerated latents, whose p(x, z) would need them summed out per draw,
    and for those without guide factors (q is empty: nothing to check)."""
    if any(latent.enumerated for latent in program.ir.latents) or not program.ir.guided_latents:
        return None
    terms = max(_observed_terms(program, data), 1)
    count = max(PSIS_MIN_DRAWS, min(PSIS_DRAWS, PSIS_TERMS // terms))
    chunk = min(count, max(1, TERMS_PER_STEP // terms))
    objective = objective or Objective(*program.compiled.scored(data))
    ratios = torch.cat([_log_ratios(objective.model, program, objective.data, chunk)
                        for _ in range(math.ceil(count / chunk))])
    ratios = distributed.mean(ratios[:count])
    return Importance(stats.pareto_khat(ratios.cpu().numpy()), ratios.std().item())


def _log_ratios(model, program, data, count: int) -> torch.Tensor:
    """log p(x, z) - log q(z) for `count` guide draws, vectorised under a draws plate."""
    nesting = program.ir.max_plate_nesting
    with torch.no_grad(), pyro.plate("_draws", count, dim=-(nesting + 1)):
        guide_trace = poutine.trace(program.guide).get_trace(data)
        model_trace = poutine.trace(poutine.replay(model, guide_trace)).get_trace(data)
        return _per_draw_log_prob(model_trace, count) - _per_draw_log_prob(guide_trace, count)


def _per_draw_log_prob(trace, count: int) -> torch.Tensor:
    """Each site's log-density summed over everything but the draws dim (the leftmost)."""
    trace.compute_log_prob()
    total = torch.zeros(count, dtype=torch.float64)
    for site in trace.nodes.values():
        if site["type"] == "sample":
            log_prob = site["log_prob"]
            total += log_prob.reshape(log_prob.shape[0], -1).sum(-1) if log_prob.dim() else log_prob
    return total


def restore_guide(program, data, values: dict) -> dict[str, Any]:
    """Put saved unconstrained guide parameters back into Pyro's param store (each
    created first at its initial value, with its constraint); returns the state."""
    _fresh_start(program, data, 0)
    with torch.no_grad():
        for name, value in pyro.get_param_store().named_parameters():
            value.copy_(torch.as_tensor(values[name], dtype=value.dtype).reshape(value.shape))
    return pyro.get_param_store().get_state()


class _ReleaseObservations(UnconditionMessenger):
    """`poutine.uncondition` for observe statements only: a let (`pyro.deterministic`,
    an observed Delta to Pyro) keeps the value it was computed as, where releasing it
    would draw from a Delta broadcast over the draws plate."""

    def _pyro_sample(self, msg) -> None:
        if not (msg["infer"] or {}).get("_deterministic"):
            super()._pyro_sample(msg)


def predictive_draws(program, data, count: int, seed: int, from_posterior: bool = True,
                     guide_state: dict | None = None) -> dict[str, torch.Tensor]:
    """Draws of every observed site, sampled rather than scored, vectorised under a
    draws plate left of the model's plates, as `posterior_draws` is: latents from
    the fitted guide (the posterior predictive, `guide_state` restored first) or
    from their priors."""
    if guide_state is not None:
        pyro.get_param_store().set_state(guide_state)
    data = data.in_memory() if _on_disk(data) else data
    _refuse_empty_plates(data, _statements_of_model(program))
    pyro.set_rng_seed(seed)
    model = _ReleaseObservations()(program.model)
    with torch.no_grad(), pyro.plate("_draws", count, dim=-(program.ir.max_plate_nesting + 1)):
        if from_posterior:
            model = poutine.replay(model, poutine.trace(program.guide).get_trace(data))
        trace = poutine.trace(model).get_trace(data)
    return {s.name: _own_dims(trace.nodes[s.name]["value"], count, torch.as_tensor(data[s.name]).dim())
            for s in program.ir.observed}


def discrete_posterior(program, data, count: int) -> dict[str, torch.Tensor]:
    """P(z = k) per element of every enumerated latent: Pyro's `infer_discrete`
    samples z given each of `count` guide draws, and the frequencies are averaged."""
    from pyro.infer import infer_discrete

    model_ir = program.ir
    enumerated = [s for s in model_ir.latents if s.enumerated]
    if not enumerated:
        return {}
    nesting = model_ir.max_plate_nesting
    draws_plate = pyro.plate("_draws", count, dim=-(nesting + 1))
    with torch.no_grad():
        with draws_plate:
            guide_trace = poutine.trace(program.guide).get_trace(data)

        def replayed_model(data):
            with draws_plate:
                return poutine.replay(program.model, guide_trace)(data)

        sampler = infer_discrete(replayed_model, first_available_dim=-(nesting + 2), temperature=1)
        trace = poutine.trace(sampler).get_trace(data)
    probabilities = {}
    for latent in enumerated:
        site = trace.nodes[latent.name]
        values = site["fn"].enumerate_support(expand=False).reshape(-1)
        draws = _own_dims(site["value"].expand(site["fn"].batch_shape), count, len(latent.shape))
        probabilities[latent.name] = torch.stack([(draws == v).double().mean(0) for v in values], dim=-1)
    return probabilities
