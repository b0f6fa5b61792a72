"""The fixed runtime that generated code may call, besides torch and pyro.

Kept tiny on purpose: generated code should read like hand-written Pyro.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pyro.distributions as dist
import torch

from compiler.arrays import CHUNK_ROWS, tensor
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


def constrained(base: dist.TorchDistribution, support) -> Constrained:
    return Constrained(base, support)


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


def _flat(values) -> torch.Tensor:
    if isinstance(values, np.ndarray):  # rows of a memory-mapped file: copied, as torch wants them writable
        return tensor(values).reshape(-1)
    return torch.as_tensor(values, dtype=torch.get_default_dtype()).reshape(-1)


def log_likelihood(name: str, distribution, statistics: tuple) -> torch.Tensor:
    """log p(x | θ) summed over observations that all follow `distribution`, from their statistics."""
    return distributions.TABLE[name].sufficient.log_likelihood(distribution, statistics)
