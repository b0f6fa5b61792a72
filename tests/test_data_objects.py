"""Data given as Python objects (tensors, numpy, pandas), checked as data files are; names the spec does
not declare; matrices as columns X[0], X[1], ... of a table; `pplc --version`."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from compiler import DataError, compile_source
from compiler.cli import main
from compiler.errors import render

COIN = """data N: int
data x: int<lower=0, upper=1>[N]
latent f ~ Beta(10, 10)
observe x[i] ~ Bernoulli(f)
"""
# A regression on a matrix of two predictors.
MATRIX = """data N: int
data K: int
data X: real[N, K]
data y: real[N]
latent b[K] ~ Normal(0, 1)
observe y[i] ~ Normal(X[i] @ b, 1)
"""
X = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.5]]
Y = [0.5, 1.5, 2.0]


@pytest.fixture(scope="module")
def coin():
    return compile_source(COIN, "coin.ppl")


@pytest.fixture(scope="module")
def matrix():
    return compile_source(MATRIX, "matrix.ppl")


def data_error(program, data) -> DataError:
    with pytest.raises(DataError) as caught:
        program.load_data(data)
    return caught.value


def test_a_torch_tensor_is_data_and_its_length_gives_the_size(coin):
    loaded = coin.load_data({"x": torch.tensor([1.0, 0.0, 1.0], requires_grad=True)})
    assert loaded["N"] == 3
    assert loaded["x"].tolist() == [1.0, 0.0, 1.0]


def test_a_numpy_array_and_a_numpy_integer_are_data(coin):
    loaded = coin.load_data({"N": np.int64(3), "x": np.array([1, 0, 1], dtype=np.int32)})
    assert loaded["N"] == 3
    assert loaded["x"].tolist() == [1.0, 0.0, 1.0]


def test_a_pandas_series_is_data(coin):
    assert coin.load_data({"x": pd.Series([1, 0, 1, 1])})["x"].tolist() == [1.0, 0.0, 1.0, 1.0]


def test_a_data_frame_gives_a_column_per_name_and_its_other_columns_are_ignored_with_a_warning(coin):
    loaded = coin.load_data(pd.DataFrame({"x": [1, 0, 1], "label": ["a", "b", "c"]}))
    assert loaded["x"].tolist() == [1.0, 0.0, 1.0]
    assert loaded.warnings == ("data: ignoring 'label', not declared in the spec",)


def test_a_data_frame_gives_a_matrix_as_columns_x0_x1(matrix):
    loaded = matrix.load_data(pd.DataFrame({"X[1]": [2.0, 4.0, 6.5], "X[0]": [1.0, 3.0, 5.0], "y": Y}))
    assert loaded["X"].tolist() == X
    assert (loaded["N"], loaded["K"]) == (3, 2)


def test_a_csv_file_gives_a_matrix_as_columns_x0_x1(matrix, tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("X[0],X[1],y\n" + "".join(f"{a},{b},{y}\n" for (a, b), y in zip(X, Y)))
    assert matrix.load_data(path)["X"].tolist() == X


def test_a_matrix_whose_column_is_missing_is_refused_naming_that_column(tmp_path, capsys):
    (tmp_path / "matrix.ppl").write_text(MATRIX)
    (tmp_path / "data.csv").write_text("X[0],X[2],y\n1,2,0.5\n")
    assert main(["run", str(tmp_path / "matrix.ppl"), "--data", str(tmp_path / "data.csv")]) == 3
    err = capsys.readouterr().err
    assert "column X[1] is missing, but X[2] is given" in err
    assert "X[0], X[1], ... for a matrix" in err


def test_a_matrix_missing_from_a_table_is_refused_saying_how_a_table_gives_one(matrix):
    error = data_error(matrix, pd.DataFrame({"y": Y}))
    assert error.message == "'X' is missing from the data (in data)"
    assert "in a table (CSV, Parquet, a DataFrame) as columns X[0], X[1], ..." in error.hint


def test_values_from_objects_are_checked_as_file_values_and_refused_at_the_declaration(coin):
    error = data_error(coin, {"x": torch.tensor([1, 0, 2])})
    assert render(error, coin.source).splitlines()[:2] == [
        "coin.ppl:2:1: error: x[2] = 2 is above upper=1 (in data)", "  2 | data x: int<lower=0, upper=1>[N]"]


def test_a_missing_value_in_a_nullable_column_is_refused_at_its_element(coin):
    error = data_error(coin, {"x": pd.Series([1, None, 1], dtype="Int64")})
    assert error.message == "x[1] is nan (in data)"


def test_a_column_of_text_declared_as_data_is_refused_naming_its_type(coin):
    assert "'x' is a column of object, not numbers" in data_error(coin, {"x": pd.Series(["1", "0"], dtype=object)}).message


def test_a_tensor_and_numbers_have_the_digest_of_the_same_values_given_as_numpy(coin):
    as_numpy = coin.load_data({"N": 3, "x": np.array([1, 0, 1])}).digest
    assert coin.load_data({"N": np.int64(3), "x": torch.tensor([1, 0, 1])}).digest == as_numpy


def test_an_xarray_dataset_is_a_mapping_of_its_data_variables(coin):
    xarray = pytest.importorskip("xarray")
    assert coin.load_data(xarray.Dataset({"x": ("flip", [1, 0, 1])}))["x"].tolist() == [1.0, 0.0, 1.0]


def test_a_fit_from_a_data_frame_equals_the_fit_from_the_same_data_as_a_dict(matrix):
    frame = pd.DataFrame({"X[0]": [row[0] for row in X], "X[1]": [row[1] for row in X], "y": Y})
    from_frame = matrix.fit(frame, seed=0, steps=20, draws=1000).posterior
    from_dict = matrix.fit({"X": X, "y": Y}, seed=0, steps=20, draws=1000).posterior
    assert from_frame["b"].mean == pytest.approx(from_dict["b"].mean, abs=1e-12)


def test_an_unknown_key_is_refused_with_a_did_you_mean_at_the_declaration_meant(matrix):
    error = data_error(matrix, {"X": X, "yy": Y})
    assert (error.message, error.hint) == ("unknown data name 'yy' (in data)", "did you mean 'y'?")
    assert render(error, matrix.source).startswith("matrix.ppl:4:1: error: unknown data name 'yy'")


def test_an_unknown_key_like_no_declared_name_is_refused_naming_the_declared_data(coin):
    error = data_error(coin, {"x": [1, 0], "weights": [0.5, 0.5]})
    assert error.message == "unknown data name 'weights' (in data)"
    assert error.hint == "the spec's data are N, x; remove 'weights'"


def test_a_misspelt_size_is_reported_as_an_unknown_name_not_a_missing_size(coin):
    error = data_error(coin, {"n": 2, "x": [1, 0]})
    assert (error.message, error.hint) == ("unknown data name 'n' (in data)", "did you mean 'N'?")


def test_an_unknown_key_in_a_json_file_is_a_data_error_of_the_command_line(tmp_path, capsys):
    (tmp_path / "coin.ppl").write_text(COIN)
    (tmp_path / "coin.data.json").write_text(json.dumps({"N": 2, "x": [1, 0], "xs": [1, 0]}))
    assert main(["check", str(tmp_path / "coin.ppl")]) == 0  # check reads no data
    assert main(["run", str(tmp_path / "coin.ppl")]) == 3
    assert "coin.ppl:2:1: error: unknown data name 'xs' (in " in capsys.readouterr().err


def test_pplc_version_prints_the_installed_version():
    result = subprocess.run([sys.executable, "-m", "compiler", "--version"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent, timeout=60)
    assert (result.returncode, result.stdout) == (0, f"pplc {metadata.version('pplc')}\n")
