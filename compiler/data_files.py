"""Reading data files: name -> raw value, before any validation (`data.load_data`).

JSON (an object of name -> number or nested list) and CSV (a column per
name) are read into memory. Large arrays stay on disk: a `.npy` file is one
array named after the file (`x.npy` is `x`), memory-mapped; an Arrow IPC file
(`.arrow`, `.feather`) holds a column per name, memory-mapped where a column
is one record batch (a column written in several is joined in memory). Parquet
(`.parquet`) holds a column per name too, but is compressed, so its columns
are decoded into memory. A directory is the union of the data files in it.
Arrays from memory-mapped files are checked a million rows at a time and only
read whole where a fit needs them whole (without `--batch-size`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from compiler.errors import DataError

DATA_SUFFIXES = (".json", ".csv", ".npy", ".arrow", ".feather", ".parquet")


def read_data_file(path: str | Path) -> dict[str, Any]:
    """The raw values in a data file, or in every data file of a directory."""
    path = Path(path)
    if path.is_dir():
        return _read_directory(path)
    reader = ARRAY_READERS.get(path.suffix.lower())
    if reader is not None:
        return reader(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read data file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix.lower() == ".csv":
        return _read_csv(text, path)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: the data must be a JSON object of name -> value")
    return raw


def _read_csv(text: str, path: Path) -> dict[str, Any]:
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise DataError(f"{path}: empty CSV file")
    header, body = rows[0], rows[1:]
    columns: dict[str, list[float]] = {name.strip(): [] for name in header}
    for line_number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"{path}:{line_number}: expected {len(header)} columns, got {len(row)}")
        for name, cell in zip(columns, row):
            try:
                value = float(cell)
            except ValueError:
                raise DataError(f"{path}:{line_number}: column '{name}' holds {cell!r}, not a number") from None
            columns[name].append(int(value) if value.is_integer() else value)
    return columns


def _read_npy(path: Path) -> dict[str, Any]:
    try:
        return {path.stem: np.load(path, mmap_mode="r", allow_pickle=False)}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} as a .npy array: {exc}") from None


def _read_arrow(path: Path) -> dict[str, Any]:
    pyarrow = _pyarrow(path)
    try:
        table = pyarrow.ipc.open_file(pyarrow.memory_map(str(path))).read_all()
    except (OSError, pyarrow.ArrowInvalid) as exc:
        raise DataError(f"cannot read {path} as an Arrow IPC file: {exc}") from None
    return _columns(table, path)


def _read_parquet(path: Path) -> dict[str, Any]:
    pyarrow = _pyarrow(path)
    from pyarrow import parquet

    try:
        table = parquet.read_table(path)
    except (OSError, pyarrow.ArrowInvalid) as exc:
        raise DataError(f"cannot read {path} as Parquet: {exc}") from None
    return {name: np.array(column) for name, column in _columns(table, path).items()}  # in memory, not on disk


def _columns(table, path: Path) -> dict[str, Any]:
    """Each column as a numpy array (a view of the file's memory where Arrow allows)."""
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        if column.null_count:
            raise DataError(f"{path}: column '{name}' has {column.null_count} missing values",
                            hint="data must be complete; remove or impute missing values")
        columns[name] = column.to_numpy()
    return columns


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
