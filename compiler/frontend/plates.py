"""Phase 2, check: the axes of a statement -> its `ir.Plate`s.

A subscript on the left of a statement is a size or an index variable; an index
variable ranges over the length of the axis it indexes in a declared array on the
right, and every array it indexes must agree on that length.
"""

from __future__ import annotations

from compiler.errors import PplError, Span, did_you_mean
from compiler.frontend import ir, shapes, syntax
from compiler.frontend.expressions import Scope, Symbol, type_expression
from compiler.frontend.identifiers import check_identifier


def statement_plates(subscripts, range_sources, symbols: dict[str, Symbol],
                     allow_sizes: bool) -> tuple[ir.Plate, ...]:
    """One plate per subscript on the left: a size, or an index variable
    whose range is the length of the axis it indexes in a declared array."""
    if len(subscripts) > shapes.MAX_AXES:
        raise PplError(f"more than {shapes.MAX_AXES} subscripts", subscripts[shapes.MAX_AXES].span,
                       f"a statement ranges over at most {shapes.MAX_AXES} axes")
    ranges = index_ranges(range_sources, symbols)
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
            case syntax.Name(id=name) if name not in symbols and name[:1].islower():
                raise PplError(
                    f"cannot infer the range of index '{name}'", subscript.span,
                    "index a declared array with it on the right, or give a size: "
                    "[N] with `data N: int`")
            case _ if allow_sizes:
                axes.append((axis_size(subscript, symbols), None))
            case _:
                raise PplError("expected an index variable here", subscript.span,
                               "write a lower-case name such as i")
    return plates_of_axes(axes)


def plates_of_axes(axes: list[tuple[ir.Dim, str | None]]) -> tuple[ir.Plate, ...]:
    """One plate per (size, index variable or None) axis; plates of one size get distinct names."""
    plates: list[ir.Plate] = []
    for position, (size, variable) in enumerate(axes):
        name = plate_name(size)
        if any(p.name == name for p in plates):
            name = f"{size}_{variable or position}"
        plates.append(ir.Plate(name, size, position - len(axes), variable))
    return tuple(plates)


def plate_name(size: ir.Dim) -> str:
    """A plate's name: its size, with `T - 1` written `T_minus_1`."""
    name, offset = ir.size_terms(size)
    if name is None or offset == 0:
        return str(size)
    return f"{name}_{'minus' if offset < 0 else 'plus'}_{abs(offset)}"


def axis_size(expr: syntax.Expr, symbols: dict[str, Symbol]) -> ir.Dim:
    """The length of an axis: an integer literal of at least 1, the name of an int data scalar,
    or one plus or minus integers (`T - 1`)."""
    match expr:
        case syntax.Binary(operator="+" | "-"):
            name, offset = size_sum(expr, symbols)
            if name is None and offset < 1:
                raise PplError(f"this size is {offset}; a size must be at least 1", expr.span,
                               "an array of no elements has nothing to model")
            return ir.size_dim(name, offset)
        case syntax.Number(value=int(value)):
            if value < 1:
                raise PplError("a size must be at least 1", expr.span, "an array of no elements has nothing to model")
            return value
        case syntax.Name(id=name) if name in symbols:
            symbol = symbols[name]
            if symbol.role == "data" and symbol.type == ir.Type("int", ()):
                return name
            raise PplError(f"'{name}' is not a size", expr.span,
                           "a size is an int data name or an integer literal")
        case syntax.Name(id=name):
            raise PplError(f"unknown size '{name}'", expr.span,
                           did_you_mean(name, list(symbols)) or f"declare it: data {name}: int")
    raise PplError("a size must be an int data name or an integer literal", expr.span,
                   "or one plus or minus integer literals, such as T - 1")


def size_sum(expr: syntax.Expr, symbols: dict[str, Symbol]) -> tuple[str | None, int]:
    """A size written as a sum (`T - 1`) as (int data name or None, integer offset)."""
    typed, _ = type_expression(expr, Scope(symbols, {}, {}, ""))
    terms = shapes.size_terms(typed)
    if terms is None:
        raise PplError("a size is integer literals and at most one int data name, added or subtracted", expr.span,
                       "write e.g. T - 1, with `data T: int`")
    return terms


def index_ranges(nodes, symbols: dict[str, Symbol]) -> dict[str, tuple[ir.Dim, Span, str]]:
    """Index variable -> (range, where and from which array it was inferred), from every `array[...]`
    in the statement whose array is declared. Disagreeing ranges are an error."""
    ranges: dict[str, tuple[ir.Dim, Span]] = {}
    for node in nodes:
        for index in indexings(node):
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


def indexings(node):
    """Every `name[...]` inside a syntax node."""
    match node:
        case syntax.Index(base=base, subscripts=subscripts):
            if isinstance(base, syntax.Name):
                yield node
            else:
                yield from indexings(base)
            for s in subscripts:
                yield from indexings(s)
        case syntax.Call(arguments=arguments):
            for a in arguments:
                yield from indexings(a.value)
        case syntax.Binary(left=left, right=right):
            yield from indexings(left)
            yield from indexings(right)
        case syntax.Negate(operand=operand):
            yield from indexings(operand)
        case syntax.Conditional(condition=condition, then=then, otherwise=otherwise):
            for part in (condition, then, otherwise):
                yield from indexings(part)
        case syntax.Slice(start=start, stop=stop):
            for end in (start, stop):
                if end is not None:
                    yield from indexings(end)
        case syntax.Vector(elements=elements):
            for element in elements:
                yield from indexings(element)
