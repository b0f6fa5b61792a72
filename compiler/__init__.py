"""pplc: compile a .ppl spec into a Pyro model and mean-field guide, fit it, report it.

    from compiler import compile_file
    program = compile_file("specs/coin.ppl")
    fit = program.fit(steps=1000, seed=0)   # a `Fit`: fit.report, fit.posterior, fit.predict(), ...

Importing this package is cheap: torch and pyro load when a model is built
(and `Fit`'s module, with pydantic, when `compiler.Fit` is first read;
importlib.metadata when `compiler.__version__` is).
"""

from compiler.api import Program, compile_file, compile_source, load_fit
from compiler.errors import DataError, FitError, PplError, Source, Span

__all__ = [
    "DataError", "Fit", "FitError", "PplError", "Program", "Source", "Span", "compile_file", "compile_source",
    "load_fit",
]


def __getattr__(name: str):
    if name == "Fit":
        from compiler.results.fit import Fit

        return Fit
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'compiler' has no attribute {name!r}")


def _version() -> str:
    """The installed distribution's version, read when asked: importing importlib.metadata
    would add about 35 ms to every command."""
    from importlib import metadata

    try:
        return metadata.version("pplc")
    except metadata.PackageNotFoundError:  # a checkout on the path, never installed
        return "0+unknown"
