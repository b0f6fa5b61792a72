"""Slices `y[a:b]` (0-based and half-open, as in Python) and sizes such as `T - 1`:
their lengths are sizes the checker compares, and the data check computes."""

from __future__ import annotations

import pytest
import torch
from pyro import poutine

from compiler import PplError, compile_source
from compiler.errors import DataError

AR1 = """
data T: int
data y: real[T]
let previous = y[0:T - 1]
let following = y[1:]
latent beta ~ Normal(0, 1)
observe following ~ Normal(beta * previous, 1)
"""

DATA = {"y": [1.0, 2.0, 0.5, -1.0, 0.0]}


def test_a_slice_has_the_length_the_checker_computes():
    model = compile_source(AR1).ir
    assert [let.shape for let in model.lets] == [("T - 1",), ("T - 1",)]


def test_slices_take_python_half_open_ranges():
    program = compile_source(AR1)
    data = program.load_data(DATA)
    assert data["previous"].tolist() == [1.0, 2.0, 0.5, -1.0]
    assert data["following"].tolist() == [2.0, 0.5, -1.0, 0.0]


def test_an_ar1_regression_on_slices_has_the_exact_posterior_mean():
    fit = compile_source(AR1).fit(DATA, seed=0)
    previous, following = torch.tensor(DATA["y"][:-1]), torch.tensor(DATA["y"][1:])
    exact = (previous @ following) / (previous @ previous + 1)
    assert fit.gaussian.mean.item() == pytest.approx(exact.item(), rel=1e-6)


def test_a_size_can_be_a_sum_and_the_data_fix_it():
    source = "data T: int\ndata d: real[T - 1]\nlatent e[T - 1] ~ Normal(d, 1)\n"
    program = compile_source(source)
    assert program.ir.latents[0].shape == ("T - 1",)
    assert "pyro.plate(\"T_minus_1\", T - 1, dim=-1)" in program.code.source
    data = program.load_data({"T": 4, "d": [0.0, 1.0, 2.0]})
    trace = poutine.trace(program.compiled.model).get_trace(data)
    assert trace.nodes["e"]["value"].shape == (3,)


def test_a_size_is_inferred_from_an_array_of_a_summed_length():
    program = compile_source("data T: int\ndata d: real[T - 1]\n")
    assert program.load_data({"d": [0.0, 1.0, 2.0]})["T"] == 4


def test_a_summed_size_that_comes_out_negative_is_a_data_error():
    program = compile_source("data T: int\ndata d: real[T - 3]\n")
    with pytest.raises(DataError, match="the size T - 3 is -2 with T = 1"):
        program.load_data({"T": 1, "d": []})


def test_a_slice_of_a_latent_keeps_its_draws():
    source = "latent z[4] ~ Normal(0, 1)\nlet head = z[0:2]\nlet tail = z[2:] - head\n"
    program = compile_source(source)
    z = torch.tensor([1.0, 2.0, 3.0, 5.0])
    trace = poutine.trace(poutine.condition(program.compiled.model, {"z": z})).get_trace(program.load_data({}))
    assert trace.nodes["tail"]["value"].tolist() == [2.0, 3.0]
    fit = program.fit({}, seed=0)
    assert fit.draws["tail"].shape[1:] == (2,)


@pytest.mark.parametrize("source, message", [
    ("data T: int\ndata N: int\ndata y: real[T]\nlet x = y[N:T]\n", "cannot know the length of this slice"),
    ("data y: real[5]\nlet x = y[3:3]\n", "this slice has 0 elements"),
    ("data y: real[5]\nlet x = y[2:7]\n", "index 6 is out of range for 'y'"),
    ("data y: real[5]\nlatent a ~ Normal(0, 1)\nlet x = y[0:a]\n", "the ends of a slice are sizes"),
    ("data T: int\ndata y: real[T]\ndata z: real[T]\nlet x = y[1:] + z\n", r"shapes \[T - 1\] and \[T\] do not match"),
])
def test_the_checker_refuses_a_slice_of_unknown_or_wrong_length(source, message):
    with pytest.raises(PplError, match=message):
        compile_source(source)


def test_a_slice_past_the_data_is_a_data_error():
    program = compile_source("data T: int\ndata y: real[T]\nlet x = y[2:T + 1]\n")
    with pytest.raises(DataError, match="out of range"):
        program.load_data({"y": [1.0, 2.0, 3.0]})
