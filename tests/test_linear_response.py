"""The linear-response covariance: exact on a Gaussian posterior, checked for enough
fixed draws, and the Gaussian the report's draws come from."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from compiler import compile_source
from compiler.inference import fit as infer
from compiler.inference import lanczos, linear_response
from compiler.inference.config import RunConfig

KNOWN_NOISE = """
data N: int
data x: real[N]
data y: real[N]
latent a ~ Normal(1, 10)
latent b ~ Normal(0, 10)
observe y[i] ~ Normal(a + b * x[i], 2)
"""


def _regression_data(rows: int = 30) -> dict:
    generator = np.random.default_rng(0)
    x = generator.normal(3.0, 1.0, rows)  # not centred: a and b correlate strongly
    return {"N": rows, "x": x.tolist(), "y": (1.5 + 0.7 * x + 2 * generator.normal(size=rows)).tolist()}


def _exact_covariance(data: dict) -> torch.Tensor:
    design = torch.stack([torch.ones(data["N"]), torch.tensor(data["x"])], dim=1)
    precision = design.T @ design / 2**2 + torch.eye(2) / 10**2
    return torch.linalg.inv(precision)


def test_the_lr_covariance_is_the_exact_posterior_covariance_of_a_conjugate_regression():
    program = compile_source(KNOWN_NOISE)
    data = _regression_data()
    result = infer.fit(program.compiled, program.load_data(data), RunConfig())
    gaussian = result.gaussian
    assert result.covariance == "linear-response"
    covariance = gaussian.scale_tril @ gaussian.scale_tril.T
    assert torch.allclose(covariance, _exact_covariance(data), rtol=1e-6, atol=0)


def test_the_mean_field_covariance_is_far_from_it_on_the_same_regression():
    program = compile_source(KNOWN_NOISE)
    data = _regression_data()
    result = infer.fit(program.compiled, program.load_data(data), RunConfig(covariance="mean-field"))
    exact_sds = _exact_covariance(data).diagonal().sqrt()
    assert (result.gaussian.scale_tril.diagonal() / exact_sds).max() < 0.5


def test_the_reported_sds_are_those_of_the_lr_gaussian():
    program = compile_source(KNOWN_NOISE)
    data = _regression_data()
    report = program.fit(data, seed=0)
    exact_sds = _exact_covariance(data).diagonal().sqrt()
    # 10,000 draws: the sd of an sd estimate is about 0.7 %; 3 % leaves four of them.
    assert report.posterior["a"].sd == pytest.approx(exact_sds[0].item(), rel=0.03)
    assert report.posterior["b"].sd == pytest.approx(exact_sds[1].item(), rel=0.03)


def test_the_draw_check_adds_draws_when_two_pairs_leave_the_means_uncertain():
    # A non-Gaussian posterior (a scale with few observations) fitted from two antithetic
    # pairs: the optimum moves with the choice of draws by more than a tenth of a posterior sd.
    program = compile_source("data N: int\ndata y: real[N]\nlatent m ~ Normal(0, 5)\n"
                             "latent s ~ HalfNormal(2)\nobserve y[i] ~ Normal(m, s)\n")
    data = {"N": 4, "y": [0.3, -1.2, 2.5, 0.9]}
    report = program.fit(data, seed=0, particles=4)
    assert any("so the fit was repeated with 8" in warning for warning in report.warnings)


def test_enough_draws_need_no_more():
    program = compile_source(KNOWN_NOISE)
    report = program.fit(_regression_data(), seed=0)
    assert not any("the fit was repeated" in warning for warning in report.warnings)


GROUPS = """
data N: int
data J: int
data g: int<lower=0, upper=J-1>[N]
data y: real[N]
latent mu ~ Normal(0, 10)
latent theta[J] ~ Normal(mu, 1)
observe y[i] ~ Normal(theta[g[i]], 2)
"""


def _groups_data(groups: int) -> dict:
    generator = np.random.default_rng(0)
    g = generator.integers(0, groups, 3 * groups)
    y = generator.normal(1, 1, groups)[g] + 2 * generator.normal(size=len(g))
    return {"N": len(g), "J": groups, "g": g.tolist(), "y": y.tolist()}


def _groups_exact_covariance(data: dict) -> torch.Tensor:
    groups, counts = data["J"], np.bincount(data["g"], minlength=data["J"])
    precision = torch.zeros(groups + 1, groups + 1, dtype=torch.float64)
    precision[0, 0] = 1 / 10**2 + groups
    precision[0, 1:] = precision[1:, 0] = -1.0
    precision[1:, 1:] = torch.diag(torch.tensor(1 + counts / 2**2, dtype=torch.float64))
    return torch.linalg.inv(precision)


def test_beyond_the_dense_limit_lanczos_gives_the_exact_covariance_of_a_gaussian_hierarchy():
    program = compile_source(GROUPS)
    data = _groups_data(320)  # 321 latents, 642 guide parameters: past MAX_PARAMETERS
    assert 2 * (data["J"] + 1) > linear_response.MAX_PARAMETERS
    result = infer.fit(program.compiled, program.load_data(data), RunConfig())
    covariance = result.gaussian.scale_tril @ result.gaussian.scale_tril.T
    exact = _groups_exact_covariance(data)
    assert result.covariance == "linear-response"
    # The scaled Hessian's identity part is only as exact as the fitted mean-field scales
    # (L-BFGS's tolerance): a few parts in a million of the largest entry.
    assert (covariance - exact).abs().max() <= 1e-5 * exact.abs().max()


def test_lanczos_gives_the_dense_answer_on_radon(monkeypatch, radon):
    dense = infer.fit(radon.compiled, radon.load_data(), RunConfig()).gaussian
    monkeypatch.setattr(linear_response, "MAX_PARAMETERS", 0)
    by_products = infer.fit(radon.compiled, radon.load_data(), RunConfig()).gaussian
    ratio = by_products.scale_tril.pow(2).sum(1).sqrt() / dense.scale_tril.pow(2).sum(1).sqrt()
    # TOLERANCE lets the variances settle to 0.5 %: sds to 0.25 %, twice that as a margin
    assert ratio.sub(1).abs().max() < 5e-3


def test_a_lanczos_run_that_does_not_settle_warns(monkeypatch):
    monkeypatch.setattr(lanczos, "MAX_VECTORS", lanczos.BLOCK)
    report = compile_source(GROUPS).fit(_groups_data(320), seed=0)
    assert any("had not settled" in warning for warning in report.warnings)


def test_too_many_coordinates_for_a_dense_covariance_keep_the_mean_field_with_a_warning(monkeypatch):
    monkeypatch.setattr(linear_response, "MAX_COORDINATES", 1)
    report = compile_source(KNOWN_NOISE).fit(_regression_data(), seed=0)
    assert report.covariance == "mean-field"
    assert any("more than the 1 pplc forms" in warning for warning in report.warnings)


def test_the_gaussians_log_density_is_torchs_multivariate_normal():
    generator = torch.Generator().manual_seed(0)
    root = torch.randn(5, 5, generator=generator, dtype=torch.float64)
    scale_tril = torch.linalg.cholesky(root @ root.T + torch.eye(5, dtype=torch.float64))
    mean = torch.randn(5, generator=generator, dtype=torch.float64)
    gaussian = linear_response.Gaussian((), mean, scale_tril, "linear-response")
    values = torch.randn(7, 5, generator=generator, dtype=torch.float64)
    expected = torch.distributions.MultivariateNormal(mean, scale_tril=scale_tril).log_prob(values)
    assert torch.allclose(gaussian.log_prob(values), expected, rtol=0, atol=1e-12)


def test_the_gaussians_log_density_of_one_draw_is_a_scalar():
    scale_tril = torch.diag(torch.tensor([2.0, 0.5], dtype=torch.float64))
    gaussian = linear_response.Gaussian((), torch.zeros(2, dtype=torch.float64), scale_tril, "linear-response")
    value = torch.tensor([2.0, -0.5], dtype=torch.float64)  # one sd out on each coordinate
    expected = -1.0 - math.log(2.0 * 0.5) - math.log(2 * math.pi)
    assert gaussian.log_prob(value).shape == ()
    assert gaussian.log_prob(value).item() == pytest.approx(expected, rel=1e-12)
