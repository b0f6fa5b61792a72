"""Minibatch SVI (`--batch-size`): each Adam step sees random rows of every data
plate, scaled so that the ELBO stays unbiased; what cannot be subsampled is refused."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REGRESSION
from pyro import poutine

from compiler import compile_file, compile_source
from compiler.errors import PplError
from compiler.inference import minibatch

pytestmark = pytest.mark.usefixtures("float64")


def test_a_batch_holds_b_rows_of_every_array_along_the_plate(regression):
    data = regression.load_data({"N": 100, "x": list(range(100)), "y": [2.0 * i for i in range(100)]})
    batching = minibatch.plan(regression, data, 10)
    batch = batching.sample(data, torch.Generator().manual_seed(0))
    assert batch["N"] == 10 and batch["x"].shape == (10,)
    assert torch.equal(batch["y"], 2 * batch["x"])  # rows stay rows
    assert batching.scales == {"y": 10.0}


def test_the_scaled_batch_log_likelihood_is_unbiased(regression):
    data = regression.load_data({"N": 100, "x": torch.linspace(-1, 1, 100).tolist(), "y": torch.randn(100).tolist()})
    batching = minibatch.plan(regression, data, 10)
    fixed = poutine.condition(regression.model, {"a": torch.tensor(0.7)})
    full = poutine.trace(fixed).get_trace(data).nodes["y"]["fn"].log_prob(data["y"]).sum()
    scaled = minibatch.ScaleObservations(batching.scales)(fixed)
    generator = torch.Generator().manual_seed(0)
    estimates = []
    for _ in range(4000):
        trace = poutine.trace(scaled).get_trace(batching.sample(data, generator))
        trace.compute_log_prob()
        estimates.append(trace.nodes["y"]["log_prob_sum"])  # Pyro applies the site's scale
    estimates = torch.stack(estimates)
    # 4,000 batches: the mean's standard error is sd / 63; four of them is a 1-in-10^4 miss.
    assert abs(estimates.mean() - full) < 4 * estimates.std() / len(estimates) ** 0.5


def test_a_minibatch_fit_reaches_the_reference_posterior(specs, linear_regression_in_batches):
    reference = json.loads((specs / "linear_regression.reference.json").read_text())["posterior"]
    report = linear_regression_in_batches
    for name in ("alpha", "beta", "sigma"):
        mean, sd = torch.tensor(report.posterior[name].mean), torch.tensor(reference[name]["sd"])
        # Within 0.3 reference sds, the bar of the full-data accuracy tests.
        assert ((mean - torch.tensor(reference[name]["mean"])).abs() <= 0.3 * sd).all(), name
    assert any("each holding 40 random rows of N = 200" in note for note in report.warnings)


def test_a_local_latent_is_refused_at_its_statement(specs):
    program = compile_file(specs / "eight_schools.ppl")
    with pytest.raises(PplError, match="latent 'theta_raw' has one element per row") as caught:
        program.fit(batch_size=4)
    assert caught.value.span.line == 10


def test_a_size_used_as_a_number_is_refused():
    program = compile_source(REGRESSION.replace("Normal(0, 5)", "Normal(0, N)"))
    with pytest.raises(PplError, match="uses .N. as a number"):
        program.fit({"x": [1.0] * 20, "y": [0.0] * 20}, batch_size=5)


def test_observations_scored_from_sufficient_statistics_are_not_subsampled(coin):
    report = coin.fit(batch_size=4)
    assert any("nothing to subsample" in note for note in report.warnings)


def test_batches_without_a_control_variate_need_adam():
    program = compile_source(REGRESSION.replace("latent a", "param s: real<lower=0> = 1.0\nlatent a"))
    with pytest.raises(PplError, match="--batch-size with L-BFGS needs the control variate"):
        program.fit({"x": [1.0, 2.0], "y": [1.0, 2.0]}, batch_size=1, optimizer="lbfgs")


def test_batches_of_fewer_than_five_rows_per_coordinate_take_adam_steps(linear_regression):
    report = linear_regression.fit(batch_size=14, steps=50)
    assert report.optimizer == "adam"
    assert any("fewer than 5 per guide coordinate (5)" in note for note in report.warnings)


def test_the_batch_size_is_on_the_command_line(specs, capsys):
    from compiler.cli import main

    # Five L-BFGS iterations show where the batches went; the fit's accuracy is the test above's.
    assert main(["run", str(specs / "linear_regression.ppl"), "--batch-size", "50", "--steps", "5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["optimizer"] == "lbfgs"
    assert any("each holding 50 random rows of N = 200" in note for note in report["warnings"])


MIXED = ("data N: int\ndata x: real[N]\ndata y: real[N]\ndata z: real[N]\nlatent mu ~ Normal(0, 5)\n"
         "latent b ~ Normal(0, 5)\nobserve y[i] ~ Normal(mu, 1)\nobserve z[i] ~ Normal(b * x[i], 1)\n")


def test_observations_from_sufficient_statistics_beside_split_ones_keep_their_full_weight():
    # y is scored from statistics of all its rows: scaling it by N / B would count it N / B times.
    program = compile_source(MIXED)
    data = program.load_data({"x": [0.1 * i for i in range(100)], "y": [1.0] * 100, "z": [0.0] * 100})
    batching = minibatch.plan(program, data, 10)
    assert batching.scales == {"z": 10.0}
    _, scales = minibatch.shard(program, data, 0, 2)
    assert scales == {"z": 2.0}


def test_a_second_plate_of_an_observed_matrix_is_not_split():
    program = compile_source("data N: int\ndata K: int\ndata y: real[N, K]\nlatent mu[K] ~ Normal(0, 5)\n"
                             "observe y[i, k] ~ Normal(mu[k], 1)\n")
    data = program.load_data({"y": [[0.0, 1.0, 2.0]] * 40})
    shard, scales = minibatch.shard(program, data, 1, 2)
    assert shard["N"] == 20 and shard["K"] == 3 and shard["y"].shape == (20, 3)
    assert scales == {"y": 2.0}
