"""Shape rules shared by the checker: broadcasting and matrix products on symbolic sizes.

Sizes are symbolic (`N`, `K`) or literal; two different symbols never match,
because the checker cannot know they will be equal when data arrives.
"""

from __future__ import annotations

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


def broadcasts_to(shape: Shape, target: Shape) -> bool:
    return len(shape) <= len(target) and broadcast(shape, target) == tuple(target)
