"""The pointwise log-likelihood of VI and NUTS draws, what ArviZ's LOO, WAIC and
compare read from it, and `pplc compare A B` ranking models by PSIS-LOO."""

from __future__ import annotations

import json
import warnings

import arviz as az
import pytest
import torch

from compiler import FitError, compile_file
from compiler.cli import main

# The logistic regression's data, with the second covariate left out of the model.
FIRST_COVARIATE_ONLY = """
data N: int
data K: int
data X: real[N, K]
data y: int<lower=0, upper=1>[N]
latent alpha ~ Normal(0, 2.5)
latent b ~ Normal(0, 2.5)
observe y[i] ~ Bernoulli(logits=alpha + b * X[i, 0])
"""
QUICK_NUTS = {"warmup": 100, "samples": 100, "chains": 2}


@pytest.fixture(scope="module")
def first_covariate_only(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "first_covariate_only.ppl"
    path.write_text(FIRST_COVARIATE_ONLY)
    return path


def test_the_coins_log_likelihood_is_each_flips_bernoulli_log_probability(fitted_coin, coin):
    pointwise = fitted_coin.log_likelihood()["x"]
    flips = torch.as_tensor(coin.load_data()["x"], dtype=torch.float64)
    f = fitted_coin.draws["f"][:, None]
    assert pointwise.shape == (len(f), 10)
    assert torch.allclose(pointwise, flips * f.log() + (1 - flips) * (1 - f).log())


def test_a_vi_fits_inference_data_has_a_log_likelihood_group_loo_reads(fitted_linear_regression):
    idata = fitted_linear_regression.to_arviz()
    assert idata.log_likelihood["y"].shape == (1, len(fitted_linear_regression.draws["sigma"]), 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's note that one chain cannot be checked for mixing
        loo, waic = az.loo(idata, pointwise=True), az.waic(idata)
    assert loo.pareto_k.shape == (200,) and float(loo.pareto_k.max()) < 0.7
    assert loo.elpd_loo == pytest.approx(waic.elpd_waic, abs=1.0)  # well-specified: LOO and WAIC agree


def test_a_nuts_fits_inference_data_keeps_its_chains_and_sampler_statistics(coin):
    idata = coin.sample(seed=0, **QUICK_NUTS).to_arviz()
    draws = idata.posterior["f"].values
    assert draws.shape == (2, 100) and not (draws[0] == draws[1]).all()
    assert set(idata.sample_stats.data_vars) >= {"diverging", "tree_depth", "n_steps", "step_size"}
    assert idata.sample_stats["diverging"].dtype == bool and idata.sample_stats["tree_depth"].shape == (2, 100)
    assert idata.log_likelihood["x"].shape == (2, 100, 10)


def test_a_nuts_fits_draws_csv_has_a_chain_column(coin, tmp_path):
    path = tmp_path / "draws.csv"
    coin.sample(seed=0, **QUICK_NUTS).write_draws(path)
    lines = path.read_text().splitlines()
    assert lines[0] == "chain,draw,f" and lines[1].startswith("0,0,") and lines[-1].startswith("1,99,")


def test_a_model_with_a_summed_out_latent_has_no_log_likelihood_and_says_why(specs):
    fit = compile_file(specs / "mixture.ppl").fit(seed=0)
    assert not fit.has_log_likelihood and "log_likelihood" not in fit.to_arviz().groups()
    with pytest.raises(FitError, match="no pointwise log-likelihood"):
        fit.log_likelihood()


def test_compare_ranks_the_model_with_both_covariates_first(specs, first_covariate_only, capsys):
    data = specs / "logistic_regression.data.json"
    both = specs / "logistic_regression.ppl"
    assert main(["compare", str(first_covariate_only), str(both), "--data", str(data), "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)["models"]
    assert [m["name"] for m in ranked] == ["logistic_regression", "first_covariate_only"]
    assert ranked[1]["elpd_diff"] > 4 * ranked[1]["dse"]  # beta[1] = -2: leaving it out costs far more than noise
    assert all(len(m["pareto_k"]) == 500 and m["method"] == "vi" for m in ranked)


def test_compare_agrees_with_az_compare_on_files_pplc_wrote(specs, first_covariate_only, tmp_path, capsys):
    data = specs / "logistic_regression.data.json"
    files = {}
    for name, spec in (("both", specs / "logistic_regression.ppl"), ("first", first_covariate_only)):
        files[name] = tmp_path / f"{name}.nc"
        assert main(["run", str(spec), "--data", str(data), "--idata", str(files[name]), "--json"]) == 0
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare({name: az.from_netcdf(path) for name, path in files.items()})
    assert list(table.index) == ["both", "first"]


def test_compare_with_nuts_draws_ranks_the_same(specs, first_covariate_only, capsys):
    data = specs / "logistic_regression.data.json"
    assert main(["compare", str(specs / "logistic_regression.ppl"), str(first_covariate_only), "--data", str(data),
                 "--method", "nuts", "--warmup", "100", "--samples", "200", "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)["models"]
    assert [m["name"] for m in ranked] == ["logistic_regression", "first_covariate_only"]
    assert all(m["method"] == "nuts" for m in ranked)


def test_compare_refuses_models_fitted_to_different_observations(specs, capsys):
    assert main(["compare", str(specs / "coin.ppl"), str(specs / "logistic_regression.ppl")]) == 3
    err = capsys.readouterr().err
    assert "fitted to different observations" in err and "Traceback" not in err


def test_compare_with_one_spec_points_to_vi_vs_nuts(specs, capsys):
    assert main(["compare", str(specs / "coin.ppl")]) == 2
    assert "pplc vi-vs-nuts" in capsys.readouterr().err


def test_an_error_in_the_second_spec_is_located_in_it(specs, tmp_path, capsys):
    broken = tmp_path / "broken.ppl"
    broken.write_text("data N: int\nlatent f ~ Beta(10, 10\n")
    assert main(["compare", str(specs / "coin.ppl"), str(broken)]) == 2
    assert f"{broken}:2:" in capsys.readouterr().err


