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

import os

# Set before torch loads (when a model is built), so that its OpenMP threads take it: between parallel
# operations they sleep rather than spin. Spinning threads of a process that shares its cores burn
# them: with other work running, `pplc run specs/radon.ppl` took 5.4-15.0 s (5.6-14.7 s of CPU) with
# spinning threads and 3.9-4.4 s (3.4-3.9 s) with sleeping ones; `Program.fit` on radon beside two busy
# processes 4.6 s where PyMC's took 3.4. A value the user set is kept; where torch was imported first,
# OpenMP has read its setting already and this changes nothing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# (after the policy: these modules do not load torch, but nothing below may come before it)
from compiler.api import Program, compare, compile_file, compile_source, load_fit  # noqa: E402
from compiler.errors import DataError, FitError, PplError, Source, Span  # noqa: E402
from compiler.results.warned import (  # noqa: E402
    ConvergenceWarning,
    DataWarning,
    DivergenceWarning,
    FitWarning,
    KhatWarning,
    PplcWarning,
)

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
