"""Phase 4, infer: `CompiledModel` + `Data` + `RunConfig` -> `FitResult`.

Chooses how to fit (deterministic ADVI by L-BFGS (`lbfgs`, `rounds` with batches)
or Adam steps (`adam`)), retries once after a divergence, refuses improper
posteriors, then draws from the fitted guide (`posterior`) and measures how far
it can be trusted (`importance`). The whole fit runs in a param store of its own
(`params.scope`): the caller's is untouched, and the fitted guide comes back as
`FitResult.guide_state`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import TypeVar

import torch
from pyro import poutine

from compiler.backend.build import CompiledModel
from compiler.errors import FitError, PplError
from compiler.frontend.analysis import summarised_only
from compiler.inference import (
    adam,
    approximation,
    control_variates,
    devices,
    diagnose,
    distributed,
    improper,
    interrupt,
    lbfgs,
    linear_response,
    minibatch,
    params,
    rounds,
)
from compiler.inference.config import MAX_STEPS, RunConfig
from compiler.inference.elbo import default_particles, elbo
from compiler.inference.fixed_draws import at_the_centre
from compiler.inference.posterior import discrete_posterior
from compiler.inference.records import FitResult, Note, Objective, Run

DISCRETE_DRAWS = 500  # guide draws behind each reported P(z = k): standard error at most 0.022
RETRY_RATE_FACTOR = 0.1
# Minibatch L-BFGS takes its curvature from one batch a round; with fewer rows than
# this per coordinate a batch can nearly interpolate the data, and on posteriordb's
# models (batches of N/5) the rounds then diverged or stopped far away, where Adam
# steps did not (docs/scaling.md).
ROWS_PER_COORDINATE = 5
Fitted = TypeVar("Fitted")


def fit(compiled: CompiledModel, data, config: RunConfig) -> FitResult:
    """Fit on `config.device` (see `devices.on_device`); the result holds CPU tensors. Arrays
    in memory-mapped files are read whole unless each step takes a batch of them, or the
    fit needs only their sufficient statistics."""
    return _prepared(compiled, data, config, _fit)


def gaussian(compiled: CompiledModel, data, config: RunConfig) -> linear_response.Gaussian | None:
    """Only the Gaussian a fit's report would draw from (None where none applies), measured once
    at the fit's own fixed draws: no refits for the draw check, no importance weights, no draws.
    For NUTS's warm start, which needs a Gaussian that whitens the space, not the report's
    precision (the hierarchical logistic regression of bench/nuts.py: the draw check's two refits
    and three measurements were 3.5 s of a 4.5 s fit). Ctrl-C during the fit raises KeyboardInterrupt."""
    return _prepared(compiled, data, config, _gaussian_only)


def _prepared(compiled: CompiledModel, data, config: RunConfig, then: Callable[..., Fitted]) -> Fitted:
    """`then(compiled, data, config, subsampled, controlled, notes)` on the fit's device, in a
    param store of its own, with the data and the optimizer settled."""
    diagnose.refuse_empty_plates(data, diagnose.statements_fitted(compiled))
    if _nothing_to_fit(compiled):  # how to fit does not matter: the answer is computed exactly
        config = config.model_copy(update={"batch_size": None, "optimizer": config.optimizer or "lbfgs"})
    batching = minibatch.plan(compiled, data, config.batch_size) if config.batch_size is not None else None
    subsampled = batching is not None and bool(batching.rows.sizes)
    if not subsampled and not config.distributed and minibatch.on_disk(data):
        data = data.in_memory(keep_on_disk=summarised_only(compiled.ir))
    if config.distributed:
        config = config.model_copy(update={"device": distributed.device_of_this_process(config.device)})
    controlled = subsampled and control_variates.applies(compiled, batching)
    with devices.on_device(config.device), params.scope():
        data = devices.moved(data, config.device)
        notes: list[Note] = []
        if config.optimizer is None:
            optimizer, why = _default_optimizer(compiled, data, config, subsampled, controlled)
            config, notes = config.model_copy(update={"optimizer": optimizer}), [why] if why else []
        return then(compiled, data, config, subsampled, controlled, notes)


def _check_options(config: RunConfig, subsampled: bool, controlled: bool, guide_family: str) -> None:
    if config.jit and config.optimizer != "adam":
        raise PplError("--jit applies to Adam's steps; L-BFGS's fixed-draw ELBO is not jitted",
                       hint="add --optimizer adam, or drop --jit")
    if subsampled and config.optimizer == "lbfgs" and guide_family != "normal":
        raise PplError("minibatch L-BFGS needs the normal guide: it measures each round's progress in the "
                       "normal factors' scales", hint=f"use --optimizer adam, or drop --guide {guide_family}")
    if subsampled and not controlled and config.optimizer != "adam":
        raise PplError("--batch-size with L-BFGS needs the control variate, which models with point "
                       "parameters or enumerated latents, or two data plates split at once, do not get",
                       hint="use --optimizer adam")
    if subsampled and config.jit:
        raise PplError("--jit compiles a step with its data fixed, so it cannot take a new batch each step",
                       hint="drop --jit or --batch-size")


def _default_optimizer(compiled: CompiledModel, data, config: RunConfig, subsampled: bool,
                       controlled: bool) -> tuple[str, Note | None]:
    """L-BFGS, but Adam for the native guide and for batches L-BFGS cannot take (and why, for the report)."""
    if compiled.guide_family == "native" or (subsampled and compiled.guide_family != "normal"):
        return "adam", None
    if subsampled and not controlled:
        return "adam", Note("adam_without_control_variate")
    coordinates = _guide_coordinates(compiled, data) if subsampled else 0
    if config.batch_size is not None and config.batch_size < ROWS_PER_COORDINATE * coordinates:
        return "adam", Note("adam_for_small_batches", {"batch_size": config.batch_size, "coordinates": coordinates,
                                                        "rows_per_coordinate": ROWS_PER_COORDINATE})
    return "lbfgs", None


def _guide_coordinates(compiled: CompiledModel, data) -> int:
    """The normal guide's coordinates, counted on a trace of it (its parameters are
    created afresh by every fit)."""
    params.clear()
    with torch.no_grad():
        poutine.trace(compiled.guide).get_trace(data)
    return params.coordinates(compiled)


def _fit(compiled: CompiledModel, data, config: RunConfig, subsampled: bool, controlled: bool,
         notes: list[Note]) -> FitResult:
    """`subsampled`: --batch-size leaves fewer rows than some data plate has; `controlled`:
    and its batches can be corrected by a control variate; `notes`: for the report."""
    started = time.perf_counter()
    _check_options(config, subsampled, controlled, compiled.guide_family)
    if config.jit and compiled.ir.odes:
        raise PplError("--jit traces one run of the ELBO, and an ODE solver's steps change with the latents",
                       compiled.ir.odes[0].span, "drop --jit")
    objective = _objective(compiled, data, config)
    notes = list(objective.notes) + notes
    if config.batch_size is not None and not subsampled:
        notes.append(Note("nothing_to_subsample", {"batch_size": config.batch_size}))
    run = _attempt_with_retry(compiled, data, objective, config, subsampled, notes)
    if not run.interrupted:
        notes += _refuse_improper(compiled, objective, config, subsampled)

    def refit(particles: int) -> Run:
        # From the last optimum, which more draws move by their sampling error only: logistic regression
        # at N = 10^6, the refit with 4 draws after 2 took 31 iterations where a fresh fit with 4 takes 49.
        return _attempt(compiled, data, objective, config.model_copy(update={"particles": particles}), subsampled,
                        config.seed, 1.0, from_current=True)

    answer = approximation.posterior(compiled, data, objective, config, subsampled, run, refit)
    run, draws = answer.run, {name: value.cpu() for name, value in answer.draws.items()}
    notes += answer.notes + approximation.guide_scale_notes(compiled, run, answer.covariance) + _left_out(compiled, data)
    point = {p.name: params.value(p.name).detach().cpu().clone() for p in compiled.ir.params}
    discrete = {name: value.cpu() for name, value in
                (discrete_posterior(compiled, data.in_memory() if minibatch.on_disk(data) else data, DISCRETE_DRAWS)
                 if config.discrete else {}).items()}
    return FitResult(config.optimizer, tuple(run.elbo), run.estimate, run.steps,
                     run.converged and not run.interrupted, draws, point, discrete, devices.on_cpu(params.state()),
                     time.perf_counter() - started, run.interrupted, tuple(run.notes + notes), answer.importance,
                     answer.covariance, answer.resampled, answer.gaussian)


def _gaussian_only(compiled: CompiledModel, data, config: RunConfig, subsampled: bool, controlled: bool,
                   notes: list[Note]) -> linear_response.Gaussian | None:
    _check_options(config, subsampled, controlled, compiled.guide_family)
    objective = _objective(compiled, data, config)
    run = _attempt_with_retry(compiled, data, objective, config, subsampled, notes)
    if run.interrupted:
        raise KeyboardInterrupt  # (the fit caught Ctrl-C to stop early: here it stops what waits for the fit)
    _refuse_improper(compiled, objective, config, subsampled)
    if not approximation.gaussian_applies(compiled, data, config, subsampled):
        return None
    return approximation.gaussian_of_fit(compiled, objective, config, run)[0]


def _attempt_with_retry(compiled: CompiledModel, data, objective: Objective, config: RunConfig, subsampled: bool,
                        notes: list[Note]) -> Run:
    """One retry from a fresh initialisation with steps a tenth as long, before giving up."""
    try:
        return _attempt(compiled, data, objective, config, subsampled, config.seed, 1.0)
    except diagnose.Diverged as first:
        _refuse_improper(compiled, objective, config, subsampled)  # no step size mends a posterior that is not there
        rate = RETRY_RATE_FACTOR if config.optimizer == "lbfgs" else config.lr * RETRY_RATE_FACTOR
        retried = {"failure": first.message, "optimizer": config.optimizer, "rate": rate}
        notes.append(Note("retried", retried))
        try:
            return _attempt(compiled, data, objective, config, subsampled, config.seed + 1, RETRY_RATE_FACTOR)
        except diagnose.Diverged as second:
            what = "L-BFGS steps scaled by" if config.optimizer == "lbfgs" else "Adam learning rate"
            second.message += f"; a retry from a fresh initialisation with {what} {rate:g} failed too"
            raise second from None


def _attempt(compiled: CompiledModel, data, objective: Objective, config: RunConfig, subsampled: bool, seed: int,
             rate_factor: float, from_current: bool = False) -> Run:
    """One fit from fresh initialisations (or, L-BFGS on all the data, `from_current` guide), its steps
    scaled by `rate_factor`."""
    if _nothing_to_fit(compiled):
        return _log_evidence(compiled, objective, seed)
    max_steps = config.max_steps or MAX_STEPS[config.optimizer]
    with warnings.catch_warnings(), interrupt.caught():
        # A non-finite loss is caught and reported with its site; Pyro's own warning would only repeat it.
        warnings.filterwarnings("ignore", message="Encountered NaN")
        if config.optimizer == "adam":
            return adam.maximise(compiled, data, objective, config, seed, rate_factor, max_steps)
        if subsampled:
            return rounds.fit_in_rounds(compiled, objective, config, seed, rate_factor, max_steps)
        return lbfgs.fit_from_starts(compiled, data, objective, config, seed, rate_factor, max_steps, from_current)


def _nothing_to_fit(compiled: CompiledModel) -> bool:
    """No params and no guide factors: the guide is empty, every latent enumerated out."""
    return not compiled.ir.params and not compiled.ir.guided_latents


def _log_evidence(compiled: CompiledModel, objective: Objective, seed: int) -> Run:
    """Nothing to fit: with an empty guide the ELBO is log p(x) itself (enumerated
    latents summed out), computed once, exactly."""
    params.fresh(seed)
    diagnose.initialise(compiled, objective.data, objective.model)
    loss = elbo(compiled, particles=1).loss(objective.model, compiled.guide, objective.data)
    value = -distributed.mean(torch.as_tensor(loss)).item()
    if not math.isfinite(value):
        site = diagnose.nonfinite_site(compiled, objective)
        raise FitError(f"log p(x) is {value}" + (f" at site '{site}'" if site else ""),
                       compiled.ir.site_spans.get(site) if site else None,
                       "check the data against the distributions' arguments and supports")
    return Run([value], value, 0, True, False, [Note("nothing_to_fit", {"enumerated": bool(compiled.ir.latents)})])


def _refuse_improper(compiled: CompiledModel, objective: Objective, config: RunConfig, subsampled: bool) -> list[Note]:
    """A FitError where the posterior is flat along some improper latents (improper.py);
    a note for the report where there are too many of them to check. Batched fits are
    not checked: one batch may leave free what all the rows pin down."""
    latents = improper.improper_latents(compiled)
    if subsampled or not latents:
        return []
    if (count := improper.coordinates(compiled, latents)) > improper.MAX_COORDINATES:
        return [Note("improper_unchecked", {"coordinates": count, "checked": improper.MAX_COORDINATES})]
    improper.refuse(compiled, curvature(compiled, objective, config.seed))
    return []


def curvature(compiled: CompiledModel, objective: Objective, seed: int,
              latents: list | None = None) -> improper.Curvature | None:
    """`improper.measure` of the guide in the current param store: over `latents`, by default the
    improper ones; as many Hessian rows at once as the fit evaluates particles, for the
    same memory."""
    loss = elbo(compiled, particles=1)
    at_once = default_particles(compiled, objective.data, "lbfgs", params.coordinates(compiled))

    def at_centre():
        with at_the_centre(lbfgs.guided_sites(compiled), seed):
            return loss.differentiable_loss(objective.model, compiled.guide, objective.data)

    return improper.measure(compiled, at_centre, latents, at_once)


def _left_out(compiled: CompiledModel, data) -> list[Note]:
    """What the fit could not draw or check, and why."""
    lets_drawn = any(not s.transformed_data for s in compiled.ir.lets)
    if minibatch.read_by_row_on_disk(compiled, data):
        return [Note("on_disk_without_lets_and_khat")]
    if minibatch.on_disk(data) and lets_drawn:
        return [Note("on_disk_without_lets")]
    if lets_drawn and (empty := diagnose.empty_plate(data, diagnose.statements_of_model(compiled))):
        return [Note("lets_without_plate", {"size": empty[1].size})]
    return []


def _objective(compiled: CompiledModel, data, config: RunConfig) -> Objective:
    model, scored = compiled.scored(data)  # statistics of arrays on disk are read a chunk at a time
    if not config.distributed:
        return Objective(model, scored)
    distributed.start(config.device)
    sharded, scales = minibatch.shard(compiled, scored, distributed.rank(), distributed.world())
    return Objective(minibatch.ScaleObservations(scales)(model), sharded,
                     (Note("distributed", {"processes": distributed.world()}),))
