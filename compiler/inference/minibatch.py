"""Splitting data plates by rows: minibatches and shards.

A data plate is the plate of an observe statement scored one observation at a
time, sized by an int data name (`N`). Minibatch SVI (`--batch-size B`) gives
each Adam step B rows of it drawn uniformly (with replacement: O(B), where a
permutation of 10^7 rows costs more than the step); a distributed fit
(`--distributed`) gives each of W processes a contiguous slice. Either way
every array whose leading axis is that size is sliced, the model sees the
smaller size, and those observations' log-likelihood is scaled (N / B for a
batch; W for a shard, so that the mean over the processes is the full
likelihood exactly, whatever the slices' lengths). The generated model and
guide are unchanged; only their data are smaller.

What cannot be split is refused, at the statement that prevents it: a
latent indexed along a data plate (a local latent would need a guide factor
per row, amortised or kept per batch), a size used as a number, an array that
holds the size along a later axis or indexes rows of the plate, and a
statement that reads a whole split array without ranging over its rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pyro.poutine.messenger import Messenger

from compiler.arrays import tensor
from compiler.backend.build import CompiledModel
from compiler.backend.linear_normal import summarised
from compiler.errors import PplError
from compiler.frontend import ir
from compiler.frontend.analysis import statement_variables, summarised_only


@dataclass(frozen=True)
class Rows:
    """Which data plates can be split by rows, and what splitting them touches."""

    sizes: dict[str, int]  # each split size name -> its full length
    arrays: dict[str, str]  # data or transformed-data name -> the size its leading axis has
    sites: dict[str, tuple[str, ...]]  # observe site -> the split sizes among its plates
    indices: frozenset[str]  # arrays of positions into other arrays

    def sliced(self, data: Mapping[str, Any], rows: dict[str, Any], lengths: dict[str, int]) -> dict[str, Any]:
        """The data with each split array cut to `rows[size]` and each size set to its new length."""
        smaller = dict(data)
        smaller.update(lengths)
        smaller.update({name: _take(data[name], rows[size], name in self.indices) for name, size in self.arrays.items()})
        smaller.update({name: tensor(value, name in self.indices) for name, value in data.items()
                        if isinstance(value, np.ndarray) and name not in self.arrays})  # small arrays still on disk
        return smaller


def _take(values, rows, index: bool) -> torch.Tensor:
    """The given rows of an array as a tensor: of a tensor on any device, or of a
    memory-mapped file, of which only these rows are read."""
    if torch.is_tensor(values):
        return values[rows.to(values.device) if torch.is_tensor(rows) else rows]
    return tensor(values[rows.numpy() if torch.is_tensor(rows) else rows], index)


@dataclass(frozen=True)
class Batching:
    rows: Rows
    batch_size: int

    @property
    def scales(self) -> dict[str, float]:
        return {site: math.prod(self.rows.sizes[s] / self.batch_size for s in sizes)
                for site, sizes in self.rows.sites.items()}

    def sample(self, data: Mapping[str, Any], generator: torch.Generator) -> dict[str, Any]:
        """The data of one step: B random rows of every split array, sizes set to B."""
        rows = {size: torch.randint(full, (self.batch_size,), generator=generator, device="cpu")
                for size, full in self.rows.sizes.items()}
        return self.rows.sliced(data, rows, {size: self.batch_size for size in self.rows.sizes})


def plan(compiled: CompiledModel, data: Mapping[str, Any], batch_size: int) -> Batching:
    """What each step subsamples (the plates longer than a batch), or a `PplError`
    at the statement that forbids it."""
    return Batching(split_rows(compiled, data, batch_size, "--batch-size"), batch_size)


def shard(compiled: CompiledModel, data: Mapping[str, Any], rank: int,
          world: int) -> tuple[dict[str, Any], dict[str, float]]:
    """This process's slice of every data plate, and the scale of each split site."""
    rows = split_rows(compiled, data, 0, "--distributed")
    bounds = {size: (full * rank // world, full * (rank + 1) // world) for size, full in rows.sizes.items()}
    sliced = rows.sliced(data, {size: slice(*bound) for size, bound in bounds.items()},
                         {size: high - low for size, (low, high) in bounds.items()})
    return sliced, {site: float(world) for site in rows.sites}


def split_rows(compiled: CompiledModel, data: Mapping[str, Any], longer_than: int, option: str) -> Rows:
    """The rows to split: the first plate (the observed array's first axis) of every
    observe statement scored row by row, where longer than `longer_than`. Statements
    scored from sufficient statistics of all their rows are not split, nor scaled."""
    model_ir: ir.Model = compiled.ir
    by_row = [o for o in model_ir.observed if o.plates and not summarised(o)]
    sizes = {o.plates[0].size: int(data[o.plates[0].size]) for o in by_row if isinstance(o.plates[0].size, str)}
    sizes = {size: length for size, length in sizes.items() if length > longer_than}
    for size in sizes:
        _refuse_local_latents(model_ir, size, option)
        _refuse_size_as_number(model_ir, size, option)
    arrays = _split_arrays(model_ir, sizes, option)
    for statement in model_ir.statements:
        if not getattr(statement, "transformed_data", False):
            _refuse_whole_reads(statement, arrays, option)
    # A factor over split rows sees a batch of them, so it is scaled as the observations are.
    sites = {s.name: tuple(p.size for p in s.plates if p.size in sizes) for s in [*by_row, *model_ir.factors]}
    return Rows(sizes, arrays, {site: split for site, split in sites.items() if split}, model_ir.index_arrays)


def _refuse_local_latents(model_ir: ir.Model, size: str, option: str) -> None:
    for latent in model_ir.latents:
        if latent.chain and latent.shape[0] == size:
            raise PplError(f"{option} splits the rows of '{size}', but the chain '{latent.name}' runs along them: "
                           "its states are summed out over the whole series at once", latent.span,
                           f"fit without {option}")
        if any(plate.size == size for plate in latent.plates):
            raise PplError(f"{option} splits the rows of '{size}', but latent '{latent.name}' has one "
                           f"element per row: a local latent needs a guide factor for every row",
                           latent.span, f"fit without {option}, or give the latent no index along "
                           f"'{size}'")


def _refuse_size_as_number(model_ir: ir.Model, size: str, option: str) -> None:
    for statement in model_ir.statements:
        for variable in statement_variables(statement):
            if variable.name == size:
                raise PplError(f"{option} splits the rows of '{size}', but '{statement.name}' uses "
                               f"'{size}' as a number, which splitting would change", variable.span,
                               f"fit without {option}")


def _split_arrays(model_ir: ir.Model, sizes: dict[str, int], option: str) -> dict[str, str]:
    declared = [(d.name, d.shape, d.index_range, d.span) for d in model_ir.data]
    declared += [(let.name, let.shape, None, let.span) for let in model_ir.lets if let.transformed_data]
    arrays = {}
    for name, shape, index_range, span in declared:
        if index_range in sizes:
            raise PplError(f"{option} splits the rows of '{index_range}', but '{name}' holds row numbers "
                           "of it, which splitting would not keep", span, f"fit without {option}")
        later = [dim for dim in shape[1:] if dim in sizes]
        if later:
            raise PplError(f"{option} splits the rows of '{later[0]}', but '{name}' has them along a "
                           "later axis", span, f"make '{later[0]}' the first axis of '{name}'")
        if shape and shape[0] in sizes:
            arrays[name] = shape[0]
    return arrays


def _refuse_whole_reads(statement: ir.Statement, arrays: dict[str, str], option: str) -> None:
    plated = {plate.size for plate in getattr(statement, "plates", ())}
    for variable in statement_variables(statement):
        size = arrays.get(variable.name)
        if size is not None and size not in plated:
            raise PplError(f"{option} splits the rows of '{size}', but '{statement.name}' reads all of "
                           f"'{variable.name}' at once", variable.span, f"fit without {option}")


class ScaleObservations(Messenger):
    """Multiply the log-likelihood of the named observe sites by their factor."""

    def __init__(self, scales: dict[str, float]):
        super().__init__()
        self.scales = scales

    def _process_message(self, msg) -> None:
        factor = self.scales.get(msg["name"])
        if factor is not None:
            msg["scale"] = factor * msg["scale"]


def on_disk(data) -> bool:
    """Whether some arrays of `data` are memory-mapped files rather than in memory."""
    return bool(getattr(data, "on_disk", ()))


def read_by_row_on_disk(compiled: CompiledModel, data) -> bool:
    """Whether arrays on disk are read row by row (not only for their sufficient statistics)."""
    return bool(getattr(data, "on_disk", frozenset()) - summarised_only(compiled.ir))


def batched(compiled: CompiledModel, data, batch_size: int) -> tuple[Batching, Any]:
    """What each step or round subsamples, and the data with every array read into
    memory but those split into batches; arrays only summarised are left out."""
    batching = plan(compiled, data, batch_size)
    if on_disk(data):
        # The model scores these from their statistics; left in, every batch would carry them whole.
        summarised = summarised_only(compiled.ir)
        data = data.with_values({name: value for name, value in data.items() if name not in summarised})
        data = data.in_memory(keep_on_disk=frozenset(batching.rows.arrays))
    return batching, data
