"""pplc: compile a .ppl spec into a Pyro model and mean-field guide, fit it, report it.

    from compiler import compile_file
    program = compile_file("specs/coin.ppl")
    report = program.fit(steps=1000, seed=0)

Importing this package is cheap: torch and pyro load when a model is built.
"""

from compiler.api import Program, compile_file, compile_source, load_fit
from compiler.errors import DataError, FitError, PplError, Source, Span

__all__ = [
    "DataError", "FitError", "PplError", "Program", "Source", "Span", "compile_file", "compile_source", "load_fit",
]
