"""Phase 4 runtime (generated code calls these as `rt.*`): the log-likelihood of Normal rows
whose mean is linear in data (`linear_normal`), from per-group statistics.

With the rows of group g centred on their group's means (ȳ_g, x̄_g), the sum of squared
residuals splits exactly into a within-group part, a quadratic in the coefficients β, and one
term per group:

    Σ_i (y_i - u_g(i) - β·x_i)² = W_yy - 2 β·W_xy + β·W_xx β + Σ_g n_g (ȳ_g - u_g - β·x̄_g)²

Centring first keeps the sums free of cancellation where the data sit far from 0.
"""

from __future__ import annotations

import numpy as np
import torch

from compiler.arrays import tensor
from compiler.frontend.distributions import LOG_SQRT_2PI


def linear_normal_statistics(values, index, features) -> tuple[torch.Tensor, ...]:
    """(n_g, ȳ_g, x̄_g, W_yy, W_xy, W_xx) of the observed `values`, grouped by `index`, with
    `features` the data arrays the coefficients multiply."""
    y, groups = flat(values), flat(index, index=True)
    x = torch.stack([flat(feature) for feature in features]) if features else y.new_zeros((0, len(y)))
    size = int(groups.max()) + 1 if len(groups) else 0
    counts = torch.bincount(groups, minlength=size).to(y.dtype)

    def means(row: torch.Tensor) -> torch.Tensor:
        return torch.bincount(groups, weights=row, minlength=size) / counts.clamp(min=1)

    y_means, x_means = means(y), torch.stack([means(row) for row in x]) if len(x) else x.new_zeros((0, size))
    y_within, x_within = y - y_means[groups], x - x_means[:, groups]
    return counts, y_means, x_means, y_within @ y_within, x_within @ y_within, x_within @ x_within.T


def linear_normal_log_likelihood(groups, offset, coefficients, scale, statistics: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """log p(y | u, β, σ) summed over the rows, the mean of row i being u_g(i) + β·x_i: u_g is
    `groups` (a whole vector, its groups along its last dim) plus `offset`,
    β the `coefficients` (scalars, one per feature), σ the `scale`. Scalars come as whole values
    (their sample dims, then unit dims), so the groups' dim is added to them on the right."""
    counts, y_means, x_means, within_yy, within_xy, within_xx = statistics
    # A group past the largest index has no rows, and no statistics.
    gaps = y_means - torch.as_tensor(offset, dtype=counts.dtype).unsqueeze(-1) - groups[..., :len(counts)]
    squares = within_yy
    for k, beta in enumerate(coefficients):
        squares = squares - 2 * beta * within_xy[k]
        squares = squares + sum(beta * other * within_xx[k, j] for j, other in enumerate(coefficients))
        gaps = gaps - torch.as_tensor(beta, dtype=counts.dtype).unsqueeze(-1) * x_means[k]
    squares = squares + (counts * gaps.pow(2)).sum(-1)
    scale = torch.as_tensor(scale, dtype=counts.dtype)
    return -counts.sum() * (scale.log() + LOG_SQRT_2PI) - squares / (2 * scale.pow(2))


def flat(values, index: bool = False) -> torch.Tensor:
    """Values as one flat tensor of the default float (`index`: of integers)."""
    if isinstance(values, np.ndarray):  # rows of a memory-mapped file: copied, as torch wants them writable
        return tensor(values, index).reshape(-1)
    return torch.as_tensor(values, dtype=torch.long if index else torch.get_default_dtype()).reshape(-1)
