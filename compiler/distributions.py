"""The one distribution table: spec name -> Pyro class, parameters, support.

Adding a distribution is adding one row. Parameters are listed in Pyro's
positional order; parameters that share a `group` are alternatives of which
exactly one is given (`probs` or `logits`). `event_rank` of a parameter is how
many trailing axes one draw consumes (a Dirichlet's concentration is a vector).
The support names how values are validated and which guide factor a latent gets.
"""

from __future__ import annotations

from dataclasses import dataclass

# Supports. Continuous ones drive the guide family; discrete ones decide
# whether a latent can be enumerated (finite) or not.
REAL = "real"
POSITIVE = "positive"
UNIT_INTERVAL = "unit_interval"
INTERVAL = "interval"  # bounds are the distribution's `support_bounds` arguments
SIMPLEX = "simplex"
BOOLEAN = "boolean"
NONNEGATIVE_INTEGER = "nonnegative_integer"
INTEGER_INTERVAL = "integer_interval"  # 0 .. the `support_bounds` argument
CATEGORY = "category"  # 0 .. K-1, K the length of the probabilities

CONTINUOUS = frozenset({REAL, POSITIVE, UNIT_INTERVAL, INTERVAL, SIMPLEX})
FINITE = frozenset({BOOLEAN, INTEGER_INTERVAL, CATEGORY})


@dataclass(frozen=True)
class Parameter:
    name: str
    event_rank: int = 0
    default: float | None = None
    group: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None and self.group is None


@dataclass(frozen=True)
class Distribution:
    name: str
    pyro_class: str
    parameters: tuple[Parameter, ...]
    support: str
    event_rank: int = 0
    support_bounds: tuple[str, ...] = ()
    improper: bool = False

    @property
    def is_discrete(self) -> bool:
        return self.support not in CONTINUOUS

    @property
    def is_finite(self) -> bool:
        return self.support in FINITE

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)


def _p(name: str, event_rank: int = 0, default: float | None = None, group: str | None = None):
    return Parameter(name, event_rank, default, group)


_PROBS = (_p("probs", group="p"), _p("logits", group="p"))
_VECTOR_PROBS = (_p("probs", 1, group="p"), _p("logits", 1, group="p"))

TABLE: dict[str, Distribution] = {
    d.name: d
    for d in (
        Distribution("Normal", "Normal", (_p("loc"), _p("scale")), REAL),
        Distribution("HalfNormal", "HalfNormal", (_p("scale"),), POSITIVE),
        Distribution("StudentT", "StudentT",
                     (_p("df"), _p("loc", default=0.0), _p("scale", default=1.0)), REAL),
        Distribution("Cauchy", "Cauchy", (_p("loc"), _p("scale")), REAL),
        Distribution("HalfCauchy", "HalfCauchy", (_p("scale"),), POSITIVE),
        Distribution("Laplace", "Laplace", (_p("loc"), _p("scale")), REAL),
        Distribution("LogNormal", "LogNormal", (_p("loc"), _p("scale")), POSITIVE),
        Distribution("Exponential", "Exponential", (_p("rate"),), POSITIVE),
        Distribution("Gamma", "Gamma", (_p("concentration"), _p("rate")), POSITIVE),
        Distribution("InverseGamma", "InverseGamma", (_p("concentration"), _p("rate")), POSITIVE),
        Distribution("Beta", "Beta", (_p("concentration1"), _p("concentration0")), UNIT_INTERVAL),
        Distribution("Uniform", "Uniform", (_p("low"), _p("high")), INTERVAL,
                     support_bounds=("low", "high")),
        Distribution("Bernoulli", "Bernoulli", _PROBS, BOOLEAN),
        Distribution("Binomial", "Binomial", (_p("total_count", default=1), *_PROBS),
                     INTEGER_INTERVAL, support_bounds=("total_count",)),
        Distribution("Poisson", "Poisson", (_p("rate"),), NONNEGATIVE_INTEGER),
        Distribution("NegativeBinomial", "NegativeBinomial", (_p("total_count"), *_PROBS),
                     NONNEGATIVE_INTEGER),
        Distribution("Geometric", "Geometric", _PROBS, NONNEGATIVE_INTEGER),
        Distribution("Categorical", "Categorical", _VECTOR_PROBS, CATEGORY),
        Distribution("Dirichlet", "Dirichlet", (_p("concentration", 1),), SIMPLEX, event_rank=1),
        Distribution("MultivariateNormal", "MultivariateNormal",
                     (_p("loc", 1), _p("covariance_matrix", 2, group="cov"),
                      _p("precision_matrix", 2, group="cov"), _p("scale_tril", 2, group="cov")),
                     REAL, event_rank=1),
        Distribution("Flat", "ImproperUniform", (), REAL, improper=True),
        Distribution("HalfFlat", "ImproperUniform", (), POSITIVE, improper=True),
    )
}
