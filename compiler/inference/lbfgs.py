"""Deterministic ADVI: the ELBO over one fixed set of draws, maximised by L-BFGS.

Stochastic SVI sees new draws at every step, so Adam must take small steps and
average its own noise away; on badly scaled posteriors (flat priors, posterior
correlations near -1) it stops, "converged", far from the optimum. With the
draws fixed (Giordano, Ingram & Broderick, JMLR 2024, "Black box variational
inference with a deterministic objective"), the ELBO is an ordinary smooth
function of the guide parameters, and a quasi-Newton method reaches its
maximum in tens of iterations.

The draws are antithetic (zero mean across the particles) and whitened across
all coordinates (unit second moment, no correlation between coordinates), so
for a Gaussian posterior the fixed-draw optimum has exactly the mean-field
means and scales. Whitening needs at least as many antithetic pairs as
coordinates; with fewer, each coordinate is standardised on its own and the
scales of strongly correlated coordinates keep a small bias. Every normal guide factor draws through
`torch.distributions.normal._standard_normal`; replacing it while the loss is
evaluated fixes the draws without changing the generated guide. Guide
families that draw otherwise (the native Beta, Gamma, Dirichlet) are fixed by
reseeding torch's generator for each evaluation instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributions.normal as torch_normal

from compiler.inference import distributed

# The run has converged when an L-BFGS call changes the ELBO by less than this
# (relative), twice in a row: the objective is deterministic, so no allowance
# for noise is needed, and float64 resolves far below it.
RELATIVE_CHANGE = 1e-9
LEVEL_CALLS = 2
ITERATIONS_PER_CALL = 10  # L-BFGS iterations between convergence checks
HISTORY = 50  # curvature pairs L-BFGS keeps
# A call whose line search reached non-finite values is repeated from where it
# started with steps a quarter as long, at most this many times in a fit.
MAX_SHORTENINGS, SHORTENING = 8, 0.25


class FixedDraws:
    """Standard normal draws replayed by call order: the first evaluation of the
    loss creates them, every later one gets the same tensors back."""

    def __init__(self, seed: int):
        self.seed = seed
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.draws: list[torch.Tensor] = []
        self.position = 0

    def __call__(self, shape, dtype=None, device=None) -> torch.Tensor:
        if self.position == len(self.draws):
            self.draws.append(self._antithetic(torch.Size(shape)))
        draw = self.draws[self.position]
        self.position += 1
        return draw.to(dtype=dtype, device=device)

    def _antithetic(self, shape: torch.Size) -> torch.Tensor:
        """Pairs (e, -e) along the particle dim (the leftmost), scaled to unit
        mean square per coordinate."""
        if len(shape) == 0 or shape[0] < 2 or shape[0] % 2:
            return torch.randn(shape, generator=self.generator, dtype=torch.float64, device="cpu")
        half = torch.randn((shape[0] // 2,) + shape[1:], generator=self.generator, dtype=torch.float64, device="cpu")
        draws = torch.cat([half, -half])
        return draws / draws.pow(2).mean(0, keepdim=True).sqrt()

    def whiten(self) -> None:
        """Decorrelate every coordinate of every draw made so far (call after one
        evaluation has created them all), where there are enough pairs."""
        paired = [d for d in self.draws if d.dim() and d.shape[0] >= 2 and d.shape[0] % 2 == 0]
        if not paired or len({d.shape[0] for d in paired}) != 1:
            return
        pairs = paired[0].shape[0] // 2
        halves = torch.cat([d[:pairs].reshape(pairs, -1) for d in paired], dim=1)
        if halves.shape[1] > pairs:
            return
        values, vectors = torch.linalg.eigh(halves.T @ halves / pairs)
        whitened = halves @ (vectors @ torch.diag(values.rsqrt()) @ vectors.T)
        for d, part in zip(paired, whitened.split([d[:pairs].numel() // pairs for d in paired], dim=1)):
            d.copy_(torch.cat([part, -part]).reshape(d.shape))

    @contextmanager
    def active(self) -> Iterator[None]:
        self.position = 0
        with standard_normal_draws(self), torch.random.fork_rng():
            torch.manual_seed(self.seed)  # the same non-normal draws in every evaluation
            yield


@contextmanager
def standard_normal_draws(draw: Callable[..., torch.Tensor]) -> Iterator[None]:
    """Every normal guide factor's noise comes from `draw(shape, dtype=, device=)` meanwhile."""
    original = torch_normal._standard_normal
    torch_normal._standard_normal = draw
    try:
        yield
    finally:
        torch_normal._standard_normal = original


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
             draws: FixedDraws, step_scale: float, on_nonfinite: Callable[[float, int], Exception]) -> None:
    """Run L-BFGS on `loss_fn` (the negative ELBO) at the fixed draws until
    `progress` says stop. A line search that wanders where the loss or its
    gradient is not finite is undone, and the call repeated with shorter steps
    and a fresh curvature history; a non-finite loss where a call starts raises
    what `on_nonfinite(loss, iteration)` builds, with the parameters put back."""
    try:
        _evaluate(loss_fn, draws)  # creates every draw, so that they can be whitened together
    except _Unusable as unusable:
        raise on_nonfinite(unusable.loss, 1) from None
    draws.whiten()
    if not any(p.numel() for p in parameters):  # e.g. a Dirichlet over one category: nothing moves
        progress.record(-_evaluate(loss_fn, draws), 0)
        progress.level_calls = LEVEL_CALLS
        return
    optimizer = _lbfgs(parameters, step_scale)
    shortened = 0
    while progress.remaining > 0:
        start = [p.detach().clone() for p in parameters]
        evaluations: list[float] = []
        before = _iterations(optimizer)
        try:
            optimizer.param_groups[0]["max_iter"] = min(ITERATIONS_PER_CALL, progress.remaining)
            optimizer.step(_closure(loss_fn, parameters, draws, optimizer, evaluations))
            elbo = -_evaluate(loss_fn, draws)
        except _Unusable as unusable:
            _restore(parameters, start)
            if not evaluations or shortened == MAX_SHORTENINGS:
                raise on_nonfinite(unusable.loss, progress.iterations + 1) from None
            shortened += 1
            optimizer = _lbfgs(parameters, step_scale * SHORTENING ** shortened)
            continue
        except KeyboardInterrupt:  # wherever it lands, the state where the call started is kept
            _restore(parameters, start)
            raise
        progress.record(elbo, progress.iterations + _iterations(optimizer) - before)


def _lbfgs(parameters: list[torch.Tensor], step_scale: float) -> torch.optim.LBFGS:
    # torch's own stopping tests are absolute (a gradient below 1e-7 ends the call), which
    # halts it in the long flat valleys of badly scaled posteriors; `Progress` decides instead.
    return torch.optim.LBFGS(parameters, lr=step_scale, max_iter=ITERATIONS_PER_CALL, history_size=HISTORY,
                             line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=1e-15)


def _closure(loss_fn, parameters, draws: FixedDraws, optimizer, evaluations: list[float]):
    """What L-BFGS evaluates: the negative ELBO at the fixed draws, and its gradient."""

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = _evaluate_with_graph(loss_fn, draws)
        loss.backward()
        distributed.average_gradients(parameters)
        if not all(torch.isfinite(p.grad).all() for p in parameters if p.grad is not None):
            raise _Unusable(loss.item())
        evaluations.append(loss.item())
        return loss

    return closure


def _evaluate_with_graph(loss_fn, draws: FixedDraws) -> torch.Tensor:
    try:
        with draws.active():
            loss = loss_fn()
    except ValueError:  # a distribution refused a non-finite argument
        loss = None
    # In a distributed fit the processes' mean is the loss, and every process must take
    # part in it, the one whose shard failed too, so that all take the same branch.
    total = distributed.mean(torch.tensor(math.nan) if loss is None else loss)
    if loss is None or not torch.isfinite(total):
        raise _Unusable(total.item())
    return loss + (total - loss).detach()


def _evaluate(loss_fn, draws: FixedDraws) -> float:
    # Not under no_grad: TraceEnum_ELBO refuses to evaluate there.
    return _evaluate_with_graph(loss_fn, draws).item()


def _iterations(optimizer: torch.optim.LBFGS) -> int:
    return optimizer.state[optimizer.param_groups[0]["params"][0]].get("n_iter", 0)


def _restore(parameters: list[torch.Tensor], values: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for parameter, value in zip(parameters, values):
            parameter.copy_(value)
