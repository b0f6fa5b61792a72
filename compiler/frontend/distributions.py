"""The one distribution table: spec name -> Pyro class, parameters, support.

Adding a distribution is adding one row. Parameters are listed in Pyro's
positional order; parameters that share a `group` are alternatives of which
exactly one is given (`probs` or `logits`). `event_rank` of a parameter is how
many trailing axes one draw consumes (a Dirichlet's concentration is a vector).
The support names how values are validated and which guide factor a latent gets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compiler.errors import did_you_mean

# Supports. Continuous ones drive the guide family; discrete ones decide
# whether a latent can be enumerated (finite) or not.
REAL = "real"
POSITIVE = "positive"
UNIT_INTERVAL = "unit_interval"
INTERVAL = "interval"  # bounds are the distribution's `support_bounds` arguments (low, high); None: unbounded
SIMPLEX = "simplex"
BOOLEAN = "boolean"
NONNEGATIVE_INTEGER = "nonnegative_integer"
INTEGER_INTERVAL = "integer_interval"  # 0 .. the `support_bounds` argument
CATEGORY = "category"  # 0 .. K-1, K the length of the probabilities

CORR_CHOLESKY = "corr_cholesky"  # lower-triangular, positive diagonal, rows of unit length (LKJCholesky)
# A latent vector's own constraint (`latent mu: ordered[K] ~ ...`), not any distribution's support.
ORDERED = "ordered_vector"
POSITIVE_ORDERED = "positive_ordered_vector"


@dataclass(frozen=True)
class VectorType:
    """A latent's type written after its name (`latent mu: ordered[K] ~ ...`). Either it restricts
    K draws of a scalar distribution on `elements` to `kind` (ordered vectors: Stan's constrained
    parameters), or (`elements` None) it names the support of a distribution whose draw is the
    whole value, as `simplex[K]` is the support of Dirichlet, and checks the draw's size."""

    kind: str  # the support of the value
    elements: str | None = None  # the support each element's distribution must have, where it restricts
    event_rank: int = 1  # a vector (1) or a square matrix (2) of the type's size
    uniform: str | None = None  # the distribution a declaration without `~` gets, of ones(size): `Dirichlet(ones(K))`
    written: str = ""  # the distribution, as a hint writes it for a type of `size`


VECTOR_TYPES = {
    "ordered": VectorType(ORDERED, elements=REAL),
    "positive_ordered": VectorType(POSITIVE_ORDERED, elements=POSITIVE),
    "simplex": VectorType(SIMPLEX, uniform="Dirichlet", written="Dirichlet(ones({size}))"),
    # Stan's implicit prior on a Cholesky factor's coordinates is not LKJ's, so there is no default.
    "cholesky_factor_corr": VectorType(CORR_CHOLESKY, event_rank=2,
                                       written="LKJCholesky({size}, eta) (eta = 1: uniform over correlation matrices)"),
}

CONTINUOUS = frozenset({REAL, POSITIVE, UNIT_INTERVAL, INTERVAL, SIMPLEX, CORR_CHOLESKY})
FINITE = frozenset({BOOLEAN, INTEGER_INTERVAL, CATEGORY})


# What a scalar parameter accepts (Pyro's `arg_constraints`); a literal that
# breaks it is a spec error rather than a failure at the first step.
ABOVE_ZERO = "positive"
NOT_BELOW_ZERO = "nonnegative"
PROBABILITY = "probability"
COUNT = "count"

ACCEPTS = {
    ABOVE_ZERO: (lambda v: v > 0, "positive"),
    NOT_BELOW_ZERO: (lambda v: v >= 0, "at least 0"),
    PROBABILITY: (lambda v: 0 <= v <= 1, "in [0, 1]"),
    COUNT: (lambda v: v >= 0 and float(v).is_integer(), "a whole number >= 0"),
}


@dataclass(frozen=True)
class Parameter:
    name: str
    event_rank: int = 0
    default: float | None = None
    group: str | None = None
    accepts: str | None = None  # a key of ACCEPTS
    tensor: bool = False  # Pyro calls tensor methods on it, so a number must become a tensor first

    @property
    def required(self) -> bool:
        return self.default is None and self.group is None


@dataclass(frozen=True)
class SufficientStatistics:
    """The log-likelihood of n observations that share one distribution, from a
    few statistics of the data computed once: O(1) per evaluation instead of O(n).
    Both functions use tensor methods only (torch is not imported here);
    `of_data` gets the observed values as one flat tensor of the default float dtype;
    `combine` merges the statistics of two parts of the data (arrays read from disk a
    chunk at a time)."""

    of_data: Callable[[Any], tuple]
    log_likelihood: Callable[[Any, tuple], Any]  # (the Pyro distribution, the statistics) -> log p(x | θ)
    combine: Callable[[tuple, tuple], tuple] = lambda a, b: tuple(x + y for x, y in zip(a, b))


@dataclass(frozen=True)
class Distribution:
    name: str
    pyro_class: str
    parameters: tuple[Parameter, ...]
    support: str
    event_rank: int = 0
    support_bounds: tuple[str, ...] = ()
    improper: bool = False
    sufficient: SufficientStatistics | None = None
    # |X| for X the `pyro_class` centred at 0: a half distribution Pyro has no class for
    # (`dist.FoldedDistribution`, whose density is twice X's on the positive half-line).
    folded: bool = False
    # The parameter whose value is the size of each event axis (LKJCholesky's `dim`), where no
    # parameter's shape gives it: it must then be a size, an int data name or an integer literal.
    size_parameter: str | None = None

    @property
    def is_discrete(self) -> bool:
        return self.support not in CONTINUOUS

    @property
    def is_finite(self) -> bool:
        return self.support in FINITE

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def rejects(self, parameter: Parameter, value: float) -> str | None:
        """Why a number cannot be this parameter's argument, if it cannot."""
        if parameter.accepts is None:
            return None
        accepts, words = ACCEPTS[parameter.accepts]
        return None if accepts(value) else f"the {parameter.name} of {self.name} must be {words}, got {value:g}"


def _p(name: str, event_rank: int = 0, default: float | None = None, group: str | None = None,
       accepts: str | None = None, tensor: bool = False):
    return Parameter(name, event_rank, default, group, accepts, tensor)


def _positive(name: str, default: float | None = None):
    return _p(name, default=default, accepts=ABOVE_ZERO)


# Sufficient statistics ---------------------------------------------------------
# Each log-likelihood is the sum of torch's log_prob over the observations,
# rearranged; tests/test_collapsed.py checks every row against it.

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _centred(x) -> tuple:
    """Count, mean and the sum of squares about the mean (stable where the mean is large).
    No observations have mean 0, not NaN: with a count of 0 they then contribute nothing."""
    mean = x.sum() / max(x.numel(), 1)
    return x.numel(), mean, (x - mean).pow(2).sum()


def _combine_centred(a: tuple, b: tuple) -> tuple:
    """`_centred` of two parts merged (Chan, Golub & LeVeque 1979)."""
    (count_a, mean_a, squares_a), (count_b, mean_b, squares_b) = a, b
    count, shift = count_a + count_b, mean_b - mean_a
    weight = count_b / max(count, 1)  # two empty parts merge into an empty one
    return count, mean_a + shift * weight, squares_a + squares_b + shift.pow(2) * count_a * weight


def _normal_log_likelihood(loc, scale, count, mean, squares):
    return -count * (scale.log() + LOG_SQRT_2PI) - (squares + count * (mean - loc).pow(2)) / (2 * scale.pow(2))


def _softplus(x):
    """log(1 + exp(x)), as torch's binary_cross_entropy_with_logits computes it."""
    return x.clamp(min=0) + (-x.abs()).exp().log1p()


NORMAL_STATISTICS = SufficientStatistics(
    _centred, lambda d, s: _normal_log_likelihood(d.loc, d.scale, *s), _combine_centred)
HALF_NORMAL_STATISTICS = SufficientStatistics(
    lambda x: (x.numel(), x.pow(2).sum()),
    lambda d, s: s[0] * (math.log(2) - d.scale.log() - LOG_SQRT_2PI) - s[1] / (2 * d.scale.pow(2)))
LOG_NORMAL_STATISTICS = SufficientStatistics(
    lambda x: (*_centred(x.log()), x.log().sum()),
    lambda d, s: _normal_log_likelihood(d.loc, d.scale, *s[:3]) - s[3],
    lambda a, b: (*_combine_centred(a[:3], b[:3]), a[3] + b[3]))
EXPONENTIAL_STATISTICS = SufficientStatistics(
    lambda x: (x.numel(), x.sum()),
    lambda d, s: s[0] * d.rate.log() - d.rate * s[1])
GAMMA_STATISTICS = SufficientStatistics(
    lambda x: (x.numel(), x.sum(), x.log().sum()),
    lambda d, s: (s[0] * (d.concentration.xlogy(d.rate) - d.concentration.lgamma())
                  + (d.concentration - 1) * s[2] - d.rate * s[1]))
BERNOULLI_STATISTICS = SufficientStatistics(
    lambda x: (x.numel(), x.sum()),
    lambda d, s: s[1] * d.logits - s[0] * _softplus(d.logits))
POISSON_STATISTICS = SufficientStatistics(
    lambda x: (x.numel(), x.sum(), (x + 1).lgamma().sum()),
    lambda d, s: s[1].xlogy(d.rate) - s[0] * d.rate - s[2])


_PROBS = (_p("probs", group="p", accepts=PROBABILITY), _p("logits", group="p"))
_VECTOR_PROBS = (_p("probs", 1, group="p"), _p("logits", 1, group="p"))
# The probability of an extra zero (Pyro's `gate`), or its log-odds.
_GATE = (_p("gate", group="gate", accepts=PROBABILITY, tensor=True), _p("gate_logits", group="gate", tensor=True))

TABLE: dict[str, Distribution] = {
    d.name: d
    for d in (
        Distribution("Normal", "Normal", (_p("loc"), _positive("scale")), REAL, sufficient=NORMAL_STATISTICS),
        Distribution("HalfNormal", "HalfNormal", (_positive("scale"),), POSITIVE, sufficient=HALF_NORMAL_STATISTICS),
        Distribution("StudentT", "StudentT",
                     (_positive("df"), _p("loc", default=0.0), _positive("scale", default=1.0)), REAL),
        Distribution("Cauchy", "Cauchy", (_p("loc"), _positive("scale")), REAL),
        Distribution("HalfCauchy", "HalfCauchy", (_positive("scale"),), POSITIVE),
        Distribution("Laplace", "Laplace", (_p("loc"), _positive("scale")), REAL),
        Distribution("Gumbel", "Gumbel", (_p("loc"), _positive("scale")), REAL),
        # Angles: the density is periodic in 2π, so any real value is one (Pyro's support is real).
        Distribution("VonMises", "VonMises", (_p("loc"), _positive("concentration")), REAL),
        Distribution("HalfStudentT", "StudentT", (_positive("df"), _positive("scale", default=1.0)), POSITIVE,
                     folded=True),
        Distribution("LogNormal", "LogNormal", (_p("loc"), _positive("scale")), POSITIVE, sufficient=LOG_NORMAL_STATISTICS),
        Distribution("Exponential", "Exponential", (_positive("rate"),), POSITIVE, sufficient=EXPONENTIAL_STATISTICS),
        Distribution("Gamma", "Gamma", (_positive("concentration"), _positive("rate")), POSITIVE,
                     sufficient=GAMMA_STATISTICS),
        Distribution("InverseGamma", "InverseGamma", (_positive("concentration"), _positive("rate")), POSITIVE),
        Distribution("Weibull", "Weibull", (_positive("scale"), _positive("concentration")), POSITIVE),
        # Values from `scale` up: a latent's scale must be known before the model runs, as Uniform's bounds.
        Distribution("Pareto", "Pareto", (_positive("scale"), _positive("alpha")), INTERVAL,
                     support_bounds=("scale", None)),
        Distribution("Beta", "Beta", (_positive("concentration1"), _positive("concentration0")), UNIT_INTERVAL),
        Distribution("Uniform", "Uniform", (_p("low"), _p("high")), INTERVAL,
                     support_bounds=("low", "high")),
        Distribution("Bernoulli", "Bernoulli", _PROBS, BOOLEAN, sufficient=BERNOULLI_STATISTICS),
        Distribution("Binomial", "Binomial", (_p("total_count", default=1, accepts=COUNT), *_PROBS),
                     INTEGER_INTERVAL, support_bounds=("total_count",)),
        Distribution("BetaBinomial", "BetaBinomial",
                     (_positive("concentration1"), _positive("concentration0"),
                      _p("total_count", default=1, accepts=COUNT)),
                     INTEGER_INTERVAL, support_bounds=("total_count",)),
        Distribution("Poisson", "Poisson", (_p("rate", accepts=NOT_BELOW_ZERO),), NONNEGATIVE_INTEGER,
                     sufficient=POISSON_STATISTICS),
        Distribution("NegativeBinomial", "NegativeBinomial",
                     (_p("total_count", accepts=NOT_BELOW_ZERO), *_PROBS),
                     NONNEGATIVE_INTEGER),
        Distribution("ZeroInflatedPoisson", "ZeroInflatedPoisson", (_positive("rate"), *_GATE),
                     NONNEGATIVE_INTEGER),
        Distribution("ZeroInflatedNegativeBinomial", "ZeroInflatedNegativeBinomial",
                     (_p("total_count", accepts=NOT_BELOW_ZERO), *_PROBS, *_GATE), NONNEGATIVE_INTEGER),
        Distribution("Geometric", "Geometric", _PROBS, NONNEGATIVE_INTEGER),
        Distribution("Categorical", "Categorical", _VECTOR_PROBS, CATEGORY),
        # Categories 0 .. K-1 from K - 1 cut-points, which must be in increasing order: the checker
        # cannot see that, so docs/language.md shows how to build them ordered.
        Distribution("OrderedLogistic", "OrderedLogistic", (_p("predictor", tensor=True), _p("cutpoints", 1)),
                     CATEGORY),
        Distribution("Dirichlet", "Dirichlet", (_p("concentration", 1),), SIMPLEX, event_rank=1),
        # Cholesky factors of K x K correlation matrices, density ∝ det(L Lᵀ)^(concentration - 1) (Pyro's
        # LKJCholesky: Lewandowski, Kurowicka and Joe 2009, as Stan's lkj_corr_cholesky).
        Distribution("LKJCholesky", "LKJCholesky", (_p("dim", accepts=COUNT), _positive("concentration", default=1.0)),
                     CORR_CHOLESKY, event_rank=2, size_parameter="dim"),
        Distribution("MultivariateNormal", "MultivariateNormal",
                     (_p("loc", 1), _p("covariance_matrix", 2, group="cov"),
                      _p("precision_matrix", 2, group="cov"), _p("scale_tril", 2, group="cov")),
                     REAL, event_rank=1),
        Distribution("Flat", "ImproperUniform", (), REAL, improper=True),
        Distribution("HalfFlat", "ImproperUniform", (), POSITIVE, improper=True),
    )
}

# The rows that may be truncated (`T[lo, hi]`) or censored (`censored[lo, hi]`): those whose torch class
# has a CDF differentiable in every parameter and an inverse CDF (to draw from the truncated prior).
# Gamma's and InverseGamma's CDFs have no gradient in the concentration; StudentT's, Beta's and the
# discrete rows' have no CDF in torch at all.
WITH_CDF = ("Normal", "HalfNormal", "Cauchy", "HalfCauchy", "Laplace", "Gumbel", "LogNormal", "Exponential", "Weibull")

# Stan's (and PyMC's) names for the rows above, and how pplc writes them.
SYNONYMS: dict[str, str] = {
    "normal": "Normal", "student_t": "StudentT", "cauchy": "Cauchy", "double_exponential": "Laplace",
    "lognormal": "LogNormal", "exponential": "Exponential", "gamma": "Gamma", "inv_gamma": "InverseGamma",
    "beta": "Beta", "uniform": "Uniform", "weibull": "Weibull", "pareto": "Pareto", "gumbel": "Gumbel",
    "von_mises": "VonMises", "bernoulli": "Bernoulli", "binomial": "Binomial", "beta_binomial": "BetaBinomial",
    "poisson": "Poisson", "neg_binomial": "NegativeBinomial", "categorical": "Categorical",
    "ordered_logistic": "OrderedLogistic", "dirichlet": "Dirichlet", "multi_normal": "MultivariateNormal",
    "lkj_corr_cholesky": "LKJCholesky(K, eta)", "LKJCholeskyCorr": "LKJCholesky(K, eta)",
    # Pyro's LKJ does not batch (no `expand`): correlation matrices come from their Cholesky factors.
    **dict.fromkeys(("lkj_corr", "LKJ", "LKJCorr"),
                    "LKJCholesky(K, eta) for a cholesky_factor_corr[K] L, the matrix being L @ transpose(L)"),
    "MvNormal": "MultivariateNormal",
    "bernoulli_logit": "Bernoulli(logits=...)", "binomial_logit": "Binomial(n, logits=...)",
    "categorical_logit": "Categorical(logits=...)", "poisson_log": "Poisson(exp(...))",
    "multi_normal_cholesky": "MultivariateNormal(mu, scale_tril=L)",
    "neg_binomial_2": "NegativeBinomial(phi, logits=log(mu) - log(phi)) (mean mu, dispersion phi)",
}


def written(name: str) -> str:
    """A Stan or PyMC distribution as pplc writes it: `Normal(...)`, `Bernoulli(logits=...)`."""
    spelled = SYNONYMS[name]
    return spelled if "(" in spelled else f"{spelled}(...)"


def unknown_hint(name: str) -> str:
    """The hint for an unknown distribution: how pplc writes a Stan or PyMC name, else the nearest row."""
    if name in SYNONYMS:
        return f"pplc writes {name} as {written(name)}"
    return did_you_mean(name, list(TABLE)) or "see docs/language.md for the table"
