"""Phase 3, codegen (expressions): typed `ir.Expr` -> Python source.

Layout rule, the one thing to know to read generated code: inside a statement
with n plates, a value that varies over index variables is laid out as
(sample dims..., n plate dims, its own value dims); a whole array keeps its
own dims on the right, as Pyro's broadcasting expects. Where the two meet, the
whole array is lifted (`rt.lift`) past the plate dims. Any dims further left
(vectorised particles, posterior draws, enumeration) then broadcast untouched,
so the same code serves SVI, `Predictive` and NUTS.
"""

from __future__ import annotations

from compiler import functions, ir

# Precedence of the Python code we emit, loosest first.
SUM, PRODUCT, UNARY, POWER, ATOM = range(5)
PYTHON_OPERATORS = {"+": ("+", SUM), "-": ("-", SUM), "*": ("*", PRODUCT), "/": ("/", PRODUCT),
                    "^": ("**", POWER)}


def expression(e: ir.Expr, plates: int = 0) -> str:
    """Python source for `e` inside a statement with `plates` plates."""
    return _Emitter(plates).emit(e)[0]


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
    def __init__(self, plates: int):
        self.plates = plates

    def emit(self, e: ir.Expr) -> tuple[str, int]:
        match e:
            case ir.Literal_(value=value):
                return repr(value), ATOM
            case ir.Variable(name=name):
                return name, ATOM
            case ir.Position(plate=plate):
                return plate.variable, ATOM
            case ir.Subscript(aligned=True, base=base):
                return self.emit(base)
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
                code_l = self._operand(left, e.type, self._wrap(left, left_needs))
                code_r = self._operand(right, e.type, self._wrap(right, right_needs))
                return f"{code_l} {symbol} {code_r}", precedence
        raise AssertionError(f"unhandled IR node {e!r}")

    def _wrap(self, e: ir.Expr, needed: int) -> str:
        code, precedence = self.emit(e)
        return code if precedence >= needed else f"({code})"

    def _operand(self, operand: ir.Expr, result: ir.Type, code: str) -> str:
        """Align an operand with a result that varies over the statement's plates."""
        if not result.batched:
            return code
        if not operand.type.batched:
            return self._lift(operand, code)
        missing = result.rank - operand.type.rank
        if missing <= 0:
            return code
        return f"{code}[..., {', '.join(['None'] * missing)}]"

    def _lift(self, operand: ir.Expr, code: str, plates: int | None = None) -> str:
        plates = self.plates if plates is None else plates
        if operand.type.rank == 0 or plates == 0:
            return code
        return f"rt.lift({self._strip(code)}, {operand.type.rank}, {plates})"

    @staticmethod
    def _strip(code: str) -> str:
        return code[1:-1] if code.startswith("(") and code.endswith(")") else code

    def _gather(self, e: ir.Subscript) -> str:
        """`base[...]` with pyro's Vindex, so indices broadcast against any sample dims."""
        indices = e.subscripts
        # The result's dims left of the base's remaining axes: plate dims, then
        # the dims of an array-valued index.
        leading = (self.plates if e.type.batched else 0) + max(i.type.rank for i in indices)
        base = self._lift(e.base, self._wrap(e.base, ATOM), leading)
        rest = e.base.type.rank - len(indices)
        slices = "".join(", :" for _ in range(rest))
        codes = ", ".join(self._strip(self.emit(i)[0]) for i in indices)
        return f"Vindex({self._strip(base)})[..., {codes}{slices}]"

    def _matmul(self, e: ir.Binary) -> str:
        left, right = e.left, e.right
        code_l = self._operand(left, e.type, self._strip(self.emit(left)[0]))
        code_r = self._operand(right, e.type, self._strip(self.emit(right)[0]))
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
        codes = [self._strip(self._operand(a, e.type, self.emit(a)[0])) for a in e.arguments]
        return function.torch.format(*codes)


def shape_code(shape: ir.Shape) -> str:
    if not shape:
        return "()"
    return "(" + ", ".join(str(d) for d in shape) + (",)" if len(shape) == 1 else ")")
