"""The distributions and functions real models reached for (issue 20), beyond the row-by-row
checks of test_tables.py: a latent under each new continuous prior fits to its exact posterior,
the generated code is the Pyro a person would write, and wrong arguments are spec or data errors.

The fits: `latent z ~ D` with 50 observations y ~ Normal(z, 1), so the posterior sd is near
1/sqrt(50) = 0.14 and the prior still bends it a little. Its exact mean and sd come from the
log density summed on a grid of 20,001 points over the posterior's bulk. The fit's mean must be
within 0.1 posterior sd of it and its sd within 10 %: the report summarises 10,000 guide draws
(Monte Carlo error 0.01 sd in the mean, 0.7 % in the sd), and what remains is the guide family's
own bias (a LogNormal, or a Normal pushed through exp and a shift, for a nearly Gaussian
posterior). Over fit seeds 0-4 on these five priors the errors were at most 0.021 sd in the mean
and 2.3 % in the sd, a fifth and a quarter of the bars.
"""

from __future__ import annotations

import math
import re

import pyro.distributions as dist
import pytest
import torch

from compiler import compile_source
from compiler.errors import DataError, PplError

N = 50
# prior call -> (its Pyro distribution, written directly; the value the data are simulated at)
PRIORS = {
    "Gumbel(0.5, 2)": (dist.Gumbel(0.5, 2.0), 1.2),
    "VonMises(0.5, 2)": (dist.VonMises(0.5, 2.0), 0.8),
    "HalfStudentT(3, 2)": (dist.FoldedDistribution(dist.StudentT(3.0, 0.0, 2.0)), 1.5),
    "Weibull(2, 1.5)": (dist.Weibull(2.0, 1.5), 1.5),
    "Pareto(1, 1.5)": (dist.Pareto(1.0, 1.5), 2.5),
}


def exact_posterior(prior: dist.Distribution, y: torch.Tensor) -> tuple[float, float]:
    """Mean and sd of p(z | y) ∝ prior(z) Π Normal(y | z, 1), summed on a grid over ± 8 sd."""
    centre, spread = y.mean().item(), 8 / math.sqrt(len(y))
    grid = torch.linspace(centre - spread, centre + spread, 20_001, dtype=torch.float64)
    assert bool(prior.support.check(grid).all()), "the posterior's bulk lies inside the prior's support"
    log_density = prior.log_prob(grid) + dist.Normal(grid[:, None], 1.0).log_prob(y).sum(-1)
    weights = (log_density - log_density.max()).exp()
    weights = weights / weights.sum()
    mean = (weights * grid).sum()
    return mean.item(), ((weights * (grid - mean) ** 2).sum()).sqrt().item()


@pytest.mark.parametrize("call", list(PRIORS))
def test_a_latent_under_the_prior_fits_to_its_exact_posterior(call: str):
    prior, truth = PRIORS[call]
    y = truth + torch.randn(N, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    program = compile_source(f"data N: int\ndata y: real[N]\nlatent z ~ {call}\nobserve y[i] ~ Normal(z, 1)\n")
    report = program.fit({"y": y.tolist()}, seed=0)
    mean, sd = exact_posterior(prior, y)
    assert report.converged
    assert abs(report.posterior["z"].mean - mean) < 0.1 * sd
    assert report.posterior["z"].sd == pytest.approx(sd, rel=0.1)


# The generated code ----------------------------------------------------------------------------

def emitted(text: str) -> str:
    return compile_source(text).code.source


@pytest.mark.parametrize(("statement", "pyro"), [
    ("latent z ~ HalfStudentT(3, 2)", "dist.FoldedDistribution(dist.StudentT(df=3, scale=2))"),
    ("latent z ~ Pareto(1, 1.5)", "dist.Pareto(1, 1.5)"),
    ("latent z ~ Weibull(2, 1.5)", "dist.Weibull(2, 1.5)"),
    ("latent z ~ BetaBinomial(2, 3, 4)", "dist.BetaBinomial(2, 3, 4)"),
    ("observe y[i] ~ ZeroInflatedPoisson(2.5, 0.3)", "dist.ZeroInflatedPoisson(2.5, gate=rt.real(0.3))"),
    ("observe y[i] ~ ZeroInflatedNegativeBinomial(4, logits=0.2, gate_logits=-1)",
     "dist.ZeroInflatedNegativeBinomial(4, logits=0.2, gate_logits=rt.real(-1))"),
    ("observe y[i] ~ OrderedLogistic(0.4, c)", "dist.OrderedLogistic(rt.real(0.4), c)"),
], ids=["HalfStudentT", "Pareto", "Weibull", "BetaBinomial", "ZeroInflatedPoisson", "ZeroInflatedNegativeBinomial",
        "OrderedLogistic"])
def test_the_model_samples_from_the_pyro_distribution_written_out(statement: str, pyro: str):
    header = "data N: int\ndata y: int<lower=0>[N]\ndata c: real[3]\n"
    assert pyro in emitted(f"{header}{statement}\n")


def test_a_pareto_latent_is_guided_above_its_scale():
    assert "biject_to(constraints.greater_than(m))" in emitted("data m: real\nlatent z ~ Pareto(m, 2)\n")


def test_inv_logit_is_torch_sigmoid():
    assert "torch.sigmoid(x)" in emitted("data N: int\ndata x: real[N]\nlet p = inv_logit(x)\n")


# Wrong arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize(("call", "message"), [
    ("HalfStudentT(-1)", "the df of HalfStudentT must be positive, got -1"),
    ("Pareto(1, 0)", "the alpha of Pareto must be positive, got 0"),
    ("Weibull(0, 1)", "the scale of Weibull must be positive, got 0"),
    ("BetaBinomial(1, 1, 2.5)", "the total_count of BetaBinomial must be a whole number >= 0, got 2.5"),
    ("ZeroInflatedPoisson(2)", "ZeroInflatedPoisson needs one of gate or gate_logits"),
    ("ZeroInflatedPoisson(2, gate=0.1, gate_logits=0)", "ZeroInflatedPoisson needs only one of gate or gate_logits"),
    ("ZeroInflatedNegativeBinomial(4, 0.3, 1.2)", r"the gate of ZeroInflatedNegativeBinomial must be in \[0, 1\], got 1.2"),
    ("OrderedLogistic(0.5, 1)", "'cutpoints' must be a vector, got scalar"),
    ("OrderedLogistic(c)", "OrderedLogistic needs 'cutpoints'"),
], ids=["df", "alpha", "scale", "total_count", "no-gate", "two-gates", "gate-above-one", "scalar-cutpoints",
        "no-cutpoints"])
def test_a_wrong_argument_is_a_spec_error(call: str, message: str):
    with pytest.raises(PplError, match=f"^{message}"):
        compile_source(f"data N: int\ndata y: int<lower=0>[N]\ndata c: real[3]\nobserve y[i] ~ {call}\n")


@pytest.mark.parametrize(("text", "message"), [
    ("let r = identity(x)", "identity takes sizes"),
    ("let r = transpose(x)", r"transpose needs a matrix, got \[N\]"),
    ("let r = cumulative_sum(s)", "cumulative_sum needs an array, got a scalar"),
    ("let r = max(x, x)", "max takes 1 argument, got 2"),
], ids=["identity-of-a-vector", "transpose-of-a-vector", "cumulative-sum-of-a-scalar", "max-of-two"])
def test_a_wrong_function_argument_is_a_spec_error(text: str, message: str):
    with pytest.raises(PplError, match=f"^{message}"):
        compile_source(f"data N: int\ndata x: real[N]\ndata s: real\n{text}\n")


def test_an_observation_below_the_pareto_scale_is_a_data_error():
    program = compile_source("data N: int\ndata y: real[N]\nlatent a ~ Gamma(2, 1)\nobserve y[i] ~ Pareto(1.5, a)\n")
    with pytest.raises(DataError, match=r"y\[1\] = 1.2 is outside the support of Pareto: it must be at least 1.5"):
        program.load_data({"y": [2.0, 1.2, 3.0]})


@pytest.mark.parametrize(("name", "hint"), [
    ("logsumexp", "did you mean 'log_sum_exp'?"),
    ("cumsum", "did you mean 'cumulative_sum'?"),
    ("pow", r"write x \^ y"),
    ("normal_lpdf", r"pplc adds log densities with `~`: observe y ~ Normal\(...\)"),
    ("poisson_log_lpmf", r"observe y ~ Poisson\(exp\(...\)\)"),
    ("normal", r"normal is a distribution: pplc writes it Normal\(...\), after `~`"),
], ids=["numpy-name", "numpy-cumsum", "pow", "stan-density", "stan-log-link-density", "distribution-as-function"])
def test_an_unknown_function_hints_at_what_pplc_calls_it(name: str, hint: str):
    with pytest.raises(PplError, match="unknown function") as error:
        compile_source(f"data N: int\ndata x: real[N]\nlet r = {name}(x)\n")
    assert re.search(hint, error.value.hint or "")


@pytest.mark.parametrize(("name", "written"), [
    ("student_t", "StudentT(...)"), ("inv_gamma", "InverseGamma(...)"), ("bernoulli_logit", "Bernoulli(logits=...)"),
    ("neg_binomial_2", "NegativeBinomial(phi, logits=log(mu) - log(phi))"), ("MvNormal", "MultivariateNormal(...)"),
])
def test_an_unknown_distribution_of_stan_or_pymc_says_how_pplc_writes_it(name: str, written: str):
    with pytest.raises(PplError, match="unknown distribution") as error:
        compile_source(f"latent z ~ {name}(1, 2)\n")
    assert written in error.value.hint
