"""Shape rules shared by the checker: broadcasting and matrix products on symbolic sizes.

Sizes are symbolic (`N`, `K`) or literal; two different symbols never match,
because the checker cannot know they will be equal when data arrives.
"""

from __future__ import annotations

from compiler.errors import PplError
from compiler.frontend import ir, syntax
from compiler.frontend.ir import Dim, Shape

# The most axes a value (or a statement's plates) may have: the generated code nests one
# `with` block per plate, and torch adds particle and enumeration dims to at most 64.
MAX_AXES = 8


def show(shape: Shape) -> str:
    return "scalar" if not shape else "[" + ", ".join(str(d) for d in shape) + "]"


def broadcast(left: Shape, right: Shape) -> Shape | None:
    """NumPy broadcasting, right-aligned; None where the shapes cannot combine."""
    result: list[Dim] = []
    for offset in range(1, max(len(left), len(right)) + 1):
        a = left[-offset] if offset <= len(left) else 1
        b = right[-offset] if offset <= len(right) else 1
        if a == b or b == 1:
            result.append(a)
        elif a == 1:
            result.append(b)
        else:
            return None
    return tuple(reversed(result))


def matmul(left: Shape, right: Shape) -> Shape | None:
    """`@` on vectors and matrices; None when the ranks or inner sizes disagree."""
    if not 1 <= len(left) <= 2 or not 1 <= len(right) <= 2:
        return None
    inner_left = left[-1]
    inner_right = right[0]
    if inner_left != inner_right:
        return None
    return left[:-1] + right[1:]


def matrix_function(name: str, arguments: tuple[ir.Expr, ...], call: syntax.Call) -> Shape:
    """The shape out of cholesky(A) (A square), diag_pre_multiply(v, L) (v as long as L has rows)
    and gp_exp_quad_cov(x, alpha, rho) (x a vector of N points, alpha and rho scalars: N x N)."""
    first = arguments[0].type.shape
    spans = [argument.span for argument in call.arguments]
    if name == "cholesky":
        if len(first) != 2 or first[0] != first[1]:
            raise PplError(f"cholesky needs a square matrix, got {show(first)}", spans[0],
                           "the lower Cholesky factor L of a positive definite K x K matrix A (A = L @ transpose(L))")
        return first
    if name == "diag_pre_multiply":
        matrix = arguments[1].type.shape
        if len(first) != 1 or len(matrix) != 2 or first[0] != matrix[0]:
            raise PplError(f"diag_pre_multiply needs a vector of K and a matrix of K rows, got {show(first)} "
                           f"and {show(matrix)}", call.span, "diag_pre_multiply(v, L) scales row k of L by v[k]")
        return matrix
    if len(first) != 1:
        raise PplError(f"gp_exp_quad_cov needs a vector of points, got {show(first)}", spans[0],
                       "one real per point: data x: real[N]")
    for argument, span in zip(arguments[1:], spans[1:]):
        if argument.type.shape:
            raise PplError(f"the magnitude and length-scale of gp_exp_quad_cov are scalars, got "
                           f"{show(argument.type.shape)}", span, "gp_exp_quad_cov(x, alpha, rho)")
    return first * 2


def broadcasts_to(shape: Shape, target: Shape) -> bool:
    return len(shape) <= len(target) and broadcast(shape, target) == tuple(target)


def size_terms(e: ir.Expr) -> tuple[str | None, int] | None:
    """A size expression (`T - 1`, `2`, `T + 1 - 3`) as (int data name or None, integer offset);
    None unless it is integer literals and at most one int data scalar added once, whose value
    the checker can then compare with other sizes."""
    counts: dict[str, int] = {}
    offset = 0
    for sign, term in _signed_terms(e, 1):
        match term:
            case ir.Literal_(value=int(value)):
                offset += sign * value
            case ir.Variable(role="data", type=ir.Type(base="int", shape=()), name=name):
                counts[name] = counts.get(name, 0) + sign
            case _:
                return None
    names = [name for name, count in counts.items() if count]
    if len(names) > 1 or any(count not in (0, 1) for count in counts.values()):
        return None
    return (names[0] if names else None), offset


def _signed_terms(e: ir.Expr, sign: int):
    match e:
        case ir.Binary(operator="+" | "-" as operator, left=left, right=right):
            yield from _signed_terms(left, sign)
            yield from _signed_terms(right, sign if operator == "+" else -sign)
        case ir.Negate(operand=operand):
            yield from _signed_terms(operand, -sign)
        case _:
            yield sign, e
