"""Phase 3, data: the elements of data arrays, for the checks and their messages.

`first_bad` scans an array a chunk of rows at a time (a memory-mapped one is never
read whole) for the first element that breaks a rule, and counts the others; the
rest writes elements, numbers and errors the way every data error words them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from compiler.arrays import CHUNK_ROWS
from compiler.errors import DataError
from compiler.frontend import ir


def declaration_error(decl: ir.DataDecl, origin: str, message: str, hint: str | None = None) -> DataError:
    """A data error shown at the declaration of `decl`, naming where the data came from."""
    return DataError(f"{message} (in {origin})", decl.span, hint)


@dataclass(frozen=True)
class BadElements:
    """The first element of an array that breaks a rule, and how many do."""

    index: tuple[int, ...] | None  # None for a scalar
    value: str
    count: int

    def element(self, name: str) -> str:
        more = f" (and {self.count - 1} more)" if self.count > 1 else ""
        return element_name(name, self.index) + more


def element_name(name: str, index: tuple[int, ...] | None) -> str:
    return f"'{name}'" if index is None else f"{name}[{', '.join(map(str, index))}]"


def first_bad(array: Any, inside, as_float: bool = True) -> BadElements | None:
    """Where `inside` (an elementwise test, on float arrays unless not `as_float`) fails,
    scanned a chunk of rows at a time."""
    array = np.asarray(array)
    dtype = float if as_float else array.dtype
    if array.ndim == 0:
        value = array.astype(dtype)
        return None if inside(value) else BadElements(None, number_text(value.item()), 1)
    first, count = None, 0
    for start in range(0, len(array), CHUNK_ROWS):
        chunk = np.asarray(array[start:start + CHUNK_ROWS], dtype=dtype)
        bad = ~inside(chunk)
        found = int(bad.sum())
        if found and first is None:
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            first = ((start + where[0],) + where[1:], number_text(chunk[where].item()))
        count += found
    return None if first is None else BadElements(*first, count)


def number_text(value: float | int) -> str:
    if isinstance(value, int):
        return integer_text(value)
    whole = float(value).is_integer() and abs(value) < 1e16  # beyond, 1e+20 reads better than 21 digits
    return str(int(value)) if whole else repr(float(value))


def integer_text(value: int) -> str:
    """An integer in full, or to 4 digits where it is long (Python will not print one of 4301 digits)."""
    return str(value) if abs(value) < 10**20 else f"{Decimal(value):.3e}"
