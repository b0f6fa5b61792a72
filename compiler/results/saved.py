"""A fit saved to a file (`pplc run --save`), and loaded back only with the spec
and the data it was made from.

The file is JSON: the spec's text and SHA-256, the data's SHA-256, the guide
family, the report, the guide's parameters (unconstrained, by their
`pyro.param` names), how many draws the report summarised and, where they came
from the linear-response Gaussian, that Gaussian (its mean and the rows of its
Cholesky factor's lower triangle: the rest is the guide's). Loading recompiles
the saved text, so the report and the guide can be used without the original
file, and draws the report's draws again from the same Gaussian with the same
seed (`engine.redraw`): the same draws, and so the same predictions. Pairing a
fit with a spec or data whose hash differs is an error, never a silent mismatch.

A fit file is input like any other: it is believed only as far as it proves
itself. The spec must have the hash stored with it and compile, the guide
parameters must be arrays of finite numbers with the names the spec gives
them (and, once the data are there, the shapes, and values their guide can
draw from), a Gaussian must be one the guide can have, of its dimension, with a
positive diagonal, and names read from it are printed with control characters
escaped, so a crafted file can neither pass for another model, nor crash a
command, nor drive the terminal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, ValidationError
from typing_extensions import TypeAliasType

from compiler.backend import codegen
from compiler.errors import DataError, PplError
from compiler.results import engine, files
from compiler.results.report import Report

if TYPE_CHECKING:
    from compiler.data.values import Data
    from compiler.results.program import CompiledProgram

FORMAT = "pplc-fit/2"
REFIT_HINT = "fit again with `pplc run --save`"
WRITE_HINT = "write one with `pplc run SPEC --save FILE`"
MAX_SEED = 2**32 - 1  # the largest seed Pyro accepts (NumPy's limit)

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]  # a JSON number: no strings, booleans, NaN
Values = TypeAliasType("Values", Union[Number, list["Values"]])


class SavedGaussian(BaseModel):
    """The linear-response Gaussian the report's draws came from, over the guide's coordinates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mean: list[Number]
    scale_tril: list[list[Number]]  # the rows of its lower triangle: row i holds i + 1 numbers

class SavedFit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["pplc-fit/2"] = FORMAT
    spec_name: str
    spec_text: str
    spec_sha256: Sha256
    data_origin: str
    data_sha256: Sha256
    guide_family: Literal[codegen.GUIDE_FAMILIES]
    report: Report
    guide_parameters: dict[str, Values]  # unconstrained values by pyro.param name
    draws: Annotated[int, Strict(), Field(ge=2)]  # how many the report summarised
    linear_response: SavedGaussian | None = None  # where the report's draws came from it


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def printable(text: str) -> str:
    """`text` with control and other unprintable characters escaped as Python
    writes them (`\\x1b`, `\\n`, `\\u202e`): for names read from a file."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def save(path: str | Path, report: Report, program: CompiledProgram, data: Data, guide_state: dict[str, Any],
         draws: int, gaussian: Any) -> None:
    """The fit in `path`: the report, the spec and the data's hash beside the guide's parameters,
    the number of `draws` and the linear-response Gaussian they came from (if they did)."""
    corrected = None
    if gaussian is not None and gaussian.kind == "linear-response":
        rows = [gaussian.scale_tril[row, :row + 1].tolist() for row in range(len(gaussian.mean))]
        corrected = SavedGaussian(mean=gaussian.mean.tolist(), scale_tril=rows)
    saved = SavedFit(
        spec_name=program.source.name, spec_text=program.source.text, spec_sha256=sha256(program.source.text),
        data_origin=data.origin, data_sha256=data.digest, guide_family=program.guide_family, report=report,
        guide_parameters={name: value.tolist() for name, value in guide_state["params"].items()}, draws=draws,
        linear_response=corrected)
    text = saved.model_dump_json(exclude_none=True)
    files.write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def load(path: str | Path) -> SavedFit:
    """The fit in `path`, refused unless it is well formed and its spec is the one its hash names."""
    try:
        fit = SavedFit.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise PplError(f"cannot read fit file {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise PplError(f"{path} is not a pplc fit file: it is not UTF-8 text", hint=WRITE_HINT) from None
    except ValidationError as error:
        raise PplError(f"{path} is not a pplc fit file: {_first_problem(error)}", hint=WRITE_HINT) from None
    if sha256(fit.spec_text) != fit.spec_sha256:
        raise PplError(f"{path} does not hold the spec it was saved with: the spec's SHA-256 is not the one "
                       "stored beside it", hint=REFIT_HINT)
    _check_arrays(fit, path)
    if not 0 <= fit.report.seed <= MAX_SEED:
        raise PplError(f"{path} is not a pplc fit file: its seed {fit.report.seed} is not one a fit can have",
                       hint=REFIT_HINT)
    return fit


def _check_arrays(fit: SavedFit, path: str | Path) -> None:
    """Guide parameters are arrays, and each site's summaries are arrays of one shape."""
    for name, values in fit.guide_parameters.items():
        if _shape(values) is None:
            raise PplError(f"{path} is not a pplc fit file: guide parameter {printable(name)} is not an array "
                           "(lists of uneven lengths)", hint=REFIT_HINT)
    for site, summary in fit.report.posterior.items():
        shapes = {_shape(values) for values in summary.model_dump(exclude_none=True).values()}
        if len(shapes) != 1 or None in shapes:
            raise PplError(f"{path} is not a pplc fit file: the summaries of {printable(site)} are not arrays "
                           "of one shape", hint=REFIT_HINT)


def _first_problem(error: ValidationError) -> str:
    problem = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in problem["loc"])
    return printable(f"{where}: {problem['msg']}" if where else problem["msg"])


def compile_spec(fit: SavedFit, path: str | Path,
                 compile_source: Callable[[str, str, str], CompiledProgram]) -> CompiledProgram:
    """The stored spec compiled (never run) by `compile_source(text, name, guide)` (`api`'s),
    with the guide parameters the file holds checked against the names it gives them."""
    try:
        program = compile_source(fit.spec_text, fit.spec_name, fit.guide_family)
    except PplError as error:
        where = f" (line {error.span})" if error.span else ""
        raise PplError(f"{path} holds a spec that does not compile{where}: {printable(error.message)}",
                       hint=REFIT_HINT) from None
    expected = {name for names in program.code.guide_parameters.values() for name in names}
    expected |= {param.name for param in program.ir.params}  # a spec's `param` is a pyro.param of its name
    missing, unexpected = sorted(expected - set(fit.guide_parameters)), sorted(set(fit.guide_parameters) - expected)
    if missing or unexpected:
        found = [f"{label} {', '.join(printable(name) for name in names)}"
                 for label, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise PplError(f"{path} does not hold the guide parameters of its spec: {'; '.join(found)}",
                       hint=REFIT_HINT)
    return program


def restore_guide(fit: SavedFit, program: CompiledProgram, data: Data, path: str | Path) -> dict[str, Any]:
    """The saved guide parameters as a guide state (`engine.restore_guide`), each
    checked first for the shape this spec and data give it, then for a value its
    guide can draw from."""
    for name, shape in engine.guide_shapes(program, data).items():
        _check_shape(name, fit.guide_parameters[name], shape, path)
    state, constrained = engine.restore_guide(program, data, fit.guide_parameters)
    for name, (value, constraint) in constrained.items():
        _check_range(name, value, constraint, path)
    return state


def redraw(fit: SavedFit, program: CompiledProgram, data: Data, guide_state: dict[str, Any],
           path: str | Path) -> tuple[dict[str, Any], Any]:
    """The report's draws made again, and the Gaussian they came from (`engine.redraw`), from a Gaussian checked first to be
    one this spec's guide can have and, for the linear-response one, a Cholesky factor of its dimension."""
    kind = fit.report.covariance
    if kind is not None and kind not in engine.gaussian_kinds(program, data):
        raise PplError(f"{path}: its report's draws came from a {printable(kind)} Gaussian, which no fit of "
                       "this spec to these data draws from", hint=REFIT_HINT)
    if (kind == "linear-response") != (fit.linear_response is not None):
        found = "holds no" if fit.linear_response is None else "holds a"
        raise PplError(f"{path} {found} linear-response Gaussian, where its report says its draws came from "
                       f"{'one' if kind == 'linear-response' else 'none'}", hint=REFIT_HINT)
    corrected = None
    if fit.linear_response is not None:
        _check_cholesky(fit.linear_response, engine.coordinates(program, guide_state), path)
        corrected = fit.linear_response.mean, fit.linear_response.scale_tril
    draws, gaussian = engine.redraw(program, data, guide_state, fit.draws, fit.report.seed, kind, corrected,
                                    fit.report.resampled, fit.report.khat_draws or 0)
    if not all(values.isfinite().all() for values in draws.values()):
        raise PplError(f"{path}: its guide gives draws that are not finite numbers", hint=REFIT_HINT)
    return draws, gaussian


def _check_cholesky(gaussian: SavedGaussian, coordinates: int, path: str | Path) -> None:
    rows = gaussian.scale_tril
    if len(gaussian.mean) != coordinates or len(rows) != coordinates:
        raise PplError(f"{path}: its linear-response Gaussian has a mean of {len(gaussian.mean)} and {len(rows)} "
                       f"rows, where the guide has {coordinates} coordinates", hint=REFIT_HINT)
    if any(len(row) != index + 1 or not row[index] > 0 for index, row in enumerate(rows)):
        raise PplError(f"{path}: its linear-response Gaussian's scale_tril is not a Cholesky factor (row i holds "
                       "i + 1 numbers, the last of them positive)", hint=REFIT_HINT)


def _shape(values: Values) -> tuple[int, ...] | None:
    """The shape of nested lists of numbers; None when they are not a rectangular array."""
    import numpy as np

    try:
        return np.asarray(values, dtype=float).shape
    except ValueError:  # lists of uneven lengths, or more than NumPy's 64 dimensions
        return None


def _check_shape(name: str, values: Values, shape: tuple[int, ...], path: str | Path) -> None:
    found = _shape(values)  # an array: `load` refused anything else
    if found != shape:
        raise PplError(f"{path}: guide parameter {printable(name)} has shape {list(found)}, where the "
                       f"spec and data give it shape {list(shape)}", hint=REFIT_HINT)


def _check_range(name: str, value, constraint, path: str | Path) -> None:
    # A finite unconstrained number can still leave its constraint once mapped (exp(-1e308) is a scale of 0).
    if not (value.isfinite().all() and constraint.check(value).all()):
        raise PplError(f"{path}: guide parameter {printable(name)} is out of range once constrained "
                       f"({constraint})", hint=REFIT_HINT)


def data_file(fit: SavedFit) -> Path | None:
    """The data file the fit was made from, if it is still there."""
    try:
        return Path(fit.data_origin) if Path(fit.data_origin).is_file() else None
    except (OSError, ValueError):  # a name the system cannot look up (too long, a NUL byte)
        return None


def printable_report(report: Report) -> Report:
    """A copy of `report` for the terminal: every name in it with control characters escaped."""
    def keys_escaped(values: dict) -> dict:
        return {printable(name): value for name, value in values.items()}

    return report.model_copy(update={
        "spec": printable(report.spec), "posterior": keys_escaped(report.posterior),
        "params": keys_escaped(report.params), "discrete": keys_escaped(report.discrete),
        "guide": {printable(name): printable(family) for name, family in report.guide.items()},
        "warnings": [printable(warning) for warning in report.warnings]})


def check_pairing(saved: SavedFit, spec_text: str | None, data: Data | None) -> None:
    """The spec and data given now must be those the fit was made from."""
    if spec_text is not None and sha256(spec_text) != saved.spec_sha256:
        raise PplError(f"this fit was made from a different version of {printable(saved.spec_name)} "
                       f"(sha256 {saved.spec_sha256[:12]}…)", hint=REFIT_HINT)
    if data is not None and data.digest != saved.data_sha256:
        raise DataError(f"this fit was made from other data ({printable(saved.data_origin)}, sha256 "
                        f"{saved.data_sha256[:12]}…) than {data.origin}", hint="pass the data it was fitted to")
