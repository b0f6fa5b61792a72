"""The surface syntax as typed, immutable nodes with source spans.

`parse` builds these from the lark tree; `check` consumes them. Nothing here
knows about shapes, plates or Pyro.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from compiler.errors import Span


@dataclass(frozen=True)
class Number:
    value: int | float
    span: Span


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class Index:
    base: Expr
    subscripts: tuple[Expr | Slice, ...]
    span: Span


@dataclass(frozen=True)
class Argument:
    keyword: str | None
    value: Expr
    span: Span


@dataclass(frozen=True)
class Call:
    function: str
    arguments: tuple[Argument, ...]
    span: Span
    function_span: Span


@dataclass(frozen=True)
class Slice:
    """`start:stop` in a subscript: positions start..stop-1; a missing end is None."""

    start: Expr | None
    stop: Expr | None
    span: Span


BinaryOperator = Literal["+", "-", "*", "/", "^", "@", "==", "!=", "<", "<=", ">", ">="]
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class Binary:
    operator: BinaryOperator
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True)
class Negate:
    operand: Expr
    span: Span


@dataclass(frozen=True)
class Conditional:
    """`condition ? then : otherwise`, elementwise."""

    condition: Expr
    then: Expr
    otherwise: Expr
    span: Span


@dataclass(frozen=True)
class Vector:
    """`[a, b, ...]`: a vector of scalars."""

    elements: tuple[Expr, ...]
    span: Span


Expr = Union[Number, Name, Index, Call, Binary, Negate, Conditional, Vector]


@dataclass(frozen=True)
class Bound:
    kind: str  # "lower" or "upper"; check rejects anything else
    value: Expr
    span: Span


@dataclass(frozen=True)
class Type:
    base: Literal["int", "real"]
    bounds: tuple[Bound, ...]
    dims: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class IndexType:
    """`index[J][N]`: codes 0..J-1 of a category with `levels` (J) levels, one per element of `dims`."""

    levels: Expr
    dims: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class DataDecl:
    name: Name
    type: Type | IndexType
    span: Span


@dataclass(frozen=True)
class VectorType:
    """`ordered[K]`, `positive_ordered[K]`, `simplex[K]` or `cholesky_factor_corr[K]`: the type of a
    latent vector (or Cholesky factor) as a whole (distributions.VECTOR_TYPES)."""

    constraint: str
    size: Expr
    span: Span


RESTRICTIONS = ("T", "censored")  # the words a restriction is written with: truncated, censored


@dataclass(frozen=True)
class Restriction:
    """`T[lo, hi]` (truncation) or `censored[lo, hi]` after a distribution; a bound left out is None."""

    kind: str  # one of RESTRICTIONS
    lower: Expr | None
    upper: Expr | None
    span: Span


@dataclass(frozen=True)
class StepRange:
    """`t in start:stop` as the subscript of a let or latent: a recurrence's step over positions start..stop-1."""

    variable: Name
    start: Expr
    stop: Expr
    span: Span


@dataclass(frozen=True)
class LatentDecl:
    name: Name
    subscripts: tuple[Expr | StepRange, ...]
    distribution: Call | None  # None: no `~`, the vector type's uniform distribution (check refuses others)
    span: Span
    vector_type: VectorType | None = None
    restriction: Restriction | None = None


@dataclass(frozen=True)
class ParamDecl:
    name: Name
    type: Type
    initial: Expr
    span: Span


@dataclass(frozen=True)
class LetDecl:
    name: Name
    subscripts: tuple[Expr | StepRange, ...]
    value: Expr
    span: Span


@dataclass(frozen=True)
class Observe:
    name: Name
    subscripts: tuple[Expr, ...]
    distribution: Call
    span: Span
    restriction: Restriction | None = None


@dataclass(frozen=True)
class Factor:
    """`factor NAME[...] = EXPR`: a term added to the log joint."""

    name: Name
    subscripts: tuple[Expr, ...]
    value: Expr
    span: Span


@dataclass(frozen=True)
class Ode:
    """`ode NAME(time, state) = EXPR`: the derivative of `state` at `time`, for `solve`."""

    name: Name
    time: Name
    state: Name
    value: Expr
    span: Span


@dataclass(frozen=True)
class FunctionDecl:
    """`fun NAME(p, q, ...) = EXPR`: an expression of its parameters, put in place of each call."""

    name: Name
    parameters: tuple[Name, ...]
    value: Expr
    span: Span


Statement = Union[DataDecl, LatentDecl, ParamDecl, LetDecl, Observe, Factor, Ode, FunctionDecl]


@dataclass(frozen=True)
class Program:
    statements: tuple[Statement, ...]
