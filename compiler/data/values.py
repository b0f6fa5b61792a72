"""Phase 3, data: validated values -> `Data`, the mapping the generated `model(data)` takes.

Values that `validate.load_data` accepted become numbers (scalars) and tensors
(arrays); arrays in memory-mapped files stay numpy arrays (`Data.on_disk`) until
a fit needs them whole (`Data.in_memory`). `digest` fingerprints the raw data,
for the saved fits checked against it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from compiler.arrays import CHUNK_ROWS, tensor
from compiler.data import files as data_files
from compiler.data import labels as labels_module
from compiler.data.labels import Labels
from compiler.frontend import ir


class Data(Mapping):
    """Validated data by name: tensors for arrays, Python numbers for scalars.

    A Mapping, so the generated `model(data)` and `guide(data)` take it directly.
    """

    def __init__(self, values: dict[str, Any], origin: str, digest: str, warnings: tuple[str, ...],
                 placeholders: tuple[str, ...] = (), indices: frozenset[str] = frozenset(),
                 labels: tuple[Labels, ...] = ()):
        self._values = values
        self.origin = origin
        self.digest = digest
        self.warnings = warnings
        self.placeholders = placeholders  # observed arrays the data left out, filled with zeros to simulate
        self.indices = indices  # arrays of positions into other arrays: integer tensors
        self.labels = labels  # the labels of sizes whose `index` data were given as labels
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
        return Data(values, self.origin, self.digest, self.warnings, self.placeholders, self.indices, self.labels)

    def coded_as(self, fitted: tuple[Labels, ...], model: ir.Model) -> Data:
        """These data (new data, for a fit's predictions) with their `index` data coded by the `fitted`
        labels, as the fit's data were, rather than by their own."""
        if set(self.labels) <= set(fitted):
            return self
        labels_module.check_recodable(self.labels, fitted, model)
        return Data(labels_module.recoded(self._values, self.labels, fitted), self.origin, self.digest,
                    self.warnings, self.placeholders, self.indices, fitted)

    def __getitem__(self, name: str):
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


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
    for name, value in values.items():  # sizes such as `T - 1`, looked up like the int data they come from
        if name not in tensors and isinstance(name, str) and ir.size_terms(name)[1]:
            tensors[name] = int(value)
    return tensors


def digest(raw: Mapping[str, Any], labels: tuple[Labels, ...] = ()) -> str:
    """A fingerprint of the raw data (`objects.raw_data` has made Python objects numbers, lists and
    numpy arrays; `labels.code_labels` labels codes): its JSON, the bytes of arrays, and the labels."""
    arrays = {name: value for name, value in raw.items() if isinstance(value, np.ndarray)}
    # A column left unread (`NonNumericColumn`) is known by its type.
    rest = {name: repr(value) if isinstance(value, data_files.NonNumericColumn) else value
            for name, value in raw.items() if name not in arrays}
    hasher = hashlib.sha256(json.dumps(rest, sort_keys=True, default=_as_json).encode())
    if labels:  # data without labels keep the digest they had before labels existed (saved fits pair with it)
        hasher.update(json.dumps([(labels.size, labels.names) for labels in labels]).encode())
    for name in sorted(arrays):
        array = np.atleast_1d(arrays[name])
        hasher.update(f"{name}{array.shape}{array.dtype}".encode())
        for start in range(0, len(array), CHUNK_ROWS):
            hasher.update(np.ascontiguousarray(array[start:start + CHUNK_ROWS]).tobytes())
    return hasher.hexdigest()


def _as_json(value: Any) -> Any:
    """numpy's numbers and arrays within lists given in Python (`list(array)`, a list of rows),
    as the numbers they hold."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not data")  # the checks refuse it before any digest
