"""Ctrl-C during a fit, as a flag the fitting loops check between steps.

A KeyboardInterrupt raised wherever Python happens to be can land while a Pyro
effect handler is entering or leaving, and leave it on Pyro's handler stack,
where every later trace would record its sites twice. So while a fit runs, SIGINT
only sets a flag; the loops check it between steps (and the L-BFGS objective
before each evaluation) and stop with the state of the last finished step.
Outside the main thread (where Python delivers signals) nothing changes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Interrupted(Exception):
    """Raised by `check` between steps once Ctrl-C has been pressed."""


_pressed: list[bool] = []  # one entry per active `caught`, innermost last


@contextmanager
def caught() -> Iterator[None]:
    """Within it, Ctrl-C sets the flag that `requested` reads, instead of raising."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    position = len(_pressed)
    _pressed.append(False)

    def press(signum, frame) -> None:
        _pressed[position] = True

    previous = signal.signal(signal.SIGINT, press)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        del _pressed[position:]


def requested() -> bool:
    """Whether Ctrl-C has been pressed since the innermost `caught` began."""
    return bool(_pressed) and _pressed[-1]


def check() -> None:
    """Raise `Interrupted` if Ctrl-C has been pressed: call it only between steps."""
    if requested():
        raise Interrupted
