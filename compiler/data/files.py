"""Reading data files: name -> raw value, before any validation (`validate.load_data`).

JSON (an object of name -> number or nested list) and CSV (a column per
name) are read into memory, up to `MAX_IN_MEMORY_BYTES`. Large arrays stay on
disk: a `.npy` file is one array named after the file (`x.npy` is `x`),
memory-mapped; an Arrow IPC file (`.arrow`, `.feather`) holds a column per
name, memory-mapped where a column is one record batch (a column written in
several is joined in memory). Parquet (`.parquet`) holds a column per name too,
but is compressed, so its columns are decoded into memory (up to the same cap).
A directory is the union of the data files in it. Arrays from memory-mapped
files are checked a million rows at a time and only read whole where a fit
needs them whole (without `--batch-size`).

Decoding is exact or refused: a CSV cell is a plain decimal number (`NUMBER`),
an integer literal stays an exact int (`data` refuses those a float64 would
round), and columns that are not numbers are never converted into numbers.
"""

from __future__ import annotations

import csv
import io
import json
import re
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import methodcaller
from pathlib import Path
from typing import Any

import numpy as np

from compiler.errors import DataError

DATA_SUFFIXES = (".json", ".csv", ".npy", ".arrow", ".feather", ".parquet")

# Files decoded into memory (JSON, CSV, Parquet's columns) are refused above this size before any
# reading, rather than exhausting memory partway: large arrays belong in .npy or Arrow files.
MAX_IN_MEMORY_BYTES = 2 << 30

# numpy holds at most 64 axes, so deeper JSON is never data; refusing it keeps later walks
# (the digest's json.dumps) far from Python's recursion limit.
MAX_JSON_DEPTH = 64

# A plain ASCII decimal number: an optional sign, digits without superfluous leading zeros
# (`007` may be a code rather than seven), an optional fraction and an optional exponent;
# `.5` and `5.` are read as 0.5 and 5. Python's float() would also take `1_0`, `١٢`, `nan`,
# `inf` and surrounding Unicode spaces.
NUMBER = re.compile(r"[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRIM = methodcaller("strip", " \t")  # spaces and tabs around a cell, as around a header name, are no part of it


@dataclass(frozen=True)
class NonNumericColumn:
    """An Arrow or Parquet column of something other than numbers (strings, timestamps,
    dictionary codes...): left unread, and refused if the spec declares it."""

    type: str


def read_data_file(path: str | Path) -> dict[str, Any]:
    """The raw values in a data file, or in every data file of a directory."""
    path = Path(path)
    mode, size = _stat(path)
    if stat.S_ISDIR(mode):
        return _read_directory(path)
    if not stat.S_ISREG(mode):
        raise DataError(f"{path} is {_file_kind(mode)}, not a data file", hint="pass a regular file or a directory")
    reader = ARRAY_READERS.get(path.suffix.lower())
    if reader is not None:
        return reader(path)
    _check_in_memory_size(path, size, "read into memory")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark, as some editors write, is dropped
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read data file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix.lower() == ".csv":
        return _read_csv(text, path)
    return _read_json(text, path)


def _stat(path: Path) -> tuple[int, int]:
    """The file's type bits and size, without opening it: opening a FIFO would wait for a writer."""
    try:
        status = path.stat()
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror or exc}") from None
    return status.st_mode, status.st_size


def _file_kind(mode: int) -> str:
    kinds = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
             stat.S_IFSOCK: "a socket"}
    return kinds.get(stat.S_IFMT(mode), "not a regular file")


def _check_in_memory_size(path: Path, size: int, what: str) -> None:
    if size > MAX_IN_MEMORY_BYTES:
        raise DataError(f"{path} would be {size:,} bytes {what}, more than the cap of {MAX_IN_MEMORY_BYTES:,}",
                        hint="store large arrays as .npy or Arrow files, which stay on disk")


def _read_json(text: str, path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # an integer literal longer than Python converts
        raise DataError(f"{path}: an integer of more than {sys.get_int_max_str_digits():,} digits, "
                        "too long to read") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: the data must be a JSON object of name -> value")
    if _nesting(raw) > MAX_JSON_DEPTH:
        raise DataError(f"{path}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return raw


def _nesting(value: Any) -> int:
    """How deep lists and objects nest (to one past the cap): a level at a time, each level's
    types gathered in one loop in C, rather than by recursion."""
    depth, level = 0, [value]
    while level and depth <= MAX_JSON_DEPTH:
        depth += 1
        contents = [list(c.values()) if isinstance(c, dict) else c for c in level]
        nested = {list, dict} & set(map(type, chain.from_iterable(contents)))
        level = [item for item in chain.from_iterable(contents) if isinstance(item, (list, dict))] if nested else []
    return depth


def _read_csv(text: str, path: Path) -> dict[str, Any]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty CSV file")
    names = [name.strip() for name in header]
    _refuse_repeated_columns(names, f"{path}:1")
    rows, lines = [], []
    for row in reader:
        if len(row) != len(names):
            raise DataError(f"{path}:{reader.line_num}: expected {len(names)} columns, got {len(row)}")
        rows.append(row)
        lines.append(reader.line_num)
    columns = zip(*rows) if rows else [()] * len(names)
    return {name: _csv_column(cells, name, lines, path) for name, cells in zip(names, columns)}


def _csv_column(cells: Sequence[str], name: str, lines: list[int], path: Path) -> list[int | float]:
    """A column's cells as numbers: exact ints for integer literals (as JSON reads them), floats for
    the rest. Each step is one loop over the column in C; the first cell that is not a number is refused."""
    texts = list(map(_TRIM, cells))
    if not all(map(NUMBER.fullmatch, texts)):
        row = next(row for row, text in enumerate(texts) if not NUMBER.fullmatch(text))
        raise _bad_cell(path, lines[row], name, cells[row], "not a plain decimal number")
    try:
        # Once NUMBER has matched, a cell of a sign and digits alone is an integer literal.
        return [int(text) if text.lstrip("+-").isdigit() else float(text) for text in texts]
    except ValueError:  # an integer literal longer than Python converts
        digits = [len(text.lstrip("+-")) if text.lstrip("+-").isdigit() else 0 for text in texts]
        row = next(row for row, count in enumerate(digits) if count > sys.get_int_max_str_digits())
        raise _bad_cell(path, lines[row], name, cells[row],
                        f"an integer of {digits[row]} digits, too long to read") from None


def _bad_cell(path: Path, line: int, name: str, cell: str, why: str) -> DataError:
    shown = repr(cell if len(cell) <= 40 else cell[:37] + "...")
    return DataError(f"{path}:{line}: column '{name}' holds {shown}, {why}",
                     hint="write plain decimal numbers such as 12, -0.5 or 1.5e-3: ASCII digits, no leading zeros, "
                          "digit separators, NaN or infinity")


def _refuse_repeated_columns(names: list[str], where: str) -> None:
    """A name given twice would silently keep one column of the two."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{where}: column '{name}' appears more than once",
                            hint="each column is one data name; rename or drop the repeats")
        seen.add(name)


def _read_npy(path: Path) -> dict[str, Any]:
    try:
        return {path.stem: np.load(path, mmap_mode="r", allow_pickle=False)}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as a .npy array: {exc}") from None


def _read_arrow(path: Path) -> dict[str, Any]:
    pyarrow = _pyarrow(path)
    try:
        table = pyarrow.ipc.open_file(pyarrow.memory_map(str(path))).read_all()
    except (OSError, pyarrow.ArrowException) as exc:
        raise DataError(f"cannot read {path} as an Arrow IPC file: {exc}") from None
    return _columns(table, path)


def _read_parquet(path: Path) -> dict[str, Any]:
    pyarrow = _pyarrow(path)
    from pyarrow import parquet

    try:
        metadata = parquet.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
        _refuse_repeated_columns(schema.names, str(path))
        numeric = [field for field in schema if _numeric(field.type)]
        # Decoded, each value takes its type's width (a boolean a byte, as numpy holds it).
        _check_in_memory_size(path, metadata.num_rows * sum((f.type.bit_width + 7) // 8 for f in numeric),
                              "decoded into memory")
        table = parquet.read_table(path, columns=[field.name for field in numeric])
    except (OSError, pyarrow.ArrowException) as exc:
        raise DataError(f"cannot read {path} as Parquet: {exc}") from None
    columns = {field.name: NonNumericColumn(str(field.type)) for field in schema}
    columns.update({name: np.array(column) for name, column in _columns(table, path).items()})  # in memory
    return columns


def _columns(table, path: Path) -> dict[str, Any]:
    """Each column of numbers as a numpy array (a view of the file's memory where Arrow allows);
    any other column as a `NonNumericColumn`, never converted."""
    _refuse_repeated_columns(table.column_names, str(path))
    columns: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns):
        if not _numeric(column.type):
            columns[name] = NonNumericColumn(str(column.type))
        elif column.null_count:
            raise DataError(f"{path}: column '{name}' has {column.null_count} missing values",
                            hint="data must be complete; remove or impute missing values")
        else:
            columns[name] = column.to_numpy()
    return columns


def _numeric(arrow_type) -> bool:
    """Integers, floats and booleans (0/1); not strings, timestamps, decimals or dictionary codes."""
    from pyarrow import types  # the reader has made sure pyarrow is there (`_pyarrow`)

    return types.is_integer(arrow_type) or types.is_floating(arrow_type) or types.is_boolean(arrow_type)


def _pyarrow(path: Path):
    try:
        import pyarrow
        import pyarrow.ipc
    except ImportError:
        raise DataError(f"reading {path} needs pyarrow", hint="pip install pyarrow (or pplc[data])") from None
    return pyarrow


def _read_directory(path: Path) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in DATA_SUFFIXES)
    if not files:
        raise DataError(f"{path}: no data files in this directory ({', '.join(DATA_SUFFIXES)})")
    for file in files:
        for name, value in read_data_file(file).items():
            if name in raw:
                raise DataError(f"{path}: '{name}' is given by more than one file",
                                hint=f"keep one; {file.name} repeats it")
            raw[name] = value
    return raw


def on_disk(value: Any) -> bool:
    """Whether an array is a view of a memory-mapped file (numpy's or Arrow's)."""
    while isinstance(value, np.ndarray):
        if isinstance(value, np.memmap):
            return True
        value = value.base
    return type(value).__module__.startswith("pyarrow")


ARRAY_READERS = {".npy": _read_npy, ".arrow": _read_arrow, ".feather": _read_arrow, ".parquet": _read_parquet}
