"""Frontend analyses of the checked IR that both codegen and inference read.

Questions about a model that more than one later phase asks (which observations
are scored from sufficient statistics, which variables a statement reads, which
names the spec binds) are answered once here, below the backend and inference,
so that neither imports the other for them. Plain functions of `ir` values:
no torch, no state.
"""

from __future__ import annotations

from collections.abc import Iterator

from compiler.frontend import distributions, ir


def collapsible(observe: ir.Observe) -> bool:
    """Whether an observe statement's elements share one distribution whose
    log-likelihood the table can compute from sufficient statistics: a whole data
    array observed under plates, every argument one scalar for all its elements."""
    row = distributions.TABLE[observe.distribution.name]
    return (row.sufficient is not None and observe.distribution.restriction is None and bool(observe.plates)
            and observed_array(observe) is not None
            and all(not e.type.batched and not e.type.shape for _, e in observe.distribution.arguments))


def collapsed(model: ir.Model) -> list[ir.Observe]:
    """The observe statements scored from sufficient statistics, in spec order."""
    return [s for s in model.observed if collapsible(s)]


def observed_array(observe: ir.Observe) -> str | None:
    """The data name an observe statement scores whole (`x` or aligned `x[i]`), if it does."""
    return data_array(observe.value)


def data_array(expr: ir.Expr) -> str | None:
    """The data name `expr` is, whole or indexed by exactly its statement's index variables (`x[i]`)."""
    value = expr.base if isinstance(expr, ir.Subscript) and expr.aligned else expr
    if isinstance(value, ir.Variable) and value.role in ("data", "transformed"):
        return value.name
    return None


def statistics_key(observe: ir.Observe) -> str:
    """Where the generated `sufficient_statistics` leaves an observe statement's statistics in the data."""
    return f"{observe.name}.statistics"


def statement_expressions(statement: ir.Statement) -> list[ir.Expr]:
    """A statement's expressions: its distribution's arguments, observed value, value or initial value
    (a recurrence's: its first elements and its step)."""
    match statement:
        case ir.Latent(recurrence=ir.Recurrence(initial=initial)):
            expressions = [e for use in (*initial, statement.distribution) for _, e in use.arguments]
        case ir.Latent() | ir.Observe():
            expressions = list(statement.distribution.expressions)
            if isinstance(statement, ir.Observe):
                expressions.append(statement.value)
        case ir.Let(recurrence=ir.Recurrence(initial=initial)):
            expressions = [*initial, statement.value]
        case ir.Let() | ir.Factor():
            expressions = [statement.value]
        case ir.Param():
            expressions = [statement.initial]
    return expressions


def statement_variables(statement: ir.Statement) -> Iterator[ir.Variable]:
    """Every variable a statement reads."""
    # A recurrence's step reads its previous elements through a variable of its own, not a statement's.
    recurrence = getattr(statement, "recurrence", None)
    previous = recurrence.previous if recurrence else None
    for expression in statement_expressions(statement):
        yield from (v for v in ir.variables(expression) if v.name != previous)


def chain_read(observe: ir.Observe, model: ir.Model) -> ir.Latent | None:
    """The chain of discrete states an observe statement reads (`mu[z[t]]`), if any: it is scored
    with the chain, not on its own (`chains` checks that it reads at most one)."""
    chains = model.chains
    if not chains:
        return None
    return next((chains[v.name] for v in statement_variables(observe) if v.name in chains), None)


def chain_observations(model: ir.Model, chain: ir.Latent) -> list[ir.Observe]:
    """The observe statements `chain` feeds, in spec order."""
    return [s for s in model.observed if (read := chain_read(s, model)) is not None and read.name == chain.name]


def model_solves(model: ir.Model) -> list[ir.Solve]:
    """Every `solve` of the model, in order."""
    return [s for statement in model.statements for e in statement_expressions(statement) for s in solves(e)]


def solved_odes(statement: ir.Statement) -> list[ir.Ode]:
    """The ODEs a statement solves, in order, each once."""
    odes = {s.ode.name: s.ode for e in statement_expressions(statement) for s in solves(e)}
    return list(odes.values())


def solves(expr: ir.Expr) -> Iterator[ir.Solve]:
    """Every `solve` in an expression, in order."""
    match expr:
        case ir.Solve(initial=initial, start=start, times=times):
            for part in (initial, start, times):
                yield from solves(part)
            yield expr
        case ir.Subscript(base=base, subscripts=subscripts):
            for part in (base, *subscripts):
                yield from solves(part)
        case ir.Slice(start=start, stop=stop):
            for end in (start, stop):
                if end is not None:
                    yield from solves(end)
        case ir.Conditional(condition=condition, then=then, otherwise=otherwise):
            for part in (condition, then, otherwise):
                yield from solves(part)
        case ir.Call(arguments=parts) | ir.Vector(elements=parts):
            for part in parts:
                yield from solves(part)
        case ir.Binary(left=left, right=right):
            yield from solves(left)
            yield from solves(right)
        case ir.Negate(operand=operand):
            yield from solves(operand)


def summarised_only(model: ir.Model) -> frozenset[str]:
    """Observed arrays that only statements scored from sufficient statistics read: a
    fit needs their statistics, not their rows, so they may stay on disk."""
    summarised = collapsed(model)
    read = {v.name for s in model.statements if s not in summarised for v in statement_variables(s)}
    return frozenset(o.name for o in summarised if o.name not in read)


def spec_names(model: ir.Model) -> set[str]:
    """Every name the spec binds in generated code: declarations and index variables."""
    statements = model.statements
    variables = {p.variable for s in statements if hasattr(s, "plates") for p in s.plates if p.variable}
    return {d.name for d in model.data} | {s.name for s in statements} | variables | {o.name for o in model.odes}
