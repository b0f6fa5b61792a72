"""Specs that once ended in "pplc: internal error" (exit 70), or in a refusal of a valid
spec, kept as regression tests: `tests/specs_that_once_crashed/NAME.ppl`, with its data
beside it. Each is fitted for two steps and must fit, unless `NAME.expected` holds the
located error `pplc run` must print instead (and exit 2 for the spec, 3 for its data).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler.cli import main

CASES_FOLDER = Path(__file__).parent / "specs_that_once_crashed"
CASES = sorted(p.stem for p in CASES_FOLDER.glob("*.ppl"))
FAILING = [case for case in CASES if (CASES_FOLDER / f"{case}.expected").is_file()]
FITTING = [case for case in CASES if case not in FAILING]


def run(case: str, capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.chdir(CASES_FOLDER)
    code = main(["run", f"{case}.ppl", "--steps", "2", "--num-draws", "20"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", FITTING)
def test_spec_that_once_crashed_now_fits(case, capsys, monkeypatch):
    code, errors = run(case, capsys, monkeypatch)
    assert code == 0, errors


@pytest.mark.parametrize("case", FAILING)
def test_spec_that_once_crashed_now_fails_with_its_located_error(case, capsys, monkeypatch):
    code, errors = run(case, capsys, monkeypatch)
    assert code in (2, 3)
    assert errors == (CASES_FOLDER / f"{case}.expected").read_text()


def test_the_crashes_the_issue_names_all_have_a_case():
    assert {"function_of_a_number", "function_of_scalar_data", "power_of_a_latent_times_an_array",
            "power_of_two_latents_times_a_matrix", "gaussian_process_covariance_from_latents", "not_utf8",
            "integer_of_4301_digits", "number_beyond_float_range", "number_that_underflows"} <= set(CASES)
