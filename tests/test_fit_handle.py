"""`Fit`: what `Program.fit` returns. The report (pure data) beside the program, data, draws
and fitted guide that predicting, saving and writing files need."""

from __future__ import annotations

import pytest
import torch

from compiler import PplError, compile_file
from compiler.results.fit import Fit
from compiler.results.render import render_table
from compiler.results.report import Report

DRAWS = 500


@pytest.fixture(scope="module")
def coin(specs):
    return compile_file(specs / "coin.ppl")


@pytest.fixture(scope="module")
def coin_fit(coin):
    return coin.fit(steps=50, draws=DRAWS, seed=0)


def test_the_report_is_pure_data_and_reads_back_from_its_json(coin_fit):
    assert isinstance(coin_fit.report, Report)
    assert Report.model_validate_json(coin_fit.to_json()) == coin_fit.report


def test_every_report_field_reads_through_the_handle(coin_fit):
    for name in Report.model_fields:
        assert getattr(coin_fit, name) == getattr(coin_fit.report, name), name


def test_the_table_is_the_reports(coin_fit):
    assert coin_fit.table() == render_table(coin_fit.report)


def test_the_draws_behind_the_summaries_are_kept(coin_fit):
    f = coin_fit.draws["f"]
    assert f.shape == (DRAWS,)
    assert f.double().mean().item() == pytest.approx(coin_fit.posterior["f"].mean)


def test_predict_draws_every_observed_site_in_the_shape_of_the_data(coin_fit):
    predicted = coin_fit.predict(7)
    assert set(predicted) == {"x"}
    assert predicted["x"].shape == (7, 10)


def test_predict_draws_the_same_values_for_the_same_fit(coin_fit):
    assert torch.equal(coin_fit.predict(50)["x"], coin_fit.predict(50)["x"])


def test_the_observed_data_are_the_fitted_data(coin_fit, coin):
    assert torch.equal(coin_fit.observed()["x"], coin.load_data()["x"])


def test_a_report_without_its_data_can_neither_predict_nor_be_saved(coin_fit, coin, tmp_path):
    report_only = Fit(coin_fit.report, coin, None)
    with pytest.raises(PplError, match="needs the fit's draws"):
        report_only.predict(10)
    with pytest.raises(PplError, match="needs a VI fit with its data"):
        report_only.save(tmp_path / "coin.fit.json")
    assert not list(tmp_path.iterdir())
    assert report_only.observed() == {}


def test_draws_without_a_guide_predict_from_the_draws(coin_fit, coin):
    nuts_like = Fit(coin_fit.report, coin, coin.load_data(), coin_fit.draws)  # NUTS: draws, no guide
    assert torch.equal(nuts_like.predict(50)["x"], coin_fit.predict(50)["x"])


def test_draws_without_a_guide_cannot_be_saved(coin_fit, coin, tmp_path):
    nuts_like = Fit(coin_fit.report, coin, coin.load_data(), coin_fit.draws)
    with pytest.raises(PplError, match="no guide to save"):
        nuts_like.save(tmp_path / "coin.fit.json")
