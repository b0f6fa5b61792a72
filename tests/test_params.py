"""pplc leaves the caller's state alone: every fit runs in a param store of its own, and
the process's default dtype is what the caller set, whatever pplc computed in between."""

from __future__ import annotations

import pyro
import pytest
import torch

from compiler import compile_file


@pytest.fixture(scope="module")
def coin(specs):
    return compile_file(specs / "coin.ppl")


def test_a_fit_leaves_the_users_param_store_as_it_was(coin):
    mine = pyro.param("my_weight", torch.tensor([1.0, 2.0]))
    coin.fit(seed=0)
    assert list(pyro.get_param_store().keys()) == ["my_weight"]
    assert pyro.param("my_weight") is mine


def test_a_prediction_and_a_trace_leave_the_users_param_store_as_it_was(coin):
    pyro.param("my_weight", torch.tensor(3.0))
    coin.predict(draws=10, seed=0)
    coin.trace(fitted=True)
    assert list(pyro.get_param_store().keys()) == ["my_weight"]


@pytest.mark.parametrize("step", ["load_data", "fit", "predict", "trace", "model"])
def test_the_default_dtype_is_the_callers_after_every_step(coin, step):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        data = coin.load_data()
        {"load_data": lambda: data, "fit": lambda: coin.fit(data, seed=0),
         "predict": lambda: coin.predict(draws=10, seed=0), "trace": lambda: coin.trace(data),
         "model": lambda: coin.model(data)}[step]()
        assert torch.get_default_dtype() == torch.float32
    finally:
        torch.set_default_dtype(previous)


def test_pplc_computes_in_float64_whatever_the_callers_default(coin):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        trace = pyro.poutine.trace(coin.guide).get_trace(coin.load_data())
        assert trace.nodes["f"]["value"].dtype == torch.float64
        assert pyro.param("f.loc").dtype == torch.float64
    finally:
        torch.set_default_dtype(previous)
