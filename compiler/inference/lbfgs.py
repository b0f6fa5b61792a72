"""Deterministic ADVI: the ELBO over one fixed set of draws (`fixed_draws`), maximised by L-BFGS.

Stochastic SVI sees new draws at every step, so Adam must take small steps and
average its own noise away; on badly scaled posteriors (flat priors, posterior
correlations near -1) it stops, "converged", far from the optimum. With the
draws fixed (Giordano, Ingram & Broderick, JMLR 2024, "Black box variational
inference with a deterministic objective"), the ELBO is an ordinary smooth
function of the guide parameters, and a quasi-Newton method reaches its
maximum in tens of iterations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from compiler.backend.build import CompiledModel
from compiler.inference import diagnose, distributed, interrupt, params
from compiler.inference.config import RunConfig
from compiler.inference.elbo import default_particles, elbo
from compiler.inference.fixed_draws import FixedDraws
from compiler.inference.progress import ProgressBar
from compiler.inference.quasi_newton import LBFGS
from compiler.inference.records import Objective, Run

# The run has converged when an L-BFGS call changes the ELBO by less than this
# (relative), twice in a row: the objective is deterministic, so no allowance
# for noise is needed, and float64 resolves far below it.
RELATIVE_CHANGE = 1e-9
LEVEL_CALLS = 2
ITERATIONS_PER_CALL = 10  # L-BFGS iterations between convergence checks
# Evaluations per call, line searches included: torch.optim.LBFGS's default for 10
# iterations, which pplc's fits were tuned with (every call, the last one too).
EVALUATIONS_PER_CALL = ITERATIONS_PER_CALL * 5 // 4
ENUMERATED_STARTS = 4  # mixtures: label switching and merged components make local optima common
START_SEED_STRIDE = 1000  # seeds of the further starts: seed + k * stride
HISTORY = 50  # curvature pairs L-BFGS keeps
# A call whose line search reached non-finite values is repeated from where it
# started with steps a quarter as long, at most this many times in a fit.
MAX_SHORTENINGS, SHORTENING = 8, 0.25
# A log-scale is reset when its conditional optimum is further than this from it (a factor
# of e in the scale); nearer, L-BFGS's own steps are as good, and keep their curvature history.
RESET_BEYOND = 1.0
# H s² is resolved beside the entropy's 1 where it exceeds this many float epsilons.
RESOLVED = 4


def fit_from_starts(compiled: CompiledModel, data, objective: Objective, config: RunConfig, seed: int,
                    rate_factor: float, max_steps: int, from_current: bool = False) -> Run:
    """Deterministic ADVI from each start; the start with the best ELBO is kept. `from_current`: one
    start, from the guide in the param store (a refit with more draws starts at the last optimum)."""
    starts = 1 if from_current else config.starts or (
        ENUMERATED_STARTS if any(s.enumerated for s in compiled.ir.latents) else 1)
    best: tuple[Run, params.State] | None = None
    for start in range(starts):
        if not from_current:
            params.fresh(seed + start * START_SEED_STRIDE)
            diagnose.initialise(compiled, objective.data, objective.model)
        coordinates = params.coordinates(compiled)
        particles = config.particles or default_particles(compiled, data, "lbfgs", coordinates)
        loss = elbo(compiled, particles)
        # Stopping where the ELBO levels off, the number of iterations is not known: the bar has no total.
        bar = ProgressBar(config.progress, "iteration", _bar_title(start, starts), config.steps)
        progress = Progress(max_steps, config.steps, lambda done, value: bar.show(done, config.steps, value))
        draws = FixedDraws(guided_sites(compiled), seed)
        try:
            with bar:
                maximise(lambda: loss.differentiable_loss(objective.model, compiled.guide, objective.data),
                         params.unconstrained(), progress, draws, rate_factor,
                         lambda value, iteration: diagnose.diverged(compiled, objective, value, iteration - 1),
                         params.log_scales(compiled))
        except interrupt.Interrupted:  # maximise has put back the last finite state
            return Run(progress.elbo, last(progress.elbo), progress.iterations, False, True)
        run = Run(progress.elbo, last(progress.elbo), progress.iterations,
                  progress.converged or config.steps is not None, False, [], draws, particles)
        if best is None or run.estimate > best[0].estimate:
            best = run, params.state()
    params.set_state(best[1])
    return best[0]


def _bar_title(start: int, starts: int) -> str:
    return "L-BFGS" if starts == 1 else f"L-BFGS start {start + 1}/{starts}"


def guided_sites(compiled: CompiledModel) -> list[str]:
    """The guide's sample sites that draw: the latents it has factors for, or a joint guide's one site."""
    if compiled.code.joint_site is not None:
        return [compiled.code.joint_site]
    return [latent.name for latent in compiled.ir.guided_latents]


def last(elbo: list[float]) -> float:
    return elbo[-1] if elbo else math.nan


@dataclass
class Progress:
    """The ELBO after each L-BFGS call, and whether the run is over."""

    max_iterations: int
    fixed_iterations: int | None
    on_record: Callable[[int, float], None] | None = None  # told (iterations, ELBO) after each call
    elbo: list[float] = field(default_factory=list)
    iterations: int = 0
    level_calls: int = 0

    @property
    def converged(self) -> bool:
        return self.level_calls >= LEVEL_CALLS

    @property
    def remaining(self) -> int:
        if self.fixed_iterations is not None:
            return self.fixed_iterations - self.iterations
        return 0 if self.converged else self.max_iterations - self.iterations

    def record(self, elbo: float, iterations: int) -> None:
        level = bool(self.elbo) and abs(elbo - self.elbo[-1]) <= RELATIVE_CHANGE * max(1.0, abs(elbo))
        self.level_calls = self.level_calls + 1 if level else 0
        self.elbo.append(elbo)
        self.iterations = iterations
        if self.on_record:
            self.on_record(iterations, elbo)


class _Unusable(Exception):
    """An evaluation L-BFGS cannot use: a non-finite loss or gradient."""

    def __init__(self, loss: float):
        super().__init__(loss)
        self.loss = loss


def maximise(loss_fn: Callable[[], torch.Tensor], parameters: list[torch.Tensor], progress: Progress,
             draws: FixedDraws, step_scale: float, on_nonfinite: Callable[[float, int], Exception],
             log_scales: list[torch.Tensor] = ()) -> None:
    """Run L-BFGS on `loss_fn` (the negative ELBO) at the fixed draws until
    `progress` says stop. A line search that wanders where the loss or its
    gradient is not finite is undone, and the call repeated with shorter steps
    and a fresh curvature history; a non-finite loss where a call starts raises
    what `on_nonfinite(loss, iteration)` builds, with the parameters put back.
    Before each call, `log_scales` (some of `parameters`: normal factors' log-scales)
    far from their conditional optima are moved there (`scale_steps`) where that
    lowers the loss. Ctrl-C (`interrupt`) raises `interrupt.Interrupted` with the
    parameters where the call started."""
    objective = _Evaluations(loss_fn, parameters, draws)
    try:
        objective.value()  # creates every draw, so that they can be whitened together
    except _Unusable as unusable:
        raise on_nonfinite(unusable.loss, 1) from None
    draws.whiten()
    objective.forget()
    if not any(p.numel() for p in parameters):  # e.g. a Dirichlet over one category: nothing moves
        progress.record(-objective.value(), 0)
        progress.level_calls = LEVEL_CALLS
        return
    optimizer = LBFGS(parameters, step_scale, HISTORY)
    shortened = 0
    while progress.remaining > 0:
        interrupt.check()
        if log_scales and _reset_scales(objective, log_scales):
            optimizer = LBFGS(parameters, optimizer.step_scale, HISTORY)  # its curvature pairs span the old point
        start = [p.detach().clone() for p in parameters]
        before, objective.successes = optimizer.iterations, 0
        try:
            optimizer.run(objective.closure, min(ITERATIONS_PER_CALL, progress.remaining), EVALUATIONS_PER_CALL)
            elbo = -objective.value()
        except _Unusable as unusable:
            _restore(parameters, start)
            if not objective.successes or shortened == MAX_SHORTENINGS:
                raise on_nonfinite(unusable.loss, progress.iterations + 1) from None
            shortened += 1
            optimizer = LBFGS(parameters, step_scale * SHORTENING ** shortened, HISTORY)
            continue
        except interrupt.Interrupted:
            _restore(parameters, start)
            raise
        progress.record(elbo, progress.iterations + optimizer.iterations - before)


def scale_steps(log_scale_gradients: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each normal factor's log-scale's step to its conditional optimum (`maximise` takes them
    between calls), 0 where that is within RESET_BEYOND or the curvature the gradient implies is
    negative (no optimum along it).

    For a factor z = m + s e (e the fixed draws, zero mean and unit mean square per coordinate),
    the negative ELBO's derivative in u = log s is -1 (the entropy) plus s E[e g(z)], g the
    derivative of -log p in z. Where -log p is quadratic in z with curvature H, s E[e g(z)] =
    H s², so the derivative is d = H s² - 1, and the u that zeroes it (s² = 1/H) is
    u - log(d + 1) / 2, read off the gradient L-BFGS already has. Far below its optimum a
    log-scale's derivative is about -1 however far it is (the entropy's slope), and L-BFGS, its
    steps scaled by the steep coordinates' curvature (the locations'), brings it back a little
    each iteration: the 1,000-group hierarchy's `sigma_y` log-scale, driven to -51 while the
    group locations were still far off, took some 300 iterations to climb back to -6.1. Where
    H s² is lost to rounding beside the 1, the optimum is at least -log(RESOLVED eps) / 2 above:
    a step that long, the next call's reset going on from there. The step is exact for a
    Gaussian posterior; elsewhere `maximise` keeps it only where the loss falls."""
    moves = []
    for gradient in log_scale_gradients:
        resolved = RESOLVED * torch.finfo(gradient.dtype).eps
        curvature = gradient + 1  # H s², by the identity above
        move = torch.where(curvature > -resolved, -curvature.clamp(min=resolved).log() / 2, 0.0)
        moves.append(torch.where(move.abs() > RESET_BEYOND, move, 0.0))
    return moves


def _reset_scales(objective: _Evaluations, log_scales: list[torch.Tensor]) -> bool:
    """`scale_steps` taken where the loss falls (and is finite there); whether they were."""
    try:
        before = objective.closure()  # the gradient where the last call ended (kept from its last evaluation)
    except _Unusable:
        return False
    moves = scale_steps([p.grad if p.grad is not None else torch.zeros_like(p) for p in log_scales])
    if not any(move.any() for move in moves):
        return False
    start = [p.detach().clone() for p in log_scales]
    with torch.no_grad():
        for p, move in zip(log_scales, moves):
            p.add_(move)
    try:
        if objective.value() < before:
            return True
    except _Unusable:
        pass
    _restore(log_scales, start)
    return False


class _Evaluations:
    """The negative ELBO at the fixed draws and its gradient, as L-BFGS evaluates it. The
    last evaluation is kept: each call of L-BFGS opens by evaluating where the previous
    one's line search ended, and the progress check evaluates there too."""

    def __init__(self, loss_fn: Callable[[], torch.Tensor], parameters: list[torch.Tensor], draws: FixedDraws):
        self.loss_fn, self.parameters, self.draws = loss_fn, parameters, draws
        self.successes = 0  # evaluations that gave a finite loss and gradient, in this call
        self.last: tuple[list[torch.Tensor], float, list[torch.Tensor | None]] | None = None

    def closure(self) -> float:
        """The loss at the parameters' values, its gradient left in their .grad."""
        interrupt.check()
        if (cached := self._cached()) is not None:
            loss, gradients = cached
            for p, gradient in zip(self.parameters, gradients):
                p.grad = None if gradient is None else gradient.clone()
            self.successes += 1
            return loss
        for p in self.parameters:
            p.grad = None
        loss = self._with_graph()
        loss.backward()
        distributed.average_gradients(self.parameters)
        if not all(torch.isfinite(p.grad).all() for p in self.parameters if p.grad is not None):
            raise _Unusable(loss.item())
        self.successes += 1
        self.last = ([p.detach().clone() for p in self.parameters], loss.item(),
                     [None if p.grad is None else p.grad.clone() for p in self.parameters])
        return loss.item()

    def value(self) -> float:
        """The loss alone (not under no_grad: TraceEnum_ELBO refuses to evaluate there)."""
        cached = self._cached()
        return cached[0] if cached is not None else self._with_graph().item()

    def forget(self) -> None:
        self.last = None

    def _cached(self) -> tuple[float, list[torch.Tensor | None]] | None:
        if self.last is None or not all(torch.equal(p, q) for p, q in zip(self.parameters, self.last[0])):
            return None
        return self.last[1], self.last[2]

    def _with_graph(self) -> torch.Tensor:
        try:
            with self.draws.active(), diagnose.checked_once():
                loss = self.loss_fn()
        except (ValueError, torch.linalg.LinAlgError):  # a distribution refused a non-finite argument
            loss = None
        # In a distributed fit the processes' mean is the loss, and every process must take
        # part in it, the one whose shard failed too, so that all take the same branch.
        total = distributed.mean(torch.tensor(math.nan) if loss is None else loss)
        if loss is None or not torch.isfinite(total):
            raise _Unusable(total.item())
        return loss + (total - loss).detach()


def _restore(parameters: list[torch.Tensor], values: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for parameter, value in zip(parameters, values):
            parameter.copy_(value)
