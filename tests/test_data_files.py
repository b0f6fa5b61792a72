"""Data from disk: .npy arrays (memory-mapped), Arrow IPC and Parquet columns,
and directories of data files; large arrays are checked a chunk of rows at a
time and, with --batch-size, read a batch at a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from compiler import compile_file, compile_source
from compiler.backend import runtime
from compiler.errors import DataError
from compiler.inference import minibatch

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("spec", sorted(ROOT.glob("specs/*.ppl")) + sorted(ROOT.glob("specs/posteriordb/*.ppl")),
                         ids=lambda path: path.stem)
def test_every_example_data_file_loads(spec):
    assert compile_file(spec).load_data() is not None


def test_a_npy_file_is_one_array_named_after_it_and_stays_memory_mapped(coin, tmp_path):
    np.save(tmp_path / "x.npy", np.array([1, 0, 1, 1, 0, 1, 1, 0, 1, 0], dtype=np.int8))
    data = coin.load_data(tmp_path / "x.npy", keep_on_disk=True)
    assert data["N"] == 10  # inferred from the array's length
    assert data.on_disk == {"x"}
    assert data.in_memory()["x"].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0]


def test_arrow_and_parquet_files_hold_a_column_per_name(regression, tmp_path):
    table = pa.table({"x": [0.5, 1.0, 1.5], "y": [1.0, 2.1, 2.9]})
    with pa.ipc.new_file(tmp_path / "data.arrow", table.schema) as writer:
        writer.write_table(table)
    pq.write_table(table, tmp_path / "data.parquet")
    arrow = regression.load_data(tmp_path / "data.arrow", keep_on_disk=True)
    parquet = regression.load_data(tmp_path / "data.parquet", keep_on_disk=True)
    assert arrow.on_disk == {"x", "y"} and not parquet.on_disk  # Parquet is decoded into memory
    assert arrow.in_memory()["y"].tolist() == parquet["y"].tolist() == [1.0, 2.1, 2.9]


def test_a_directory_is_the_union_of_its_data_files(regression, tmp_path):
    np.save(tmp_path / "x.npy", np.array([0.5, 1.0, 1.5]))
    (tmp_path / "y.json").write_text(json.dumps({"y": [1.0, 2.0, 3.0]}))
    data = regression.load_data(tmp_path)
    assert data["N"] == 3 and data["y"].tolist() == [1.0, 2.0, 3.0]


def test_a_name_given_twice_in_a_directory_is_an_error(regression, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3))
    (tmp_path / "more.json").write_text(json.dumps({"x": [1.0, 2.0, 3.0]}))
    with pytest.raises(DataError, match="'x' is given by more than one file"):
        regression.load_data(tmp_path)


def test_a_bad_row_far_into_a_large_array_is_named(coin, tmp_path):
    flips = np.zeros(3_000_000, dtype=np.int8)
    flips[2_500_001] = 2
    np.save(tmp_path / "x.npy", flips)
    with pytest.raises(DataError, match=r"x\[2500001\] = 2 is above upper=1"):
        coin.load_data(tmp_path / "x.npy")


def test_a_minibatch_fit_reads_arrays_on_disk_a_batch_at_a_time(regression, tmp_path, monkeypatch):
    x = np.random.default_rng(0).normal(size=100_000)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", 2 * x + np.random.default_rng(1).normal(size=100_000))
    sources = []
    sample = minibatch.Batching.sample
    monkeypatch.setattr(minibatch.Batching, "sample",
                        lambda self, data, generator: sources.append(data.on_disk) or sample(self, data, generator))
    report = regression.fit(tmp_path, batch_size=1_000)
    assert sources and all(on_disk == {"x", "y"} for on_disk in sources)
    assert report.posterior["a"].mean == pytest.approx(2.0, abs=0.02)
    assert any("the data stay on disk" in note for note in report.warnings)


def test_statistics_of_an_array_on_disk_are_read_a_chunk_at_a_time(coin, tmp_path, monkeypatch):
    flips = (np.random.default_rng(0).random(100_000) < 0.3).astype(np.int8)
    np.save(tmp_path / "x.npy", flips)
    monkeypatch.setattr(runtime, "CHUNK_ROWS", 30_000)
    read = []
    flat = runtime._flat
    monkeypatch.setattr(runtime, "_flat", lambda values: read.append(len(values)) or flat(values))
    report = coin.fit(tmp_path / "x.npy", batch_size=10_000)
    assert read == [30_000, 30_000, 30_000, 10_000]
    # The exact Beta posterior; L-BFGS with one antithetic pair fits this one coordinate
    # to within 2 % in sd (docs/inference.md), the mean far closer.
    heads, tails = 10 + int(flips.sum()), 10 + len(flips) - int(flips.sum())
    mean = heads / (heads + tails)
    sd = (mean * (1 - mean) / (heads + tails + 1)) ** 0.5
    assert report.posterior["f"].mean == pytest.approx(mean, abs=0.1 * sd)
    assert report.posterior["f"].sd == pytest.approx(sd, rel=0.05)


# This process's own peak (VmHWM, KiB): Linux carries ru_maxrss over from the parent
# (here pytest) through fork and exec.
PEAK_MIB = "next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM')) // 1024"


def _regression_on_disk(directory: Path) -> Path:
    np.save(directory / "x.npy", np.linspace(-1, 1, 50))
    np.save(directory / "y.npy", 2 * np.linspace(-1, 1, 50) + np.random.default_rng(0).normal(size=50))
    return directory


def test_nuts_and_the_trace_read_arrays_on_disk_whole(regression, tmp_path):
    data = _regression_on_disk(tmp_path)
    assert regression.sample(data, warmup=20, samples=20, chains=1).posterior["a"].mean == pytest.approx(2.0, abs=1.0)
    assert regression.trace(data).model_sites


def test_a_batch_as_large_as_the_data_reads_it_whole(regression, tmp_path):
    report = regression.fit(_regression_on_disk(tmp_path), batch_size=50, steps=50)
    assert any("nothing to subsample" in note for note in report.warnings)


def test_small_arrays_on_disk_beside_split_ones_reach_the_model_as_tensors(tmp_path):
    program = compile_source("data N: int\ndata K: int\ndata w: real[K]\ndata x: real[N]\ndata y: real[N]\n"
                             "latent a ~ Normal(0, 5)\nobserve y[i] ~ Normal(a * x[i] + w[0], 1)\n")
    np.save(tmp_path / "w.npy", np.array([0.5, 0.0]))
    report = program.fit(_regression_on_disk(tmp_path), batch_size=10, steps=50)
    assert report.posterior["a"].mean == pytest.approx(2.0, abs=1.0)


def test_a_scalar_in_a_npy_file_is_a_number(regression, tmp_path):
    _regression_on_disk(tmp_path)
    np.save(tmp_path / "N.npy", np.array(50))
    assert regression.load_data(tmp_path)["N"] == 50


@pytest.mark.slow
def test_fitting_fifty_million_rows_on_disk_never_holds_them_in_memory(tmp_path):
    # 5 * 10^7 flips: a 50 MB file, 400 MB as float64. Peak memory must stay below the
    # process's size without the data plus one copy of the file's bytes.
    path = tmp_path / "x.npy"
    flips = np.lib.format.open_memmap(path, mode="w+", dtype=np.int8, shape=(50_000_000,))
    rng = np.random.default_rng(0)
    for start in range(0, len(flips), 10_000_000):
        flips[start:start + 10_000_000] = rng.random(10_000_000) < 0.3
    flips.flush()
    code = ("import sys\nfrom compiler.cli import main\n"
            f"code = main(['run', 'specs/coin.ppl', '--data', {str(path)!r}, '--batch-size', '10000', '--json'])\n"
            f"print({PEAK_MIB}, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    peak_mib = int(result.stderr.strip().splitlines()[-1])
    baseline = subprocess.run([sys.executable, "-c", f"import torch, pyro, compiler.inference.fit; print({PEAK_MIB})"],
                              capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["posterior"]["f"]["mean"] == pytest.approx(0.3, abs=0.003)
    assert peak_mib < int(baseline.stdout) + 50 + 150  # the file's pages, and torch's working memory
