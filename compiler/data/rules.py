"""Phase 3, data: the rules validated values must obey together with the model.

Data within their declared bounds, arrays of positions within the axes they
index, observations within the support of their distribution, distribution
arguments that the data make one number acceptable to it, fixed indices
within their axes, and the times of an ODE solve in order: each checked before
any fitting, with the element that breaks it and the rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler.data.elements import declaration_error, first_bad, number_text
from compiler.errors import DataError
from compiler.frontend import distributions, ir


def check_bounds(decl: ir.DataDecl, values: dict[str, Any], origin: str) -> None:
    array = values[decl.name]
    for bound, inside, word in ((decl.lower, np.greater_equal, "below lower"),
                                (decl.upper, np.less_equal, "above upper")):
        if bound is None:
            continue
        limit = ir.constant_value(bound, values)
        if bad := first_bad(array, lambda a: inside(a, limit)):
            raise declaration_error(decl, origin, f"{bad.element(decl.name)} = {bad.value} is {word}={number_text(limit)}")


def check_index_range(decl: ir.DataDecl, values: dict[str, Any], origin: str) -> None:
    if decl.index_range is None:
        return
    size = values[decl.index_range] if isinstance(decl.index_range, str) else decl.index_range
    if bad := first_bad(values[decl.name], lambda a: (a >= 0) & (a < size)):
        raise declaration_error(decl, origin,
                                f"{bad.element(decl.name)} = {bad.value} is out of range for an axis of length {size}",
                                f"indexing is 0-based: valid indices are 0..{size - 1}")


SUPPORT_RULES = {
    distributions.BOOLEAN: (lambda a: (a == 0) | (a == 1), "0 or 1"),
    distributions.NONNEGATIVE_INTEGER: (lambda a: (a >= 0) & (a == np.round(a)), "a non-negative integer"),
    distributions.POSITIVE: (lambda a: a > 0, "positive"),
    distributions.UNIT_INTERVAL: (lambda a: (a >= 0) & (a <= 1), "in [0, 1]"),
    distributions.CATEGORY: (lambda a: (a >= 0) & (a == np.round(a)), "a category 0, 1, ..."),
    distributions.INTEGER_INTERVAL: (lambda a: (a >= 0) & (a == np.round(a)), "a count 0, 1, ..."),
}


def check_support(observe: ir.Observe, values: dict[str, Any], origin: str) -> None:
    rule = _support_rule(observe.distribution.support, values)
    target = observe.value.base if isinstance(observe.value, ir.Subscript) else observe.value
    if rule is None or not isinstance(target, ir.Variable) or target.name not in values:
        return
    inside, words = rule
    if bad := first_bad(values[target.name], inside):
        raise DataError(
            f"{bad.element(target.name)} = {bad.value} is outside the support of "
            f"{observe.distribution.name}: it must be {words} (in {origin})", observe.distribution.span)


def _support_rule(support: ir.Support, values: dict[str, Any]):
    """(test, words) for the support, or None where the data cannot be checked before the fit
    (an interval whose bounds vary per element or depend on transformed data)."""
    if support.kind != distributions.INTERVAL:
        return SUPPORT_RULES.get(support.kind)
    try:
        low = ir.constant_value(support.low, values)
        high = None if support.high is None else ir.constant_value(support.high, values)
    except ir.NotConstant:
        return None
    if high is None:
        return (lambda a: a >= low), f"at least {number_text(low)}"
    return (lambda a: (a >= low) & (a <= high)), f"in [{number_text(low)}, {number_text(high)}]"


def check_scalar_arguments(use: ir.DistributionUse, values: dict[str, Any], origin: str) -> None:
    """A distribution argument that the data make one number must be one it accepts."""
    row = distributions.TABLE[use.name]
    for name, expr in use.arguments:
        try:
            problem = row.rejects(row.parameter(name), ir.constant_value(expr, values))
        except ir.NotConstant:
            continue
        if problem:
            raise DataError(f"with this data, {problem} (in {origin})", expr.span,
                            "check the data this argument is computed from")


def check_fixed_index(fixed: ir.FixedIndex, values: dict[str, Any], origin: str) -> None:
    problem = fixed.out_of_range(values)
    if problem:
        length = values[fixed.length] if isinstance(fixed.length, str) else fixed.length
        raise DataError(f"with this data, {problem} (in {origin})", fixed.span,
                        f"indexing is 0-based: valid indices are 0..{length - 1}")


def check_solver_times(solve: ir.Solve, values: dict[str, Any], origin: str) -> None:
    """`solve(dz, initial, start, times)` reports the state at increasing times after the start."""
    name = solve.times.name
    times = [ir.constant_value(solve.start, values), *np.asarray(values[name], dtype=float).reshape(-1)]
    late = next((k for k in range(1, len(times)) if not times[k] > times[k - 1]), None)
    if late is not None:
        before = f"{name}[{late - 2}] = {times[late - 1]:g}" if late > 1 else f"the start time {times[0]:g}"
        raise DataError(f"with this data, {name}[{late - 1}] = {times[late]:g} does not come after {before} "
                        f"(in {origin})", solve.times.span,
                        "solve needs the times increasing, each after the start time: sort them, and drop repeats")
