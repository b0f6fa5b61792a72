"""The checked model: what `check` proves about a spec and `codegen` consumes.

Every expression carries its `Type` (element type, per-element value shape and
the index variables it varies over); every statement knows its plates. Sizes
(`Dim`) stay symbolic — an int data name or a literal — until data arrives.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal, Union

from compiler.errors import Span

Dim = Union[str, int]  # a literal size, an int data name `N`, or a size `N - 1` (see `size_dim`)
Shape = tuple[Dim, ...]
Role = Literal["data", "latent", "param", "let", "transformed"]


@dataclass(frozen=True)
class Type:
    base: Literal["int", "real"]
    shape: Shape
    index_variables: frozenset[str] = frozenset()

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def batched(self) -> bool:
        return bool(self.index_variables)


@dataclass(frozen=True)
class Plate:
    """One `pyro.plate`: named after the size it ranges over, at a fixed dim."""

    name: str
    size: Dim
    dim: int
    variable: str | None  # the index variable, or None for a sized or whole-array axis


# Expressions ---------------------------------------------------------------


@dataclass(frozen=True)
class Literal_:
    value: int | float
    type: Type
    span: Span


@dataclass(frozen=True)
class Variable:
    name: str
    role: Role
    type: Type
    span: Span


@dataclass(frozen=True)
class Position:
    """An index variable used as a value: 0..size-1 laid out along its plate."""

    plate: Plate
    type: Type
    span: Span


@dataclass(frozen=True)
class Subscript:
    """`base[...]`. `aligned` means the subscripts are exactly the statement's
    index variables in plate order, so the base tensor already has the layout
    the plates expect and no gather is needed."""

    base: Expr
    subscripts: tuple[Expr, ...]
    aligned: bool
    type: Type
    span: Span


@dataclass(frozen=True)
class Slice:
    """`start:stop` as a subscript: positions start..stop-1, a missing end the axis's own;
    `type.shape` is its length, which the checker knows (`N - 1`, `3`)."""

    start: Expr | None
    stop: Expr | None
    type: Type
    span: Span


@dataclass(frozen=True)
class Call:
    function: str
    arguments: tuple[Expr, ...]
    type: Type
    span: Span


@dataclass(frozen=True)
class Binary:
    operator: str
    left: Expr
    right: Expr
    type: Type
    span: Span


@dataclass(frozen=True)
class Negate:
    operand: Expr
    type: Type
    span: Span


@dataclass(frozen=True)
class Conditional:
    """`condition ? then : otherwise`, elementwise (torch.where)."""

    condition: Expr
    then: Expr
    otherwise: Expr
    type: Type
    span: Span


@dataclass(frozen=True)
class Vector:
    """`[a, b, ...]`: scalars (per element) stacked along a new last axis."""

    elements: tuple[Expr, ...]
    type: Type
    span: Span


@dataclass(frozen=True)
class Ode:
    """`ode name(time, state) = value`: d state / d time, a vector of `size`. Inside `value`,
    `time` and `state` are `let` variables local to it; codegen defines it as a function of
    the two before the first statement that solves it."""

    name: str
    time: str
    state: str
    size: int
    value: Expr
    span: Span


@dataclass(frozen=True)
class Solve:
    """`solve(ode, initial, start, times)`: the state at each of `times` (data, after `start`),
    from `initial` at `start`; `type.shape` is (len(times), ode.size)."""

    ode: Ode
    initial: Expr
    start: Expr
    times: Expr
    rtol: float
    atol: float
    max_steps: int
    type: Type
    span: Span


Expr = Union[Literal_, Variable, Position, Subscript, Slice, Call, Binary, Negate, Conditional, Vector, Solve]
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


def size_dim(name: str | None, offset: int) -> Dim:
    """The size `name + offset` as a `Dim`: a number, a name, or the text `N - 1` / `N + 2`,
    which the data check computes as a size of its own and codegen writes back as `N - 1`."""
    if name is None:
        return offset
    if offset == 0:
        return name
    return f"{name} {'-' if offset < 0 else '+'} {abs(offset)}"


def size_terms(dim: Dim) -> tuple[str | None, int]:
    """`dim` as (name or None, offset): the inverse of `size_dim`."""
    if isinstance(dim, int):
        return None, dim
    name, _, rest = dim.partition(" ")
    if not rest:
        return name, 0
    sign, _, number = rest.partition(" ")
    return name, int(number) if sign == "+" else -int(number)


def variables(expr: Expr):
    """Every name an expression reads, in order."""
    match expr:
        case Variable():
            yield expr
        case Subscript(base=base, subscripts=subscripts):
            yield from variables(base)
            for s in subscripts:
                yield from variables(s)
        case Slice(start=start, stop=stop):
            for end in (start, stop):
                if end is not None:
                    yield from variables(end)
        case Conditional(condition=condition, then=then, otherwise=otherwise):
            for part in (condition, then, otherwise):
                yield from variables(part)
        case Call(arguments=arguments):
            for a in arguments:
                yield from variables(a)
        case Binary(left=left, right=right):
            yield from variables(left)
            yield from variables(right)
        case Negate(operand=operand):
            yield from variables(operand)
        case Vector(elements=elements):
            for element in elements:
                yield from variables(element)
        case Solve(ode=ode, initial=initial, start=start, times=times):
            for part in (initial, start, times):
                yield from variables(part)
            # What the derivative reads, but for its own time and state.
            yield from (v for v in variables(ode.value) if v.name not in (ode.time, ode.state))


# Statements ----------------------------------------------------------------


@dataclass(frozen=True)
class Support:
    """The set a value lives in; `low`/`high` are data-only expressions where needed."""

    kind: str
    low: Expr | None = None
    high: Expr | None = None


TRUNCATED = "truncated"
CENSORED = "censored"


@dataclass(frozen=True)
class Restriction:
    """A distribution truncated to [lower, upper] (renormalised there), or censored at its bounds
    (a value at a bound stands for everything beyond it); a bound left out is None."""

    kind: str  # TRUNCATED or CENSORED
    lower: Expr | None
    upper: Expr | None
    span: Span

    @property
    def bounds(self) -> tuple[Expr, ...]:
        return tuple(b for b in (self.lower, self.upper) if b is not None)



@dataclass(frozen=True)
class DistributionUse:
    name: str  # a key of distributions.TABLE
    arguments: tuple[tuple[str, Expr], ...]
    event_shape: Shape
    support: Support  # of the values drawn: a truncated distribution's is its interval
    span: Span
    restriction: Restriction | None = None

    @property
    def expressions(self) -> tuple[Expr, ...]:
        """Every expression the distribution reads: its arguments, then its restriction's bounds."""
        bounds = self.restriction.bounds if self.restriction is not None else ()
        return tuple(e for _, e in self.arguments) + bounds


@dataclass(frozen=True)
class Recurrence:
    """A let or latent defined element by element: `initial` are its elements at positions 0..k-1
    (a latent's: their distributions); its value (a latent's distribution) is then the step for the
    `length` later positions at once, reading the previous element of each as the variable
    `previous` (a let's step is affine in it: x[t] = a + b * x[t - 1])."""

    initial: tuple[Expr, ...] | tuple[DistributionUse, ...]
    previous: str
    length: Dim
    states: Dim | None = None  # a chain of discrete states 0..states-1 (a hidden Markov model), summed out


@dataclass(frozen=True)
class DataDecl:
    name: str
    base: Literal["int", "real"]
    shape: Shape
    lower: Expr | None
    upper: Expr | None
    index_range: Dim | None  # the axis length its values index, when used as a gather index
    span: Span
    levels: str | None = None  # `index[J][N]`: the size J its codes 0..J-1 count, whose labels the data may give


@dataclass(frozen=True)
class Latent:
    name: str
    plates: tuple[Plate, ...]
    distribution: DistributionUse
    shape: Shape  # plate sizes, then the event shape
    enumerated: bool  # summed out by Pyro's enumeration (a chain is summed out by its own site instead)
    span: Span
    constraint: str | None = None  # a vector constrained as a whole: distributions.ORDERED, POSITIVE_ORDERED
    recurrence: Recurrence | None = None  # set where each element after the first follows from the one before

    @property
    def chain(self) -> bool:
        """A discrete chain, summed out with the observations it feeds (`analysis.chain_read`)."""
        return self.recurrence is not None and self.recurrence.states is not None


@dataclass(frozen=True)
class Observe:
    name: str
    value: Expr
    plates: tuple[Plate, ...]
    distribution: DistributionUse
    span: Span


@dataclass(frozen=True)
class Let:
    name: str
    value: Expr
    plates: tuple[Plate, ...]
    shape: Shape
    transformed_data: bool
    span: Span
    recurrence: Recurrence | None = None  # set where the value is a recurrence's step


@dataclass(frozen=True)
class Param:
    name: str
    shape: Shape
    support: Support
    initial: Expr
    span: Span



@dataclass(frozen=True)
class Factor:
    """`factor NAME[...] = value`: `value` (summed over its own axes) added to log p(x, z),
    one `pyro.factor` site; `shape` is its plates' sizes."""

    name: str
    value: Expr
    plates: tuple[Plate, ...]
    shape: Shape
    span: Span


Statement = Union[Latent, Observe, Let, Param, Factor]


@dataclass(frozen=True)
class FixedIndex:
    """A subscript with one value for the whole statement (`y[0]`, `y[N - 1]`):
    checked against its axis when the data gives the sizes."""

    position: Expr
    array: str
    length: Dim
    span: Span



@dataclass(frozen=True)
class Model:
    source_name: str
    data: tuple[DataDecl, ...]
    statements: tuple[Statement, ...]
    max_plate_nesting: int
    fixed_indices: tuple[FixedIndex, ...] = ()
    odes: tuple[Ode, ...] = ()

    @property
    def latents(self) -> tuple[Latent, ...]:
        return tuple(s for s in self.statements if isinstance(s, Latent))

    @functools.cached_property
    def chains(self) -> dict[str, Latent]:
        """The discrete chains by name: computed once, as every observe statement asks (`analysis.chain_read`)."""
        return {s.name: s for s in self.latents if s.chain}

    @property
    def guided_latents(self) -> tuple[Latent, ...]:
        """Latents with a guide factor: every one that is not summed out (enumerated, or a chain)."""
        return tuple(s for s in self.latents if not s.enumerated and not s.chain)

    @property
    def observed(self) -> tuple[Observe, ...]:
        return tuple(s for s in self.statements if isinstance(s, Observe))

    @property
    def factors(self) -> tuple[Factor, ...]:
        return tuple(s for s in self.statements if isinstance(s, Factor))

    @property
    def params(self) -> tuple[Param, ...]:
        return tuple(s for s in self.statements if isinstance(s, Param))

    @property
    def lets(self) -> tuple[Let, ...]:
        return tuple(s for s in self.statements if isinstance(s, Let))

    @property
    def index_arrays(self) -> frozenset[str]:
        """Int data whose values are positions along another array's axis."""
        return frozenset(d.name for d in self.data if d.index_range is not None)

    @property
    def labelled_sizes(self) -> dict[str, str]:
        """Size -> the first `index` data of that many levels: the axes of that size are named after it
        (a dim `county`), and carry its labels where the data give them."""
        named: dict[str, str] = {}
        for decl in self.data:
            if decl.levels is not None:
                named.setdefault(decl.levels, decl.name)
        return named

    @property
    def distribution_uses(self) -> tuple[DistributionUse, ...]:
        uses = []
        for s in self.statements:
            if isinstance(s, (Latent, Observe)):
                uses += [*(s.recurrence.initial if isinstance(s, Latent) and s.recurrence else ()), s.distribution]
        return tuple(uses)

    @property
    def site_spans(self) -> dict[str, Span]:
        """Site name -> the statement that made it, to map runtime failures back."""
        return {s.name: s.span for s in self.statements}
