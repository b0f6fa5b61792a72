"""Phase 2, check (recurrences): a `let` defined element by element, as syntax the checker can type.

`let x[0] = ...` (its first elements, at literal positions) followed by
`let x[t] = f(x[t - 1])` (every later element) is one deterministic value. Its
step is rewritten here into an expression over all the later positions at once:
each `y[t + c]` becomes the slice of y those positions read, and `x[t - 1]`
becomes a variable standing for the previous elements. Codegen then computes the
whole array by one associative scan, which is exact when the step is affine in
x[t - 1] (x[t] = a[t] + b[t] * x[t - 1]); anything else is refused here, with
the span of the part that is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.errors import PplError, Span
from compiler.frontend import ir, syntax

GARCH_REWRITE = ("recur on a quantity the step is affine in; a GARCH volatility, for one, through its variance: "
                 "let v[t] = alpha0 + alpha1 * (y[t - 1] - mu)^2 + beta1 * v[t - 1], then sqrt(v)")


def initial_position(decl: syntax.LetDecl) -> int | None:
    """The position of `let x[3] = ...` (one literal subscript): one of a recurrence's first elements."""
    match decl.subscripts:
        case (syntax.Number(value=int(position)),):
            return position
    return None


def is_step(decl: syntax.LetDecl) -> bool:
    """`let x[t in a:b] = ...`, or `let x[t] = ...` whose right side reads elements of x."""
    if any(isinstance(s, syntax.StepRange) for s in decl.subscripts):
        return True
    return bool(decl.subscripts) and any(_is_self(node, decl.name.id) for node in _nodes(decl.value))


@dataclass(frozen=True)
class Step:
    """A step rewritten over positions `first`..length-1 of the array: `value` reads the previous
    elements as the name `previous`; `reads_previous` says whether it reads them at all."""

    value: syntax.Expr
    previous: str
    reads_previous: bool


def rewrite_step(decl: syntax.LetDecl, variable: str, first: int, length: ir.Dim, previous: str) -> Step:
    """The step of `decl` over positions first..length-1, its index variable gone: `y[t + c]` is the
    slice y[first + c:length + c], `x[t - 1]` the name `previous`. Refuses every other use of the
    index variable or of x, and a step that is not affine in x[t - 1]."""
    rewriter = _Rewriter(decl.name.id, variable, first, length, previous)
    value = rewriter.rewrite(decl.value)
    nonlinear = _not_affine(value, previous)
    if nonlinear is not None:
        raise PplError(
            f"the step of '{decl.name.id}' is not affine in {decl.name.id}[{variable} - 1] here: a recurrence is "
            f"computed as {decl.name.id}[{variable}] = a + b * {decl.name.id}[{variable} - 1], with a and b free "
            f"of {decl.name.id}", nonlinear.span, GARCH_REWRITE)
    return Step(value, previous, rewriter.reads_previous)


class _Rewriter:
    def __init__(self, name: str, variable: str, first: int, length: ir.Dim, previous: str):
        self.name, self.variable, self.first, self.length, self.previous = name, variable, first, length, previous
        self.reads_previous = False

    def rewrite(self, node: syntax.Expr) -> syntax.Expr:
        match node:
            case syntax.Index(base=syntax.Name(id=base)) if base == self.name:
                return self._self_reference(node)
            case syntax.Index(base=base, subscripts=subscripts):
                return syntax.Index(self.rewrite(base), tuple(self._subscript(s) for s in subscripts), node.span)
            case syntax.Name(id=name) if name == self.name:
                raise PplError(f"in its own step, '{name}' is used as {name}[{self.variable} - 1]", node.span,
                               f"the step reads the previous element, {name}[{self.variable} - 1]")
            case syntax.Name(id=name) if name == self.variable:
                raise self._stray_variable(node.span)
            case syntax.Call(arguments=arguments):
                rewritten = tuple(syntax.Argument(a.keyword, self.rewrite(a.value), a.span) for a in arguments)
                return syntax.Call(node.function, rewritten, node.span, node.function_span)
            case syntax.Binary(operator=operator, left=left, right=right):
                return syntax.Binary(operator, self.rewrite(left), self.rewrite(right), node.span)
            case syntax.Negate(operand=operand):
                return syntax.Negate(self.rewrite(operand), node.span)
            case syntax.Conditional(condition=condition, then=then, otherwise=otherwise):
                return syntax.Conditional(self.rewrite(condition), self.rewrite(then), self.rewrite(otherwise),
                                          node.span)
            case syntax.Slice(start=start, stop=stop):
                return syntax.Slice(None if start is None else self.rewrite(start),
                                    None if stop is None else self.rewrite(stop), node.span)
        return node

    def _subscript(self, subscript: syntax.Expr) -> syntax.Expr:
        """`t + c` -> the slice of the positions it takes over the step; anything else as it is."""
        offset = self._offset(subscript)
        if offset is None:
            return self.rewrite(subscript)
        start = self.first + offset
        if start < 0:
            raise PplError(f"at the step's first position ({self.variable} = {self.first}) this reaches position "
                           f"{start}, before the array starts", subscript.span,
                           "give more first elements (let x[0] = ..., let x[1] = ...) so that the step starts later")
        name, stop = ir.size_terms(self.length)
        return syntax.Slice(syntax.Number(start, subscript.span), _size_syntax(name, stop + offset, subscript.span),
                            subscript.span)

    def _self_reference(self, node: syntax.Index) -> syntax.Expr:
        offset = self._offset(node.subscripts[0]) if len(node.subscripts) == 1 else None
        shown = f"{self.name}[{self.variable} - 1]"
        if offset is None:
            raise PplError(f"in its own step, '{self.name}' is used as {shown}", node.span,
                           f"the step reads the previous element, {shown}; its first elements are given above it")
        if offset >= 0:
            raise PplError(f"'{self.name}' at position {self.variable}{_signed(offset)} is not computed yet at "
                           f"position {self.variable}", node.span,
                           f"a step reads earlier elements only: {shown}")
        if offset < -1:
            raise PplError(f"{self.name}[{self.variable} - {-offset}] reaches back {-offset} steps: only first-order "
                           f"recurrences (reading {shown}) are computed", node.span,
                           f"write the step from {shown} alone; earlier data (y[{self.variable} - 2]) are fine")
        self.reads_previous = True
        return syntax.Name(self.previous, node.span)

    def _offset(self, subscript: syntax.Expr) -> int | None:
        """c where the subscript is `t`, `t + c` or `t - c` (c an integer literal), else None."""
        match subscript:
            case syntax.Name(id=name) if name == self.variable:
                return 0
            case syntax.Binary(operator="+" | "-" as operator, left=syntax.Name(id=name),
                               right=syntax.Number(value=int(c))) if name == self.variable:
                return c if operator == "+" else -c
            case syntax.Binary(operator="+", left=syntax.Number(value=int(c)),
                               right=syntax.Name(id=name)) if name == self.variable:
                return c
        return None

    def _stray_variable(self, span: Span) -> PplError:
        v = self.variable
        return PplError(f"in a recurrence's step, '{v}' is used only as a subscript: y[{v}], y[{v} - 1], y[{v} + 1]",
                        span, f"the step is computed for all its positions at once, so '{v}' only picks elements; "
                        "a value that varies with time is data or another let")


def _not_affine(node: syntax.Expr, previous: str) -> syntax.Expr | None:
    """The part of the step where it stops being affine in `previous`, or None where it is affine."""
    if not _reads(node, previous):
        return None
    match node:
        case syntax.Name():
            return None
        case syntax.Negate(operand=operand):
            return _not_affine(operand, previous)
        case syntax.Binary(operator="+" | "-", left=left, right=right):
            return _not_affine(left, previous) or _not_affine(right, previous)
        case syntax.Binary(operator="*", left=left, right=right):
            if _reads(left, previous) and _reads(right, previous):
                return node
            return _not_affine(left, previous) or _not_affine(right, previous)
        case syntax.Binary(operator="/", left=left, right=right) if not _reads(right, previous):
            return _not_affine(left, previous)
    return node


def _reads(node: syntax.Expr, name: str) -> bool:
    return any(isinstance(n, syntax.Name) and n.id == name for n in _nodes(node))


def _is_self(node, name: str) -> bool:
    return isinstance(node, syntax.Index) and isinstance(node.base, syntax.Name) and node.base.id == name


def _nodes(node):
    """Every syntax node inside an expression, itself first."""
    yield node
    match node:
        case syntax.Index(base=base, subscripts=subscripts):
            for part in (base, *subscripts):
                yield from _nodes(part)
        case syntax.Call(arguments=arguments):
            for a in arguments:
                yield from _nodes(a.value)
        case syntax.Binary(left=left, right=right):
            yield from _nodes(left)
            yield from _nodes(right)
        case syntax.Negate(operand=operand):
            yield from _nodes(operand)
        case syntax.Conditional(condition=condition, then=then, otherwise=otherwise):
            for part in (condition, then, otherwise):
                yield from _nodes(part)
        case syntax.Slice(start=start, stop=stop):
            for end in (start, stop):
                if end is not None:
                    yield from _nodes(end)


def _size_syntax(name: str | None, offset: int, span: Span) -> syntax.Expr:
    """`name + offset` as syntax (`T`, `T - 1`, `5`)."""
    if name is None:
        return syntax.Number(offset, span)
    if offset == 0:
        return syntax.Name(name, span)
    return syntax.Binary("+" if offset > 0 else "-", syntax.Name(name, span), syntax.Number(abs(offset), span), span)


def _signed(offset: int) -> str:
    return "" if offset == 0 else f" {'+' if offset > 0 else '-'} {abs(offset)}"
