"""Minibatch SVI: each Adam step sees a random batch of the rows of every data plate.

A data plate is the plate of an observe statement scored one observation at a
time, sized by an int data name (`N`). Each step draws B rows of it uniformly
(with replacement: O(B), where a permutation of 10^7 rows costs more than the
step), slices every array whose leading axis is that size, gives the model the
size B, and scales those observations' log-likelihood by N / B, so that the
ELBO's estimate stays unbiased. The generated model and guide are unchanged;
only their data are smaller.

What cannot be subsampled is refused, at the statement that prevents it: a
latent indexed along a data plate (a local latent would need a guide factor
per row, amortised or kept per batch), a size used as a number, an array that
holds the size along a later axis or indexes rows of the plate, and a
statement that reads a whole subsampled array without ranging over its rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from pyro.poutine.messenger import Messenger

from compiler import ir
from compiler.codegen import collapsible
from compiler.errors import PplError


@dataclass(frozen=True)
class Batching:
    batch_size: int
    sizes: dict[str, int]  # each subsampled size name -> its full length
    arrays: dict[str, str]  # data or transformed-data name -> the size its leading axis has
    scales: dict[str, float]  # observe site -> N / B for each of its subsampled plates, multiplied

    def sample(self, data: Mapping[str, Any], generator: torch.Generator) -> dict[str, Any]:
        """The data of one step: B random rows of every subsampled array, sizes set to B."""
        rows = {size: torch.randint(full, (self.batch_size,), generator=generator) for size, full in self.sizes.items()}
        batch = dict(data)
        batch.update({size: self.batch_size for size in self.sizes})
        batch.update({name: data[name][rows[size]] for name, size in self.arrays.items()})
        return batch


def plan(program, data: Mapping[str, Any], batch_size: int) -> Batching:
    """What each step subsamples, or a `PplError` at the statement that forbids it."""
    model_ir: ir.Model = program.ir
    sizes = {plate.size: int(data[plate.size]) for observe in model_ir.observed if not collapsible(observe)
             for plate in observe.plates if isinstance(plate.size, str)}
    sizes = {size: length for size, length in sizes.items() if length > batch_size}
    for size in sizes:
        _refuse_local_latents(model_ir, size)
        _refuse_size_as_number(model_ir, size)
    arrays = _subsampled_arrays(model_ir, sizes)
    for statement in model_ir.statements:
        _refuse_whole_reads(statement, arrays)
    scales = {}
    for observe in model_ir.observed:
        factors = [sizes[p.size] / batch_size for p in observe.plates if p.size in sizes]
        if factors:
            scales[observe.name] = float(torch.tensor(factors).prod())
    return Batching(batch_size, sizes, arrays, scales)


def _refuse_local_latents(model_ir: ir.Model, size: str) -> None:
    for latent in model_ir.latents:
        if any(plate.size == size for plate in latent.plates):
            raise PplError(f"--batch-size subsamples the rows of '{size}', but latent '{latent.name}' has one "
                           f"element per row: a local latent needs a guide factor for every row",
                           latent.span, "fit without --batch-size, or give the latent no index along "
                           f"'{size}'")


def _refuse_size_as_number(model_ir: ir.Model, size: str) -> None:
    for statement in model_ir.statements:
        for variable in _variables(statement):
            if variable.name == size:
                raise PplError(f"--batch-size subsamples the rows of '{size}', but '{statement.name}' uses "
                               f"'{size}' as a number, which a batch would change", variable.span,
                               "fit without --batch-size")


def _subsampled_arrays(model_ir: ir.Model, sizes: dict[str, int]) -> dict[str, str]:
    declared = [(d.name, d.shape, d.index_range, d.span) for d in model_ir.data]
    declared += [(let.name, let.shape, None, let.span) for let in model_ir.lets if let.transformed_data]
    arrays = {}
    for name, shape, index_range, span in declared:
        if index_range in sizes:
            raise PplError(f"--batch-size subsamples the rows of '{index_range}', but '{name}' holds row numbers "
                           "of it, which a batch would not keep", span, "fit without --batch-size")
        later = [dim for dim in shape[1:] if dim in sizes]
        if later:
            raise PplError(f"--batch-size subsamples the rows of '{later[0]}', but '{name}' has them along a "
                           "later axis", span, f"make '{later[0]}' the first axis of '{name}'")
        if shape and shape[0] in sizes:
            arrays[name] = shape[0]
    return arrays


def _refuse_whole_reads(statement: ir.Statement, arrays: dict[str, str]) -> None:
    plated = {plate.size for plate in getattr(statement, "plates", ())}
    for variable in _variables(statement):
        size = arrays.get(variable.name)
        if size is not None and size not in plated:
            raise PplError(f"--batch-size subsamples the rows of '{size}', but '{statement.name}' reads all of "
                           f"'{variable.name}' at once", variable.span, "fit without --batch-size")


def _variables(statement: ir.Statement):
    match statement:
        case ir.Latent() | ir.Observe():
            expressions = [e for _, e in statement.distribution.arguments]
            if isinstance(statement, ir.Observe):
                expressions.append(statement.value)
        case ir.Let():
            expressions = [statement.value]
        case ir.Param():
            expressions = [statement.initial]
    for expression in expressions:
        yield from ir.variables(expression)


class ScaleObservations(Messenger):
    """Multiply the log-likelihood of the named observe sites by their factor."""

    def __init__(self, scales: dict[str, float]):
        super().__init__()
        self.scales = scales

    def _process_message(self, msg) -> None:
        factor = self.scales.get(msg["name"])
        if factor is not None:
            msg["scale"] = factor * msg["scale"]
