"""NUTS on the same compiled model, and `pplc vi-vs-nuts` setting VI against it."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from compiler import FitError, compile_file, compile_source
from compiler.cli import main
from compiler.inference import stats

QUICK = {"warmup": 300, "samples": 500, "chains": 2}


def test_nuts_on_the_coin_matches_beta_16_14_within_monte_carlo_error(coin):
    report = coin.sample(seed=0, **QUICK)
    summary = report.posterior["f"]
    exact_mean, exact_sd = 16 / 30, math.sqrt(16 * 14 / (30**2 * 31))
    # Four Monte Carlo standard errors, from the chains' own effective sample size.
    assert abs(summary.mean - exact_mean) < 4 * exact_sd / math.sqrt(summary.ess)
    assert summary.sd == pytest.approx(exact_sd, rel=4 / math.sqrt(2 * summary.ess))


def test_nuts_samples_a_latent_with_an_improper_prior():
    # s ~ HalfFlat and y ~ Normal(0, s): s² | y is InverseGamma((N - 1) / 2, Σy² / 2), so
    # E[s | y] = sqrt(β) Γ(α - 1/2) / Γ(α). Pyro's init_to_uniform cannot draw from the prior.
    y = [0.5, 1.2, -0.3, 2.0, 0.1]
    fit = compile_source("data N: int\ndata y: real[N]\nlatent s ~ HalfFlat()\nobserve y[i] ~ Normal(0, s)\n"
                         ).sample({"N": len(y), "y": y}, seed=0, **QUICK)
    alpha, beta = (len(y) - 1) / 2, sum(v * v for v in y) / 2
    exact_mean = math.sqrt(beta) * math.exp(math.lgamma(alpha - 0.5) - math.lgamma(alpha))
    summary = fit.posterior["s"]
    assert abs(summary.mean - exact_mean) < 4 * summary.sd / math.sqrt(summary.ess)


def test_the_compiled_gradient_is_autograds_on_the_potential(specs):
    # The graph built in a process of its own (make_fx, simplified, frozen, handed back by torch.jit.save)
    # and whitened around it: the same value and gradient as autograd through Pyro's whitened potential,
    # at points away from the one it was traced at.
    from pyro.infer.mcmc.util import initialize_model

    from compiler.inference import compiled_potential, no_u_turn, nuts, params

    program = compile_file(specs / "radon.ppl")
    model, data = program.compiled.scored(program.load_data())
    with params.scope():
        params.fresh(0)
        initial, potential, _, _ = initialize_model(model, (data,), max_plate_nesting=program.compiled.ir.max_plate_nesting)
    sites = tuple(sorted(initial))
    shapes = tuple(initial[site].shape for site in sites)
    centre = torch.cat([initial[site].detach().reshape(-1) for site in sites]).double()
    generator = torch.Generator().manual_seed(0)
    scale_tril = torch.eye(len(centre), dtype=torch.float64) + 0.01 * torch.randn(
        len(centre), len(centre), generator=generator, dtype=torch.float64).tril()
    cold = nuts.Geometry(sites, shapes, centre, torch.eye(len(centre), dtype=torch.float64), warm=False)
    with compiled_potential.built_aside(lambda z: potential(cold.split(z)), centre) as built:
        compiled = compiled_potential.whitened_with_gradient(built(), centre, scale_tril)
    autograd = no_u_turn.with_gradient(nuts.whitened(potential, nuts.Geometry(sites, shapes, centre, scale_tril, True)))
    for seed in (1, 2):
        u = 0.1 * torch.randn(len(centre), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        value, gradient = compiled(u)
        expected_value, expected_gradient = autograd(u)
        assert float(value) == pytest.approx(float(expected_value), rel=1e-12)
        assert torch.allclose(gradient, expected_gradient, rtol=1e-10, atol=1e-10)


def test_the_warm_start_measures_the_fits_gaussian_once_where_the_report_would_refit(specs, monkeypatch):
    # NUTS needs a Gaussian that whitens the space: the draw check's refits buy the report precision it does not use.
    from compiler.inference import fit as infer
    from compiler.inference import linear_response
    from compiler.inference.config import RunConfig

    measured = []
    measure = linear_response.measure
    monkeypatch.setattr(linear_response, "measure", lambda *args: measured.append(1) or measure(*args))
    program = compile_file(specs / "eight_schools.ppl")
    data = program.load_data()
    infer.fit(program.compiled, data, RunConfig(particles=2, draws=100))
    report_measurements, measured[:] = len(measured), []
    gaussian = infer.gaussian(program.compiled, data, RunConfig(particles=2))
    assert report_measurements > 1
    assert len(measured) == 1
    assert gaussian.kind == "linear-response"


def test_nuts_reports_r_hat_and_ess_per_element(specs):
    # What is reported, not how well: a short run does (the coin's test above checks the accuracy).
    report = compile_file(specs / "eight_schools.ppl").sample(seed=0, warmup=50, samples=50, chains=2)
    assert report.method == "nuts" and report.elbo is None and report.chains == 2
    assert len(report.posterior["theta_raw"].rhat) == 8
    assert all(ess > 0 for ess in report.posterior["theta"].ess)


def test_nuts_refuses_point_parameters_with_a_clear_error(specs):
    with pytest.raises(FitError, match="NUTS samples latents only"):
        compile_file(specs / "noise_scale.ppl").sample(**QUICK)


def test_run_with_method_nuts_prints_r_hat_and_ess_columns(specs, capsys):
    assert main(["run", str(specs / "coin.ppl"), "--method", "nuts", "--warmup", "100", "--samples", "100"]) == 0
    out = capsys.readouterr().out
    assert "NUTS, 2 chains x 100 draws" in out and "r_hat" in out and "ess" in out


@pytest.mark.parametrize("program", ["coin", "linear_regression"])
def test_vi_vs_nuts_prints_vi_against_nuts_per_parameter(program, specs, capsys):
    assert main(["vi-vs-nuts", str(specs / f"{program}.ppl"), "--warmup", "100", "--samples", "100", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in result["comparison"]}
    assert set(rows) >= ({"f"} if program == "coin" else {"alpha", "beta[0]", "beta[2]", "sigma"})
    for row in rows.values():
        assert row["error_in_nuts_sds"] == pytest.approx((row["vi_mean"] - row["nuts_mean"]) / row["nuts_sd"])
        assert abs(row["error_in_nuts_sds"]) < 0.5  # well-identified: VI and NUTS agree
        assert 0.75 < row["sd_ratio"] < 1.3


def test_vi_vs_nuts_table_names_the_largest_mean_error(specs, capsys):
    assert main(["vi-vs-nuts", str(specs / "coin.ppl"), "--warmup", "100", "--samples", "100"]) == 0
    out = capsys.readouterr().out
    assert "mean-field VI" in out and "largest mean error: f" in out


def test_nuts_without_a_warm_start_matches_beta_16_14_as_well(coin):
    report = coin.sample(seed=0, warm_start=False, **QUICK)
    summary = report.posterior["f"]
    exact_mean, exact_sd = 16 / 30, math.sqrt(16 * 14 / (30**2 * 31))
    assert abs(summary.mean - exact_mean) < 4 * exact_sd / math.sqrt(summary.ess)
    assert summary.sd == pytest.approx(exact_sd, rel=4 / math.sqrt(2 * summary.ess))


def test_chains_start_apart_and_each_keeps_its_own_draws(specs):
    fit = compile_file(specs / "eight_schools.ppl").sample(seed=0, warmup=50, samples=50, chains=2)
    first, second = fit.draws["mu"].reshape(2, 50)
    assert not torch.equal(first, second)
    assert fit.sample_stats["step_size"].shape == (2, 50)
    assert (fit.sample_stats["tree_depth"] >= 1).all() and (fit.sample_stats["n_steps"] >= 1).all()


def test_r_hat_warnings_name_the_latents_whose_chains_disagree(specs):
    # Ten draws per chain, no warm-up to speak of: the chains cannot agree on every element.
    fit = compile_file(specs / "eight_schools.ppl").sample(seed=0, warmup=5, samples=10, chains=2,
                                                           warm_start=False)
    assert any(w.startswith("R̂ ≥ 1.01 for ") and "theta_raw" in w for w in fit.warnings)


@pytest.mark.slow
@pytest.mark.parametrize("program", ["eight_schools", "radon", "logistic_regression", "poisson_regression"])
def test_nuts_at_defaults_matches_the_reference_posterior(program, specs):
    reference = json.loads((specs / f"{program}.reference.json").read_text())["posterior"]
    fit = compile_file(specs / f"{program}.ppl").sample(seed=0)
    for name, expected in reference.items():
        mean, sd = np.ravel(fit.posterior[name].mean), np.ravel(fit.posterior[name].sd)
        ref_mean, ref_sd = np.ravel(expected["mean"]), np.ravel(expected["sd"])
        draws = fit.draws[name].reshape(fit.chains, -1, np.prod(fit.draws[name].shape[1:], dtype=int))
        squares = (draws - draws.mean((0, 1))) ** 2
        # Five Monte Carlo standard errors of each estimate, each from the chains' own effective
        # sample size: of the draws for a mean (sd / sqrt(ESS)), of their squared deviations for
        # an sd (half the relative error of the variance, whose tails are eight schools' heavy ones).
        # The reference's own error is a tenth of ours (10,000 draws).
        mean_error = ref_sd / np.sqrt(np.ravel(fit.posterior[name].ess))
        variance_error = (squares.std((0, 1)) / squares.mean((0, 1)) / stats.ess(squares).sqrt()).numpy()
        assert (np.abs(mean - ref_mean) <= 5 * mean_error).all(), name
        assert (np.abs(sd / ref_sd - 1) <= 5 * variance_error / 2).all(), name


def test_ctrl_c_while_the_chains_run_ends_every_process_quietly(specs):
    process = subprocess.Popen([sys.executable, "-m", "compiler", "run", str(specs / "coin.ppl"), "--method", "nuts",
                                "--samples", "1000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(5)  # imports and the warm-start fit (3-4 s for the coin); a signal during the fit ends it alike
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.strip() == "pplc: interrupted" and not out
