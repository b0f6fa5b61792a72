"""Phase 2, check (expressions): `syntax.Expr` -> typed `ir.Expr`.

Infers each expression's element type, per-element shape and the index
variables it varies over; a mismatch is an error at the offending part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from compiler.errors import PplError, Span, did_you_mean
from compiler.frontend import constants, distributions, functions, ir, shapes, syntax


@dataclass(frozen=True)
class Symbol:
    role: ir.Role
    type: ir.Type
    span: Span
    # The plates of an enumerated latent with axes (or of a let computed from one element
    # by element): it holds one value per element only when indexed by its own plates.
    enumerated_plates: tuple[ir.Plate, ...] = ()


@dataclass(frozen=True)
class Scope:
    symbols: dict[str, Symbol]
    plates: dict[str, ir.Plate]  # index variable -> its plate in this statement
    declared_later: dict[str, Span]
    defining: str  # the name the current statement declares
    odes: Mapping[str, ir.Ode] = field(default_factory=dict)  # the ode statements above, for `solve`

    @property
    def plate_order(self) -> tuple[str, ...]:
        return tuple(sorted(self.plates, key=lambda v: self.plates[v].dim))


@dataclass
class IndexUses:
    """What an expression's subscripts ask of the data, to be checked when it loads."""

    index_arrays: dict[str, ir.Dim] = field(default_factory=dict)  # int array -> the axis length its values index
    fixed_indices: list[ir.FixedIndex] = field(default_factory=list)  # `y[N - 1]`-like positions


def type_expression(expr: syntax.Expr, scope: Scope) -> tuple[ir.Expr, IndexUses]:
    """The typed expression, and what its subscripts ask of the data."""
    typer = _Typer(scope)
    return typer.type(expr), typer.uses


def _enumerated_use(name: str, symbol: Symbol, span: Span) -> PplError:
    sizes = shapes.show(tuple(p.size for p in symbol.enumerated_plates))
    return PplError(
        f"'{name}' is summed out element by element over {sizes}: use it as {name}[...] with the index "
        "variables of a statement over exactly those axes", span,
        "summing out treats its elements as independent; a whole array, a gather or a fixed position would mix them")


def _refuse_mixed_slice(subscripts: tuple[ir.Expr, ...], expr: syntax.Index) -> None:
    """A slice keeps its axis in place; beside it, other subscripts are single fixed positions."""
    for subscript in subscripts:
        if not isinstance(subscript, ir.Slice) and (subscript.type.batched or subscript.type.shape
                                                     or depends_on_model(subscript)):
            raise PplError("beside a slice, every other subscript is a slice or one fixed position", subscript.span,
                           "take the slice in a `let` first, then index that")


def depends_on_model(expr: ir.Expr) -> bool:
    """True when the value changes with latents or params (not computable from data)."""
    return any(v.role in ("latent", "param", "let") for v in ir.variables(expr))


class _Typer:
    def __init__(self, scope: Scope):
        self.scope = scope
        self.uses = IndexUses()

    def type(self, expr: syntax.Expr) -> ir.Expr:
        typed = self._typed(expr)
        if typed.type.rank > shapes.MAX_AXES:
            raise PplError(f"this value has {typed.type.rank} axes, more than {shapes.MAX_AXES}", expr.span,
                           "gathering with an array index adds its axes; index with single positions")
        return typed

    def _typed(self, expr: syntax.Expr) -> ir.Expr:
        match expr:
            case syntax.Number(value=value):
                base = "int" if isinstance(value, int) else "real"
                return ir.Literal_(value, ir.Type(base, ()), expr.span)
            case syntax.Name():
                return self._name(expr)
            case syntax.Index():
                return self._index(expr)
            case syntax.Call():
                return self._call(expr)
            case syntax.Binary():
                return self._binary(expr)
            case syntax.Negate(operand=operand):
                typed = self.type(operand)
                return ir.Negate(typed, typed.type, expr.span)
            case syntax.Conditional():
                return self._conditional(expr)
            case syntax.Vector():
                return self._vector(expr)
            case syntax.Slice():
                raise PplError("a slice a:b goes inside brackets", expr.span, "write y[a:b]")
        raise AssertionError(f"unhandled syntax node {expr!r}")

    def _name(self, expr: syntax.Name, indexed: bool = False) -> ir.Expr:
        plate = self.scope.plates.get(expr.id)
        if plate is not None:
            return ir.Position(plate, ir.Type("int", (), frozenset({expr.id})), expr.span)
        symbol = self.scope.symbols.get(expr.id)
        if symbol is not None and symbol.enumerated_plates and not indexed:
            raise _enumerated_use(expr.id, symbol, expr.span)
        if symbol is not None:
            return ir.Variable(expr.id, symbol.role, symbol.type, expr.span)
        if expr.id == self.scope.defining:
            raise PplError(f"'{expr.id}' is defined in terms of itself", expr.span,
                           "a statement can only use names declared above it, so cycles cannot be written")
        later = self.scope.declared_later.get(expr.id)
        if later is not None:
            raise PplError(f"'{expr.id}' is used before it is declared (line {later.line})",
                           expr.span, "move its declaration above this line")
        hint = did_you_mean(expr.id, [*self.scope.symbols, *self.scope.plates]) or (
            f"declare it above this line (data, latent, param or let); an index variable such as "
            f"'{expr.id}' must also index a declared array in the statement")
        raise PplError(f"unknown name '{expr.id}'", expr.span, hint)

    def _index(self, expr: syntax.Index) -> ir.Expr:
        base = self._name(expr.base, indexed=True) if isinstance(expr.base, syntax.Name) else self.type(expr.base)
        if base.type.batched:
            raise PplError("cannot index a value that already varies over an index", expr.span,
                           "index the array directly: X[i, k] rather than (X[i])[k]")
        if len(expr.subscripts) > base.type.rank:
            raise PplError(
                f"too many indices: the value has shape {shapes.show(base.type.shape)}",
                expr.subscripts[base.type.rank].span)
        array = base.name if isinstance(base, ir.Variable) else "the array"
        subscripts = tuple(self._slice(s, base.type.shape[axis], array) if isinstance(s, syntax.Slice)
                           else self._subscript(s, base.type.shape[axis], array) for axis, s in enumerate(expr.subscripts))
        gathers = [s for s in subscripts if not isinstance(s, ir.Position)]
        if any(isinstance(s, ir.Slice) for s in subscripts):
            _refuse_mixed_slice(subscripts, expr)
        elif len(subscripts) > 1 and any(g.type.shape for g in gathers):
            raise PplError("with several indices, each must be a single integer per element", expr.span)
        shape = tuple(d for s in subscripts for d in s.type.shape) + base.type.shape[len(subscripts):]
        variables = frozenset().union(*(s.type.index_variables for s in subscripts))
        aligned = (
            isinstance(base, ir.Variable)
            and not gathers
            and tuple(s.plate.variable for s in subscripts) == self.scope.plate_order
        )
        symbol = self.scope.symbols.get(base.name) if isinstance(base, ir.Variable) else None
        if symbol is not None and symbol.enumerated_plates:
            used = [(s.plate.size, s.plate.dim) for s in subscripts if isinstance(s, ir.Position)]
            if not aligned or used != [(p.size, p.dim) for p in symbol.enumerated_plates]:
                raise _enumerated_use(base.name, symbol, expr.span)
        return ir.Subscript(base, subscripts, aligned, ir.Type(base.type.base, shape, variables), expr.span)

    def _subscript(self, expr: syntax.Expr, axis_size: ir.Dim, array: str) -> ir.Expr:
        typed = self.type(expr)
        if isinstance(typed, ir.Position):
            if typed.plate.size != axis_size:
                raise PplError(
                    f"index '{typed.plate.variable}' ranges over {typed.plate.size} "
                    f"but this axis has {axis_size}", expr.span)
            return typed
        if typed.type.base != "int":
            raise PplError("an index must be an integer", expr.span,
                           "declare the index array as int, e.g. data g: int<lower=0>[N]")
        # An int data array used itself as the index (`a[g[i]]`, `a[g]`) is checked when the data
        # load; a computed index (`a[g[i] - 1]`) when it is computed (`rt.index`).
        array_itself = typed
        while isinstance(array_itself, ir.Subscript):
            array_itself = array_itself.base
        if (isinstance(array_itself, ir.Variable) and array_itself.role == "data" and array_itself.type.base == "int"
                and array_itself.type.shape):
            self.uses.index_arrays.setdefault(array_itself.name, axis_size)
        if not (typed.type.batched or typed.type.shape or depends_on_model(typed)):
            self._fixed_index(ir.FixedIndex(typed, array, axis_size, expr.span))
        return typed

    def _slice(self, expr: syntax.Slice, axis_size: ir.Dim, array: str) -> ir.Slice:
        """`start:stop` along an axis of `axis_size`: its length must be a size the checker
        knows (`T - 1`), so that shapes still agree; its ends are checked as positions."""
        ends = [None if end is None else self.type(end) for end in (expr.start, expr.stop)]
        terms = [shapes.size_terms(end) if end is not None else None for end in ends]
        for end, term, syntax_end in zip(ends, terms, (expr.start, expr.stop)):
            if end is not None and term is None:
                raise PplError("the ends of a slice are sizes: integer literals and int data, added or subtracted",
                               syntax_end.span, "the checker must know a slice's length, as in y[1:T] or y[0:T - 1]")
        (start_name, start_offset) = terms[0] or (None, 0)
        (stop_name, stop_offset) = terms[1] or ir.size_terms(axis_size)
        if start_name is not None and start_name != stop_name:
            raise PplError(f"the checker cannot know the length of this slice ({stop_name or stop_offset} minus "
                           f"{start_name})", expr.span, "slice from a number (y[1:T]) or between two offsets of one size "
                           "(y[T - 3:T])")
        offset = stop_offset - start_offset
        if stop_name == start_name and offset < 1:
            raise PplError(f"this slice has {max(offset, 0)} elements", expr.span,
                           "a:b holds positions a..b-1, so b must exceed a")
        length = ir.size_dim(None if stop_name == start_name else stop_name, offset)
        literal_one = ir.Literal_(1, ir.Type("int", ()), expr.span)
        if ends[0] is not None:
            self._fixed_index(ir.FixedIndex(ends[0], array, axis_size, expr.start.span))
        if ends[1] is not None:
            last = ir.Binary("-", ends[1], literal_one, ends[1].type, expr.stop.span)
            self._fixed_index(ir.FixedIndex(last, array, axis_size, expr.stop.span))
        return ir.Slice(ends[0], ends[1], ir.Type("int", (length,)), expr.span)

    def _conditional(self, expr: syntax.Conditional) -> ir.Expr:
        """`c ? a : b`: elementwise, so the three shapes broadcast; the condition is an int
        (a comparison, or int data: non-zero is true)."""
        condition, then, otherwise = (self.type(e) for e in (expr.condition, expr.then, expr.otherwise))
        if condition.type.base != "int":
            raise PplError("a condition must be a comparison or an int", expr.condition.span,
                           "compare it: x > 0 ? a : b")
        shape = shapes.broadcast(condition.type.shape, then.type.shape)
        shape = None if shape is None else shapes.broadcast(shape, otherwise.type.shape)
        if shape is None:
            raise PplError(
                f"the condition {shapes.show(condition.type.shape)} and the values {shapes.show(then.type.shape)} "
                f"and {shapes.show(otherwise.type.shape)} do not match", expr.span,
                "a conditional is elementwise: equal shapes or scalars")
        base = "int" if then.type.base == otherwise.type.base == "int" else "real"
        variables = condition.type.index_variables | then.type.index_variables | otherwise.type.index_variables
        return ir.Conditional(condition, then, otherwise, ir.Type(base, shape, variables), expr.span)

    def _comparison(self, expr: syntax.Binary, left: ir.Expr, right: ir.Expr) -> ir.Expr:
        """`a < b` and the like: elementwise, 1 where it holds and 0 elsewhere (an int)."""
        shape = shapes.broadcast(left.type.shape, right.type.shape)
        if shape is None:
            raise PplError(
                f"cannot compare shapes {shapes.show(left.type.shape)} and {shapes.show(right.type.shape)}",
                expr.span, "a comparison is elementwise: equal shapes or a scalar")
        variables = left.type.index_variables | right.type.index_variables
        return ir.Binary(expr.operator, left, right, ir.Type("int", shape, variables), expr.span)

    def _fixed_index(self, fixed: ir.FixedIndex) -> None:
        """A literal position is checked now; one that depends on data, when it loads."""
        problem = constants.out_of_range(fixed, {})
        if problem:
            length = f"{fixed.length} - 1" if isinstance(fixed.length, str) else fixed.length - 1
            raise PplError(problem, fixed.span, f"indexing is 0-based: valid indices are 0..{length}")
        self.uses.fixed_indices.append(fixed)

    def _vector(self, expr: syntax.Vector) -> ir.Expr:
        """`[a, b, ...]`: scalars stacked into a vector (of reals, whatever the elements)."""
        elements = tuple(self.type(e) for e in expr.elements)
        for element in elements:
            if element.type.shape:
                raise PplError(f"a vector [a, b, ...] holds scalars, but this element is {shapes.show(element.type.shape)}",
                               element.span, "index it down to one number, e.g. x[0]")
        variables = frozenset().union(*(e.type.index_variables for e in elements))
        return ir.Vector(elements, ir.Type("real", (len(elements),), variables), expr.span)

    def _solve(self, expr: syntax.Call) -> ir.Solve:
        """`solve(dz, initial, start, times)`: the ODE's state at each time, as [len(times), size].
        The times are data (the solver's grid is fixed before the fit); the initial state may be latent."""
        positional = [a for a in expr.arguments if a.keyword is None]
        if len(positional) != 4 or positional != list(expr.arguments[:4]):
            raise PplError(f"solve takes 4 arguments before any keywords, got {len(positional)}", expr.span,
                           "solve(dz, initial_state, start_time, times), dz named by an ode statement")
        ode = self._ode_named(positional[0].value)
        initial, start, times = (self.type(a.value) for a in positional[1:])
        options = _solver_options(expr.arguments[4:])
        if initial.type.shape != (ode.size,) or initial.type.batched:
            raise PplError(f"the initial state is {shapes.show(initial.type.shape)}, but '{ode.name}' has a state of "
                           f"{ode.size}", initial.span, f"give one value per state: a vector of {ode.size}")
        # Both are checked when the data load (increasing, after the start): so they are numbers and data.
        if not _number_or_scalar_data(start):
            raise PplError("the start time is a number or a real data scalar", start.span, "e.g. 0, or data t0: real")
        if not (isinstance(times, ir.Variable) and times.role == "data"):
            raise PplError("the times are a data vector: the solver reports the state at times fixed before the fit",
                           times.span, "declare them as data ts: real[N], increasing and after the start time")
        if times.type.rank != 1:
            raise PplError(f"the times are a vector, here {shapes.show(times.type.shape)}", times.span,
                           "declare them as data ts: real[N], increasing and after the start time")
        return ir.Solve(ode, initial, start, times, *options, ir.Type("real", (times.type.shape[0], ode.size)),
                        expr.span)

    def _ode_named(self, expr: syntax.Expr) -> ir.Ode:
        name = expr.id if isinstance(expr, syntax.Name) else None
        if name not in self.scope.odes:
            hint = did_you_mean(name, list(self.scope.odes)) if name else None
            raise PplError("solve's first argument names an ode statement above it", expr.span,
                           hint or "declare the derivative first: ode dz(t, z) = [...]")
        return self.scope.odes[name]

    def _call(self, expr: syntax.Call) -> ir.Expr:
        if expr.function == "solve":
            return self._solve(expr)
        if expr.function in distributions.TABLE:
            raise PplError(f"'{expr.function}' is a distribution, not a function", expr.function_span,
                           f"use it after `~`: latent z ~ {expr.function}(...)")
        function = functions.TABLE.get(expr.function)
        if function is None:
            raise PplError(f"unknown function '{expr.function}'", expr.function_span,
                           functions.unknown_hint(expr.function))
        for argument in expr.arguments:
            if argument.keyword is not None:
                raise PplError(f"{expr.function} takes no keyword arguments", argument.span)
        arity = len(expr.arguments)
        if (function.arity is not None and arity != function.arity) or arity == 0:
            wanted = function.arity or "one or more"
            raise PplError(f"{expr.function} takes {wanted} argument{'s' * (wanted != 1)}, got {arity}",
                           expr.span)
        if function.shape in (functions.CONSTRUCT, functions.IDENTITY):
            return self._construct(expr)
        arguments = tuple(self.type(a.value) for a in expr.arguments)
        return ir.Call(expr.function, arguments, self._call_type(function, arguments, expr), expr.span)

    def _construct(self, expr: syntax.Call) -> ir.Expr:
        dims = []
        for argument in expr.arguments:
            typed = self.type(argument.value)
            is_size = (isinstance(typed, ir.Literal_) and typed.type.base == "int") or (
                isinstance(typed, ir.Variable) and typed.role == "data" and typed.type == ir.Type("int", ()))
            if not is_size:
                raise PplError(f"{expr.function} takes sizes", argument.span,
                               "a size is an int data name or an integer literal")
            if isinstance(typed, ir.Literal_) and typed.value < 1:
                raise PplError("a size must be at least 1", argument.span, "an array of no elements has nothing to model")
            dims.append(typed.value if isinstance(typed, ir.Literal_) else typed.name)
        shape = tuple(dims) * 2 if functions.TABLE[expr.function].shape == functions.IDENTITY else tuple(dims)
        return ir.Call(expr.function, (), ir.Type("real", shape), expr.span)

    @staticmethod
    def _call_type(function: functions.Function, arguments, expr: syntax.Call) -> ir.Type:
        first = arguments[0].type
        variables = frozenset().union(*(a.type.index_variables for a in arguments))
        match function.shape:
            case functions.ELEMENTWISE:
                return ir.Type("real", first.shape, variables)
            case functions.VECTOR | functions.REDUCE if not first.shape:
                raise PplError(f"{function.name} needs an array, got a scalar", expr.arguments[0].span)
            case functions.VECTOR:
                return ir.Type("real", first.shape, variables)
            case functions.REDUCE:
                return ir.Type("real", (), variables)
            case functions.BROADCAST:
                return _broadcast_type(function, arguments, variables, expr)
            case functions.DOT:
                second = arguments[1].type
                if first.rank != 1 or first.shape != second.shape:
                    raise PplError(
                        f"dot needs two vectors of one length, got {shapes.show(first.shape)} "
                        f"and {shapes.show(second.shape)}", expr.span)
                return ir.Type("real", (), variables)
            case functions.DIAGONAL | functions.TRANSPOSE:
                return _matrix_type(function, arguments[0], variables, expr)
            case functions.SQUARE | functions.DIAGONAL_PRODUCT | functions.COVARIANCE:
                return ir.Type("real", shapes.matrix_function(function.name, arguments, expr), variables)
        raise AssertionError(function.shape)

    def _binary(self, expr: syntax.Binary) -> ir.Expr:
        left, right = self.type(expr.left), self.type(expr.right)
        variables = left.type.index_variables | right.type.index_variables
        if expr.operator in ir.COMPARISONS:
            return self._comparison(expr, left, right)
        if expr.operator == "@":
            shape = shapes.matmul(left.type.shape, right.type.shape)
            if shape is None:
                raise PplError(
                    f"cannot multiply {shapes.show(left.type.shape)} @ {shapes.show(right.type.shape)}",
                    expr.span, "@ contracts the last axis of the left with the first of the right")
            return ir.Binary("@", left, right, ir.Type("real", shape, variables), expr.span)
        shape = shapes.broadcast(left.type.shape, right.type.shape)
        if shape is None:
            raise PplError(
                f"shapes {shapes.show(left.type.shape)} and {shapes.show(right.type.shape)} do not match",
                expr.span, "elementwise arithmetic needs equal shapes or a scalar")
        integral = left.type.base == right.type.base == "int" and expr.operator in "+-*"
        base = "int" if integral else "real"
        return ir.Binary(expr.operator, left, right, ir.Type(base, shape, variables), expr.span)


def _broadcast_type(function: functions.Function, arguments, variables: frozenset[str], expr: syntax.Call) -> ir.Type:
    shape: ir.Shape | None = ()
    for argument in arguments:
        shape = shapes.broadcast(shape, argument.type.shape)
        if shape is None:
            raise PplError(f"the arguments of {function.name} have shapes "
                           f"{', '.join(shapes.show(a.type.shape) for a in arguments)}, which do not match",
                           expr.span, f"{function.name} is elementwise: equal shapes or scalars")
    return ir.Type("real", shape, variables)


def _number_or_scalar_data(expr: ir.Expr) -> bool:
    match expr:
        case ir.Literal_():
            return True
        case ir.Negate(operand=operand):
            return _number_or_scalar_data(operand)
        case ir.Variable(role="data", type=ir.Type(shape=())):
            return True
    return False


# ODE solver options ------------------------------------------------------------------

# Stan's defaults for its ODE solvers' tolerances; the step cap keeps a fit from stalling
# where a draw makes the system stiff (a solve that reaches it gives nan, as an overflow would).
SOLVER_OPTIONS = {"rtol": 1e-6, "atol": 1e-6, "max_steps": 100_000}


def _solver_options(arguments: tuple[syntax.Argument, ...]) -> tuple[float, float, int]:
    """rtol=, atol= (positive numbers) and max_steps= (a positive integer), each a literal."""
    options = dict(SOLVER_OPTIONS)
    given: set[str] = set()
    for argument in arguments:
        key = argument.keyword
        if key is None:
            raise PplError("solve takes 4 arguments before any keywords", argument.span,
                           "options are named: rtol=1e-6, atol=1e-6, max_steps=100000")
        if key not in options:
            raise PplError(f"solve has no option '{key}'", argument.span,
                           did_you_mean(key, list(options)) or "its options are rtol, atol and max_steps")
        if key in given:
            raise PplError(f"'{key}' is given twice", argument.span, "give each option once")
        given.add(key)
        value = argument.value.value if isinstance(argument.value, syntax.Number) else None
        integral = key == "max_steps"
        if value is None or value <= 0 or (integral and not isinstance(value, int)):
            raise PplError(f"{key} is a positive {'integer' if integral else 'number'}", argument.value.span,
                           f"e.g. {key}={SOLVER_OPTIONS[key]}")
        options[key] = value
    return float(options["rtol"]), float(options["atol"]), int(options["max_steps"])


# Matrix functions ---------------------------------------------------------------------


def _matrix_type(function: functions.Function, argument: ir.Expr, variables: frozenset[str],
                 expr: syntax.Call) -> ir.Type:
    """diag_matrix: a vector of K -> K x K; transpose: a matrix R x C -> C x R."""
    shape = argument.type.shape
    if function.shape == functions.DIAGONAL:
        if len(shape) != 1:
            raise PplError(f"diag_matrix needs a vector, got {shapes.show(shape)}", expr.arguments[0].span,
                           "it puts a vector on the diagonal of a square matrix; index a row for one of a matrix")
        return ir.Type("real", shape * 2, variables)
    if len(shape) != 2:
        raise PplError(f"transpose needs a matrix, got {shapes.show(shape)}", expr.arguments[0].span,
                       "it swaps the two axes of a matrix; a vector has no second axis to swap")
    return ir.Type("real", shape[::-1], variables)
