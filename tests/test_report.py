"""Reports: one pydantic object, rendered as JSON or as a table."""

from __future__ import annotations

import json

from compiler import compile_file
from compiler.results.report import Report, Summary, render_table


def test_json_round_trips_through_the_schema(fitted_radon):
    # The draws the report keeps for files are not part of the schema.
    assert Report.model_validate_json(fitted_radon.to_json()).model_dump() == fitted_radon.model_dump()


def test_json_schema_names_the_report_keys():
    schema = Report.model_json_schema()
    assert {"spec", "guide", "elbo", "steps", "converged", "posterior", "params"} <= set(schema["properties"])


def test_array_latent_summary_is_a_list_per_element(fitted_radon):
    assert len(fitted_radon.posterior["a"].mean) == 85


def test_guide_family_is_reported_per_latent(fitted_radon):
    assert fitted_radon.guide == {"mu_a": "Normal", "sigma_a": "LogNormal", "a": "Normal", "b": "Normal",
                                  "sigma_y": "LogNormal"}


def test_table_has_one_row_per_element_and_folds_long_arrays(fitted_radon):
    table = render_table(fitted_radon)
    assert "a[0]" in table and "a[9]" in table
    assert "a[10]" not in table
    assert "75 more of a" in table


def test_table_reports_a_fit_that_did_not_converge():
    summary = Summary(mean=0.0, sd=1.0, hdi_3=-1.9, hdi_97=1.9, q05=-1.6, q50=0.0, q95=1.6)
    report = Report(spec="s.ppl", guide={"m": "Normal"}, elbo=-3.0, steps=10, converged=False,
                    posterior={"m": summary}, params={}, seed=0, warnings=["not converged"])
    assert "NOT converged" in render_table(report)
    assert json.loads(report.to_json())["converged"] is False


def test_point_parameters_are_reported_under_params(specs):
    report = compile_file(specs / "noise_scale.ppl").fit(steps=300, draws=1000, seed=0)
    assert set(report.params) == {"sigma"}
    assert "param sigma" in render_table(report)
