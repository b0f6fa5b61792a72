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
round), and columns that are not numbers are never converted into numbers:
they are `NonNumericColumn`s, refused if the spec declares them, except as the
labels of `index` data (`labels.py`), which read them (a CSV column of text,
an Arrow column of strings or dictionary codes).

A table (CSV, Arrow, Parquet, and a pandas DataFrame given in Python) holds an
array of two or more axes as a column per element of a row, `X[0]`, `X[1]`, ...
(`INDEXED_COLUMN`); `join_indexed_columns` makes them one array. Its columns
may carry data the spec does not read (`RawData.table_columns`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from math import prod
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

# A table's column of one element of each row of an array of two or more axes: `X[0]`, `X[1]`, ... for a matrix,
# `X[0, 1]` for three axes; 0-based, as a spec indexes. The table's rows are the array's first axis.
INDEXED_COLUMN = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)\[(?P<index>(?:0|[1-9][0-9]*)(?:\s*,\s*(?:0|[1-9][0-9]*))*)\]")


class RawData(dict):
    """Raw values by name, as read (a file) or given (Python objects), before validation, and
    which of the names are columns of a table: a table may carry columns a spec does not read
    (labels, other variables), where a name in a mapping (JSON, a dict) is meant for the spec."""

    def __init__(self, values: Mapping[str, Any], table_columns: Iterable[str] = ()):
        super().__init__(values)
        self.table_columns = frozenset(table_columns)


def table(columns: dict[str, Any], where: str) -> RawData:
    """A table's columns as raw data, those named `X[j]` joined into arrays."""
    joined = join_indexed_columns(columns, where)
    return RawData(joined, joined)


@dataclass(frozen=True)
class Categorical:
    """A column of labels with its levels in their order (a pandas categorical's categories, an
    Arrow dictionary): `codes` index `categories`, -1 where a value is missing."""

    categories: tuple[Any, ...]
    codes: np.ndarray


@dataclass(frozen=True)
class NonNumericColumn:
    """A column of something other than numbers (text, categories, timestamps...): left unread,
    and refused if the spec declares it, except as `index` data, which may be labels: `read_labels`
    reads them (a list of values, or a `Categorical`) where the column may hold them. A CSV column
    refused as numbers keeps the error that names its first cell that is not a number (`refusal`)."""

    type: str
    read_labels: Callable[[], Any] | None = field(default=None, repr=False, compare=False)
    refusal: DataError | None = field(default=None, repr=False, compare=False)


def read_data_file(path: str | Path) -> RawData:
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


def _read_json(text: str, path: Path) -> RawData:
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
    return RawData(raw)


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


def _read_csv(text: str, path: Path) -> RawData:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise DataError(f"{path}: empty CSV file")
    names = [name.strip() for name in header]
    refuse_repeated_columns(names, f"{path}:1")
    rows, lines = [], []
    for row in reader:
        if len(row) != len(names):
            raise DataError(f"{path}:{reader.line_num}: expected {len(names)} columns, got {len(row)}")
        rows.append(row)
        lines.append(reader.line_num)
    columns = zip(*rows) if rows else [()] * len(names)
    return table({name: _csv_column(cells, name, lines, path) for name, cells in zip(names, columns)}, str(path))


def _csv_column(cells: Sequence[str], name: str, lines: list[int], path: Path) -> list[int | float] | NonNumericColumn:
    """A column's cells as numbers: exact ints for integer literals (as JSON reads them), floats for
    the rest. Each step is one loop over the column in C. A column with a cell that is not a number
    is text: labels to `index` data, refused (naming that cell) as any other data."""
    texts = list(map(_TRIM, cells))
    if not all(map(NUMBER.fullmatch, texts)):
        row = next(row for row, text in enumerate(texts) if not NUMBER.fullmatch(text))
        return NonNumericColumn("text", lambda: texts,
                                _bad_cell(path, lines[row], name, cells[row], "not a plain decimal number"))
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


def refuse_repeated_columns(names: list[str], where: str) -> None:
    """A name given twice would silently keep one column of the two."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{where}: column '{name}' appears more than once",
                            hint="each column is one data name; rename or drop the repeats")
        seen.add(name)


def _read_npy(path: Path) -> RawData:
    try:
        return RawData({path.stem: np.load(path, mmap_mode="r", allow_pickle=False)})
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as a .npy array: {exc}") from None


def _read_arrow(path: Path) -> RawData:
    pyarrow = _pyarrow(path)
    try:
        arrow_table = pyarrow.ipc.open_file(pyarrow.memory_map(str(path))).read_all()
    except (OSError, pyarrow.ArrowException) as exc:
        raise DataError(f"cannot read {path} as an Arrow IPC file: {exc}") from None
    return table(_columns(arrow_table, path), str(path))


def _read_parquet(path: Path) -> RawData:
    pyarrow = _pyarrow(path)
    from pyarrow import parquet

    try:
        metadata = parquet.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
        refuse_repeated_columns(schema.names, str(path))
        numeric = [field for field in schema if _numeric(field.type)]
        # Decoded, each value takes its type's width (a boolean a byte, as numpy holds it).
        _check_in_memory_size(path, metadata.num_rows * sum((f.type.bit_width + 7) // 8 for f in numeric),
                              "decoded into memory")
        decoded = parquet.read_table(path, columns=[field.name for field in numeric])
    except (OSError, pyarrow.ArrowException) as exc:
        raise DataError(f"cannot read {path} as Parquet: {exc}") from None
    columns: dict[str, Any] = {field.name: _unread_parquet_column(path, field) for field in schema}
    columns.update({name: np.array(column) for name, column in _columns(decoded, path).items()})  # in memory
    return table(columns, str(path))


def _unread_parquet_column(path: Path, arrow_field) -> NonNumericColumn:
    """A Parquet column of something other than numbers, decoded only where `index` data read it as labels."""
    from pyarrow import parquet

    def read_labels() -> Any:
        return _labels(parquet.read_table(path, columns=[arrow_field.name]).column(0), arrow_field.name, path)

    return NonNumericColumn(str(arrow_field.type), read_labels if _may_hold_labels(arrow_field.type) else None)


def _columns(arrow_table, path: Path) -> dict[str, Any]:
    """Each column of numbers as a numpy array (a view of the file's memory where Arrow allows);
    any other column as a `NonNumericColumn`, never converted."""
    refuse_repeated_columns(arrow_table.column_names, str(path))
    columns: dict[str, Any] = {}
    for name, column in zip(arrow_table.column_names, arrow_table.columns):
        if not _numeric(column.type):
            read_labels = (lambda column=column, name=name: _labels(column, name, path)) \
                if _may_hold_labels(column.type) else None
            columns[name] = NonNumericColumn(str(column.type), read_labels)
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


def _may_hold_labels(arrow_type) -> bool:
    """Text, or dictionary codes of text (a pandas categorical written by pyarrow)."""
    from pyarrow import types

    text = types.is_string(arrow_type) or types.is_large_string(arrow_type)
    return text or (types.is_dictionary(arrow_type) and _may_hold_labels(arrow_type.value_type))


def _labels(column, name: str, path: Path) -> list[Any] | Categorical:
    """An Arrow column of text as its values; of dictionary codes, as a `Categorical` in the dictionary's order."""
    from pyarrow import types

    if column.null_count:
        raise DataError(f"{path}: column '{name}' has {column.null_count} missing values",
                        hint="data must be complete; remove or impute missing values")
    if not types.is_dictionary(column.type):
        return column.to_pylist()
    combined = column.unify_dictionaries().combine_chunks()
    return Categorical(tuple(combined.dictionary.to_pylist()), combined.indices.to_numpy(zero_copy_only=False))


def _pyarrow(path: Path):
    try:
        import pyarrow
        import pyarrow.ipc
    except ImportError:
        raise DataError(f"reading {path} needs pyarrow", hint="pip install pyarrow (or pplc[data])") from None
    return pyarrow


def _read_directory(path: Path) -> RawData:
    raw: dict[str, Any] = {}
    table_columns: set[str] = set()
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in DATA_SUFFIXES)
    if not files:
        raise DataError(f"{path}: no data files in this directory ({', '.join(DATA_SUFFIXES)})")
    for file in files:
        contents = read_data_file(file)
        for name, value in contents.items():
            if name in raw:
                raise DataError(f"{path}: '{name}' is given by more than one file",
                                hint=f"keep one; {file.name} repeats it")
            raw[name] = value
        table_columns |= contents.table_columns
    return RawData(raw, table_columns)


def join_indexed_columns(columns: dict[str, Any], where: str) -> dict[str, Any]:
    """The columns, with those named `X[j]` (`X[j, k]`, ...: `INDEXED_COLUMN`) joined into one array `X`
    holding a row per row of the table."""
    joined: dict[str, Any] = {}
    elements: dict[str, dict[tuple[int, ...], Any]] = {}
    for name, column in columns.items():
        match = INDEXED_COLUMN.fullmatch(name)
        if match is None:
            joined[name] = column
            continue
        index = tuple(int(i) for i in match["index"].split(","))
        if index in elements.setdefault(match["name"], {}):  # `X[0,1]` and `X[0, 1]`
            raise DataError(f"{where}: two columns name the element {name}", hint="keep one of them")
        elements[match["name"]][index] = column
    for name, by_index in elements.items():
        if name in joined:
            raise DataError(f"{where}: '{name}' is both a column and columns {name}[...]", hint="keep one of them")
        joined[name] = _joined(name, by_index, where)
    return joined


def _joined(name: str, by_index: dict[tuple[int, ...], Any], where: str) -> Any:
    """One array from the columns of its elements, each index from 0 up given once."""
    ranks = {len(index) for index in by_index}
    if len(ranks) > 1:
        raise DataError(f"{where}: the columns {name}[...] have {' and '.join(map(str, sorted(ranks)))} indices",
                        hint=f"every column of '{name}' has as many indices as '{name}' has axes after the first")
    shape = tuple(max(index[axis] for index in by_index) + 1 for axis in range(ranks.pop()))
    if len(by_index) < prod(shape):
        # The first index not given lies within the first len(by_index) + 1 indices, however large the shape.
        missing = next(index for index in _row_major(shape) if index not in by_index)
        raise DataError(f"{where}: column {name}[{', '.join(map(str, missing))}] is missing, but "
                        f"{name}[{', '.join(str(size - 1) for size in shape)}] is given",
                        hint=f"a table gives an array {name} as a column per element of a row, {name}[0], {name}[1], "
                             "... for a matrix, each index from 0 up")
    columns = [by_index[index] for index in _row_major(shape)]
    unread = next((column for column in columns if isinstance(column, NonNumericColumn)), None)
    if unread is not None:
        return unread
    if all(isinstance(column, np.ndarray) for column in columns) and len({column.dtype for column in columns}) == 1:
        return np.stack(columns, axis=1).reshape(len(columns[0]), *shape)
    # Lists of exact ints (CSV) or columns of mixed types: numpy would round ints beyond 2^53 to a common float.
    rows = zip(*(column.tolist() if isinstance(column, np.ndarray) else column for column in columns))
    return [_nested(list(row), shape) for row in rows] or np.zeros((0, *shape))  # no rows, and still its axes


def _row_major(shape: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """The indices of an array of `shape`, the last fastest, one at a time (itertools.product
    would first list every axis: a column `X[99999999999]` must not take that memory)."""
    if not shape:
        yield ()
        return
    for first in range(shape[0]):
        for rest in _row_major(shape[1:]):
            yield (first, *rest)


def _nested(flat: list, shape: tuple[int, ...]) -> list:
    if len(shape) == 1:
        return flat
    step = prod(shape[1:])
    return [_nested(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def on_disk(value: Any) -> bool:
    """Whether an array is a view of a memory-mapped file (numpy's or Arrow's)."""
    while isinstance(value, np.ndarray):
        if isinstance(value, np.memmap):
            return True
        value = value.base
    return type(value).__module__.startswith("pyarrow")


ARRAY_READERS = {".npy": _read_npy, ".arrow": _read_arrow, ".feather": _read_arrow, ".parquet": _read_parquet}
