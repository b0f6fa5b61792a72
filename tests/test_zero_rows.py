"""Data plates of size 0: observations scored from sufficient statistics add nothing,
so the fit gives the prior; statements Pyro would need an empty plate for are a clear
fitting error, not a crash."""

from __future__ import annotations

import json
import math

import pytest

from compiler import FitError, compile_source
from compiler.cli import main
from compiler.inference import fit as infer
from compiler.results.report import UNIFORM_WEIGHTS_SD

PRIOR_ONLY = """data N: int
data y: real[N]
latent f ~ Normal(0, 1)
observe y[i] ~ Normal(f, 1)
"""
NO_ROWS = {"N": 0, "y": []}


def _within_monte_carlo_error_of_the_standard_normal(summary, draws: int) -> None:
    """Mean and sd of `draws` independent draws of N(0, 1), to 4 standard errors."""
    assert abs(summary.mean) < 4 / math.sqrt(draws)
    assert abs(summary.sd - 1) < 4 / math.sqrt(2 * draws)


@pytest.mark.parametrize("options", [{}, {"optimizer": "adam", "steps": 300}], ids=["lbfgs", "adam"])
def test_a_plate_of_size_0_fits_the_prior(options):
    report = compile_source(PRIOR_ONLY).fit(NO_ROWS, **options)
    assert report.converged
    _within_monte_carlo_error_of_the_standard_normal(report.posterior["f"], infer.RunConfig().draws)


def test_with_no_rows_the_guide_matches_the_prior_so_the_importance_weights_barely_vary():
    report = compile_source(PRIOR_ONLY).fit(NO_ROWS)
    assert report.log_ratio_sd < UNIFORM_WEIGHTS_SD
    assert not any("Pareto" in warning for warning in report.warnings)


def test_a_batch_size_with_no_rows_has_nothing_to_subsample_and_fits_the_prior():
    report = compile_source(PRIOR_ONLY).fit(NO_ROWS, batch_size=5)
    assert any(warning.startswith("--batch-size 5: nothing to subsample") for warning in report.warnings)
    _within_monte_carlo_error_of_the_standard_normal(report.posterior["f"], infer.RunConfig().draws)


def test_a_plate_of_size_0_fits_the_prior_from_the_command_line(tmp_path, capsys):
    spec = tmp_path / "prior.ppl"
    spec.write_text(PRIOR_ONLY)
    (tmp_path / "prior.data.json").write_text(json.dumps(NO_ROWS))
    code = main(["run", str(spec), "--json"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    report = json.loads(printed.out)
    assert report["converged"]
    assert abs(report["posterior"]["f"]["mean"]) < 4 / math.sqrt(infer.RunConfig().draws)


@pytest.mark.parametrize("statement, site", [
    ("latent f ~ Normal(0, 1)\nobserve y[i] ~ Normal(f * x[i], 1)", "y"),
    ("latent f ~ Normal(0, 1)\nlatent z[N] ~ Normal(f, 1)\nobserve y[i] ~ Normal(z[i], 1)", "z"),
], ids=["observe scored element by element", "latent over the plate"])
def test_a_statement_that_needs_an_empty_plate_is_a_fitting_error_at_its_line(statement, site):
    program = compile_source(f"data N: int\ndata x: real[N]\ndata y: real[N]\n{statement}\n", "empty.ppl")
    with pytest.raises(FitError) as caught:
        program.fit({"N": 0, "x": [], "y": []})
    assert caught.value.message.startswith(f"'{site}' ranges over N = 0 elements, and Pyro's plates need at least one")
    assert caught.value.span == program.ir.site_spans[site]


def test_lets_are_left_out_with_a_note_where_the_model_they_replay_has_an_empty_plate():
    report = compile_source(PRIOR_ONLY + "let g = 2 * f\n", "let.ppl").fit(NO_ROWS)
    assert "g" not in report.posterior
    assert any(warning.startswith("lets are left out: they are drawn by replaying the model, which cannot run with "
                                  "N = 0") for warning in report.warnings)
    _within_monte_carlo_error_of_the_standard_normal(report.posterior["f"], infer.RunConfig().draws)


def test_predictions_need_the_model_so_an_empty_plate_is_a_fitting_error():
    report = compile_source(PRIOR_ONLY).fit(NO_ROWS)
    with pytest.raises(FitError, match="'y' ranges over N = 0 elements"):
        report.predict(10)
