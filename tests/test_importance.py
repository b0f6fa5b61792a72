"""PSIS on the importance ratios of the reported Gaussian: smoothed weights, k̂ and its
threshold, and how far reweighting would move the answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from compiler.inference.importance import Weighted, _reweighting_shift
from compiler.inference.records import Importance
from compiler.inference.stats import khat_threshold, psis


def test_smoothing_tames_the_largest_weight_and_keeps_the_weights_normalised():
    log_ratios = np.random.default_rng(0).standard_t(2, size=4000)  # heavy right tail
    smoothed, khat = psis(log_ratios)
    assert math.isclose(np.exp(smoothed).sum(), 1.0, rel_tol=1e-9)
    raw = log_ratios - np.log(np.exp(log_ratios - log_ratios.max()).sum()) - log_ratios.max()
    assert smoothed.max() <= raw.max() + 1e-12 and khat > 0


def test_equal_ratios_have_no_tail_to_fit():
    smoothed, khat = psis(np.zeros(1000))
    assert khat is None and np.allclose(np.exp(smoothed), 1e-3)


@pytest.mark.parametrize(("draws", "threshold"), [(4000, 0.7), (200, 1 - 1 / math.log10(200))])
def test_the_khat_threshold_follows_the_number_of_draws(draws, threshold):
    assert khat_threshold(draws) == pytest.approx(threshold)


def test_uniform_weights_move_nothing():
    values = torch.randn(1000, 3, dtype=torch.float64)
    assert _reweighting_shift(values, torch.zeros(1000, dtype=torch.float64)) == pytest.approx(0.0, abs=1e-12)


def test_weights_that_favour_one_side_move_its_mean():
    values = torch.randn(4000, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    # Weights exp(0.5 u) tilt N(0, 1) to N(0.5, 1): the mean moves by half an sd.
    assert _reweighting_shift(values, 0.5 * values[:, 0]) == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("log_ratios", [np.r_[np.zeros(999), 1e-15], np.linspace(0.0, 1e-14, 1000)])
def test_ratios_equal_but_for_rounding_have_no_tail_to_fit(log_ratios):
    assert psis(log_ratios)[1] is None or math.isfinite(psis(log_ratios)[1])


def _weighted(draws: int, log_weights: torch.Tensor, dimension: int = 6) -> Weighted:
    values = torch.randn(draws, dimension, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    normalised = log_weights - torch.logsumexp(log_weights, 0)
    shift = _reweighting_shift(values, normalised)
    return Weighted(values, normalised, Importance(0.3, float(log_weights.std()), 0.7, shift, draws), True)


def test_many_effective_draws_are_resampled_by_even_when_they_move_little():
    noise = 0.01 * torch.randn(4000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert _weighted(4000, noise).worth_resampling


def test_few_draws_whose_weights_move_no_more_than_chance_are_not_resampled_by():
    # 200 draws (a large data set's budget): resampling by near-uniform weights would only add their
    # Monte Carlo error, about 1 / sqrt(200) = 0.07 sds, to every mean.
    noise = 0.01 * torch.randn(200, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert not _weighted(200, noise).worth_resampling


def test_few_draws_whose_weights_move_a_mean_far_past_chance_are_resampled_by():
    values = torch.randn(200, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert _weighted(200, 1.5 * values[:, 0]).worth_resampling  # tilted toward the first coordinate
