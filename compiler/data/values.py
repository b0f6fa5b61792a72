"""Data loading: raw values (from `data_files`, or a dict) -> validated tensors (`Data`).

Every value is checked against its declaration before any fitting: presence,
shape (sizes left out of the file are inferred from array lengths), type (numbers
only: no strings, booleans or null from JSON, no dates or text in arrays),
exactness (integers within ±2^53, which float64 holds exactly), sizes within
0..2^40, finiteness, bounds, the support of the distribution it is observed
under, and the range of arrays used as indices. Errors name the variable, the
element and the rule. Arrays are checked a chunk of rows at a time, so that
arrays in memory-mapped files are never read whole; they stay numpy arrays
(`Data.on_disk`) until a fit needs them whole (`Data.in_memory`).
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain
from typing import Any

import numpy as np

from compiler.arrays import CHUNK_ROWS, tensor
from compiler.data import files as data_files
from compiler.errors import DataError
from compiler.frontend import distributions, ir


class Data(Mapping):
    """Validated data by name: tensors for arrays, Python numbers for scalars.

    A Mapping, so the generated `model(data)` and `guide(data)` take it directly.
    """

    def __init__(self, values: dict[str, Any], origin: str, digest: str, warnings: tuple[str, ...],
                 placeholders: tuple[str, ...] = (), indices: frozenset[str] = frozenset()):
        self._values = values
        self.origin = origin
        self.digest = digest
        self.warnings = warnings
        self.placeholders = placeholders  # observed arrays the data left out, filled with zeros to simulate
        self.indices = indices  # arrays of positions into other arrays: integer tensors
        # Arrays still in memory-mapped files: numpy arrays, not tensors, until `in_memory`.
        self.on_disk = frozenset(name for name, value in values.items() if isinstance(value, np.ndarray))

    def in_memory(self, keep_on_disk: frozenset[str] = frozenset()) -> Data:
        """The same data with every array a tensor (memory-mapped files read whole),
        except those named in `keep_on_disk`."""
        if not self.on_disk - keep_on_disk:
            return self
        return self.with_values({name: tensor(value, name in self.indices) if name in self.on_disk - keep_on_disk
                                 else value for name, value in self._values.items()})

    def with_values(self, values: dict[str, Any]) -> Data:
        """Other values (sufficient statistics added, say) with this data's provenance."""
        return Data(values, self.origin, self.digest, self.warnings, self.placeholders, self.indices)

    def __getitem__(self, name: str):
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def load_data(model: ir.Model, raw: Mapping[str, Any], origin: str,
              placeholders: frozenset[str] = frozenset()) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Validate `raw` against the model's data declarations. Returns the values
    as Python numbers and numpy arrays (before tensors), and warnings. Arrays
    named in `placeholders` and left out of `raw` become zeros of their declared
    shape, unchecked: stand-ins for observations a prior predictive simulates."""
    declarations = {d.name: d for d in model.data}
    raw = {name: _typed(declarations[name], value, origin) if name in declarations else value
           for name, value in raw.items()}
    declared = set(declarations)
    ignored = sorted(set(raw) - declared)
    warnings = (f"{origin}: ignoring {', '.join(map(repr, ignored))}, not declared in the spec",) if ignored else ()
    stand_ins = placeholders - set(raw)
    sizes = _sizes(model, raw, origin, stand_ins)
    values: dict[str, Any] = dict(sizes)
    for decl in model.data:
        if decl.name in sizes:
            continue
        if decl.name in stand_ins:
            unknown = [d for d in decl.shape if isinstance(d, str) and d not in sizes]
            if unknown:
                raise _error(decl, origin, f"'{decl.name}' is missing and its size '{unknown[0]}' is not given",
                             f"give {unknown[0]} in the data to simulate {decl.name}")
            values[decl.name] = np.zeros(tuple(sizes[d] if isinstance(d, str) else d for d in decl.shape))
            continue
        values[decl.name] = _validated(decl, raw[decl.name], sizes, origin)
    for decl in model.data:
        if decl.name not in stand_ins:
            _check_bounds(decl, values, origin)
            _check_index_range(decl, values, origin)
    for observe in model.observed:
        if observe.name not in stand_ins:
            _check_support(observe, values, origin)
    for fixed in model.fixed_indices:
        _check_fixed_index(fixed, values, origin)
    for use in model.distribution_uses:
        _check_scalar_arguments(use, values, origin)
    for param in model.params:
        outside = param.initial_outside_bounds(values)
        if outside:
            raise DataError(f"with this data, the initial value of '{param.name}' {outside} (in {origin})",
                            param.initial.span, "start a param strictly inside its bounds")
    return values, warnings


def to_tensors(model: ir.Model, values: dict[str, Any]) -> dict[str, Any]:
    """Numbers for scalars, tensors for arrays; arrays in memory-mapped files stay
    numpy arrays (read a batch at a time), unless transformed data need them whole."""
    keep_on_disk = not any(let.transformed_data for let in model.lets)
    tensors: dict[str, Any] = {}
    for decl in model.data:
        value = values[decl.name]
        if not decl.shape:
            tensors[decl.name] = int(value) if decl.base == "int" else float(value)
        elif keep_on_disk and data_files.on_disk(value):
            tensors[decl.name] = value
        else:
            tensors[decl.name] = tensor(value, index=decl.index_range is not None)
    return tensors


def digest(raw: Mapping[str, Any]) -> str:
    """A fingerprint of the raw data: its JSON, and the bytes of arrays read from files."""
    arrays = {name: value for name, value in raw.items() if isinstance(value, np.ndarray)}
    # A column left unread (`NonNumericColumn`) is known by its type.
    rest = {name: repr(value) if isinstance(value, data_files.NonNumericColumn) else value
            for name, value in raw.items() if name not in arrays}
    hasher = hashlib.sha256(json.dumps(rest, sort_keys=True).encode())
    for name in sorted(arrays):
        array = np.atleast_1d(arrays[name])
        hasher.update(f"{name}{array.shape}{array.dtype}".encode())
        for start in range(0, len(array), CHUNK_ROWS):
            hasher.update(np.ascontiguousarray(array[start:start + CHUNK_ROWS]).tobytes())
    return hasher.hexdigest()


# Sizes and shapes -------------------------------------------------------------


def _sizes(model: ir.Model, raw: Mapping[str, Any], origin: str, stand_ins: frozenset[str]) -> dict[str, int]:
    """Every int scalar datum: given in the file, or inferred from an array's length."""
    sizes: dict[str, int] = {}
    scalars = [d for d in model.data if d.base == "int" and not d.shape]
    size_names = _size_names(model)
    for decl in scalars:
        if decl.name in raw:
            value = int(_validated(decl, raw[decl.name], sizes, origin))
            if decl.name in size_names and not 0 <= value <= MAX_SIZE:
                raise _error(decl, origin, f"'{decl.name}' = {value} is not a size: sizes lie in 0..2^40",
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
    for decl in model.data:
        if decl.name not in raw and decl.name not in sizes and decl.name not in stand_ins:
            hint = "add it to the data file"
            raise _error(decl, origin, f"'{decl.name}' is missing from the data", hint)
    return sizes


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
            raise _error(decl, origin, f"'{decl.name}' {problem[0]}", problem[1])
        array = np.asarray(float(value))
    else:
        array = _as_array(decl, value, origin)
        if array.shape != expected:
            raise _error(decl, origin, f"'{decl.name}' has shape {list(array.shape)}, "
                         f"but the spec declares {_declared(decl)} = {list(expected)}")
    if bad := _first_bad(array, np.isfinite):
        raise _error(decl, origin, f"{bad.element(decl.name)} is {bad.value}",
                     "data must be finite numbers; remove or impute missing values")
    if _may_hold_inexact_integers(decl, array) and (bad := _first_bad(array, _exactly_held, as_float=False)):
        raise _error(decl, origin, f"{bad.element(decl.name)} = {bad.value} {BEYOND_EXACT}", EXACT_HINT)
    if decl.base == "int" and (bad := _first_bad(array, lambda a: a == np.round(a))):
        raise _error(decl, origin, f"{bad.element(decl.name)} = {bad.value} is not an integer",
                     f"'{decl.name}' is declared int")
    return array if decl.shape else array.item()


def _as_array(decl: ir.DataDecl, value: Any, origin: str) -> np.ndarray:
    """A float array of a JSON value; an array read from a file as it is (a
    memory-mapped one is not read here)."""
    if isinstance(value, np.ndarray):
        if value.ndim != len(decl.shape):
            raise _error(decl, origin, f"'{decl.name}' has {value.ndim} axes, but the spec declares "
                         f"{_declared(decl)}")
        return value
    if isinstance(value, (list, tuple)) and (found := _first_inexact(value, len(decl.shape))):
        index, leaf = found
        words, hint = _leaf_problem(leaf)
        raise _error(decl, origin, f"{_element(decl.name, index)} {words}", hint)
    try:
        array = np.asarray(value, dtype=float)
    except (ValueError, TypeError):
        raise _error(decl, origin, f"'{decl.name}' must be an array of numbers of shape {_declared(decl)}",
                     "check for ragged rows or non-numeric entries") from None
    if array.ndim != len(decl.shape):
        raise _error(decl, origin, f"'{decl.name}' has {array.ndim} axes, but the spec declares "
                     f"{_declared(decl)}")
    return array


# Numbers ----------------------------------------------------------------------


def _typed(decl: ir.DataDecl, value: Any, origin: str) -> Any:
    """A declared value as JSON-like numbers or a numpy array of numbers: arrays of other dtypes
    (dates, text, complex numbers) and columns that are not numbers are refused rather than
    converted, and booleans become 0 and 1. A 0-d array (a scalar in a .npy) becomes a number."""
    if isinstance(value, data_files.NonNumericColumn):
        raise _error(decl, origin, f"'{decl.name}' is a column of {value.type}, not numbers", TYPED_HINT)
    if not isinstance(value, np.ndarray):
        if not hasattr(value, "__array__"):  # JSON values, or numbers and lists given in Python
            return value
        value = np.asarray(value)  # a numpy scalar, a tensor, a pandas column...
    if value.dtype.kind not in "biuf":
        what = NON_NUMERIC_KINDS.get(value.dtype.kind, "values")
        raise _error(decl, origin, f"'{decl.name}' is an array of {what} ({value.dtype}), not numbers", TYPED_HINT)
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
        return f"= {_integer(value)} {BEYOND_EXACT}", EXACT_HINT
    return None


def _may_hold_inexact_integers(decl: ir.DataDecl, array: np.ndarray) -> bool:
    """64-bit integers may lie beyond ±2^53 (float64 would round them); so may the whole floats
    of int data (int data are counts and positions, exact or nothing)."""
    kind = array.dtype.kind
    return (kind in "iu" and array.dtype.itemsize >= 8) or (kind == "f" and decl.base == "int")


def _exactly_held(values):
    """Elementwise, on numbers or arrays: within ±2^53."""
    return (values >= -EXACT_INTEGERS) & (values <= EXACT_INTEGERS)


# Rules ------------------------------------------------------------------------


def _check_bounds(decl: ir.DataDecl, values: dict[str, Any], origin: str) -> None:
    array = values[decl.name]
    for bound, inside, word in ((decl.lower, np.greater_equal, "below lower"),
                                (decl.upper, np.less_equal, "above upper")):
        if bound is None:
            continue
        limit = ir.constant_value(bound, values)
        if bad := _first_bad(array, lambda a: inside(a, limit)):
            raise _error(decl, origin, f"{bad.element(decl.name)} = {bad.value} is {word}={_number(limit)}")


def _check_index_range(decl: ir.DataDecl, values: dict[str, Any], origin: str) -> None:
    if decl.index_range is None:
        return
    size = values[decl.index_range] if isinstance(decl.index_range, str) else decl.index_range
    if bad := _first_bad(values[decl.name], lambda a: (a >= 0) & (a < size)):
        raise _error(decl, origin, f"{bad.element(decl.name)} = {bad.value} is out of range for an axis of length {size}",
                     f"indexing is 0-based: valid indices are 0..{size - 1}")


SUPPORT_RULES = {
    distributions.BOOLEAN: (lambda a: (a == 0) | (a == 1), "0 or 1"),
    distributions.NONNEGATIVE_INTEGER: (lambda a: (a >= 0) & (a == np.round(a)), "a non-negative integer"),
    distributions.POSITIVE: (lambda a: a > 0, "positive"),
    distributions.UNIT_INTERVAL: (lambda a: (a >= 0) & (a <= 1), "in [0, 1]"),
    distributions.CATEGORY: (lambda a: (a >= 0) & (a == np.round(a)), "a category 0, 1, ..."),
    distributions.INTEGER_INTERVAL: (lambda a: (a >= 0) & (a == np.round(a)), "a count 0, 1, ..."),
}


def _check_support(observe: ir.Observe, values: dict[str, Any], origin: str) -> None:
    rule = _support_rule(observe.distribution.support, values)
    target = observe.value.base if isinstance(observe.value, ir.Subscript) else observe.value
    if rule is None or not isinstance(target, ir.Variable) or target.name not in values:
        return
    inside, words = rule
    if bad := _first_bad(values[target.name], inside):
        raise DataError(
            f"{bad.element(target.name)} = {bad.value} is outside the support of "
            f"{observe.distribution.name}: it must be {words} (in {origin})", observe.distribution.span)


def _support_rule(support: ir.Support, values: dict[str, Any]):
    """(test, words) for the support, or None where the data cannot be checked before the fit
    (an interval whose bounds vary per element or depend on transformed data)."""
    if support.kind != distributions.INTERVAL:
        return SUPPORT_RULES.get(support.kind)
    try:
        low, high = ir.constant_value(support.low, values), ir.constant_value(support.high, values)
    except ir.NotConstant:
        return None
    return (lambda a: (a >= low) & (a <= high)), f"in [{_number(low)}, {_number(high)}]"


def _check_scalar_arguments(use: ir.DistributionUse, values: dict[str, Any], origin: str) -> None:
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


def _check_fixed_index(fixed: ir.FixedIndex, values: dict[str, Any], origin: str) -> None:
    problem = fixed.out_of_range(values)
    if problem:
        length = values[fixed.length] if isinstance(fixed.length, str) else fixed.length
        raise DataError(f"with this data, {problem} (in {origin})", fixed.span,
                        f"indexing is 0-based: valid indices are 0..{length - 1}")


# Messages -----------------------------------------------------------------------


def _error(decl: ir.DataDecl, origin: str, message: str, hint: str | None = None) -> DataError:
    return DataError(f"{message} (in {origin})", decl.span, hint)


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


@dataclass(frozen=True)
class _Bad:
    """The first element of an array that breaks a rule, and how many do."""

    index: tuple[int, ...] | None  # None for a scalar
    value: str
    count: int

    def element(self, name: str) -> str:
        more = f" (and {self.count - 1} more)" if self.count > 1 else ""
        return _element(name, self.index) + more


def _element(name: str, index: tuple[int, ...] | None) -> str:
    return f"'{name}'" if index is None else f"{name}[{', '.join(map(str, index))}]"


def _first_bad(array: Any, inside, as_float: bool = True) -> _Bad | None:
    """Where `inside` (an elementwise test, on float arrays unless not `as_float`) fails,
    scanned a chunk of rows at a time."""
    array = np.asarray(array)
    dtype = float if as_float else array.dtype
    if array.ndim == 0:
        value = array.astype(dtype)
        return None if inside(value) else _Bad(None, _number(value.item()), 1)
    first, count = None, 0
    for start in range(0, len(array), CHUNK_ROWS):
        chunk = np.asarray(array[start:start + CHUNK_ROWS], dtype=dtype)
        bad = ~inside(chunk)
        found = int(bad.sum())
        if found and first is None:
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            first = ((start + where[0],) + where[1:], _number(chunk[where].item()))
        count += found
    return None if first is None else _Bad(*first, count)


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return _integer(value)
    whole = float(value).is_integer() and abs(value) < 1e16  # beyond, 1e+20 reads better than 21 digits
    return str(int(value)) if whole else repr(float(value))


def _integer(value: int) -> str:
    """An integer in full, or to 4 digits where it is long (Python will not print one of 4301 digits)."""
    return str(value) if abs(value) < 10**20 else f"{Decimal(value):.3e}"


def _declared(decl: ir.DataDecl) -> str:
    return "[" + ", ".join(str(d) for d in decl.shape) + "]"


def _show(value: Any) -> str:
    try:
        text = json.dumps(value.tolist() if isinstance(value, np.ndarray) else value)
    except (TypeError, ValueError):  # not JSON: a value given in Python
        text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."
