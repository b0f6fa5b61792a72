"""The coin against its exact posterior, Beta(10 + heads, 10 + tails).

Tolerances are the coin issue's bar: mean within 1 %, sd within 5 %, at
default settings for every seed. They are not loosened for noise: the report
summarises 10,000 guide draws, whose Monte Carlo error is 0.2 % of the mean
and 0.7 % of the sd (one standard error), and the fit averages the iterates
of its final half, so what remains is the logit-normal guide's own bias,
measured at under 0.5 % (mean) and 1.5 % (sd) over ten seeds.
"""

from __future__ import annotations

import math

import pytest


def beta_moments(a: float, b: float) -> tuple[float, float]:
    mean = a / (a + b)
    return mean, math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))


@pytest.mark.parametrize("seed", range(5))
def test_coin_posterior_matches_beta_16_14_for_every_seed(coin, seed):
    report = coin.fit(seed=seed)
    mean, sd = beta_moments(16, 14)
    assert report.posterior["f"].mean == pytest.approx(mean, rel=0.01)
    assert report.posterior["f"].sd == pytest.approx(sd, rel=0.05)
    assert report.converged


def test_coin_quantiles_match_the_exact_beta(fitted_coin):
    from scipy.stats import beta

    summary = fitted_coin.posterior["f"]
    for q, value in ((0.05, summary.q05), (0.5, summary.q50), (0.95, summary.q95)):
        assert value == pytest.approx(beta.ppf(q, 16, 14), abs=0.1 * beta.std(16, 14))


MILLION_HEADS, MILLION = 600_000, 1_000_000


@pytest.fixture(scope="module")
def a_million_flips():
    return {"x": [1] * MILLION_HEADS + [0] * (MILLION - MILLION_HEADS)}


@pytest.mark.slow
def test_a_million_flips_fit_to_the_accuracy_bar_within_the_coins_iteration_budget(coin, a_million_flips):
    report = coin.fit(a_million_flips, seed=0)
    mean, sd = beta_moments(10 + MILLION_HEADS, 10 + MILLION - MILLION_HEADS)
    # L-BFGS's iteration count follows the curvature, not N: 29 here, 10-14 at N = 10, both
    # within the bound test_convergence.py holds the small coin to.
    assert report.converged and report.steps <= 50
    assert report.posterior["f"].mean == pytest.approx(mean, rel=0.01)
    assert report.posterior["f"].sd == pytest.approx(sd, rel=0.05)


@pytest.mark.slow
def test_a_million_flips_take_as_many_adam_steps_as_ten(coin, a_million_flips):
    report = coin.fit(a_million_flips, seed=0, optimizer="adam")
    mean, sd = beta_moments(10 + MILLION_HEADS, 10 + MILLION - MILLION_HEADS)
    assert report.steps == coin.fit(seed=0, optimizer="adam").steps  # convergence stops both at the same step
    assert report.posterior["f"].mean == pytest.approx(mean, rel=0.01)
    assert report.posterior["f"].sd == pytest.approx(sd, rel=0.05)


def test_adam_with_jit_meets_the_coins_bar(coin):
    summary = coin.fit(seed=0, optimizer="adam", jit=True).posterior["f"]
    mean, sd = beta_moments(16, 14)
    assert summary.mean == pytest.approx(mean, rel=0.01)
    assert summary.sd == pytest.approx(sd, rel=0.05)
