"""Recurrences: a `let` given at its first positions, then by one step from its previous element
(`let err[0] = ...`, `let err[t] = ... err[t - 1] ...`), computed for every position at once by an
associative scan of the step's affine maps; every misuse refused with its location."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pyro import poutine

from compiler import PplError, compile_source
from compiler.backend import runtime as rt
from compiler.errors import Source
from compiler.frontend import syntax
from compiler.frontend.parse import parse_program

ARMA = """
data T: int
data y: real[T]
latent mu ~ Normal(0, 10)
latent phi ~ Normal(0, 2)
latent theta ~ Normal(0, 2)
latent sigma ~ HalfCauchy(2.5)
let err[0] = y[0] - (mu + phi * mu)
let err[t] = y[t] - (mu + phi * y[t - 1] + theta * err[t - 1])
let nu[t] = y[t] - err[t]
observe y[t] ~ Normal(nu[t], sigma)
"""

GARCH = """
data T: int
data y: real[T]
data sigma1: real<lower=0>
latent mu ~ Normal(0, 10)
latent alpha0 ~ HalfNormal(1)
latent alpha1 ~ Uniform(0, 1)
latent beta1 ~ Uniform(0, 1)
let v[0] = sigma1 ^ 2
let v[t in 1:T] = alpha0 + alpha1 * (y[t - 1] - mu) ^ 2 + beta1 * v[t - 1]
observe y[t] ~ Normal(mu, sqrt(v[t]))
"""


def _series(length: int = 12) -> list[float]:
    return np.random.default_rng(0).normal(size=length).tolist()


def _trace(source: str, data: dict, values: dict[str, float]):
    program = compile_source(source)
    conditioned = poutine.condition(program.compiled.model, {k: torch.as_tensor(v) for k, v in values.items()})
    return poutine.trace(conditioned).get_trace(program.load_data(data))


def _normal_log_density(x: float, mean: float, sd: float) -> float:
    return -0.5 * ((x - mean) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)


def _loop_scan(a: torch.Tensor, b: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    values, previous = [], start
    for i in range(a.shape[-1]):
        previous = a[..., i] + b[..., i] * previous
        values.append(previous)
    return torch.stack(values, -1)


# Parsing -----------------------------------------------------------------------------


def test_a_step_may_say_its_positions_as_a_half_open_range():
    (let,) = parse_program(Source("x", "let v[t in 1:T] = v[t - 1]\n")).statements
    (step,) = let.subscripts
    assert isinstance(step, syntax.StepRange)
    assert (step.variable.id, step.start.value, step.stop.id) == ("t", 1, "T")


# The scan ----------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 2, 3, 7, 8, 33])
def test_the_scan_is_the_loop(length):
    generator = torch.Generator().manual_seed(length)
    a = torch.randn(4, length, generator=generator, dtype=torch.float64)
    b = torch.randn(4, length, generator=generator, dtype=torch.float64)
    start = torch.randn(4, generator=generator, dtype=torch.float64)
    torch.testing.assert_close(rt.affine_scan(a, b, start), _loop_scan(a, b, start), rtol=1e-12, atol=1e-12)


def test_the_scan_is_the_loop_where_the_series_grows():
    a = torch.tensor([0.5, -1.0, 2.0, 0.25, 1.0], dtype=torch.float64)
    b = torch.tensor([3.0, -2.5, 1.5, 4.0, -3.0], dtype=torch.float64)
    torch.testing.assert_close(rt.affine_scan(a, b, torch.tensor(0.7, dtype=torch.float64)),
                               _loop_scan(a, b, torch.tensor(0.7, dtype=torch.float64)), rtol=1e-12, atol=0)


def test_a_zero_coefficient_forgets_the_past():
    a = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assert rt.affine_scan(a, torch.zeros(3, dtype=torch.float64), torch.tensor(5.0)).tolist() == [1.0, 2.0, 3.0]


def test_the_recurrence_gives_the_first_elements_then_the_steps():
    def step(previous):
        return 1.0 + 2.0 * previous
    values = rt.affine_recurrence([0.5, 3.0], step, 3)
    assert values.tolist() == [0.5, 3.0, 7.0, 15.0, 31.0]


def test_the_recurrence_keeps_draws_dims_on_the_left():
    draws = torch.tensor([1.0, -1.0]).reshape(2, 1)  # two draws, one unit dim

    def step(previous):
        return draws[..., None] * previous
    values = rt.affine_recurrence([draws], step, 2)
    assert values.shape == (2, 1, 3)
    assert values[1, 0].tolist() == [-1.0, 1.0, -1.0]


# The log density ---------------------------------------------------------------------


def test_arma_has_the_log_density_of_the_loop():
    y = _series()
    values = {"mu": 0.3, "phi": 0.8, "theta": -0.4, "sigma": 1.3}
    trace = _trace(ARMA, {"T": len(y), "y": y}, values)
    mu, phi, theta, sigma = values.values()
    err = [y[0] - (mu + phi * mu)]
    for t in range(1, len(y)):
        err.append(y[t] - (mu + phi * y[t - 1] + theta * err[-1]))
    site = trace.nodes["y"]
    assert site["fn"].log_prob(site["value"]).sum().item() == pytest.approx(
        sum(_normal_log_density(e, 0, sigma) for e in err), rel=1e-6)
    assert trace.nodes["err"]["value"].tolist() == pytest.approx(err, abs=1e-6)


def test_garch_on_the_variance_has_the_log_density_of_the_loop():
    y = _series()
    values = {"mu": 0.1, "alpha0": 0.4, "alpha1": 0.3, "beta1": 0.5}
    trace = _trace(GARCH, {"T": len(y), "y": y, "sigma1": 0.5}, values)
    mu, alpha0, alpha1, beta1 = values.values()
    variance = [0.25]
    for t in range(1, len(y)):
        variance.append(alpha0 + alpha1 * (y[t - 1] - mu) ** 2 + beta1 * variance[-1])
    site = trace.nodes["y"]
    assert site["fn"].log_prob(site["value"]).sum().item() == pytest.approx(
        sum(_normal_log_density(x, mu, math.sqrt(v)) for x, v in zip(y, variance)), rel=1e-6)


def test_a_recurrence_on_data_alone_is_transformed_data():
    program = compile_source("""
data T: int
data y: real[T]
let smooth[0] = y[0]
let smooth[t] = 0.5 * y[t] + 0.5 * smooth[t - 1]
latent mu ~ Normal(0, 10)
observe y[t] ~ Normal(mu + smooth[t], 1)
""")
    y = _series(5)
    data = program.load_data({"T": 5, "y": y})
    expected = [y[0]]
    for x in y[1:]:
        expected.append(0.5 * x + 0.5 * expected[-1])
    assert "def transform_data" in program.code.source
    assert data["smooth"].tolist() == pytest.approx(expected)


def test_posterior_draws_carry_the_recurrence():
    y = _series(6)
    program = compile_source(ARMA)
    fit = program.fit({"T": 6, "y": y}, seed=0)
    draws = fit.draws
    err = draws["err"].reshape(-1, 6)
    mu, phi, theta = (draws[name].reshape(-1) for name in ("mu", "phi", "theta"))
    first = torch.as_tensor(y[0]) - (mu + phi * mu)
    torch.testing.assert_close(torch.as_tensor(err[:, 0]), first, check_dtype=False)
    second = y[1] - (mu + phi * y[0] + theta * first)
    torch.testing.assert_close(torch.as_tensor(err[:, 1]), second, check_dtype=False)


# What the generated code says --------------------------------------------------------


def test_the_generated_code_is_one_scan_over_the_written_step():
    source = compile_source(ARMA).code.source
    assert source.count("rt.affine_recurrence(") == 1
    assert "lambda err_previous:" in source
    assert "for " not in source


def test_the_step_variable_is_named_apart_from_the_spec():
    source = compile_source(ARMA.replace("latent sigma", "latent err_previous ~ Normal(0, 1)\nlatent sigma")).code.source
    assert "lambda err_previous_:" in source


# Refusals ----------------------------------------------------------------------------

ERRORS = [
    ("let err[t] = y[t] - (mu + phi * y[t - 1] + theta * err[t - 1])\n",
     "the step of 'err' needs its first element", "t]"),
    ("let err[0] = 0\nlet err[2] = 0\nlet err[t] = y[t] - err[t - 1]\n",
     "expected err[1] here", "2]"),
    ("let err[0] = 0\nlet err[t] = y[t] - err[t + 1]\n", "is not computed yet", "err[t + 1]"),
    ("let err[0] = 0\nlet err[t] = y[t] - err[t]\n", "is not computed yet", "err[t]"),
    ("let err[0] = 0\nlet err[t] = y[t] - err[t - 2]\n", "only first-order", "err[t - 2]"),
    ("let err[0] = 0\nlet err[t] = y[t] - err[0]\n", "used as err[t - 1]", "err[0]"),
    ("let err[0] = 0\nlet err[t] = sqrt(y[t] + err[t - 1])\n", "not affine", "sqrt(y[t] + err[t - 1])"),
    ("let err[0] = 0\nlet err[t] = y[t] * err[t - 1] * err[t - 1]\n", "not affine", "y[t] * err[t - 1] * err[t - 1]"),
    ("let err[0] = 0\nlet err[t] = y[t] / err[t - 1]\n", "not affine", "y[t] / err[t - 1]"),
    ("let err[0] = 0\nlet err[t] = y[t] - err[t - 1]\nlet err[t] = y[t]\n", "already complete", "err"),
    ("let err[0] = 0\nlatent z ~ Normal(0, 1)\n", "no step for its later elements follows", "err"),
    ("let err[0] = 0\n", "no step for its later elements follows", "err"),
    ("let err[0] = 0\nlet err[t] = 2 * err[t - 1]\n", "cannot infer the range of index 't'", "t"),
    ("let err[0] = 0\nlet err[t in 2:T] = 2 * err[t - 1]\n", "starts at position 1", "2"),
    ("let err[0] = 0\nlet err[t] = y[t] + t\n", "is used only as a subscript", "t"),
    ("let err[0] = 0\nlet err[t] = y[t] + y[t - 2] + err[t - 1]\n", "before the array starts", "t - 2"),
    ("let err[0] = 0\nlet err[1] = 0\nlet err[2] = 0\nlet err[t in 3:3] = err[t - 1]\n", "no positions left", "[t in"),
    ("let err[0] = 0\nlet err[1] = 0\nlet err[t in 2:1] = err[t - 1]\n", "out of range", "1"),
    ("let err[0] = y\nlet err[t] = y[t] - err[t - 1]\n", "is one number", "y"),
    ("let err[0] = err[0]\nlet err[t] = y[t] - err[t - 1]\n", "in terms of itself", "err"),
    ("let y[0] = 0\nlet y[t in 1:T] = y[t - 1]\n", "already declared", "y"),
]


@pytest.mark.parametrize(("lines", "message", "marked"), ERRORS)
def test_a_misused_recurrence_is_refused_where_it_goes_wrong(lines, message, marked):
    source = "data T: int\ndata y: real[T]\nlatent mu ~ Normal(0, 1)\nlatent phi ~ Normal(0, 1)\n" \
             "latent theta ~ Normal(0, 1)\n" + lines
    with pytest.raises(PplError) as caught:
        compile_source(source)
    error = caught.value
    assert message in str(error)
    assert error.hint
    line = source.splitlines()[error.span.line - 1]
    assert line[error.span.column - 1:].startswith(marked)


def test_a_first_element_past_the_data_is_a_data_error():
    program = compile_source("data T: int\ndata y: real[T]\nlet x[0] = 1\nlet x[1] = 2\n"
                             "let x[t] = y[t] + x[t - 1]\nlatent m ~ Normal(0, 1)\nobserve y[t] ~ Normal(m + x[t], 1)\n")
    with pytest.raises(PplError, match="out of range for 'x'"):
        program.load_data({"T": 1, "y": [0.5]})


# Latent recurrences ------------------------------------------------------------------

STOCHASTIC_VOLATILITY = """
data T: int
data y: real[T]
latent mu ~ Normal(0, 1)
latent phi ~ Uniform(0, 1)
latent s ~ HalfNormal(1)
latent h[0] ~ Normal(mu, s / sqrt(1 - phi ^ 2))
latent h[t in 1:T] ~ Normal(mu + phi * (h[t - 1] - mu), s)
observe y[t] ~ Normal(0, exp(h[t] / 2))
"""

RANDOM_WALK = """
data T: int
data y: real[T]
latent x[0] ~ Normal(0, 1)
latent x[t in 1:T] ~ Normal(x[t - 1], 0.5)
observe y[t] ~ Normal(x[t], 0.8)
"""


def test_a_latent_recurrence_is_one_sample_site_of_its_chain():
    source = compile_source(STOCHASTIC_VOLATILITY).code.source
    model = source[source.index("def model"):source.index("def guide")]
    assert """    h = pyro.sample(
        "h",
        rt.Recurrent(
            [dist.Normal(mu, s / torch.sqrt(1 - phi ** 2))],
            lambda h_previous: dist.Normal(
                mu[..., None] + phi[..., None] * (h_previous - mu[..., None]),
                s[..., None],
            ),
            T - 1,
        ),
    )""" in model
    assert model.count("pyro.sample(") == 5 and "for " not in model


def test_a_latent_recurrence_has_the_log_density_of_the_chain():
    y = _series(10)
    h = torch.tensor(np.random.default_rng(3).normal(size=10))
    values = {"mu": 0.2, "phi": 0.7, "s": 0.6}
    trace = _trace(STOCHASTIC_VOLATILITY, {"T": 10, "y": y}, {**values, "h": h})
    mu, phi, s = values.values()
    expected = _normal_log_density(h[0].item(), mu, s / math.sqrt(1 - phi ** 2)) + sum(
        _normal_log_density(h[t].item(), mu + phi * (h[t - 1].item() - mu), s) for t in range(1, 10))
    site = trace.nodes["h"]
    assert site["fn"].log_prob(site["value"]).item() == pytest.approx(expected, rel=1e-6)


def test_prior_draws_of_a_latent_recurrence_follow_the_chain():
    program = compile_source(RANDOM_WALK)
    data = program.load_data({"T": 4, "y": [0.0] * 4})
    torch.manual_seed(0)
    distribution = poutine.trace(program.compiled.model).get_trace(data).nodes["x"]["fn"]
    draws = distribution.sample((20000,))
    increments = draws[:, 1:] - draws[:, :-1]
    assert draws.shape == (20000, 4)
    assert draws[:, 0].std().item() == pytest.approx(1.0, abs=0.03)
    assert increments.std(0).tolist() == pytest.approx([0.5] * 3, abs=0.02)


def test_a_gaussian_random_walk_has_the_exact_posterior_mean():
    y = _series(6)
    fit = compile_source(RANDOM_WALK).fit({"T": 6, "y": y}, seed=0)
    # The joint is Gaussian: prior precision of the walk plus the observations' 1 / 0.8^2.
    difference = torch.eye(6, dtype=torch.float64) - torch.diag(torch.ones(5, dtype=torch.float64), -1)
    prior_precision = difference.T @ torch.diag(torch.tensor([1.0] + [0.5 ** -2] * 5, dtype=torch.float64)) @ difference
    precision = prior_precision + torch.eye(6, dtype=torch.float64) / 0.8 ** 2
    exact = torch.linalg.solve(precision, torch.tensor(y, dtype=torch.float64) / 0.8 ** 2)
    assert fit.gaussian.mean.tolist() == pytest.approx(exact.tolist(), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize(("lines", "message", "marked"), [
    ("latent z[0] ~ Poisson(0.5)\n", "infinitely many values", "Poisson"),
    ("latent z[0] ~ Normal(0, 1)\nlatent z[t in 1:T] ~ LogNormal(z[t - 1], 1)\n", "different sets", "LogNormal"),
    ("latent z[0] ~ Uniform(0, 2)\n", "on a fixed set", "Uniform"),
    ("latent z[t in 1:T] ~ Normal(z[t - 1], 1)\n", "needs its first element", "[t in"),
    ("latent z[0] ~ Normal(0, 1)\nlatent z[t in 1:T] ~ Normal(z[t + 1], 1)\n", "not computed yet", "z[t + 1]"),
])
def test_a_misused_latent_recurrence_is_refused_where_it_goes_wrong(lines, message, marked):
    source = "data T: int\ndata y: real[T]\n" + lines
    with pytest.raises(PplError) as caught:
        compile_source(source)
    error = caught.value
    assert message in str(error)
    line = source.splitlines()[error.span.line - 1]
    assert line[error.span.column - 1:].startswith(marked)
