"""Phase 3, codegen: `ir.Model` -> Python source of `transform_data`, `model`, `guide`.

The source is what runs: `pipeline` compiles it, so `pplc emit` shows exactly
the executed code. It contains only checked identifiers, numeric literals and
calls into torch, pyro and `compiler.backend.runtime`.

Where observations share one distribution (`observe x[i] ~ Bernoulli(f)`: no
argument varies along the plates), the source also has `collapsed_model`, the
same joint with those statements scored from sufficient statistics of the data
(`sufficient_statistics`, computed once): what the fit evaluates, at a cost per
evaluation that does not grow with the data. `model` stays the one users read.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

from compiler.backend import emitter as em
from compiler.backend.emitter import Assign, Code, Function, Line, Return, Statement, With
from compiler.backend.expressions import (
    Layout,
    argument,
    dim_code,
    expression,
    gathered_variables,
    lift,
    may_be_number,
    shape_code,
)
from compiler.errors import Span
from compiler.frontend import distributions, ir
from compiler.frontend.analysis import collapsed, collapsible, observed_array, spec_names, statistics_key

GUIDE_FAMILIES = ("normal", "native", "fullrank", "lowrank")
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


@dataclass(frozen=True)
class GeneratedCode:
    """The generated source and what the emitter recorded while building it."""

    source: str
    guide_families: dict[str, str]  # latent -> the family of its guide factor
    guide_parameters: dict[str, tuple[str, ...]]  # latent -> the pyro.param names of its factor
    transformed_spans: dict[str, Span] = field(default_factory=dict)  # transformed data -> its statement
    functions: tuple[str, ...] = ()  # the functions the source defines, in order
    imports: tuple[str, ...] = ()  # its import lines
    runtime_helpers: frozenset[str] = frozenset()  # the functions of backend.runtime it calls
    data_names: frozenset[str] = frozenset()  # the data and transformed data its functions read
    assigned_lines: dict[int, str] = field(default_factory=dict)  # line (from 1) -> the name it assigns
    joint_site: str | None = None  # fullrank, lowrank: the site drawing every guided latent's coordinates at once


def generate(model: ir.Model, guide_family: str = "normal") -> GeneratedCode:
    layout = Layout.of(model)
    guide, families, parameters = _guide(model, guide_family)
    functions = [_model(model, layout), guide]
    if any(s.transformed_data for s in model.lets):
        functions.insert(0, _transform_data(model, layout))
    if collapsed(model):
        functions += [_sufficient_statistics(model), _model(model, layout, collapsed=True)]
    module = em.Module(_docstring(model, guide_family), (_MAX_PLATE_NESTING(model),), tuple(functions))
    rendered = em.render_module(module)
    needs = module.needs
    transformed = {s.name: s.span for s in model.lets if s.transformed_data}
    joint = JOINT_SITE if guide_family in JOINT_FAMILIES and model.guided_latents else None
    return GeneratedCode(rendered.source, families, parameters, transformed, tuple(f.name for f in functions),
                         tuple(line for line in module.imports() if line), needs.helpers,
                         frozenset(_data_names(model)) & needs.names, rendered.assigned, joint)


GUIDE_DESCRIPTIONS = {
    "normal": "the mean-field q(z; phi)",
    "native": "the mean-field q(z; phi)",
    "fullrank": "q(z; phi), one multivariate normal over every latent's unconstrained coordinates",
    "lowrank": f"q(z; phi), one normal over every latent's unconstrained coordinates, its covariance "
               f"diagonal plus rank min({LOW_RANK}, ceil(coordinates / 2))",
}


def _docstring(model: ir.Model, guide_family: str) -> str:
    return (f"Generated by pplc from {PurePath(model.source_name).name} (guide: {guide_family}).\n\n"
            f"model(data) is the joint p(x, z; theta); guide(data) is {GUIDE_DESCRIPTIONS[guide_family]}.")


def _MAX_PLATE_NESTING(model: ir.Model) -> tuple[str, Assign]:  # noqa: N802 - named after the constant
    return ("The most plates any statement nests; what Pyro's ELBOs and enumeration need to know.",
            Assign("MAX_PLATE_NESTING", em.number(model.max_plate_nesting)))


def _data_names(model: ir.Model) -> list[str]:
    """Names a function may read from its `data` argument, in declaration order."""
    return [d.name for d in model.data] + [s.name for s in model.lets if s.transformed_data]


def _function(model: ir.Model, name: str, docstring: str | None, body: Sequence[Statement]) -> Function:
    """A generated function of `data`: it starts by binding the data names its body reads."""
    free = em.free_names(body)
    bindings = [Assign(n, _data(n)) for n in _data_names(model) if n in free]
    return Function(name, ("data",), docstring, tuple(bindings) + tuple(body))


def _data(key: str) -> Code:
    return em.subscript(em.name("data"), em.string(key))


def _pyro(attribute: str, *arguments: Code) -> Code:
    return em.call(em.imported("pyro", attribute), *arguments)


# Functions -------------------------------------------------------------------


def _transform_data(model: ir.Model, layout: Layout) -> Function:
    transformed = [s for s in model.lets if s.transformed_data]
    body: list[Statement] = []
    for let in transformed:
        body += _positions(let.plates, [let.value])
        value = expression(let.value, layout.within(let.plates))
        # A scalar computed from numbers stays a tensor: the next statement may square it again.
        body.append(Assign(let.name, em.call(em.runtime("real"), value) if may_be_number(let.value) else value))
    entries = [em.joined(em.string(let.name), ": ", em.name(let.name)) for let in transformed]
    body.append(Return(em.Bracketed(None, "{", (em.joined("**", em.name("data")), *entries), "}")))
    return _function(model, "transform_data", "Transformed data: computed once, when the data loads.", body)


def _model(model: ir.Model, layout: Layout, collapsed: bool = False) -> Function:
    plated = [s for s in model.statements if not isinstance(s, (ir.Param, ir.Let))
              and not (collapsed and isinstance(s, ir.Observe) and collapsible(s))]
    plates = _PlateNames(model, plated)
    runs: list[tuple[tuple[ir.Plate, ...], list[Statement]]] = []
    for statement in model.statements:
        match statement:
            case ir.Param():
                runs.append(((), [_param(statement)]))
            case ir.Latent():
                runs.append((statement.plates, _latent(statement, layout.within(statement.plates))))
            case ir.Let(transformed_data=False):
                runs.append(((), _deterministic(statement, model, layout)))
            case ir.Observe() if collapsed and collapsible(statement):
                runs.append(((), [_collapsed_observe(statement, layout.within(statement.plates))]))
            case ir.Observe():
                runs.append((statement.plates, _observe(statement, layout.within(statement.plates))))
    body = plates.declarations() + plates.blocks(runs)
    if not body:
        body = [Line(em.text("pass  # no statements: the joint is empty"))]
    if not collapsed:
        return _function(model, "model", None, body)
    docstring = f"model(data) with {_collapsed_names(model)} scored from sufficient statistics: the same log joint."
    return _function(model, "collapsed_model", docstring, body)


def _param(param: ir.Param) -> Statement:
    constraint = _constraint(param.support)
    initial = em.joined("lambda: ", em.call(em.runtime("initial"), expression(param.initial), shape_code(param.shape)))
    keyword = [em.keyword("constraint", constraint)] if constraint else []
    return Assign(param.name, _pyro("param", em.string(param.name), initial, *keyword))


def _deterministic(let: ir.Let, model: ir.Model, layout: Layout) -> list[Statement]:
    code = expression(let.value, layout.within(let.plates))
    if not let.plates and model.max_plate_nesting:
        code = lift(code, len(let.shape), -model.max_plate_nesting)
    return _positions(let.plates, [let.value]) + [Assign(let.name, _pyro("deterministic", em.string(let.name), code))]


def _latent(latent: ir.Latent, layout: Layout) -> list[Statement]:
    enumerate_ = [em.keyword("infer", em.text('{"enumerate": "parallel"}'))] if latent.enumerated else []
    sample = _pyro("sample", em.string(latent.name), _distribution(latent.distribution, layout), *enumerate_)
    values = [e for _, e in latent.distribution.arguments]
    return _positions(latent.plates, values) + [Assign(latent.name, sample)]


def _observe(observe: ir.Observe, layout: Layout) -> list[Statement]:
    values = [observe.value, *(e for _, e in observe.distribution.arguments)]
    observed = expression(observe.value, layout)
    if not (observe.value.type.shape or observe.value.type.batched) or _integer_tensor(observe, layout):
        # A scalar datum is a Python number, an index array an integer tensor; log_prob wants floats.
        observed = em.call(em.runtime("real"), observed)
    sample = _pyro("sample", em.string(observe.name), _distribution(observe.distribution, layout),
                   em.keyword("obs", observed))
    return _positions(observe.plates, values) + [Line(sample)]


def _integer_tensor(observe: ir.Observe, layout: Layout) -> bool:
    """Whether int observed values may be an integer tensor: int data load as floats, except
    index arrays; int transformed data may be computed from those."""
    observed = next(ir.variables(observe.value))
    return observe.value.type.base == "int" and (
        observed.role == "transformed" or observed.name in (layout.index_ranges or {}))


def _collapsed_names(model: ir.Model) -> str:
    return ", ".join(s.name for s in collapsed(model))


def _sufficient_statistics(model: ir.Model) -> Function:
    entries = [em.joined(em.string(statistics_key(s)), ": ", em.call(
        em.runtime("sufficient_statistics"), em.string(s.distribution.name), _data(observed_array(s))))
        for s in collapsed(model)]
    statistics = em.Bracketed(None, "{", (em.joined("**", em.name("data")), *entries), "}")
    docstring = f"The data with the statistics collapsed_model scores {_collapsed_names(model)} from."
    # Reads the observed arrays through `data[...]` itself: they may still be on disk.
    return Function("sufficient_statistics", ("data",), docstring, (Return(statistics),))


def _collapsed_observe(observe: ir.Observe, layout: Layout) -> Statement:
    use = observe.distribution
    likelihood = em.call(em.runtime("log_likelihood"), em.string(use.name), _distribution(use, layout),
                         _data(statistics_key(observe)))
    return Line(_pyro("factor", em.string(observe.name), likelihood))


def _guide(model: ir.Model, family: str) -> tuple[Function, dict[str, str], dict[str, tuple[str, ...]]]:
    plates = _PlateNames(model, model.guided_latents)
    local = _Locals(spec_names(model))
    runs: list[tuple[tuple[ir.Plate, ...], list[Statement]]] = []
    families: dict[str, str] = {}
    parameters: dict[str, tuple[str, ...]] = {}
    joint = _joint(model.guided_latents, family, local) if family in JOINT_FAMILIES and model.guided_latents else []
    shared = em.union(s.needs for s in joint).parameters
    for latent in model.guided_latents:
        factor = _joint_factor(latent, local) if joint else _guide_factor(latent, family, local)
        families[latent.name] = factor.family
        parameters[latent.name] = shared + em.union(s.needs for s in factor.statements).parameters
        runs.append((latent.plates, factor.statements))
    body = plates.declarations() + joint + plates.blocks(runs)
    if not body:
        body = [Line(em.text("pass  # no continuous latents: nothing to approximate"))]
    return _function(model, "guide", None, body), families, parameters


# The guide's factors -------------------------------------------------------------


@dataclass(frozen=True)
class _Factor:
    family: str
    statements: list[Statement]


class _Locals:
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


def _guide_factor(latent: ir.Latent, family: str, local: _Locals) -> _Factor:
    """One factor of q(z): a rule per support, in the spirit of Pyro's AutoNormal."""
    support = latent.distribution.support
    site = em.string(latent.name)
    if family == "native" and support.kind in NATIVE_FACTORS:
        label, roles = NATIVE_FACTORS[support.kind]
        params = [_guide_param(latent, role, 2.0, local, positive=True) for role in roles]
        native = em.call(em.imported("dist", label), *(em.name(local(latent, role)) for role in roles))
        return _Factor(label, params + [Line(_pyro("sample", site, native))])
    unconstrained = _unconstrained_shape(latent)
    params = [_guide_loc(latent, unconstrained, local),
              _guide_param(latent, "scale", INITIAL_SCALE, local, positive=True, shape=unconstrained)]
    event_rank = len(latent.distribution.event_shape)
    loc_scale = (em.name(local(latent, "loc")), em.name(local(latent, "scale")))
    base: Code = em.call(em.imported("dist", "Normal"), *loc_scale)
    if event_rank:
        base = em.joined(base, f".to_event({event_rank})")
    label, transform = _unconstraining_inverse(support)
    if transform is None:
        return _Factor(label, params + [Line(_pyro("sample", site, base))])
    if support.kind == distributions.POSITIVE and not event_rank:
        return _Factor(label, params + [Line(_pyro("sample", site, em.call(em.imported("dist", "LogNormal"),
                                                                            *loc_scale)))])
    transformed = em.call(em.imported("dist", "TransformedDistribution"), base, transform)
    return _Factor(label, params + [Line(_pyro("sample", site, transformed))])


def _unconstrained_shape(latent: ir.Latent) -> Sequence[ir.Dim | Code]:
    """The shape of a latent's coordinates on the real line (a simplex of K has K - 1)."""
    if latent.distribution.support.kind == distributions.SIMPLEX:
        return [*latent.shape[:-1], _minus_one(latent.shape[-1])]
    return latent.shape


# The joint guides ------------------------------------------------------------------


def _joint(latents: Sequence[ir.Latent], family: str, local: _Locals) -> list[Statement]:
    """The joint guides' one Gaussian over all the latents' unconstrained coordinates, laid
    end to end in the guide's order, drawn at one site (as Pyro's AutoContinuous guides do),
    and each latent's block of it cut out (`_joint_factor` records the latent's value)."""
    coordinates = local.free("coordinates")
    size = em.name(coordinates)
    vector = em.joined("(", size, ",)")
    loc = em.joined("lambda: ", em.call(em.runtime("uniform_init"), vector))
    names = {role: local.free(f"joint_{role}") for role in JOINT_ROLES[family]}
    statements: list[Statement] = [
        Assign(coordinates, _sum([_size(_unconstrained_shape(latent)) for latent in latents])),
        Assign(names["loc"], _pyro("param", em.parameter("joint.loc"), loc))]
    if family == "fullrank":
        eye = em.chain(em.call(em.imported("torch", "eye"), size), "*", em.number(INITIAL_SCALE))
        statements.append(Assign(names["scale_tril"], _pyro(
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
        statements += [Assign(names["cov_factor"], _pyro("param", em.parameter("joint.cov_factor"),
                                                          em.joined("lambda: ", factor))),
                       Assign(names["scale"], _pyro("param", em.parameter("joint.scale"),
                                                    em.joined("lambda: ", scale),
                                                    em.keyword("constraint", em.imported("constraints", "positive"))))]
        scaled = em.chain(em.joined(em.name(names["cov_factor"]), ".tril()"), "*",
                          em.joined(em.name(names["scale"]), ".unsqueeze(-1)"))
        gaussian = em.call(em.imported("dist", "LowRankMultivariateNormal"), em.name(names["loc"]), scaled,
                           em.chain(em.name(names["scale"]), "**", em.number(2)))
    statements.append(Assign(local.free("joint"), _pyro("sample", em.string(JOINT_SITE), gaussian,
                                                    em.keyword("infer", em.text('{"is_auxiliary": True}')))))
    start: list[Code] = []
    for latent in latents:
        arguments = [em.name(local.free("joint")), _sum(start), shape_code(_unconstrained_shape(latent))]
        if event_rank := len(latent.distribution.event_shape):
            arguments.append(em.keyword("event_rank", em.number(event_rank)))
        statements.append(Assign(local(latent, "unconstrained"), em.call(em.runtime("block"), *arguments)))
        start.append(_size(_unconstrained_shape(latent)))
    return statements


def _joint_factor(latent: ir.Latent, local: _Locals) -> _Factor:
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
    return _Factor(label, [Line(_pyro("sample", em.string(latent.name), point))])


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


def _guide_loc(latent: ir.Latent, shape: Sequence[ir.Dim | Code], local: _Locals) -> Statement:
    # Uniform on (-2, 2) in unconstrained space, as Stan initialises: data-independent,
    # and it breaks the symmetry of exchangeable latents such as mixture components.
    initial = em.joined("lambda: ", em.call(em.runtime("uniform_init"), shape_code(shape)))
    return Assign(local(latent, "loc"), _pyro("param", em.parameter(f"{latent.name}.loc"), initial))


def _guide_param(latent: ir.Latent, role: str, value: float, local: _Locals, positive: bool = False,
                 shape: Sequence[ir.Dim | Code] | None = None) -> Statement:
    shape = latent.shape if shape is None else shape
    initial = em.joined("lambda: ", em.call(em.imported("torch", "full"), shape_code(shape), em.number(value)))
    constraint = [em.keyword("constraint", em.imported("constraints", "positive"))] if positive else []
    return Assign(local(latent, role), _pyro("param", em.parameter(f"{latent.name}.{role}"), initial, *constraint))


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
        case distributions.INTERVAL:
            interval = em.call(em.imported("constraints", "interval"), expression(support.low),
                               expression(support.high))
            return "IntervalNormal", em.call(em.imported("torch", "distributions.biject_to"), interval)
    raise AssertionError(support.kind)


def _minus_one(dim: ir.Dim) -> ir.Dim | Code:
    return dim - 1 if isinstance(dim, int) else em.chain(em.name(dim), "-", em.number(1))


# Pieces ------------------------------------------------------------------------


def _distribution(use: ir.DistributionUse, layout: Layout) -> Code:
    row = distributions.TABLE[use.name]
    if row.improper:
        return em.call(em.imported("dist", "ImproperUniform"), em.imported("constraints", row.support),
                       em.text("()"), em.text("()"))
    bound = dict(use.arguments)
    parts: list[Code] = []
    positional = True
    for parameter in row.parameters:
        if parameter.name not in bound:
            positional = False
            continue
        positional = positional and parameter.group is None
        code = argument(bound[parameter.name], layout, parameter.event_rank)
        parts.append(code if positional else em.keyword(parameter.name, code))
    return em.call(em.imported("dist", row.pyro_class), *parts)


def _constraint(support: ir.Support) -> Code | None:
    low = expression(support.low) if support.low is not None else None
    high = expression(support.high) if support.high is not None else None
    if low is None and high is None:
        return None
    if high is None:
        if isinstance(support.low, ir.Literal_) and support.low.value == 0:
            return em.imported("constraints", "positive")
        return em.call(em.imported("constraints", "greater_than"), low)
    if low is None:
        return em.call(em.imported("constraints", "less_than"), high)
    return em.call(em.imported("constraints", "interval"), low, high)


class _PlateNames:
    """One `pyro.plate` object per (name, dim), declared once and re-entered by
    every run of statements that ranges over it, as Pyro requires of a shared plate."""

    def __init__(self, model: ir.Model, statements):
        taken = spec_names(model)
        self.variables: dict[tuple[str, int], tuple[str, ir.Plate]] = {}
        declared: set[str] = set()  # plate names with a variable already
        for statement in statements:
            for plate in statement.plates:
                key = (plate.name, plate.dim)
                if key in self.variables:
                    continue
                label = plate.name if plate.name not in declared else f"{plate.name}_{-plate.dim}"
                declared.add(plate.name)
                variable = f"{label}_plate" if label[0].isalpha() else f"size_{label}_plate"
                while variable in taken:
                    variable += "_"
                taken.add(variable)
                self.variables[key] = (variable, ir.Plate(label, plate.size, plate.dim, plate.variable))

    def declarations(self) -> list[Statement]:
        return [Assign(variable, _pyro("plate", em.string(p.name), dim_code(p.size), em.keyword("dim", em.number(p.dim))))
                for variable, p in self.variables.values()]

    def blocks(self, runs: list[tuple[tuple[ir.Plate, ...], list[Statement]]]) -> list[Statement]:
        """The statements, each run of consecutive ones under the same plates in one `with` block."""
        statements: list[Statement] = []
        for key, group in itertools.groupby(runs, key=lambda run: tuple((p.name, p.dim) for p in run[0])):
            body = [statement for _, run in group for statement in run]
            if not key:
                statements += body
                continue
            managers = tuple(em.name(self.variables[plate][0]) for plate in key)
            statements.append(With(managers, tuple(body)))
        return statements


def _positions(plates: tuple[ir.Plate, ...], expressions: list[ir.Expr]) -> list[Statement]:
    """Bind each index variable that is used as a gather index or a value."""
    used = set()
    for e in expressions:
        used |= gathered_variables(e)
    return [Assign(p.variable, em.call(em.runtime("position"), dim_code(p.size), em.keyword("dim", em.number(p.dim))))
            for p in plates if p.variable in used]
