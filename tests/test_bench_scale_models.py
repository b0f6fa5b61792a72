"""The scale benchmark's own footing (`bench/scale_models.py`): its cached references belong to the
data it generates, the Laplace reference it uses for large logistic regressions agrees with NUTS where
both exist, and pplc and the anchors read the same data from the files it writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))  # the bench scripts import their siblings (common, time_to_answer) ...
import scale_models  # noqa: E402

sys.path.remove(str(BENCH))  # ... and the rest of the suite must not see bench's run.py, nuts.py, ... as modules

CACHED = [row for row in scale_models.ROWS if scale_models.reference_file(row).exists() and row.name != "radon"]


@pytest.mark.parametrize("row", CACHED, ids=lambda row: row.name)
def test_every_cached_reference_was_made_from_the_data_the_benchmark_generates(row):
    cached = json.loads(scale_models.reference_file(row).read_text())
    assert cached["data_sha256"] == scale_models.fingerprint(scale_models.data_of(row))
    assert cached["command"] == f"python bench/scale_models.py --reference {row.name}"


def test_the_laplace_reference_is_within_a_twentieth_of_a_sd_of_nuts_at_the_smallest_logistic_row():
    row = scale_models.BY_NAME["logistic_N10000"]
    nuts = scale_models.reference_of(row)
    laplace = scale_models.laplace_logistic(scale_models.data_of(row))
    for site, summary in nuts.items():
        gap = np.abs(np.asarray(laplace[site]["mean"]) - np.asarray(summary["mean"])) / np.asarray(summary["sd"])
        assert np.all(gap < 0.05), (site, gap)


@pytest.mark.parametrize("name", ["logistic_N10000", "hierarchical_J1000"])
def test_the_files_written_for_pplc_read_back_as_the_generated_data(name, tmp_path):
    from compiler import compile_file

    row = scale_models.BY_NAME[name]
    path = scale_models.write_data(row, tmp_path)
    generated, read = scale_models.data_of(row), scale_models.read_data(path)
    assert scale_models.fingerprint(read) == scale_models.fingerprint(generated)
    loaded = compile_file(scale_models.SPECS / f"{row.spec}.ppl").load_data(str(path))
    for name, value in generated.items():
        assert np.array_equal(np.asarray(loaded[name]), value), name


def test_an_anchor_that_leaves_out_a_reference_site_is_not_on_the_bar():
    row = scale_models.BY_NAME["radon"]
    reference = scale_models.reference_of(row)
    exact = {site: np.asarray(summary["mean"]) for site, summary in reference.items()}
    assert scale_models.on_bar(exact, reference, row)
    assert not scale_models.on_bar({site: mean for site, mean in exact.items() if site != "a"}, reference, row)
