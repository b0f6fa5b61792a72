"""Phase 2, check: `syntax.Program` -> `ir.Model`.

Resolves names, turns index variables into plates, infers the shape of every
expression and binds distribution arguments, rejecting every mistake with the
span of the offending part before any tensor exists. Expression typing lives
in `check_expressions`; this module handles statements and scopes.
"""

from __future__ import annotations

import builtins
import keyword
import math
from dataclasses import dataclass

from compiler.errors import PplError, Span, did_you_mean
from compiler.frontend import distributions, ir, shapes, syntax
from compiler.frontend.expressions import Scope, Symbol, depends_on_model, type_expression

# Names the generated module itself uses; a spec name must not shadow them.
GENERATED_NAMES = frozenset({
    "torch", "pyro", "dist", "constraints", "rt", "Vindex", "data", "model", "guide", "transform_data",
    "MAX_PLATE_NESTING",
})
RESERVED = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | GENERATED_NAMES
# The words of the language itself (grammar/ppl.lark); the parser would take them as names.
KEYWORDS = frozenset({"data", "latent", "param", "let", "observe", "int", "real"})


def check_program(program: syntax.Program, source_name: str) -> ir.Model:
    return _ProgramChecker(program).run(source_name)


@dataclass(frozen=True)
class _Declared:
    span: Span


class _ProgramChecker:
    """Walks the statements in order; each declaration extends the scope."""

    def __init__(self, program: syntax.Program):
        self.program = program
        self.symbols: dict[str, Symbol] = {}
        self.data: list[ir.DataDecl] = []
        self.statements: list[ir.Statement] = []
        self.index_arrays: dict[str, ir.Dim] = {}
        self.fixed_indices: list[ir.FixedIndex] = []
        self.observed: dict[str, Span] = {}
        self.declared_later = {s.name.id: s.name.span for s in program.statements}
        self.current = ""

    def run(self, source_name: str) -> ir.Model:
        for statement in self.program.statements:
            # An observe statement scores existing data; it declares nothing.
            self.current = "" if isinstance(statement, syntax.Observe) else statement.name.id
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
        data = tuple(
            ir.DataDecl(d.name, d.base, d.shape, d.lower, d.upper, self.index_arrays.get(d.name), d.span)
            for d in self.data
        )
        nesting = max((len(s.plates) for s in self.statements if hasattr(s, "plates")), default=0)
        return ir.Model(source_name, data, tuple(self.statements), nesting, tuple(self.fixed_indices))

    # Scopes ----------------------------------------------------------------

    def _scope(self, plates: tuple[ir.Plate, ...] = ()) -> Scope:
        return Scope(self.symbols, {p.variable: p for p in plates if p.variable}, self.declared_later,
                     self.current)

    def _type(self, expr: syntax.Expr, scope: Scope) -> ir.Expr:
        typed, uses = type_expression(expr, scope)
        for name, size in uses.index_arrays.items():
            self.index_arrays.setdefault(name, size)
        self.fixed_indices += uses.fixed_indices
        return typed

    def _declare(self, name: syntax.Name, symbol: Symbol) -> None:
        check_identifier(name)
        if name.id in self.symbols:
            first = self.symbols[name.id].span
            raise PplError(
                f"'{name.id}' is already declared on line {first.line}", name.span,
                "each name is declared once; rename one of them",
            )
        self.symbols[name.id] = symbol

    def _data_only(self, expr: syntax.Expr, what: str) -> ir.Expr:
        """A value the data fixes: literals, data and transformed data."""
        typed = self._type(expr, self._scope())
        if depends_on_model(typed):
            raise PplError(f"{what} must depend on data alone", expr.span,
                           "use literals, data and transformed data here")
        return typed

    # Statements ------------------------------------------------------------

    def _data(self, decl: syntax.DataDecl) -> None:
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
        outside = param.initial_outside_bounds({})
        if outside:
            raise PplError(f"the initial value {outside}", decl.initial.span,
                           "start a param strictly inside its bounds")
        self._declare(decl.name, Symbol("param", ir.Type("real", shape), decl.name.span))
        self.statements.append(param)

    def _latent(self, decl: syntax.LatentDecl) -> None:
        plates = self._lhs_plates(decl.subscripts, [decl.distribution], allow_sizes=True)
        scope = self._scope(plates)
        use = check_distribution(decl.distribution, scope, plates, self._type)
        table_row = distributions.TABLE[use.name]
        if table_row.is_discrete and not table_row.is_finite:
            raise PplError(
                f"a {use.name} latent has infinitely many values and cannot be summed out",
                decl.distribution.function_span,
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

    def _let(self, decl: syntax.LetDecl) -> None:
        plates = self._lhs_plates(decl.subscripts, [decl.value], allow_sizes=False)
        value = self._type(decl.value, self._scope(plates))
        missing = {p.variable for p in plates} - value.type.index_variables
        if missing:
            raise PplError(
                f"the right side does not vary over index '{sorted(missing)[0]}'", decl.value.span,
                "use the index on the right, or drop it from the left")
        shape = tuple(p.size for p in plates) + value.type.shape
        _check_axes(shape, decl.span)
        transformed = not depends_on_model(value)
        role = "transformed" if transformed else "let"
        enumerated = plates if any(self.symbols[v.name].enumerated_plates for v in ir.variables(value)) else ()
        self._declare(decl.name, Symbol(role, ir.Type(value.type.base, shape), decl.name.span, enumerated))
        self.statements.append(ir.Let(decl.name.id, value, plates, shape, transformed, decl.span))

    def _observe(self, statement: syntax.Observe) -> None:
        target = self._observed_symbol(statement.name)
        first = self.observed.setdefault(statement.name.id, statement.name.span)
        if first is not statement.name.span:
            raise PplError(f"'{statement.name.id}' is already observed on line {first.line}", statement.name.span,
                           "data are observed once; to model two parts differently, declare them as two arrays")
        table_row = distributions.TABLE.get(statement.distribution.function)
        event_rank = table_row.event_rank if table_row else 0
        if statement.subscripts:
            indexed = syntax.Index(statement.name, statement.subscripts, statement.span)
            plates = self._lhs_plates(statement.subscripts, [indexed, statement.distribution],
                                      allow_sizes=False)
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
            plates = self._plates([(d, None) for d in target.type.shape[:batch_rank]])
            value = ir.Variable(statement.name.id, target.role, target.type, statement.name.span)
        use = check_distribution(statement.distribution, self._scope(plates), plates, self._type)
        if distributions.TABLE[use.name].improper:
            raise PplError(f"{use.name} is improper and cannot be observed",
                           statement.distribution.function_span, "observe data under a proper distribution")
        self.statements.append(ir.Observe(statement.name.id, value, plates, use, statement.span))

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

    # Plates ----------------------------------------------------------------

    def _lhs_plates(self, subscripts, range_sources, allow_sizes: bool) -> tuple[ir.Plate, ...]:
        """One plate per subscript on the left: a size, or an index variable
        whose range is the length of the axis it indexes in a declared array."""
        if len(subscripts) > shapes.MAX_AXES:
            raise PplError(f"more than {shapes.MAX_AXES} subscripts", subscripts[shapes.MAX_AXES].span,
                           f"a statement ranges over at most {shapes.MAX_AXES} axes")
        ranges = index_ranges(range_sources, self.symbols)
        axes: list[tuple[ir.Dim, str | None]] = []
        for subscript in subscripts:
            match subscript:
                case syntax.Name(id=name) if name in ranges and name[:1].islower():
                    check_identifier(subscript)
                    if any(variable == name for _, variable in axes):
                        raise PplError(f"index '{name}' appears twice", subscript.span)
                    axes.append((ranges[name][0], name))
                case syntax.Name(id=name) if name in ranges:
                    raise PplError(f"unknown name '{name}'", subscript.span,
                                   "an index variable is a lower-case name such as i; a size is declared: "
                                   f"data {name}: int")
                case syntax.Name(id=name) if name not in self.symbols and name[:1].islower():
                    raise PplError(
                        f"cannot infer the range of index '{name}'", subscript.span,
                        "index a declared array with it on the right, or give a size: "
                        "[N] with `data N: int`")
                case _ if allow_sizes:
                    axes.append((self._size(subscript), None))
                case _:
                    raise PplError("expected an index variable here", subscript.span,
                                   "write a lower-case name such as i")
        return self._plates(axes)

    @staticmethod
    def _plates(axes: list[tuple[ir.Dim, str | None]]) -> tuple[ir.Plate, ...]:
        plates: list[ir.Plate] = []
        for position, (size, variable) in enumerate(axes):
            name = str(size)
            if any(p.name == name for p in plates):
                name = f"{size}_{variable or position}"
            plates.append(ir.Plate(name, size, position - len(axes), variable))
        return tuple(plates)

    def _dims(self, dims: tuple[syntax.Expr, ...]) -> ir.Shape:
        if len(dims) > 2:
            raise PplError("arrays have at most 2 axes", dims[2].span)
        return tuple(self._size(d) for d in dims)

    def _size(self, expr: syntax.Expr) -> ir.Dim:
        match expr:
            case syntax.Number(value=int(value)):
                if value < 1:
                    raise PplError("a size must be at least 1", expr.span, "an array of no elements has nothing to model")
                return value
            case syntax.Name(id=name) if name in self.symbols:
                symbol = self.symbols[name]
                if symbol.role == "data" and symbol.type == ir.Type("int", ()):
                    return name
                raise PplError(f"'{name}' is not a size", expr.span,
                               "a size is an int data name or an integer literal")
            case syntax.Name(id=name):
                raise PplError(f"unknown size '{name}'", expr.span,
                               did_you_mean(name, list(self.symbols)) or f"declare it: data {name}: int")
        raise PplError("a size must be an int data name or an integer literal", expr.span)

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


def check_identifier(name: syntax.Name) -> None:
    """A declared name or an index variable becomes a Python identifier in the
    generated code, so it must not be a keyword of either language or shadow a name that code uses."""
    if name.id in KEYWORDS:
        raise PplError(f"'{name.id}' is a keyword of the language", name.span, "choose another name")
    if name.id in RESERVED or name.id.startswith("__"):
        raise PplError(f"'{name.id}' is a reserved name", name.span, "rename it; Python names cannot be used")


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
            return operator in ir.ARITHMETIC and _arithmetic_on_data(left) and _arithmetic_on_data(right)
    return False


def _bounded_support(lower: ir.Expr | None, upper: ir.Expr | None) -> ir.Support:
    if lower is None and upper is None:
        return ir.Support(distributions.REAL)
    return ir.Support(distributions.INTERVAL, lower, upper)


def index_ranges(nodes, symbols: dict[str, Symbol]) -> dict[str, tuple[ir.Dim, Span, str]]:
    """Index variable -> (range, where and from which array it was inferred), from every `array[...]`
    in the statement whose array is declared. Disagreeing ranges are an error."""
    ranges: dict[str, tuple[ir.Dim, Span]] = {}
    for node in nodes:
        for index in _indexings(node):
            symbol = symbols.get(index.base.id)
            for axis, subscript in enumerate(index.subscripts):
                if not isinstance(subscript, syntax.Name) or subscript.id in symbols:
                    continue
                if symbol is None or axis >= symbol.type.rank:
                    continue
                size = symbol.type.shape[axis]
                known = ranges.setdefault(subscript.id, (size, subscript.span, index.base.id))
                if known[0] != size:
                    raise PplError(
                        f"index '{subscript.id}' ranges over {size} here but over {known[0]} "
                        f"in '{known[2]}' (column {known[1].column})",
                        subscript.span, "an index variable must range over one size")
    return ranges


def _indexings(node):
    """Every `name[...]` inside a syntax node."""
    match node:
        case syntax.Index(base=base, subscripts=subscripts):
            if isinstance(base, syntax.Name):
                yield node
            else:
                yield from _indexings(base)
            for s in subscripts:
                yield from _indexings(s)
        case syntax.Call(arguments=arguments):
            for a in arguments:
                yield from _indexings(a.value)
        case syntax.Binary(left=left, right=right):
            yield from _indexings(left)
            yield from _indexings(right)
        case syntax.Negate(operand=operand):
            yield from _indexings(operand)


def check_distribution(call: syntax.Call, scope: Scope, plates, type_fn) -> ir.DistributionUse:
    """Bind a distribution's arguments to Pyro's parameters and check their shapes
    against the plates of the statement."""
    row = distributions.TABLE.get(call.function)
    if row is None:
        raise PplError(
            f"unknown distribution '{call.function}'", call.function_span,
            did_you_mean(call.function, list(distributions.TABLE)) or "see docs/language.md for the table")
    bound = _bind_arguments(row, call)
    plate_shape = tuple(p.size for p in plates)
    arguments: list[tuple[str, ir.Expr]] = []
    event_shape: ir.Shape = ()
    for parameter, argument in bound:
        typed = type_fn(argument.value, scope)
        _check_number_argument(row, parameter, typed)
        event_part = _check_argument_shape(parameter, typed, plate_shape, argument.span)
        if row.event_rank and parameter.event_rank >= row.event_rank and not event_shape:
            event_shape = event_part[: row.event_rank]
        arguments.append((parameter.name, typed))
    return ir.DistributionUse(row.name, tuple(arguments), event_shape,
                              _support(row, dict(arguments)), call.span)


def _bind_arguments(row: distributions.Distribution, call: syntax.Call):
    positional = [a for a in call.arguments if a.keyword is None]
    keywords = [a for a in call.arguments if a.keyword is not None]
    if any(a.keyword is None for a in call.arguments[len(positional):]):
        first = next(a for a in call.arguments[len(positional):] if a.keyword is None)
        raise PplError("positional argument after a keyword argument", first.span)
    bound: dict[str, syntax.Argument] = {}
    slots = _positional_slots(row)
    if len(positional) > len(slots):
        raise PplError(
            f"{row.name} takes {len(slots)} positional argument{'s' * (len(slots) != 1)}, "
            f"got {len(positional)}", positional[len(slots)].span, _signature(row))
    for parameter, argument in zip(slots, positional):
        bound[parameter.name] = argument
    for argument in keywords:
        if row.parameter(argument.keyword) is None:
            raise PplError(
                f"{row.name} has no parameter '{argument.keyword}'", argument.span,
                did_you_mean(argument.keyword, [p.name for p in row.parameters]) or _signature(row))
        if argument.keyword in bound:
            raise PplError(f"'{argument.keyword}' is given twice", argument.span, _signature(row))
        bound[argument.keyword] = argument
    _check_groups(row, bound, call)
    missing = [p.name for p in row.parameters if p.required and p.name not in bound]
    if missing:
        raise PplError(f"{row.name} needs '{missing[0]}'", call.span, _signature(row))
    return [(p, bound[p.name]) for p in row.parameters if p.name in bound]


def _positional_slots(row: distributions.Distribution):
    """Pyro's positional order, where a group of alternatives takes one slot (its first)."""
    slots, seen_groups = [], set()
    for parameter in row.parameters:
        if parameter.group in seen_groups:
            continue
        if parameter.group:
            seen_groups.add(parameter.group)
        slots.append(parameter)
    return slots


def _check_groups(row, bound, call) -> None:
    groups: dict[str, list[str]] = {}
    for parameter in row.parameters:
        if parameter.group:
            groups.setdefault(parameter.group, []).append(parameter.name)
    for names in groups.values():
        given = [n for n in names if n in bound]
        if len(given) != 1:
            what = "one of" if not given else "only one of"
            raise PplError(f"{row.name} needs {what} {' or '.join(names)}",
                           bound[given[1]].span if given else call.span, _signature(row))


def _signature(row: distributions.Distribution) -> str:
    parts = [p.name + ("" if p.required or p.group else f"={p.default}") for p in row.parameters]
    return f"{row.name}({', '.join(parts)})"


def _check_argument_shape(parameter, typed: ir.Expr, plate_shape: ir.Shape, span: Span) -> ir.Shape:
    """Split an argument's shape into its batch part, which must fit the plates,
    and its event part, which one draw consumes. Returns the event part."""
    shape = typed.type.shape
    rank = parameter.event_rank
    if len(shape) < rank:
        kind = "a vector" if rank == 1 else "a matrix"
        raise PplError(f"'{parameter.name}' must be {kind}, got {shapes.show(shape)}", span)
    batch, event = shape[: len(shape) - rank], shape[len(shape) - rank :]
    if typed.type.batched and batch:
        raise PplError(
            f"'{parameter.name}' is {shapes.show(batch)} per element of "
            f"{', '.join(sorted(typed.type.index_variables))}; expected one value per element",
            span, "index the array with the statement's index variables")
    if not typed.type.batched and not shapes.broadcasts_to(batch, plate_shape):
        raise PplError(
            f"'{parameter.name}' has shape {shapes.show(batch)} but the statement ranges over "
            f"{shapes.show(plate_shape)}", span,
            "arrays must match the indexed axes; use an index variable such as x[i]")
    return event


def _check_number_argument(row: distributions.Distribution, parameter, typed: ir.Expr) -> None:
    """An argument written as a number must be one the parameter accepts."""
    try:
        value = ir.constant_value(typed, {})
    except ir.NotConstant:
        return
    if not math.isfinite(value):
        raise PplError(f"the {parameter.name} of {row.name} comes to {value}", typed.span,
                       "arithmetic on these numbers overflows or has no value (1/0, 0/0, 10^400)")
    problem = row.rejects(parameter, value)
    if problem:
        raise PplError(problem, typed.span, _signature(row))


def _support(row: distributions.Distribution, arguments: dict[str, ir.Expr]) -> ir.Support:
    if row.support == distributions.INTERVAL:
        low, high = (arguments[name] for name in row.support_bounds)
        for bound in (low, high):
            if depends_on_model(bound):
                raise PplError(f"the bounds of {row.name} must depend on data alone", bound.span,
                               "a guide needs the support before the model runs")
        try:
            empty = ir.constant_value(low, {}) >= ir.constant_value(high, {})
        except ir.NotConstant:
            empty = False
        if empty:
            raise PplError(f"{row.name} needs low < high", high.span, _signature(row))
        return ir.Support(row.support, low, high)
    if row.support == distributions.INTEGER_INTERVAL:
        return ir.Support(row.support, None, arguments.get(row.support_bounds[0]))
    return ir.Support(row.support)
