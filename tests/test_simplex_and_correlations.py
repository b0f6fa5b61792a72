"""Latents typed by their support: `latent theta: simplex[K]` (uniform without `~`, or
`~ Dirichlet(a)`; arrays of them for transition rows) and `latent L: cholesky_factor_corr[K]
~ LKJCholesky(K, eta)`; and the matrix functions models with them need: cholesky,
diag_pre_multiply, gp_exp_quad_cov. The tables' rows are also checked in tests/test_tables.py."""

from __future__ import annotations

from pathlib import Path

import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from compiler import PplError, compile_source
from compiler.backend import runtime
from compiler.cli import main
from compiler.errors import Source
from compiler.frontend import distributions, syntax
from compiler.frontend.parse import parse_program

UNIFORM_SIMPLEXES = """
data K: int
data J: int
latent theta: simplex[K]
latent rows[J]: simplex[K]
"""
CORRELATED = """
data K: int
latent L: cholesky_factor_corr[K] ~ LKJCholesky(K, 2)
"""


def _guide_draw(program, data, name: str) -> torch.Tensor:
    return poutine.trace(program.guide).get_trace(data).nodes[name]["value"].detach()


# Parse and check ---------------------------------------------------------------------------


def test_a_simplex_declaration_needs_no_distribution():
    (declaration,) = parse_program(Source("<spec>", "latent theta: simplex[3]\n")).statements
    assert isinstance(declaration, syntax.LatentDecl)
    assert declaration.distribution is None and declaration.vector_type.constraint == "simplex"


def test_a_simplex_without_distribution_is_a_uniform_dirichlet_of_its_size():
    theta, rows = compile_source(UNIFORM_SIMPLEXES).ir.latents
    assert (theta.distribution.name, theta.shape, theta.distribution.support.kind) == ("Dirichlet", ("K",), "simplex")
    assert rows.shape == ("J", "K") and [p.size for p in rows.plates] == ["J"]


def test_a_cholesky_factor_is_a_k_by_k_lkj_cholesky_latent():
    (latent,) = compile_source(CORRELATED).ir.latents
    assert (latent.distribution.name, latent.shape, latent.distribution.support.kind) == (
        "LKJCholesky", ("K", "K"), distributions.CORR_CHOLESKY)


@pytest.mark.parametrize("spec, message", [
    ("data K: int\nlatent theta: simplex[K] ~ Normal(0, 1)\n", "a simplex is drawn from Dirichlet, not Normal"),
    ("data a: real[4]\nlatent theta: simplex[3] ~ Dirichlet(a)\n", r"draws \[4\], but the type says simplex\[3\]"),
    ("latent L: cholesky_factor_corr[3] ~ LKJCholesky(4)\n", r"draws \[4, 4\], but the type says"),
    ("latent L: cholesky_factor_corr[3] ~ Dirichlet(ones(3))\n", "cholesky_factor_corr is drawn from LKJCholesky"),
    ("latent L: cholesky_factor_corr[3]\n", "cholesky_factor_corr\\[...\\] has no default one"),
    ("latent mu\n", "'mu' has no distribution"),
    ("latent mu: ordered[3]\n", "need a distribution on the real line"),
    ("latent L ~ LKJCholesky(1)\n", "must be a size of at least 2"),
    ("data eta: real\nlatent L ~ LKJCholesky(eta)\n", "must be a size of at least 2"),
])
def test_misuses_are_located_errors(spec, message):
    with pytest.raises(PplError, match=message) as error:
        compile_source(spec)
    assert error.value.span is not None


def test_lkj_on_correlation_matrices_points_to_the_cholesky_form():
    with pytest.raises(PplError, match="unknown distribution 'LKJ'") as error:
        compile_source("latent C ~ LKJ(3, 2)\n")
    assert "LKJCholesky(K, eta) for a cholesky_factor_corr[K] L" in error.value.hint


# Generated code ------------------------------------------------------------------------------


def test_a_uniform_simplex_is_sampled_from_dirichlet_ones_and_guided_by_stick_breaking():
    source = compile_source(UNIFORM_SIMPLEXES).code.source
    assert 'pyro.sample("theta", dist.Dirichlet(torch.ones((K,))))' in source
    assert 'rt.uniform_init((J, K - 1))' in source and "dist.transforms.StickBreakingTransform()" in source


def test_a_cholesky_factor_is_guided_through_the_corr_cholesky_bijection():
    source = compile_source(CORRELATED).code.source
    assert 'pyro.sample("L", dist.LKJCholesky(K, 2))' in source
    assert "rt.uniform_init((K * (K - 1) // 2,))" in source
    assert "torch.distributions.biject_to(constraints.corr_cholesky)" in source


# Log densities ------------------------------------------------------------------------------


def test_a_uniform_simplex_has_the_log_density_of_dirichlet_ones():
    program = compile_source(UNIFORM_SIMPLEXES)
    theta, rows = torch.tensor([0.2, 0.3, 0.5]), torch.tensor([[0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    trace = poutine.trace(poutine.condition(program.model, {"theta": theta, "rows": rows})).get_trace(
        program.load_data({"K": 3, "J": 2}))
    uniform = dist.Dirichlet(torch.ones(3))
    torch.testing.assert_close(trace.log_prob_sum(), uniform.log_prob(theta) + uniform.log_prob(rows).sum())


# Every draw on the constraint --------------------------------------------------------------


@pytest.mark.parametrize("guide", ["normal", "native", "fullrank", "lowrank"])
def test_every_guide_draw_of_a_simplex_is_positive_and_sums_to_one(guide):
    program = compile_source(UNIFORM_SIMPLEXES, guide=guide)
    data = program.load_data({"K": 4, "J": 3})
    for name, shape in (("theta", (4,)), ("rows", (3, 4))):
        draw = _guide_draw(program, data, name)
        assert draw.shape == shape and (draw > 0).all()
        torch.testing.assert_close(draw.sum(-1), torch.ones(shape[:-1], dtype=draw.dtype))


@pytest.mark.parametrize("guide", ["normal", "fullrank", "lowrank"])
def test_every_guide_draw_of_a_cholesky_factor_is_lower_triangular_with_unit_rows(guide):
    program = compile_source(CORRELATED, guide=guide)
    draw = _guide_draw(program, program.load_data({"K": 4}), "L")
    assert draw.shape == (4, 4) and (draw.triu(1) == 0).all() and (draw.diagonal() > 0).all()
    torch.testing.assert_close(draw.pow(2).sum(-1), torch.ones(4, dtype=draw.dtype))


# Fitted against known answers ----------------------------------------------------------------


COUNTS = [3, 9, 18]
LKJ_SIZE, LKJ_ETA = 3, 2.0


@pytest.fixture(scope="module")
def categorical_fit():
    """A uniform simplex under categorical counts: the posterior is Dirichlet(1 + counts)."""
    y = [k for k, count in enumerate(COUNTS) for _ in range(count)]
    program = compile_source("data K: int\ndata N: int\ndata y: int<lower=0, upper=K-1>[N]\n"
                             "latent theta: simplex[K]\nobserve y[n] ~ Categorical(theta)\n")
    return program.fit({"K": 3, "y": y}, seed=0)


@pytest.fixture(scope="module")
def lkj_fit():
    """LKJCholesky with no data: the posterior is the prior."""
    return compile_source(f"latent L: cholesky_factor_corr[{LKJ_SIZE}] ~ LKJCholesky({LKJ_SIZE}, {LKJ_ETA:g})\n"
                          ).fit({}, seed=0)


def test_every_posterior_draw_of_a_simplex_sums_to_one(categorical_fit):
    draws = categorical_fit.draws["theta"]
    assert (draws > 0).all()
    torch.testing.assert_close(draws.sum(-1), torch.ones(len(draws), dtype=draws.dtype))


def test_every_posterior_draw_of_a_cholesky_factor_is_lower_triangular_with_unit_rows(lkj_fit):
    factors = lkj_fit.draws["L"]
    assert (factors.triu(1) == 0).all() and (factors.diagonal(dim1=-2, dim2=-1) > 0).all()
    torch.testing.assert_close(factors.pow(2).sum(-1), torch.ones(len(factors), LKJ_SIZE, dtype=factors.dtype))


def test_a_uniform_simplex_under_categorical_counts_has_the_conjugate_dirichlet_posterior(categorical_fit):
    posterior = categorical_fit.posterior["theta"]
    exact = dist.Dirichlet(torch.tensor(COUNTS, dtype=torch.float64) + 1)
    # Within 0.1 of the exact posterior sds: the stick-breaking normal is close to a Dirichlet this peaked.
    for k in range(3):
        assert posterior.mean[k] == pytest.approx(exact.mean[k].item(), abs=0.1 * exact.stddev[k].item())
        assert posterior.sd[k] == pytest.approx(exact.stddev[k].item(), rel=0.1)


def test_with_no_data_a_correlation_follows_the_lkj_marginal(lkj_fit):
    """Under LKJCholesky(K, eta) each correlation is 2 B - 1 with B ~ Beta(eta - 1 + K/2, eta - 1 + K/2):
    mean 0, variance 1 / (2 eta - 1 + K)."""
    factors = lkj_fit.draws["L"]
    correlations = factors @ factors.transpose(-1, -2)
    exact_sd = (1 / (2 * LKJ_ETA - 1 + LKJ_SIZE)) ** 0.5
    for i, j in ((0, 1), (0, 2), (1, 2)):
        r = correlations[:, i, j]
        assert r.mean().item() == pytest.approx(0, abs=0.05 * exact_sd)
        assert r.std().item() == pytest.approx(exact_sd, rel=0.05)


# Matrix functions ------------------------------------------------------------------------------


def test_cholesky_of_a_matrix_that_is_not_positive_definite_is_nan_not_an_error():
    matrices = torch.stack([torch.eye(2) * 4, -torch.eye(2)])
    factors = runtime.cholesky(matrices)
    torch.testing.assert_close(factors[0], torch.eye(2) * 2)
    assert factors[1].isnan().all()


def test_a_fit_whose_matrix_is_not_positive_definite_is_a_located_fit_error(tmp_path: Path, capsys):
    spec = tmp_path / "not_positive_definite.ppl"
    spec.write_text("data N: int\ndata y: real[N]\nlatent a ~ Normal(0, 1)\n"
                    "observe y ~ MultivariateNormal(zeros(N), scale_tril=cholesky(identity(N) * a))\n")
    (tmp_path / "not_positive_definite.data.json").write_text('{"N": 2, "y": [0.1, 0.2]}')
    assert main(["run", str(spec)]) == 4
    error = capsys.readouterr().err
    assert "not_positive_definite.ppl:4:1: error:" in error and "Traceback" not in error


def test_gp_exp_quad_cov_of_latent_hyperparameters_is_stans_kernel():
    program = compile_source("data N: int\ndata x: real[N]\nlatent alpha ~ HalfNormal(1)\nlatent rho ~ Gamma(5, 2)\n"
                             "let K = gp_exp_quad_cov(x, alpha, rho)\n")
    x = torch.tensor([0.0, 1.0, 2.5])
    values = {"alpha": torch.tensor(1.3), "rho": torch.tensor(0.8)}
    trace = poutine.trace(poutine.condition(program.model, values)).get_trace(program.load_data({"x": x.tolist()}))
    distance = x[:, None] - x[None, :]
    expected = 1.3 ** 2 * torch.exp(-distance ** 2 / (2 * 0.8 ** 2))
    torch.testing.assert_close(trace.nodes["K"]["value"].double(), expected.double())


def test_a_gaussian_process_model_is_the_hand_written_pyro_model():
    """posteriordb's gp_pois_regr, written in Pyro directly: the same log joint at random values."""
    source = (Path(__file__).resolve().parent.parent / "specs" / "posteriordb" / "gp_pois_regr-gp_pois_regr.ppl")
    program = compile_source(source.read_text())
    data = program.load_data({"x": [-2.0, 0.0, 1.5, 4.0], "k": [3, 0, 7, 2]})
    generator = torch.Generator().manual_seed(0)
    values = {"rho": torch.rand((), generator=generator) + 0.5, "alpha": torch.rand((), generator=generator) + 0.5,
              "f_tilde": torch.randn(4, generator=generator)}
    actual = poutine.trace(poutine.condition(program.model, values)).get_trace(data).log_prob_sum()
    x = torch.tensor([-2.0, 0.0, 1.5, 4.0])
    covariance = values["alpha"] ** 2 * torch.exp(-(x[:, None] - x[None, :]) ** 2 / (2 * values["rho"] ** 2))
    f = torch.linalg.cholesky(covariance + 1e-10 * torch.eye(4)) @ values["f_tilde"]
    expected = (dist.Gamma(25.0, 4.0).log_prob(values["rho"]) + dist.HalfNormal(2.0).log_prob(values["alpha"])
                + dist.Normal(0.0, 1.0).log_prob(values["f_tilde"]).sum()
                + dist.Poisson(f.exp()).log_prob(torch.tensor([3.0, 0.0, 7.0, 2.0])).sum())
    torch.testing.assert_close(actual.double(), expected.double(), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_nuts_draws_a_correlation_from_the_lkj_marginal():
    fit = compile_source(f"latent L: cholesky_factor_corr[{LKJ_SIZE}] ~ LKJCholesky({LKJ_SIZE}, {LKJ_ETA:g})\n"
                         ).sample({}, seed=0, warmup=300, samples=1000, chains=2)
    factors = fit.draws["L"]
    r = (factors @ factors.transpose(-1, -2))[:, 0, 1]
    exact_sd = (1 / (2 * LKJ_ETA - 1 + LKJ_SIZE)) ** 0.5
    # 2,000 draws: the mean's Monte Carlo error is about 0.02 sds, the sd's about 2 %.
    assert r.mean().item() == pytest.approx(0, abs=0.1 * exact_sd)
    assert r.std().item() == pytest.approx(exact_sd, rel=0.08)
