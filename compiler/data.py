"""Data loading: raw values (from `data_files`, or a dict) -> validated tensors (`Data`).

Every value is checked against its declaration before any fitting: presence,
shape (sizes left out of the file are inferred from array lengths), type,
finiteness, bounds, the support of the distribution it is observed under, and
the range of arrays used as indices. Errors name the variable, the element and
the rule. Arrays are checked a chunk of rows at a time, so that arrays in
memory-mapped files are never read whole; they stay numpy arrays (`Data.on_disk`)
until a fit needs them whole (`Data.in_memory`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from compiler import data_files, distributions, ir
from compiler.errors import DataError


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
    raw = {name: value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value  # a scalar in a .npy
           for name, value in raw.items()}
    declared = {d.name for d in model.data}
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


def tensor(value: Any, index: bool = False):
    """An array as a tensor: positions (`index`) as integers, everything else in the default float."""
    import torch

    # A copy: arrays mapped from files are read-only, and torch will not share those.
    array = np.array(value, dtype=np.int64 if index else np.float64)
    return torch.as_tensor(array, dtype=torch.long if index else torch.get_default_dtype(),
                           device=torch.get_default_device())


def digest(raw: Mapping[str, Any]) -> str:
    """A fingerprint of the raw data: its JSON, and the bytes of arrays read from files."""
    arrays = {name: value for name, value in raw.items() if isinstance(value, np.ndarray)}
    rest = {name: value for name, value in raw.items() if name not in arrays}
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
    for decl in scalars:
        if decl.name in raw:
            value = raw[decl.name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
                raise _error(decl, origin, f"'{decl.name}' must be an integer, got {_show(value)}")
            sizes[decl.name] = int(value)
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
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _error(decl, origin, f"'{decl.name}' must be a number, got {_show(value)}")
        array = np.asarray(float(value))
    else:
        array = _as_array(decl, value, origin)
        if array.shape != expected:
            raise _error(decl, origin, f"'{decl.name}' has shape {list(array.shape)}, "
                         f"but the spec declares {_declared(decl)} = {list(expected)}")
    if bad := _first_bad(array, np.isfinite):
        raise _error(decl, origin, f"{bad.element(decl.name)} is {bad.value}",
                     "data must be finite numbers; remove or impute missing values")
    if decl.base == "int" and (bad := _first_bad(array, lambda a: a == np.round(a))):
        raise _error(decl, origin, f"{bad.element(decl.name)} = {bad.value} is not an integer",
                     f"'{decl.name}' is declared int")
    return array if decl.shape else array.item()


def _as_array(decl: ir.DataDecl, value: Any, origin: str) -> np.ndarray:
    """A float array of a JSON value; an array read from a file as it is (a
    memory-mapped one is not read here)."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        if value.ndim != len(decl.shape):
            raise _error(decl, origin, f"'{decl.name}' has {value.ndim} axes, but the spec declares "
                         f"{_declared(decl)}")
        return value
    try:
        array = np.asarray(value, dtype=float)
    except (ValueError, TypeError):
        raise _error(decl, origin, f"'{decl.name}' must be an array of numbers of shape {_declared(decl)}",
                     "check for ragged rows or non-numeric entries") from None
    if array.ndim != len(decl.shape):
        raise _error(decl, origin, f"'{decl.name}' has {array.ndim} axes, but the spec declares "
                     f"{_declared(decl)}")
    return array


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


# Rows per chunk when checking an array: a memory-mapped one is never read whole.
CHUNK_ROWS = 1 << 20


@dataclass(frozen=True)
class _Bad:
    """The first element of an array that breaks a rule, and how many do."""

    index: tuple[int, ...] | None  # None for a scalar
    value: str
    count: int

    def element(self, name: str) -> str:
        if self.index is None:
            return f"'{name}'"
        more = f" (and {self.count - 1} more)" if self.count > 1 else ""
        return f"{name}[{', '.join(map(str, self.index))}]{more}"


def _first_bad(array: Any, inside) -> _Bad | None:
    """Where `inside` (an elementwise test on float arrays) fails, scanned a chunk of rows at a time."""
    array = np.asarray(array)
    if array.ndim == 0:
        return None if inside(array.astype(float)) else _Bad(None, _number(float(array)), 1)
    first, count = None, 0
    for start in range(0, len(array), CHUNK_ROWS):
        chunk = np.asarray(array[start:start + CHUNK_ROWS], dtype=float)
        bad = ~inside(chunk)
        found = int(bad.sum())
        if found and first is None:
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            first = ((start + where[0],) + where[1:], _number(float(chunk[where])))
        count += found
    return None if first is None else _Bad(*first, count)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and math.isfinite(value) else repr(float(value))


def _declared(decl: ir.DataDecl) -> str:
    return "[" + ", ".join(str(d) for d in decl.shape) + "]"


def _show(value: Any) -> str:
    text = json.dumps(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) < 40 else text[:37] + "..."
