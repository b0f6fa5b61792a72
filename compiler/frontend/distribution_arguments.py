"""Phase 2, check: a distribution call -> `ir.DistributionUse`.

Binds the arguments of a call to the parameters of its row in the distribution
table (positions, keywords, groups of alternatives), checks each argument's shape
against the plates of the statement and each number against what the parameter
accepts, and works out the support of the draws.
"""

from __future__ import annotations

import math

from compiler.errors import PplError, Span, did_you_mean
from compiler.frontend import constants, distributions, ir, shapes, syntax
from compiler.frontend.expressions import Scope, depends_on_model


def check_distribution(call: syntax.Call, scope: Scope, plates, type_fn) -> ir.DistributionUse:
    """Bind a distribution's arguments to Pyro's parameters and check their shapes
    against the plates of the statement."""
    row = distributions.TABLE.get(call.function)
    if row is None:
        raise PplError(f"unknown distribution '{call.function}'", call.function_span,
                       distributions.unknown_hint(call.function))
    bound = _bind_arguments(row, call)
    plate_shape = tuple(p.size for p in plates)
    arguments: list[tuple[str, ir.Expr]] = []
    event_shape: ir.Shape = ()
    for parameter, argument in bound:
        typed = type_fn(argument.value, scope)
        _check_number_argument(row, parameter, typed)
        event_part = _check_argument_shape(parameter, typed, plate_shape, argument.span)
        if row.event_rank and parameter.event_rank >= row.event_rank and not event_shape:
            event_shape = event_part[: row.event_rank]
        arguments.append((parameter.name, typed))
        if parameter.name == row.size_parameter:
            event_shape = (_size(row, typed),) * row.event_rank
    return ir.DistributionUse(row.name, tuple(arguments), event_shape,
                              _support(row, dict(arguments)), call.span)


def _bind_arguments(row: distributions.Distribution, call: syntax.Call):
    positional = [a for a in call.arguments if a.keyword is None]
    keywords = [a for a in call.arguments if a.keyword is not None]
    if any(a.keyword is None for a in call.arguments[len(positional):]):
        first = next(a for a in call.arguments[len(positional):] if a.keyword is None)
        raise PplError("positional argument after a keyword argument", first.span)
    bound: dict[str, syntax.Argument] = {}
    slots = _positional_slots(row)
    if len(positional) > len(slots):
        raise PplError(
            f"{row.name} takes {len(slots)} positional argument{'s' * (len(slots) != 1)}, "
            f"got {len(positional)}", positional[len(slots)].span, _signature(row))
    for parameter, argument in zip(slots, positional):
        bound[parameter.name] = argument
    for argument in keywords:
        if row.parameter(argument.keyword) is None:
            raise PplError(
                f"{row.name} has no parameter '{argument.keyword}'", argument.span,
                did_you_mean(argument.keyword, [p.name for p in row.parameters]) or _signature(row))
        if argument.keyword in bound:
            raise PplError(f"'{argument.keyword}' is given twice", argument.span, _signature(row))
        bound[argument.keyword] = argument
    _check_groups(row, bound, call)
    missing = [p.name for p in row.parameters if p.required and p.name not in bound]
    if missing:
        raise PplError(f"{row.name} needs '{missing[0]}'", call.span, _signature(row))
    return [(p, bound[p.name]) for p in row.parameters if p.name in bound]


def _positional_slots(row: distributions.Distribution):
    """Pyro's positional order, where a group of alternatives takes one slot (its first)."""
    slots, seen_groups = [], set()
    for parameter in row.parameters:
        if parameter.group in seen_groups:
            continue
        if parameter.group:
            seen_groups.add(parameter.group)
        slots.append(parameter)
    return slots


def _check_groups(row, bound, call) -> None:
    groups: dict[str, list[str]] = {}
    for parameter in row.parameters:
        if parameter.group:
            groups.setdefault(parameter.group, []).append(parameter.name)
    for names in groups.values():
        given = [n for n in names if n in bound]
        if len(given) != 1:
            what = "one of" if not given else "only one of"
            raise PplError(f"{row.name} needs {what} {' or '.join(names)}",
                           bound[given[1]].span if given else call.span, _signature(row))


def _signature(row: distributions.Distribution) -> str:
    parts = [p.name + ("" if p.required or p.group else f"={p.default}") for p in row.parameters]
    return f"{row.name}({', '.join(parts)})"


def _check_argument_shape(parameter, typed: ir.Expr, plate_shape: ir.Shape, span: Span) -> ir.Shape:
    """Split an argument's shape into its batch part, which must fit the plates,
    and its event part, which one draw consumes. Returns the event part."""
    shape = typed.type.shape
    rank = parameter.event_rank
    if len(shape) < rank:
        kind = "a vector" if rank == 1 else "a matrix"
        raise PplError(f"'{parameter.name}' must be {kind}, got {shapes.show(shape)}", span)
    batch, event = shape[: len(shape) - rank], shape[len(shape) - rank :]
    if typed.type.batched and batch:
        raise PplError(
            f"'{parameter.name}' is {shapes.show(batch)} per element of "
            f"{', '.join(sorted(typed.type.index_variables))}; expected one value per element",
            span, "index the array with the statement's index variables")
    if not typed.type.batched and not shapes.broadcasts_to(batch, plate_shape):
        raise PplError(
            f"'{parameter.name}' has shape {shapes.show(batch)} but the statement ranges over "
            f"{shapes.show(plate_shape)}", span,
            "arrays must match the indexed axes; use an index variable such as x[i]")
    return event


def _size(row: distributions.Distribution, typed: ir.Expr) -> ir.Dim:
    """The size an argument gives each event axis (LKJCholesky's `dim`): known before the model runs,
    as the guide's shapes need it; Pyro's LKJCholesky needs at least 2."""
    match typed:
        case ir.Literal_(value=int(value)) if value >= 2:
            return value
        case ir.Variable(role="data", type=ir.Type(base="int", shape=())):
            return typed.name
    raise PplError(f"the {row.size_parameter} of {row.name} must be a size of at least 2", typed.span,
                   f"an int data name or an integer literal, first: {_signature(row)}")


def _check_number_argument(row: distributions.Distribution, parameter, typed: ir.Expr) -> None:
    """An argument written as a number must be one the parameter accepts."""
    try:
        value = constants.constant_value(typed, {})
    except constants.NotConstant:
        return
    if not math.isfinite(value):
        raise PplError(f"the {parameter.name} of {row.name} comes to {value}", typed.span,
                       "arithmetic on these numbers overflows or has no value (1/0, 0/0, 10^400)")
    problem = row.rejects(parameter, value)
    if problem:
        raise PplError(problem, typed.span, _signature(row))


def _support(row: distributions.Distribution, arguments: dict[str, ir.Expr]) -> ir.Support:
    if row.support == distributions.INTERVAL:
        low, high = (None if name is None else arguments[name] for name in row.support_bounds)
        for name, bound in zip(row.support_bounds, (low, high)):
            if bound is not None and depends_on_model(bound):
                raise PplError(f"the {name} of {row.name} must depend on data alone", bound.span,
                               f"it bounds the values of {row.name}, and a guide needs them before the model runs")
        try:
            empty = high is not None and constants.constant_value(low, {}) >= constants.constant_value(high, {})
        except constants.NotConstant:
            empty = False
        if empty:
            raise PplError(f"{row.name} needs low < high", high.span, _signature(row))
        return ir.Support(row.support, low, high)
    if row.support == distributions.INTEGER_INTERVAL:
        return ir.Support(row.support, None, arguments.get(row.support_bounds[0]))
    return ir.Support(row.support)
