"""Phase 3, codegen of q(z): the guide's factors, a rule per support in the spirit of Pyro's
AutoNormal (a normal in unconstrained space pushed through the support's transform, or the
native family of the support), or one Gaussian over every guided latent (Pyro's
AutoMultivariateNormal and AutoLowRankMultivariateNormal)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from compiler.backend import emitter as em
from compiler.backend.emitter import Assign, Code, Line, Statement
from compiler.backend.expressions import dim_code, expression, shape_code
from compiler.frontend import distributions, ir

# One Gaussian over every guided latent's unconstrained coordinates (Pyro's AutoMultivariateNormal and
# AutoLowRankMultivariateNormal): full covariance, or diagonal plus rank min(LOW_RANK, ceil(D / 2)). At a
# larger rank W Wᵀ + diag(d) no longer pins W and d down, and on eight_schools (D = 10, rank 10) L-BFGS
# traded one for the other for 1,000 iterations without converging (rank 5: 189 iterations).
JOINT_FAMILIES = ("fullrank", "lowrank")
LOW_RANK = 10
JOINT_SITE = "__joint"  # the joint guides' one draw: spec names cannot start with "__" (check.py)
# The joint guides' parameters: "joint.<role>" (a spec's own pyro.param names have no dot)
JOINT_ROLES = {"fullrank": ("loc", "scale_tril"), "lowrank": ("loc", "cov_factor", "scale")}

INITIAL_SCALE = 0.1  # the unconstrained guide's starting spread, as in Pyro's AutoNormal
# The low-rank guide's covariance is S (W Wᵀ + I) S, S = diag(scale), as Pyro's AutoLowRankMultivariateNormal
# has it: torch's Woodbury formulas then invert I + Wᵀ W, well conditioned however small a scale gets (with
# W Wᵀ + diag(d), d went to 1e-14 on a rank-3 fit of 6 correlated coordinates, and log q with it to noise).
# W starts with random entries of sd 0.3: at W = 0 the ELBO's gradient in W vanishes, and W would stay.
# W is lower trapezoidal (zero above its diagonal): W Q for any rotation Q gives the same covariance,
# and with fixed draws L-BFGS could turn Q for ever, fitting the draws themselves.
INITIAL_FACTOR = 0.3


def pyro_call(attribute: str, *arguments: Code) -> Code:
    return em.call(em.imported("pyro", attribute), *arguments)


# The guide's factors -------------------------------------------------------------


@dataclass(frozen=True)
class Factor:
    family: str
    statements: list[Statement]


class Locals:
    """The guide's local name for a factor parameter: `<latent>_<role>` (`joint_<role>` for
    the joint guides' own), with `_` appended while a spec name is spelled the same (a data
    name `a_scale` must still mean the data)."""

    def __init__(self, taken: set[str]):
        self.taken = taken

    def __call__(self, latent: ir.Latent, role: str) -> str:
        return self.free(f"{latent.name}_{role}")

    def free(self, name: str) -> str:
        while name in self.taken:
            name += "_"
        return name


def factor(latent: ir.Latent, family: str, local: Locals) -> Factor:
    """One factor of q(z): a rule per support, in the spirit of Pyro's AutoNormal."""
    support = latent.distribution.support
    site = em.string(latent.name)
    if family == "native" and support.kind in NATIVE_FACTORS:
        label, roles = NATIVE_FACTORS[support.kind]
        params = [_guide_param(latent, role, 2.0, local, positive=True) for role in roles]
        native = em.call(em.imported("dist", label), *(em.name(local(latent, role)) for role in roles))
        return Factor(label, params + [Line(pyro_call("sample", site, native))])
    unconstrained = _unconstrained_shape(latent)
    params = [_guide_loc(latent, unconstrained, local),
              _guide_param(latent, "scale", INITIAL_SCALE, local, positive=True, shape=unconstrained)]
    event_rank = _unconstrained_event_rank(latent)
    loc_scale = (em.name(local(latent, "loc")), em.name(local(latent, "scale")))
    base: Code = em.call(em.imported("dist", "Normal"), *loc_scale)
    if event_rank:
        base = em.joined(base, f".to_event({event_rank})")
    label, transform = _unconstraining_inverse(support)
    if transform is None:
        return Factor(label, params + [Line(pyro_call("sample", site, base))])
    if support.kind == distributions.POSITIVE and not event_rank:
        return Factor(label, params + [Line(pyro_call("sample", site, em.call(em.imported("dist", "LogNormal"),
                                                                            *loc_scale)))])
    transformed = em.call(em.imported("dist", "TransformedDistribution"), base, transform)
    return Factor(label, params + [Line(pyro_call("sample", site, transformed))])


def _unconstrained_shape(latent: ir.Latent) -> Sequence[ir.Dim | Code]:
    """The shape of a latent's coordinates on the real line (a simplex of K has K - 1, the Cholesky
    factor of a K x K correlation matrix K (K - 1) / 2: its elements below the diagonal)."""
    match latent.distribution.support.kind:
        case distributions.SIMPLEX:
            return [*latent.shape[:-1], _minus_one(latent.shape[-1])]
        case distributions.CORR_CHOLESKY:
            return [*latent.shape[:-2], _below_diagonal(latent.shape[-1])]
    return latent.shape


def _unconstrained_event_rank(latent: ir.Latent) -> int:
    """The axes of one draw on the real line: a Cholesky factor's K x K are one vector there."""
    if latent.distribution.support.kind == distributions.CORR_CHOLESKY:
        return 1
    return len(latent.distribution.event_shape)


# The joint guides ------------------------------------------------------------------


def joint(latents: Sequence[ir.Latent], family: str, local: Locals) -> list[Statement]:
    """The joint guides' one Gaussian over all the latents' unconstrained coordinates, laid
    end to end in the guide's order, drawn at one site (as Pyro's AutoContinuous guides do),
    and each latent's block of it cut out (`joint_factor` records the latent's value)."""
    coordinates = local.free("coordinates")
    size = em.name(coordinates)
    vector = em.joined("(", size, ",)")
    loc = em.joined("lambda: ", em.call(em.runtime("uniform_init"), vector))
    names = {role: local.free(f"joint_{role}") for role in JOINT_ROLES[family]}
    statements: list[Statement] = [
        Assign(coordinates, _sum([_size(_unconstrained_shape(latent)) for latent in latents])),
        Assign(names["loc"], pyro_call("param", em.parameter("joint.loc"), loc))]
    if family == "fullrank":
        eye = em.chain(em.call(em.imported("torch", "eye"), size), "*", em.number(INITIAL_SCALE))
        statements.append(Assign(names["scale_tril"], pyro_call(
            "param", em.parameter("joint.scale_tril"), em.joined("lambda: ", eye),
            em.keyword("constraint", em.imported("constraints", "lower_cholesky")))))
        gaussian = em.call(em.imported("dist", "MultivariateNormal"), em.name(names["loc"]),
                           em.keyword("scale_tril", em.name(names["scale_tril"])))
    else:
        halved = em.chain(em.parenthesised(em.chain(size, "+", em.number(1))), "//", em.number(2))
        rank = em.call(em.text("min"), em.number(LOW_RANK), halved)
        factor = em.chain(em.joined(em.call(em.imported("torch", "randn"), em.joined("(", size, ", ", rank, ")")),
                                    ".tril()"), "*", em.number(INITIAL_FACTOR))
        scale = em.call(em.imported("torch", "full"), vector, em.number(INITIAL_SCALE))
        statements += [Assign(names["cov_factor"], pyro_call("param", em.parameter("joint.cov_factor"),
                                                          em.joined("lambda: ", factor))),
                       Assign(names["scale"], pyro_call("param", em.parameter("joint.scale"),
                                                    em.joined("lambda: ", scale),
                                                    em.keyword("constraint", em.imported("constraints", "positive"))))]
        scaled = em.chain(em.joined(em.name(names["cov_factor"]), ".tril()"), "*",
                          em.joined(em.name(names["scale"]), ".unsqueeze(-1)"))
        gaussian = em.call(em.imported("dist", "LowRankMultivariateNormal"), em.name(names["loc"]), scaled,
                           em.chain(em.name(names["scale"]), "**", em.number(2)))
    statements.append(Assign(local.free("joint"), pyro_call("sample", em.string(JOINT_SITE), gaussian,
                                                    em.keyword("infer", em.text('{"is_auxiliary": True}')))))
    start: list[Code] = []
    for latent in latents:
        arguments = [em.name(local.free("joint")), _sum(start), shape_code(_unconstrained_shape(latent))]
        if event_rank := _unconstrained_event_rank(latent):
            arguments.append(em.keyword("event_rank", em.number(event_rank)))
        statements.append(Assign(local(latent, "unconstrained"), em.call(em.runtime("block"), *arguments)))
        start.append(_size(_unconstrained_shape(latent)))
    return statements


def joint_factor(latent: ir.Latent, local: Locals) -> Factor:
    """A latent's value under a joint guide: its block pushed onto its support, recorded
    with the log-density that makes log q(z) right (`rt.pushed`)."""
    label, transform = _unconstraining_inverse(latent.distribution.support)
    block = em.name(local(latent, "unconstrained"))
    event_rank = len(latent.distribution.event_shape)
    if transform is None:
        keyword = [em.keyword("event_dim", em.number(event_rank))] if event_rank else []
        point = em.call(em.imported("dist", "Delta"), block, *keyword)
    else:
        keyword = [em.keyword("event_rank", em.number(event_rank))] if event_rank else []
        point = em.call(em.runtime("pushed"), block, transform, *keyword)
    return Factor(label, [Line(pyro_call("sample", em.string(latent.name), point))])


def _size(shape: Sequence[ir.Dim | Code]) -> Code:
    """The number of elements of `shape`: its numbers multiplied out, then its named sizes."""
    constant = math.prod(dim for dim in shape if isinstance(dim, int))
    named = [dim_code(dim) for dim in shape if not isinstance(dim, int)]
    factors = ([em.number(constant)] if constant != 1 or not named else []) + named
    if len(factors) == 1:
        return factors[0]
    product = em.parenthesised(factors[0]) if isinstance(factors[0], em.Chain) else factors[0]
    for factor in factors[1:]:
        product = em.chain(product, "*", em.parenthesised(factor) if isinstance(factor, em.Chain) else factor)
    return product


def _sum(terms: Sequence[Code]) -> Code:
    """`terms` added up, their numbers added into one, last."""
    constant = sum(int(t.flat()) for t in terms if t.flat().isdigit())
    parts = [t for t in terms if not t.flat().isdigit()] + ([em.number(constant)] if constant or not terms else [])
    if not parts:
        return em.number(0)
    total = parts[0]
    for part in parts[1:]:
        total = em.chain(total, "+", part)
    return total


# The native family of a support and its parameters, in Pyro's positional order.
NATIVE_FACTORS = {
    distributions.UNIT_INTERVAL: ("Beta", ("alpha", "beta")),
    distributions.POSITIVE: ("Gamma", ("concentration", "rate")),
    distributions.SIMPLEX: ("Dirichlet", ("concentration",)),
}


def _guide_loc(latent: ir.Latent, shape: Sequence[ir.Dim | Code], local: Locals) -> Statement:
    # Uniform on (-2, 2) in unconstrained space, as Stan initialises: data-independent,
    # and it breaks the symmetry of exchangeable latents such as mixture components.
    initial = em.joined("lambda: ", em.call(em.runtime("uniform_init"), shape_code(shape)))
    return Assign(local(latent, "loc"), pyro_call("param", em.parameter(f"{latent.name}.loc"), initial))


def _guide_param(latent: ir.Latent, role: str, value: float, local: Locals, positive: bool = False,
                 shape: Sequence[ir.Dim | Code] | None = None) -> Statement:
    shape = latent.shape if shape is None else shape
    initial = em.joined("lambda: ", em.call(em.imported("torch", "full"), shape_code(shape), em.number(value)))
    constraint = [em.keyword("constraint", em.imported("constraints", "positive"))] if positive else []
    return Assign(local(latent, role), pyro_call("param", em.parameter(f"{latent.name}.{role}"), initial, *constraint))


def _unconstraining_inverse(support: ir.Support) -> tuple[str, Code | None]:
    """The guide family's name, and the transform from the real line onto the support."""
    match support.kind:
        case distributions.REAL:
            return "Normal", None
        case distributions.POSITIVE:
            return "LogNormal", em.call(em.imported("dist", "transforms.ExpTransform"))
        case distributions.UNIT_INTERVAL:
            return "LogitNormal", em.call(em.imported("dist", "transforms.SigmoidTransform"))
        case distributions.SIMPLEX:
            return "StickBreakingNormal", em.call(em.imported("dist", "transforms.StickBreakingTransform"))
        case distributions.INTERVAL if support.high is None:  # from a lower bound up (Pareto)
            above = em.call(em.imported("constraints", "greater_than"), expression(support.low))
            return "ShiftedLogNormal", em.call(em.imported("torch", "distributions.biject_to"), above)
        case distributions.INTERVAL if support.low is None:  # from a bound down (a truncated real latent)
            below = em.call(em.imported("constraints", "less_than"), expression(support.high))
            return "ReflectedLogNormal", em.call(em.imported("torch", "distributions.biject_to"), below)
        case distributions.INTERVAL:
            interval = em.call(em.imported("constraints", "interval"), expression(support.low),
                               expression(support.high))
            return "IntervalNormal", em.call(em.imported("torch", "distributions.biject_to"), interval)
        case kind if kind in NORMAL_BY_CONSTRAINT:
            return NORMAL_BY_CONSTRAINT[support.kind], em.call(em.imported("torch", "distributions.biject_to"),
                                                               em.imported("constraints", support.kind))
    raise AssertionError(support.kind)


# The guide family of a latent whose support Pyro names as a constraint (`constraints.<kind>`).
NORMAL_BY_CONSTRAINT = {distributions.ORDERED: "OrderedNormal", distributions.POSITIVE_ORDERED: "PositiveOrderedNormal",
                        distributions.CORR_CHOLESKY: "CorrCholeskyNormal"}


def _minus_one(dim: ir.Dim) -> ir.Dim | Code:
    return dim - 1 if isinstance(dim, int) else em.chain(dim_code(dim), "-", em.number(1))


def _below_diagonal(dim: ir.Dim) -> ir.Dim | Code:
    """K (K - 1) / 2, the elements of a K x K matrix below its diagonal."""
    if isinstance(dim, int):
        return dim * (dim - 1) // 2
    size = dim_code(dim)
    size = em.parenthesised(size) if isinstance(size, em.Chain) else size
    return em.chain(em.chain(size, "*", em.parenthesised(_minus_one(dim))), "//", em.number(2))
