"""Phase 3, data: raw values (from `data_files`, or a dict) -> values checked against the declarations.

Every value is checked against its declaration before any fitting: the name
(one the spec does not declare is an error with a did-you-mean, except a column
of a table, ignored with a warning), presence,
shape (sizes left out of the file are inferred from array lengths), type (numbers
only: no strings, booleans or null from JSON, no dates or text in arrays),
exactness (integers within ±2^53, which float64 holds exactly), sizes within
0..2^40 and finiteness here; bounds, supports, index ranges and arguments in
`rules.py`. Errors name the variable, the element and the rule. Arrays are
checked a chunk of rows at a time (`elements.first_bad`), so that arrays in
memory-mapped files are never read whole.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable, Mapping
from itertools import chain
from typing import Any

import numpy as np

from compiler.data import files as data_files
from compiler.data.elements import declaration_error, element_name, first_bad, integer_text
from compiler.data.rules import (
    check_bounds,
    check_codes,
    check_fixed_index,
    check_index_range,
    check_restricted,
    check_restriction_bounds,
    check_scalar_arguments,
    check_solver_times,
    check_support,
)
from compiler.errors import DataError, did_you_mean
from compiler.frontend import constants, ir
from compiler.frontend.analysis import model_solves

# float64, which pplc computes in, holds every integer up to 2^53 in absolute value exactly, and
# not every one beyond (2^53 + 1 rounds to 2^53); counts near 2^63 would also overflow the fit.
EXACT_INTEGERS = 2**53
BEYOND_EXACT = "is beyond ±2^53, the integers float64 holds exactly"
EXACT_HINT = "pplc computes in float64; larger integers would be rounded"

# Sizes are lengths of axes: 2^40 (about 1.1e12) admits 10^4 times the 10^8-row fits that
# docs/scaling.md measures, while a size typed with stray digits is caught here rather than
# as an allocation failure in the fit.
MAX_SIZE = 2**40

LEAF_HINT = "write numbers without quotes, 1 and 0 for true and false; remove or impute missing values (null)"
TYPED_HINT = "store data as integers, floats or booleans (read as 0 and 1)"
NON_NUMERIC_KINDS = {"M": "dates", "m": "durations", "c": "complex numbers", "U": "text", "S": "bytes",
                     "O": "Python objects", "V": "records"}


def load_data(model: ir.Model, raw: data_files.RawData, origin: str,
              placeholders: frozenset[str] = frozenset()) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Validate `raw` against the model's data declarations. Returns the values
    as Python numbers and numpy arrays (before tensors), and warnings. Arrays
    named in `placeholders` and left out of `raw` become zeros of their declared
    shape, unchecked: stand-ins for observations a prior predictive simulates."""
    declarations = {d.name: d for d in model.data}
    unread = sorted(set(raw) - set(declarations))
    warnings = _check_undeclared(declarations, raw, unread, origin)
    raw = {name: _typed(declarations[name], value, origin) for name, value in raw.items() if name in declarations}
    stand_ins = placeholders - set(raw)
    sizes = _sizes(model, raw, origin, stand_ins, unread)
    values: dict[str, Any] = dict(sizes)
    for decl in model.data:
        if decl.name in sizes:
            continue
        if decl.name in stand_ins:
            unknown = [d for d in decl.shape if isinstance(d, str) and d not in sizes]
            if unknown:
                raise declaration_error(decl, origin, f"'{decl.name}' is missing and its size '{unknown[0]}' is not given",
                                        f"give {unknown[0]} in the data to simulate {decl.name}")
            values[decl.name] = np.zeros(tuple(sizes[d] if isinstance(d, str) else d for d in decl.shape))
            continue
        values[decl.name] = _validated(decl, raw[decl.name], sizes, origin)
    for decl in model.data:
        if decl.name not in stand_ins:
            check_bounds(decl, values, origin)
            check_codes(decl, values, origin)
            check_index_range(decl, values, origin)
    for observe in model.observed:
        if observe.name not in stand_ins:
            check_support(observe, values, origin)
            check_restricted(observe, values, origin)
    for fixed in model.fixed_indices:
        check_fixed_index(fixed, values, origin)
    for solve in model_solves(model):
        check_solver_times(solve, values, origin)
    for use in model.distribution_uses:
        check_scalar_arguments(use, values, origin)
        check_restriction_bounds(use, values, origin)
    for param in model.params:
        outside = constants.initial_outside_bounds(param, values)
        if outside:
            raise DataError(f"with this data, the initial value of '{param.name}' {outside} (in {origin})",
                            param.initial.span, "start a param strictly inside its bounds")
    return values, warnings


# Names ------------------------------------------------------------------------


def _check_undeclared(declarations: dict[str, ir.DataDecl], raw: data_files.RawData, unread: list[str],
                      origin: str) -> tuple[str, ...]:
    """A warning naming the columns of a table the spec does not declare. Any other name it does not
    declare is refused: a key of a mapping is meant for the spec, and is most likely misspelt."""
    refused = [name for name in unread if name not in raw.table_columns]
    if not refused:
        return (f"{origin}: ignoring {', '.join(map(repr, unread))}, not declared in the spec",) if unread else ()
    guesses = [(name, _closest(name, list(declarations))) for name in refused]
    name, meant = next(((name, meant) for name, meant in guesses if meant), guesses[0])
    others = [other for other in refused if other != name]
    message = f"unknown data name '{name}'" + (f" (and {', '.join(map(repr, others))})" if others else "")
    if meant is None:
        raise DataError(f"{message} (in {origin})",
                        hint=f"the spec's data are {', '.join(declarations) or 'none'}; remove '{name}'")
    raise declaration_error(declarations[meant], origin, message, f"did you mean '{meant}'?")


def _closest(name: str, candidates: list[str]) -> str | None:
    """The name most likely meant: one that differs in case only (`n` for `N`), else the one `did_you_mean`
    suggests; not for a name of one letter, which is one edit from every other."""
    same_letters = [candidate for candidate in candidates if candidate.lower() == name.lower()]
    if same_letters or len(name) < 2:
        return next(iter(same_letters), None)
    guess = did_you_mean(name, candidates)
    return next((candidate for candidate in candidates if guess == f"did you mean '{candidate}'?"), None)


def _missing_hint(decl: ir.DataDecl, unread: list[str]) -> str:
    """The column the data give and the spec does not read that is most likely the one meant; else how to give it."""
    meant = _closest(decl.name, unread)
    if meant is not None:
        return f"did you mean '{meant}'? (a column the spec does not declare)"
    return _axes_hint(decl) or "add it to the data"


def _axes_hint(decl: ir.DataDecl) -> str | None:
    """How to give an array of two or more axes (`files.INDEXED_COLUMN` in a table)."""
    if len(decl.shape) < 2:
        return None
    first, second = (f"{decl.name}[{', '.join(['0'] * (len(decl.shape) - 2) + [last])}]" for last in "01")
    return (f"give '{decl.name}' as nested lists of rows or an array of {len(decl.shape)} axes, or in a table "
            f"(CSV, Parquet, a DataFrame) as columns {first}, {second}, ... (0-based; the rows are its first axis)")


# Sizes and shapes -------------------------------------------------------------


def _sizes(model: ir.Model, raw: Mapping[str, Any], origin: str, stand_ins: frozenset[str],
           unread: list[str]) -> dict[str, int]:
    """Every int scalar datum: given in the file, or inferred from an array's length."""
    sizes: dict[str, int] = {}
    scalars = [d for d in model.data if d.base == "int" and not d.shape]
    size_names = _size_names(model)
    for decl in scalars:
        if decl.name in raw:
            value = int(_validated(decl, raw[decl.name], sizes, origin))
            if decl.name in size_names and not 0 <= value <= MAX_SIZE:
                raise declaration_error(decl, origin, f"'{decl.name}' = {value} is not a size: sizes lie in 0..2^40",
                                        f"'{decl.name}' is the length of an axis, and 2^40 (about 1.1e12) rows are "
                                        "more than one machine holds")
            sizes[decl.name] = value
    for decl in model.data:
        if decl.name not in raw:
            continue
        lengths = _lengths(raw[decl.name], len(decl.shape))
        for axis, (dim, length) in enumerate(zip(decl.shape, lengths)):
            if isinstance(dim, str) and dim not in sizes and length is not None:
                sizes[dim] = length
    _derived_sizes(model, sizes, origin)
    # Sizes last: a size left out is inferred, so the array it is the length of is the one missing,
    # or has too few axes to give it.
    for decl in sorted(model.data, key=lambda decl: decl.base == "int" and not decl.shape):
        if decl.name not in raw and decl.name not in sizes and decl.name not in stand_ins:
            for holder in model.data:
                if holder.name in raw and decl.name in holder.shape:
                    _as_array(holder, raw[holder.name], origin)
            raise declaration_error(decl, origin, f"'{decl.name}' is missing from the data", _missing_hint(decl, unread))
    return sizes


def _derived_sizes(model: ir.Model, sizes: dict[str, int], origin: str) -> None:
    """Sizes such as `T - 1` (`ir.size_dim`), computed from their int data name and kept under their
    own text, where every size is looked up; a name left out of the file is inferred from an array of
    such a length."""
    for dim in _size_names(model):
        name, offset = ir.size_terms(dim)
        if not offset:
            continue
        if name not in sizes and dim in sizes:
            sizes[name] = sizes[dim] - offset
        if name in sizes:
            sizes[dim] = sizes[name] + offset
            if sizes[dim] < 0:
                decl = next(d for d in model.data if d.name == name)
                raise declaration_error(decl, origin, f"the size {dim} is {sizes[dim]} with {name} = {sizes[name]}",
                                        f"a size is at least 0: give {name} at least {-offset}")


def _size_names(model: ir.Model) -> frozenset[str]:
    """Int data that are the length of an axis somewhere in the spec."""
    dims = [dim for decl in model.data for dim in decl.shape]
    dims += [dim for s in model.statements if not isinstance(s, ir.Observe) for dim in s.shape]
    dims += [plate.size for s in model.statements if not isinstance(s, ir.Param) for plate in s.plates]
    return frozenset(dim for dim in dims if isinstance(dim, str))


def _lengths(value: Any, rank: int) -> list[int | None]:
    if isinstance(value, np.ndarray):
        return list(value.shape[:rank]) + [None] * (rank - min(rank, value.ndim))
    lengths: list[int | None] = []
    for _ in range(rank):
        if not isinstance(value, list):
            lengths.append(None)
            continue
        lengths.append(len(value))
        value = value[0] if value else None
    return lengths


def _validated(decl: ir.DataDecl, value: Any, sizes: dict[str, int], origin: str) -> Any:
    expected = tuple(sizes[d] if isinstance(d, str) else d for d in decl.shape)
    if not decl.shape:
        if problem := _leaf_problem(value):
            raise declaration_error(decl, origin, f"'{decl.name}' {problem[0]}", problem[1])
        array = np.asarray(float(value))
    else:
        array = _as_array(decl, value, origin)
        if array.shape != expected:
            raise declaration_error(decl, origin, f"'{decl.name}' has shape {list(array.shape)}, "
                                    f"but the spec declares {_declared(decl)} = {list(expected)}")
    if bad := first_bad(array, np.isfinite):
        raise declaration_error(decl, origin, f"{bad.element(decl.name)} is {bad.value}",
                                "data must be finite numbers; remove or impute missing values")
    if _may_hold_inexact_integers(decl, array) and (bad := first_bad(array, _exactly_held, as_float=False)):
        raise declaration_error(decl, origin, f"{bad.element(decl.name)} = {bad.value} {BEYOND_EXACT}", EXACT_HINT)
    if decl.base == "int" and (bad := first_bad(array, lambda a: a == np.round(a))):
        raise declaration_error(decl, origin, f"{bad.element(decl.name)} = {bad.value} is not an integer",
                                f"'{decl.name}' is declared int")
    return array if decl.shape else array.item()


def _as_array(decl: ir.DataDecl, value: Any, origin: str) -> np.ndarray:
    """A float array of a JSON value; an array read from a file as it is (a
    memory-mapped one is not read here)."""
    if isinstance(value, np.ndarray):
        if value.ndim != len(decl.shape):
            raise declaration_error(decl, origin, f"'{decl.name}' has {value.ndim} axes, but the spec declares "
                                    f"{_declared(decl)}", _axes_hint(decl))
        return value
    if isinstance(value, (list, tuple)) and (found := _first_inexact(value, len(decl.shape))):
        index, leaf = found
        words, hint = _leaf_problem(leaf)
        raise declaration_error(decl, origin, f"{element_name(decl.name, index)} {words}", hint)
    try:
        array = np.asarray(value, dtype=float)
    except (ValueError, TypeError):
        raise declaration_error(decl, origin, f"'{decl.name}' must be an array of numbers of shape {_declared(decl)}",
                                "check for ragged rows or non-numeric entries") from None
    if array.ndim != len(decl.shape):
        raise declaration_error(decl, origin, f"'{decl.name}' has {array.ndim} axes, but the spec declares "
                                f"{_declared(decl)}", _axes_hint(decl))
    return array


# Numbers ----------------------------------------------------------------------


def _typed(decl: ir.DataDecl, value: Any, origin: str) -> Any:
    """A declared value as JSON-like numbers or a numpy array of numbers: arrays of other dtypes
    (dates, text, complex numbers) and columns that are not numbers are refused rather than
    converted, and booleans become 0 and 1. A 0-d array (a scalar in a .npy) becomes a number."""
    if isinstance(value, data_files.NonNumericColumn):
        if value.refusal is not None:
            raise value.refusal
        raise declaration_error(decl, origin, f"'{decl.name}' is a column of {value.type}, not numbers", TYPED_HINT)
    if not isinstance(value, np.ndarray):  # JSON values, or numbers and lists given in Python
        return value
    if value.dtype.kind not in "biuf":
        what = NON_NUMERIC_KINDS.get(value.dtype.kind, "values")
        raise declaration_error(decl, origin, f"'{decl.name}' is an array of {what} ({value.dtype}), not numbers",
                                TYPED_HINT)
    if value.dtype.kind == "b":
        value = value.view(np.uint8)  # still a view of a memory-mapped file
    return value.item() if value.ndim == 0 else value


def _first_inexact(items: list | tuple | np.ndarray, rank: int,
                   index: tuple[int, ...] = ()) -> tuple[tuple[int, ...], Any] | None:
    """The position and value of the first element, up to `rank` lists deep, that is not a number
    float64 holds exactly (`_leaf_problem`). Deeper lists are left to the check of the axes."""
    if _all_exact(items, rank - len(index)):
        return None
    for position, item in enumerate(items):
        if isinstance(item, (list, tuple, np.ndarray)):
            if len(index) + 1 < rank and (found := _first_inexact(item, rank, index + (position,))):
                return found
        elif _leaf_problem(item):
            return index + (position,), item
    return None


def _all_exact(items: list | tuple | np.ndarray, depth: int) -> bool:
    """The common case, found in a few loops in C over the elements `depth` lists deep: plain
    floats, and ints within ±2^53. False sends `_first_inexact` element by element."""
    try:
        kinds = set(map(type, _elements(items, depth)))
    except TypeError:  # a number where a row belongs
        return False
    return kinds <= {float} or (kinds <= {int, float} and -EXACT_INTEGERS <= min(_elements(items, depth))
                                and max(_elements(items, depth)) <= EXACT_INTEGERS)


def _elements(items: list | tuple | np.ndarray, depth: int) -> Iterable[Any]:
    """The elements `depth` lists deep, as one iterator that C loops can run through."""
    for _ in range(depth - 1):
        items = chain.from_iterable(items)
    return items


def _leaf_problem(value: Any) -> tuple[str, str] | None:
    """Why a value from JSON or CSV (or given in Python) is not a number float64 holds exactly,
    and a hint: numpy would convert strings and booleans, and round integers beyond 2^53."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return f"is {_show(value)}, not a number", LEAF_HINT
    if isinstance(value, numbers.Integral) and not _exactly_held(value):
        return f"= {integer_text(value)} {BEYOND_EXACT}", EXACT_HINT
    return None


def _may_hold_inexact_integers(decl: ir.DataDecl, array: np.ndarray) -> bool:
    """64-bit integers may lie beyond ±2^53 (float64 would round them); so may the whole floats
    of int data (int data are counts and positions, exact or nothing)."""
    kind = array.dtype.kind
    return (kind in "iu" and array.dtype.itemsize >= 8) or (kind == "f" and decl.base == "int")


def _exactly_held(values):
    """Elementwise, on numbers or arrays: within ±2^53."""
    return (values >= -EXACT_INTEGERS) & (values <= EXACT_INTEGERS)


# Messages ---------------------------------------------------------------------


def _declared(decl: ir.DataDecl) -> str:
    return "[" + ", ".join(str(d) for d in decl.shape) + "]"


def _show(value: Any) -> str:
    try:
        text = json.dumps(value.tolist() if isinstance(value, np.ndarray) else value)
    except (TypeError, ValueError):  # not JSON: a value given in Python
        text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."
