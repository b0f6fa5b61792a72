"""Predictions for new data: the model run on each of a fit's posterior draws of the latents
(never the mean-field guide's own draws), with new covariates, its observations drawn."""

from __future__ import annotations

import json
import shutil

import arviz
import pytest
import torch

from compiler import DataError, compile_file, compile_source, load_fit
from compiler.cli import main

# New rows of specs/logistic_regression.ppl's covariates: far apart in probability, so that a
# wrong coefficient shows in every row. The observed y is left out: it is what is predicted.
NEW_X = [[0.5, -1.0], [-2.0, 0.3], [1.0, 1.0], [0.0, 0.0]]
NEW_ROWS = {"N": len(NEW_X), "K": 2, "X": NEW_X}
DRAWS = 20_000


@pytest.fixture(scope="module")
def logistic():
    return compile_file("specs/logistic_regression.ppl")


@pytest.fixture(scope="module")
def logistic_fit(logistic):
    return logistic.fit(seed=0)


@pytest.fixture(scope="module")
def saved_fit(specs, tmp_path_factory):
    """specs/logistic_regression.ppl fitted and saved in a folder of its own, with new rows beside it."""
    folder = tmp_path_factory.mktemp("saved")
    for name in ("logistic_regression.ppl", "logistic_regression.data.json"):
        shutil.copy(specs / name, folder / name)
    compile_file(folder / "logistic_regression.ppl").fit(seed=0).save(folder / "fit.json")
    (folder / "new.json").write_text(json.dumps(NEW_ROWS))
    return folder


def _implied_probabilities(fit, draws: int) -> torch.Tensor:
    """P(y = 1) for each new row, averaged over the posterior draws the predictions use."""
    alpha, beta = fit.draws["alpha"], fit.draws["beta"]
    used = torch.arange(draws) * len(alpha) // draws
    return torch.sigmoid(alpha[used, None] + beta[used] @ torch.tensor(NEW_X, dtype=beta.dtype).T).mean(0)


def test_predictions_for_new_rows_have_their_shape(logistic_fit):
    assert logistic_fit.predict(50, data=NEW_ROWS)["y"].shape == (50, len(NEW_X))


def test_predictions_for_new_rows_follow_the_fitted_coefficients(logistic_fit):
    predicted = logistic_fit.predict(DRAWS, data=NEW_ROWS)["y"].double().mean(0)
    # Given the draws' probabilities p_d, the mean of the Bernoulli draws has sd at most
    # sqrt(0.25 / 20,000) = 0.0035 about their mean; 0.015 is over four of those sds.
    assert predicted == pytest.approx(_implied_probabilities(logistic_fit, DRAWS), abs=0.015)


def test_a_new_size_of_a_latents_dimension_is_refused_naming_the_latent_and_both_shapes(logistic_fit):
    wider = {"N": 1, "K": 3, "X": [[0.0, 1.0, 2.0]]}
    with pytest.raises(DataError, match=r"latent 'beta' shape \[3\] \(K = 3\), but the fit drew it with shape \[2\]"):
        logistic_fit.predict(10, data=wider)


@pytest.fixture(scope="module")
def revealing_fit():
    """A fit of 4 draws whose observations are mu up to a noise of 1e-9: each prediction
    shows the posterior draw it was made from."""
    program = compile_source("data N: int\ndata y: real[N]\nlatent mu ~ Normal(0, 1)\n"
                             "observe y[i] ~ Normal(mu, 0.000000001)\n")
    return program.fit({"N": 2, "y": [0.3, -0.1]}, draws=4, seed=0, resample=False)  # four distinct draws


def test_each_prediction_is_made_from_the_reports_posterior_draw_of_its_index(revealing_fit):
    predicted = revealing_fit.predict(4, data={"N": 3})["y"]
    assert predicted == pytest.approx(revealing_fit.draws["mu"][:, None].expand(4, 3), abs=1e-6)


def test_fewer_draws_than_the_fit_holds_are_spread_over_them(revealing_fit):
    predicted = revealing_fit.predict(2, data={"N": 1})["y"][:, 0]
    assert predicted == pytest.approx(revealing_fit.draws["mu"][torch.tensor([0, 2])], abs=1e-6)


def test_more_draws_than_the_fit_holds_use_each_of_its_draws_equally_often(revealing_fit):
    predicted = revealing_fit.predict(8, data={"N": 1})["y"][:, 0]
    assert predicted == pytest.approx(revealing_fit.draws["mu"][torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])], abs=1e-6)


def test_a_nuts_fit_predicts_for_new_rows(logistic):
    fit = logistic.sample(warmup=50, samples=50, chains=2, seed=0)
    assert fit.predict(30, data=NEW_ROWS)["y"].shape == (30, len(NEW_X))


def test_a_loaded_fit_has_the_resampled_draws_the_report_summarised(saved_fit, logistic_fit):
    assert logistic_fit.covariance == "linear-response" and logistic_fit.resampled  # PSIS-resampled again on loading
    loaded = load_fit(saved_fit / "fit.json")
    assert all(torch.equal(loaded.draws[name], logistic_fit.draws[name]) for name in ("alpha", "beta"))


def test_a_loaded_fit_predicts_for_new_data_what_the_fit_predicted(saved_fit, logistic_fit):
    loaded = load_fit(saved_fit / "fit.json")
    assert torch.equal(loaded.predict(200, data=saved_fit / "new.json")["y"], logistic_fit.predict(200, data=NEW_ROWS)["y"])


def _predict(folder, *options: str) -> int:
    return main(["predict", str(folder / "logistic_regression.ppl"), "--fit", str(folder / "fit.json"), *options])


def test_pplc_predict_writes_predictions_and_their_constant_data_for_new_data(saved_fit, tmp_path, capsys):
    out = tmp_path / "p.nc"
    assert _predict(saved_fit, "--data", str(saved_fit / "new.json"), "-n", "40", "--out", str(out)) == 0
    idata = arviz.from_netcdf(out)
    assert {"posterior", "predictions", "predictions_constant_data"} <= set(idata.groups())
    assert "posterior_predictive" not in idata.groups()
    assert idata.predictions["y"].shape == (1, 40, len(NEW_X))
    assert idata.predictions_constant_data["X"].values.tolist() == NEW_X
    assert idata.predictions.attrs["data"] == str(saved_fit / "new.json")


def test_pplc_predict_names_the_new_data_it_predicted_for(saved_fit, tmp_path, capsys):
    out = tmp_path / "p.csv"
    assert _predict(saved_fit, "--data", str(saved_fit / "new.json"), "-n", "40", "--out", str(out)) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"wrote {out} (40 posterior predictive draws of y [{len(NEW_X)}] for {saved_fit / 'new.json'} (new data))"]


def test_pplc_predict_refuses_a_new_latent_shape_as_a_data_error(saved_fit, tmp_path, capsys):
    (tmp_path / "wider.json").write_text(json.dumps({"N": 1, "K": 3, "X": [[0.0, 1.0, 2.0]]}))
    assert _predict(saved_fit, "--data", str(tmp_path / "wider.json"), "--out", str(tmp_path / "p.csv")) == 3
    err = capsys.readouterr().err
    assert "error: these data give latent 'beta' shape [3]" in err and "Traceback" not in err
    assert not (tmp_path / "p.csv").exists()


def test_a_saved_fit_whose_data_file_is_gone_is_refused(saved_fit, tmp_path, capsys):
    (saved_fit / "logistic_regression.data.json").rename(tmp_path / "elsewhere.json")
    try:
        assert _predict(saved_fit, "--data", str(saved_fit / "new.json")) == 3
        assert "is restored with the data it was fitted to" in capsys.readouterr().err
        # Given as --data, the fitted data restore it where they are now.
        assert _predict(saved_fit, "--data", str(tmp_path / "elsewhere.json"), "-n", "5") == 0
    finally:
        (tmp_path / "elsewhere.json").rename(saved_fit / "logistic_regression.data.json")
