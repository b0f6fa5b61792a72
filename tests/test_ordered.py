"""Latent vectors constrained as a whole: `latent mu: ordered[K] ~ D(...)` and
`positive_ordered[K]`. The density is D's for each element, restricted to the constraint
(unnormalised there, as Stan's constrained parameters); the guide, NUTS and prior draws
all stay inside it."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine

from compiler import PplError, compile_source

TWO_GROUPS = """
data N: int
data a: real[N]
data b: real[N]
latent mu: ordered[2] ~ Normal(0, 10)
observe a[i] ~ Normal(mu[0], 1)
observe b[i] ~ Normal(mu[1], 1)
"""


def _two_groups() -> dict:
    generator = np.random.default_rng(0)
    return {"N": 50, "a": (-2 + generator.normal(size=50)).tolist(), "b": (3 + generator.normal(size=50)).tolist()}


def test_an_ordered_latent_is_one_vector_of_its_size():
    latent = compile_source(TWO_GROUPS).ir.latents[0]
    assert (latent.shape, latent.constraint, latent.plates) == ((2,), "ordered_vector", ())


def test_its_log_density_is_the_elements_density_at_an_ordered_value():
    program = compile_source("latent mu: ordered[3] ~ Normal(1, 2)\n")
    value = torch.tensor([-1.0, 0.5, 4.0], dtype=torch.float64)
    trace = poutine.trace(poutine.condition(program.model, {"mu": value})).get_trace(program.load_data({}))
    expected = torch.distributions.Normal(1.0, 2.0).log_prob(value).sum()
    assert torch.allclose(trace.log_prob_sum(), expected)
    assert trace.nodes["mu"]["fn"].support is pyro.distributions.constraints.ordered_vector


def test_the_fit_recovers_two_separated_means_in_order():
    report = compile_source(TWO_GROUPS).fit(_two_groups(), seed=0)
    data = _two_groups()
    # Far apart, the ordering barely binds: each mean's posterior is its group's conjugate normal
    # (prior sd 10, unit noise, 50 rows), to within 0.1 of its sd (Monte Carlo and the prior's pull).
    for k, values in enumerate((data["a"], data["b"])):
        precision = 50 + 1 / 100
        assert report.posterior["mu"].mean[k] == pytest.approx(sum(values) / precision, abs=0.1 / precision**0.5)
        assert report.posterior["mu"].sd[k] == pytest.approx(precision**-0.5, rel=0.05)


def test_every_posterior_draw_is_ordered():
    fit = compile_source(TWO_GROUPS).fit(_two_groups(), seed=0)
    assert (fit.draws["mu"][:, 0] < fit.draws["mu"][:, 1]).all()


def test_positive_ordered_draws_are_positive_and_increasing():
    program = compile_source("data K: int\ndata y: real[K]\nlatent c: positive_ordered[K] ~ Exponential(1)\n"
                             "observe y[k] ~ Normal(c[k], 0.3)\n")
    draws = program.fit({"K": 3, "y": [0.5, 1.0, 2.0]}, seed=0).draws["c"]
    assert (draws > 0).all() and (draws.diff(dim=-1) > 0).all()


def test_nuts_samples_inside_the_order():
    fit = compile_source(TWO_GROUPS).sample(_two_groups(), seed=0, warmup=100, samples=100, chains=2)
    assert (fit.draws["mu"][:, 0] < fit.draws["mu"][:, 1]).all()


def test_prior_draws_are_the_elements_draws_sorted():
    program = compile_source("data N: int\ndata y: real[N]\nlatent mu: ordered[4] ~ Normal(0, 1)\n"
                             "observe y[i] ~ Normal(mu[0], 1)\n")
    data = program.load_data({"N": 3}, simulate_missing=True)
    with pyro.plate("draws", 500, dim=-2):
        mu = poutine.trace(program.model).get_trace(data).nodes["mu"]["value"]
    assert mu.shape[-1] == 4 and mu.reshape(-1, 4).shape[0] == 500
    assert (mu.diff(dim=-1) > 0).all()
    _, draws = program.predict({"N": 3}, draws=500, seed=0)
    assert draws["y"].shape == (500, 3)


@pytest.mark.parametrize("spec, message", [
    ("latent mu[2]: ordered[2] ~ Normal(0, 1)\n", "both subscripts and a vector type"),
    ("latent mu: ordered[2] ~ Exponential(1)\n", "need a distribution on the real line"),
    ("data s: real[2]\nlatent mu: ordered[2] ~ Normal(0, s)\n", "'scale' has shape \\[2\\]"),
])
def test_misuses_are_located_errors(spec, message):
    with pytest.raises(PplError, match=message):
        compile_source(spec)
