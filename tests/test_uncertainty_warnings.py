"""The report warns when, and only when, its answer is materially wrong: measured against
reference posteriors (the issue's "off": a mean off by more than 0.25 reference sd, or an
sd outside 0.75-1.33x)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from compiler import compile_file

ROOT = Path(__file__).resolve().parent.parent
MOMIQ = ROOT / "specs" / "posteriordb" / "kidiq-kidscore_momiq.ppl"  # corr(beta) = -0.99


def _sd_ratios(report, spec: Path) -> np.ndarray:
    reference = json.loads(spec.with_name(spec.stem + ".reference.json").read_text())["posterior"]
    return np.concatenate([np.ravel(np.asarray(report.posterior[site].sd) / np.asarray(expected["sd"]))
                           for site, expected in reference.items()])


@pytest.fixture(scope="module")
def momiq():
    return compile_file(MOMIQ)


def test_the_mean_field_gaussian_of_a_correlated_posterior_is_off_and_says_so(momiq):
    report = momiq.fit(seed=0, covariance="mean-field", resample=False)
    assert _sd_ratios(report, MOMIQ).min() < 0.75
    assert any("Pareto k̂" in warning for warning in report.warnings)


def test_the_default_answer_on_the_same_posterior_is_right_and_silent(momiq):
    report = momiq.fit(seed=0)
    assert np.all(np.abs(_sd_ratios(report, MOMIQ) - 1) < 0.25)
    assert report.covariance == "linear-response"
    assert not any("Pareto k̂" in warning for warning in report.warnings)


def _bench():
    spec = importlib.util.spec_from_file_location("uncertainty", ROOT / "bench" / "uncertainty.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_over_every_shipped_posterior_the_default_misses_nothing_and_cries_wolf_at_most_once():
    bench = _bench()
    rows = [bench.measure(spec, {}) for spec in bench.specs(None)]
    misses = [row for row in rows if row["off"] and not row["warned"]]
    false_alarms = [row for row in rows if row["warned"] and not row["off"]]
    assert not misses and len(false_alarms) <= 1
