"""Data are read exactly or refused: every value that a reader would have to guess at, round,
coerce or wait for is a data error (exit 3) naming the file or variable and the rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REGRESSION

from compiler import compile_source
from compiler.cli import main
from compiler.data import elements
from compiler.data import files as data_files
from compiler.data.files import read_data_file

ROOT = Path(__file__).resolve().parent.parent
COUNTS = "data N: int\ndata y: int[N]\nlatent rate ~ Gamma(2, 1)\nobserve y[i] ~ Poisson(rate)\n"


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "regression.ppl"
    path.write_text(REGRESSION)
    return path


def refused(spec: Path, data_path: Path, capsys) -> str:
    """What `pplc run` says about the data, having exited 3 before fitting."""
    assert main(["run", str(spec), "--data", str(data_path)]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def write_json(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# CSV ------------------------------------------------------------------------------------------


def test_a_csv_header_that_repeats_a_column_name_is_refused(tmp_path, spec, capsys):
    path = tmp_path / "data.csv"
    path.write_text("y,y,x\n1,100,1\n2,200,2\n")  # read silently, y would be the second column
    assert f"{path}:1: column 'y' appears more than once" in refused(spec, path, capsys)


def test_a_byte_order_mark_before_a_csv_header_is_dropped(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes("\ufeffx,y\n1,2\n".encode())
    assert read_data_file(path) == {"x": [1], "y": [2]}


@pytest.mark.parametrize("cell", ["1_0", "\u0661\u0662", "\uff11\uff12", "3x", " x3", "1 2", "\u00a05", "", "nan", "inf",
                                  "infinity", "-Infinity", "0x1A", "007", "00.5", "-01", ".", "1e", "--5"])
def test_a_csv_cell_that_is_not_a_plain_decimal_number_is_refused_with_its_line_and_column(tmp_path, spec, capsys, cell):
    path = tmp_path / "data.csv"
    path.write_text(f"y,x\n1,2\n3,{cell}\n", encoding="utf-8")
    assert f"{path}:3: column 'x' holds {cell!r}, not a plain decimal number" in refused(spec, path, capsys)


def test_plain_decimal_numbers_in_csv_read_as_written_with_integer_literals_exact(tmp_path):
    cells = ["12", "-0", "+5", " 7\t", "0.5", ".5", "5.", "-2.50", "1.5e-3", "1E+05", "9007199254740993"]
    path = tmp_path / "data.csv"
    path.write_text("x\n" + "\n".join(cells) + "\n")
    values = read_data_file(path)["x"]
    assert values == [12, 0, 5, 7, 0.5, 0.5, 5.0, -2.5, 0.0015, 1e5, 2**53 + 1]
    assert [type(v) for v in values] == [int] * 4 + [float] * 6 + [int]


def test_a_csv_line_number_counts_a_quoted_cell_that_spans_lines(tmp_path, spec, capsys):
    path = tmp_path / "data.csv"
    path.write_text('y,x,note\n1,2,"two\nlines"\n3,4x,ok\n')
    assert f"{path}:4: column 'x' holds '4x'" in refused(spec, path, capsys)


def test_a_csv_integer_too_long_for_python_to_convert_is_refused(tmp_path, spec, capsys):
    path = tmp_path / "data.csv"
    path.write_text("y,x\n1," + "9" * 5000 + "\n")
    assert "column 'x' holds '99999" in (err := refused(spec, path, capsys))
    assert "an integer of 5000 digits, too long to read" in err


# JSON -----------------------------------------------------------------------------------------


def test_a_byte_order_mark_before_json_is_dropped(tmp_path):
    path = tmp_path / "data.json"
    path.write_bytes('\ufeff{"x": [1.5]}'.encode())
    assert read_data_file(path) == {"x": [1.5]}


@pytest.mark.parametrize(("element", "shown"), [('"1.5"', '"1.5"'), ("true", "true"), ("null", "null")])
def test_strings_booleans_and_nulls_in_a_json_array_are_refused_not_coerced(tmp_path, spec, capsys, element, shown):
    path = write_json(tmp_path / "data.json", f'{{"x": [0.5, {element}], "y": [1, 2]}}')
    assert f"x[1] is {shown}, not a number (in {path})" in refused(spec, path, capsys)


@pytest.mark.parametrize(("given", "refusal"), [('"N": "2", "s": 1.0', "'N' is \"2\", not a number"),
                                               ('"N": true, "s": 1.0', "'N' is true, not a number"),
                                               ('"N": 2, "s": "1.0"', "'s' is \"1.0\", not a number"),
                                               ('"N": 2, "s": false', "'s' is false, not a number")])
def test_a_string_or_boolean_json_scalar_is_refused(tmp_path, capsys, given, refusal):
    spec = tmp_path / "scaled.ppl"
    spec.write_text("data N: int\ndata s: real<lower=0>\ndata y: real[N]\nlatent m ~ Normal(0, 1)\n"
                    "observe y[i] ~ Normal(m, s)\n")
    path = write_json(tmp_path / "data.json", f'{{{given}, "y": [0.5, 1.5]}}')
    assert refusal in refused(spec, path, capsys)


def test_a_json_integer_beyond_2_53_given_to_a_real_is_refused_not_rounded(tmp_path, spec, capsys):
    path = write_json(tmp_path / "data.json", '{"x": [1.5, 9007199254740993], "y": [1, 2]}')
    assert "x[1] = 9007199254740993 is beyond ±2^53, the integers float64 holds exactly" in refused(spec, path, capsys)


def test_integers_up_to_2_53_are_read_exactly(regression):
    loaded = regression.load_data({"x": [-(2**53), 2**53], "y": [0.0, 0.0]})
    assert loaded["x"].tolist() == [-(2.0**53), 2.0**53]


def test_counts_near_2_63_never_reach_the_fit(tmp_path, capsys):
    spec = tmp_path / "counts.ppl"
    spec.write_text(COUNTS)
    path = write_json(tmp_path / "data.json", '{"y": [3, 9223372036854775000]}')
    assert "y[1] = 9223372036854775000 is beyond ±2^53" in refused(spec, path, capsys)


def test_whole_floats_beyond_2_53_in_int_data_are_refused(tmp_path, capsys):
    spec = tmp_path / "counts.ppl"
    spec.write_text(COUNTS)
    path = write_json(tmp_path / "data.json", '{"y": [3, 1e19]}')
    assert "y[1] = 1e+19 is beyond ±2^53" in refused(spec, path, capsys)


def test_a_400_digit_size_is_a_data_error(tmp_path, spec, capsys):
    path = write_json(tmp_path / "data.json", '{"N": 1' + "0" * 400 + ', "x": [1], "y": [2]}')
    assert "'N' = 1.000e+400 is beyond ±2^53" in refused(spec, path, capsys)


def test_a_json_integer_too_long_for_python_to_convert_is_a_data_error(tmp_path, spec, capsys):
    path = write_json(tmp_path / "data.json", '{"N": ' + "9" * 5000 + ', "x": [1], "y": [2]}')
    assert f"{path}: an integer of more than 4,300 digits, too long to read" in refused(spec, path, capsys)


@pytest.mark.parametrize("size", [-1, 2**40 + 1])
def test_a_size_that_is_negative_or_beyond_2_40_is_refused(tmp_path, spec, capsys, size):
    path = write_json(tmp_path / "data.json", json.dumps({"N": size, "x": [], "y": []}))
    assert f"'N' = {size} is not a size: sizes lie in 0..2^40" in refused(spec, path, capsys)


def test_a_size_of_2_40_is_accepted():
    program = compile_source("data J: int\nlatent a[J] ~ Normal(0, 1)\n")
    assert program.load_data({"J": 2**40})["J"] == 2**40


def test_an_int_that_is_no_size_may_be_negative():
    program = compile_source("data lo: int\ndata N: int\ndata y: real<lower=lo>[N]\nlatent m ~ Normal(0, 1)\n"
                             "observe y[i] ~ Normal(m, 1)\n")
    assert program.load_data({"lo": -5, "y": [-4.5, 0.0]})["lo"] == -5


def test_json_nested_100000_deep_is_a_data_error(tmp_path, spec, capsys):
    path = write_json(tmp_path / "data.json", '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert f"{path}: JSON nested deeper than 64 levels" in refused(spec, path, capsys)


def test_json_nested_just_below_the_recursion_limit_is_a_data_error_too(tmp_path, spec, capsys):
    # Python parses this, but later walks (the data's digest) would exceed the recursion limit.
    path = write_json(tmp_path / "data.json", '{"junk": ' + "[" * 900 + "]" * 900 + ', "x": [1], "y": [2]}')
    assert f"{path}: JSON nested deeper than 64 levels" in refused(spec, path, capsys)


@pytest.mark.parametrize(("literal", "shown"), [("NaN", "nan"), ("Infinity", "inf"), ("-Infinity", "-inf")])
def test_nan_and_infinity_literals_in_json_are_refused(tmp_path, spec, capsys, literal, shown):
    path = write_json(tmp_path / "data.json", f'{{"x": [1, 2], "y": [1, {literal}]}}')
    assert f"y[1] is {shown} (in {path})" in refused(spec, path, capsys)


# Arrays: .npy, Arrow and Parquet -----------------------------------------------------------


@pytest.mark.parametrize(("values", "described"), [
    (np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]"), "dates (datetime64[D])"),
    (np.array([1, 2], dtype="timedelta64[s]"), "durations (timedelta64[s])"),
    (np.array([1 + 2j, 3]), "complex numbers (complex128)"),
    (np.array(["1.5", "2"]), "text (<U3)"),
    (np.array([b"1.5", b"2"]), "bytes (|S3)"),
], ids=["datetime", "timedelta", "complex", "text", "bytes"])
def test_a_npy_array_that_is_not_numbers_is_refused_naming_its_dtype(tmp_path, spec, capsys, values, described):
    np.save(tmp_path / "x.npy", values)
    np.save(tmp_path / "y.npy", np.zeros(2))
    assert f"'x' is an array of {described}, not numbers" in refused(spec, tmp_path, capsys)


TEXT_LIKE_COLUMNS = {
    "string": pa.array(["1.5", "2"]),
    "dictionary<values=string, indices=int32, ordered=0>": pa.array(["a", "b"]).dictionary_encode(),
    "timestamp[ms]": pa.array([1, 2], pa.timestamp("ms")),
}


@pytest.mark.parametrize("suffix", [".arrow", ".parquet"])
@pytest.mark.parametrize("arrow_type", TEXT_LIKE_COLUMNS)
def test_an_arrow_or_parquet_column_that_is_not_numbers_is_refused_naming_its_type(tmp_path, spec, capsys, suffix,
                                                                                    arrow_type):
    path = _write_table(pa.table({"x": TEXT_LIKE_COLUMNS[arrow_type], "y": [1.0, 2.0]}), tmp_path / f"data{suffix}")
    assert f"'x' is a column of {arrow_type}, not numbers" in refused(spec, path, capsys)


@pytest.mark.parametrize("suffix", [".arrow", ".parquet"])
def test_undeclared_text_columns_are_left_unread_and_ignored(regression, tmp_path, suffix):
    table = pa.table({"x": [0.5, 1.0], "y": [1.0, 2.0], "label": ["a", "b"], "when": TEXT_LIKE_COLUMNS["timestamp[ms]"]})
    loaded = regression.load_data(_write_table(table, tmp_path / f"data{suffix}"))
    assert loaded["y"].tolist() == [1.0, 2.0]
    assert any("ignoring 'label', 'when'" in warning for warning in loaded.warnings)
    assert read_data_file(tmp_path / f"data{suffix}")["label"] == data_files.NonNumericColumn("string")


@pytest.mark.parametrize("suffix", [".arrow", ".parquet"])
def test_an_arrow_or_parquet_file_that_repeats_a_column_name_is_refused(tmp_path, spec, capsys, suffix):
    table = pa.Table.from_arrays([pa.array([1.0, 2.0]), pa.array([100.0, 200.0]), pa.array([1.0, 2.0])],
                                 names=["y", "y", "x"])
    path = _write_table(table, tmp_path / f"data{suffix}")
    assert f"{path}: column 'y' appears more than once" in refused(spec, path, capsys)


def test_boolean_arrays_are_read_as_zero_and_one_and_stay_on_disk(coin, tmp_path):
    np.save(tmp_path / "x.npy", np.array([True, False, True]))
    loaded = coin.load_data(tmp_path / "x.npy", keep_on_disk=True)
    assert loaded.on_disk == {"x"}
    assert loaded.in_memory()["x"].tolist() == [1.0, 0.0, 1.0]


def test_an_int64_beyond_2_53_far_into_a_npy_array_is_found_a_chunk_at_a_time(tmp_path, spec, capsys, monkeypatch):
    monkeypatch.setattr(elements, "CHUNK_ROWS", 1_000)
    x = np.arange(5_000, dtype=np.int64)
    x[4_321] = 2**53 + 1
    x[4_999] = -(2**63)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.zeros(5_000))
    assert "x[4321] (and 1 more) = 9007199254740993 is beyond ±2^53" in refused(spec, tmp_path, capsys)


def test_uint64_counts_near_2_64_are_refused(tmp_path, capsys):
    spec = tmp_path / "counts.ppl"
    spec.write_text(COUNTS)
    np.save(tmp_path / "y.npy", np.array([1, 2**64 - 1], dtype=np.uint64))
    assert "y[1] = 18446744073709551615 is beyond ±2^53" in refused(spec, tmp_path / "y.npy", capsys)


def _write_table(table: pa.Table, path: Path) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        with pa.ipc.new_file(path, table.schema) as writer:
            writer.write_table(table)
    return path


# Files that are not regular files, and files too large to read into memory --------------------


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, spec):
    fifo = tmp_path / "data.json"
    os.mkfifo(fifo)
    result = subprocess.run([sys.executable, "-m", "compiler", "run", str(spec), "--data", str(fifo)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)  # opening it would wait forever
    assert result.returncode == 3
    assert f"{fifo} is a FIFO (named pipe), not a data file" in result.stderr


def test_a_device_in_a_data_directory_is_refused(tmp_path, spec, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "y.npy", np.zeros(2))
    (folder / "x.npy").symlink_to("/dev/zero")
    assert f"{folder / 'x.npy'} is a character device, not a data file" in refused(spec, folder, capsys)


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_a_text_file_over_the_in_memory_cap_is_refused_before_reading(tmp_path, spec, capsys, monkeypatch, suffix):
    path = tmp_path / f"data{suffix}"
    path.write_text(json.dumps({"x": [0.5] * 100, "y": [1.0] * 100}) if suffix == ".json" else "x,y\n" + "0.5,1\n" * 100)
    monkeypatch.setattr(data_files, "MAX_IN_MEMORY_BYTES", 500)
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes",
                        lambda self: pytest.fail(f"{self} was read") if self == path else read_bytes(self))
    size = path.stat().st_size
    assert f"{path} would be {size:,} bytes read into memory, more than the cap of 500" in refused(spec, path, capsys)


def test_a_parquet_file_that_would_decode_past_the_cap_is_refused(tmp_path, spec, capsys, monkeypatch):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"x": np.zeros(1_000), "y": np.zeros(1_000), "label": ["a"] * 1_000}), path)
    assert path.stat().st_size < 8_000  # zeros compress: the file's size says little about the decoded one
    monkeypatch.setattr(data_files, "MAX_IN_MEMORY_BYTES", 10_000)
    assert f"{path} would be 16,000 bytes decoded into memory" in refused(spec, path, capsys)
