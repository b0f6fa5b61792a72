"""Phase 3, data: data given as Python objects -> raw values, as a data file is read (`files.RawData`).

A mapping of name -> value (a dict; an xarray Dataset, by its data variables)
holds names meant for the spec. A pandas DataFrame, like a CSV file, is a
table: a column per name (the index is no part of the data), a matrix `X` as
columns `X[0]`, `X[1]`, ... (`files.INDEXED_COLUMN`), and columns the spec
does not read are ignored. Values become what files give, to be checked as
theirs are: Python numbers and lists stay as they are, numpy's scalars of
numbers become Python numbers, and arrays (numpy's, torch tensors of any dtype
on any device, pandas Series, anything with `__array__`) become numpy arrays;
a column of text, categories or Python objects becomes a
`files.NonNumericColumn`, refused if the spec declares it, except as labels of
`index` data. pandas and torch are
not imported here: an object can only be theirs once its module is loaded.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from compiler.data import files


def raw_data(data: Any, origin: str) -> files.RawData:
    """The raw values of a mapping of name -> value or of a pandas DataFrame."""
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(data, pandas.DataFrame):
        return _data_frame(data, origin)
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a path, a mapping of name -> value or a pandas DataFrame, "
                        f"not {type(data).__name__}")
    for name in data:
        if not isinstance(name, str):
            raise TypeError(f"data names must be strings, not {name!r}")
    return files.RawData({name: _value(value) for name, value in data.items()})


def _data_frame(frame: Any, origin: str) -> files.RawData:
    names = [str(label) for label in frame.columns]
    files.refuse_repeated_columns(names, origin)
    return files.table({name: _column(frame.iloc[:, position]) for position, name in enumerate(names)}, origin)


def _value(value: Any) -> Any:
    if isinstance(value, np.generic) and value.dtype.kind in "iuf":
        return value.item()  # a number, as JSON gives it (a numpy boolean stays an array: 0 or 1, as in arrays)
    if isinstance(value, (np.ndarray, list, tuple, numbers.Number)) or not hasattr(value, "__array__"):
        return value
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return _tensor(value)
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.Series):
        return _column(value)
    try:
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError):
        return value  # left for the checks, which refuse what is not numbers


def _tensor(value: Any) -> np.ndarray:
    """A tensor's values on the CPU: its gradient, device and lazy views are no part of the data."""
    import torch

    value = value.detach().resolve_conj().resolve_neg().cpu()
    if value.layout != torch.strided:
        value = value.to_dense()
    if value.dtype == torch.bfloat16:
        value = value.to(torch.float32)  # numpy has no bfloat16; float32 holds each of its values exactly
    return value.numpy()


def _column(series: Any) -> Any:
    """A pandas column as a numpy array. A nullable column's missing values become NaN, which the
    check of finiteness refuses, naming the element; a column of text, categories or objects is not read,
    unless `index` data read it as labels (a categorical with its categories in their order)."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype):
        return files.NonNumericColumn(str(dtype), series.tolist) if dtype.kind == "O" else series.to_numpy()
    pandas = sys.modules["pandas"]  # loaded: this is one of its columns
    if isinstance(dtype, pandas.CategoricalDtype):
        return files.NonNumericColumn("category", lambda: files.Categorical(tuple(dtype.categories.tolist()),
                                                                             series.cat.codes.to_numpy()))
    if isinstance(dtype, pandas.StringDtype):
        return files.NonNumericColumn(str(dtype), series.tolist)
    numpy_dtype = getattr(dtype, "numpy_dtype", None)  # pandas' nullable Int64, Float64 and boolean
    if numpy_dtype is None or numpy_dtype.kind not in "biuf":
        return files.NonNumericColumn(str(dtype))
    if series.hasnans:
        return series.to_numpy(dtype=float, na_value=np.nan)
    return series.to_numpy(dtype=numpy_dtype)
