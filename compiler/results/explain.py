"""Explain the joint: `Program` -> `Explanation` (what each site is) and
`TraceExplanation` (one ELBO term computed for real), each rendered as text or JSON.

Answers, for the user's own model: what the model corresponds to (the
factorisation of log p(x, z; θ)), what `obs=` does (an observed site is scored,
never sampled), what the guide is (one factor per latent), and how log p(x, z)
is computable when only x is observed (z is drawn from the guide, then the
model is replayed with it).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from compiler.errors import Source, Span
from compiler.frontend import analysis, ir
from compiler.frontend.analysis import chain_observations, chain_read
from compiler.frontend.user_functions import InlinedSpan
from compiler.results import engine

if TYPE_CHECKING:
    from compiler.backend.codegen import GeneratedCode
    from compiler.data.values import Data
    from compiler.results.program import CompiledProgram

ROLES = {
    "latent": "sampled (from the guide during inference)",
    "observed": "scored at the data (obs=), never sampled",
    "let": "deterministic, recomputed from the latents",
    "param": "a point estimate θ, learned by maximising the ELBO",
    "enumerated": "summed out: the joint keeps Σ over z's values of this factor times those that use z",
    "factor": "a term added to the log joint as it is (pyro.factor), never sampled",
    "ode": "the state's derivative in time, integrated by solve",
    "chain": "summed out with the observations it feeds: one DiscreteHMM site, Pyro's forward algorithm",
    "emission": "scored in its chain's site, given each state",
}


class Term(BaseModel):
    model_config = ConfigDict(frozen=True)

    site: str
    kind: str  # latent | observed | let | param | enumerated | factor | chain | emission
    formula: str
    role: str
    plates: list[str]
    density: str = ""  # a truncated or censored term: the density it stands for


class Explanation(BaseModel):
    """The joint's factorisation, the guide and the ELBO, in the spec's names."""

    model_config = ConfigDict(frozen=True)

    spec: str
    joint: str
    terms: list[Term]
    guide: list[Term]
    elbo: str

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def text(self) -> str:
        return render_explanation(self)


class SiteRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    site: str
    kind: str
    value: str
    terms: int
    log_prob_sum: float


class TraceExplanation(BaseModel):
    """One draw z ~ q, the model replayed on it, and the resulting ELBO term."""

    model_config = ConfigDict(frozen=True)

    spec: str
    fitted: bool
    model_sites: list[SiteRow]
    guide_sites: list[SiteRow]
    log_joint: float
    log_guide: float
    elbo: float
    notes: list[str] = []

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def text(self) -> str:
        return render_trace(self)


# Building ------------------------------------------------------------------------


def explain(program: CompiledProgram) -> Explanation:
    model = program.ir
    observed = [s.name for s in model.observed]
    latents = [s.name for s in model.guided_latents]
    theta = "; θ" if model.params else ""
    joint = f"log p({', '.join(observed + latents) or '∅'}{theta})"
    statements = [_calls_as_written(s, program.source) for s in model.statements]
    terms = [_term(statement, program.source, model) for statement in statements
             if not (isinstance(statement, ir.Let) and statement.transformed_data)]
    terms += [_ode_term(_calls_as_written(ode, program.source), statements) for ode in model.odes]
    guide = [_guide_term(latent, program.code, program.guide_family) for latent in model.guided_latents]
    z = ", ".join(latents) or "∅"
    x = ", ".join(observed) or "∅"
    elbo = f"ELBO = E_q[ {joint} − log q({z}) ]  ≤  log p({x}{theta})"
    return Explanation(spec=program.source.name, joint=joint, terms=terms, guide=guide, elbo=elbo)


def _term(statement: ir.Statement, source: Source, model: ir.Model) -> Term:
    plates = [_plate_text(p) for p in getattr(statement, "plates", ())]
    density = ""
    match statement:
        case ir.Latent() if statement.chain:
            kind, formula = "chain", _chain_formula(statement, model)
        case ir.Observe() if (chain := chain_read(statement, model)) is not None:
            kind, formula = "emission", f"p({show(statement.value)} | {chain.name}[t]) = {_density(statement)}"
        case ir.Latent(recurrence=ir.Recurrence()):
            kind, formula = "latent", _latent_recurrence(statement, source)
        case ir.Latent(enumerated=True):
            kind, formula = "enumerated", _summed(statement.plates, f"log {_density(statement)}")
        case ir.Latent() | ir.Observe():
            kind = "latent" if isinstance(statement, ir.Latent) else "observed"
            formula = _summed(statement.plates, f"log {_density(statement)}{_restriction(statement.distribution)}")
            density = _restricted_density(statement)
        case ir.Let(recurrence=ir.Recurrence()):
            kind, formula = "let", _let_recurrence(statement, source)
        case ir.Let():
            kind, formula = "let", f"{_lhs(statement.name, statement.plates)} = {show(statement.value)}"
        case ir.Param():
            kind, formula = "param", f"{statement.name} = θ, starting at {show(statement.initial)}"
        case ir.Factor():
            summed = f"sum({show(statement.value)})" if statement.value.type.rank else show(statement.value)
            kind, formula = "factor", _summed(statement.plates, summed)
    return Term(site=statement.name, kind=kind, formula=formula, role=ROLES[kind], plates=plates, density=density)


def _ode_term(ode: ir.Ode, statements: list[ir.Statement]) -> Term:
    """`ode dz(t, z) = [...]`, and the statements that solve it."""
    solvers = [f"{_kind(s)} {s.name}" for s in statements if ode.name in {o.name for o in analysis.solved_odes(s)}]
    role = f"{ROLES['ode']}; solved in {', '.join(solvers)}" if solvers else f"{ROLES['ode']}; never solved"
    formula = f"{ode.name}({ode.time}, {ode.state}) = d{ode.state}/d{ode.time} = {show(ode.value)}"
    return Term(site=ode.name, kind="ode", formula=formula, role=role, plates=[])


# Truncation and censoring: the bounds as written, and the density they stand for ------------------

def _restriction(use: ir.DistributionUse) -> str:
    restriction = use.restriction
    if restriction is None:
        return ""
    word = "T" if restriction.kind == ir.TRUNCATED else "censored"
    lower, upper = ("" if bound is None else show(bound) for bound in (restriction.lower, restriction.upper))
    return f" {word}[{lower}, {upper}]"


def _restricted_density(statement: ir.Latent | ir.Observe) -> str:
    """What `T[lo, hi]` or `censored[lo, hi]` makes of the density p, F being the distribution's CDF."""
    use = statement.distribution
    restriction = use.restriction
    if restriction is None:
        return ""
    lower, upper = (None if bound is None else show(bound) for bound in (restriction.lower, restriction.upper))
    written = f"{use.name}({', '.join(show(e) for _, e in use.arguments)})"
    p = f"log {_density(statement)}"
    value = show(statement.value) if isinstance(statement, ir.Observe) else _lhs(statement.name, statement.plates)
    if restriction.kind == ir.TRUNCATED:
        interval = f"{'(−∞' if lower is None else f'[{lower}'}, {'∞)' if upper is None else f'{upper}]'}"
        mass = (f"F({upper}) − F({lower})" if lower is not None and upper is not None
                else f"1 − F({lower})" if lower is not None else f"F({upper})")
        return f"{written} truncated to {interval}: {p} − log({mass}), F its CDF"
    below = [f"log F({lower}) where {value} = {lower}"] if lower is not None else []
    above = [f"log(1 − F({upper})) where {value} = {upper}"] if upper is not None else []
    beyond = " and ".join([f"below {lower}"] * len(below) + [f"above {upper}"] * len(above))
    return f"{written} censored {beyond}: {', '.join(below + above)}, else {p}; F its CDF"


# Recurrences: the first elements and the step as the spec wrote them ---------------------------

def _written(source: Source, span: Span) -> str:
    """The spec's text at `span` (a statement or part of one: a single line); at a user
    function's body put in at a call, the call."""
    if isinstance(span, InlinedSpan):
        span = span.call
    return source.line(span.line)[span.column - 1:span.end_column - 1]


def _calls_as_written(node, source: Source):
    """`node` (a statement, or an ode) with the body of each user function put in at a call
    shown as the call the spec wrote: a name whose text is the call, for `show` alone."""
    if isinstance(node, tuple):
        return tuple(_calls_as_written(item, source) for item in node)
    if not dataclasses.is_dataclass(node) or isinstance(node, (Span, ir.Type, ir.Plate)):
        return node
    if isinstance(getattr(node, "span", None), InlinedSpan) and isinstance(getattr(node, "type", None), ir.Type):
        return ir.Variable(_written(source, node.span), "let", node.type, node.span)
    return dataclasses.replace(node, **{field.name: _calls_as_written(getattr(node, field.name), source)
                                        for field in dataclasses.fields(node) if field.init})


def _let_recurrence(let: ir.Let, source: Source) -> str:
    """`x[0] = a; x[t] = f(x[t - 1])`: the first elements' values, then the step statement."""
    first = [f"{let.name}[{position}] = {show(value)}" for position, value in enumerate(let.recurrence.initial)]
    return "; ".join([*first, _written(source, let.span).removeprefix("let ")])


def _latent_recurrence(latent: ir.Latent, source: Source) -> str:
    """`log D0(x[0] | ...) + Σ_t log D(x[t] | ... x[t - 1] ...)`: each first element's
    density, then the step's for each later position, its arguments as written."""
    first = [f"log {use.name}({latent.name}[{position}] | {', '.join(show(e) for _, e in use.arguments)})"
             for position, use in enumerate(latent.recurrence.initial)]
    step = _written(source, latent.span)
    target = step.removeprefix("latent").split("~")[0].strip()  # `h[t]` or `h[t in 1:T]`
    variable = target[len(latent.name) + 1:].split(" in ")[0].strip(" ]")
    arguments = ", ".join(_written(source, e.span) for _, e in latent.distribution.arguments)
    use = latent.distribution
    return " + ".join([*first, f"Σ_{variable} log {use.name}({latent.name}[{variable}] | {arguments})"])


def _chain_formula(chain: ir.Latent, model: ir.Model) -> str:
    """log Σ_z p(z[0]) Π_t p(z[t] | z[t - 1]) p(y[t] | z[t]): the chain summed out with its observations."""
    def density(use: ir.DistributionUse, value: str) -> str:
        arguments = ", ".join(show(e) for _, e in use.arguments).replace(chain.recurrence.previous, f"{chain.name}[t - 1]")
        return f"{use.name}({value} | {arguments})"
    observations = " ".join(f"p({show(o.value)} | {chain.name}[t])" for o in chain_observations(model, chain))
    return (f"log Σ_{chain.name} {density(chain.recurrence.initial[0], f'{chain.name}[0]')} "
            f"Π_t {density(chain.distribution, f'{chain.name}[t]')} {observations}")


def _plate_text(plate: ir.Plate) -> str:
    return f"{plate.variable} over {plate.size}" if plate.variable else f"{plate.size} independent terms"


def _density(statement: ir.Latent | ir.Observe) -> str:
    use = statement.distribution
    value = show(statement.value) if isinstance(statement, ir.Observe) else _lhs(statement.name, statement.plates)
    arguments = ", ".join(show(e) for _, e in use.arguments)
    return f"{use.name}({value} | {arguments})" if arguments else f"{use.name}({value})"


def _lhs(name: str, plates: tuple[ir.Plate, ...]) -> str:
    variables = [p.variable for p in plates if p.variable]
    return f"{name}[{', '.join(variables)}]" if variables else name


def _summed(plates: tuple[ir.Plate, ...], body: str) -> str:
    if not plates:
        return body
    return f"Σ_{','.join(p.variable or str(p.size) for p in plates)} {body}"


MEAN_FIELD_ROLE = "q: one independent factor per latent (mean-field)"
JOINT_GAUSSIANS = {"fullrank": "one full-rank Gaussian over every latent",
                   "lowrank": "one low-rank (diagonal plus rank r) Gaussian over every latent"}


def _guide_term(latent: ir.Latent, code: GeneratedCode, guide_family: str) -> Term:
    parameters = ", ".join(code.guide_parameters[latent.name])
    family = code.guide_families[latent.name]
    formula = _summed(latent.plates, f"log {family}({_lhs(latent.name, latent.plates)} | {parameters})")
    plates = [_plate_text(p) for p in latent.plates]
    role = MEAN_FIELD_ROLE if guide_family not in JOINT_GAUSSIANS else (
        f"q: {JOINT_GAUSSIANS[guide_family]} (this latent's block)")
    return Term(site=latent.name, kind="guide", formula=formula, role=role, plates=plates)


# The spec's own syntax, from the IR --------------------------------------------------

_PRECEDENCE = {"+": 0, "-": 0, "*": 1, "/": 1, "@": 1, "^": 3}


def show(e: ir.Expr, parent: int = -3) -> str:
    """The expression in the spec's syntax; `parent` is the binding of the context (-3: a conditional's,
    the loosest; -2: a comparison's; 0 up: the arithmetic of `_PRECEDENCE`)."""
    match e:
        case ir.Literal_(value=value):
            return str(value)
        case ir.Variable(name=name):
            return name
        case ir.Position(plate=plate):
            return plate.variable
        case ir.Subscript(base=base, subscripts=subscripts):
            return f"{show(base, 4)}[{', '.join(show(s) for s in subscripts)}]"
        case ir.Call(function=function, arguments=arguments):
            inner = ", ".join(show(a) for a in arguments) or ", ".join(str(d) for d in e.type.shape)
            return f"{function}({inner})"
        case ir.Negate(operand=operand):
            text = f"-{show(operand, 2)}"
            return f"({text})" if parent > 2 else text
        case ir.Slice(start=start, stop=stop):
            return f"{'' if start is None else show(start)}:{'' if stop is None else show(stop)}"
        case ir.Conditional(condition=condition, then=then, otherwise=otherwise):
            text = f"{show(condition, -2)} ? {show(then, -2)} : {show(otherwise, -3)}"
            return f"({text})" if parent > -3 else text
        case ir.Vector(elements=elements):
            return f"[{', '.join(show(element) for element in elements)}]"
        case ir.Solve(ode=ode, initial=initial, start=start, times=times):
            return f"solve({ode.name}, {show(initial)}, {show(start)}, {show(times)})"
        case ir.Binary(operator=operator, left=left, right=right) if operator in ir.COMPARISONS:
            text = f"{show(left, 0)} {operator} {show(right, 0)}"
            return f"({text})" if parent > -2 else text
        case ir.Binary(operator=operator, left=left, right=right):
            precedence = _PRECEDENCE[operator]
            right_needs = precedence if operator == "^" else precedence + 1
            text = f"{show(left, precedence)} {operator} {show(right, right_needs)}"
            return f"({text})" if parent > precedence else text
    raise AssertionError(e)


# Tracing one ELBO term --------------------------------------------------------------


def trace(program: CompiledProgram, data: Data, guide_state: dict[str, Any] | None = None,
          seed: int = 0) -> TraceExplanation:
    """Draw z once from the guide (its initial values, or the fitted `guide_state`), replay the
    model on it, and report each site's log-density."""
    import pyro
    import torch
    from pyro import poutine

    with engine.guide_scope(guide_state), torch.no_grad():
        pyro.set_rng_seed(seed)
        guide_trace = poutine.trace(program.guide).get_trace(data)
        model_trace = poutine.trace(poutine.replay(program.model, guide_trace)).get_trace(data)
        # float(): a trace without sites (no latents, so an empty guide) sums to a plain 0.0
        log_joint = float(model_trace.log_prob_sum())
        log_guide = float(guide_trace.log_prob_sum())
    kinds = {s.name: _kind(s) for s in program.ir.statements}
    notes = []
    if any(s.enumerated for s in program.ir.latents):
        notes.append("enumerated latents are drawn here from the model; fitting sums them out instead")
    return TraceExplanation(
        spec=program.source.name, fitted=guide_state is not None,
        model_sites=_rows(model_trace, kinds), guide_sites=_rows(guide_trace, {k: "guide" for k in kinds}),
        log_joint=log_joint, log_guide=log_guide, elbo=log_joint - log_guide, notes=notes)


def _kind(statement: ir.Statement) -> str:
    match statement:
        case ir.Latent(enumerated=True):
            return "enumerated"
        case ir.Latent() if statement.chain:
            return "chain"
        case ir.Latent():
            return "latent"
        case ir.Observe():
            return "observed"
        case ir.Let():
            return "let"
        case ir.Factor():
            return "factor"
    return "param"


def _rows(trace, kinds: dict[str, str]) -> list[SiteRow]:
    from pyro.poutine.util import site_is_subsample

    trace.compute_log_prob()
    rows = []
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site_is_subsample(site) or name not in kinds:
            continue
        value = site["value"]
        shown = f"{value.item():.4g}" if value.numel() == 1 else f"shape {list(value.shape)}"
        if kinds[name] == "factor":  # a pyro.factor site's value is an empty placeholder; its log-prob is the term
            shown = "-"
        log_prob = site.get("log_prob")
        deterministic = kinds[name] == "let"  # pyro.deterministic: a masked Delta, scored nowhere
        rows.append(SiteRow(site=name, kind=kinds[name], value=shown,
                            terms=0 if deterministic else log_prob.numel(),
                            log_prob_sum=0.0 if deterministic else log_prob.sum().item()))
    return rows


# Rendering ----------------------------------------------------------------------------


WHERE = ("let", "param", "ode", "emission")  # terms that define a name the sum uses, shown as `where ...`


def render_explanation(explanation: Explanation) -> str:
    lines = [f"{explanation.spec}: the joint, the guide and the ELBO", ""]
    width = max((len(t.formula) for t in explanation.terms + explanation.guide), default=0)
    lead = explanation.joint + " ="
    for index, term in enumerate(t for t in explanation.terms if t.kind not in WHERE):
        prefix = lead if index == 0 else " " * (len(lead) - 1) + "+"
        lines.append(f"{prefix} {term.formula.ljust(width)}   {_comment(term)}")
        if term.density:
            lines.append(f"{' ' * len(lead)}   ({term.density})")
    for term in (t for t in explanation.terms if t.kind in WHERE):
        lines.append(f"{'where'.rjust(len(lead))} {term.formula.ljust(width)}   {_comment(term)}")
    lines.append("")
    q = "log q(" + ", ".join(t.site for t in explanation.guide) + ") ="
    for index, term in enumerate(explanation.guide):
        prefix = q if index == 0 else " " * (len(q) - 1) + "+"
        lines.append(f"{prefix} {term.formula}")
    if explanation.guide and all(term.role == MEAN_FIELD_ROLE for term in explanation.guide):
        lines.append("    (the guide q: one independent factor per latent, its parameters φ learned by maximising the ELBO)")
    elif explanation.guide:
        joint = next(text for text in JOINT_GAUSSIANS.values() if text in explanation.guide[0].role)
        lines.append(f"    (the guide q: {joint}, its parameters φ learned by maximising the ELBO)")
    lines += ["", explanation.elbo]
    return "\n".join(lines)


def _comment(term: Term) -> str:
    over = f", {'; '.join(term.plates)}" if term.plates else ""
    return f"{term.kind} {term.site}: {term.role}{over}"


def render_trace(explanation: TraceExplanation) -> str:
    which = "the fitted guide" if explanation.fitted else "the initial guide"
    lines = [f"{explanation.spec}: one ELBO term, with z drawn from {which}", ""]
    for title, rows in (("model (p)", explanation.model_sites), ("guide (q)", explanation.guide_sites)):
        lines.append(f"{title:<12}{'kind':<12}{'value':>18}{'terms':>8}{'log-prob sum':>16}")
        for row in rows:
            lines.append(f"{row.site:<12}{row.kind:<12}{row.value:>18}{row.terms:>8}{row.log_prob_sum:>16.4f}")
        lines.append("")
    lines += [
        f"log p(x, z) = {explanation.log_joint:.4f}   (every model site: latents at the guide's draw, "
        "observed sites at the data)",
        f"log q(z)    = {explanation.log_guide:.4f}",
        f"ELBO term   = log p(x, z) - log q(z) = {explanation.elbo:.4f}   (the ELBO averages many such terms)",
    ]
    lines += [f"note: {n}" for n in explanation.notes]
    return "\n".join(lines)
