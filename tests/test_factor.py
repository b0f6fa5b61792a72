"""`factor NAME[...] = EXPR`: a term added to the log joint as it is (pyro.factor).

A factor that writes out a Normal log-density must give what `observe` gives: the same
log joint at any point, the same (here exact, conjugate) posterior, and it is no
observation: predictions and the pointwise log-likelihood leave it out."""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from test_linear_response import KNOWN_NOISE

from compiler import PplError, compile_source
from compiler.inference import fit as infer
from compiler.inference.config import RunConfig

OBSERVED = KNOWN_NOISE  # the conjugate regression with known noise

# The same likelihood written as a log-density: -((y - mean) / 2)^2 / 2 - log(2) - log(2 pi) / 2.
FACTORED = """
data N: int
data x: real[N]
data y: real[N]
latent a ~ Normal(1, 10)
latent b ~ Normal(0, 10)
factor likelihood[i] = -0.5 * ((y[i] - a - b * x[i]) / 2) ^ 2 - log(2.0) - 0.5 * log(2 * 3.141592653589793)
"""


def _data(rows: int = 30) -> dict:
    generator = np.random.default_rng(0)
    x = generator.normal(3.0, 1.0, rows)
    return {"N": rows, "x": x.tolist(), "y": (1.5 + 0.7 * x + 2 * generator.normal(size=rows)).tolist()}


def _log_joint(program, data, a: float, b: float) -> float:
    conditioned = poutine.condition(program.compiled.model, {"a": torch.tensor(a), "b": torch.tensor(b)})
    return poutine.trace(conditioned).get_trace(program.load_data(data)).log_prob_sum().item()


def test_a_factor_is_one_pyro_factor_site_under_the_plate():
    source = compile_source(FACTORED).code.source
    assert source.count("pyro.factor(") == 1
    assert 'with N_plate:\n        pyro.factor(\n            "likelihood",' in source


def test_the_factor_form_has_the_log_joint_of_the_observe_form():
    data = _data()
    observed, factored = compile_source(OBSERVED), compile_source(FACTORED)
    for a, b in [(0.0, 0.0), (1.5, 0.7), (-2.0, 3.0)]:
        assert _log_joint(factored, data, a, b) == pytest.approx(_log_joint(observed, data, a, b), rel=1e-12)


def test_the_log_joint_is_that_of_a_hand_written_pyro_model():
    data = _data()
    x, y = torch.tensor(data["x"]), torch.tensor(data["y"])

    def model():
        a = pyro.sample("a", dist.Normal(1.0, 10.0))
        b = pyro.sample("b", dist.Normal(0.0, 10.0))
        with pyro.plate("N", len(y)):
            pyro.factor("likelihood", dist.Normal(a + b * x, 2.0).log_prob(y))

    conditioned = poutine.condition(model, {"a": torch.tensor(0.3), "b": torch.tensor(0.9)})
    by_hand = poutine.trace(conditioned).get_trace().log_prob_sum().item()
    assert _log_joint(compile_source(FACTORED), data, 0.3, 0.9) == pytest.approx(by_hand, rel=1e-12)


def test_the_factor_form_gives_the_exact_conjugate_posterior_as_observe_does():
    data = _data()
    design = torch.stack([torch.ones(data["N"]), torch.tensor(data["x"])], dim=1)
    precision = design.T @ design / 2**2 + torch.eye(2) / 10**2
    covariance = torch.linalg.inv(precision)
    mean = covariance @ (design.T @ torch.tensor(data["y"]) / 2**2 + torch.tensor([1.0, 0.0]) / 10**2)
    program = compile_source(FACTORED)
    result = infer.fit(program.compiled, program.load_data(data), RunConfig())
    gaussian = result.gaussian
    assert torch.allclose(gaussian.mean, mean, rtol=1e-6, atol=1e-8)
    assert torch.allclose(gaussian.scale_tril @ gaussian.scale_tril.T, covariance, rtol=1e-6, atol=0)


def test_nuts_draws_the_same_chain_from_the_factor_form_as_from_the_observe_form():
    data = _data()
    factored, observed = (compile_source(source).sample(data, warmup=100, samples=100, chains=1, seed=0)
                          for source in (FACTORED, OBSERVED))
    for latent in ("a", "b"):
        assert np.allclose(factored.draws[latent], observed.draws[latent], rtol=1e-6, atol=1e-9)


@pytest.fixture(scope="module")
def mixed_fit():
    """Observations of y, and a factor on the slope: only y is observed."""
    source = OBSERVED + "factor shrink = -0.5 * (b / 0.5) ^ 2\n"
    return compile_source(source).fit(_data(), seed=0)


def test_predictions_draw_the_observed_sites_and_not_the_factor(mixed_fit):
    predicted = mixed_fit.predict(20)
    assert set(predicted) == {"y"}


def test_the_pointwise_log_likelihood_leaves_factors_out(mixed_fit):
    assert set(mixed_fit.log_likelihood()) == {"y"}


def test_a_factor_enters_the_posterior(mixed_fit):
    unshrunk = compile_source(OBSERVED).fit(_data(), seed=0)
    assert abs(mixed_fit.posterior["b"].mean) < abs(unshrunk.posterior["b"].mean)


def test_an_array_factor_is_summed():
    program = compile_source("latent z[3] ~ Normal(0, 1)\nfactor f = -z\n")
    conditioned = poutine.condition(program.compiled.model, {"z": torch.tensor([1.0, 2.0, 3.0])})
    trace = poutine.trace(conditioned).get_trace(program.load_data({}))
    trace.compute_log_prob()
    assert trace.nodes["f"]["log_prob_sum"].item() == pytest.approx(-6.0)
    assert trace.log_prob_sum().item() == pytest.approx(-6.0 + dist.Normal(0.0, 1.0).log_prob(
        torch.tensor([1.0, 2.0, 3.0])).sum().item())


def test_a_constant_factor_is_a_tensor_site():
    program = compile_source("latent z ~ Normal(0, 1)\nfactor f = 2\n".replace("2", "2.5"))
    trace = poutine.trace(poutine.condition(program.compiled.model, {"z": torch.tensor(0.0)})).get_trace(
        program.load_data({}))
    assert trace.log_prob_sum().item() == pytest.approx(2.5 - 0.5 * math.log(2 * math.pi))


@pytest.mark.parametrize("source, message", [
    ("data y: real[3]\nfactor f = y > 0\n", "a factor adds a real log-density, but this value is an int"),
    ("data X: real[3, 2]\nfactor f[i] = X[i]\n", "'f[...]' adds one term per element, but this value is [2]"),
    ("data y: real[3]\nfactor f[i] = y[i] + y\n", "'f[...]' adds one term per element, but this value is [3]"),
    ("latent f ~ Normal(0, 1)\nfactor f = f\n", "'f' is already declared on line 1"),
])
def test_the_checker_refuses_a_wrong_factor(source, message):
    with pytest.raises(PplError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compile_source(source)


def test_a_factor_over_minibatched_rows_is_scaled_as_the_observations_are():
    from compiler.inference import minibatch

    program = compile_source(OBSERVED + "factor extra[i] = -0.5 * (b * x[i]) ^ 2\n")
    batching = minibatch.plan(program.compiled, program.load_data(_data()), batch_size=10)
    assert batching.scales == {"y": 3.0, "extra": 3.0}
