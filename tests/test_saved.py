"""A saved fit: reproducible, and never paired with a spec or data it was not made from."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

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
    assert load_fit(folder / "coin.fit.json").report == report.report


def test_a_loaded_fit_predicts_what_the_fit_predicted(coin_fit):
    folder, report = coin_fit
    loaded = load_fit(folder / "coin.fit.json", data=folder / "coin.data.json", spec=folder / "coin.ppl")
    assert torch.equal(loaded.predict(500)["x"], report.predict(500)["x"])


def test_the_file_holds_the_spec_and_the_hashes(coin_fit):
    folder, _ = coin_fit
    saved = json.loads((folder / "coin.fit.json").read_text())
    assert saved["format"] == "pplc-fit/2"
    assert saved["spec_text"] == (folder / "coin.ppl").read_text()
    assert len(saved["spec_sha256"]) == len(saved["data_sha256"]) == 64
    assert set(saved["guide_parameters"]) == {"f.loc", "f.scale"}
    assert saved["draws"] == 10000  # RunConfig's default
    assert len(saved["linear_response"]["mean"]) == len(saved["linear_response"]["scale_tril"]) == 1  # f's one coordinate


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


def test_a_loaded_fit_has_the_draws_the_report_summarised(coin_fit):
    folder, report = coin_fit
    loaded = load_fit(folder / "coin.fit.json")
    assert report.covariance == "linear-response" and not report.resampled  # drawn again from the saved Gaussian
    assert torch.equal(loaded.draws["f"], report.draws["f"])


def test_a_file_of_the_previous_format_is_refused_with_a_hint(coin_fit, tmp_path, capsys):
    path = _tampered(coin_fit, tmp_path, lambda fit: fit.update(format="pplc-fit/1"))
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert "is not a pplc fit file: format: Input should be 'pplc-fit/2'" in err and "pplc run SPEC --save" in err


def _tampered(coin_fit, tmp_path, change) -> Path:
    """A copy of the saved coin fit with `change` made to its JSON."""
    folder, _ = coin_fit
    content = json.loads((folder / "coin.fit.json").read_text())
    change(content)
    path = tmp_path / "tampered.fit.json"
    path.write_text(json.dumps(content))
    return path


def _predict_from(coin_fit, path, tmp_path) -> int:
    folder, _ = coin_fit
    return main(["predict", str(folder / "coin.ppl"), "--fit", str(path), "--n", "10", "--out", str(tmp_path / "p.csv")])


def _other_model(fit: dict) -> None:
    fit["spec_text"] = fit["spec_text"].replace("Beta(10, 10)", "Beta(1, 1)")  # the hash left as it was


def test_a_fit_holding_another_spec_than_its_hash_names_is_refused_by_predict(coin_fit, tmp_path, capsys):
    path = _tampered(coin_fit, tmp_path, _other_model)
    assert _predict_from(coin_fit, path, tmp_path) == 2  # the spec given is the one the hash names
    assert f"{path} does not hold the spec it was saved with" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_a_fit_holding_another_spec_than_its_hash_names_is_refused_by_report(coin_fit, tmp_path, capsys):
    path = _tampered(coin_fit, tmp_path, _other_model)
    assert main(["report", str(path)]) == 2
    assert f"{path} does not hold the spec it was saved with" in capsys.readouterr().err


def test_a_fit_holding_another_spec_than_its_hash_names_is_refused_by_load_fit(coin_fit, tmp_path):
    with pytest.raises(PplError, match="does not hold the spec it was saved with") as raised:
        load_fit(_tampered(coin_fit, tmp_path, _other_model))
    assert raised.value.kind == "spec"


def _set(field: str, value):
    def change(fit: dict) -> None:
        fit["guide_parameters"][field] = value
    return change


def _rename_loc(fit: dict) -> None:
    fit["guide_parameters"]["g.loc"] = fit["guide_parameters"].pop("f.loc")


def _family(fit: dict) -> None:
    fit["guide_family"] = "evil"


# What is changed in the file: the change, and what the error says of it.
SEEN_WITHOUT_DATA = {
    "a wrong name": (_rename_loc, "does not hold the guide parameters of its spec: missing f.loc; unexpected g.loc"),
    "a missing entry": (lambda fit: fit["guide_parameters"].pop("f.scale"), "missing f.scale"),
    "a string": (_set("f.loc", "0.1"), "guide_parameters.f.loc"),
    "a boolean": (_set("f.loc", True), "guide_parameters.f.loc"),
    "null": (_set("f.loc", None), "guide_parameters.f.loc"),
    "lists of uneven lengths": (_set("f.loc", [[0.1], [0.2, 0.3]]), "guide parameter f.loc is not an array"),
    "an unknown guide family": (_family, "guide_family: Input should be 'normal', 'native', 'fullrank' or 'lowrank'"),
}
# Shapes and ranges come from the spec and the data: checked when the guide is used.
SEEN_WITH_DATA = {
    "a wrong shape": (_set("f.loc", [0.1, 0.2]), "guide parameter f.loc has shape [2], where the spec and data "
                      "give it shape []"),
    "a scale of 0 once constrained": (_set("f.scale", -1e308), "guide parameter f.scale is out of range"),
    "no linear-response Gaussian": (lambda fit: fit.pop("linear_response"), "holds no linear-response Gaussian, "
                                    "where its report says its draws came from one"),
    "a Gaussian of another dimension": (lambda fit: fit["linear_response"].update(mean=[0.1, 0.2]),
                                        "has a mean of 2 and 1 rows, where the guide has 1 coordinates"),
    "a Cholesky factor with a zero diagonal": (lambda fit: fit["linear_response"].update(scale_tril=[[0.0]]),
                                               "scale_tril is not a Cholesky factor"),
    "a Gaussian the guide cannot have": (lambda fit: fit["report"].update(covariance="full-rank"),
                                         "its report's draws came from a full-rank Gaussian, which no fit"),
}
EVERY_TAMPERING = {**SEEN_WITHOUT_DATA, **SEEN_WITH_DATA}


@pytest.mark.parametrize(("change", "message"), EVERY_TAMPERING.values(), ids=EVERY_TAMPERING)
def test_a_tampered_guide_is_a_spec_error_of_predict(coin_fit, tmp_path, capsys, change, message):
    path = _tampered(coin_fit, tmp_path, change)
    assert _predict_from(coin_fit, path, tmp_path) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


@pytest.mark.parametrize(("change", "message"), EVERY_TAMPERING.values(), ids=EVERY_TAMPERING)
def test_a_tampered_guide_is_a_spec_error_of_load_fit(coin_fit, tmp_path, change, message):
    folder, _ = coin_fit
    with pytest.raises(PplError, match=re.escape(message)) as raised:
        load_fit(_tampered(coin_fit, tmp_path, change), data=folder / "coin.data.json")
    assert raised.value.kind == "spec"


@pytest.mark.parametrize(("change", "message"), SEEN_WITHOUT_DATA.values(), ids=SEEN_WITHOUT_DATA)
def test_a_tampered_guide_is_a_spec_error_of_report(coin_fit, tmp_path, capsys, change, message):
    path = _tampered(coin_fit, tmp_path, change)
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err


def test_summaries_of_different_shapes_are_refused(coin_fit, tmp_path, capsys):
    path = _tampered(coin_fit, tmp_path, lambda fit: fit["report"]["posterior"]["f"].update(sd=[0.1, 0.2]))
    assert main(["report", str(path)]) == 2
    assert "the summaries of f are not arrays of one shape" in capsys.readouterr().err


def test_a_seed_no_fit_can_have_is_refused(coin_fit, tmp_path, capsys):
    path = _tampered(coin_fit, tmp_path, lambda fit: fit["report"].update(seed=-1))
    assert _predict_from(coin_fit, path, tmp_path) == 2
    assert "its seed -1 is not one a fit can have" in capsys.readouterr().err


def test_a_data_file_name_the_system_cannot_look_up_is_no_data_file(coin_fit, tmp_path):
    loaded = load_fit(_tampered(coin_fit, tmp_path, lambda fit: fit.update(data_origin="d" * 5000)))
    assert loaded.posterior == coin_fit[1].posterior  # the saved report, without data to draw from


CRAFTED = {"spec_name": "coin\x1b[2J.ppl", "data_origin": "data\n.json", "spec": "\x1b]0;title\x07",
           "site": "f\x1b[5m", "warning": "a \u009b2J b \u202eevil"}


def _crafted_names(fit: dict) -> None:
    fit.update(spec_name=CRAFTED["spec_name"], data_origin=CRAFTED["data_origin"])
    report = fit["report"]
    report.update(spec=CRAFTED["spec"], warnings=[CRAFTED["warning"]])
    report["posterior"] = {CRAFTED["site"]: report["posterior"]["f"]}


def _control_characters(text: str) -> list[str]:
    return [char for char in text if not char.isprintable() and char != "\n"]


def test_names_from_a_fit_file_are_printed_with_control_characters_escaped(coin_fit, tmp_path, capsys):
    folder, report = coin_fit
    assert main(["report", str(_tampered(coin_fit, tmp_path, _crafted_names))]) == 0
    out = capsys.readouterr().out
    assert _control_characters(out) == []
    for escaped in ("coin\\x1b[2J.ppl", "data\\n.json", "\\x1b]0;title\\x07", "f\\x1b[5m", "a \\x9b2J b \\u202eevil"):
        assert escaped in out
    assert len(out.splitlines()) == 1 + len(report.table().splitlines()) + 1  # one more line: the warning


def test_report_json_escapes_every_control_character_and_keeps_the_names(coin_fit, tmp_path, capsys):
    assert main(["report", str(_tampered(coin_fit, tmp_path, _crafted_names)), "--json"]) == 0
    out = capsys.readouterr().out
    assert _control_characters(out) == []
    shown = json.loads(out)
    assert (shown["spec_name"], shown["data_origin"]) == (CRAFTED["spec_name"], CRAFTED["data_origin"])
    assert shown["report"]["warnings"] == [CRAFTED["warning"]]
