"""Phase 3, data: `index` data given as labels -> codes, and the labels of each size's levels (`Labels`).

`data county: index[J][N]` holds N codes 0..J-1. The data give them as codes (integers, checked
against J) or as labels: strings (JSON, a CSV column of text, a list, a numpy array of text, a
pandas or Arrow column of text), coded in sorted order, or a categorical (pandas, an Arrow
dictionary), coded in the order of its categories, unused ones included. J, where the data leave
it out, is the number of labels; given, it must be that number. Every `index` data of the same J
shares one set of labels. The labels travel with the data (`values.Data.labels`) to the results,
which name the elements of every axis of length J after them (`a[Boston]`); new data for a
fit's predictions are coded as the fit's data were (`recoded`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from compiler.data import files as data_files
from compiler.data.elements import declaration_error, element_name
from compiler.errors import DataError, Span
from compiler.frontend import ir

GIVE_LABELS = ("give every row as a label (text) or every row as a code 0, 1, ...; a number in a column "
               "of text is read as text")


@dataclass(frozen=True)
class Labels:
    """The labels of the levels of a size, in code order: label k names level k of every axis of that length."""

    size: str  # J
    dim: str  # the `index` data the axes of length J are named after (`county`)
    names: tuple[str, ...]
    coded: tuple[str, ...]  # the `index` data given as labels, coded by them
    span: Span  # the declaration of `dim`, where errors about these labels point


@dataclass(frozen=True)
class _Given:
    """One `index` data's labels as the data give them: the labels of each row, and the levels in
    their order where a categorical fixes it."""

    rows: list[str]
    levels: tuple[str, ...] | None


def code_labels(model: ir.Model, raw: data_files.RawData, origin: str) -> tuple[data_files.RawData, tuple[Labels, ...]]:
    """`raw` with each `index` data given as labels replaced by its codes, and J added where the data
    leave it out; and the labels of each size."""
    given = {decl.name: found for decl in model.data if decl.levels is not None and decl.name in raw
             if (found := _given(decl, raw[decl.name], origin)) is not None}
    coded = data_files.RawData(raw, raw.table_columns)
    labels = []
    for size, dim in model.labelled_sizes.items():
        decls = [decl for decl in model.data if decl.levels == size and decl.name in given]
        if not decls:
            continue
        names = _levels(decls, given, origin)
        codes = {label: code for code, label in enumerate(names)}
        for decl in decls:
            coded[decl.name] = np.array([codes[label] for label in given[decl.name].rows], dtype=np.int64)
        _check_size(model, size, coded, names, decls[0], origin)
        coded.setdefault(size, len(names))
        labels.append(Labels(size, dim, names, tuple(decl.name for decl in decls), _declaration(model, dim).span))
    return coded, tuple(labels)


def recoded(values: Mapping[str, Any], own: tuple[Labels, ...], fitted: tuple[Labels, ...]) -> dict[str, Any]:
    """Codes of new data (`values`, coded by their `own` labels) as codes of the `fitted` labels, and each
    J the fit's: the fit's latents have a level per fitted label, and the new data may name a few of them."""
    by_size = {labels.size: labels for labels in fitted}
    changed = dict(values)
    for labels in own:
        fit = by_size.get(labels.size)
        if fit is None:
            raise DataError(f"'{labels.dim}' is given as labels, but the fit's data gave its codes",
                            labels.span, "give codes here too, as for the fit")
        unseen = [name for name in labels.names if name not in fit.names]
        if unseen:
            raise DataError(f"'{labels.dim}' has the label '{unseen[0]}', not among the {len(fit.names)} labels "
                            f"the fit knows", labels.span,
                            f"the fit has no level for it; its labels are {_listed(fit.names)}")
        mapping = np.array([fit.names.index(name) for name in labels.names], dtype=np.int64)
        for name in labels.coded:
            changed[name] = _mapped(mapping, values[name])
        for size in values:  # J itself, and sizes such as `J - 1` (`ir.size_dim`)
            name, offset = ir.size_terms(size)
            if name == labels.size:
                changed[size] = len(fit.names) + offset
    return changed


def check_recodable(own: tuple[Labels, ...], fitted: tuple[Labels, ...], model: ir.Model) -> None:
    """Whether new data can be recoded as `recoded` does: not where transformed data were computed from
    their own codes or J, nor where an array has an axis of length J and their labels count fewer levels
    than the fit's (the array keeps the new data's J)."""
    changed = {name for labels in own for name in (*labels.coded, labels.size)}
    for let in model.lets:
        read = changed & ({variable.name for variable in ir.variables(let.value)} | set(map(str, let.shape)))
        if let.transformed_data and read:
            raise DataError(f"'{let.name}' is computed from '{sorted(read)[0]}', which new data given as labels "
                            "recode", let.span, "give the new data's index as the fit's codes")
    counts = {labels.size: len(labels.names) for labels in fitted}
    for labels in own:
        if len(labels.names) == counts.get(labels.size, len(labels.names)):
            continue
        for decl in model.data:
            if labels.size in decl.shape:
                raise DataError(f"'{decl.name}' has an axis of length {labels.size}, which is {len(labels.names)} "
                                f"here (the labels of '{labels.dim}') and {counts[labels.size]} in the fit",
                                decl.span, f"give '{labels.dim}' as a pandas Categorical with the fit's labels as "
                                "its categories, so that these data have every level")


def _mapped(mapping: np.ndarray, codes: Any) -> Any:
    """`mapping[codes]` for a tensor or an array of codes, keeping its kind."""
    if isinstance(codes, np.ndarray):
        return mapping[codes]
    import torch

    return torch.as_tensor(mapping, dtype=codes.dtype, device=codes.device)[codes.long()]  # float where no array is indexed


def _given(decl: ir.DataDecl, value: Any, origin: str) -> _Given | None:
    """The labels an `index` data's value gives, or None for codes (numbers, checked as int data are)."""
    if isinstance(value, data_files.NonNumericColumn):
        if value.read_labels is None:
            return None  # refused as a column of its type, as any data is
        value = value.read_labels()
    if isinstance(value, data_files.Categorical):
        return _categorical(decl, value, origin)
    if isinstance(value, np.ndarray) and value.dtype.kind in "USO":
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not any(isinstance(item, str) for item in value):
        return None
    for row, item in enumerate(value):
        if _missing(item):
            raise declaration_error(decl, origin, f"{element_name(decl.name, (row,))} is missing",
                                    "data must be complete; remove or impute missing values")
        if not isinstance(item, str):
            raise declaration_error(decl, origin, f"{element_name(decl.name, (row,))} is {_shown(item)} among labels",
                                    GIVE_LABELS)
    return _Given(list(value), None)


def _categorical(decl: ir.DataDecl, value: data_files.Categorical, origin: str) -> _Given:
    levels = tuple(str(category) for category in value.categories)
    if len(set(levels)) < len(levels):
        raise declaration_error(decl, origin, f"two categories of '{decl.name}' read alike as labels",
                                "give each category a distinct name")
    missing = np.flatnonzero(value.codes < 0)
    if missing.size:
        raise declaration_error(decl, origin, f"{element_name(decl.name, (int(missing[0]),))} is missing",
                                "data must be complete; remove or impute missing values")
    return _Given([levels[code] for code in value.codes.tolist()], levels)


def _levels(decls: list[ir.DataDecl], given: dict[str, _Given], origin: str) -> tuple[str, ...]:
    """The labels of one size: a categorical's categories in their order (every other `index` data
    of that size within them), else every label given, sorted."""
    fixed = [(decl, given[decl.name].levels) for decl in decls if given[decl.name].levels is not None]
    if not fixed:
        return tuple(sorted({label for decl in decls for label in given[decl.name].rows}))
    first, levels = fixed[0]
    for decl in decls:
        outside = next((row for row, label in enumerate(given[decl.name].rows) if label not in levels), None)
        if outside is not None:
            raise declaration_error(decl, origin, f"{element_name(decl.name, (outside,))} = "
                                    f"'{given[decl.name].rows[outside]}' is not among the categories of '{first.name}'",
                                    f"'{first.name}' lists the levels {_listed(levels)}")
    return levels


def _check_size(model: ir.Model, size: str, raw: Mapping[str, Any], names: tuple[str, ...], first: ir.DataDecl,
                origin: str) -> None:
    """J, where the data give it, is the number of labels: a level with no label would name nothing,
    and a label beyond J no level."""
    given = raw.get(size)
    if not isinstance(given, numbers.Real) or isinstance(given, bool) or given == len(names):
        return  # left out (counted from the labels), equal, or not a number: refused as int data are
    if given < len(names):
        raise declaration_error(_declaration(model, size), origin, f"{size} = {given} is too small: '{first.name}' "
                                f"has {len(names)} labels", f"leave {size} out to count the labels")
    raise declaration_error(_declaration(model, size), origin,
                            f"{size} = {given}, but '{first.name}' has only {len(names)} labels",
                            f"leave {size} out to count the labels; for levels no row names, give "
                            f"'{first.name}' as a pandas Categorical whose categories list them")


def _declaration(model: ir.Model, name: str) -> ir.DataDecl:
    return next(decl for decl in model.data if decl.name == name)


def _missing(item: Any) -> bool:
    """None, or the NaN pandas puts for a missing value in a column of text."""
    return item is None or (isinstance(item, float) and math.isnan(item))


def _shown(item: Any) -> str:
    return f"the number {item}" if isinstance(item, numbers.Real) else f"{type(item).__name__} {item!r}"


def _listed(names: tuple[str, ...]) -> str:
    shown = ", ".join(map(repr, names[:5]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > 5 else "")
