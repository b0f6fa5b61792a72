"""Shared fixtures: paths to the example specs, and a clean Pyro state per test."""

from __future__ import annotations

from pathlib import Path

import pytest

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.fixture(scope="session")
def specs() -> Path:
    return SPECS


@pytest.fixture(autouse=True)
def clean_pyro_state():
    """Each test starts with an empty param store and a fixed seed."""
    import pyro

    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture
def float64():
    """torch's default dtype is float64 for the test (as inside pplc's computations), and what it was after."""
    from compiler.precision import float64 as computing_in_float64

    with computing_in_float64():
        yield
