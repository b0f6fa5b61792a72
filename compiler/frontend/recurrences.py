"""Phase 2, check (recurrences): a `let` or `latent` defined element by element, as syntax the checker can type.

`let x[0] = ...` (its first elements, at literal positions) followed by
`let x[t] = f(x[t - 1])` (every later element) is one deterministic value; with
`latent` and `~` it is one latent vector. Its step is rewritten here into an
expression over all the later positions at once: each `y[t + c]` becomes the
slice of y those positions read, and `x[t - 1]` becomes a variable standing for
the previous elements. Codegen computes a let by one associative scan, which is
exact when the step is affine in x[t - 1] (x[t] = a[t] + b[t] * x[t - 1]);
anything else is refused here, with the span of the part that is not. A latent's
step is a distribution given the previous elements, whose density needs no scan.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from compiler.errors import PplError, Span
from compiler.frontend import constants, distributions, ir, shapes, syntax
from compiler.frontend.distribution_arguments import check_distribution
from compiler.frontend.expressions import Scope, Symbol, depends_on_model
from compiler.frontend.identifiers import check_identifier
from compiler.frontend.plates import axis_size, index_ranges

GARCH_REWRITE = ("recur on a quantity the step is affine in; a GARCH volatility, for one, through its variance: "
                 "let v[t] = alpha0 + alpha1 * (y[t - 1] - mu)^2 + beta1 * v[t - 1], then sqrt(v)")


def initial_position(subscripts: tuple) -> int | None:
    """The position of `let x[3] = ...` (one literal subscript): one of a recurrence's first elements."""
    match subscripts:
        case (syntax.Number(value=int(position)),):
            return position
    return None


def is_step(name: syntax.Name, subscripts: tuple, right: syntax.Expr) -> bool:
    """`x[t in a:b]`, or `x[t]` whose right side reads elements of x."""
    if any(isinstance(s, syntax.StepRange) for s in subscripts):
        return True
    return bool(subscripts) and any(_is_self(node, name.id) for node in syntax_nodes(right))


def rewrite_step(name: str, right: syntax.Expr, variable: str, first: int, length: ir.Dim,
                 previous: str) -> syntax.Expr:
    """The step `right` of recurrence `name` over positions first..length-1, its index variable gone:
    `y[t + c]` is the slice y[first + c:length + c], `x[t - 1]` the name `previous`. Refuses every
    other use of the index variable or of x."""
    return _Rewriter(name, variable, first, length, previous).rewrite(right)


def refuse_not_affine(name: str, variable: str, step: syntax.Expr, previous: str) -> None:
    """A let's step must be affine in its previous element (x[t] = a + b * x[t - 1])."""
    nonlinear = _not_affine(step, previous)
    if nonlinear is not None:
        raise PplError(
            f"the step of '{name}' is not affine in {name}[{variable} - 1] here: a recurrence is "
            f"computed as {name}[{variable}] = a + b * {name}[{variable} - 1], with a and b free "
            f"of {name}", nonlinear.span, GARCH_REWRITE)


class _Rewriter:
    def __init__(self, name: str, variable: str, first: int, length: ir.Dim, previous: str):
        self.name, self.variable, self.first, self.length, self.previous = name, variable, first, length, previous

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
    return any(isinstance(n, syntax.Name) and n.id == name for n in syntax_nodes(node))


def _is_self(node, name: str) -> bool:
    return isinstance(node, syntax.Index) and isinstance(node.base, syntax.Name) and node.base.id == name


def syntax_nodes(node):
    """Every syntax node inside an expression, itself first."""
    yield node
    match node:
        case syntax.Index(base=base, subscripts=subscripts):
            for part in (base, *subscripts):
                yield from syntax_nodes(part)
        case syntax.Call(arguments=arguments):
            for a in arguments:
                yield from syntax_nodes(a.value)
        case syntax.Binary(left=left, right=right):
            yield from syntax_nodes(left)
            yield from syntax_nodes(right)
        case syntax.Negate(operand=operand):
            yield from syntax_nodes(operand)
        case syntax.Conditional(condition=condition, then=then, otherwise=otherwise):
            for part in (condition, then, otherwise):
                yield from syntax_nodes(part)
        case syntax.Slice(start=start, stop=stop):
            for end in (start, stop):
                if end is not None:
                    yield from syntax_nodes(end)


def _size_syntax(name: str | None, offset: int, span: Span) -> syntax.Expr:
    """`name + offset` as syntax (`T`, `T - 1`, `5`)."""
    if name is None:
        return syntax.Number(offset, span)
    if offset == 0:
        return syntax.Name(name, span)
    return syntax.Binary("+" if offset > 0 else "-", syntax.Name(name, span), syntax.Number(abs(offset), span), span)


def _signed(offset: int) -> str:
    return "" if offset == 0 else f" {'+' if offset > 0 else '-'} {abs(offset)}"


# Checking ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepPositions:
    """Where a recurrence's step runs: index `variable` over positions first..length-1 (`steps` of
    them), reading the previous elements as the variable `previous`."""

    name: str
    variable: str
    length: ir.Dim
    steps: ir.Dim
    previous: str
    span: Span  # the recurrence's name in its step

    def scope(self, checker: RecurrenceChecks, base: str = "real") -> Scope:
        """The checker's scope, with the previous elements (one per position) as a value of their own
        (a chain's: int states, which may index)."""
        previous = Symbol("let", ir.Type(base, (self.steps,)), self.span)
        return Scope({**checker.symbols, self.previous: previous}, {}, checker.declared_later, self.name)


class RecurrenceChecks:
    """The checker's part for recurrences, which `check._ProgramChecker` inherits (with its
    `_type`, `_scope`, `_declare` and `_refuse_redeclaration`, and `chains.ChainChecks`' `_chain`):
    a recurrence's first elements are kept in `initial` until the step comes, and then become one
    statement."""

    symbols: dict[str, Symbol]
    declared_later: dict[str, Span]
    statements: list[ir.Statement]
    fixed_indices: list[ir.FixedIndex]
    initial: list[tuple[syntax.LetDecl | syntax.LatentDecl, ir.Expr | ir.DistributionUse]]
    steps: dict[str, Span]  # recurrence -> its step statement

    def _expect_step(self, statement: syntax.Statement | None) -> None:
        """A recurrence's first elements are followed directly by more of them, then by its step."""
        if not self.initial:
            return
        first = self.initial[0][0]
        if type(statement) is type(first) and statement.name.id == first.name.id:
            return
        keyword, step = ("let", "=") if isinstance(first, syntax.LetDecl) else ("latent", "~")
        if keyword == "latent" and len(self.initial) == 1:  # a lone `latent x[0]` is most likely a size of 0
            raise PplError("a size must be at least 1", first.subscripts[0].span,
                           "an array of no elements has nothing to model")
        raise PplError(f"'{first.name.id}[0]' starts a recurrence, but no step for its later elements follows",
                       first.name.span, f"follow its first elements with the step: {keyword} {first.name.id}[t] "
                       f"{step} ... {first.name.id}[t - 1] ...")

    def _refuse_second_step(self, name: syntax.Name, subscripts: tuple) -> None:
        step = self.steps.get(name.id)
        if step is not None and subscripts:
            raise PplError(f"'{name.id}' is already complete: its step is on line {step.line}", name.span,
                           "a recurrence is its first elements, then one step for all later elements; a conditional "
                           "(c ? a : b) in the step chooses between values")

    def _initial_element(self, decl: syntax.LetDecl | syntax.LatentDecl, position: int,
                         value: ir.Expr | ir.DistributionUse) -> None:
        """`x[k]`: the k-th of the first elements of a recurrence, given in order from 0."""
        name = decl.name.id
        expected = len(self.initial)
        if position != expected:
            raise PplError(f"the first elements of '{name}' are given in order from position 0: expected "
                           f"{name}[{expected}] here", decl.subscripts[0].span,
                           f"then one step gives every later element: {name}[t] from {name}[t - 1]")
        if expected == 0:
            self._refuse_redeclaration(decl.name)
        self.initial.append((decl, value))

    def _initial_value(self, decl: syntax.LetDecl, position: int) -> ir.Expr:
        value = self._type(decl.value, self._scope())
        if value.type.shape:
            raise PplError(f"{decl.name.id}[{position}] is one number, but this value is "
                           f"{shapes.show(value.type.shape)}", decl.value.span,
                           "a recurrence is a vector: each element one number")
        return value

    def _recurrence(self, decl: syntax.LetDecl) -> None:
        """The step `let x[t] = f(x[t - 1])` after x's first elements: one let of all the elements,
        its value the step over the later positions at once (`recurrences.rewrite_step`)."""
        name = decl.name.id
        initial, positions = self._step_positions(decl, decl.value)
        right = rewrite_step(name, decl.value, positions.variable, len(initial), positions.length,
                                         positions.previous)
        refuse_not_affine(name, positions.variable, right, positions.previous)
        value = self._type(right, positions.scope(self))
        if value.type.shape not in ((), (positions.steps,)):
            raise PplError(f"each element of '{name}' is one number, but the step gives {shapes.show(value.type.shape)}"
                           f" per position", decl.value.span, "a recurrence is a vector: each element one number")
        reads = initial + [v for v in ir.variables(value) if v.name != positions.previous]
        transformed = not any(depends_on_model(e) for e in reads)
        self._declare(decl.name, Symbol("transformed" if transformed else "let", ir.Type("real", (positions.length,)),
                                        decl.name.span))
        self.steps[name] = decl.span
        recurrence = ir.Recurrence(tuple(initial), positions.previous, positions.steps)
        self.statements.append(ir.Let(name, value, (), (positions.length,), transformed, decl.span, recurrence))

    def _latent_recurrence(self, decl: syntax.LatentDecl) -> None:
        """The step `latent x[t] ~ D(x[t - 1])` after x's first elements: one latent vector whose
        density is its first elements' and D's of each later element given the one before."""
        name = decl.name.id
        initial, positions = self._step_positions(decl, decl.distribution)
        chain = distributions.TABLE[initial[0].name].is_discrete
        if chain:
            self._refuse_time_in_step(name, positions.variable, decl.distribution)
        right = rewrite_step(name, decl.distribution, positions.variable, len(initial), positions.length,
                                         positions.previous)
        steps = (ir.Plate("", positions.steps, -1, None),)  # the step's arguments: one value, or one per position
        use = check_distribution(right, positions.scope(self, "int" if chain else "real"), steps, self._type)
        self._recurrent_distribution(use, decl.distribution)
        kinds = {u.support.kind for u in [*initial, use]}
        if len(kinds) > 1:
            raise PplError(f"the elements of '{name}' follow distributions on different sets ({', '.join(sorted(kinds))})",
                           decl.distribution.function_span, "its first elements and its step need one support, "
                           "e.g. Normal for all, or LogNormal for all")
        if chain:
            self._chain(decl, initial, use, positions)
            return
        shape = (positions.length,)
        self._declare(decl.name, Symbol("latent", ir.Type("real", shape), decl.name.span))
        self.steps[name] = decl.span
        recurrence = ir.Recurrence(tuple(initial), positions.previous, positions.steps)
        whole = dataclasses.replace(use, event_shape=shape)  # one site: the guide treats it as a vector
        self.statements.append(ir.Latent(name, (), whole, shape, False, decl.span, recurrence=recurrence))

    def _recurrent_distribution(self, use: ir.DistributionUse, call: syntax.Call) -> None:
        """A latent recurrence's elements: continuous scalars on a fixed set (real, positive, unit interval)."""
        row = distributions.TABLE[use.name]
        if row.is_discrete:
            self._chain_distribution(use, call)
            return
        if row.improper or use.event_shape or use.support.low is not None or use.support.high is not None:
            raise PplError(f"the elements of a latent recurrence are scalars of a proper distribution on a fixed set, "
                           f"not {use.name}(...)", call.function_span,
                           "use e.g. Normal, StudentT, LogNormal or Beta; a bound that moves is a transformation of "
                           "such a latent")

    def _step_positions(self, decl: syntax.LetDecl | syntax.LatentDecl,
                        right: syntax.Expr) -> tuple[list, StepPositions]:
        """The first elements given above the step `decl`, and the positions the step covers."""
        name = decl.name.id
        initial, self.initial = self.initial, []
        if len(decl.subscripts) != 1:
            raise PplError(f"a recurrence has one index, but '{name}' has {len(decl.subscripts)} here",
                           decl.subscripts[-1].span if decl.subscripts else decl.name.span,
                           f"write its step as {name}[t], reading {name}[t - 1]")
        if not initial:
            first_element = f"let {name}[0] = ..." if isinstance(decl, syntax.LetDecl) else f"latent {name}[0] ~ ..."
            raise PplError(f"the step of '{name}' needs its first element", decl.subscripts[0].span,
                           f"give it above the step: {first_element}")
        first = len(initial)
        variable, length = self._step_range(decl, right, first)
        for element, _ in initial:
            self._initial_in_range(element, length)
        stop_name, stop_offset = ir.size_terms(length)
        if stop_name is None and stop_offset <= first:
            raise PplError(f"'{name}' has {stop_offset} elements, all given above: the step has no positions left",
                           decl.subscripts[0].span, "drop the step, or give fewer first elements")
        previous = f"{name}_previous"
        while previous in self.symbols or previous in self.declared_later:
            previous += "_"
        steps = ir.size_dim(stop_name, stop_offset - first)
        return [value for _, value in initial], StepPositions(name, variable, length, steps, previous, decl.name.span)

    def _step_range(self, decl: syntax.LetDecl | syntax.LatentDecl, right: syntax.Expr,
                    first: int) -> tuple[str, ir.Dim]:
        """The step's index variable and the length of the array: written (`t in 1:T`), or that of
        the arrays the step indexes with the variable alone (`y[t]`)."""
        subscript = decl.subscripts[0]
        name = decl.name.id
        match subscript:
            case syntax.StepRange(variable=variable, start=start, stop=stop):
                self._refuse_declared_variable(variable)
                if not (isinstance(start, syntax.Number) and start.value == first):
                    raise PplError(f"the step of '{name}' starts at position {first}, after its first "
                                   f"element{'s' * (first > 1)}", start.span,
                                   f"write {variable.id} in {first}:...")
                return variable.id, axis_size(stop, self.symbols)
            case syntax.Name(id=variable) if variable not in self.symbols and variable[:1].islower():
                check_identifier(subscript)
                ranges = index_ranges([right], self.symbols)
                if variable not in ranges:
                    raise PplError(f"cannot infer the range of index '{variable}'", subscript.span,
                                   f"nothing on the right is indexed by {variable} alone; write the step's positions: "
                                   f"{name}[{variable} in {first}:T] (positions {first}..T-1)")
                return variable, ranges[variable][0]
        raise PplError("expected an index variable here", subscript.span,
                       f"a recurrence's step is written {name}[t], reading {name}[t - 1]")

    def _refuse_declared_variable(self, variable: syntax.Name) -> None:
        check_identifier(variable)
        if variable.id in self.symbols or not variable.id[:1].islower():
            raise PplError(f"'{variable.id}' cannot be an index variable", variable.span,
                           "an index variable is a new lower-case name, such as t")

    def _initial_in_range(self, element: syntax.LetDecl | syntax.LatentDecl, length: ir.Dim) -> None:
        """A first element's position lies inside the array: checked now, or when the data give its length."""
        subscript = element.subscripts[0]
        position = ir.Literal_(subscript.value, ir.Type("int", ()), subscript.span)
        fixed = ir.FixedIndex(position, element.name.id, length, subscript.span)
        problem = constants.out_of_range(fixed, {})
        if problem:
            raise PplError(problem, subscript.span, "a recurrence's first elements lie inside it")
        self.fixed_indices.append(fixed)
