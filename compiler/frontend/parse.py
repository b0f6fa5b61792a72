"""Phase 1, parse: spec text -> `syntax.Program`.

The grammar (`grammar/ppl.lark`) is loaded once; a lark `Transformer` turns
the parse tree into typed nodes with spans, and lark's exceptions become
`PplError`s at this boundary so no later phase sees lark.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import lark
from lark import Token, Transformer, v_args

from compiler.errors import PplError, Source, Span, did_you_mean
from compiler.frontend import syntax

# Limits that turn absurd input into a clean error instead of a blown Python
# stack: the phases after parsing walk trees recursively.
MAX_NESTING = 100
MAX_LINE_LENGTH = 10_000
# Compile time grows linearly with the statements (bench/compile_time.py); these bound
# it, checked on the text before lark reads it.
MAX_STATEMENTS = 50_000
MAX_CHARACTERS = 2_000_000
# Integers are sizes, indices and counts: torch holds them in int64.
MAX_INTEGER = 2**63 - 1

KEYWORDS = ("data", "latent", "param", "let", "observe", "factor", "ode", "fun", "int", "real")

TOKEN_DESCRIPTIONS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "_NL": "end of line",
    "$END": "end of file",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "TILDE": "'~'",
    "EQUAL": "'='",
    "COLON": "':'",
    "COMMA": "','",
    "LESSTHAN": "'<'",
    "MORETHAN": "'>'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "CIRCUMFLEX": "'^'",
    "AT": "'@'",
    "QMARK": "'?'",
    "EQ": "'=='",
    "NE": "'!='",
    "LE": "'<='",
    "GE": "'>='",
    "FACTOR": "'factor'",
    "ODE": "'ode'",
    "FUN": "'fun'",
    "DATA": "'data'",
    "LATENT": "'latent'",
    "PARAM": "'param'",
    "LET": "'let'",
    "OBSERVE": "'observe'",
    "IN": "'in'",
    "BASE_TYPE": "a type ('int' or 'real')",
}


def grammar_text() -> str:
    """The grammar from an installed wheel, else from the checkout's grammar/."""
    packaged = resources.files("compiler").joinpath("grammar/ppl.lark")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent.parent / "grammar" / "ppl.lark").read_text(
        encoding="utf-8"
    )


@functools.cache
def parser() -> lark.Lark:
    # Built in each process (tens of milliseconds), never loaded from a file: lark's cache is a
    # pickle, and unpickling a file that someone else could write runs their code.
    return lark.Lark(grammar_text(), start="program", parser="lalr", propagate_positions=True,
                     maybe_placeholders=False)


def span_of(meta_or_token) -> Span:
    return Span(
        meta_or_token.line, meta_or_token.column,
        meta_or_token.end_line, meta_or_token.end_column,
    )


@v_args(meta=True)
class ToSyntax(Transformer):
    """Builds `syntax` nodes; one method per grammar rule or alias."""

    def program(self, meta, statements):
        return syntax.Program(tuple(statements))

    def data_decl(self, meta, children):
        name, type_ = children
        return syntax.DataDecl(self._name(name), type_, span_of(meta))

    def latent_decl(self, meta, children):
        restriction = _restriction_of(children)
        name, *rest = children
        call = rest.pop() if rest and isinstance(rest[-1], syntax.Call) else None
        vector_type = next((c for c in rest if isinstance(c, syntax.VectorType)), None)
        subscripts = [c for c in rest if not isinstance(c, syntax.VectorType)]
        return syntax.LatentDecl(self._name(name), self._subs(subscripts), call, span_of(meta), vector_type,
                                 restriction)

    def vector_type(self, meta, children):
        constraint, size = children
        return syntax.VectorType(str(constraint), size, span_of(meta))

    def param_decl(self, meta, children):
        name, type_, initial = children
        return syntax.ParamDecl(self._name(name), type_, initial, span_of(meta))

    def let_decl(self, meta, children):
        name, *subscripts, value = children
        return syntax.LetDecl(self._name(name), self._subs(subscripts), value, span_of(meta))

    def step_range(self, meta, children):
        variable, start, stop = children
        return _Part("subscripts", (syntax.StepRange(self._name(variable), start, stop, span_of(meta)),),
                     span_of(meta))

    def observe_stmt(self, meta, children):
        restriction = _restriction_of(children)
        name, *subscripts, call = children
        return syntax.Observe(self._name(name), self._subs(subscripts), call, span_of(meta), restriction)

    def restriction(self, meta, children):
        word, lower, upper = children
        if str(word) not in syntax.RESTRICTIONS:
            raise PplError(f"unexpected '{word}[...]' after the distribution", span_of(word),
                           did_you_mean(str(word), list(syntax.RESTRICTIONS))
                           or "write T[lo, hi] to truncate it, or censored[lo, hi] for censored observations")
        return syntax.Restriction(str(word), lower.items[0] if lower.items else None,
                                  upper.items[0] if upper.items else None, span_of(meta))

    def limit(self, meta, children):
        return _Part("limit", tuple(children))

    def factor_stmt(self, meta, children):
        name, *subscripts, value = children
        return syntax.Factor(self._name(name), self._subs(subscripts), value, span_of(meta))

    def ode_stmt(self, meta, children):
        name, time, state, value = children
        return syntax.Ode(self._name(name), self._name(time), self._name(state), value, span_of(meta))

    def fun_decl(self, meta, children):
        name, *parameters, value = children
        return syntax.FunctionDecl(self._name(name), tuple(self._name(p) for p in parameters), value, span_of(meta))

    def type(self, meta, children):
        base, *rest = children
        parts = {part.kind: part.items for part in rest}
        return syntax.Type(str(base), parts.get("bounds", ()), parts.get("dims", ()), span_of(meta))

    def index_type(self, meta, children):
        levels, *rest = children
        return syntax.IndexType(levels, rest[0].items if rest else (), span_of(meta))

    def bounds(self, meta, children):
        return _Part("bounds", tuple(children))

    def bound(self, meta, children):
        kind, value = children
        return syntax.Bound(str(kind), value, span_of(meta))

    def dims(self, meta, children):
        return _Part("dims", tuple(children))

    def subscripts(self, meta, children):
        return _Part("subscripts", tuple(children), span_of(meta))

    def add(self, meta, c):
        return syntax.Binary("+", c[0], c[1], span_of(meta))

    def sub(self, meta, c):
        return syntax.Binary("-", c[0], c[1], span_of(meta))

    def mul(self, meta, c):
        return syntax.Binary("*", c[0], c[1], span_of(meta))

    def div(self, meta, c):
        return syntax.Binary("/", c[0], c[1], span_of(meta))

    def matmul(self, meta, c):
        return syntax.Binary("@", c[0], c[1], span_of(meta))

    def pow(self, meta, c):
        return syntax.Binary("^", c[0], c[1], span_of(meta))

    def compare(self, meta, c):
        left, operator, right = c
        return syntax.Binary(operator, left, right, span_of(meta))

    def comparator(self, meta, c):
        return str(c[0])

    def conditional(self, meta, c):
        return syntax.Conditional(c[0], c[1], c[2], span_of(meta))

    def slice(self, meta, c):
        return syntax.Slice(c[0], c[1], span_of(meta))

    def slice_from(self, meta, c):
        return syntax.Slice(c[0], None, span_of(meta))

    def slice_to(self, meta, c):
        return syntax.Slice(None, c[0], span_of(meta))

    def vector(self, meta, c):
        return syntax.Vector(tuple(c), span_of(meta))

    def neg(self, meta, c):
        return syntax.Negate(c[0], span_of(meta))

    def index(self, meta, c):
        base, subscripts = c
        return syntax.Index(base, subscripts.items, span_of(meta))

    def number(self, meta, c):
        (token,) = c
        return syntax.Number(number_value(str(token), span_of(token)), span_of(token))

    def name(self, meta, c):
        return self._name(c[0])

    def call(self, meta, children):
        function, *arguments = children
        arguments = tuple(
            a if isinstance(a, syntax.Argument) else syntax.Argument(None, a, a.span)
            for a in arguments
        )
        return syntax.Call(str(function), arguments, span_of(meta), span_of(function))

    def keyword_argument(self, meta, children):
        keyword, value = children
        return syntax.Argument(str(keyword), value, span_of(meta))

    @staticmethod
    def _name(token: Token) -> syntax.Name:
        return syntax.Name(str(token), span_of(token))

    @staticmethod
    def _subs(subscripts: list) -> tuple[syntax.Expr, ...]:
        return subscripts[0].items if subscripts else ()


@dataclass(frozen=True)
class _Part:
    """A transient wrapper telling `type` and the statements which optional part they got."""

    kind: str
    items: tuple
    span: Span | None = None


def _restriction_of(children: list) -> syntax.Restriction | None:
    """Take a statement's trailing `T[...]` or `censored[...]` off its children, if it has one."""
    return children.pop() if isinstance(children[-1], syntax.Restriction) else None


def number_value(text: str, span: Span) -> int | float:
    """The value of a NUMBER token; one that an int64 or a float64 cannot hold is a spec
    error (a float would silently become inf, or 0 where a positive number was meant)."""
    if text.isdigit():
        # Compared as text first: int() refuses numbers of more than 4,300 digits.
        digits = text.lstrip("0") or "0"
        if len(digits) > len(str(MAX_INTEGER)) or int(digits) > MAX_INTEGER:
            raise PplError(f"the integer {_abbreviated(text)} is out of range", span,
                           f"integers are at most {MAX_INTEGER:,}; write a real such as 1e20 for a large value")
        return int(digits)
    value = float(text)
    if math.isinf(value):
        raise PplError(f"the number {_abbreviated(text)} is out of range", span,
                       f"reals are at most {sys.float_info.max:.4g}; rescale the quantity")
    mantissa = text.lower().partition("e")[0]
    if value == 0 and mantissa.strip("0.") != "":
        raise PplError(f"the number {_abbreviated(text)} is too small to tell from 0", span,
                       f"the smallest positive real is about {math.ulp(0.0):.2g}; write 0 if zero is meant, "
                       "else rescale the quantity")
    return value


def _abbreviated(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}…{text[-6:]} ({len(text):,} characters)"


def parse_program(source: Source) -> syntax.Program:
    """Parse a whole spec; raises `PplError` for any syntax error."""
    _reject_oversized(source)
    with _collector_paused():
        try:
            tree = parser().parse(source.text + "\n")
        except lark.UnexpectedInput as exc:
            raise _syntax_error(exc, source) from None
        _reject_deep_trees(tree)
        try:
            return ToSyntax().transform(tree)
        except lark.exceptions.VisitError as exc:  # lark wraps what a Transformer method raises
            if isinstance(exc.orig_exc, PplError):
                raise exc.orig_exc from None
            raise


@contextlib.contextmanager
def _collector_paused():
    """The parse tree and the syntax nodes hold no reference cycles, so Python's cycle
    collector, which their many allocations set off again and again, finds nothing here:
    pausing it saves a third of parsing a spec of 10,000 statements."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _reject_oversized(source: Source) -> None:
    """A line too long, too many statements (lines with more than a comment) or too many characters."""
    statements = characters = 0
    for number, line in enumerate(source.text.split("\n"), start=1):
        span = Span(number, 1, number, 2)
        if len(line) > MAX_LINE_LENGTH:
            raise PplError(f"line {number} is {len(line):,} characters long (at most {MAX_LINE_LENGTH:,})", span,
                           "put data in the data file and split long expressions")
        characters += len(line) + 1
        if characters > MAX_CHARACTERS:
            raise PplError(f"the spec is longer than {MAX_CHARACTERS:,} characters", span,
                           "put data in the data file, and use arrays rather than a statement per element")
        statements += bool(line.partition("#")[0].strip())
        if statements > MAX_STATEMENTS:
            raise PplError(f"the spec has more than {MAX_STATEMENTS:,} statements", span,
                           "use arrays and index variables rather than a statement per element")


def _reject_deep_trees(tree: lark.Tree) -> None:
    """Walk without recursion, so later (recursive) phases never meet a tree deeper than MAX_NESTING."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            meta = node.meta
            raise PplError(f"expression nested more than {MAX_NESTING} deep",
                           Span(meta.line, meta.column, meta.line, meta.column + 1),
                           "split the expression with `let` statements")
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, lark.Tree))


def _syntax_error(exc: lark.UnexpectedInput, source: Source) -> PplError:
    line, column = exc.line, exc.column
    if line is None or line < 1:
        line, column = _end_position(source)
    span = Span(line, column, line, column + 1)
    if isinstance(exc, lark.UnexpectedCharacters):
        char = source.line(line)[column - 1 : column] or "?"
        return PplError(
            f"unexpected character {char!r}", span, "pplc specs use only names, numbers and operators"
        )
    token = getattr(exc, "token", None)
    expected = sorted(
        {TOKEN_DESCRIPTIONS.get(t, repr(t)) for t in getattr(exc, "expected", ()) or ()}
    )
    if token is None or token.type == "$END":
        found = "end of file"
    elif token.type == "_NL":
        found = "end of line"
    else:
        found = repr(str(token)[:40])
    hint = f"expected {', '.join(expected[:6])}" if expected else None
    if token is not None and str(token) in KEYWORDS and token.type != "NAME":
        hint = f"'{token}' is a keyword and cannot be used as a name"
    return PplError(f"syntax error: unexpected {found}", span, hint)


def _end_position(source: Source) -> tuple[int, int]:
    lines = source.text.splitlines() or [""]
    return len(lines), len(lines[-1]) + 1
