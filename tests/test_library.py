"""The library: compile_source / compile_file -> Program with plain Pyro callables."""

from __future__ import annotations

import pyro
import torch
from conftest import COIN
from pyro import poutine
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.infer.mcmc import MCMC, NUTS
from pyro.optim import Adam

from compiler import compile_source
from compiler.results.report import Report


def test_compile_source_gives_a_program_with_model_and_guide():
    program = compile_source(COIN.read_text())
    assert callable(program.model) and callable(program.guide)


def test_fit_returns_the_report_object(coin):
    report = coin.fit(steps=100, seed=0, draws=500)
    assert isinstance(report, Report)
    assert report.steps == 100


def test_model_and_guide_work_with_plain_svi(coin):
    data = coin.load_data()
    svi = SVI(coin.model, coin.guide, Adam({"lr": 0.05}), Trace_ELBO())
    losses = [svi.step(data) for _ in range(50)]
    assert all(torch.isfinite(torch.tensor(losses)))


def test_model_works_with_predictive(coin):
    data = coin.load_data()
    samples = Predictive(coin.model, guide=coin.guide, num_samples=5)(data)
    assert samples["f"].shape[0] == 5
    assert samples["x"].shape == (5, 10)


def test_model_works_with_nuts(coin):
    mcmc = MCMC(NUTS(coin.model), num_samples=50, warmup_steps=50, disable_progbar=True)
    mcmc.run(coin.load_data())
    assert mcmc.get_samples()["f"].shape == (50,)


def test_trace_log_prob_sum_is_the_log_joint(coin):
    data = coin.load_data()
    trace = poutine.trace(coin.model).get_trace(data)
    f = trace.nodes["f"]["value"]
    expected = (pyro.distributions.Beta(10.0, 10.0).log_prob(f)
                + pyro.distributions.Bernoulli(f).log_prob(data["x"]).sum())
    assert torch.allclose(trace.log_prob_sum(), expected)
