"""Phase 3, codegen (the emitter): Python source built from values, laid out within the line limit.

Codegen never scans the text it emits. Every piece of code is a `Code` value that
records what it needs: the imports and runtime helpers it calls, the names it
reads, the `pyro.param` names it creates. Statements add the names they bind. So
the imports of a module, the `name = data["name"]` bindings of a function and the
guide parameters of a factor are read from these records.

Rendering lays a statement out on one line where it fits within `LINE_LIMIT`,
else breaks the outermost call (or subscript, or bracket) it can, one argument a
line, and a long sum before its operators; only ever inside brackets, where
Python allows a line break.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

LINE_LIMIT = 100
INDENT = 4

# What each recorded import stands for, in the order isort writes them; `rt` is first-party.
IMPORTS = {
    "pyro": "import pyro",
    "dist": "import pyro.distributions as dist",
    "torch": "import torch",
    "constraints": "from pyro.distributions import constraints",
    "Vindex": "from pyro.ops.indexing import Vindex",
}
FIRST_PARTY_IMPORTS = {"rt": "from compiler.backend import runtime as rt"}


@dataclass(frozen=True)
class Needs:
    """What a piece of code uses from outside itself, and the guide parameters it creates."""

    imports: frozenset[str] = frozenset()  # keys of IMPORTS / FIRST_PARTY_IMPORTS
    helpers: frozenset[str] = frozenset()  # functions of compiler.backend.runtime
    names: frozenset[str] = frozenset()  # free names read: data, locals, index variables
    parameters: tuple[str, ...] = ()  # pyro.param names, in the order they are created

    def __or__(self, other: Needs) -> Needs:
        return union((self, other))


NOTHING = Needs()


def union(needs: Iterable[Needs]) -> Needs:
    """Everything any of them needs (collected in place: a function may hold thousands of statements)."""
    imports: set[str] = set()
    helpers: set[str] = set()
    names: set[str] = set()
    parameters: dict[str, None] = {}
    for need in needs:
        imports |= need.imports
        helpers |= need.helpers
        names |= need.names
        parameters.update(dict.fromkeys(need.parameters))
    return Needs(frozenset(imports), frozenset(helpers), frozenset(names), tuple(parameters))


# Expressions --------------------------------------------------------------------


class Code:
    """A piece of an expression: its one-line text, what it needs, and how it breaks."""

    def flat(self) -> str:
        raise NotImplementedError

    @property
    def needs(self) -> Needs:
        raise NotImplementedError

    def broken(self, column: int, indent: int, reserve: int) -> list[str]:
        """Lines with breaks inside (the first continues the current line; the others carry
        their indentation); only called when the flat text does not fit."""
        return [self.flat()]

    def __str__(self) -> str:
        return self.flat()


@dataclass(frozen=True)
class Atom(Code):
    """Text that never breaks: a name, a number, a string literal, an operator."""

    text: str
    own_needs: Needs = NOTHING

    def flat(self) -> str:
        return self.text

    @property
    def needs(self) -> Needs:
        return self.own_needs


@dataclass(frozen=True)
class Joined(Code):
    """Pieces written one after another (`-x`, `Vindex(a)[..., i]`); breaks only inside them."""

    parts: tuple[Code, ...]

    def flat(self) -> str:
        return "".join(p.flat() for p in self.parts)

    @cached_property
    def needs(self) -> Needs:
        return union(p.needs for p in self.parts)

    def broken(self, column: int, indent: int, reserve: int) -> list[str]:
        lines = [""]
        for k, part in enumerate(self.parts):
            after = sum(len(p.flat()) for p in self.parts[k + 1:]) + reserve
            start = column + len(lines[0]) if len(lines) == 1 else len(lines[-1])
            rendered = render(part, start, indent, after)
            lines[-1] += rendered[0]
            lines += rendered[1:]
        return lines


@dataclass(frozen=True)
class Bracketed(Code):
    """`head(a, b)`, `head[a, b]`, `{a, b}` or `(a)`: broken, one item a line."""

    head: Code | None
    opening: str
    items: tuple[Code, ...]
    closing: str
    trailing_comma: bool = True  # when broken (never in a subscript: `x[i,]` is a tuple index)

    def flat(self) -> str:
        head = self.head.flat() if self.head is not None else ""
        return f"{head}{self.opening}{', '.join(i.flat() for i in self.items)}{self.closing}"

    @cached_property
    def needs(self) -> Needs:
        return union(([self.head.needs] if self.head is not None else []) + [i.needs for i in self.items])

    def broken(self, column: int, indent: int, reserve: int) -> list[str]:
        if not self.items:
            return [self.flat()]
        head = render(self.head, column, indent, len(self.opening)) if self.head is not None else [""]
        lines = head[:-1] + [head[-1] + self.opening]
        inner = indent + INDENT
        for k, item in enumerate(self.items):
            last = k == len(self.items) - 1
            comma = "," if self.trailing_comma or not last else ""
            rendered = render(item, inner, inner, len(comma))
            lines += [" " * inner + rendered[0]] + rendered[1:]
            lines[-1] += comma
        return lines + [" " * indent + self.closing]


@dataclass(frozen=True)
class Chain(Code):
    """`a + b - c` (operators of one precedence): broken before each operator."""

    first: Code
    rest: tuple[tuple[str, Code], ...]

    def flat(self) -> str:
        return self.first.flat() + "".join(f" {op} {operand.flat()}" for op, operand in self.rest)

    @cached_property
    def needs(self) -> Needs:
        return union([self.first.needs] + [operand.needs for _, operand in self.rest])

    def broken(self, column: int, indent: int, reserve: int) -> list[str]:
        # Operands line up under the first where it starts a line; else they hang one indent in.
        hanging = indent if column == indent else indent + INDENT
        lines = render(self.first, column, hanging, 0)
        for k, (op, operand) in enumerate(self.rest):
            after = reserve if k == len(self.rest) - 1 else 0
            rendered = render(operand, hanging + len(op) + 1, hanging, after)
            lines += [" " * hanging + f"{op} {rendered[0]}"] + rendered[1:]
        return lines


def render(code: Code, column: int, indent: int, reserve: int) -> list[str]:
    """`code` starting at `column` of a line indented `indent`, with `reserve` characters to
    follow it on its last line: flat where that fits, else broken."""
    flat = code.flat()
    if column + len(flat) + reserve <= LINE_LIMIT:
        return [flat]
    return code.broken(column, indent, reserve)


# Constructors ---------------------------------------------------------------------


def name(text: str) -> Atom:
    """A name the code reads (a data name, a local, an index variable)."""
    return Atom(text, Needs(names=frozenset({text})))


def text(value: str) -> Atom:
    """Fixed text that needs nothing: keywords, `...`, `None`."""
    return Atom(value)


def number(value: int | float) -> Atom:
    return Atom(repr(value))


def string(value: str) -> Atom:
    """A string literal; `value` is a checked identifier (a site, plate or parameter name)."""
    return Atom(f'"{value}"')


def parameter(value: str) -> Atom:
    """The name of a `pyro.param` this code creates, recorded as a guide parameter."""
    return Atom(f'"{value}"', Needs(parameters=(value,)))


def imported(module: str, attribute: str | None = None) -> Atom:
    """`module` or `module.attribute`, where `module` is one of the imports the emitter knows."""
    assert module in IMPORTS or module in FIRST_PARTY_IMPORTS, module
    return Atom(module if attribute is None else f"{module}.{attribute}", Needs(imports=frozenset({module})))


def runtime(helper: str) -> Atom:
    """`rt.helper`: a function of compiler.backend.runtime."""
    return Atom(f"rt.{helper}", Needs(imports=frozenset({"rt"}), helpers=frozenset({helper})))


def keyword(key: str, value: Code) -> Joined:
    return Joined((Atom(f"{key}="), value))


def call(head: Code, *arguments: Code) -> Bracketed:
    return Bracketed(head, "(", tuple(arguments), ")")


def subscript(base: Code, *indices: Code) -> Bracketed:
    return Bracketed(base, "[", tuple(indices), "]", trailing_comma=False)


def parenthesised(code: Code) -> Bracketed:
    return Bracketed(None, "(", (code,), ")", trailing_comma=False)


def joined(*parts: Code | str) -> Joined:
    return Joined(tuple(text(p) if isinstance(p, str) else p for p in parts))


def chain(left: Code, operator: str, right: Code) -> Chain:
    """`left operator right`, extending `left` where it is a chain of the same operators' precedence."""
    if isinstance(left, Chain) and _same_level(left.rest[-1][0], operator):
        return Chain(left.first, left.rest + ((operator, right),))
    return Chain(left, ((operator, right),))


def _same_level(a: str, b: str) -> bool:
    levels = ({"+", "-"}, {"*", "/", "@"})
    return a == b or any(a in level and b in level for level in levels)


# Statements ---------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """An expression statement, or fixed text such as `pass`."""

    code: Code

    @property
    def needs(self) -> Needs:
        return self.code.needs


@dataclass(frozen=True)
class Assign:
    target: str
    value: Code

    @property
    def needs(self) -> Needs:
        return self.value.needs


@dataclass(frozen=True)
class With:
    managers: tuple[Code, ...]
    body: tuple[Statement, ...]

    @property
    def needs(self) -> Needs:
        return union([m.needs for m in self.managers] + [s.needs for s in self.body])


@dataclass(frozen=True)
class Return:
    value: Code

    @property
    def needs(self) -> Needs:
        return self.value.needs


@dataclass(frozen=True)
class Def:
    """A function defined inside a generated function (an ODE's derivative): it reads the
    enclosing function's names when it is called."""

    function: Function

    @property
    def needs(self) -> Needs:
        inner = self.function.needs
        own = set(self.function.parameters) | bound(self.function.body)
        return Needs(inner.imports, inner.helpers, inner.names - own, inner.parameters)


Statement = Line | Assign | With | Return | Def


def bound(statements: Iterable[Statement]) -> set[str]:
    """The names the statements assign, inside blocks too."""
    names: set[str] = set()
    for statement in statements:
        if isinstance(statement, Assign):
            names.add(statement.target)
        elif isinstance(statement, Def):
            names.add(statement.function.name)
        elif isinstance(statement, With):
            names |= bound(statement.body)
    return names


def free_names(statements: Sequence[Statement]) -> set[str]:
    """Names the statements read and do not assign themselves."""
    return set(union(s.needs for s in statements).names) - bound(statements)


@dataclass(frozen=True)
class Function:
    name: str
    parameters: tuple[str, ...]
    docstring: str | None
    body: tuple[Statement, ...]

    @property
    def needs(self) -> Needs:
        return union(s.needs for s in self.body)


@dataclass(frozen=True)
class Module:
    docstring: str
    constants: tuple[tuple[str, Assign], ...]  # (comment, assignment)
    functions: tuple[Function, ...]

    @property
    def needs(self) -> Needs:
        return union([f.needs for f in self.functions] + [a.needs for _, a in self.constants])

    def imports(self) -> list[str]:
        """The import lines the module's code needs, grouped and ordered as isort does."""
        used = self.needs.imports
        third_party = [line for key, line in IMPORTS.items() if key in used]
        first_party = [line for key, line in FIRST_PARTY_IMPORTS.items() if key in used]
        return third_party + ([""] if third_party and first_party else []) + first_party


@dataclass
class Rendered:
    """A module's source, and the name each line of an assignment assigns (1-based line numbers)."""

    lines: list[str] = field(default_factory=list)
    assigned: dict[int, str] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_module(module: Module) -> Rendered:
    out = Rendered()
    out.lines += _docstring(module.docstring, 0) + [""]
    imports = module.imports()
    if imports:
        out.lines += imports + [""]
    for comment, constant in module.constants:
        out.lines.append(f"# {comment}")
        _statement(constant, 0, out)
    for function in module.functions:
        while out.lines[-1] == "":
            out.lines.pop()
        out.lines += ["", ""]
        _function(function, 0, out)
    return out


def _function(function: Function, indent: int, out: Rendered) -> None:
    out.lines.append(f"{' ' * indent}def {function.name}({', '.join(function.parameters)}):")
    if function.docstring:
        out.lines += _docstring(function.docstring, indent + INDENT)
    for statement in function.body:
        _statement(statement, indent + INDENT, out)


def _statement(statement: Statement, indent: int, out: Rendered) -> None:
    pad = " " * indent
    match statement:
        case Line(code=code):
            out.lines += _value(code, indent, pad)
        case Return(value=value):
            out.lines += _value(value, indent, pad + "return ")
        case Assign(target=target, value=value):
            start = len(out.lines) + 1
            out.lines += _value(value, indent, f"{pad}{target} = ")
            out.assigned.update({line: target for line in range(start, len(out.lines) + 1)})
        case Def(function=function):
            _function(function, indent, out)
        case With(managers=managers, body=body):
            out.lines.append(f"{pad}with {', '.join(m.flat() for m in managers)}:")
            for inner in body:
                _statement(inner, indent + INDENT, out)


def _value(code: Code, indent: int, prefix: str) -> list[str]:
    """`prefix` then `code`; a chain too long for the line is put in brackets, where it may break."""
    if isinstance(code, Chain) and len(prefix) + len(code.flat()) > LINE_LIMIT:
        code = parenthesised(code)
    rendered = render(code, len(prefix), indent, 0)
    return [prefix + rendered[0]] + rendered[1:]


def _docstring(text_: str, indent: int) -> list[str]:
    pad = " " * indent
    if "\n" not in text_ and indent + len(text_) + 6 <= LINE_LIMIT:
        return [f'{pad}"""{text_}"""']
    paragraphs = text_.split("\n\n")
    lines = []
    for paragraph in paragraphs:
        lines += textwrap.wrap(paragraph, LINE_LIMIT - indent - 3, break_long_words=False) + [""]
    lines = lines[:-1]
    first, *rest = lines
    return [f'{pad}"""{first}'] + [f"{pad}{line}" if line else "" for line in rest] + [f'{pad}"""']
