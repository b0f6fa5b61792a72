"""Specs with nothing for the guide: no latents report log p(x) exactly, params alone
are fitted by maximum likelihood, and enumerated latents alone are summed out; each
converged, through the library and the command line."""

from __future__ import annotations

import json
import math

import pytest
import torch

from compiler import compile_source
from compiler.cli import main

pytestmark = pytest.mark.usefixtures("float64")  # the expected values are computed as pplc computes

Y = [0.1, -0.3, 1.2]
DATA = {"N": len(Y), "y": Y}
NO_LATENTS = "data N: int\ndata y: real[N]\nobserve y[i] ~ Normal(0, 1)\n"
ONLY_PARAMS = "data N: int\ndata y: real[N]\nparam mu: real = 0\nobserve y[i] ~ Normal(mu, 1)\n"
ONLY_ENUMERATED = ("data N: int\ndata y: real[N]\nlatent z[N] ~ Bernoulli(0.3)\n"
                   "observe y[i] ~ Normal(3 * z[i], 1)\n")


def _normal_log_density(values, loc: float) -> float:
    return torch.distributions.Normal(loc, 1.0).log_prob(torch.tensor(values)).sum().item()


def _mixture_log_density(values) -> float:
    """log p(y) with each z summed out: 0.7 N(y; 0, 1) + 0.3 N(y; 3, 1) per element."""
    return sum(math.log(0.7 * math.exp(_normal_log_density([v], 0.0)) + 0.3 * math.exp(_normal_log_density([v], 3.0)))
               for v in values)


def _run_json(tmp_path, capsys, spec_text: str) -> tuple[int, dict, str]:
    """`pplc run spec.ppl --json` on the spec and `DATA` beside it: the exit code, the report and stderr."""
    spec = tmp_path / "spec.ppl"
    spec.write_text(spec_text)
    (tmp_path / "spec.data.json").write_text(json.dumps(DATA))
    code = main(["run", str(spec), "--json"])
    printed = capsys.readouterr()
    return code, json.loads(printed.out) if code == 0 else {}, printed.err


@pytest.mark.parametrize("options", [{}, {"optimizer": "adam"}, {"batch_size": 2}], ids=["default", "adam", "batches"])
def test_with_no_latents_the_elbo_is_the_exact_log_likelihood_whatever_the_options(options):
    report = compile_source(NO_LATENTS).fit(DATA, **options)
    assert report.converged and report.steps == 0
    assert report.elbo == pytest.approx(_normal_log_density(Y, 0.0), rel=1e-12)
    assert report.posterior == {} and report.khat is None
    assert report.warnings == ["nothing to fit: the spec has no params and no latents, so the ELBO is log p(x) itself"]


def test_with_no_latents_the_command_line_says_there_was_nothing_to_fit_and_exits_0(tmp_path, capsys):
    code, report, err = _run_json(tmp_path, capsys, NO_LATENTS)
    assert code == 0, err
    assert report["converged"] and report["elbo"] == pytest.approx(_normal_log_density(Y, 0.0), rel=1e-12)
    assert report["warnings"][0].startswith("nothing to fit")


def test_params_alone_are_fitted_by_maximum_likelihood():
    report = compile_source(ONLY_PARAMS).fit(DATA)
    mean = sum(Y) / len(Y)
    assert report.converged
    assert report.params["mu"] == pytest.approx(mean, abs=1e-6)
    assert report.elbo == pytest.approx(_normal_log_density(Y, mean), rel=1e-9)


def test_params_alone_are_fitted_from_the_command_line(tmp_path, capsys):
    code, report, err = _run_json(tmp_path, capsys, ONLY_PARAMS)
    assert code == 0, err
    assert report["converged"] and report["params"]["mu"] == pytest.approx(sum(Y) / len(Y), abs=1e-6)


def test_with_only_enumerated_latents_the_elbo_is_the_exact_log_likelihood_with_them_summed_out():
    report = compile_source(ONLY_ENUMERATED).fit(DATA, discrete=True)
    assert report.converged and report.steps == 0
    assert report.elbo == pytest.approx(_mixture_log_density(Y), rel=1e-12)
    assert report.warnings[0].startswith("nothing to fit: the spec has no params, and its only latents are enumerated")
    assert len(report.discrete["z"]) == len(Y)


def test_with_only_enumerated_latents_the_command_line_exits_0(tmp_path, capsys):
    code, report, err = _run_json(tmp_path, capsys, ONLY_ENUMERATED)
    assert code == 0, err
    assert report["converged"] and report["elbo"] == pytest.approx(_mixture_log_density(Y), rel=1e-12)
