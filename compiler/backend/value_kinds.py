"""Phase 4, codegen: what the emitter must know of a checked expression's value before it
writes code for it: whether it may carry sample dims, may still be a Python number, is a
comparison, or reads index variables as values."""

from __future__ import annotations

from compiler.frontend import ir


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
        case ir.Conditional(condition=condition, then=then, otherwise=otherwise):
            return gathered_variables(condition) | gathered_variables(then) | gathered_variables(otherwise)
        case ir.Vector(elements=elements):
            return set().union(*(gathered_variables(element) for element in elements))
    return set()


def is_comparison(e: ir.Expr) -> bool:
    """A comparison's value is emitted as a float tensor of 0s and 1s (`rt.real(a < b)`), so
    that arithmetic on it counts (torch's booleans would add as `or` and refuse `-`)."""
    return isinstance(e, ir.Binary) and e.operator in ir.COMPARISONS


def may_be_number(e: ir.Expr) -> bool:
    """True when the value may be a Python number as the code runs: literals, scalar
    data (the data give them as numbers), and their sums. Python raises on `1 / 0`,
    overflows `10.0 ** 400`, turns `(-8) ** 0.5` complex and lets an integer product
    grow without bound, where torch gives inf or nan; so such a value becomes a
    tensor (`rt.real`) before it is multiplied, divided, raised to a power or passed
    to a function, and the results are tensors."""
    match e:
        case ir.Literal_():
            return True
        case ir.Variable(role="data", type=ir.Type(shape=())):
            return True
        case ir.Negate(operand=operand):
            return may_be_number(operand)
        case ir.Binary(operator="+" | "-", left=left, right=right):
            return may_be_number(left) and may_be_number(right)
    return False
