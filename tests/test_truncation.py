"""Truncation `~ D(...) T[lo, hi]` and censoring `~ D(...) censored[lo, hi]`.

A truncated distribution is D renormalised on [lo, hi]: log p(x) - log(F(hi) - F(lo)).
A censored observation at a bound stands for every value beyond it: log F(lo) at the
lower bound, log(1 - F(hi)) at the upper, the density inside. Both are one `pyro.sample`
site (`rt.truncated`, `rt.censored`); a truncated latent's guide and NUTS draw inside its
interval, and its prior draws come from the inverse CDF."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from scipy import integrate, stats

from compiler import PplError, compile_source
from compiler.backend import runtime as rt
from compiler.errors import DataError, Source
from compiler.frontend import distributions, syntax
from compiler.frontend.parse import parse_program

TRUNCATED = """
data N: int
data y: real[N]
latent mu ~ Normal(0, 10)
latent sigma ~ Normal(0, 5) T[0, ]
observe y[i] ~ Normal(mu, sigma) T[0, ]
"""

CENSORED = """
data N: int
data y: real[N]
data c: real[N]
latent mu ~ Normal(0, 10)
observe y[i] ~ Normal(mu, 2) censored[, c[i]]
"""


def _log_joint(program, data: dict, values: dict[str, float]) -> float:
    conditioned = poutine.condition(program.compiled.model, {k: torch.tensor(v) for k, v in values.items()})
    return poutine.trace(conditioned).get_trace(program.load_data(data)).log_prob_sum().item()


# Parsing -------------------------------------------------------------------------------


def _observe(line: str) -> syntax.Observe:
    return parse_program(Source("t.ppl", f"data y: real\n{line}\n")).statements[-1]


@pytest.mark.parametrize("line, kind, lower, upper", [
    ("observe y ~ Normal(0, 1) T[0, ]", "T", 0, None),
    ("observe y ~ Normal(0, 1) T[, 10]", "T", None, 10),
    ("observe y ~ Normal(0, 1) T[-1, 2.5]", "T", "-", 2.5),
    ("observe y ~ Normal(0, 1) censored[, 3]", "censored", None, 3),
])
def test_the_bounds_after_a_distribution_parse_with_either_left_out(line, kind, lower, upper):
    restriction = _observe(line).restriction
    assert restriction.kind == kind
    for bound, expected in ((restriction.lower, lower), (restriction.upper, upper)):
        if expected is None:
            assert bound is None
        elif expected == "-":
            assert isinstance(bound, syntax.Negate)
        else:
            assert bound.value == expected


def test_T_stays_an_ordinary_name_for_sizes_and_data():
    program = compile_source("data T: int\ndata y: real[T]\nlatent mu ~ Normal(0, 1)\n"
                             "observe y[t] ~ Normal(mu, 1) T[-5, 5]\n")
    (observe,) = program.ir.observed
    assert observe.plates[0].size == "T"
    assert observe.distribution.restriction.kind == "truncated"


# Generated code --------------------------------------------------------------------------


def test_each_statement_is_one_site_of_a_runtime_distribution():
    source = compile_source(TRUNCATED).code.source
    assert 'sigma = pyro.sample("sigma", rt.truncated(dist.Normal(0, 5), low=0))' in source
    assert 'pyro.sample("y", rt.truncated(dist.Normal(mu, sigma), low=0), obs=y)' in source
    assert 'pyro.sample("y", rt.censored(dist.Normal(mu, 2), high=c), obs=y)' in compile_source(CENSORED).code.source


def test_the_guide_draws_a_truncated_latent_through_its_interval():
    source = compile_source("latent s ~ Normal(0, 1) T[0, ]\nlatent u ~ Normal(0, 1) T[, 3]\n"
                            "latent e ~ Exponential(1) T[, 2]\n").code.source
    guide = source[source.index("def guide"):]
    assert "biject_to(constraints.greater_than(0))" in guide
    assert "biject_to(constraints.less_than(3))" in guide
    assert "biject_to(constraints.interval(0, 2))" in guide


def test_a_truncated_observation_is_not_scored_from_sufficient_statistics():
    assert "collapsed_model" not in compile_source(TRUNCATED.replace("Normal(mu, sigma)", "Normal(mu, 2)")).code.source


# Log densities against scipy ---------------------------------------------------------------


def test_the_truncated_log_joint_is_the_renormalised_density():
    generator = np.random.default_rng(1)
    y = np.abs(generator.normal(0.5, 1.5, 12))
    program = compile_source(TRUNCATED)
    for mu, sigma in [(0.3, 1.2), (-4.0, 0.5), (2.0, 3.0)]:
        expected = (stats.norm.logpdf(mu, 0, 10) + stats.norm.logpdf(sigma, 0, 5) - stats.norm.logsf(0, 0, 5)
                    + stats.truncnorm.logpdf(y, -mu / sigma, np.inf, loc=mu, scale=sigma).sum())
        got = _log_joint(program, {"N": len(y), "y": y.tolist()}, {"mu": mu, "sigma": sigma})
        assert got == pytest.approx(expected, rel=1e-10)


def test_the_censored_log_joint_is_the_density_inside_and_the_tail_mass_at_the_bound():
    c = np.array([1.0, 1.0, 2.0, 0.5, 3.0])
    y = np.array([0.2, 1.0, 2.0, -1.0, 3.0])  # three of them censored at their bound
    program = compile_source(CENSORED)
    for mu in (-1.0, 0.7, 4.0):
        censored = y == c
        expected = (stats.norm.logpdf(mu, 0, 10) + stats.norm.logpdf(y[~censored], mu, 2).sum()
                    + stats.norm.logsf(c[censored], mu, 2).sum())
        got = _log_joint(program, {"N": 5, "y": y.tolist(), "c": c.tolist()}, {"mu": mu})
        assert got == pytest.approx(expected, rel=1e-10)


def test_a_lower_censored_value_scores_the_cdf_at_its_bound():
    program = compile_source("data y: real[3]\nlatent mu ~ Normal(0, 1)\nobserve y ~ Laplace(mu, 2) censored[-1, ]\n")
    y = np.array([-1.0, 0.0, 2.0])
    expected = (stats.norm.logpdf(0.4) + stats.laplace.logcdf(-1, 0.4, 2)
                + stats.laplace.logpdf(y[1:], 0.4, 2).sum())
    assert _log_joint(program, {"y": y.tolist()}, {"mu": 0.4}) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("low, high", [(8.0, 9.0), (-40.0, -38.0), (35.0, None), (None, -30.0), (-1.0, 1.0)])
def test_the_normalising_mass_keeps_its_digits_far_in_the_tails(low, high):
    value = torch.tensor((low if low is not None else high - 1) + 0.25)
    truncated = rt.truncated(dist.Normal(torch.tensor(0.0), 1.0), low, high)
    a, b = (-np.inf if low is None else low), (np.inf if high is None else high)
    assert truncated.log_prob(value).item() == pytest.approx(stats.truncnorm.logpdf(value.item(), a, b), rel=1e-9)


def test_the_exponential_truncated_above_is_scipys_truncated_exponential():
    value = torch.tensor([0.1, 0.9, 1.4])
    truncated = rt.truncated(dist.Exponential(torch.tensor(2.0)), None, 1.5)
    expected = stats.truncexpon.logpdf(value.numpy() * 2, 1.5 * 2) + math.log(2)
    assert torch.allclose(truncated.log_prob(value), torch.tensor(expected), rtol=1e-10)


def test_the_gradient_is_finite_where_the_interval_is_far_in_a_tail():
    mu = torch.tensor(0.3, requires_grad=True)
    rt.truncated(dist.Normal(mu, 1.0), 40.0, 41.0).log_prob(torch.tensor(40.5)).backward()
    assert torch.isfinite(mu.grad)


# Prior draws ----------------------------------------------------------------------------------


def test_prior_draws_of_a_truncated_latent_lie_inside_with_the_truncated_mean():
    program = compile_source("latent x ~ Normal(1, 2) T[0, 3]\n")
    with pyro.plate("draws", 20_000, dim=-1):
        x = poutine.trace(program.model).get_trace(program.load_data({})).nodes["x"]["value"]
    a, b = (0 - 1) / 2, (3 - 1) / 2
    mean, sd = stats.truncnorm.stats(a, b, loc=1, scale=2)
    assert x.min() >= 0 and x.max() <= 3
    assert x.mean().item() == pytest.approx(mean, abs=4 * math.sqrt(sd / 20_000))


@pytest.mark.parametrize("low, high", [(35.0, None), (None, -50.0), (8.0, 8.5)])
def test_normal_draws_far_in_a_tail_stay_finite_and_inside(low, high):
    draws = rt.truncated(dist.Normal(torch.tensor(0.0), 1.0), low, high).sample((20_000,))
    a, b = (-np.inf if low is None else low), (np.inf if high is None else high)
    assert torch.isfinite(draws).all() and (draws >= a).all() and (draws <= b).all()
    mean, variance = stats.truncnorm.stats(a, b)
    assert draws.mean().item() == pytest.approx(mean, abs=4 * math.sqrt(variance / 20_000))


def test_prior_predictive_draws_of_a_censored_observation_are_clamped_at_the_bound():
    program = compile_source(CENSORED)
    _, draws = program.predict({"N": 4, "c": [0.0, 1.0, 2.0, 3.0]}, draws=500, seed=0)
    assert (draws["y"] <= torch.tensor([0.0, 1.0, 2.0, 3.0])).all()
    assert (draws["y"][:, 0] == 0.0).any()


# Fits against exact answers -----------------------------------------------------------------


def _grid_posterior(log_density) -> tuple[float, float]:
    """Mean and sd of a one-dimensional posterior on 20,001 points."""
    grid = np.linspace(-5.0, 8.0, 20_001)
    log_p = log_density(grid)
    weights = np.exp(log_p - log_p.max())
    weights /= weights.sum()
    mean = (weights * grid).sum()
    return mean, math.sqrt((weights * (grid - mean) ** 2).sum())


def test_a_mean_from_right_censored_data_matches_the_grid_posterior():
    generator = np.random.default_rng(0)
    latent_values = generator.normal(1.0, 2.0, 40)
    c = np.full(40, 2.0)
    y = np.minimum(latent_values, c)
    censored = y == c

    def log_density(mu):
        mu = mu[:, None]
        return (stats.norm.logpdf(mu[:, 0], 0, 10) + stats.norm.logpdf(y[~censored], mu, 2).sum(1)
                + stats.norm.logsf(c[censored], mu, 2).sum(1))

    mean, sd = _grid_posterior(log_density)
    posterior = compile_source(CENSORED).fit({"N": 40, "y": y.tolist(), "c": c.tolist()}, seed=0).posterior["mu"]
    assert posterior.mean == pytest.approx(mean, abs=0.05 * sd)
    assert posterior.sd == pytest.approx(sd, rel=0.05)


def test_a_mean_from_truncated_data_matches_the_grid_posterior():
    generator = np.random.default_rng(1)
    draws = generator.normal(0.5, 1.0, 200)
    y = draws[draws > 0][:60]
    program = compile_source("data N: int\ndata y: real[N]\nlatent mu ~ Normal(0, 10)\n"
                             "observe y[i] ~ Normal(mu, 1) T[0, ]\n")

    def log_density(mu):
        return stats.norm.logpdf(mu, 0, 10) + stats.truncnorm.logpdf(y, -mu[:, None], np.inf, loc=mu[:, None]).sum(1)

    mean, sd = _grid_posterior(log_density)
    posterior = program.fit({"N": len(y), "y": y.tolist()}, seed=0).posterior["mu"]
    assert posterior.mean == pytest.approx(mean, abs=0.05 * sd)
    assert posterior.sd == pytest.approx(sd, rel=0.05)


def test_nuts_keeps_a_truncated_latent_inside_its_interval():
    program = compile_source("data y: real[3]\nlatent s ~ Normal(0, 1) T[0.5, 2]\nobserve y ~ Normal(0, s)\n")
    draws = program.sample({"y": [0.1, -2.0, 1.5]}, seed=0, warmup=100, samples=100, chains=1).draws["s"]
    assert (draws >= 0.5).all() and (draws <= 2).all()


# Data and spec errors --------------------------------------------------------------------------


def test_data_outside_a_truncation_bound_is_a_located_data_error():
    with pytest.raises(DataError, match=r"y\[1\] = -0.5 is outside the support of the truncated Normal") as error:
        compile_source(TRUNCATED).load_data({"N": 2, "y": [1.0, -0.5]})
    assert error.value.span.line == 6


def test_data_above_its_censoring_bound_is_a_located_data_error():
    with pytest.raises(DataError, match=r"y\[1\] = 2.5 is above its censored bound c\[1\] = 2") as error:
        compile_source(CENSORED).load_data({"N": 2, "y": [1.0, 2.5], "c": [2.0, 2.0]})
    assert error.value.span.line == 6


@pytest.mark.parametrize("spec, message", [
    ("data y: real\nobserve y ~ Poisson(3) T[0, 5]\n", "Poisson cannot be truncated"),
    ("data N: int\ndata y: real[N]\ndata lo: real[N]\nlatent s[i] ~ Normal(0, 1) T[lo[i], ]\n",
     "the bounds of a truncated latent must be one number"),
    ("latent mu: ordered[2] ~ Normal(0, 1) T[0, ]\n", "does not apply to ordered vectors"),
])
def test_what_cannot_be_truncated_is_refused(spec, message):
    with pytest.raises(PplError, match=message):
        compile_source(spec)


def test_an_observations_bounds_may_depend_on_latents():
    program = compile_source("data y: real[2]\nlatent lo ~ Normal(0, 1)\nobserve y ~ Normal(0, 1) T[lo, ]\n")
    expected = stats.norm.logpdf(-0.5) + stats.truncnorm.logpdf([0.0, 1.0], -0.5, np.inf).sum()
    assert _log_joint(program, {"y": [0.0, 1.0]}, {"lo": -0.5}) == pytest.approx(expected, rel=1e-10)


def test_bounds_the_data_leave_no_room_between_are_a_located_data_error():
    program = compile_source("data lo: real\ndata hi: real\nlatent s ~ Normal(0, 1) T[lo, hi]\n")
    with pytest.raises(DataError, match="the lower bound 2 is not below the upper bound 1") as error:
        program.load_data({"lo": 2.0, "hi": 1.0})
    assert error.value.span.line == 3


# Every row that can be truncated: (the distribution, a lower and an upper bound inside its support).
TRUNCATABLE = {
    "Normal": (dist.Normal(0.5, 2.0), -1.0, 3.0), "HalfNormal": (dist.HalfNormal(2.0), 0.5, 3.0),
    "Cauchy": (dist.Cauchy(0.0, 1.0), 2.0, 30.0), "HalfCauchy": (dist.HalfCauchy(1.0), 0.1, 4.0),
    "Laplace": (dist.Laplace(1.0, 0.5), -2.0, 1.5), "Gumbel": (dist.Gumbel(0.0, 1.0), -1.0, 5.0),
    "LogNormal": (dist.LogNormal(0.0, 1.0), 0.5, 6.0), "Exponential": (dist.Exponential(0.7), 1.0, 9.0),
    "Weibull": (dist.Weibull(1.5, 2.0), 0.2, 2.5),
}


def test_the_cases_cover_every_row_that_can_be_truncated():
    assert set(TRUNCATABLE) == set(distributions.WITH_CDF)


@pytest.mark.parametrize("name", list(TRUNCATABLE))
def test_every_truncatable_density_integrates_to_one_and_draws_inside(name):
    base, low, high = TRUNCATABLE[name]
    for bounds in ((low, high), (low, None), (None, high)):
        truncated = rt.truncated(base, *bounds)
        a, b = (low if bounds[0] is not None else base.support.lower_bound if hasattr(base.support, "lower_bound")
                else -np.inf), (high if bounds[1] is not None else np.inf)
        mass, _ = integrate.quad(lambda x: math.exp(truncated.log_prob(torch.tensor(x)).item()), a, b, limit=200)
        assert mass == pytest.approx(1.0, abs=1e-6), bounds
        draws = truncated.sample((2000,))
        assert (draws >= a).all() and (draws <= b).all()
