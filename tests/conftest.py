"""Shared fixtures: the example specs, the programs many tests use (compiled once per
session), the fits several modules read (made once per session), float64 for one test,
and a clean Pyro state per test.

A shared program or fit is only read: a test that needs other options compiles or fits
its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler import compile_file, compile_source

SPECS = Path(__file__).resolve().parent.parent / "specs"
COIN = SPECS / "coin.ppl"
LINEAR_REGRESSION = SPECS / "linear_regression.ppl"
RADON = SPECS / "radon.ppl"
# The smallest spec with a data plate to split: one slope through the origin.
REGRESSION = "data N: int\ndata x: real[N]\ndata y: real[N]\nlatent a ~ Normal(0, 5)\nobserve y[i] ~ Normal(a * x[i], 1)\n"


@pytest.fixture(scope="session")
def specs() -> Path:
    return SPECS


@pytest.fixture(scope="session")
def coin():
    """specs/coin.ppl: Beta(10, 10) and ten flips, posterior Beta(16, 14)."""
    return compile_file(COIN)


@pytest.fixture(scope="session")
def linear_regression():
    """specs/linear_regression.ppl: 200 rows, three slopes."""
    return compile_file(LINEAR_REGRESSION)


@pytest.fixture(scope="session")
def regression():
    """`REGRESSION`, compiled: data are given by each test."""
    return compile_source(REGRESSION)


@pytest.fixture(scope="session")
def fitted_coin(coin):
    """The coin fitted at default settings, seed 0."""
    return coin.fit(seed=0)


@pytest.fixture(scope="session")
def fitted_coin_with_adam(coin):
    """The coin fitted with Adam's steps, seed 0."""
    return coin.fit(seed=0, optimizer="adam")


@pytest.fixture(scope="session")
def fitted_linear_regression(linear_regression):
    """The linear regression fitted at default settings, seed 0 (as `pplc run` fits it)."""
    return linear_regression.fit(seed=0)


@pytest.fixture(scope="session")
def linear_regression_in_batches(linear_regression):
    """The linear regression fitted from batches of 40 of its 200 rows, seed 0: minibatch
    L-BFGS whose rounds are averaged once they have held 1,000 rows (25 rounds)."""
    return linear_regression.fit(seed=0, batch_size=40)


@pytest.fixture(scope="session")
def radon():
    """specs/radon.ppl: 85 county intercepts, their mean and sd, a slope and the noise."""
    return compile_file(RADON)


@pytest.fixture(scope="session")
def fitted_radon(radon):
    """specs/radon.ppl fitted at default settings, seed 0."""
    return radon.fit(seed=0)


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
