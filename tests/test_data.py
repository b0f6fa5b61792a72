"""Data loading: files and dicts -> validated tensors, with errors that name the element and rule."""

from __future__ import annotations

import json

import pytest
import torch

from compiler import DataError, compile_source

COIN = """data N: int
data x: int<lower=0, upper=1>[N]
latent f ~ Beta(10, 10)
observe x[i] ~ Bernoulli(f)
"""


@pytest.fixture
def coin():
    return compile_source(COIN, "coin.ppl")


def data_error(program, raw) -> DataError:
    with pytest.raises(DataError) as caught:
        program.load_data(raw)
    return caught.value


def test_sizes_left_out_are_inferred_from_array_lengths(coin):
    assert coin.load_data({"x": [1, 0, 1]})["N"] == 3


def test_arrays_become_float_tensors(coin):
    data = coin.load_data({"N": 3, "x": [1, 0, 1]})
    assert data["x"].dtype == torch.get_default_dtype()


def test_index_arrays_become_long_tensors():
    program = compile_source("data N: int\ndata J: int\ndata g: int<lower=0>[N]\ndata y: real[N]\n"
                             "latent a[J] ~ Normal(0, 1)\nobserve y[i] ~ Normal(a[g[i]], 1)")
    assert program.load_data({"J": 2, "g": [0, 1, 1], "y": [0.0, 1.0, 2.0]})["g"].dtype == torch.long


def test_missing_variable_is_named(coin):
    assert "'x' is missing" in data_error(coin, {"N": 3}).message


def test_wrong_length_names_declared_and_found_shapes(coin):
    assert "'x' has shape [2], but the spec declares [N] = [3]" in data_error(coin, {"N": 3, "x": [1, 0]}).message


def test_value_outside_bounds_names_the_element_and_the_bound(coin):
    assert "x[2] = 2 is above upper=1" in data_error(coin, {"x": [1, 0, 2]}).message


def test_non_integer_value_of_an_int_array_is_rejected(coin):
    assert "x[1] = 0.5 is not an integer" in data_error(coin, {"x": [1, 0.5]}).message


def test_nan_is_rejected():
    program = compile_source("data N: int\ndata y: real[N]\nlatent m ~ Normal(0, 1)\nobserve y[i] ~ Normal(m, 1)")
    assert "y[1] is nan" in data_error(program, {"y": [1.0, float("nan")]}).message


def test_value_outside_the_observed_support_is_rejected():
    program = compile_source("data N: int\ndata x: int[N]\nlatent f ~ Beta(1, 1)\nobserve x[i] ~ Bernoulli(f)")
    assert "x[0] = 2 is outside the support of Bernoulli" in data_error(program, {"x": [2, 0]}).message


def test_index_out_of_range_hints_that_indexing_is_zero_based():
    program = compile_source("data N: int\ndata J: int\ndata g: int[N]\ndata y: real[N]\n"
                             "latent a[J] ~ Normal(0, 1)\nobserve y[i] ~ Normal(a[g[i]], 1)")
    error = data_error(program, {"J": 2, "g": [0, 2], "y": [0.0, 1.0]})
    assert "g[1] = 2 is out of range" in error.message
    assert "0-based" in error.hint


def test_data_file_beside_the_spec_is_found(tmp_path):
    (tmp_path / "coin.ppl").write_text(COIN)
    (tmp_path / "coin.data.json").write_text(json.dumps({"x": [1, 1, 0]}))
    from compiler import compile_file

    assert compile_file(tmp_path / "coin.ppl").load_data()["N"] == 3


def test_csv_columns_are_arrays(tmp_path, coin):
    path = tmp_path / "coin.csv"
    path.write_text("x\n1\n0\n1\n")
    assert coin.load_data(path)["x"].tolist() == [1.0, 0.0, 1.0]


def test_malformed_json_reports_line_and_column(tmp_path, coin):
    path = tmp_path / "bad.json"
    path.write_text('{"x": [1, 0,]}')
    assert "malformed JSON" in data_error(coin, path).message


def test_a_data_dependent_position_is_checked_against_its_axis():
    program = compile_source("data N: int\ndata k: int\ndata y: real[N]\nlatent m ~ Normal(y[k], 1)")
    error = data_error(program, {"k": 3, "y": [0.0, 1.0, 2.0]})
    assert "index 3 is out of range for 'y', an axis of length 3" in error.message
    assert error.hint == "indexing is 0-based: valid indices are 0..2"


def test_an_int_size_inside_a_subscript_is_a_position_not_an_index_array():
    program = compile_source("data N: int\ndata y: real[N]\nlatent m ~ Normal(y[N - 1], 1)")
    assert program.load_data({"y": [0.0, 1.0, 2.0]})["N"] == 3


def test_observed_data_outside_a_uniform_interval_are_rejected():
    program = compile_source("data N: int\ndata y: real[N]\nobserve y[i] ~ Uniform(0, 2)")
    assert "y[1] = 3 is outside the support of Uniform: it must be in [0, 2]" in data_error(
        program, {"y": [1.0, 3.0]}).message


def test_a_scalar_argument_that_the_data_make_invalid_is_rejected_before_fitting():
    program = compile_source("data s: real\ndata N: int\ndata y: real[N]\nlatent m ~ Normal(0, 1)\n"
                             "observe y[i] ~ Normal(m, s)")
    error = data_error(program, {"s": -1.0, "y": [1.0]})
    assert "the scale of Normal must be positive, got -1" in error.message
    assert (error.span.line, error.span.column) == (5, 26)


def test_a_param_initial_value_outside_its_bounds_with_this_data_is_rejected():
    program = compile_source("data lo: real\ndata N: int\ndata y: real[N]\n"
                             "param s: real<lower=lo> = 1\nobserve y[i] ~ Normal(0, s)")
    assert "the initial value of 's' 1 is not above lower=2" in data_error(program, {"lo": 2.0, "y": [3.0]}).message
