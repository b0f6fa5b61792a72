"""Statistics of draws that every fit reports: the 94 % HDI and PSIS's Pareto k̂, both
from `pyro.ops.stats` (tests/test_stats.py checks them against ArviZ; importing
arviz-stats would cost 0.8 s (scipy.signal, xarray), a third of a whole `pplc run`).
arviz-stats stays the library behind R̂, ESS and InferenceData.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from pyro.ops.stats import fit_generalized_pareto, hpdi

HDI_PROB = 0.94


def hdi(draws: torch.Tensor, prob: float = HDI_PROB) -> torch.Tensor:
    """The narrowest interval holding `prob` of the draws (leading dim), per
    element: (..., 2) of (low, high), both draws themselves."""
    return torch.movedim(hpdi(draws, prob, dim=0), 0, -1)


def pareto_khat(log_ratios: np.ndarray) -> float | None:
    """Shape k̂ of the generalized Pareto distribution fitted (Zhang & Stephens 2009, with
    the weakly informative prior of Vehtari et al. 2024's PSIS) to the largest
    importance ratios exp(log_ratios): the number of finite moments they have is
    about 1/k̂, so above `khat_threshold` importance sampling (and the approximation
    whose ratios these are) cannot be trusted."""
    return psis(log_ratios)[1]


def psis(log_ratios: np.ndarray) -> tuple[np.ndarray, float | None]:
    """Pareto-smoothed log weights (normalised) and k̂ (Vehtari, Simpson, Gelman, Yao &
    Gabry 2024): the largest ratios are replaced by the expected order statistics of
    the generalized Pareto fitted to them, which tames a few huge weights."""
    count = len(log_ratios)
    tail = int(math.floor(3 * math.sqrt(count))) if count > 225 else count // 5
    shifted = log_ratios - np.max(log_ratios)
    order = np.argsort(shifted)
    ordered = shifted[order]
    cutoff = ordered[count - tail - 1]
    exceedances = np.exp(ordered[count - tail:]) - np.exp(cutoff)
    smoothed = shifted.copy()
    if not exceedances[-1] > 0:
        return smoothed - _log_sum_exp(smoothed), None  # every tail ratio the same: nothing to fit
    try:
        shape, scale = fit_generalized_pareto(torch.as_tensor(exceedances, dtype=torch.float64))
    except ZeroDivisionError:  # tail ratios equal but for rounding: as flat as no tail at all
        return smoothed - _log_sum_exp(smoothed), None
    if math.isfinite(shape):
        probabilities = (np.arange(1, tail + 1) - 0.5) / tail
        quantiles = scale / shape * ((1 - probabilities) ** -shape - 1) if shape != 0 else -scale * np.log1p(-probabilities)
        smoothed[order[count - tail:]] = np.minimum(np.log(np.exp(cutoff) + quantiles), 0.0)
    return smoothed - _log_sum_exp(smoothed), float(shape)


def khat_threshold(draws: int) -> float:
    """Vehtari et al. (2024): k̂ above min(1 - 1/log10 S, 0.7) makes S draws' estimate unreliable."""
    return min(1 - 1 / math.log10(draws), 0.7)


def _log_sum_exp(values: np.ndarray) -> float:
    top = np.max(values)
    return float(top + np.log(np.exp(values - top).sum()))
