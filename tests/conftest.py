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
