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
    about 1/k̂, so above 0.7 importance sampling (and the approximation whose
    ratios these are) cannot be trusted."""
    count = len(log_ratios)
    tail = int(math.floor(3 * math.sqrt(count))) if count > 225 else count // 5
    ordered = np.sort(log_ratios - np.max(log_ratios))
    ratios = np.exp(ordered[count - tail:])
    exceedances = ratios - np.exp(ordered[count - tail - 1])
    if not exceedances[-1] > 0:
        return None  # every tail ratio the same: nothing to fit
    shape, _ = fit_generalized_pareto(torch.as_tensor(exceedances, dtype=torch.float64))
    return float(shape)
