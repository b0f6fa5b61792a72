"""Diagnostics on a sample of the rows (inference/sampled_rows.py): on a large data set the
importance ratios behind k̂ and the linear-response Hessian are measured on sampled rows, each
within the error it states of what every row gives, and every row is used where sampling would
not save most of the cost or its error is too large. The samples here are scaled down (a
logistic regression of 20,000 rows, samples from 2,000) so that the rule runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from compiler import compile_file
from compiler.inference import linear_response, sampled_rows
from compiler.results.render import render_table


@pytest.fixture(scope="module")
def regression(specs):
    rng = np.random.default_rng(5)
    n, k = 20_000, 3
    x = rng.standard_normal((n, k))
    y = (rng.random(n) < 1 / (1 + np.exp(0.5 - x @ np.array([1.0, -0.5, 0.25])))).astype(int)
    program = compile_file(specs / "logistic_regression.ppl")
    return program, program.load_data({"N": n, "K": k, "X": x, "y": y})


@pytest.fixture
def small_samples(monkeypatch):
    monkeypatch.setattr(sampled_rows, "FIRST_ROWS", 2_000)
    monkeypatch.setattr(sampled_rows, "HESSIAN_ROWS", 4_000)


def _compared(monkeypatch, name: str, every_row) -> list:
    """For each call of sampled_rows.`name` the fit makes: what it returned, and `every_row(*its
    arguments)`, computed during the fit (its guide is gone after)."""
    calls, original = [], getattr(sampled_rows, name)

    def recorded(*args):
        found = original(*args)
        calls.append((found, every_row(*args)))
        return found

    monkeypatch.setattr(sampled_rows, name, recorded)
    return calls


def test_sampled_importance_ratios_are_within_their_stated_error_of_every_rows(regression, small_samples,
                                                                                monkeypatch):
    def every_row(compiled, objective, values, score, generator):
        return torch.cat([score(objective.model, objective.data, part)[0] for part in values.split(100)])

    calls = _compared(monkeypatch, "log_ratios", every_row)
    program, data = regression
    program.fit(data, draws=500)
    estimate, exact = calls[0]
    actual = (estimate.log_ratios - exact).square().mean().sqrt().item()
    assert estimate.sampled.rows == 2_000 and estimate.sampled.error <= sampled_rows.ROW_ERROR
    # The stated error comes from 10 groups: within a factor of 2 either way of the actual one.
    assert estimate.sampled.error / 2 <= actual <= 2 * estimate.sampled.error


def test_a_sampled_hessian_gives_sds_within_their_stated_error_of_every_rows(regression, small_samples, monkeypatch):
    def every_row(compiled, objective, of, sds, generator):
        return sds, sds(of(objective))

    calls = _compared(monkeypatch, "hessian", every_row)
    program, data = regression
    program.fit(data, draws=500)
    found, (sds, exact) = calls[0]
    actual = ((sds(found.hessian) - exact).abs() / exact).max().item()
    assert found.sampled.rows == 4_000 and found.sampled.error <= sampled_rows.COVARIANCE_ERROR
    assert actual <= 3 * found.sampled.error


def test_the_report_says_which_diagnostics_sampled_rows_and_their_errors(regression, small_samples):
    program, data = regression
    report = program.fit(data, draws=500).report
    assert (report.khat_rows.rows, report.khat_rows.out_of) == (2_000, 20_000)
    assert (report.covariance_rows.rows, report.covariance_rows.out_of) == (4_000, 20_000)
    assert "measured on a sample of the rows: the covariance on 4,000 of 20,000" in render_table(report)


def test_rows_are_not_sampled_where_they_would_not_save_most_of_the_cost(regression):
    program, data = regression  # 20,000 rows: fewer than SAVING x either first sample
    report = program.fit(data, draws=500).report
    assert report.khat_rows is None and report.covariance_rows is None
    assert "sample of the rows" not in render_table(report)


def test_a_sample_whose_error_stays_above_the_bar_gives_way_to_every_row(regression, small_samples, monkeypatch):
    monkeypatch.setattr(sampled_rows, "ROW_ERROR", 1e-9)
    monkeypatch.setattr(sampled_rows, "COVARIANCE_ERROR", 1e-9)
    program, data = regression
    report = program.fit(data, draws=500).report
    assert report.khat_rows is None and report.covariance_rows is None and report.khat is not None


def test_the_same_seed_samples_the_same_rows(regression, small_samples):
    program, data = regression
    first, second = (program.fit(data, draws=500, seed=3).report for _ in range(2))
    assert first.khat_rows is not None and first.covariance_rows is not None
    assert first.khat_rows == second.khat_rows and first.posterior == second.posterior


def test_the_draw_check_on_the_hessians_sample_finds_every_rows_draw_error(regression, small_samples, monkeypatch):
    found, original, sampled_hessian = [], linear_response.measure, sampled_rows.hessian

    def both(compiled, objective, draws, particles):
        on_a_sample = original(compiled, objective, draws, particles)
        monkeypatch.setattr(sampled_rows, "hessian", lambda *arguments: None)  # every row, for H and the draws
        found.append((on_a_sample.draw_error, original(compiled, objective, draws, particles).draw_error))
        monkeypatch.setattr(sampled_rows, "hessian", sampled_hessian)
        return on_a_sample

    monkeypatch.setattr(linear_response, "measure", both)
    program, data = regression
    program.fit(data, draws=500)
    sample, every_row = found[0]
    assert sample == pytest.approx(every_row, rel=0.05)
