"""Phase 2, check: the number a constant expression of the checked IR stands for
(`J - 1`, `1 / 0`), computed as torch computes it, and the checks of bounds, initial
values and fixed positions that need those numbers: by the checker where literals fix
them, by the data rules once data do."""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any

from compiler.frontend.ir import Binary, Expr, FixedIndex, Literal_, Negate, Param, Restriction, Type, Variable

ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv, "^": operator.pow}


class NotConstant(Exception):
    """An expression that `constant_value` cannot evaluate from the values it was given."""


def constant_value(expr: Expr, values: Mapping[str, Any]) -> float:
    """The number a scalar expression of literals and scalar data (`J - 1`) stands for.

    Computed as the tensors compute it, in float64: `1 / 0` is inf and `(-8) ^ 0.5` is
    nan, where Python's numbers would raise, turn complex, or make `10^10^10` a
    ten-billion-digit integer."""
    match expr:
        case Literal_(value=value):
            return _float(value)
        case Variable(name=name, type=Type(shape=())) if name in values:
            return _float(values[name])
        case Negate(operand=operand):
            return -constant_value(operand, values)
        case Binary(operator=symbol, left=left, right=right) if symbol in ARITHMETIC:
            return _ieee(symbol, constant_value(left, values), constant_value(right, values))
    raise NotConstant(expr)


def _ieee(symbol: str, left: float, right: float) -> float:
    """Python float arithmetic with IEEE results where Python raises or turns complex (as torch computes)."""
    try:
        result = ARITHMETIC[symbol](left, right)
    except ZeroDivisionError:  # x / 0, or 0 ^ negative
        if symbol == "/" and (left == 0 or math.isnan(left)):
            return math.nan
        return math.copysign(math.inf, left) * math.copysign(1.0, right) if symbol == "/" else math.inf
    except OverflowError:  # only ^ overflows; an odd integer power keeps a negative base's sign
        odd = float(right).is_integer() and int(right) % 2 == 1
        return -math.inf if left < 0 and odd else math.inf
    return math.nan if isinstance(result, complex) else float(result)


def _float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond float range
        return math.copysign(math.inf, value)


def restriction_unusable(restriction: Restriction, values: Mapping[str, Any], positive: bool) -> str | None:
    """Why the bounds cannot be used, when `values` fix them: nothing between them, or, for a
    distribution of positive values, a bound at or below 0 (a guide would draw below 0)."""
    try:
        low, high = (None if b is None else constant_value(b, values) for b in (restriction.lower, restriction.upper))
    except NotConstant:
        return None
    if low is not None and high is not None and not low < high:
        return f"the lower bound {low:g} is not below the upper bound {high:g}"
    if positive and high is not None and high <= 0:
        return f"its values are positive, so none lie below the upper bound {high:g}"
    if positive and low is not None and low < 0:
        return f"its values are positive, so the lower bound {low:g} bounds nothing"
    return None


def initial_outside_bounds(param: Param, values: Mapping[str, Any]) -> str | None:
    """Why the initial value is not strictly inside the bounds, when `values`
    fix both (a constrained param's unconstrained value would be infinite)."""
    try:
        initial = constant_value(param.initial, values)
        low, high = (None if b is None else constant_value(b, values) for b in (param.support.low, param.support.high))
    except NotConstant:
        return None
    if low is not None and not initial > low:
        return f"{initial:g} is not above lower={low:g}"
    if high is not None and not initial < high:
        return f"{initial:g} is not below upper={high:g}"
    return None


def out_of_range(fixed: FixedIndex, values: Mapping[str, Any]) -> str | None:
    """Why the position misses the axis, when `values` fix what it needs."""
    try:
        position = constant_value(fixed.position, values)
    except NotConstant:
        return None
    length = values.get(fixed.length) if isinstance(fixed.length, str) else fixed.length
    if position < 0 or (length is not None and position >= length):
        of = f"of length {length}" if length is not None else f"of length {fixed.length}"
        return f"index {position:g} is out of range for '{fixed.array}', an axis {of}"
    return None
