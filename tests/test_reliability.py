"""Reliability: every VI fit reports PSIS's Pareto k̂ of p(x, z)/q(z) over draws from the
approximation it reports (Yao et al. 2018; Vehtari et al. 2024), and warns where k̂ is
above its threshold on weights that vary enough to matter, and reweighting would move the
answer materially, or where k̂ reads below it but reweighting would move the answer far."""

from __future__ import annotations

import json

import pytest

from compiler import compile_file, compile_source
from compiler.cli import main
from compiler.results.report import FAR_SHIFT, UNIFORM_WEIGHTS_SD


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_coin_gives_importance_weights_that_barely_vary(coin, seed):
    # A normal in logit space against Beta(16, 14): the tails differ in shape, so k̂ is large,
    # but every weight is within a few percent of the others and no summary can move.
    report = coin.fit(seed=seed)
    assert report.log_ratio_sd < UNIFORM_WEIGHTS_SD
    assert not any("k̂" in w for w in report.warnings)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_mean_field_gaussian_of_a_correlated_posterior_gets_a_warning(specs, seed):
    # posteriordb's nes2000: correlated regression coefficients; the mean-field guide's sds
    # are a tenth of the reference's.
    report = compile_file(specs / "posteriordb" / "nes2000-nes.ppl").fit(seed=seed, covariance="mean-field",
                                                                           resample=False)
    assert report.khat > report.khat_threshold and report.log_ratio_sd > UNIFORM_WEIGHTS_SD
    assert any(w.startswith(f"Pareto k̂ = {report.khat:.2f} > ") and "--method nuts" in w for w in report.warnings)


def test_the_default_answer_on_the_same_posterior_gets_none(specs):
    report = compile_file(specs / "posteriordb" / "nes2000-nes.ppl").fit(seed=0)
    assert not any("Pareto k̂" in w for w in report.warnings)


def test_linear_regression_is_matched_by_its_approximation(fitted_linear_regression):
    assert fitted_linear_regression.khat < fitted_linear_regression.khat_threshold


def test_khat_is_in_the_json_report_and_the_table(specs, capsys):
    assert main(["run", str(specs / "eight_schools.ppl"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["khat"] < 0.7
    assert main(["run", str(specs / "eight_schools.ppl")]) == 0
    assert "Pareto k̂ " in capsys.readouterr().out


def test_nearly_uniform_weights_are_named_in_the_table_without_a_khat(specs, capsys):
    assert main(["run", str(specs / "coin.ppl")]) == 0
    out = capsys.readouterr().out
    assert "importance weights p/q barely vary" in out and "k̂" not in out


def test_khat_is_left_out_for_models_with_enumerated_latents():
    program = compile_source("data N: int\ndata y: real[N]\nlatent w ~ Dirichlet(ones(2))\n"
                             "latent mu[2] ~ Normal(0, 5)\nlatent z[N] ~ Categorical(w)\n"
                             "observe y[i] ~ Normal(mu[z[i]], 1)")
    assert program.fit({"y": [-2.0, -2.1, 2.0, 2.2]}, steps=2).khat is None  # whatever the fit reached


@pytest.mark.slow
def test_the_gaussian_process_at_defaults_warns_that_its_answer_may_be_off(specs):
    # posteriordb's gp_pois_regr: alpha's right tail lies where the linear-response Gaussian barely
    # reaches, so k̂ reads below its threshold while the answer is 0.72 reference sds off.
    report = compile_file(specs / "posteriordb" / "gp_pois_regr-gp_pois_regr.ppl").fit(seed=0)
    assert report.khat < report.khat_threshold and report.reweighting_shift >= FAR_SHIFT
    assert any(w.startswith("reweighting by the importance weights") and "--method nuts" in w for w in report.warnings)
