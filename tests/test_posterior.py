"""Draws from a fitted guide: predictive draws come from `pyro.infer.Predictive` with
only the observe statements released, and every draw runs in the fit's own guide state."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from compiler import compile_file
from compiler.inference.posterior import ReleaseObserved


def _model():
    f = pyro.sample("f", dist.Normal(0.0, 1.0))
    pyro.deterministic("twice", 2 * f)
    return pyro.sample("x", dist.Normal(f, 1.0), obs=torch.tensor(100.0))


def test_only_the_named_observations_are_released():
    trace = pyro.poutine.trace(ReleaseObserved({"x"})(_model)).get_trace()
    assert not trace.nodes["x"]["is_observed"] and trace.nodes["x"]["value"] != 100.0
    assert trace.nodes["twice"]["value"] == 2 * trace.nodes["f"]["value"]


def test_other_observations_keep_their_data():
    trace = pyro.poutine.trace(ReleaseObserved({"y"})(_model)).get_trace()
    assert trace.nodes["x"]["is_observed"] and trace.nodes["x"]["value"] == 100.0


def test_posterior_predictive_draws_have_the_datas_shape_and_follow_the_fit(specs):
    coin = compile_file(specs / "coin.ppl")
    report = coin.fit(seed=0)
    draws = report.predict(2000)["x"]
    data = coin.load_data()
    assert draws.shape == (2000,) + tuple(data["x"].shape)
    # Each flip is Bernoulli(f) with f from the posterior Beta(16, 14): mean 16/30, sd of the
    # mean of 2000 x 10 flips below 0.005.
    assert abs(draws.double().mean().item() - 16 / 30) < 0.02
