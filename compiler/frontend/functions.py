"""The one function table: spec function name -> how it maps shapes, and its torch code.

`shape` names the rule `check` applies; `torch` is the code template `codegen`
fills with the generated arguments (`{0}`, `{1}`, and `{axes}` for reductions).
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.errors import did_you_mean
from compiler.frontend import distributions

ELEMENTWISE = "elementwise"  # one argument; same shape out
VECTOR = "vector"  # one vector argument; same shape out (softmax)
REDUCE = "reduce"  # one argument; a scalar out
DOT = "dot"  # two vectors; a scalar out
BROADCAST = "broadcast"  # several arguments, elementwise; their shapes broadcast to the result's
CONSTRUCT = "construct"  # sizes in; an array of that shape out
# Matrices
DIAGONAL = "diagonal"  # a vector of K in; the K x K matrix with it on the diagonal out
TRANSPOSE = "transpose"  # a matrix in; its transpose out
IDENTITY = "identity"  # one size K in; the K x K identity matrix out
SQUARE = "square"  # a K x K matrix in; a K x K matrix out (cholesky)
DIAGONAL_PRODUCT = "diagonal_product"  # a vector of K and a K x C matrix in; the K x C matrix out
COVARIANCE = "covariance"  # a vector of N points and two scalars in; the N x N matrix of a kernel out


@dataclass(frozen=True)
class Function:
    name: str
    arity: int | None  # None: one or more (constructors take one size per axis)
    shape: str
    torch: str


TABLE: dict[str, Function] = {
    f.name: f
    for f in (
        Function("exp", 1, ELEMENTWISE, "torch.exp({0})"),
        Function("log", 1, ELEMENTWISE, "torch.log({0})"),
        Function("log1p", 1, ELEMENTWISE, "torch.log1p({0})"),
        Function("expm1", 1, ELEMENTWISE, "torch.expm1({0})"),
        Function("sqrt", 1, ELEMENTWISE, "torch.sqrt({0})"),
        Function("abs", 1, ELEMENTWISE, "torch.abs({0})"),
        Function("sigmoid", 1, ELEMENTWISE, "torch.sigmoid({0})"),
        Function("inv_logit", 1, ELEMENTWISE, "torch.sigmoid({0})"),  # Stan's name for sigmoid
        Function("log_inv_logit", 1, ELEMENTWISE, "torch.nn.functional.logsigmoid({0})"),
        Function("log1m_inv_logit", 1, ELEMENTWISE, "torch.nn.functional.logsigmoid(torch.neg({0}))"),
        Function("logit", 1, ELEMENTWISE, "torch.logit({0})"),
        Function("log1m", 1, ELEMENTWISE, "torch.log1p(torch.neg({0}))"),
        Function("Phi", 1, ELEMENTWISE, "torch.special.ndtr({0})"),  # the standard normal CDF
        Function("inv_Phi", 1, ELEMENTWISE, "torch.special.ndtri({0})"),
        # Stan's logistic approximation to Phi (absolute error below 1.5e-4), as Stan defines it.
        Function("Phi_approx", 1, ELEMENTWISE, "torch.sigmoid(torch.mul({0}, 1.5976 + 0.07056 * torch.square({0})))"),
        # Stan's normal log CDFs, for a `factor` (a truncated or censored observation is written
        # with T[...] or censored[...]): log_ndtr keeps its digits far into the tails.
        Function("std_normal_lcdf", 1, ELEMENTWISE, "torch.special.log_ndtr({0})"),
        Function("std_normal_lccdf", 1, ELEMENTWISE, "torch.special.log_ndtr(torch.neg({0}))"),
        Function("normal_lcdf", 3, BROADCAST, "torch.special.log_ndtr(({0} - {1}) / {2})"),
        Function("normal_lccdf", 3, BROADCAST, "torch.special.log_ndtr(({1} - {0}) / {2})"),
        # Stan's log_mix(theta, lp1, lp2): log(theta e^lp1 + (1 - theta) e^lp2), a two-component mixture's
        # log density from its components' (for a `factor`), without overflow.
        Function("log_mix", 3, BROADCAST, "torch.logaddexp(torch.log({0}) + {1}, torch.log1p(torch.neg({0})) + {2})"),
        Function("lgamma", 1, ELEMENTWISE, "torch.lgamma({0})"),
        Function("square", 1, ELEMENTWISE, "torch.square({0})"),
        Function("inv", 1, ELEMENTWISE, "torch.reciprocal({0})"),
        Function("tanh", 1, ELEMENTWISE, "torch.tanh({0})"),
        Function("softplus", 1, ELEMENTWISE, "torch.nn.functional.softplus({0})"),
        Function("softmax", 1, VECTOR, "torch.softmax({0}, -1)"),
        Function("log_softmax", 1, VECTOR, "torch.log_softmax({0}, -1)"),
        # Ordered cut-points from positive increments: c0 + cumulative_sum(d).
        Function("cumulative_sum", 1, VECTOR, "torch.cumsum({0}, -1)"),
        Function("sum", 1, REDUCE, "{0}.sum({axes})"),
        Function("mean", 1, REDUCE, "{0}.mean({axes})"),
        Function("log_sum_exp", 1, REDUCE, "{0}.logsumexp({axes})"),
        Function("max", 1, REDUCE, "{0}.amax({axes})"),
        Function("min", 1, REDUCE, "{0}.amin({axes})"),
        # The sample standard deviation (n - 1), as in Stan and R.
        Function("sd", 1, REDUCE, "{0}.std({axes}, correction=1)"),
        Function("dot", 2, DOT, "({0} * {1}).sum(-1)"),
        Function("ones", None, CONSTRUCT, "torch.ones({shape})"),
        Function("zeros", None, CONSTRUCT, "torch.zeros({shape})"),
        Function("identity", 1, IDENTITY, "torch.eye({size})"),
        Function("diag_matrix", 1, DIAGONAL, "torch.diag_embed({0})"),
        Function("transpose", 1, TRANSPOSE, "{0}.transpose(-2, -1)"),
        # The lower Cholesky factor; NaN where the matrix is not positive definite, so that a fit
        # reports the non-finite log density at its site rather than stopping with torch's error.
        Function("cholesky", 1, SQUARE, "rt.cholesky({0})"),
        # Stan's diag_pre_multiply(v, L) = diag_matrix(v) @ L: row k of L scaled by v[k].
        Function("diag_pre_multiply", 2, DIAGONAL_PRODUCT, "torch.mul({0}.unsqueeze(-1), {1})"),
        # Stan's exponentiated quadratic kernel: alpha^2 exp(-(x[i] - x[j])^2 / (2 rho^2)).
        Function("gp_exp_quad_cov", 3, COVARIANCE, "rt.gp_exp_quad_cov({0}, {1}, {2})"),
    )
}

# Stan's (and NumPy's) names for functions of the table, or how pplc writes them instead.
SYNONYMS: dict[str, str] = {
    "fabs": "abs", "logsumexp": "log_sum_exp", "cumsum": "cumulative_sum", "expit": "inv_logit",
    "gammaln": "lgamma", "std": "sd", "eye": "identity", "diag": "diag_matrix", "inv_square": "inv",
    "pow": "write x ^ y", "square_root": "sqrt", "cholesky_decompose": "cholesky",
    "multiply_lower_tri_self_transpose": "write L @ transpose(L)", "cov_exp_quad": "gp_exp_quad_cov",
}
# Stan's log densities written as functions (`normal_lpdf(y | mu, sigma)`).
DENSITY_SUFFIXES = ("_lpdf", "_lpmf", "_lupdf", "_lupmf", "_log")
# Stan's CDFs, which pplc's truncation and censoring use for every distribution with one.
CDF_SUFFIXES = ("_lcdf", "_lccdf", "_cdf")


def unknown_hint(name: str) -> str:
    """The hint for an unknown function: a synonym first, then a Stan log density or a distribution
    called as a function, then the nearest name in the table."""
    synonym = SYNONYMS.get(name)
    if synonym is not None:
        return f"did you mean '{synonym}'?" if synonym in TABLE else synonym
    stem = next((name.removesuffix(s) for s in DENSITY_SUFFIXES if name.endswith(s)), None)
    if stem in distributions.SYNONYMS:
        return f"pplc adds log densities with `~`: observe y ~ {distributions.written(stem)}"
    cdf_stem = next((name.removesuffix(s) for s in CDF_SUFFIXES if name.endswith(s)), None)
    if cdf_stem in distributions.SYNONYMS:
        return (f"pplc truncates and censors with CDFs itself: observe y ~ {distributions.written(cdf_stem)} "
                "T[lo, hi] or censored[lo, hi]")
    if name in distributions.SYNONYMS:
        return f"{name} is a distribution: pplc writes it {distributions.written(name)}, after `~`"
    return did_you_mean(name, list(TABLE)) or "see docs/language.md for the function table"
