"""pplc computes in float64, as Stan does: L-BFGS on a badly scaled regression needs
more than float32's seven digits. It does so without changing the process's
default dtype behind the caller's back: every entry point that computes, and
every generated function, runs inside `float64()`, which puts the caller's
default back on the way out. torch is imported only when a computation starts,
so that `pplc check` never loads it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

F = TypeVar("F", bound=Callable)


@contextmanager
def float64() -> Iterator[None]:
    """torch's default dtype is float64 inside, and what it was outside."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def in_float64(function: F) -> F:
    """`function`, computing in float64 whenever it is called."""

    @functools.wraps(function)
    def computed_in_float64(*args, **kwargs):
        with float64():
            return function(*args, **kwargs)

    return computed_in_float64  # type: ignore[return-value]
