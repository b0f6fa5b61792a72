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

from collections.abc import Mapping
from dataclasses import dataclass

from compiler import functions, ir

# Precedence of the Python code we emit, loosest first.
SUM, PRODUCT, UNARY, POWER, ATOM = range(5)
PYTHON_OPERATORS = {"+": ("+", SUM), "-": ("-", SUM), "*": ("*", PRODUCT), "/": ("/", PRODUCT),
                    "^": ("**", POWER)}


@dataclass(frozen=True)
class Layout:
    """Where dims sit in one statement: the model's plate nesting M, the statement's
    plate count n, and the unit dims each latent or let is stored with."""

    nesting: int = 0
    plates: int = 0
    stored_unit_dims: Mapping[str, int] | None = None

    def shift(self, name: str, needed: int) -> int:
        """Unit dims to insert (or remove) to turn a stored value into one with `needed`."""
        stored = (self.stored_unit_dims or {}).get(name)
        return 0 if stored is None else needed - stored


def expression(e: ir.Expr, layout: Layout = Layout()) -> str:
    """Python source for `e`, batched or whole as its type says."""
    return _Emitter(layout).emit(e)[0]


def argument(e: ir.Expr, layout: Layout, event_rank: int) -> str:
    """A distribution argument: a whole array's leading (non-event) dims become
    the plates' batch dims, so they leave the unit block on their left."""
    code = expression(e, layout)
    batch_rank = e.type.rank - event_rank
    if e.type.batched or batch_rank <= 0 or not carries_sample_dims(e):
        return code
    return f"rt.lift({code}, {e.type.rank}, {-batch_rank})"


def carries_sample_dims(e: ir.Expr) -> bool:
    """True when the value may hold particle, draw or enumeration dims: it uses a latent or let."""
    return any(v.role in ("latent", "let") for v in ir.variables(e))


def gathered_variables(e: ir.Expr) -> set[str]:
    """Index variables used as values or gather indices (they need `rt.position`)."""
    match e:
        case ir.Position(plate=plate):
            return {plate.variable}
        case ir.Subscript(aligned=True):
            return set()
        case ir.Subscript(base=base, subscripts=subscripts):
            return gathered_variables(base).union(*(gathered_variables(s) for s in subscripts))
        case ir.Call(arguments=arguments):
            return set().union(*(gathered_variables(a) for a in arguments))
        case ir.Binary(left=left, right=right):
            return gathered_variables(left) | gathered_variables(right)
        case ir.Negate(operand=operand):
            return gathered_variables(operand)
    return set()


class _Emitter:
    def __init__(self, layout: Layout):
        self.layout = layout

    def emit(self, e: ir.Expr) -> tuple[str, int]:
        match e:
            case ir.Literal_(value=value):
                return repr(value), ATOM
            case ir.Variable(name=name):
                # A whole value: S + (M unit dims) + its dims.
                return self._relayout(e, name, self.layout.shift(name, self.layout.nesting)), ATOM
            case ir.Position(plate=plate):
                return plate.variable, ATOM
            case ir.Subscript(aligned=True, base=ir.Variable(name=name) as base):
                # Batched: S + (M - n unit dims) + the n plate dims it is indexed by + the rest.
                needed = self.layout.nesting - self.layout.plates
                return self._relayout(base, name, self.layout.shift(name, needed)), ATOM
            case ir.Subscript():
                return self._gather(e), ATOM
            case ir.Call():
                return self._call(e), ATOM
            case ir.Negate(operand=operand):
                return f"-{self._wrap(operand, UNARY)}", UNARY
            case ir.Binary(operator="@"):
                return self._matmul(e), ATOM
            case ir.Binary(operator=operator, left=left, right=right):
                symbol, precedence = PYTHON_OPERATORS[operator]
                left_needs = precedence + (1 if operator == "^" else 0)
                right_needs = precedence + (0 if operator == "^" else 1)
                code_l = self._padded(left, e.type.rank, self._wrap(left, left_needs))
                code_r = self._padded(right, e.type.rank, self._wrap(right, right_needs))
                return f"{code_l} {symbol} {code_r}", precedence
        raise AssertionError(f"unhandled IR node {e!r}")

    @staticmethod
    def _relayout(variable: ir.Variable, code: str, unit_dims: int) -> str:
        """Insert (or, if negative, remove) unit dims just left of a value's own dims."""
        if unit_dims == 0 or variable.role not in ("latent", "let"):
            return code
        return f"rt.lift({code}, {variable.type.rank}, {unit_dims})"

    def _wrap(self, e: ir.Expr, needed: int) -> str:
        code, precedence = self.emit(e)
        return code if precedence >= needed else f"({code})"

    @staticmethod
    def _padded(operand: ir.Expr, rank: int, code: str) -> str:
        """Pad an operand's own dims on the right up to the result's rank, where it
        varies over plates or carries sample dims (else right-alignment is enough)."""
        missing = rank - operand.type.rank
        if missing <= 0 or not (operand.type.batched or carries_sample_dims(operand)):
            return code
        return f"{code}[..., {', '.join(['None'] * missing)}]"

    @staticmethod
    def _strip(code: str) -> str:
        return code[1:-1] if code.startswith("(") and code.endswith(")") else code

    def _gather(self, e: ir.Subscript) -> str:
        """`base[...]` with Pyro's Vindex, so indices broadcast against the base's
        S and unit dims; the base gains unit dims for an array-valued index."""
        index_rank = max(i.type.rank for i in e.subscripts)
        base = self._strip(self.emit(e.base)[0])
        if index_rank:
            base = f"rt.lift({base}, {e.base.type.rank}, {index_rank})"
        rest = "".join(", :" for _ in range(e.base.type.rank - len(e.subscripts)))
        codes = ", ".join(self._strip(self.emit(i)[0]) for i in e.subscripts)
        return f"Vindex({base})[..., {codes}{rest}]"

    def _matmul(self, e: ir.Binary) -> str:
        left, right = e.left, e.right
        code_l, code_r = self._strip(self.emit(left)[0]), self._strip(self.emit(right)[0])
        match (left.type.rank, right.type.rank):
            case (1, 1):
                return f"({code_l} * {code_r}).sum(-1)"
            case (2, 1):
                return f"rt.matvec({code_l}, {code_r})"
            case (1, 2):
                return f"rt.vecmat({code_l}, {code_r})"
        return f"({code_l} @ {code_r})"

    def _call(self, e: ir.Call) -> str:
        function = functions.TABLE[e.function]
        if function.shape == functions.CONSTRUCT:
            return function.torch.format(shape=shape_code(e.type.shape))
        if function.shape == functions.REDUCE:
            rank = e.arguments[0].type.rank
            axes = "-1" if rank == 1 else "(" + ", ".join(str(-k) for k in range(rank, 0, -1)) + ")"
            return function.torch.format(self._wrap(e.arguments[0], ATOM), axes=axes)
        if function.shape == functions.DOT:
            rank = max(a.type.rank for a in e.arguments)
            codes = [self._padded(a, rank, self._wrap(a, ATOM)) for a in e.arguments]
            return function.torch.format(*codes)
        return function.torch.format(*(self._strip(self.emit(a)[0]) for a in e.arguments))


def shape_code(shape: ir.Shape) -> str:
    if not shape:
        return "()"
    return "(" + ", ".join(str(d) for d in shape) + (",)" if len(shape) == 1 else ")")
