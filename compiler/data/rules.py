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

from compiler.data.elements import declaration_error, element_name, first_bad, number_text
from compiler.errors import DataError
from compiler.frontend import constants, distributions, ir
from compiler.frontend.analysis import data_array, observed_array


def check_bounds(decl: ir.DataDecl, values: dict[str, Any], origin: str) -> None:
    array = values[decl.name]
    for bound, inside, word in ((decl.lower, np.greater_equal, "below lower"),
                                (decl.upper, np.less_equal, "above upper")):
        if bound is None:
            continue
        limit = constants.constant_value(bound, values)
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


def check_codes(decl: ir.DataDecl, values: dict[str, Any], origin: str) -> None:
    """`index[J]` data given as codes hold 0..J-1."""
    if decl.levels is None:
        return
    size = values[decl.levels]
    if bad := first_bad(values[decl.name], lambda a: (a >= 0) & (a < size)):
        raise declaration_error(decl, origin, f"{bad.element(decl.name)} = {bad.value} is not a code of {decl.levels} "
                                f"= {size} levels",
                                f"codes count the levels from 0: 0..{size - 1}; or give labels (text) in place of codes")


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
            f"{bad.element(target.name)} = {bad.value} is outside the support of {_described(observe.distribution)}: "
            f"it must be {words} (in {origin})", observe.distribution.span)


def _described(use: ir.DistributionUse) -> str:
    return use.name if use.restriction is None else f"the {use.restriction.kind} {use.name}"


def _support_rule(support: ir.Support, values: dict[str, Any]):
    """(test, words) for the support, or None where the data cannot be checked before the fit
    (an interval whose bounds vary per element or depend on transformed data)."""
    if support.kind != distributions.INTERVAL:
        return SUPPORT_RULES.get(support.kind)
    try:
        low = None if support.low is None else constants.constant_value(support.low, values)
        high = None if support.high is None else constants.constant_value(support.high, values)
    except constants.NotConstant:
        return None
    if high is None:
        return (lambda a: a >= low), f"at least {number_text(low)}"
    if low is None:  # a real distribution truncated from above
        return (lambda a: a <= high), f"at most {number_text(high)}"
    return (lambda a: (a >= low) & (a <= high)), f"in [{number_text(low)}, {number_text(high)}]"


def check_restricted(observe: ir.Observe, values: dict[str, Any], origin: str) -> None:
    """Observations against bounds of `T[...]` or `censored[...]` that are data arrays laid out as they
    are (`censored[, c[i]]`): a bound of one number is checked as the support is."""
    restriction = observe.distribution.restriction
    observed = observed_array(observe)
    if restriction is None or observed not in values:
        return
    array = np.asarray(values[observed], dtype=float)
    for bound, inside, word in ((restriction.lower, np.greater_equal, "below"),
                                (restriction.upper, np.less_equal, "above")):
        name = data_array(bound) if bound is not None else None
        if name is None or name not in values or np.shape(values[name]) != array.shape:
            continue
        limits = np.asarray(values[name], dtype=float)
        bad = np.argwhere(~inside(array, limits))
        if len(bad):
            index = tuple(int(i) for i in bad[0])
            raise DataError(
                f"{element_name(observed, index)} = {number_text(array[index].item())} is {word} its "
                f"{restriction.kind} bound {element_name(name, index)} = {number_text(limits[index].item())} "
                f"(in {origin})", restriction.span,
                RESTRICTED_HINTS[restriction.kind])


RESTRICTED_HINTS = {
    ir.CENSORED: "a censored value is recorded as the bound itself",
    ir.TRUNCATED: "a truncated distribution has no values beyond its bounds: check the data or the bounds",
}


def check_scalar_arguments(use: ir.DistributionUse, values: dict[str, Any], origin: str) -> None:
    """A distribution argument that the data make one number must be one it accepts."""
    row = distributions.TABLE[use.name]
    for name, expr in use.arguments:
        try:
            problem = row.rejects(row.parameter(name), constants.constant_value(expr, values))
        except constants.NotConstant:
            continue
        if problem:
            raise DataError(f"with this data, {problem} (in {origin})", expr.span,
                            "check the data this argument is computed from")


def check_restriction_bounds(use: ir.DistributionUse, values: dict[str, Any], origin: str) -> None:
    """Bounds of `T[...]` or `censored[...]` that the data make numbers must leave values between them."""
    if use.restriction is None:
        return
    positive = distributions.TABLE[use.name].support == distributions.POSITIVE
    problem = constants.restriction_unusable(use.restriction, values, positive)
    if problem:
        raise DataError(f"with this data, the bounds do not fit {use.name}: {problem} (in {origin})",
                        use.restriction.span, "check the data the bounds are computed from")


def check_fixed_index(fixed: ir.FixedIndex, values: dict[str, Any], origin: str) -> None:
    problem = constants.out_of_range(fixed, values)
    if problem:
        length = values[fixed.length] if isinstance(fixed.length, str) else fixed.length
        raise DataError(f"with this data, {problem} (in {origin})", fixed.span,
                        f"indexing is 0-based: valid indices are 0..{length - 1}")


def check_solver_times(solve: ir.Solve, values: dict[str, Any], origin: str) -> None:
    """`solve(dz, initial, start, times)` reports the state at increasing times after the start."""
    name = solve.times.name
    times = [constants.constant_value(solve.start, values), *np.asarray(values[name], dtype=float).reshape(-1)]
    late = next((k for k in range(1, len(times)) if not times[k] > times[k - 1]), None)
    if late is not None:
        before = f"{name}[{late - 2}] = {times[late - 1]:g}" if late > 1 else f"the start time {times[0]:g}"
        raise DataError(f"with this data, {name}[{late - 1}] = {times[late]:g} does not come after {before} "
                        f"(in {origin})", solve.times.span,
                        "solve needs the times increasing, each after the start time: sort them, and drop repeats")
