"""Phase 5: a fit's warnings for Python callers, through `warnings` and `logging`.

The report says what the user must know about a fit (`Report.warnings`, printed by
`pplc` after the table). A fit made through the Python API also raises each of them
once with `warnings.warn`, under a `PplcWarning` subclass that says what kind of
warning it is, so that a notebook shows them and a caller can filter them or turn
them into errors; and logs one note per fit, how it ended, on `logging.getLogger("pplc")`.
The command line prints the report itself and ignores these (`cli.main`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

# inspect and logging are imported when a fit warns: the command line imports this module to ignore its warnings,
# and `pplc check` should not pay for them.
PACKAGE = str(Path(__file__).resolve().parent.parent)


class PplcWarning(UserWarning):
    """A warning about a fit or its data (the report's warnings); the kinds below subclass it."""


class DataWarning(PplcWarning):
    """Something about the data the fit was given (a name the spec does not declare, ...)."""


class ConvergenceWarning(PplcWarning):
    """The fit has not converged: the ELBO still changing, the fit interrupted, or NUTS's chains disagreeing (R̂)."""


class KhatWarning(PplcWarning):
    """The importance weights say the approximation misses regions of the posterior that matter: Pareto
    k̂ above its threshold, or reweighting that would move a mean or sd far (docs/inference.md)."""


class DivergenceWarning(PplcWarning):
    """NUTS had divergent transitions: it may have missed part of the posterior."""


class FitWarning(PplcWarning):
    """What the engine noted about how the fit was made (an approximation it fell back to, a retry, batches)."""


class Warned(NamedTuple):
    """One of a report's warnings and its kind."""

    kind: type[PplcWarning]
    text: str


def raise_warnings(warned: list[Warned], note: str) -> None:
    """Each warning through `warnings.warn`, attributed to the caller's line outside pplc, and `note` logged."""
    import logging

    level = _callers_level()
    for kind, text in warned:
        warnings.warn(text, kind, stacklevel=level)
    logging.getLogger("pplc").info(note)


def _callers_level() -> int:
    """The `stacklevel` of the first frame outside this package: the line in the user's code that fitted."""
    import inspect

    here = inspect.currentframe()  # (None where Python keeps no frames: then the warning names pplc's line)
    frame, level = here.f_back if here else None, 1  # level 1: the caller of `warnings.warn`
    try:
        while frame is not None and frame.f_code.co_filename.startswith(PACKAGE):
            frame, level = frame.f_back, level + 1
        return level
    finally:
        del here, frame  # frames hold their locals: no reference cycles left behind
