"""What a fit leaves behind, checked with the library that reads each file:
draws as CSV (pandas), InferenceData as netCDF (ArviZ), the plot as PNG (PIL),
the az.summary-style DataFrame, and the progress bar."""

from __future__ import annotations

import io
import json
import sys

import arviz
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from compiler import compile_file
from compiler.cli import main


def test_draws_csv_has_one_column_per_scalar_element(fitted_radon, tmp_path):
    fitted_radon.write_draws(tmp_path / "draws.csv")
    frame = pd.read_csv(tmp_path / "draws.csv", index_col="draw")
    assert len(frame) == 10_000
    assert {"mu_a", "sigma_a", "b", "sigma_y", "a[0]", "a[84]"} <= set(frame.columns)
    assert frame["a[3]"].mean() == pytest.approx(fitted_radon.posterior["a"].mean[3])


def test_inference_data_file_is_read_by_arviz(fitted_radon, specs, tmp_path):
    fitted_radon.write_idata(tmp_path / "fit.nc")
    idata = arviz.from_netcdf(tmp_path / "fit.nc")
    assert {"posterior", "observed_data"} <= set(idata.groups())
    assert idata.posterior["a"].shape == (1, 10_000, 85)
    observed = json.loads((specs / "radon.data.json").read_text())["log_radon"]
    assert idata.observed_data["log_radon"].values.tolist() == pytest.approx(observed)
    assert arviz.summary(idata, var_names=["mu_a"])["mean"].iloc[0] == pytest.approx(
        fitted_radon.posterior["mu_a"].mean, abs=1e-3)


def test_plot_is_a_png_of_the_elbo_and_the_marginals(fitted_radon, tmp_path):
    fitted_radon.write_plot(tmp_path / "fit.png")
    assert (tmp_path / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(tmp_path / "fit.png") as image:
        assert image.format == "PNG" and image.size[0] >= 600 and image.size[1] >= 400


def test_summary_is_a_dataframe_laid_out_like_az_summary(fitted_radon):
    frame = fitted_radon.summary()
    assert list(frame.columns) == ["mean", "sd", "hdi_3%", "hdi_97%"]
    assert frame.loc["a[84]", "mean"] == pytest.approx(fitted_radon.posterior["a"].mean[84])
    assert (frame["hdi_3%"] < frame["mean"]).all() and (frame["mean"] < frame["hdi_97%"]).all()


def test_the_table_shows_the_94_percent_hdi(fitted_radon):
    header = fitted_radon.table().splitlines()[1].split()
    assert header[:4] == ["mean", "sd", "hdi_3%", "hdi_97%"]


def test_nuts_summary_adds_r_hat_and_ess(coin):
    report = coin.sample(warmup=100, samples=100)
    assert list(report.summary().columns) == ["mean", "sd", "hdi_3%", "hdi_97%", "r_hat", "ess_bulk"]


def test_run_writes_every_file_it_is_asked_for(specs, tmp_path, capsys):
    paths = [tmp_path / "d.csv", tmp_path / "f.nc", tmp_path / "p.png"]
    assert main(["run", str(specs / "coin.ppl"), "--json", "--draws", str(paths[0]), "--idata", str(paths[1]),
                 "--plot", str(paths[2])]) == 0
    assert json.loads(capsys.readouterr().out)["spec"].endswith("coin.ppl")
    assert all(path.stat().st_size > 1000 for path in paths)
    assert np.isclose(pd.read_csv(paths[0])["f"].mean(), arviz.from_netcdf(paths[1]).posterior["f"].mean())


def test_run_names_each_file_it_writes_on_stderr(specs, tmp_path, capsys):
    paths = [tmp_path / "d.csv", tmp_path / "f.nc", tmp_path / "p.png", tmp_path / "fit.json"]
    assert main(["run", str(specs / "coin.ppl"), "--quiet", "--draws", str(paths[0]), "--idata", str(paths[1]),
                 "--plot", str(paths[2]), "--save", str(paths[3])]) == 0
    assert capsys.readouterr().err.splitlines() == [f"wrote {path}" for path in paths]


def test_an_unwritable_file_is_an_error_before_the_fit(specs, capsys):
    assert main(["run", str(specs / "coin.ppl"), "--plot", "/no/such/folder/p.png"]) == 2
    assert "there is no folder /no/such/folder" in capsys.readouterr().err


def test_a_fit_asked_for_progress_shows_a_bar_with_steps_rate_and_elbo(coin, capsys):
    coin.fit(seed=0, optimizer="adam", steps=2000, progress=True)
    bar = capsys.readouterr().err
    assert "step/s" in bar and "ELBO" in bar and "/2000" in bar


def test_json_runs_show_no_bar_even_in_a_terminal(specs, capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["run", str(specs / "coin.ppl"), "--json"]) == 0
    assert capsys.readouterr().err == ""


def test_piped_runs_show_no_bar(specs, capsys):
    assert main(["run", str(specs / "coin.ppl")]) == 0
    assert capsys.readouterr().err == ""


def test_posterior_predictive_draws_every_observed_site(fitted_radon):
    draws = fitted_radon.predict(200)
    assert set(draws) == {"log_radon"} and draws["log_radon"].shape == (200, 900)


def test_coin_posterior_predictive_matches_the_fitted_success_rate(coin):
    report, draws = coin.predict(draws=4000)
    # Each flip is Bernoulli(f), f from the fit: the mean flip is f's mean, up to Monte Carlo error.
    assert draws["x"].double().mean().item() == pytest.approx(report.posterior["f"].mean, abs=0.01)


def test_observed_arrays_left_out_of_the_data_are_simulated_from_the_prior(coin):
    report, draws = coin.predict({"N": 30}, draws=4000)
    assert report is None  # nothing was fitted
    assert draws["x"].shape == (4000, 30)
    assert draws["x"].double().mean().item() == pytest.approx(0.5, abs=0.01)  # Beta(10, 10) prior mean


def test_predict_writes_csv_and_inference_data(specs, tmp_path, capsys):
    assert main(["predict", str(specs / "coin.ppl"), "--n", "300", "--out", str(tmp_path / "p.csv")]) == 0
    assert pd.read_csv(tmp_path / "p.csv", index_col="draw").shape == (300, 10)
    assert main(["predict", str(specs / "coin.ppl"), "--out", str(tmp_path / "p.nc")]) == 0
    idata = arviz.from_netcdf(tmp_path / "p.nc")
    assert {"posterior", "posterior_predictive", "observed_data"} <= set(idata.groups())


def test_predict_names_the_file_it_writes_on_stderr(specs, tmp_path, capsys):
    assert main(["predict", str(specs / "coin.ppl"), "--n", "300", "--out", str(tmp_path / "p.csv")]) == 0
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err.splitlines() == [f"wrote {tmp_path / 'p.csv'} (300 posterior predictive draws of x [10] "
                                        f"for {specs / 'coin.data.json'})"]


def test_predict_without_out_prints_the_csv_and_writes_no_file(specs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(specs / "coin.ppl"), "--n", "300"]) == 0
    printed = capsys.readouterr()
    assert pd.read_csv(io.StringIO(printed.out), index_col="draw").shape == (300, 10)
    assert printed.err.splitlines() == [f"printed 300 posterior predictive draws of x [10] for {specs / 'coin.data.json'} "
                                        "as CSV"]
    assert list(tmp_path.iterdir()) == []


def test_prior_predictive_inference_data_has_only_that_group(specs, tmp_path):
    (tmp_path / "sizes.json").write_text('{"N": 8}')
    assert main(["predict", str(specs / "coin.ppl"), "--data", str(tmp_path / "sizes.json"),
                 "--out", str(tmp_path / "prior.nc")]) == 0
    assert set(arviz.from_netcdf(tmp_path / "prior.nc").groups()) == {"prior_predictive"}


def test_idata_carries_the_posterior_predictive_when_asked_for(specs, tmp_path):
    path = tmp_path / "fit.nc"
    assert main(["run", str(specs / "coin.ppl"), "--quiet", "--idata", str(path), "--predictive", "200"]) == 0
    idata = arviz.from_netcdf(path)
    assert idata.posterior_predictive["x"].shape == (1, 200, 10)


def test_arviz_plots_the_inference_data(fitted_radon, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    axes = arviz.plot_posterior(fitted_radon.to_arviz(), var_names=["mu_a", "sigma_a"])
    assert len(np.ravel(axes)) == 2


def test_posterior_predictive_of_a_model_with_lets_keeps_the_data_shape(specs):
    # theta is a let (pyro.deterministic): releasing the observations must leave it computed, not drawn.
    draws = compile_file(specs / "eight_schools.ppl").fit(seed=0).predict(300)
    assert draws["y"].shape == (300, 8)
