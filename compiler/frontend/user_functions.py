"""Phase 2, check (user functions): `fun` statements are checked and each call of one is replaced by
the function's body with the arguments put in for its parameters.

So the checker types, and the shape checker checks, every call where it is made, on the arguments
it is given, and the backend sees a plain expression: user functions need nothing after this step.
A body sees its parameters alone (as Stan's functions do): it means the same wherever it is called,
may be defined before the data it is used on, and cannot capture an index variable or a `let` of
the statement that calls it. A function calls only functions above it, so none can recurse.

The nodes of a body put in at a call carry an `InlinedSpan`: an error found in them is reported at
the call (`errors_at_call_sites`), naming the function, since the call is what gave the body its shapes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator
from dataclasses import dataclass

from compiler.errors import PplError, Span, did_you_mean
from compiler.frontend import distributions, functions, syntax
from compiler.frontend.identifiers import check_identifier
from compiler.frontend.parse import MAX_NESTING

# Calls put bodies in bodies: a function of four uses of its parameter, called in a function called
# ten deep, is 4^10 nodes. These bound what inlining may build, as the parser bounds what is written.
MAX_INLINED_NODES = 100_000  # added to the whole spec
BUILTIN_CALLS = ("solve",)  # called like functions, but not rows of the function table


@dataclass(frozen=True)
class InlinedSpan(Span):
    """Where a function's body wrote a node, and the call that put the body in."""

    call: Span
    function: str
    definition_line: int


@dataclass(frozen=True)
class _Function:
    name: str
    parameters: tuple[str, ...]
    body: syntax.Expr  # calls of functions above it already put in
    span: Span
    size: int  # of the body, in syntax nodes
    uses: dict[str, int]  # parameter -> how often the body reads it


def inline_functions(program: syntax.Program) -> syntax.Program:
    """The program without `fun` statements, each call of one replaced by its body."""
    if not any(isinstance(s, syntax.FunctionDecl) for s in program.statements):
        return program
    return _Inliner(program).run()


@contextlib.contextmanager
def errors_at_call_sites() -> Iterator[None]:
    """An error inside a body put in at a call is raised at the call, naming the function."""
    try:
        yield
    except PplError as error:
        span = error.span
        if not isinstance(span, InlinedSpan):
            raise
        moved = PplError(f"in {span.function}(...), defined on line {span.definition_line}: {error.message}",
                         span.call, error.hint)
        raise moved from None


class _Inliner:
    def __init__(self, program: syntax.Program):
        self.program = program
        self.functions: dict[str, _Function] = {}
        self.defined_later = {s.name.id: s.span for s in program.statements if isinstance(s, syntax.FunctionDecl)}
        self.budget = MAX_INLINED_NODES

    def run(self) -> syntax.Program:
        self._refuse_shared_names()
        statements = []
        for statement in self.program.statements:
            if isinstance(statement, syntax.FunctionDecl):
                self._define(statement)
            else:
                statements.append(self._rebuilt(statement, parameters=None))
        return syntax.Program(tuple(statements))

    def _refuse_shared_names(self) -> None:
        """A function's name is declared once, like every other name of the spec."""
        first: dict[str, Span] = {}
        for statement in self.program.statements:
            if isinstance(statement, syntax.Observe):  # it names the data it scores, declared above
                continue
            name = statement.name
            if name.id in first and (isinstance(statement, syntax.FunctionDecl) or name.id in self.defined_later):
                raise PplError(f"'{name.id}' is already declared on line {first[name.id].line}", name.span,
                               "each name is declared once; rename one of them")
            first.setdefault(name.id, name.span)

    def _define(self, decl: syntax.FunctionDecl) -> None:
        name = decl.name
        check_identifier(name)
        if name.id in functions.TABLE or name.id in distributions.TABLE or name.id in BUILTIN_CALLS:
            what = "distribution" if name.id in distributions.TABLE else "function"
            raise PplError(f"'{name.id}' is a built-in {what}", name.span,
                           "a user function cannot replace a built-in one; choose another name")
        parameters: list[str] = []
        for parameter in decl.parameters:
            if parameter.id in parameters:
                raise PplError(f"'{parameter.id}' names two parameters of {name.id}", parameter.span,
                               "give each parameter its own name")
            parameters.append(parameter.id)
        body = self._rebuilt(decl.value, parameters=tuple(parameters), defining=name.id)
        self.functions[name.id] = _Function(name.id, tuple(parameters), body, decl.span, _size(body),
                                            {p: _uses(body, p) for p in parameters})

    # Walking the syntax ------------------------------------------------------------

    def _rebuilt(self, node, parameters: tuple[str, ...] | None, defining: str = ""):
        """`node` with each call of a user function put in; in a body (`parameters` given), names
        are checked to be parameters and calls to be of functions above it."""
        if isinstance(node, tuple):
            return tuple(self._rebuilt(item, parameters, defining) for item in node)
        if not dataclasses.is_dataclass(node) or isinstance(node, Span):
            return node
        if isinstance(node, syntax.Name) and parameters is not None:
            self._refuse_unknown_name(node, parameters, defining)
        elif isinstance(node, syntax.Name) and node.id in self.defined_later:
            raise PplError(f"'{node.id}' is a function, not a value", node.span,
                           f"call it with its arguments: {node.id}(...)")
        changes = {}
        for field in dataclasses.fields(node):
            value = getattr(node, field.name)
            rebuilt = self._rebuilt(value, parameters, defining)
            if rebuilt is not value:
                changes[field.name] = rebuilt
        node = dataclasses.replace(node, **changes) if changes else node
        if isinstance(node, syntax.Call):
            return self._call(node, defining)
        return node

    def _refuse_unknown_name(self, name: syntax.Name, parameters: tuple[str, ...], defining: str) -> None:
        if name.id in parameters:
            return
        declared = any(getattr(s, "name", None) and s.name.id == name.id for s in self.program.statements)
        written = f"fun {defining}({', '.join([*parameters, name.id])}) = ..."
        hint = (f"a function sees only its parameters: make it one, {written}, and pass it at each call" if declared
                else did_you_mean(name.id, list(parameters)) or f"make it a parameter: {written}")
        raise PplError(f"'{name.id}' is not a parameter of {defining}", name.span, hint)

    def _call(self, call: syntax.Call, defining: str) -> syntax.Expr:
        function = self.functions.get(call.function)
        if function is not None:
            return self._inlined(call, function)
        name = call.function
        if name == defining:
            raise PplError(f"{name} calls itself", call.function_span,
                           "functions cannot be recursive; for a sequence write a recurrence: let x[t in 1:T] = ...")
        if name in self.defined_later:
            raise PplError(f"{name} is used before its definition (line {self.defined_later[name].line})",
                           call.function_span, "define a function above every statement that calls it")
        if defining and name in distributions.TABLE:
            raise PplError(f"'{name}' is a distribution, but a function's body is an expression", call.function_span,
                           f"draw with `~` where {defining} is called: latent z ~ {name}(...)")
        if name not in functions.TABLE and name not in BUILTIN_CALLS and name not in distributions.TABLE:
            self._refuse_unknown_function(call, defining)
        return call

    def _refuse_unknown_function(self, call: syntax.Call, defining: str) -> None:
        """Near a user function: the hint names it; else, outside bodies, the checker's hint stands."""
        nearest = did_you_mean(call.function, [*functions.TABLE, *self.functions])
        near_user = nearest if nearest in {f"did you mean '{name}'?" for name in self.functions} else None
        if near_user or defining:
            raise PplError(f"unknown function '{call.function}'", call.function_span,
                           near_user or functions.unknown_hint(call.function))

    def _inlined(self, call: syntax.Call, function: _Function) -> syntax.Expr:
        """The body at this call: its nodes marked as put in here, its parameters replaced by the arguments."""
        for argument in call.arguments:
            if argument.keyword is not None:
                raise PplError(f"{function.name} takes no keyword arguments", argument.span,
                               f"pass them in order: {_signature(function)}")
        if len(call.arguments) != len(function.parameters):
            count = len(function.parameters)
            raise PplError(f"{function.name} takes {count} argument{'s' * (count != 1)}, got {len(call.arguments)}",
                           call.span, f"it is defined on line {function.span.line}: {_signature(function)}")
        arguments = dict(zip(function.parameters, (a.value for a in call.arguments)))
        self.budget -= function.size + sum(function.uses[p] * _size(a) for p, a in arguments.items())
        if self.budget < 0:
            raise PplError(f"putting in the bodies of the functions makes the spec more than {MAX_INLINED_NODES:,} "
                           "nodes larger", call.span, "call functions less often (arrays and index variables rather than a "
                           "statement per element) and inside other functions less deeply")
        inlined, depth = _PutIn(function, arguments, call.span).node(function.body)
        if depth > MAX_NESTING:
            raise PplError(f"with the body of {function.name} put in, this expression is nested more than "
                           f"{MAX_NESTING} deep", call.span, "split the expression with `let` statements")
        return inlined


def _signature(function: _Function) -> str:
    return f"{function.name}({', '.join(function.parameters)})"


def _children(node) -> list:
    """The syntax nodes directly inside `node`."""
    found = []
    for field in _fields(type(node)):
        value = getattr(node, field)
        for item in value if isinstance(value, tuple) else (value,):
            if dataclasses.is_dataclass(item) and not isinstance(item, Span):
                found.append(item)
    return found


@functools.cache
def _fields(node_type: type) -> tuple[str, ...]:
    return tuple(field.name for field in dataclasses.fields(node_type))


def _size(node) -> int:
    return 1 + sum(_size(child) for child in _children(node))


def _depth(node) -> int:
    """As the parser counts nesting: an argument is no level of its own."""
    return _level(node) + max((_depth(child) for child in _children(node)), default=0)


def _level(node) -> int:
    return 0 if isinstance(node, syntax.Argument) else 1


def _uses(node, parameter: str) -> int:
    if isinstance(node, syntax.Name):
        return int(node.id == parameter)
    return sum(_uses(child, parameter) for child in _children(node))


class _PutIn:
    """A body at one call: its parameters replaced by the arguments, its own spans marked as put in there."""

    def __init__(self, function: _Function, arguments: dict[str, syntax.Expr], call: Span):
        self.function = function
        self.arguments = {name: (value, _depth(value)) for name, value in arguments.items()}
        self.call = call

    def node(self, node) -> tuple[object, int]:
        """The node put in, and its depth."""
        if isinstance(node, syntax.Name) and node.id in self.arguments:
            return self.arguments[node.id]
        values, depth = [], 0
        for field in _fields(type(node)):
            value, inner = self.value(getattr(node, field))
            values.append(value)
            depth = max(depth, inner)
        return type(node)(*values), depth + _level(node)

    def value(self, value) -> tuple[object, int]:
        if isinstance(value, Span):
            return InlinedSpan(value.line, value.column, value.end_line, value.end_column, self.call,
                               self.function.name, self.function.span.line), 0
        if isinstance(value, tuple):
            items = [self.value(item) for item in value]
            return tuple(item for item, _ in items), max((depth for _, depth in items), default=0)
        if dataclasses.is_dataclass(value):
            return self.node(value)
        return value, 0
