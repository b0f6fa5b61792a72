"""Phase 3, build: `GeneratedCode` -> `CompiledModel`, the generated functions as callables.

The one place pplc runs code: `exec` of `GeneratedCode.source`, the output of
`codegen.generate`, which holds only identifiers the checker accepted, numeric
literals and fixed code (tests/test_hostile_specs.py, tests/test_codegen.py).
Everything after this phase takes the typed `CompiledModel`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compiler.backend.codegen import GeneratedCode
from compiler.errors import DataError, PplError
from compiler.frontend import ir
from compiler.precision import in_float64


@dataclass(frozen=True)
class CompiledModel:
    """A checked model and its generated Pyro functions: what inference, data loading and results use."""

    ir: ir.Model
    code: GeneratedCode
    guide_family: str
    model: Callable
    guide: Callable
    transform_data: Callable[[dict], dict]  # the data unchanged where the spec has no transformed data
    collapsed_model: Callable | None  # where some observations are scored from sufficient statistics
    sufficient_statistics: Callable[[Any], Any] | None

    @property
    def guide_parameters(self) -> dict[str, tuple[str, ...]]:
        """Latent -> the `pyro.param` names of its guide factor, as codegen emitted them."""
        return self.code.guide_parameters

    def scored(self, data) -> tuple[Callable, Any]:
        """What a fit evaluates, and the data it takes: `collapsed_model` with the
        data's sufficient statistics where some observations share one distribution
        (the same log joint as `model`, see codegen), else `model` and the data."""
        if self.collapsed_model is None:
            return self.model, data
        statistics = self.sufficient_statistics(data)
        return self.collapsed_model, data.with_values(statistics) if hasattr(data, "with_values") else statistics


# The generated functions pplc calls; each computes in float64 (`precision`) whoever calls it.
GENERATED_FUNCTIONS = ("model", "guide", "collapsed_model", "sufficient_statistics")


def build(code: GeneratedCode, model_ir: ir.Model, guide_family: str, name: str) -> CompiledModel:
    """Compile the generated source into its functions (torch is imported here, not before)."""
    if "solve" in code.runtime_helpers:
        _refuse_missing_solver(model_ir)
    namespace = _execute(code, name)
    transform_data = namespace.get("transform_data")
    generated = {function: namespace.get(function) for function in GENERATED_FUNCTIONS}
    computed = {function: in_float64(value) if value is not None else None for function, value in generated.items()}
    return CompiledModel(
        model_ir, code, guide_family, computed["model"], computed["guide"],
        in_float64(_located_data_errors(transform_data, _filename(name), code)) if transform_data else _unchanged,
        computed["collapsed_model"], computed["sufficient_statistics"])


def _refuse_missing_solver(model_ir: ir.Model) -> None:
    """`solve` runs torchdiffeq, an optional extra: without it, say so at the first ode statement."""
    try:
        import torchdiffeq  # noqa: F401 - imported by `runtime.solve` when it runs
    except ImportError:
        raise PplError("solving an ode needs torchdiffeq, which is not installed", model_ir.odes[0].span,
                       "install pplc's ode extra: pip install 'pplc[ode]' (or pip install torchdiffeq)") from None


def _unchanged(data):
    """`transform_data` of a spec without transformed data: codegen writes no function for it."""
    return data


def _filename(name: str) -> str:
    return f"<pplc generated from {name}>"


def _execute(code: GeneratedCode, name: str) -> dict[str, Any]:
    import linecache

    filename = _filename(name)
    # Registered so tracebacks and debuggers show the generated lines.
    linecache.cache[filename] = (len(code.source), None, code.source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "pplc_generated"}
    exec(compile(code.source, filename, "exec"), namespace)  # noqa: S102 - see the module docstring
    return namespace


# What computing transformed data can raise on data that passed the checks: a computed
# index out of range, an array too large to allocate, a value outside a function's domain.
DATA_FAILURES = (ArithmeticError, IndexError, RuntimeError, ValueError)


def _located_data_errors(transform_data, filename: str, code: GeneratedCode):
    """`transform_data` raising a `DataError` at the statement it could not compute."""

    def located(data):
        try:
            return transform_data(data)
        except DATA_FAILURES as error:
            name = _failed_assignment(error, filename, code)
            name = name if name in code.transformed_spans else None
            raise DataError(f"cannot compute {f'{name!r}' if name else 'the transformed data'} from this data: "
                            f"{error}", code.transformed_spans.get(name), "check the data it is computed from") from error

    return located


def _failed_assignment(error: BaseException, filename: str, code: GeneratedCode) -> str | None:
    """The name assigned by the last generated statement the traceback passes through."""
    line = None
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == filename:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return code.assigned_lines.get(line)
