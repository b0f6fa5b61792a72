"""Reports: one pydantic object of pure data, the same once read back from its JSON."""

from __future__ import annotations

import json

import pytest

from compiler import compile_file
from compiler.results.report import Report, Summary


@pytest.fixture(scope="module")
def radon_report(fitted_radon):
    return fitted_radon.report


def test_json_round_trips_through_the_schema(radon_report):
    assert Report.model_validate_json(radon_report.to_json()) == radon_report


def test_a_report_has_no_behaviour_beyond_its_json():
    methods = {name for name, value in vars(Report).items() if callable(value) and not name.startswith("_")}
    assert methods == {"to_json"}


def test_json_schema_names_the_report_keys():
    schema = Report.model_json_schema()
    assert {"spec", "guide", "elbo", "steps", "converged", "posterior", "params"} <= set(schema["properties"])


def test_array_latent_summary_is_a_list_per_element(radon_report):
    assert len(radon_report.posterior["a"].mean) == 85


def test_guide_family_is_reported_per_latent(radon_report):
    assert radon_report.guide == {"mu_a": "Normal", "sigma_a": "LogNormal", "a": "Normal", "b": "Normal",
                                  "sigma_y": "LogNormal"}


def test_json_reports_a_fit_that_did_not_converge():
    summary = Summary(mean=0.0, sd=1.0, hdi_3=-1.9, hdi_97=1.9, q05=-1.6, q50=0.0, q95=1.6)
    report = Report(spec="s.ppl", guide={"m": "Normal"}, elbo=-3.0, steps=10, converged=False,
                    posterior={"m": summary}, params={}, seed=0, warnings=["not converged"])
    assert json.loads(report.to_json())["converged"] is False


def test_point_parameters_are_reported_under_params(specs):
    report = compile_file(specs / "noise_scale.ppl").fit(steps=300, draws=1000, seed=0).report
    assert set(report.params) == {"sigma"}
