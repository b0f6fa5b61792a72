"""Improper posteriors (improper priors the data do not pin down) are a fitting error
naming the latents, exit 4, with either optimizer; proper posteriors, weakly
identified ones included, never trip the check."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import SPECS

from compiler import FitError, compile_file, compile_source
from compiler.inference import fit as infer
from compiler.inference import improper, params
from compiler.inference.records import Objective
from compiler.precision import float64

ALL_SPECS = sorted(SPECS.glob("*.ppl")) + sorted(SPECS.glob("posteriordb/*.ppl"))
Y = {"N": 3, "y": [0.1, -0.3, 1.2]}

SUM_OBSERVED = ("data N: int\ndata y: real[N]\nlatent a ~ Flat()\nlatent b ~ Flat()\n"
                "observe y[i] ~ Normal(a + b, 1)\n")
SCALE_UNOBSERVED = ("data N: int\ndata y: real[N]\nlatent mu ~ Normal(0, 10)\nlatent s ~ HalfFlat()\n"
                    "observe y[i] ~ Normal(mu, 1)\n")
NOTHING_OBSERVED = "latent mu ~ Flat()\n"
IMPROPER = {  # id -> (spec, data, the latents the error names, the line it points at)
    "a + b observed": (SUM_OBSERVED, Y, "a and b", 3),
    "HalfFlat scale unobserved": (SCALE_UNOBSERVED, Y, "s", 4),
    "Flat latent, no data": (NOTHING_OBSERVED, {}, "mu", 1),
}
# Adam's steps are capped: the check runs after any fit, and a flat direction never levels the ELBO.
OPTIMIZERS = {"lbfgs": {}, "adam": {"optimizer": "adam", "steps": 200}}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("example", sorted(IMPROPER))
def test_an_improper_posterior_is_a_fitting_error_naming_its_latents(example, optimizer):
    source, data, named, line = IMPROPER[example]
    with pytest.raises(FitError) as caught:
        compile_source(source, "improper.ppl").fit(data, **OPTIMIZERS[optimizer])
    assert caught.value.message.startswith(f"the posterior is improper: the data do not pin down {named} ")
    assert caught.value.span.line == line


def test_the_error_names_the_direction_the_data_leave_free():
    with pytest.raises(FitError) as caught:
        compile_source(SUM_OBSERVED).fit(Y)
    assert "(the log density has no curvature along a - b)" in caught.value.message


def test_a_direction_among_elements_is_named_by_its_elements():
    collinear = ("data N: int\ndata x: real[N]\ndata y: real[N]\nlatent beta[3] ~ Flat()\n"
                 "observe y[i] ~ Normal(beta[0] + beta[1] * x[i] + beta[2] * 2 * x[i], 1)\n")
    with pytest.raises(FitError) as caught:
        compile_source(collinear).fit({"N": 4, "x": [0.0, 1.0, 2.0, 3.0], "y": [0.1, 1.3, 1.9, 3.2]})
    assert "do not pin down beta (the log density has no curvature along beta[1] - 0.5 beta[2])" in caught.value.message


def test_a_fit_that_diverges_because_the_posterior_is_improper_says_so_rather_than_retrying():
    with pytest.raises(FitError) as caught:
        compile_source(SCALE_UNOBSERVED).fit(Y, optimizer="adam")  # its scale runs away until a draw underflows
    assert caught.value.message.startswith("the posterior is improper")
    assert "retry" not in caught.value.message


def test_an_improper_posterior_exits_4_from_the_command_line(tmp_path):
    spec = tmp_path / "improper.ppl"
    spec.write_text(SUM_OBSERVED)
    (tmp_path / "improper.data.json").write_text(json.dumps(Y))
    result = subprocess.run([sys.executable, "-m", "compiler", "run", str(spec), "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 4
    assert result.stdout == ""
    assert "improper.ppl:3:1: error: the posterior is improper: the data do not pin down a and b" in result.stderr


def test_with_more_improper_coordinates_than_the_check_takes_the_report_says_it_was_not_checked(monkeypatch):
    monkeypatch.setattr(improper, "MAX_COORDINATES", 1)
    report = compile_source(SUM_OBSERVED).fit(Y)
    assert ("2 coordinates have improper priors, more than the 1 whose curvature pplc checks, so an improper "
            "posterior would go unnoticed (docs/inference.md)") in report.warnings


def test_a_flat_prior_that_the_data_and_the_other_priors_pin_down_fits():
    pinned = SUM_OBSERVED.replace("latent b ~ Flat()", "latent b ~ Normal(0, 1)")
    report = compile_source(pinned).fit(Y)
    assert report.converged
    # Exactly: s = a + b ~ N(mean of y, 1/3) independently of b ~ N(0, 1), so a = s - b has
    # mean 1/3 and sd sqrt(1/3 + 1) (10,000 draws: Monte Carlo error under 1 %).
    assert report.posterior["a"].mean == pytest.approx(1 / 3, abs=0.05)
    assert report.posterior["a"].sd == pytest.approx((4 / 3) ** 0.5, rel=0.03)


def _fitted_curvature(program, latents=None):
    """The statistic the check compares with improper.FLAT, after a default fit."""
    data = program.load_data()
    with params.scope(program.fit(data).guide_state), float64():
        return infer.curvature(program.compiled, Objective(*program.compiled.scored(data)), 0, latents)


@pytest.mark.parametrize("name", ["kidiq-kidscore_interaction", "mesquite-logmesquite_logvolume"])
def test_flat_priors_of_real_regressions_are_above_the_threshold(name):
    curvature = _fitted_curvature(compile_file(SPECS / "posteriordb" / f"{name}.ppl"))
    assert curvature.smallest > improper.FLAT and not curvature.flat


def test_eight_schools_weakly_identified_would_pass_even_if_every_latent_were_checked():
    program = compile_file(SPECS / "eight_schools.ppl")
    curvature = _fitted_curvature(program, list(program.ir.guided_latents))
    assert curvature.smallest > improper.FLAT and not curvature.flat


@pytest.mark.slow
@pytest.mark.parametrize("path", ALL_SPECS, ids=lambda path: path.stem)
def test_no_spec_trips_the_check_at_the_default_settings(path):
    program = compile_file(path)
    curvature = _fitted_curvature(program)  # a FitError here is the check firing
    assert curvature is None or curvature.smallest > improper.FLAT
