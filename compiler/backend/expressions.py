"""Phase 3, codegen (expressions): typed `ir.Expr` -> Python source.

The layout rule, the one thing to know to read generated code. Vectorised
particles, posterior draws and enumeration add sample dims S on the left of
every sampled value, at Pyro's fixed place: M = MAX_PLATE_NESTING batch dims
from the right of a site's batch shape. So that S always lines up, every
value inside a statement with n plates is one of two forms:

- a *batched* value (it varies over the statement's index variables):
  S + (M - n unit dims) + (n plate dims) + its own value dims;
- a *whole* value: S + (M unit dims) + its own value dims.

A latent sampled under p plates arrives from Pyro as S + (M - p unit dims) +
its dims (a whole-array let is stored with none), so a reference to it is
re-laid out (`rt.lift`) where the unit dims differ from what the use needs;
values that cannot carry S (data, transformed data, params) need nothing. Operands of
lower rank are padded on the right (`[..., None]`) where they carry S or vary
over plates; whole arrays passed as distribution arguments give their leading
dims back to the plates. The same code then serves SVI, `Predictive` and NUTS.
"""

from __future__ import annotations

import re
import string as formats
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from compiler.backend import emitter as em
from compiler.backend.emitter import Code
from compiler.backend.value_kinds import carries_sample_dims, is_comparison, may_be_number
from compiler.frontend import functions, ir

# Precedence of the Python code we emit, loosest first.
SUM, PRODUCT, UNARY, POWER, ATOM = range(5)
PYTHON_OPERATORS = {"+": ("+", SUM), "-": ("-", SUM), "*": ("*", PRODUCT), "/": ("/", PRODUCT),
                    "^": ("**", POWER)}
PYTHON_COMPARISONS = {operator: operator for operator in ir.COMPARISONS}


@dataclass(frozen=True)
class Layout:
    """Where dims sit in one statement: the model's plate nesting M, the statement's
    plate count n, the unit dims each latent or let is stored with, the axis length
    each int data array is checked against as an index when the data load, and the
    names whose tensors have exactly their declared shape (data, params, whole-array
    transformed data: nothing on the left of their own dims)."""

    nesting: int = 0
    plates: int = 0
    stored_unit_dims: Mapping[str, int] | None = None
    index_ranges: Mapping[str, ir.Dim] | None = None
    exact: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, model: ir.Model) -> Layout:
        """The model's layout, computed once (`within` then places each statement)."""
        stored = {s.name: _stored_unit_dims(s, model.max_plate_nesting)
                  for s in model.statements if isinstance(s, (ir.Latent, ir.Let))}
        ranges = {d.name: d.index_range for d in model.data if d.index_range is not None}
        exact = ({d.name for d in model.data} | {p.name for p in model.params}
                 | {s.name for s in model.lets if s.transformed_data and not s.plates})
        return cls(model.max_plate_nesting, 0, stored, ranges, frozenset(exact))

    def within(self, plates: tuple[ir.Plate, ...]) -> Layout:
        return replace(self, plates=len(plates))

    def shift(self, name: str, needed: int) -> int:
        """Unit dims to insert (or remove) to turn a stored value into one with `needed`."""
        stored = (self.stored_unit_dims or {}).get(name)
        return 0 if stored is None else needed - stored


def _stored_unit_dims(statement: ir.Latent | ir.Let, nesting: int) -> int:
    """Unit dims between a stored value's sample dims and its own: Pyro pads a site
    made under p plates with M - p; a whole-array let keeps none, so its value
    looks as a Pyro user expects (a scalar is a scalar)."""
    if isinstance(statement, ir.Let) and not statement.plates:
        return 0
    if isinstance(statement, ir.Latent) and statement.chain:  # read as z[t]: like a site under t's plate
        return nesting - 1
    return nesting - len(statement.plates)


def expression(e: ir.Expr, layout: Layout = Layout()) -> Code:
    """Python code for `e`, batched or whole as its type says."""
    return _Emitter(layout).emit(e)[0]


def argument(e: ir.Expr, layout: Layout, event_rank: int, whole: bool = False) -> Code:
    """A distribution argument: a whole array's leading (non-event) dims become
    the plates' batch dims, so they leave the unit block on their left; unless the
    argument stays `whole` (a recurrence's step: its last dim is the positions, which a
    scalar carrying sample dims gets as a unit dim, so that its sample dims stay left of it)."""
    code = expression(e, layout)
    if e.type.base == "int" and not may_be_number(e) and not is_comparison(e):
        code = em.call(em.runtime("real"), code)  # positions and index arrays are integer tensors; distributions take floats
    if whole:
        if e.type.rank or not carries_sample_dims(e):
            return code
        operand = em.parenthesised(code) if isinstance(code, (em.Chain, em.Joined)) else code
        return em.subscript(operand, em.text("..."), em.text("None"))
    batch_rank = e.type.rank - event_rank
    if e.type.batched or batch_rank <= 0 or not carries_sample_dims(e):
        return code
    return lift(code, e.type.rank, -batch_rank)


@dataclass(frozen=True)
class Lift(em.Code):
    """`rt.lift(value, rank, unit_dims)`, kept as a value so that a lift of a lift is written once."""

    value: Code
    rank: int
    unit_dims: int

    def _call(self) -> Code:
        return em.call(em.runtime("lift"), self.value, em.number(self.rank), em.number(self.unit_dims))

    def flat(self) -> str:
        return self._call().flat()

    @property
    def needs(self) -> em.Needs:
        return self._call().needs

    def broken(self, column: int, indent: int, reserve: int) -> list[str]:
        return self._call().broken(column, indent, reserve)


def lift(code: Code, rank: int, unit_dims: int) -> Code:
    """`code` with `unit_dims` unit dims inserted just left of its own `rank` dims (removed if
    negative), as `runtime.lift` does. Inserting a, then inserting or removing b, is one lift
    by a + b; nothing to insert is no lift at all."""
    if isinstance(code, Lift) and code.rank == rank and code.unit_dims >= 0:
        return lift(code.value, rank, code.unit_dims + unit_dims)
    return code if unit_dims == 0 else Lift(code, rank, unit_dims)


class _Emitter:
    def __init__(self, layout: Layout):
        self.layout = layout

    def emit(self, e: ir.Expr) -> tuple[Code, int]:
        """The code for `e` and its precedence; the code is never wrapped in redundant parentheses."""
        match e:
            case ir.Literal_(value=value):
                return em.number(value), ATOM
            case ir.Variable(name=name):
                # A whole value: S + (M unit dims) + its dims.
                return self._relayout(e, self.layout.shift(name, self.layout.nesting)), ATOM
            case ir.Position(plate=plate):
                return em.name(plate.variable), ATOM
            case ir.Subscript(aligned=True, base=ir.Variable(name=name) as base):
                # Batched: S + (M - n unit dims) + the n plate dims it is indexed by + the rest.
                needed = self.layout.nesting - self.layout.plates
                return self._relayout(base, self.layout.shift(name, needed)), ATOM
            case ir.Subscript():
                return self._gather(e), ATOM
            case ir.Call():
                return self._call(e), ATOM
            case ir.Negate(operand=operand):
                return em.joined("-", self._wrap(operand, UNARY)), UNARY
            case ir.Binary(operator="@"):
                return self._matmul(e)
            case ir.Binary() if is_comparison(e):
                return em.call(em.runtime("real"), self._comparison(e)), ATOM
            case ir.Conditional():
                return self._conditional(e), ATOM
            case ir.Vector(elements=elements):
                return em.call(em.runtime("vector"), *(self.emit(element)[0] for element in elements)), ATOM
            case ir.Solve():
                return self._solve(e), ATOM
            case ir.Binary(operator=operator, left=left, right=right):
                symbol, precedence = PYTHON_OPERATORS[operator]
                left_needs = precedence + (1 if operator == "^" else 0)
                right_needs = precedence + (0 if operator == "^" else 1)
                code_l = self._operand(left, e.type.rank, left_needs, real=_left_must_be_real(e))
                code_r = self._operand(right, e.type.rank, right_needs)
                return em.chain(code_l, symbol, code_r), precedence
        raise AssertionError(f"unhandled IR node {e!r}")

    @staticmethod
    def _relayout(variable: ir.Variable, unit_dims: int) -> Code:
        """Insert (or, if negative, remove) unit dims just left of a value's own dims."""
        code = em.name(variable.name)
        if variable.role not in ("latent", "let"):
            return code
        return lift(code, variable.type.rank, unit_dims)

    def _wrap(self, e: ir.Expr, needed: int) -> Code:
        code, precedence = self.emit(e)
        return code if precedence >= needed else em.parenthesised(code)

    def _real(self, e: ir.Expr, needed: int = SUM) -> Code:
        """The value as a tensor of the default float dtype where it may be a Python number or an
        integer tensor (functions and `^` give reals; torch refuses `mean` of integers)."""
        return em.call(em.runtime("real"), self.emit(e)[0]) if _is_integer_or_number(e) else self._wrap(e, needed)

    def _operand(self, operand: ir.Expr, rank: int, needed: int, real: bool = False) -> Code:
        """An operand of an elementwise operator with result rank `rank`. Where it varies over
        plates or carries sample dims, right-alignment alone would line its own dims up with
        those, so it gets unit dims just left of its own dims, as broadcasting would give it:
        `[..., None]` for a scalar, `rt.lift` for an array."""
        code = em.call(em.runtime("real"), self.emit(operand)[0]) if real else None
        missing = rank - operand.type.rank
        if missing <= 0 or not (operand.type.batched or carries_sample_dims(operand)):
            return code or self._wrap(operand, needed)
        if operand.type.rank:
            return lift(code or self.emit(operand)[0], operand.type.rank, missing)
        if code is None and isinstance(operand, ir.Subscript) and not operand.aligned:
            return self._gather(operand, pad=missing)
        return em.subscript(code or self._wrap(operand, ATOM), em.text("..."), *[em.text("None")] * missing)

    def _gather(self, e: ir.Subscript, pad: int = 0) -> Code:
        """`base[...]`: plain indexing where it gives what Pyro's Vindex would (see `_plain`),
        else Vindex, so that indices broadcast against the base's S and unit dims; there the
        base gains unit dims for an array-valued index. `pad` unit dims follow on the right
        (see `_operand`)."""
        indices = [self._index(i, e.base.type.shape[axis]) for axis, i in enumerate(e.subscripts)]
        rest = [em.text(":")] * (e.base.type.rank - len(e.subscripts))
        plain = self._plain(e, indices, rest, pad)
        if plain is not None:
            code, pad = plain
        else:
            index_rank = max(i.type.rank for i in e.subscripts)
            base = lift(self.emit(e.base)[0], e.base.type.rank, index_rank)
            code = em.subscript(em.call(em.imported("Vindex"), base), em.text("..."), *indices, *rest)
        return em.subscript(code, em.text("..."), *[em.text("None")] * pad) if pad else code

    def _plain(self, e: ir.Subscript, indices: list[Code], rest: list[Code], pad: int) -> tuple[Code, int] | None:
        """The gather as plain indexing, where that is exactly what Vindex would give:
        - a base holding only its own dims (data, params, whole transformed data): `x[i]`;
        - indices that are single numbers: `b[..., k]`, with the unit dims the whole value
          has (and `pad`) as `None`s where every axis is indexed: `b[..., k, None]`;
        - a stored latent or let whose unit dims already stand where the indices' dims go
          (`a[..., county]` where `county` varies along the statement's plate).
        With the pad still to add; None where only Vindex broadcasts the indices against the
        base's sample dims."""
        base = e.base
        if not isinstance(base, ir.Variable):
            return None
        if base.name in self.layout.exact:
            return em.subscript(em.name(base.name), *indices), pad
        sliced = any(isinstance(i, ir.Slice) for i in e.subscripts)
        if all(isinstance(i, ir.Slice) or not (i.type.batched or i.type.shape or carries_sample_dims(i))
               for i in e.subscripts):
            unit_dims = self.layout.shift(base.name, self.layout.nesting) if base.role in ("latent", "let") else 0
            if rest or unit_dims < 0 or sliced:  # a slice keeps its axis, so the whole value's unit dims stay left
                return em.subscript(self.emit(base)[0], em.text("..."), *indices, *rest), pad
            # Every axis indexed: the unit dims of the whole value go where its axes were.
            units = [em.text("None")] * (unit_dims + pad)
            return em.subscript(em.name(base.name), em.text("..."), *indices, *units), 0
        ranks = [_tensor_rank(i, self.layout) for i in e.subscripts]
        stored = (self.layout.stored_unit_dims or {}).get(base.name)
        if base.role not in ("latent", "let") or None in ranks or any(carries_sample_dims(i) for i in e.subscripts):
            return None
        index_rank = max(i.type.rank for i in e.subscripts)
        if stored != self.layout.nesting + index_rank - max(ranks):
            return None
        return em.subscript(em.name(base.name), em.text("..."), *indices, *rest), pad

    def _index(self, index: ir.Expr, length: ir.Dim) -> Code:
        """A gather index. Positions, literals and int data checked against this axis when
        the data load are used as they are; any other value (computed, transformed data, a
        discrete latent) is made integer and checked here, where torch would take a float
        for an error and a negative position as counted from the end."""
        if isinstance(index, ir.Slice):
            ends = [self.emit(end)[0] if end is not None else em.text("") for end in (index.start, index.stop)]
            return em.joined(ends[0], ":", ends[1])
        code = self.emit(index)[0]
        if isinstance(index, (ir.Position, ir.Literal_)) or self._checked_index(index, length):
            return code
        return em.call(em.runtime("index"), code, dim_code(length))

    def _checked_index(self, index: ir.Expr, length: ir.Dim) -> bool:
        """An int data array (or elements of one) that the data check as positions along `length`."""
        while isinstance(index, ir.Subscript):
            index = index.base
        ranges = self.layout.index_ranges or {}
        return isinstance(index, ir.Variable) and index.role == "data" and ranges.get(index.name) == length

    def _comparison(self, e: ir.Binary) -> Code:
        """`a < b` as torch computes it: a boolean tensor (a Python bool where both are numbers,
        so then the left becomes a tensor first)."""
        numbers = may_be_number(e.left) and may_be_number(e.right)
        left = self._operand(e.left, e.type.rank, SUM, real=numbers)
        return em.chain(left, PYTHON_COMPARISONS[e.operator], self._operand(e.right, e.type.rank, SUM))

    def _conditional(self, e: ir.Conditional) -> Code:
        """`torch.where(condition, then, otherwise)`, each laid out for the result's rank."""
        condition = e.condition
        if is_comparison(condition):
            test = self._comparison(condition)
            if condition.type.rank < e.type.rank and (condition.type.batched or carries_sample_dims(condition)):
                test = lift(em.parenthesised(test), condition.type.rank, e.type.rank - condition.type.rank)
        else:
            test = em.chain(self._operand(condition, e.type.rank, SUM, real=True), "!=", em.number(0))
        values = (self._operand(v, e.type.rank, SUM, real=may_be_number(v)) for v in (e.then, e.otherwise))
        return em.call(em.imported("torch", "where"), test, *values)

    def _solve(self, e: ir.Solve) -> Code:
        """`rt.solve(dz, initial, start, times, ...)`, the solver's options written out."""
        arguments = [self.emit(part)[0] for part in (e.initial, e.start, e.times)]
        options = [em.keyword(key, em.number(value))
                   for key, value in (("rtol", e.rtol), ("atol", e.atol), ("max_steps", e.max_steps))]
        return em.call(em.runtime("solve"), em.name(e.ode.name), *arguments, *options)

    def _matmul(self, e: ir.Binary) -> tuple[Code, int]:
        left, right = e.left, e.right
        match (left.type.rank, right.type.rank):
            case (1, 1):
                product = em.chain(self._wrap(left, PRODUCT), "*", self._wrap(right, PRODUCT + 1))
                return em.joined(em.parenthesised(product), ".sum(-1)"), ATOM
            case (2, 1):
                return em.call(em.runtime("matvec"), self.emit(left)[0], self.emit(right)[0]), ATOM
            case (1, 2):
                return em.call(em.runtime("vecmat"), self.emit(left)[0], self.emit(right)[0]), ATOM
        return em.chain(self._wrap(left, PRODUCT), "@", self._wrap(right, PRODUCT + 1)), PRODUCT

    def _call(self, e: ir.Call) -> Code:
        function = functions.TABLE[e.function]
        if function.shape in (functions.CONSTRUCT, functions.IDENTITY):
            return _template(function.torch, shape=shape_code(e.type.shape), size=dim_code(e.type.shape[0]))
        if function.shape == functions.REDUCE:
            rank = e.arguments[0].type.rank
            axes = "-1" if rank == 1 else "(" + ", ".join(str(-k) for k in range(rank, 0, -1)) + ")"
            return _template(function.torch, self._real(e.arguments[0], ATOM), axes=em.text(axes))
        if function.shape == functions.BROADCAST:
            return _template(function.torch, *(self._operand(a, e.type.rank, ATOM, real=_is_integer_or_number(a))
                                               for a in e.arguments))
        if function.shape == functions.DOT:
            rank = max(a.type.rank for a in e.arguments)
            return _template(function.torch, *(self._operand(a, rank, ATOM, real=_is_integer_or_number(a))
                                               for a in e.arguments))
        if function.shape == functions.COVARIANCE:  # the scalars gain the matrix's two axes, right of any sample dims
            points, *scalars = e.arguments
            return _template(function.torch, self._real(points), *(
                self._operand(a, e.type.rank, ATOM, real=_is_integer_or_number(a)) for a in scalars))
        return _template(function.torch, *(self._real(a, ATOM if f"{{{k}}}." in function.torch else SUM)
                                           for k, a in enumerate(e.arguments)))  # `{0}.unsqueeze(...)` needs an atom


def _tensor_rank(index: ir.Expr, layout: Layout) -> int | None:
    """How many dims an index's tensor has as the code runs, where that is known without
    running it: numbers, positions, and data arrays (whole, or aligned: the array itself)."""
    match index:
        case ir.Literal_():
            return 0
        case ir.Position(plate=plate):
            return -plate.dim
        case ir.Variable(name=name) if name in layout.exact:
            return index.type.rank
        case ir.Subscript(aligned=True, base=ir.Variable(name=name) as base) if name in layout.exact:
            return base.type.rank
    return None


def _template(template: str, *arguments: Code, **named: Code) -> Code:
    """Code from a function-table template (`torch.exp({0})`, `{0}.sum({axes})`)."""
    parts: list[Code] = []
    for literal, field_name, _, _ in formats.Formatter().parse(template):
        if literal:
            module, dot, _ = literal.partition(".")
            if helper := re.fullmatch(r"rt\.(\w+)(.*)", literal, re.S):  # `rt.cholesky(`: a runtime helper
                parts += [em.runtime(helper[1]), em.text(helper[2])]
            else:
                parts.append(em.imported(module, literal[len(module) + 1:]) if dot and module in em.IMPORTS
                             else em.text(literal))
        if field_name is not None:
            parts.append(arguments[int(field_name)] if field_name.isdigit() else named[field_name])
    return em.joined(*parts)


def _is_integer_or_number(e: ir.Expr) -> bool:
    return not is_comparison(e) and (may_be_number(e) or e.type.base == "int")


def _left_must_be_real(e: ir.Binary) -> bool:
    """Whether the left operand becomes a float tensor first: see `may_be_number`; and
    an integer tensor to a negative power is an error in torch, where `^` gives a real."""
    if e.operator == "^":
        return _is_integer_or_number(e.left)
    return e.operator in ("*", "/") and may_be_number(e.left) and may_be_number(e.right)


def dim_code(dim: ir.Dim | Code) -> Code:
    """A size: a number, or the data name that holds it."""
    if isinstance(dim, em.Code):
        return dim
    name, offset = ir.size_terms(dim)
    if name is None:
        return em.number(offset)
    if offset == 0:
        return em.name(name)
    return em.chain(em.name(name), "-" if offset < 0 else "+", em.number(abs(offset)))  # a size such as `T - 1`


def shape_code(shape: Sequence[ir.Dim | Code]) -> Code:
    if not shape:
        return em.text("()")
    dims = [dim_code(d) for d in shape]
    separated: list[Code | str] = []
    for k, dim in enumerate(dims):
        separated += [", "] if k else []
        separated.append(dim)
    return em.joined("(", *separated, ",)" if len(shape) == 1 else ")")
