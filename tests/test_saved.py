"""A saved fit: reproducible, and never paired with a spec or data it was not made from."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from compiler import DataError, PplError, compile_file, load_fit
from compiler.cli import main


@pytest.fixture(scope="module")
def coin_fit(specs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fit")
    for name in ("coin.ppl", "coin.data.json"):
        shutil.copy(specs / name, folder / name)
    report = compile_file(folder / "coin.ppl").fit(seed=0)
    report.save(folder / "coin.fit.json")
    return folder, report


def test_a_loaded_fit_has_the_saved_report(coin_fit):
    folder, report = coin_fit
    assert load_fit(folder / "coin.fit.json").model_dump() == report.model_dump()


def test_a_loaded_fit_predicts_what_the_fit_predicted(coin_fit):
    folder, report = coin_fit
    loaded = load_fit(folder / "coin.fit.json", data=folder / "coin.data.json", spec=folder / "coin.ppl")
    assert torch.equal(loaded.predict(500)["x"], report.predict(500)["x"])


def test_the_file_holds_the_spec_and_the_hashes(coin_fit):
    folder, _ = coin_fit
    saved = json.loads((folder / "coin.fit.json").read_text())
    assert saved["format"] == "pplc-fit/1"
    assert saved["spec_text"] == (folder / "coin.ppl").read_text()
    assert len(saved["spec_sha256"]) == len(saved["data_sha256"]) == 64
    assert set(saved["guide_parameters"]) == {"f.loc", "f.scale"}


def test_a_changed_spec_is_refused(coin_fit, tmp_path):
    folder, _ = coin_fit
    changed = tmp_path / "coin.ppl"
    changed.write_text((folder / "coin.ppl").read_text().replace("Beta(10, 10)", "Beta(1, 1)"))
    with pytest.raises(PplError, match="made from a different version of"):
        load_fit(folder / "coin.fit.json", spec=changed)


def test_other_data_are_refused(coin_fit):
    folder, _ = coin_fit
    with pytest.raises(DataError, match="made from other data"):
        load_fit(folder / "coin.fit.json", data={"x": [1, 1, 1]})


def test_pplc_report_prints_the_saved_table(coin_fit, capsys):
    folder, report = coin_fit
    assert main(["report", str(folder / "coin.fit.json")]) == 0
    printed = capsys.readouterr().out
    assert report.table() in printed and "sha256" in printed


def test_a_file_that_is_not_a_fit_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "x.json").write_text('{"N": 3}')
    assert main(["report", str(tmp_path / "x.json")]) == 2
    assert "is not a pplc fit file" in capsys.readouterr().err


def test_nuts_fits_are_not_saved(specs, tmp_path, capsys):
    assert main(["run", str(specs / "coin.ppl"), "--method", "nuts", "--save", str(tmp_path / "f.json")]) == 2
    assert "--save keeps a VI fit" in capsys.readouterr().err


def test_a_loaded_fit_summarises_draws_from_the_saved_guide(coin_fit):
    folder, report = coin_fit
    frame = load_fit(folder / "coin.fit.json").summary()
    assert frame.loc["f", "mean"] == pytest.approx(report.posterior["f"].mean, abs=0.005)  # 10,000 draws: MC error 0.001
