"""The fixed runtime that generated code may call, besides torch and pyro.

Kept tiny on purpose: generated code should read like hand-written Pyro.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from compiler.arrays import CHUNK_ROWS
from compiler.backend.hidden_markov import chain_states, emitted, hidden_markov  # noqa: F401 - generated code calls them

# Generated code calls the linear_normal_* as rt.*: they live apart only to keep this module short.
from compiler.backend.linear_statistics import flat as _flat
from compiler.backend.linear_statistics import linear_normal_log_likelihood, linear_normal_statistics  # noqa: F401
from compiler.frontend import distributions


class Constrained(dist.TorchDistribution):
    """`base`'s density restricted to `support` (an ordered vector), unnormalised there as
    Stan's constrained parameters are: its support is what the guide's transform and NUTS's
    coordinates follow. Draws are the base's sorted, which for i.i.d. elements is exactly the
    restricted distribution (the prior predictive)."""

    arg_constraints: dict = {}

    def __init__(self, base: dist.TorchDistribution, support):
        self.base, self._support = base, support
        super().__init__(base.batch_shape, base.event_shape, validate_args=False)

    @property
    def support(self):
        return self._support

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.base.log_prob(value)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self.base.sample(sample_shape).sort(-1).values

    def expand(self, batch_shape, _instance=None) -> Constrained:
        return Constrained(self.base.expand(batch_shape), self._support)


class Recurrent(dist.TorchDistribution):
    """A latent vector whose first elements follow `initial` (one distribution each) and each later
    one `step(previous)`, a distribution of all the later elements given the ones before them.
    Its density is theirs at once: no loop. Draws are ancestral, a loop over the positions (only
    prior draws make them)."""

    arg_constraints: dict = {}

    def __init__(self, initial: list[dist.TorchDistribution], step, length: int):
        self.initial, self.step, self.length = initial, step, length
        batch = torch.broadcast_shapes(*(d.batch_shape for d in initial))
        super().__init__(batch, torch.Size([len(initial) + length]), validate_args=False)

    @property
    def support(self):
        return constraints.independent(self.initial[0].support, 1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        first = len(self.initial)
        initial = sum(d.log_prob(value[..., k]) for k, d in enumerate(self.initial))
        return initial + self.step(value[..., first - 1:-1]).log_prob(value[..., first:]).sum(-1)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            values = [d.sample(sample_shape) for d in self.initial]
            for position in range(self.length):
                # The step sees the latest element at every position and is drawn at this one.
                latest = values[-1][..., None].expand(values[-1].shape + (self.length,))
                values.append(self.step(latest).sample()[..., position])
            return torch.stack(torch.broadcast_tensors(*values), -1)


def constrained(base: dist.TorchDistribution, support) -> Constrained:
    return Constrained(base, support)


# Truncation and censoring ------------------------------------------------------------
# Both need log F(x) and log(1 - F(x)) far into the tails, where 1 - F(x) computed from F(x) is 0:
# the normal's come from log_ndtr, the exponential's survival is exact; others go through torch's cdf.

LOG_HALF = math.log(0.5)


def _log_cdf(base: dist.TorchDistribution, x: torch.Tensor) -> torch.Tensor:
    if isinstance(base, torch.distributions.Normal):
        return torch.special.log_ndtr((x - base.loc) / base.scale)
    return base.cdf(x).log()


def _log_survival(base: dist.TorchDistribution, x: torch.Tensor) -> torch.Tensor:
    if isinstance(base, torch.distributions.Normal):
        return torch.special.log_ndtr((base.loc - x) / base.scale)
    if isinstance(base, torch.distributions.Exponential):
        return -base.rate * x
    return torch.log1p(-base.cdf(x))


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, accurate at both ends (Mächler 2012). Each branch gets only the
    inputs it is accurate for, so that the other's infinite slope cannot turn a gradient into NaN."""
    near_zero = x > LOG_HALF
    return torch.where(near_zero, torch.log(-torch.expm1(torch.where(near_zero, x, LOG_HALF))),
                       torch.log1p(-torch.exp(torch.where(near_zero, LOG_HALF, x))))


def _log_mass(base: dist.TorchDistribution, low: torch.Tensor | None, high: torch.Tensor | None) -> torch.Tensor:
    """log P(low <= X <= high): a difference of CDFs where the lower one is below 1/2, else of
    survival functions, so that a tail interval keeps its digits."""
    if low is None:
        return _log_cdf(base, high)
    if high is None:
        return _log_survival(base, low)
    upper_tail = _log_cdf(base, low) > LOG_HALF
    larger = torch.where(upper_tail, _log_survival(base, low), _log_cdf(base, high))
    smaller = torch.where(upper_tail, _log_survival(base, high), _log_cdf(base, low))
    return larger + _log1mexp((smaller - larger).clamp(max=0))


class _Restricted(dist.TorchDistribution):
    """`base` with bounds `low` and `high` (either may be None), broadcast to one batch shape."""

    arg_constraints: dict = {}

    def __init__(self, base: dist.TorchDistribution, low=None, high=None):
        low, high = (None if b is None else real(b) for b in (low, high))
        lower_bound = getattr(base.support, "lower_bound", None)
        if lower_bound is not None and low is not None:  # below a positive distribution's 0 there is nothing
            low = torch.clamp(low, min=lower_bound)
        shape = torch.broadcast_shapes(base.batch_shape, *(b.shape for b in (low, high) if b is not None))
        self.base = base.expand(shape)
        self.low, self.high = (None if b is None else b.expand(shape) for b in (low, high))
        super().__init__(shape, base.event_shape, validate_args=False)

    def _inside(self, value: torch.Tensor) -> torch.Tensor:
        inside = torch.ones_like(value, dtype=torch.bool)
        if self.low is not None:
            inside = inside & (value >= self.low)
        if self.high is not None:
            inside = inside & (value <= self.high)
        return inside

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        low, high = (None if b is None else b.expand(batch_shape) for b in (self.low, self.high))
        return type(self)(self.base.expand(batch_shape), low, high)

    def _clamped(self, value: torch.Tensor) -> torch.Tensor:
        return value.clamp(min=self.low, max=self.high)


class Truncated(_Restricted):
    """`base` restricted to [low, high] and renormalised there (Stan's `T[low, high]`): its support
    is the interval, which the guide's transform and NUTS's coordinates follow; draws come from the
    inverse CDF, so the prior predictive stays inside."""

    @property
    def support(self):
        low = self.low if self.low is not None else getattr(self.base.support, "lower_bound", None)
        if low is None:
            return constraints.less_than(self.high)
        if self.high is None:
            return constraints.greater_than(low)
        return constraints.interval(low, self.high)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # A value outside scores -inf; the base density is taken at the nearest bound instead, so that
        # no infinity reaches the gradient through the branch not taken.
        density = self.base.log_prob(self._clamped(value)) - _log_mass(self.base, self.low, self.high)
        return torch.where(self._inside(value), density, -math.inf)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            probability = torch.rand(shape)
            if isinstance(self.base, torch.distributions.Normal):
                return self._normal_draw(probability)
            low = self.base.cdf(self.low) if self.low is not None else torch.zeros(())
            high = self.base.cdf(self.high) if self.high is not None else torch.ones(())
            return self._clamped(self.base.icdf(low + probability * (high - low)))

    def _normal_draw(self, probability: torch.Tensor) -> torch.Tensor:
        """A normal's draw from the standard normal truncated to [a, b], reflected when a > 0: in the
        upper tail the CDF rounds to 1 and its inverse to inf, while in the lower one it keeps its digits."""
        loc, scale = self.base.loc, self.base.scale
        a = (self.low - loc) / scale if self.low is not None else torch.full_like(loc, -math.inf)
        b = (self.high - loc) / scale if self.high is not None else torch.full_like(loc, math.inf)
        reflected = a > 0
        # log_ndtr, as ndtr rounds to 0 below -8.3
        low, high = (torch.special.log_ndtr(torch.where(reflected, x, y)).exp() for x, y in ((-b, a), (-a, b)))
        z = torch.special.ndtri(low + probability * (high - low))
        z = torch.where(reflected, -z, z)
        # Beyond about 38 sds the tail's probabilities underflow to 0; there the truncated normal is the
        # edge plus an exponential of rate |edge| (to a relative error of 1/edge²).
        edge = torch.where(reflected, a, b)
        far = edge + torch.empty_like(z).exponential_() / edge
        return self._clamped(loc + scale * torch.where(torch.isfinite(z), z, far))


class Censored(_Restricted):
    """`base` censored at `low` and `high` (PyMC's `pm.Censored`): a value at a bound stands for
    every value beyond it, so it scores log F(low) or log(1 - F(high)); others score the density."""

    @property
    def support(self):
        return self.base.support

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        inside = self._inside(value)
        density = self.base.log_prob(value)
        if self.low is not None:
            density = torch.where(value <= self.low, _log_cdf(self.base, self.low), density)
        if self.high is not None:
            density = torch.where(value >= self.high, _log_survival(self.base, self.high), density)
        return torch.where(inside, density, -math.inf)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        return self._clamped(self.base.sample(sample_shape))


def truncated(base: dist.TorchDistribution, low=None, high=None) -> Truncated:
    return Truncated(base, low, high)


def censored(base: dist.TorchDistribution, low=None, high=None) -> Censored:
    return Censored(base, low, high)


def position(size: int, dim: int) -> torch.Tensor:
    """0..size-1 laid out along plate `dim`, to gather with an index variable."""
    return torch.arange(size).reshape((-1,) + (1,) * (-dim - 1))


def initial(value, shape: tuple[int, ...]) -> torch.Tensor:
    """A param's initial value, broadcast to its declared shape."""
    return real(value).expand(shape).clone()


def real(value) -> torch.Tensor:
    """A value as a tensor of the default float dtype, so that arithmetic on it follows
    torch (1 / 0 is inf) rather than Python's numbers. An integer beyond float range
    (a product of integers in a spec) is infinite, as torch would compute it."""
    if isinstance(value, int):
        try:
            value = float(value)
        except OverflowError:
            value = math.copysign(math.inf, value)
    return torch.as_tensor(value, dtype=torch.get_default_dtype())


def index(positions, length: int) -> torch.Tensor:
    """Computed positions along an axis of `length`, as the integers torch indexes with.
    A position outside 0..length-1 is an IndexError naming it, where torch would count a
    negative one from the end."""
    positions = torch.as_tensor(positions)
    if positions.is_floating_point():
        positions = positions.long()
    if positions.numel():
        low, high = positions.min().item(), positions.max().item()
        if low < 0 or high >= length:
            raise IndexError(f"index {low if low < 0 else high} is out of range for an axis of length {length}")
    return positions


def lift(value: torch.Tensor, rank: int, unit_dims: int) -> torch.Tensor:
    """Insert `unit_dims` unit dims just left of a value's own `rank` dims (remove
    them if negative, where they exist), so that sample dims on the left stay at
    the place Pyro's plates expect. See `compiler.backend.expressions`."""
    split = value.dim() - rank
    if unit_dims < 0:
        removed = min(-unit_dims, split)
        return value.reshape(value.shape[:split - removed] + value.shape[split:])
    return value.reshape(value.shape[:split] + (1,) * unit_dims + value.shape[split:])


def matvec(matrix: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """matrix @ vector, broadcasting any dims left of the matrix and the vector."""
    return (matrix @ vector.unsqueeze(-1)).squeeze(-1)


def vecmat(vector: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    return (vector.unsqueeze(-2) @ matrix).squeeze(-2)


def affine_recurrence(initial, step, length: int) -> torch.Tensor:
    """A recurrence's elements: `initial` (its first ones), then x[t] = step(x[t - 1]) for `length`
    more, where step is affine in x[t - 1] (the checker proves it). Evaluating the step once at 0
    and once at 1 gives its coefficients for every position at once, exactly: a = step(0),
    b = step(1) - step(0); the elements then follow by one scan. Any draws dims stay on the left."""
    first = torch.stack(torch.broadcast_tensors(*(real(value) for value in initial)), -1)
    zeros, ones = torch.zeros(length), torch.ones(length)
    a = step(zeros) + zeros  # a constant step still gives one coefficient per position
    b = step(ones) - a
    later = affine_scan(a, b, first[..., -1])
    batch = torch.broadcast_shapes(first.shape[:-1], later.shape[:-1])
    return torch.cat([first.expand(batch + first.shape[-1:]), later.expand(batch + later.shape[-1:])], -1)


def affine_scan(a: torch.Tensor, b: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """x[i] = a[i] + b[i] * x[i - 1] along the last dim, x[-1] = `start`: by a parallel prefix scan
    (Hillis-Steele) of the affine maps x -> a + b x, in O(log n) tensor operations rather than a
    Python loop of n. Round k composes each map with the one 2^k positions before it, so that
    afterwards (a[i], b[i]) maps x[-1] to x[i]."""
    a, b = torch.broadcast_tensors(a, b)
    span = 1
    while span < a.shape[-1]:
        a = torch.cat([a[..., :span], a[..., span:] + b[..., span:] * a[..., :-span]], -1)
        b = torch.cat([b[..., :span], b[..., span:] * b[..., :-span]], -1)
        span *= 2
    return a + b * real(start)[..., None]


def vector(*elements) -> torch.Tensor:
    """`[a, b, ...]`: the elements broadcast against each other and stacked along a new last axis."""
    return torch.stack(torch.broadcast_tensors(*(real(e) for e in elements)), -1)


def solve(derivative, initial, start, times, rtol: float, atol: float, max_steps: int) -> torch.Tensor:
    """The state of `d state / dt = derivative(t, state)` at each of `times`, from `initial` at
    `start`: torchdiffeq's dopri5 (adaptive Runge-Kutta 4(5), as Stan's rk45), gradients by
    backpropagation through its steps. Any dims left of the state's own (sample dims) are
    independent systems; the result is those dims + (len(times), size).

    The error is measured by the largest element (Stan's solvers do the same), not torchdiffeq's
    root mean square, which would let one system of a batch borrow accuracy from the others. A
    solve that fails (more than `max_steps` steps, a step size that underflows, a state that
    stops being finite) gives nan, as an overflow would: the fit then treats that point as any
    non-finite density."""
    from torchdiffeq import odeint  # an optional extra (pplc[ode]); build checks that it is installed

    # The data check has made the times increase from the start on.
    grid = torch.cat([real(start).reshape(1), real(times).reshape(-1)])
    initial = real(initial)
    # The systems' dims are those of the initial state and of what the derivative reads (a latent
    # rate beside a fixed initial state): the first evaluation shows them.
    initial = initial.expand(torch.broadcast_shapes(initial.shape, derivative(grid[0], initial).shape))
    try:
        states = odeint(derivative, initial, grid, rtol=rtol, atol=atol, method="dopri5",
                        options={"max_num_steps": max_steps, "norm": _largest})
    except AssertionError:  # torchdiffeq's way to stop: too many steps, or a step size that underflowed
        return torch.full(initial.shape[:-1] + (len(grid) - 1, initial.shape[-1]), math.nan)
    return states[1:].movedim(0, -2)


def _largest(error: torch.Tensor) -> torch.Tensor:
    return error.abs().max()


def cholesky(matrix: torch.Tensor) -> torch.Tensor:
    """The lower Cholesky factor, NaN where `matrix` is not positive definite: the log density
    then is not finite, which a fit reports with the site (and retries), as any other numerical
    failure, where torch would raise."""
    factor, info = torch.linalg.cholesky_ex(matrix)
    return torch.where((info == 0)[..., None, None], factor, torch.nan)


def gp_exp_quad_cov(points: torch.Tensor, magnitude, length_scale) -> torch.Tensor:
    """Stan's exponentiated quadratic kernel: magnitude^2 exp(-(x[i] - x[j])^2 / (2 length_scale^2))
    over points x (their last dim); any dims left of the points are kept."""
    distance = (points.unsqueeze(-1) - points.unsqueeze(-2)) / length_scale
    return magnitude ** 2 * torch.exp(-0.5 * distance ** 2)


def uniform_init(shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform on (-2, 2): Stan's default initialisation on the unconstrained scale."""
    return torch.rand(shape) * 4 - 2


def block(joint: torch.Tensor, start: int, shape: tuple[int, ...], event_rank: int = 0) -> torch.Tensor:
    """A joint guide's coordinates start..start + size of `joint` shaped as one latent's
    unconstrained value, any draws dims of `joint` (the particles', left of the model's plates)
    kept on the left: as Pyro's AutoContinuous unpacks its latent vector."""
    batch = joint.shape[:-1]
    return joint[..., start:start + math.prod(shape)].reshape(torch.broadcast_shapes(shape, batch + (1,) * event_rank))


def pushed(unconstrained: torch.Tensor, transform, event_rank: int = 0) -> dist.Delta:
    """A joint guide's latent value: its block carried onto the support by `transform`, as a
    Delta whose log-density is -log |det J| of the transform, so that log q(z) is the joint
    Gaussian's density of z (as Pyro's AutoContinuous records its latents)."""
    value = transform(unconstrained)
    log_density = -transform.log_abs_det_jacobian(unconstrained, value)
    summed = log_density.dim() - (value.dim() - event_rank)  # the event dims the Jacobian term still has
    if summed > 0:
        log_density = log_density.reshape(log_density.shape[:-summed] + (-1,)).sum(-1)
    return dist.Delta(value, log_density=log_density, event_dim=event_rank)


def sufficient_statistics(name: str, values) -> tuple:
    """What the distribution table's row `name` needs of the observed values, computed
    once: of a memory-mapped array (a numpy array), a chunk of rows at a time."""
    statistics = distributions.TABLE[name].sufficient
    if not isinstance(values, np.ndarray):
        return statistics.of_data(_flat(values))
    chunks = (statistics.of_data(_flat(values[start:start + CHUNK_ROWS]))
              for start in range(0, max(len(values), 1), CHUNK_ROWS))  # no rows: one empty chunk
    return functools.reduce(statistics.combine, chunks)


def log_likelihood(name: str, distribution, statistics: tuple) -> torch.Tensor:
    """log p(x | θ) summed over observations that all follow `distribution`, from their statistics."""
    return distributions.TABLE[name].sufficient.log_likelihood(distribution, statistics)
