"""Phase 3, codegen: Normal observations whose mean is linear in data, scored from per-group statistics.

`observe y[i] ~ Normal(a[g[i]] + b * x[i] + c, s)`, with `a` a vector indexed by an index array
`g`, `b` and `c` scalars and `s` one scale for every row, has a log-likelihood that is a quadratic
in (a, b, c) whose coefficients are sums over the rows: per group the row count and the sums of y
and of each x; over all rows the sums of y², x y and x x'. `collapsed_model` scores such a
statement from those statistics (`runtime.linear_normal_log_likelihood`), computed once when the
fit starts, so an evaluation costs O(groups) where row by row it cost O(rows), its backward pass
a scatter-add over every row. Plain functions of `ir` values: no torch here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from compiler.backend import emitter as em
from compiler.backend.emitter import Code
from compiler.backend.expressions import Layout, expression
from compiler.frontend import ir
from compiler.frontend.analysis import collapsible, data_array, observed_array


@dataclass(frozen=True)
class LinearMean:
    """The mean as `groups[index[i]] + sum of coefficient * feature[i] + sum of offsets`."""

    groups: ir.Expr  # a whole vector, one element per group
    index: str  # the index array (data) picking each row's group
    features: tuple[tuple[ir.Expr, bool, str], ...]  # (coefficient, negated, data array)
    offsets: tuple[tuple[ir.Expr, bool], ...]  # (scalar, negated)


def linear_mean(observe: ir.Observe) -> LinearMean | None:
    """The linear form of a Normal observe statement's mean, where it has one (module docstring)."""
    arguments = dict(observe.distribution.arguments)
    if (observe.distribution.name != "Normal" or observe.distribution.restriction is not None
            or len(observe.plates) != 1 or not _row_of_data(observe.value, "real") or not _whole_scalar(arguments["scale"])):
        return None
    groups, features, offsets = [], [], []
    for term, negated in _terms(arguments["loc"], False):
        if _whole_scalar(term):
            offsets.append((term, negated))
        elif (feature := _feature(term)) is not None:
            features.append((feature[0], negated, feature[1]))
        elif (grouped := _grouped(term)) is not None and not negated:
            groups.append(grouped)
        else:
            return None
    # Without a group term the rows' cost was already small beside the latents' (a few coefficients),
    # and --batch-size and --distributed keep splitting such a regression's rows.
    if len(groups) != 1:
        return None
    return LinearMean(*groups[0], tuple(features), tuple(offsets))


def scored_linearly(observe: ir.Observe) -> bool:
    """Scored from per-group statistics here, not already from the distribution table's."""
    return not collapsible(observe) and linear_mean(observe) is not None


def summarised(observe: ir.Observe) -> bool:
    """Scored from statistics of all its rows, by either path: never row by row, so never split into batches."""
    return collapsible(observe) or linear_mean(observe) is not None


def statistics_call(observe: ir.Observe, data: Callable[[str], Code]) -> Code:
    """`rt.linear_normal_statistics(y, g, [x, ...])`, reading the arrays through `data(name)`."""
    mean = linear_mean(observe)
    features = em.Bracketed(None, "[", tuple(data(name) for _, _, name in mean.features), "]")
    return em.call(em.runtime("linear_normal_statistics"), data(observed_array(observe)),
                   data(mean.index), features)


def log_likelihood_call(observe: ir.Observe, layout: Layout, statistics: Code) -> Code:
    """`rt.linear_normal_log_likelihood(groups, offset, [coefficients], scale, statistics)`."""
    mean, layout = linear_mean(observe), layout.within(())
    groups = expression(mean.groups, layout)
    offset: Code = em.number(0.0)
    for k, (term, negated) in enumerate(mean.offsets):
        part = _operand(expression(term, layout))
        offset = _signed(part, negated) if k == 0 else em.chain(offset, "-" if negated else "+", part)
    coefficients = em.Bracketed(None, "[", tuple(_signed(_operand(expression(c, layout)), negated)
                                                 for c, negated, _ in mean.features), "]")
    scale = expression(dict(observe.distribution.arguments)["scale"], layout)
    return em.call(em.runtime("linear_normal_log_likelihood"), groups, offset, coefficients, scale, statistics)


def _terms(e: ir.Expr, negated: bool):
    """The summands of `e` with their signs, through `+`, `-` and unary minus."""
    match e:
        case ir.Binary(operator="+", left=left, right=right):
            yield from _terms(left, negated)
            yield from _terms(right, negated)
        case ir.Binary(operator="-", left=left, right=right):
            yield from _terms(left, negated)
            yield from _terms(right, not negated)
        case ir.Negate(operand=operand):
            yield from _terms(operand, not negated)
        case _:
            yield e, negated


def _feature(term: ir.Expr) -> tuple[ir.Expr, str] | None:
    """(coefficient, data array) of `b * x[i]` or `x[i] * b`, x real or int."""
    if not (isinstance(term, ir.Binary) and term.operator == "*"):
        return None
    for coefficient, feature in ((term.left, term.right), (term.right, term.left)):
        if (_whole_scalar(coefficient) and coefficient.type.base == "real"
                and (_row_of_data(feature, "real") or _row_of_data(feature, "int"))):
            return coefficient, data_array(feature)
    return None


def _grouped(term: ir.Expr) -> tuple[ir.Expr, str] | None:
    """(vector, index array) of `a[g[i]]` (or `a[g]`, a whole index array), with `a` a whole real vector."""
    if not (isinstance(term, ir.Subscript) and not term.aligned and len(term.subscripts) == 1):
        return None
    vector, index = term.base, term.subscripts[0]
    if (isinstance(vector, ir.Variable) and vector.type.base == "real" and vector.type.rank == 1
            and not vector.type.batched and _row_of_data(index, "int")):
        return vector, data_array(index)
    return None


def _row_of_data(e: ir.Expr, base: str) -> bool:
    """`x[i]` or a whole `x`: a one-dimensional data array, one element per row of the statement's plate."""
    if data_array(e) is None or e.type.base != base:
        return False
    return e.base.type.rank == 1 and not e.type.shape if isinstance(e, ir.Subscript) else e.type.rank == 1


def _whole_scalar(e: ir.Expr) -> bool:
    return not e.type.batched and not e.type.shape


def _operand(code: Code) -> Code:
    return em.parenthesised(code) if isinstance(code, (em.Chain, em.Joined)) else code


def _signed(code: Code, negated: bool) -> Code:
    return em.joined("-", _operand(code)) if negated else code
