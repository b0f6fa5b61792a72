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


@pytest.fixture(autouse=True)
def float64():
    """torch's default dtype is float64 for every test, as inside pplc's computations, so that
    expected values are computed as pplc computes them; what it was before comes back after.
    (tests/test_params.py sets float32 itself, to check that pplc leaves a caller's default alone.)"""
    from compiler.precision import float64 as computing_in_float64

    with computing_in_float64():
        yield
