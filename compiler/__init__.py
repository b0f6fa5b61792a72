"""pplc: compile a .ppl spec into a Pyro model and mean-field guide, fit it, report it.

    from compiler import compile_file
    program = compile_file("specs/coin.ppl")
    fit = program.fit(steps=1000, seed=0)   # a `Fit`: fit.report, fit.posterior, fit.predict(), ...

Importing this package is cheap: torch and pyro load when a model is built
(and `Fit`'s module, with pydantic, when `compiler.Fit` is first read;
importlib.metadata when `compiler.__version__` is).

A fit's warnings (the report's) are also raised through `warnings`, as `PplcWarning`
subclasses, and each fit logs how it ended on `logging.getLogger("pplc")` (INFO).
"""

from compiler.api import Program, compare, compile_file, compile_source, load_fit
from compiler.errors import DataError, FitError, PplError, Source, Span
from compiler.results.warned import ConvergenceWarning, DataWarning, DivergenceWarning, FitWarning, KhatWarning, PplcWarning

__all__ = [
    "ConvergenceWarning", "DataError", "DataWarning", "DivergenceWarning", "Fit", "FitError", "FitWarning",
    "KhatWarning", "PplError", "PplcWarning", "Program", "Source", "Span", "compare", "compile_file",
    "compile_source", "load_fit",
]


def __getattr__(name: str):
    if name == "Fit":
        from compiler.results.fit import Fit

        return Fit
    if name == "__version__":
        from compiler.api import version

        return version()
    raise AttributeError(f"module 'compiler' has no attribute {name!r}")
