"""Statistics of draws that every fit reports: the 94 % HDI and PSIS's Pareto k̂.

Both follow ArviZ (arviz-stats' `hdi` with method "nearest" and `psislw`), and
tests/test_stats.py checks them against it; they live here because importing
arviz-stats costs 0.8 s (scipy.signal, xarray), a third of a whole `pplc run`.
arviz-stats stays the library behind R̂, ESS and InferenceData.
"""

from __future__ import annotations

import math

import numpy as np
import torch

HDI_PROB = 0.94


def hdi(draws: torch.Tensor, prob: float = HDI_PROB) -> torch.Tensor:
    """The narrowest interval holding `prob` of the draws (leading dim), per
    element: (..., 2) of (low, high), both draws themselves."""
    ordered = draws.sort(dim=0).values
    count = ordered.shape[0]
    inside = int(math.floor(prob * count))
    widths = ordered[inside:] - ordered[:count - inside]
    start = widths.argmin(dim=0, keepdim=True)
    return torch.stack([ordered.gather(0, start)[0], ordered.gather(0, start + inside)[0]], dim=-1)


# Vehtari, Simpson, Gelman, Yao & Gabry (2024), "Pareto smoothed importance sampling":
# the generalized Pareto fit of Zhang & Stephens (2009), with their weakly informative
# prior pulling k̂ towards 0.5 for short tails.
PRIOR_SCALE, PRIOR_WEIGHT, PRIOR_SHAPE = 3, 10, 0.5


def pareto_khat(log_ratios: np.ndarray) -> float | None:
    """Shape k̂ of the generalized Pareto distribution fitted to the largest
    importance ratios exp(log_ratios): the number of finite moments they have is
    about 1/k̂, so above 0.7 importance sampling (and the approximation whose
    ratios these are) cannot be trusted."""
    count = len(log_ratios)
    tail = int(math.floor(3 * math.sqrt(count))) if count > 225 else count // 5
    ordered = np.sort(log_ratios - np.max(log_ratios))
    ratios = np.exp(ordered[count - tail:])
    exceedances = ratios - np.exp(ordered[count - tail - 1])
    if not exceedances[-1] > 0:
        return None  # every tail ratio the same: nothing to fit
    return _generalized_pareto_shape(exceedances)


def _generalized_pareto_shape(exceedances: np.ndarray) -> float:
    """Zhang & Stephens' empirical Bayes estimate of the shape, over a grid of
    the profile parameter b = -k / sigma weighted by its likelihood."""
    count = len(exceedances)
    grid_size = 30 + int(math.sqrt(count))
    grid = 1 - np.sqrt(grid_size / (np.arange(1, grid_size + 1) - 0.5))
    grid = grid / (PRIOR_SCALE * exceedances[int(count / 4 + 0.5) - 1]) + 1 / exceedances[-1]
    shapes = np.log1p(-grid[:, None] * exceedances).mean(axis=1)
    log_likelihood = count * (np.log(-grid / shapes) - shapes - 1)
    weights = np.exp(log_likelihood - log_likelihood.max())
    weights = np.where(weights >= 10 * np.finfo(float).eps * weights.sum(), weights, 0)
    b = np.sum(grid * weights) / weights.sum()
    shape = np.log1p(-b * exceedances).mean()
    return float((count * shape + PRIOR_WEIGHT * PRIOR_SHAPE) / (count + PRIOR_WEIGHT))
