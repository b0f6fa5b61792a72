"""The HDI and Pareto k̂ every fit reports agree with ArviZ's (arviz-stats)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from arviz_stats.base import array_stats

from compiler.inference import stats


def test_hdi_is_arviz_nearest_hdi_per_element():
    draws = torch.from_numpy(np.random.default_rng(0).gamma(2.0, size=(4001, 3, 2)))
    expected = array_stats.hdi(draws.numpy(), 0.94, axis=0)
    assert torch.allclose(stats.hdi(draws), torch.from_numpy(expected))


# Log importance ratios with known tails: bounded (q wider than p), Pareto with
# k = 0.75 (q a normal half as wide as p), very heavy (a Student-t p against a normal q).
RNG = np.random.default_rng(1)
NORMAL = RNG.normal(size=4000)
LOG_RATIOS = {
    "bounded": -0.375 * NORMAL**2,
    "normal_half_as_wide": 0.375 * NORMAL**2,
    "student_t": NORMAL**2 / 2 - 2 * np.log1p(NORMAL**2 / 3),
}


@pytest.mark.parametrize("name", sorted(LOG_RATIOS))
def test_pareto_khat_is_arviz_psis_khat(name):
    log_ratios = LOG_RATIOS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, expected = array_stats.psislw(-log_ratios, r_eff=1.0)  # arviz-stats takes -log ratios, as LOO's log-likelihoods
    assert stats.pareto_khat(log_ratios) == pytest.approx(float(expected), abs=1e-10)


def test_pareto_khat_reads_the_upper_tail_of_the_ratios():
    assert stats.pareto_khat(LOG_RATIOS["normal_half_as_wide"]) == pytest.approx(0.75, abs=0.15)
    assert stats.pareto_khat(LOG_RATIOS["bounded"]) < 0


def test_pareto_khat_of_equal_ratios_is_none():
    assert stats.pareto_khat(np.zeros(1000)) is None


def _autocorrelated_chains() -> np.ndarray:
    """Four AR(1) chains of three elements: one chain shifted, the last element rounded (ties)."""
    rng = np.random.default_rng(0)
    draws = np.zeros((4, 501, 3))
    for t in range(1, 501):
        draws[:, t] = 0.7 * draws[:, t - 1] + rng.normal(size=(4, 3))
    draws[1] += 0.3
    draws[..., 2] = np.round(draws[..., 2])
    return draws


def test_rhat_is_arviz_rank_normalised_split_rhat():
    draws = _autocorrelated_chains()
    expected = array_stats.rhat(draws, chain_axis=0, draw_axis=1)
    assert torch.allclose(stats.rhat(torch.from_numpy(draws)), torch.from_numpy(expected), rtol=1e-10)


def test_ess_is_arviz_bulk_ess_within_its_truncation():
    draws = _autocorrelated_chains()
    expected = array_stats.ess(draws, chain_axis=0, draw_axis=1)
    # Pyro's autocorrelation sum (Stan's) and ArviZ's truncate Geyer's sequence one lag apart:
    # 1-2 % on chains this autocorrelated.
    assert torch.allclose(stats.ess(torch.from_numpy(draws)), torch.from_numpy(expected), rtol=0.02)
