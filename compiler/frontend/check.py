"""Phase 2, check: `syntax.Program` -> `ir.Model`.

Resolves names, turns index variables into plates, infers the shape of every
expression and binds distribution arguments, rejecting every mistake with the
span of the offending part before any tensor exists. This module walks the
statements and keeps the scope; expression typing lives in `expressions.py`,
plates in `plates.py`, distribution calls in `distribution_arguments.py` and the
names a spec may declare in `identifiers.py`.
"""

from __future__ import annotations

import dataclasses

from compiler.errors import PplError, Span, did_you_mean
from compiler.frontend import constants, distributions, ir, recurrences, shapes, syntax
from compiler.frontend.chains import ChainChecks, check_chain_uses
from compiler.frontend.distribution_arguments import check_distribution
from compiler.frontend.expressions import Scope, Symbol, depends_on_model, type_expression
from compiler.frontend.identifiers import check_identifier
from compiler.frontend.plates import axis_size, plates_of_axes, statement_plates
from compiler.frontend.recurrences import RecurrenceChecks
from compiler.frontend.restrictions import RestrictionChecks, restriction_bounds
from compiler.frontend.user_functions import errors_at_call_sites, inline_functions


def check_program(program: syntax.Program, source_name: str) -> ir.Model:
    with errors_at_call_sites():
        return _ProgramChecker(inline_functions(program)).run(source_name)


class _ProgramChecker(RecurrenceChecks, ChainChecks, RestrictionChecks):
    """Walks the statements in order; each declaration extends the scope (recurrences: `RecurrenceChecks`)."""

    def __init__(self, program: syntax.Program):
        self.program = program
        self.symbols: dict[str, Symbol] = {}
        self.data: list[ir.DataDecl] = []
        self.statements: list[ir.Statement] = []
        self.index_arrays: dict[str, ir.Dim] = {}
        self.fixed_indices: list[ir.FixedIndex] = []
        self.observed: dict[str, Span] = {}
        self.factors: dict[str, Span] = {}  # factor sites: named like declarations, but no value to use
        self.odes: dict[str, ir.Ode] = {}  # derivatives: named like declarations, used only by solve
        self.declared_later = {s.name.id: s.name.span for s in program.statements}
        self.current = ""
        # A recurrence's first elements (`let x[0] = ...`) and their values, until its step comes.
        self.initial: list[tuple[syntax.LetDecl | syntax.LatentDecl, ir.Expr | ir.DistributionUse]] = []
        self.steps: dict[str, Span] = {}  # recurrence -> its step statement

    def run(self, source_name: str) -> ir.Model:
        for statement in self.program.statements:
            # An observe statement scores existing data; it declares nothing.
            self.current = "" if isinstance(statement, syntax.Observe) else statement.name.id
            self._expect_step(statement)
            self._refuse_ode_indices(getattr(statement, "subscripts", ()))
            match statement:
                case syntax.DataDecl():
                    self._data(statement)
                case syntax.LatentDecl():
                    self._latent(statement)
                case syntax.ParamDecl():
                    self._param(statement)
                case syntax.LetDecl():
                    self._let(statement)
                case syntax.Observe():
                    self._observe(statement)
                case syntax.Factor():
                    self._factor(statement)
                case syntax.Ode():
                    self._ode(statement)
        self._expect_step(None)
        check_chain_uses(self.statements)
        data = tuple(
            dataclasses.replace(d, index_range=self.index_arrays.get(d.name)) for d in self.data
        )
        nesting = max((len(s.plates) for s in self.statements if hasattr(s, "plates")), default=0)
        return ir.Model(source_name, data, tuple(self.statements), nesting, tuple(self.fixed_indices),
                        tuple(self.odes.values()))

    # Scopes ----------------------------------------------------------------

    def _scope(self, plates: tuple[ir.Plate, ...] = ()) -> Scope:
        return Scope(self.symbols, {p.variable: p for p in plates if p.variable}, self.declared_later,
                     self.current, self.odes)

    def _type(self, expr: syntax.Expr, scope: Scope) -> ir.Expr:
        typed, uses = type_expression(expr, scope)
        for name, size in uses.index_arrays.items():
            self.index_arrays.setdefault(name, size)
        self.fixed_indices += uses.fixed_indices
        return typed

    def _declare(self, name: syntax.Name, symbol: Symbol | None) -> None:
        """Declare a name; a factor's (`symbol` None) names its site, not a value."""
        self._refuse_redeclaration(name)
        if symbol is None:
            self.factors[name.id] = name.span
        else:
            self.symbols[name.id] = symbol

    def _refuse_redeclaration(self, name: syntax.Name) -> None:
        self._refuse_declared(name, "each name is declared once; rename one of them")

    def _refuse_declared(self, name: syntax.Name, hint: str) -> None:
        check_identifier(name)
        first = self.symbols[name.id].span if name.id in self.symbols else self.factors.get(name.id)
        first = first or (self.odes[name.id].span if name.id in self.odes else None)
        if first is not None:
            raise PplError(f"'{name.id}' is already declared on line {first.line}", name.span, hint)

    def _data_only(self, expr: syntax.Expr, what: str) -> ir.Expr:
        """A value the data fixes: literals, data and transformed data."""
        typed = self._type(expr, self._scope())
        if depends_on_model(typed):
            raise PplError(f"{what} must depend on data alone", expr.span,
                           "use literals, data and transformed data here")
        return typed

    # Statements ------------------------------------------------------------

    def _data(self, decl: syntax.DataDecl) -> None:
        if isinstance(decl.type, syntax.IndexType):
            self._index_data(decl, decl.type)
            return
        shape = self._dims(decl.type.dims)
        lower, upper = self._bounds(decl.type.bounds)
        for bound in (lower, upper):
            if bound is not None and not _arithmetic_on_data(bound):
                raise PplError("a data bound must be arithmetic on numbers and data above it", bound.span,
                               "data are checked before transformed data exist; write e.g. lower=0 or upper=K - 1")
        self._declare(decl.name, Symbol("data", ir.Type(decl.type.base, shape), decl.name.span))
        self.data.append(
            ir.DataDecl(decl.name.id, decl.type.base, shape, lower, upper, None, decl.span)
        )

    def _index_data(self, decl: syntax.DataDecl, type_: syntax.IndexType) -> None:
        """`data county: index[J][N]`: int codes 0..J-1, which the data may give as labels (the labels of J)."""
        levels = axis_size(type_.levels, self.symbols)
        if not isinstance(levels, str) or ir.size_terms(levels)[1]:
            raise PplError("the number of levels of an index is an int data name", type_.levels.span,
                           "declare it above, as in data J: int; the data may leave it out, to be counted from the labels")
        if len(type_.dims) != 1:
            raise PplError(f"an index has one axis, its rows; this one has {len(type_.dims)}", type_.span,
                           f"declare one code per row, as in data {decl.name.id}: index[{levels}][N]")
        shape = self._dims(type_.dims)
        self._declare(decl.name, Symbol("data", ir.Type("int", shape), decl.name.span))
        self.data.append(ir.DataDecl(decl.name.id, "int", shape, None, None, None, decl.span, levels))

    def _param(self, decl: syntax.ParamDecl) -> None:
        if decl.type.base != "real":
            raise PplError("a param must be real", decl.type.span, "point parameters are optimised continuously")
        shape = self._dims(decl.type.dims)
        lower, upper = self._bounds(decl.type.bounds)
        initial = self._data_only(decl.initial, "an initial value")
        if not shapes.broadcasts_to(initial.type.shape, shape):
            raise PplError(
                f"initial value of shape {shapes.show(initial.type.shape)} does not fit "
                f"{shapes.show(shape)}", decl.initial.span)
        param = ir.Param(decl.name.id, shape, _bounded_support(lower, upper), initial, decl.span)
        outside = constants.initial_outside_bounds(param, {})
        if outside:
            raise PplError(f"the initial value {outside}", decl.initial.span,
                           "start a param strictly inside its bounds")
        self._declare(decl.name, Symbol("param", ir.Type("real", shape), decl.name.span))
        self.statements.append(param)

    def _latent(self, decl: syntax.LatentDecl) -> None:
        vector = decl.vector_type
        if vector is not None and distributions.VECTOR_TYPES[vector.constraint].elements is not None:
            self._constrained_vector(decl)
            return
        distribution = decl.distribution or self._uniform_distribution(decl)
        self._refuse_second_step(decl.name, decl.subscripts)
        position = recurrences.initial_position(decl.subscripts)
        recurrent = (position is not None and (position == 0 or self.initial)) or self.initial \
            or recurrences.is_step(decl.name, decl.subscripts, distribution)
        if recurrent and decl.distribution is None:
            raise PplError(f"'{decl.name.id}' has no distribution, which a recurrence needs", decl.name.span,
                           f"write latent {decl.name.id}[0] ~ D(...), then each later element's distribution")
        if recurrent and decl.restriction is not None:
            raise PplError("a latent recurrence cannot be truncated or censored", decl.restriction.span,
                           "truncate a latent that is not defined from its own earlier elements")
        # `latent x[2] ~ ...` is two draws; `latent x[0] ~ ...` starts a recurrence, which `x[1]`, ... continue.
        if position is not None and (position == 0 or self.initial):
            use = check_distribution(distribution, self._scope(), (), self._type)
            self._recurrent_distribution(use, distribution)
            self._initial_element(decl, position, use)
            return
        if self.initial or recurrences.is_step(decl.name, decl.subscripts, distribution):
            self._latent_recurrence(decl)
            return
        plates = statement_plates(decl.subscripts, [distribution, *restriction_bounds(decl.restriction)],
                                  self.symbols, allow_sizes=True)
        scope = self._scope(plates)
        use = check_distribution(distribution, scope, plates, self._type)
        if decl.restriction is not None:
            use = self._restricted(use, decl.restriction, scope, plates, latent=True)
        table_row = distributions.TABLE[use.name]
        if vector is not None:
            self._check_vector_type(vector, use, distribution)
        if table_row.is_discrete and not table_row.is_finite:
            raise PplError(
                f"a {use.name} latent has infinitely many values and cannot be summed out",
                distribution.function_span,
                "discrete latents need a finite support (Bernoulli, Binomial, Categorical)",
            )
        count = use.support.high if table_row.support == distributions.INTEGER_INTERVAL else None
        if count is not None and (count.type.batched or count.type.shape or depends_on_model(count)):
            raise PplError(f"a {use.name} latent is summed out over 0..total_count, so its total_count must be one "
                           "number, from data alone", count.span, "use a number or an int data scalar")
        shape = tuple(p.size for p in plates) + use.event_shape
        _check_axes(shape, decl.span)
        base = "int" if table_row.is_discrete else "real"
        enumerated = plates if table_row.is_discrete else ()
        self._declare(decl.name, Symbol("latent", ir.Type(base, shape), decl.name.span, enumerated))
        self.statements.append(
            ir.Latent(decl.name.id, plates, use, shape, table_row.is_discrete, decl.span)
        )

    def _check_vector_type(self, vector: syntax.VectorType, use: ir.DistributionUse, call: syntax.Call) -> None:
        """`latent theta: simplex[K] ~ Dirichlet(a)`: the type names the support of the distribution's
        draw, and its size."""
        declared = distributions.VECTOR_TYPES[vector.constraint]
        size = axis_size(vector.size, self.symbols)
        written = declared.written.format(size=size)
        if use.support.kind != declared.kind:
            fitting = [row.name for row in distributions.TABLE.values() if row.support == declared.kind]
            uniform = ", or leave `~ ...` out for the uniform one" if declared.uniform else ""
            raise PplError(f"a {vector.constraint} is drawn from {' or '.join(fitting)}, not {use.name}",
                           call.function_span, f"write ~ {written}{uniform}")
        if use.event_shape != (size,) * declared.event_rank:
            raise PplError(f"{use.name}(...) draws {shapes.show(use.event_shape)}, but the type says "
                           f"{vector.constraint}[{size}]", call.span, f"draw one of the type's size: {written}")

    def _uniform_distribution(self, decl: syntax.LatentDecl) -> syntax.Call:
        """The distribution of a latent declared without `~`: its type's uniform one
        (`simplex[K]`: Dirichlet(ones(K)), as Stan's `simplex[K] theta;` with no prior)."""
        vector = decl.vector_type
        if vector is None:
            raise PplError(f"'{decl.name.id}' has no distribution", decl.name.span,
                           f"write latent {decl.name.id} ~ Normal(0, 1); only a simplex[K] has a default (uniform) one")
        declared = distributions.VECTOR_TYPES[vector.constraint]
        if declared.uniform is None:
            written = declared.written.format(size=axis_size(vector.size, self.symbols))
            raise PplError(f"'{decl.name.id}' has no distribution, and {vector.constraint}[...] has no default one",
                           vector.span, f"write ~ {written}")
        ones = syntax.Call("ones", (syntax.Argument(None, vector.size, vector.size.span),), vector.span, vector.span)
        return syntax.Call(declared.uniform, (syntax.Argument(None, ones, vector.span),), vector.span, vector.span)

    def _constrained_vector(self, decl: syntax.LatentDecl) -> None:
        """`latent mu: ordered[K] ~ D(...)`: K draws of D, restricted to the constraint (the
        density as Stan's constrained parameters have it, unnormalised there)."""
        vector = decl.vector_type
        if decl.restriction is not None:
            raise PplError(f"{decl.restriction.kind}[...] does not apply to {vector.constraint} vectors",
                           decl.restriction.span, "truncation and censoring restrict single values; "
                           "positive_ordered keeps a vector above 0")
        if decl.subscripts:
            raise PplError(f"'{decl.name.id}' has both subscripts and a vector type", decl.subscripts[0].span,
                           f"write latent {decl.name.id}: {vector.constraint}[K] ~ ...; arrays of "
                           f"{vector.constraint} vectors are not supported yet")
        declared = distributions.VECTOR_TYPES[vector.constraint]
        where, example = (("the real line", "Normal(0, 5)") if declared.elements == distributions.REAL
                          else ("the positive reals", "Exponential(1) or Gamma(2, 1)"))
        if decl.distribution is None:
            raise PplError(f"the elements of {vector.constraint}[...] need a distribution on {where}", vector.span,
                           f"e.g. latent {decl.name.id}: {vector.constraint}[...] ~ {example.split(' or ')[0]}")
        size = axis_size(vector.size, self.symbols)
        use = check_distribution(decl.distribution, self._scope(), (), self._type)
        row = distributions.TABLE[use.name]
        if row.support != declared.elements or use.event_shape:
            raise PplError(f"the elements of {vector.constraint}[...] need a distribution on {where}, not {use.name}",
                           decl.distribution.function_span, f"e.g. {example}")
        use = dataclasses.replace(use, event_shape=(size,), support=ir.Support(declared.kind))
        self._declare(decl.name, Symbol("latent", ir.Type("real", (size,)), decl.name.span, ()))
        self.statements.append(ir.Latent(decl.name.id, (), use, (size,), False, decl.span, declared.kind))

    def _let(self, decl: syntax.LetDecl) -> None:
        self._refuse_second_step(decl.name, decl.subscripts)
        position = recurrences.initial_position(decl.subscripts)
        if position is not None:
            self._initial_element(decl, position, self._initial_value(decl, position))
            return
        if self.initial or recurrences.is_step(decl.name, decl.subscripts, decl.value):
            self._recurrence(decl)
            return
        plates = statement_plates(decl.subscripts, [decl.value], self.symbols, allow_sizes=False)
        value = self._type(decl.value, self._scope(plates))
        _refuse_missing_indices(plates, value, decl.value.span)
        shape = tuple(p.size for p in plates) + value.type.shape
        _check_axes(shape, decl.span)
        transformed = not depends_on_model(value)
        role = "transformed" if transformed else "let"
        enumerated = plates if any(self.symbols[v.name].enumerated_plates for v in ir.variables(value)) else ()
        self._declare(decl.name, Symbol(role, ir.Type(value.type.base, shape), decl.name.span, enumerated))
        self.statements.append(ir.Let(decl.name.id, value, plates, shape, transformed, decl.span))

    def _observe(self, statement: syntax.Observe) -> None:
        target = self._observed_symbol(statement.name)
        self._refuse_chain_at_another_time(statement)
        first = self.observed.setdefault(statement.name.id, statement.name.span)
        if first is not statement.name.span:
            raise PplError(f"'{statement.name.id}' is already observed on line {first.line}", statement.name.span,
                           "data are observed once; to model two parts differently, declare them as two arrays")
        table_row = distributions.TABLE.get(statement.distribution.function)
        event_rank = table_row.event_rank if table_row else 0
        if statement.subscripts:
            indexed = syntax.Index(statement.name, statement.subscripts, statement.span)
            plates = statement_plates(statement.subscripts,
                                      [indexed, statement.distribution, *restriction_bounds(statement.restriction)],
                                      self.symbols, allow_sizes=False)
            value = self._type(indexed, self._scope(plates))
            if value.type.rank != event_rank:
                raise PplError(
                    f"'{statement.name.id}' has axes left unindexed ({shapes.show(value.type.shape)})",
                    statement.name.span,
                    "index every axis, or observe the whole array without indices")
        else:
            batch_rank = target.type.rank - event_rank
            if batch_rank < 0:
                raise PplError(
                    f"'{statement.name.id}' is {shapes.show(target.type.shape)} but a "
                    f"{statement.distribution.function} draw has {event_rank} axes",
                    statement.name.span)
            plates = plates_of_axes([(d, None) for d in target.type.shape[:batch_rank]])
            value = ir.Variable(statement.name.id, target.role, target.type, statement.name.span)
        use = check_distribution(statement.distribution, self._scope(plates), plates, self._type)
        if statement.restriction is not None:
            use = self._restricted(use, statement.restriction, self._scope(plates), plates, latent=False)
        if distributions.TABLE[use.name].improper:
            raise PplError(f"{use.name} is improper and cannot be observed",
                           statement.distribution.function_span, "observe data under a proper distribution")
        self.statements.append(ir.Observe(statement.name.id, value, plates, use, statement.span))

    def _factor(self, statement: syntax.Factor) -> None:
        """`factor f = e` adds e (summed) to log p(x, z); `factor f[i] = e` one term per element."""
        plates = statement_plates(statement.subscripts, [statement.value], self.symbols, allow_sizes=False)
        value = self._type(statement.value, self._scope(plates))
        _refuse_missing_indices(plates, value, statement.value.span)
        if value.type.base != "real":
            raise PplError("a factor adds a real log-density, but this value is an int", statement.value.span,
                           "a comparison gives 0 or 1: choose the log-density with it, e.g. x > 0 ? log(p) : log1p(-p)")
        if plates and value.type.shape:
            raise PplError(
                f"'{statement.name.id}[...]' adds one term per element, but this value is "
                f"{shapes.show(value.type.shape)} per element", statement.value.span,
                "index every axis, or sum it: sum(...)")
        self._declare(statement.name, None)
        self.statements.append(
            ir.Factor(statement.name.id, value, plates, tuple(p.size for p in plates), statement.span))

    def _ode(self, statement: syntax.Ode) -> None:
        """`ode dz(t, z) = [...]`: the derivative as a vector with one element per state; `t` and
        `z` are names of its own (a real and a real vector), so they must not hide declared ones."""
        if not isinstance(statement.value, syntax.Vector):
            raise PplError("the derivative is a vector with one element per state", statement.value.span,
                           f"write it as [d0, d1, ...]: element i is the derivative of {statement.state.id}[i]")
        local = "the time and the state are names of the ode statement alone; choose names not declared above"
        for name in (statement.time, statement.state):
            self._refuse_declared(name, local)
        if statement.time.id == statement.state.id:
            raise PplError(f"'{statement.time.id}' names both the time and the state", statement.state.span,
                           "write e.g. ode dz(t, z) = [...]")
        size = len(statement.value.elements)
        symbols = {**self.symbols,
                   statement.time.id: Symbol("let", ir.Type("real", ()), statement.time.span),
                   statement.state.id: Symbol("let", ir.Type("real", (size,)), statement.state.span)}
        value = self._type(statement.value, Scope(symbols, {}, self.declared_later, self.current))
        self._refuse_declared(statement.name, "each name is declared once; rename one of them")
        self.odes[statement.name.id] = ir.Ode(statement.name.id, statement.time.id, statement.state.id, size, value,
                                              statement.span)

    def _refuse_ode_indices(self, subscripts: tuple[syntax.Expr, ...]) -> None:
        """An index variable becomes a local of the generated model, where an ODE's name is its function."""
        for subscript in subscripts:
            if isinstance(subscript, syntax.Name) and subscript.id in self.odes:
                line = self.odes[subscript.id].span.line
                raise PplError(f"'{subscript.id}' names the ode on line {line}", subscript.span,
                               "give the index variable another name")

    def _observed_symbol(self, name: syntax.Name) -> Symbol:
        symbol = self.symbols.get(name.id)
        if symbol is None:
            raise PplError(f"unknown name '{name.id}'", name.span,
                           did_you_mean(name.id, list(self.symbols)) or f"declare it: data {name.id}: real")
        if symbol.role not in ("data", "transformed"):
            raise PplError(
                f"only data can be observed, and '{name.id}' is a {symbol.role}", name.span,
                "declare the observed values with `data`")
        return symbol

    # Types of declarations -------------------------------------------------

    def _dims(self, dims: tuple[syntax.Expr, ...]) -> ir.Shape:
        if len(dims) > 2:
            raise PplError("arrays have at most 2 axes", dims[2].span)
        return tuple(axis_size(d, self.symbols) for d in dims)

    def _bounds(self, bounds: tuple[syntax.Bound, ...]) -> tuple[ir.Expr | None, ir.Expr | None]:
        found: dict[str, ir.Expr] = {}
        for bound in bounds:
            if bound.kind not in ("lower", "upper"):
                raise PplError(f"unknown bound '{bound.kind}'", bound.span,
                               did_you_mean(bound.kind, ["lower", "upper"]) or "use lower= or upper=")
            if bound.kind in found:
                raise PplError(f"'{bound.kind}' is given twice", bound.span)
            value = self._data_only(bound.value, "a bound")
            if value.type.shape:
                raise PplError("a bound must be a scalar", bound.value.span)
            found[bound.kind] = value
        return found.get("lower"), found.get("upper")


def _refuse_missing_indices(plates: tuple[ir.Plate, ...], value: ir.Expr, span: Span) -> None:
    missing = {p.variable for p in plates} - value.type.index_variables
    if missing:
        raise PplError(f"the right side does not vary over index '{sorted(missing)[0]}'", span,
                       "use the index on the right, or drop it from the left")


def _check_axes(shape: ir.Shape, span: Span) -> None:
    if len(shape) > shapes.MAX_AXES:
        raise PplError(f"this statement declares {len(shape)} axes, more than {shapes.MAX_AXES}", span,
                       "use fewer subscripts, or a distribution with a smaller event")


def _arithmetic_on_data(expr: ir.Expr) -> bool:
    match expr:
        case ir.Literal_():
            return True
        case ir.Variable(role=role, type=type_):
            return role == "data" and not type_.shape
        case ir.Negate(operand=operand):
            return _arithmetic_on_data(operand)
        case ir.Binary(operator=operator, left=left, right=right):
            return operator in constants.ARITHMETIC and _arithmetic_on_data(left) and _arithmetic_on_data(right)
    return False


def _bounded_support(lower: ir.Expr | None, upper: ir.Expr | None) -> ir.Support:
    if lower is None and upper is None:
        return ir.Support(distributions.REAL)
    return ir.Support(distributions.INTERVAL, lower, upper)
