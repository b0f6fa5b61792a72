"""The two tables, row by row, through the whole compiler (source -> check -> codegen -> exec).

Every distribution of `compiler.frontend.distributions.TABLE` and every function of
`compiler.frontend.functions.TABLE` is compiled from a small spec, run, and its numbers
are compared with torch / pyro computed directly. Adding a table row without a
case here fails `test_cases_cover_*`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from scipy.stats import norm

from compiler import compile_file, compile_source
from compiler.errors import PplError
from compiler.frontend import distributions, functions

GUIDES = ("normal", "native")


def tensor(value: Any, dtype: torch.dtype = torch.float) -> torch.Tensor:
    return torch.as_tensor(value, dtype=dtype)


def assert_same(actual: Any, expected: Any) -> None:
    """Same shape and the same numbers (float32 round-off allowed)."""
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    assert tuple(actual.shape) == tuple(expected.shape), (actual, expected)
    torch.testing.assert_close(actual.double(), expected.double(), rtol=1e-5, atol=1e-5)


def log_joint(program, data, values: dict[str, torch.Tensor]) -> torch.Tensor:
    """log p(x, z) of the model with its latents fixed to `values`."""
    return poutine.trace(poutine.condition(program.model, values)).get_trace(data).log_prob_sum()


def guide_and_model_site(program, data, name: str):
    """One guide draw of latent `name`, and the model's distribution at that site."""
    guide_trace = poutine.trace(program.guide).get_trace(data)
    model_trace = poutine.trace(poutine.replay(program.model, trace=guide_trace)).get_trace(data)
    return guide_trace.nodes[name]["value"].detach(), model_trace.nodes[name]["fn"]


# 1. Continuous, proper distributions as latents ----------------------------------------------


@dataclass(frozen=True)
class LatentCase:
    call: str  # the right side of `latent z ~ ...`
    expected: Callable[[], dist.Distribution]  # the same distribution, built directly
    value: Any  # a point inside the support
    header: str = ""  # data declarations the call needs
    data: dict[str, Any] = field(default_factory=dict)


class HalfOf:
    """|X| for X symmetric about 0, written out: twice X's density on the positive half-line."""

    def __init__(self, symmetric: dist.Distribution):
        self.symmetric = symmetric

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.symmetric.log_prob(value) + math.log(2)


_DIRICHLET_HEADER = "data K: int\ndata a: real<lower=0>[K]\n"
_MVN_HEADER = "data K: int\ndata m: real[K]\ndata S: real[K, K]\n"
_MVN_DATA = {"m": [0.1, 0.2], "S": [[2.0, 0.5], [0.5, 1.0]]}
# The Cholesky factor of a 3 x 3 correlation matrix.
_CORRELATION_FACTOR = torch.linalg.cholesky(torch.tensor([[1.0, 0.3, -0.2], [0.3, 1.0, 0.4], [-0.2, 0.4, 1.0]])).tolist()

CONTINUOUS: dict[str, LatentCase] = {
    "Normal": LatentCase("Normal(1.5, 2)", lambda: dist.Normal(1.5, 2.0), 0.3),
    "HalfNormal": LatentCase("HalfNormal(2)", lambda: dist.HalfNormal(2.0), 0.7),
    "StudentT": LatentCase("StudentT(3, 1, 2)", lambda: dist.StudentT(3.0, 1.0, 2.0), -0.4),
    "Cauchy": LatentCase("Cauchy(0.5, 2)", lambda: dist.Cauchy(0.5, 2.0), 3.0),
    "HalfCauchy": LatentCase("HalfCauchy(2)", lambda: dist.HalfCauchy(2.0), 1.3),
    "Laplace": LatentCase("Laplace(0.5, 2)", lambda: dist.Laplace(0.5, 2.0), -1.2),
    "Gumbel": LatentCase("Gumbel(0.5, 2)", lambda: dist.Gumbel(0.5, 2.0), -1.1),
    "VonMises": LatentCase("VonMises(0.5, 2)", lambda: dist.VonMises(0.5, 2.0), 1.3),
    "HalfStudentT": LatentCase("HalfStudentT(3, 2)", lambda: HalfOf(dist.StudentT(3.0, 0.0, 2.0)), 1.7),
    "Weibull": LatentCase("Weibull(2, 1.5)", lambda: dist.Weibull(2.0, 1.5), 0.9),
    "Pareto": LatentCase("Pareto(1.5, 3)", lambda: dist.Pareto(1.5, 3.0), 2.2),
    "LogNormal": LatentCase("LogNormal(0.5, 2)", lambda: dist.LogNormal(0.5, 2.0), 2.4),
    "Exponential": LatentCase("Exponential(2)", lambda: dist.Exponential(2.0), 0.4),
    "Gamma": LatentCase("Gamma(2, 3)", lambda: dist.Gamma(2.0, 3.0), 0.8),
    "InverseGamma": LatentCase("InverseGamma(2, 3)", lambda: dist.InverseGamma(2.0, 3.0), 1.7),
    "Beta": LatentCase("Beta(2, 3)", lambda: dist.Beta(2.0, 3.0), 0.35),
    "Uniform": LatentCase("Uniform(-1, 3)", lambda: dist.Uniform(-1.0, 3.0), 2.5),
    "Dirichlet": LatentCase("Dirichlet(a)", lambda: dist.Dirichlet(tensor([1.5, 2.0, 3.0])), [0.2, 0.3, 0.5],
                            _DIRICHLET_HEADER, {"a": [1.5, 2.0, 3.0]}),
    "MultivariateNormal": LatentCase(
        "MultivariateNormal(m, S)",
        lambda: dist.MultivariateNormal(tensor(_MVN_DATA["m"]), covariance_matrix=tensor(_MVN_DATA["S"])),
        [0.3, -0.7], _MVN_HEADER, _MVN_DATA),
    "LKJCholesky": LatentCase("LKJCholesky(3, 2)", lambda: dist.LKJCholesky(3, 2.0), _CORRELATION_FACTOR),
}

# Other ways of writing a latent's arguments: defaults, keywords, ones(), data-valued bounds.
LATENT_VARIANTS: dict[str, LatentCase] = {
    "StudentT-defaults": LatentCase("StudentT(3)", lambda: dist.StudentT(3.0), -0.4),
    "Normal-keywords": LatentCase("Normal(scale=2, loc=1.5)", lambda: dist.Normal(1.5, 2.0), 0.3),
    "Gamma-keywords": LatentCase("Gamma(concentration=2, rate=3)", lambda: dist.Gamma(2.0, 3.0), 0.8),
    "HalfStudentT-defaults": LatentCase("HalfStudentT(3)", lambda: HalfOf(dist.StudentT(3.0)), 1.7),
    "HalfStudentT-keywords": LatentCase("HalfStudentT(scale=2, df=3)", lambda: HalfOf(dist.StudentT(3.0, 0.0, 2.0)),
                                        0.4),
    "Pareto-data-scale": LatentCase("Pareto(m, 3)", lambda: dist.Pareto(0.5, 3.0), 0.8, "data m: real\n", {"m": 0.5}),
    "Dirichlet-ones": LatentCase("Dirichlet(ones(3))", lambda: dist.Dirichlet(torch.ones(3)), [0.2, 0.3, 0.5]),
    "Uniform-data-bounds": LatentCase("Uniform(lo, hi)", lambda: dist.Uniform(0.5, 4.0), 1.0,
                                      "data lo: real\ndata hi: real\n", {"lo": 0.5, "hi": 4.0}),
    "MultivariateNormal-covariance_matrix": LatentCase(
        "MultivariateNormal(m, covariance_matrix=S)",
        lambda: dist.MultivariateNormal(tensor(_MVN_DATA["m"]), covariance_matrix=tensor(_MVN_DATA["S"])),
        [0.3, -0.7], _MVN_HEADER, _MVN_DATA),
    "MultivariateNormal-precision_matrix": LatentCase(
        "MultivariateNormal(m, precision_matrix=S)",
        lambda: dist.MultivariateNormal(tensor(_MVN_DATA["m"]), precision_matrix=tensor(_MVN_DATA["S"])),
        [0.3, -0.7], _MVN_HEADER, _MVN_DATA),
    "MultivariateNormal-scale_tril": LatentCase(
        "MultivariateNormal(m, scale_tril=S)",
        lambda: dist.MultivariateNormal(tensor(_MVN_DATA["m"]), scale_tril=tensor([[1.0, 0.0], [0.5, 2.0]])),
        [0.3, -0.7], _MVN_HEADER, {"m": _MVN_DATA["m"], "S": [[1.0, 0.0], [0.5, 2.0]]}),
    "LKJCholesky-data-size-and-default-concentration": LatentCase(
        "LKJCholesky(K)", lambda: dist.LKJCholesky(3), _CORRELATION_FACTOR, "data K: int\n", {"K": 3}),
}

PROPER_CONTINUOUS = [name for name, row in distributions.TABLE.items() if not row.is_discrete and not row.improper]
IMPROPER = [name for name, row in distributions.TABLE.items() if row.improper]
DISCRETE_ROWS = [name for name, row in distributions.TABLE.items() if row.is_discrete]


def test_cases_cover_the_distribution_table():
    assert set(CONTINUOUS) == set(PROPER_CONTINUOUS)
    assert set(DISCRETE) == set(DISCRETE_ROWS)
    assert set(IMPROPER) == {"Flat", "HalfFlat"}


@pytest.mark.parametrize("case", [CONTINUOUS[n] for n in PROPER_CONTINUOUS], ids=PROPER_CONTINUOUS)
def test_latent_log_density_matches_pyro(case: LatentCase):
    program = compile_source(f"{case.header}latent z ~ {case.call}\n")
    value = tensor(case.value)
    actual = log_joint(program, program.load_data(case.data), {"z": value})
    assert_same(actual, case.expected().log_prob(value))


@pytest.mark.parametrize("case", list(LATENT_VARIANTS.values()), ids=list(LATENT_VARIANTS))
def test_latent_argument_variants_log_density_matches_pyro(case: LatentCase):
    program = compile_source(f"{case.header}latent z ~ {case.call}\n")
    value = tensor(case.value)
    actual = log_joint(program, program.load_data(case.data), {"z": value})
    assert_same(actual, case.expected().log_prob(value))


@pytest.mark.parametrize("name", PROPER_CONTINUOUS)
def test_sized_latent_log_density_is_the_sum_over_its_elements(name: str):
    case = CONTINUOUS[name]
    program = compile_source(f"data D: int\n{case.header}latent z[D] ~ {case.call}\n")
    one = tensor(case.value)
    values = torch.stack([one, one, one])
    actual = log_joint(program, program.load_data({"D": 3, **case.data}), {"z": values})
    assert_same(actual, 3 * case.expected().log_prob(one))


# 2. Discrete distributions, observed ---------------------------------------------------------


@dataclass(frozen=True)
class DiscreteCase:
    y: list[int]
    build: Callable[..., dist.Distribution]  # direct pyro; takes probs= or logits= where the row has them
    leading: str = ""  # spec arguments before the probs/logits slot
    probs: tuple[str, Any] | None = None  # (spec text, value)
    logits: tuple[str, Any] | None = None
    header: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    trailing: str = ""  # spec arguments after the probs/logits slot, by keyword


_CATEGORICAL_DATA = {"p": [0.2, 0.3, 0.5], "q": [0.1, -1.0, 2.0]}

DISCRETE: dict[str, DiscreteCase] = {
    "Bernoulli": DiscreteCase([1, 0, 1, 1, 0], dist.Bernoulli, probs=("0.3", 0.3), logits=("-0.4", -0.4)),
    "Binomial": DiscreteCase([0, 3, 10, 5, 7], lambda **p: dist.Binomial(10, **p), "10, ",
                             probs=("0.3", 0.3), logits=("0.3", 0.3)),
    "Poisson": DiscreteCase([0, 3, 10, 5, 7], lambda: dist.Poisson(2.5), "2.5"),
    "NegativeBinomial": DiscreteCase([0, 3, 10, 5, 7], lambda **p: dist.NegativeBinomial(4.0, **p), "4, ",
                                     probs=("0.3", 0.3), logits=("0.3", 0.3)),
    "Geometric": DiscreteCase([0, 3, 10, 5, 7], dist.Geometric, probs=("0.3", 0.3), logits=("-0.2", -0.2)),
    "Categorical": DiscreteCase([0, 2, 1, 2, 2], dist.Categorical,
                                probs=("p", _CATEGORICAL_DATA["p"]), logits=("q", _CATEGORICAL_DATA["q"]),
                                header="data K: int\ndata p: real<lower=0>[K]\ndata q: real[K]\n",
                                data=_CATEGORICAL_DATA),
    "BetaBinomial": DiscreteCase([0, 3, 10, 5, 7], lambda: dist.BetaBinomial(2.0, 3.0, 10), "2, 3, 10"),
    "ZeroInflatedPoisson": DiscreteCase([0, 3, 0, 5, 7], lambda: dist.ZeroInflatedPoisson(2.5, gate=tensor(0.3)),
                                        "2.5, 0.3"),
    "ZeroInflatedNegativeBinomial": DiscreteCase(
        [0, 3, 0, 5, 7], lambda **p: dist.ZeroInflatedNegativeBinomial(4.0, gate=tensor(0.2), **p), "4, ",
        probs=("0.3", 0.3), logits=("0.3", 0.3), trailing=", gate=0.2"),
    "OrderedLogistic": DiscreteCase([0, 3, 1, 2, 2], lambda: dist.OrderedLogistic(tensor(0.4), tensor([-1.0, 0.5, 2.0])),
                                    "0.4, c", header="data c: real[3]\n", data={"c": [-1.0, 0.5, 2.0]}),
}


def _discrete_forms():
    """(row, form): positional for every row; probs= and logits= where the row has them."""
    for name in DISCRETE_ROWS:
        row = distributions.TABLE[name]
        yield name, "positional"
        for keyword in ("probs", "logits"):
            if row.parameter(keyword) is not None:
                yield name, keyword


DISCRETE_FORMS = list(_discrete_forms())


def _discrete_spec(name: str, form: str, target: str) -> tuple[str, dict, torch.Tensor]:
    case = DISCRETE[name]
    if case.probs is None:
        call, expected = f"{name}({case.leading})", case.build()
    elif form == "positional":
        call, expected = (f"{name}({case.leading}{case.probs[0]}{case.trailing})",
                          case.build(probs=tensor(case.probs[1])))
    else:
        text, value = getattr(case, form)
        call, expected = f"{name}({case.leading}{form}={text}{case.trailing})", case.build(**{form: tensor(value)})
    y = tensor(case.y, torch.long if name == "Categorical" else torch.float)
    text = f"data N: int\n{case.header}data y: int<lower=0>[N]\nobserve {target} ~ {call}\n"
    return text, {"y": case.y, **case.data}, expected.log_prob(y).sum()


@pytest.mark.parametrize(("name", "form"), DISCRETE_FORMS, ids=[f"{n}-{f}" for n, f in DISCRETE_FORMS])
def test_indexed_observe_log_likelihood_matches_pyro(name: str, form: str):
    text, raw, expected = _discrete_spec(name, form, "y[i]")
    program = compile_source(text)
    trace = poutine.trace(program.model).get_trace(program.load_data(raw))
    assert_same(trace.log_prob_sum(), expected)


@pytest.mark.parametrize(("name", "form"), DISCRETE_FORMS, ids=[f"{n}-{f}" for n, f in DISCRETE_FORMS])
def test_whole_array_observe_log_likelihood_matches_pyro(name: str, form: str):
    text, raw, expected = _discrete_spec(name, form, "y")
    program = compile_source(text)
    trace = poutine.trace(program.model).get_trace(program.load_data(raw))
    assert_same(trace.log_prob_sum(), expected)


def test_binomial_total_count_defaults_to_one():
    program = compile_source("data N: int\ndata y: int<lower=0, upper=1>[N]\nobserve y[i] ~ Binomial(probs=0.3)\n")
    trace = poutine.trace(program.model).get_trace(program.load_data({"y": [1, 0, 0, 1]}))
    assert_same(trace.log_prob_sum(), dist.Binomial(1, 0.3).log_prob(tensor([1, 0, 0, 1])).sum())


def test_binomial_total_count_per_element_from_data():
    program = compile_source("data N: int\ndata n: int<lower=0>[N]\ndata y: int<lower=0>[N]\n"
                             "observe y[i] ~ Binomial(n[i], logits=0.2)\n")
    raw = {"n": [10, 12, 3, 7], "y": [4, 12, 0, 5]}
    trace = poutine.trace(program.model).get_trace(program.load_data(raw))
    expected = dist.Binomial(tensor(raw["n"]), logits=0.2).log_prob(tensor(raw["y"])).sum()
    assert_same(trace.log_prob_sum(), expected)


FINITE_LATENTS = {
    "Bernoulli": ("Bernoulli(0.3)", lambda: dist.Bernoulli(0.3), 1.0),
    "Binomial": ("Binomial(3, logits=0.4)", lambda: dist.Binomial(3, logits=0.4), 2.0),
    "Categorical": ("Categorical(p)", lambda: dist.Categorical(tensor(_CATEGORICAL_DATA["p"])), 1),
    "BetaBinomial": ("BetaBinomial(2, 3, 4)", lambda: dist.BetaBinomial(2.0, 3.0, 4), 3.0),
    # p is increasing, so it serves as cut-points.
    "OrderedLogistic": ("OrderedLogistic(0.3, p)",
                        lambda: dist.OrderedLogistic(tensor(0.3), tensor(_CATEGORICAL_DATA["p"])), 2),
}


@pytest.mark.parametrize("name", [n for n in DISCRETE_ROWS if distributions.TABLE[n].is_finite])
def test_finite_discrete_latent_log_density_matches_pyro(name: str):
    call, expected, value = FINITE_LATENTS[name]
    program = compile_source(f"{DISCRETE['Categorical'].header}latent k ~ {call}\n")
    assert program.ir.latents[0].enumerated
    value = tensor(value, torch.long if name in ("Categorical", "OrderedLogistic") else torch.float)
    actual = log_joint(program, program.load_data(_CATEGORICAL_DATA), {"k": value})
    assert_same(actual, expected().log_prob(value))


@pytest.mark.parametrize("name", [n for n in DISCRETE_ROWS if not distributions.TABLE[n].is_finite])
def test_infinite_discrete_latent_is_rejected(name: str):
    case = DISCRETE[name]
    call = f"{name}({case.leading}{case.probs[0] if case.probs else ''}{case.trailing})"
    with pytest.raises(PplError, match="infinitely many values"):
        compile_source(f"latent k ~ {call}\n")


# 3. The guide's draws lie in the model's support ------------------------------------------------

GUIDE_CASES = [(name, guide, sized) for name in PROPER_CONTINUOUS for guide in GUIDES for sized in (False, True)]
GUIDE_IDS = [f"{name}-{guide}-{'sized' if sized else 'scalar'}" for name, guide, sized in GUIDE_CASES]


def _guided_program(name: str, guide: str, sized: bool):
    case = CONTINUOUS[name]
    if sized:
        program = compile_source(f"data D: int\n{case.header}latent z[D] ~ {case.call}\n", guide=guide)
        return program, program.load_data({"D": 4, **case.data})
    program = compile_source(f"{case.header}latent z ~ {case.call}\n", guide=guide)
    return program, program.load_data(case.data)


@pytest.mark.parametrize(("name", "guide", "sized"), GUIDE_CASES, ids=GUIDE_IDS)
def test_guide_sample_lies_in_the_support(name: str, guide: str, sized: bool):
    program, data = _guided_program(name, guide, sized)
    value, model_fn = guide_and_model_site(program, data, "z")
    assert bool(model_fn.support.check(value).all()), (value, model_fn.support)


@pytest.mark.parametrize(("name", "guide", "sized"), GUIDE_CASES, ids=GUIDE_IDS)
def test_guide_sample_has_the_model_site_shape(name: str, guide: str, sized: bool):
    program, data = _guided_program(name, guide, sized)
    value, model_fn = guide_and_model_site(program, data, "z")
    assert tuple(value.shape) == tuple(model_fn.shape())


@pytest.mark.parametrize("guide", GUIDES)
def test_guide_sample_lies_in_per_element_uniform_bounds(guide: str):
    program = compile_source("data N: int\ndata lo: real[N]\ndata hi: real[N]\n"
                             "latent z[i] ~ Uniform(lo[i], hi[i])\n", guide=guide)
    data = program.load_data({"lo": [0.0, 5.0, -3.0], "hi": [1.0, 6.0, -2.9]})
    value, model_fn = guide_and_model_site(program, data, "z")
    assert bool(model_fn.support.check(value).all()), value
    assert bool(((value > data["lo"]) & (value < data["hi"])).all()), value


# 4. Flat and HalfFlat -------------------------------------------------------------------------

IMPROPER_VALUES = {"Flat": [-3.7, 0.0, 12.5], "HalfFlat": [2.2, 1e-3, 40.0]}


@pytest.mark.parametrize("name", IMPROPER)
def test_improper_latent_has_log_density_zero(name: str):
    program = compile_source(f"latent z ~ {name}()\n")
    data = program.load_data({})
    for value in IMPROPER_VALUES[name]:
        assert_same(log_joint(program, data, {"z": tensor(value)}), 0.0)


@pytest.mark.parametrize("name", IMPROPER)
def test_sized_improper_latent_has_log_density_zero(name: str):
    program = compile_source(f"data D: int\nlatent z[D] ~ {name}()\n")
    assert_same(log_joint(program, program.load_data({"D": 3}), {"z": tensor(IMPROPER_VALUES[name])}), 0.0)


@pytest.mark.parametrize("guide", GUIDES)
@pytest.mark.parametrize("name", IMPROPER)
def test_improper_latent_guide_sample_is_finite_and_in_the_support(name: str, guide: str):
    program = compile_source(f"data D: int\nlatent z ~ {name}()\nlatent s[D] ~ {name}()\n", guide=guide)
    trace = poutine.trace(program.guide).get_trace(program.load_data({"D": 3}))
    for site in ("z", "s"):
        value = trace.nodes[site]["value"].detach()
        assert bool(torch.isfinite(value).all()), value
        if name == "HalfFlat":
            assert bool((value > 0).all()), value


# 5. The function table, as transformed data -----------------------------------------------------

FUNCTION_HEADER = """data N: int
data v: real<lower=0>[N]
data u: real<lower=0, upper=1>[N]
data w: real[N]
data R: int
data C: int
data M: real[R, C]
data q: real[R]
data S: real[R, R]
"""
FUNCTION_DATA = {"v": [0.5, 1.5, 2.0, 0.25], "u": [0.2, 0.4, 0.7, 0.9], "w": [-1.0, 0.5, 2.0, -0.3],
                 "M": [[1.0, 2.0, 3.0], [4.0, 5.0, 7.0]], "q": [2.0, -0.5], "S": [[4.0, 2.0], [2.0, 5.0]]}
T = {name: tensor(value) for name, value in FUNCTION_DATA.items()}

# id -> (function, let expression, the direct torch value)
FUNCTION_CASES: dict[str, tuple[str, str, Callable[[], torch.Tensor]]] = {
    "exp": ("exp", "exp(w)", lambda: torch.exp(T["w"])),
    "log": ("log", "log(v)", lambda: torch.log(T["v"])),
    "log-matrix": ("log", "log(M)", lambda: torch.log(T["M"])),
    "log1p": ("log1p", "log1p(v)", lambda: torch.log1p(T["v"])),
    "expm1": ("expm1", "expm1(w)", lambda: torch.expm1(T["w"])),
    "sqrt": ("sqrt", "sqrt(v)", lambda: torch.sqrt(T["v"])),
    "abs": ("abs", "abs(w)", lambda: torch.abs(T["w"])),
    "sigmoid": ("sigmoid", "sigmoid(w)", lambda: torch.sigmoid(T["w"])),
    "logit": ("logit", "logit(u)", lambda: torch.logit(T["u"])),
    "tanh": ("tanh", "tanh(w)", lambda: torch.tanh(T["w"])),
    "softplus": ("softplus", "softplus(w)", lambda: torch.nn.functional.softplus(T["w"])),
    "softmax-vector": ("softmax", "softmax(w)", lambda: torch.softmax(T["w"], -1)),
    "softmax-matrix-last-axis": ("softmax", "softmax(M)", lambda: torch.softmax(T["M"], -1)),
    "sum-vector": ("sum", "sum(v)", lambda: T["v"].sum()),
    "sum-matrix-all-axes": ("sum", "sum(M)", lambda: T["M"].sum()),
    "mean-vector": ("mean", "mean(w)", lambda: T["w"].mean()),
    "mean-matrix-all-axes": ("mean", "mean(M)", lambda: T["M"].mean()),
    "sd-vector-n-minus-1": ("sd", "sd(v)", lambda: T["v"].std(correction=1)),
    "sd-matrix-all-axes": ("sd", "sd(M)", lambda: T["M"].flatten().std(correction=1)),
    "dot": ("dot", "dot(v, w)", lambda: (T["v"] * T["w"]).sum()),
    "ones-vector": ("ones", "ones(N)", lambda: torch.ones(4)),
    "ones-matrix": ("ones", "ones(R, C)", lambda: torch.ones(2, 3)),
    "zeros-vector": ("zeros", "zeros(N)", lambda: torch.zeros(4)),
    "zeros-literal-size": ("zeros", "zeros(3)", lambda: torch.zeros(3)),
    # Stan's names, each against its definition written out.
    "inv_logit": ("inv_logit", "inv_logit(w)", lambda: 1 / (1 + torch.exp(-T["w"]))),
    "log_inv_logit": ("log_inv_logit", "log_inv_logit(w)", lambda: torch.log(1 / (1 + torch.exp(-T["w"])))),
    "log1m_inv_logit": ("log1m_inv_logit", "log1m_inv_logit(w)", lambda: torch.log(1 - 1 / (1 + torch.exp(-T["w"])))),
    "log1m": ("log1m", "log1m(u)", lambda: torch.log(1 - T["u"])),
    "Phi": ("Phi", "Phi(w)", lambda: 0.5 * (1 + torch.erf(T["w"] / math.sqrt(2)))),
    "inv_Phi": ("inv_Phi", "inv_Phi(u)", lambda: math.sqrt(2) * torch.erfinv(2 * T["u"] - 1)),
    "Phi_approx": ("Phi_approx", "Phi_approx(w)", lambda: torch.sigmoid(0.07056 * T["w"] ** 3 + 1.5976 * T["w"])),
    "Phi_approx-of-a-sum": ("Phi_approx", "Phi_approx(w + 1)",
                            lambda: torch.sigmoid(0.07056 * (T["w"] + 1) ** 3 + 1.5976 * (T["w"] + 1))),
    "lgamma": ("lgamma", "lgamma(v)", lambda: tensor([math.lgamma(x) for x in FUNCTION_DATA["v"]])),
    # Stan's normal log CDFs, against scipy's.
    "std_normal_lcdf": ("std_normal_lcdf", "std_normal_lcdf(w * 20)", lambda: tensor(norm.logcdf(T["w"] * 20))),
    "std_normal_lccdf": ("std_normal_lccdf", "std_normal_lccdf(w * 20)", lambda: tensor(norm.logsf(T["w"] * 20))),
    "normal_lcdf-broadcast": ("normal_lcdf", "normal_lcdf(0.5, w, v)",
                              lambda: tensor(norm.logcdf(0.5, T["w"], T["v"]))),
    "normal_lccdf-broadcast": ("normal_lccdf", "normal_lccdf(w, 0.5, v)",
                               lambda: tensor(norm.logsf(T["w"], 0.5, T["v"]))),
    "log_mix-broadcast": ("log_mix", "log_mix(u, w, 0.5)",
                          lambda: torch.log(T["u"] * torch.exp(T["w"]) + (1 - T["u"]) * math.exp(0.5))),
    "square": ("square", "square(w)", lambda: T["w"] * T["w"]),
    "inv": ("inv", "inv(v)", lambda: 1 / T["v"]),
    "log_softmax": ("log_softmax", "log_softmax(w)", lambda: T["w"] - T["w"].exp().sum().log()),
    "log_softmax-matrix-last-axis": ("log_softmax", "log_softmax(M)",
                                     lambda: T["M"] - T["M"].exp().sum(-1, keepdim=True).log()),
    "cumulative_sum": ("cumulative_sum", "cumulative_sum(w)",
                       lambda: tensor([-1.0, -1.0 + 0.5, -1.0 + 0.5 + 2.0, -1.0 + 0.5 + 2.0 - 0.3])),
    "log_sum_exp-vector": ("log_sum_exp", "log_sum_exp(w)", lambda: T["w"].exp().sum().log()),
    "log_sum_exp-matrix-all-axes": ("log_sum_exp", "log_sum_exp(M)", lambda: T["M"].exp().sum().log()),
    "max-vector": ("max", "max(w)", lambda: tensor(2.0)),
    "max-matrix-all-axes": ("max", "max(M)", lambda: tensor(7.0)),
    "min-vector": ("min", "min(w)", lambda: tensor(-1.0)),
    "identity": ("identity", "identity(R)", lambda: tensor([[1.0, 0.0], [0.0, 1.0]])),
    "diag_matrix": ("diag_matrix", "diag_matrix(w)", lambda: torch.diag(T["w"])),
    "transpose": ("transpose", "transpose(M)", lambda: tensor([[1.0, 4.0], [2.0, 5.0], [3.0, 7.0]])),
    # S = [[4, 2], [2, 5]] = L Lᵀ with L = [[2, 0], [1, 2]].
    "cholesky": ("cholesky", "cholesky(S)", lambda: tensor([[2.0, 0.0], [1.0, 2.0]])),
    "cholesky-of-a-sum": ("cholesky", "cholesky(S + identity(R))", lambda: torch.linalg.cholesky(T["S"] + torch.eye(2))),
    "diag_pre_multiply": ("diag_pre_multiply", "diag_pre_multiply(q, M)",
                          lambda: tensor([[2.0, 4.0, 6.0], [-2.0, -2.5, -3.5]])),
    "diag_pre_multiply-of-a-sum": ("diag_pre_multiply", "diag_pre_multiply(q + 1, M)",
                                   lambda: torch.diag(T["q"] + 1) @ T["M"]),
    "gp_exp_quad_cov": ("gp_exp_quad_cov", "gp_exp_quad_cov(w, 1.5, 0.7)",
                        lambda: 1.5 ** 2 * torch.exp(-(T["w"][:, None] - T["w"][None, :]) ** 2 / (2 * 0.7 ** 2))),
}


def test_cases_cover_the_function_table():
    assert {function for function, _, _ in FUNCTION_CASES.values()} == set(functions.TABLE)


@pytest.mark.parametrize("case", list(FUNCTION_CASES.values()), ids=list(FUNCTION_CASES))
def test_function_let_is_transformed_data_equal_to_torch(case):
    _, expression, expected = case
    program = compile_source(f"{FUNCTION_HEADER}let r = {expression}\n")
    (let,) = program.ir.lets
    assert let.transformed_data
    assert_same(program.load_data(FUNCTION_DATA)["r"], expected())


def test_spec_with_only_data_and_lets_compiles():
    program = compile_source("data N: int\ndata v: real<lower=0>[N]\nlet r = log(v)\n")
    assert_same(program.load_data({"v": [0.5, 2.0]})["r"], torch.log(tensor([0.5, 2.0])))


# The same functions over a latent: a deterministic site of the model, not transformed data.
LATENT_FUNCTION_CASES: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {
    "exp": ("exp(x)", torch.exp), "log": ("log(x)", torch.log), "log1p": ("log1p(x)", torch.log1p),
    "expm1": ("expm1(x)", torch.expm1), "sqrt": ("sqrt(x)", torch.sqrt), "abs": ("abs(-x)", torch.abs),
    "sigmoid": ("sigmoid(x)", torch.sigmoid), "logit": ("logit(x)", torch.logit), "tanh": ("tanh(x)", torch.tanh),
    "softplus": ("softplus(x)", torch.nn.functional.softplus), "softmax": ("softmax(x)", lambda x: x.softmax(-1)),
    "sum": ("sum(x)", torch.sum), "mean": ("mean(x)", torch.mean), "sd": ("sd(x)", lambda x: x.std(correction=1)),
    "dot": ("dot(x, x)", lambda x: (x * x).sum()),
    "inv_logit": ("inv_logit(x)", torch.sigmoid), "log_inv_logit": ("log_inv_logit(x)", lambda x: x.sigmoid().log()),
    "log1m_inv_logit": ("log1m_inv_logit(x)", lambda x: (1 - x.sigmoid()).log()),
    "log1m": ("log1m(x)", lambda x: (1 - x).log()), "Phi": ("Phi(x)", lambda x: 0.5 * (1 + torch.erf(x / math.sqrt(2)))),
    "inv_Phi": ("inv_Phi(x)", lambda x: math.sqrt(2) * torch.erfinv(2 * x - 1)),
    "Phi_approx": ("Phi_approx(x)", lambda x: torch.sigmoid(0.07056 * x ** 3 + 1.5976 * x)),
    "lgamma": ("lgamma(x)", torch.lgamma), "square": ("square(x)", lambda x: x * x), "inv": ("inv(x)", lambda x: 1 / x),
    "log_softmax": ("log_softmax(x)", lambda x: x - x.exp().sum().log()),
    "cumulative_sum": ("cumulative_sum(x)", lambda x: torch.stack([x[:k + 1].sum() for k in range(len(x))])),
    "log_sum_exp": ("log_sum_exp(x)", lambda x: x.exp().sum().log()), "max": ("max(x)", lambda x: x.max()),
    "min": ("min(x)", lambda x: x.min()), "diag_matrix": ("diag_matrix(x)", torch.diag),
    "cholesky": ("cholesky(diag_matrix(x) + 1)", lambda x: torch.linalg.cholesky(torch.diag(x) + 1)),
    "diag_pre_multiply": ("diag_pre_multiply(x, identity(D) + 1)",
                          lambda x: torch.diag(x) @ (torch.eye(3, dtype=x.dtype) + 1)),
    "gp_exp_quad_cov": ("gp_exp_quad_cov(x, x[0], x[1])",
                        lambda x: x[0] ** 2 * torch.exp(-(x[:, None] - x[None, :]) ** 2 / (2 * x[1] ** 2))),
}


@pytest.mark.parametrize("case", list(LATENT_FUNCTION_CASES.values()), ids=list(LATENT_FUNCTION_CASES))
def test_function_of_a_latent_is_a_deterministic_site_equal_to_torch(case):
    expression, expected = case
    program = compile_source(f"data D: int\nlatent x[D] ~ Beta(2, 2)\nlet r = {expression}\n")
    x = tensor([0.2, 0.5, 0.9])
    trace = poutine.trace(poutine.condition(program.model, {"x": x})).get_trace(program.load_data({"D": 3}))
    assert not program.ir.lets[0].transformed_data
    assert_same(trace.nodes["r"]["value"], expected(x))


# 6. Arithmetic, broadcasting and indexing through lets ---------------------------------------

ARITHMETIC_HEADER = """data N: int
data K: int
data J: int
data a: real[N]
data b: real<lower=0>[N]
data X: real[N, K]
data beta: real[K]
data c: real[J]
data g: int<lower=0, upper=J-1>[N]
data s: real
"""
ARITHMETIC_DATA = {"a": [1.0, -2.0, 0.5], "b": [0.5, 2.0, 4.0], "X": [[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]],
                   "beta": [0.3, -0.7], "c": [10.0, 20.0], "g": [1, 0, 1], "s": 2.5}
A = {name: tensor(value) for name, value in ARITHMETIC_DATA.items()}
A["g"] = tensor(ARITHMETIC_DATA["g"], torch.long)

# id -> (let statement, the direct torch value)
ARITHMETIC_CASES: dict[str, tuple[str, Callable[[], Any]]] = {
    "add": ("r = a + b", lambda: A["a"] + A["b"]),
    "subtract": ("r = a - b", lambda: A["a"] - A["b"]),
    "multiply": ("r = a * b", lambda: A["a"] * A["b"]),
    "divide": ("r = a / b", lambda: A["a"] / A["b"]),
    "power-literal": ("r = b ^ 2", lambda: A["b"] ** 2),
    "power-elementwise": ("r = b ^ a", lambda: A["b"] ** A["a"]),
    "power-right-associative": ("r = 2 ^ 3 ^ 2", lambda: 2 ** 3 ** 2),
    "negate": ("r = -a", lambda: -A["a"]),
    "negate-binds-looser-than-power": ("r = -a ^ 2", lambda: -(A["a"] ** 2)),
    "negate-parenthesised": ("r = -(a + b)", lambda: -(A["a"] + A["b"])),
    "left-associative-minus": ("r = 2 - a - b", lambda: 2 - A["a"] - A["b"]),
    "left-associative-divide": ("r = a / b / 2", lambda: A["a"] / A["b"] / 2),
    "precedence": ("r = a + b * s - a / b", lambda: A["a"] + A["b"] * A["s"] - A["a"] / A["b"]),
    "scalar-broadcast": ("r = a + s", lambda: A["a"] + A["s"]),
    "scalar-times-matrix": ("r = s * X", lambda: A["s"] * A["X"]),
    "matrix-times-row-vector-broadcast": ("r = X * beta", lambda: A["X"] * A["beta"]),
    "matrix-plus-row-vector-broadcast": ("r = X + beta", lambda: A["X"] + A["beta"]),
    "matvec": ("r = X @ beta", lambda: A["X"] @ A["beta"]),
    "vector-dot-vector": ("r = beta @ beta", lambda: A["beta"] @ A["beta"]),
    "indexed-row-matvec": ("r[i] = X[i] @ beta", lambda: A["X"] @ A["beta"]),
    "indexed-negated-matvec": ("r[i] = -X[i] @ beta", lambda: -(A["X"] @ A["beta"])),
    "indexed-intercept-plus-matvec": ("r[i] = a[i] + X[i] @ beta", lambda: A["a"] + A["X"] @ A["beta"]),
    "two-index-variables": ("r[i, k] = X[i, k] * 2", lambda: A["X"] * 2),
    "two-index-variables-broadcast": ("r[i, k] = X[i, k] * beta[k] + a[i]",
                                      lambda: A["X"] * A["beta"] + A["a"][:, None]),
    "index-variable-as-value": ("r[i] = b[i] ^ 0.5 + i", lambda: A["b"] ** 0.5 + torch.arange(3)),
    "single-index-over-second-axis": ("r[k] = beta[k] * s", lambda: A["beta"] * A["s"]),
    "constant-column": ("r[i] = X[i, 1]", lambda: A["X"][:, 1]),
    "constant-row": ("r = X[0]", lambda: A["X"][0]),
    "constant-element": ("r = X[1, 0]", lambda: A["X"][1, 0]),
    "nested-gather": ("r[i] = c[g[i]]", lambda: A["c"][A["g"]]),
    "whole-array-gather": ("r = c[g]", lambda: A["c"][A["g"]]),
    "nested-gather-in-arithmetic": ("r[i] = a[i] * c[g[i]] - 1", lambda: A["a"] * A["c"][A["g"]] - 1),
    "function-of-indexed-element": ("r[i] = log(b[i])", lambda: torch.log(A["b"])),
    "reduction-per-row": ("r[i] = sum(X[i])", lambda: A["X"].sum(-1)),
    "softmax-per-row": ("r[i] = softmax(X[i])", lambda: A["X"].softmax(-1)),
    "dot-per-row": ("r[i] = dot(X[i], beta)", lambda: A["X"] @ A["beta"]),
}


@pytest.mark.parametrize("case", list(ARITHMETIC_CASES.values()), ids=list(ARITHMETIC_CASES))
def test_arithmetic_let_equals_torch(case):
    statement, expected = case
    program = compile_source(f"{ARITHMETIC_HEADER}let {statement}\n")
    assert_same(program.load_data(ARITHMETIC_DATA)["r"], expected())


def test_model_let_over_latents_equals_torch():
    """`let eta[i] = a + X[i] @ b` with latent a and b: the deterministic site and the likelihood."""
    program = compile_source(
        "data N: int\ndata K: int\ndata X: real[N, K]\ndata y: real[N]\n"
        "latent a ~ Normal(0, 1)\nlatent b[K] ~ Normal(0, 1)\n"
        "let eta[i] = a + X[i] @ b\nobserve y[i] ~ Normal(eta[i], 2)\n")
    data = program.load_data({"X": ARITHMETIC_DATA["X"], "y": [1.0, 0.0, -1.0]})
    a, b = tensor(0.4), tensor([1.5, -0.5])
    trace = poutine.trace(poutine.condition(program.model, {"a": a, "b": b})).get_trace(data)
    eta = a + A["X"] @ b
    assert_same(trace.nodes["eta"]["value"], eta)
    expected = (dist.Normal(0.0, 1.0).log_prob(a) + dist.Normal(0.0, 1.0).log_prob(b).sum()
                + dist.Normal(eta, 2.0).log_prob(tensor([1.0, 0.0, -1.0])).sum())
    assert_same(trace.log_prob_sum(), expected)


@pytest.mark.parametrize(("text", "raw"), [
    ("latent z[4] ~ Normal(0, 1)\n", {}),
    ("data y: real[3]\nobserve y[i] ~ Normal(0, 1)\n", {"y": [0.5, 1.0, -1.0]}),
], ids=["sized-latent", "observed-array"])
def test_literal_size_plates_compile(text: str, raw: dict):
    program = compile_source(text)
    trace = poutine.trace(program.model).get_trace(program.load_data(raw))
    assert torch.isfinite(trace.log_prob_sum())


# 7. Vectorised particles ----------------------------------------------------------------------

SPEC_FILES = ["radon", "eight_schools", "linear_regression", "logistic_regression", "mixture", "noise_scale",
              "poisson_regression"]
PARTICLES = 3


def _sample_sites(trace):
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site) or site["infer"].get("_deterministic"):
            continue
        yield name, site


def _in_particles(fn, nesting: int):
    def wrapped(data):
        with pyro.plate("particles", PARTICLES, dim=-(nesting + 1)):
            return fn(data)
    return wrapped


def assert_particles_match_unvectorised(program, data) -> None:
    """The log joint of each particle of a vectorised guide draw equals the log joint
    of the unvectorised model conditioned on that particle's latent values."""
    nesting = program.ir.max_plate_nesting
    guide_trace = poutine.trace(_in_particles(program.guide, nesting)).get_trace(data)
    model_trace = poutine.trace(poutine.replay(_in_particles(program.model, nesting), trace=guide_trace)
                                ).get_trace(data)
    per_particle = torch.zeros(PARTICLES)
    for _, site in _sample_sites(model_trace):
        log_prob = site["fn"].log_prob(site["value"]).detach()
        axis = log_prob.dim() - (nesting + 1)
        assert axis >= 0 and log_prob.shape[axis] == PARTICLES, log_prob.shape
        per_particle += log_prob.movedim(axis, 0).reshape(PARTICLES, -1).sum(-1)
    shapes = {name: site["value"].shape for name, site in _sample_sites(poutine.trace(program.guide).get_trace(data))}
    for k in range(PARTICLES):
        values = {}
        for name, site in _sample_sites(guide_trace):
            value = site["value"].detach()
            axis = value.dim() - site["fn"].event_dim - (nesting + 1)
            values[name] = value.select(axis, k).reshape(shapes[name])
        assert_same(log_joint(program, data, values).detach(), per_particle[k])


@pytest.mark.parametrize("spec", SPEC_FILES)
def test_vectorised_elbo_loss_is_finite(spec: str, specs):
    program = compile_file(specs / f"{spec}.ppl")
    data = program.load_data()
    elbo_class = pyro.infer.TraceEnum_ELBO if any(s.enumerated for s in program.ir.latents) else pyro.infer.Trace_ELBO
    elbo = elbo_class(num_particles=4, vectorize_particles=True, max_plate_nesting=program.ir.max_plate_nesting)
    loss = elbo.loss(program.model, program.guide, data)
    assert torch.isfinite(torch.tensor(loss))


# mixture.ppl is left out: its z is enumerated, so a particle's log joint is not a sum of
# per-site log densities at sampled values (z is summed out, never drawn by the guide).
@pytest.mark.parametrize("spec", [s for s in SPEC_FILES if s != "mixture"])
def test_vectorised_particles_do_not_change_the_log_joint(spec: str, specs):
    program = compile_file(specs / f"{spec}.ppl")
    assert_particles_match_unvectorised(program, program.load_data())



INLINE_SPECS = [
    pytest.param("data J: int\ndata u: real[J]\ndata y: real[J]\nlatent mu ~ Normal(0, 1)\n"
                 "latent gamma ~ Normal(0, 1)\nlatent sigma ~ HalfNormal(1)\n"
                 "latent alpha[j] ~ Normal(mu + gamma * u[j], sigma)\nobserve y[j] ~ Normal(alpha[j], 1)\n",
                 {"u": [0.1, -0.5, 1.0], "y": [0.3, 0.2, -1.0]}, id="latent-indexed-by-index-variable"),
    pytest.param("data N: int\ndata K: int\ndata X: real[N, K]\ndata y: real[N, K]\n"
                 "latent B[N, K] ~ Normal(0, 1)\nlatent s ~ HalfCauchy(1)\n"
                 "let m[i, k] = B[i, k] * X[i, k]\nobserve y[i, k] ~ Normal(m[i, k], s)\n",
                 {"X": [[1.0, 2.0], [3.0, 4.0], [0.5, 0.1]], "y": [[1.0, 2.0], [3.0, 4.0], [0.5, 0.1]]},
                 id="two-plate-latent-and-let"),
    pytest.param("data N: int\ndata K: int\ndata X: real[N, K]\ndata y: real[N]\n"
                 "latent a ~ Normal(0, 1)\nlatent beta[K] ~ Normal(0, 1)\n"
                 "let eta[i] = a + X[i] @ beta\nobserve y[i] ~ Normal(eta[i], 1)\n",
                 {"X": [[1.0, 2.0], [3.0, 4.0], [0.5, 0.1]], "y": [1.0, 2.0, 3.0]}, id="indexed-let-matvec"),
    pytest.param("data N: int\ndata K: int\ndata X: real[N, K]\ndata y: real[N]\n"
                 "latent beta[K] ~ Normal(0, 1)\nlatent s ~ Exponential(1)\nobserve y ~ Normal(X @ beta, s)\n",
                 {"X": [[1.0, 2.0], [3.0, 4.0], [0.5, 0.1]], "y": [1.0, 2.0, 3.0]}, id="whole-array-matvec"),
    pytest.param("data N: int\ndata J: int\ndata g: int<lower=0, upper=J-1>[N]\ndata y: real[N]\n"
                 "latent a[J] ~ Normal(0, 1)\nobserve y[i] ~ Normal(a[g[i]], 1)\n",
                 {"J": 3, "g": [0, 2, 1, 2], "y": [1.0, 2.0, 3.0, 0.0]}, id="gather-of-a-plated-latent"),
    pytest.param("data K: int\ndata m: real[K]\ndata S: real[K, K]\ndata N: int\ndata y: real[N]\n"
                 "latent z ~ MultivariateNormal(m, S)\nlatent t ~ Uniform(-1, 1)\n"
                 "observe y[i] ~ Normal(sum(z) + t, 1)\n",
                 {"m": [0.0, 1.0], "S": [[1.0, 0.3], [0.3, 2.0]], "y": [0.5, 1.5]}, id="reduced-event-latent"),
    pytest.param("data K: int\ndata y: real[K]\nlatent w ~ Dirichlet(ones(K))\nobserve y[k] ~ Normal(w[k], 1)\n",
                 {"y": [0.3, 0.2, -1.0]}, id="dirichlet-indexed-by-index-variable"),
    pytest.param("data N: int\ndata K: int\ndata g: int<lower=0, upper=K-1>[N]\ndata y: real[N]\n"
                 "latent w ~ Dirichlet(ones(K))\nobserve y[i] ~ Normal(w[g[i]], 1)\n",
                 {"K": 3, "g": [0, 2, 1, 2], "y": [1.0, 2.0, 3.0, 0.0]}, id="dirichlet-gathered"),
    pytest.param("data K: int\ndata m: real[K]\ndata S: real[K, K]\ndata y: real[K]\n"
                 "latent z ~ MultivariateNormal(m, S)\nobserve y[k] ~ Normal(z[k], 1)\n",
                 {"m": [0.0, 1.0], "S": [[1.0, 0.3], [0.3, 2.0]], "y": [0.5, 1.5]},
                 id="multivariate-normal-indexed-by-index-variable"),
    pytest.param("data N: int\ndata x: real[N]\ndata y: int<lower=0>[N]\n"
                 "latent b ~ Normal(0, 1)\nlatent c0 ~ Normal(0, 2)\nlatent d[3] ~ HalfNormal(1)\n"
                 "let c = c0 + cumulative_sum(d)\nobserve y[i] ~ OrderedLogistic(b * x[i], c)\n",
                 {"x": [0.5, -1.0, 2.0], "y": [0, 3, 2]}, id="ordered-logistic-on-cumulative-cutpoints"),
    pytest.param("data K: int\ndata y: real[K]\nlatent s[K] ~ HalfStudentT(3, 1)\n"
                 "observe y ~ MultivariateNormal(zeros(K), scale_tril=diag_matrix(s))\n",
                 {"y": [0.3, -1.2]}, id="multivariate-normal-with-diagonal-scale"),
    pytest.param("data N: int\ndata y: int<lower=0>[N]\nlatent r ~ Weibull(2, 1.5)\nlatent z ~ Normal(0, 1)\n"
                 "observe y[i] ~ ZeroInflatedNegativeBinomial(r, logits=z, gate=inv_logit(z))\n",
                 {"y": [0, 4, 0, 1]}, id="zero-inflated-negative-binomial-of-latents"),
    pytest.param("data K: int\ndata y: real[K]\nlatent L: cholesky_factor_corr[K] ~ LKJCholesky(K, 2)\n"
                 "latent tau[K] ~ HalfNormal(1)\n"
                 "observe y ~ MultivariateNormal(zeros(K), scale_tril=diag_pre_multiply(tau, L))\n",
                 {"y": [0.3, -1.2, 0.4]}, id="lkj-cholesky-scaled-by-latent-sds"),
    pytest.param("data N: int\ndata x: real[N]\ndata y: real[N]\nlatent alpha ~ HalfNormal(1)\n"
                 "latent rho ~ Gamma(5, 2)\n"
                 "observe y ~ MultivariateNormal(zeros(N), gp_exp_quad_cov(x, alpha, rho) + identity(N))\n",
                 {"x": [0.0, 1.0, 2.5], "y": [0.3, -1.2, 0.4]}, id="gaussian-process-of-latent-hyperparameters"),
    pytest.param("data J: int\ndata K: int\ndata y: int<lower=0, upper=K-1>[J]\nlatent theta[J]: simplex[K]\n"
                 "observe y[j] ~ Categorical(theta[j])\n",
                 {"K": 3, "y": [0, 2]}, id="array-of-uniform-simplexes"),
]


@pytest.mark.parametrize(("text", "raw"), INLINE_SPECS)
def test_vectorised_particles_do_not_change_the_log_joint_of_inline_specs(text: str, raw: dict):
    program = compile_source(text)
    assert_particles_match_unvectorised(program, program.load_data(raw))
