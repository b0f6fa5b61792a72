"""A fit made through the Python API raises each of its report's warnings once through `warnings`,
under a `PplcWarning` subclass saying what kind of warning it is, and logs how it ended on the
"pplc" logger; `pplc` prints the report and raises none of them."""

from __future__ import annotations

import logging
import warnings
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

import compiler
from compiler import cli
from compiler.inference.nuts import NutsResult, SampleStats
from compiler.inference.records import Importance
from compiler.results.summarise import nuts_warnings, vi_warnings

COIN = "specs/coin.ppl"
NO_DATA = SimpleNamespace(warnings=())


def _recorded(action) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action()
    return [w for w in caught if issubclass(w.category, compiler.PplcWarning)]


def test_a_fit_stopped_at_its_cap_raises_a_convergence_warning_at_the_callers_line():
    with pytest.warns(compiler.ConvergenceWarning, match="the ELBO was still changing after 2 steps") as caught:
        compiler.compile_file(COIN).fit(max_steps=2, draws=100)
    assert caught[0].filename == __file__


def test_each_of_a_fits_warnings_is_raised_once_with_the_reports_words():
    program = compiler.compile_file(COIN)
    fit = None

    def fitting():
        nonlocal fit
        fit = program.fit(max_steps=2, draws=100)

    raised = _recorded(fitting)
    assert [str(w.message) for w in raised] == fit.warnings and fit.warnings


def test_a_columns_the_spec_does_not_declare_are_a_data_warning():
    frame = pd.DataFrame({"x": [0, 1, 1, 0, 1], "weight": [1.0, 2.0, 3.0, 4.0, 5.0]})
    with pytest.warns(compiler.DataWarning, match="ignoring 'weight'"):
        compiler.compile_file(COIN).fit(frame, draws=100)


def test_a_fit_without_warnings_raises_none():
    assert _recorded(lambda: compiler.compile_file(COIN).fit(draws=100)) == []


def test_a_heavy_tailed_khat_is_a_khat_warning():
    importance = Importance(1.2, 1.0, 0.7, None, 4000)
    result = SimpleNamespace(notes=(), interrupted=False, converged=True, steps=10, covariance="mean-field",
                             importance=importance)
    assert [w.kind for w in vi_warnings(result, NO_DATA)] == [compiler.KhatWarning]


def test_divergences_and_disagreeing_chains_are_their_own_kinds():
    diverging = torch.zeros(2, 10, dtype=torch.bool)
    diverging[0, :3] = True
    stats = SampleStats(diverging, torch.full((2, 10), 3), torch.full((2, 10), 2), torch.full((2, 10), 0.5))
    result = NutsResult({"m": torch.zeros(2, 10)}, {"m": torch.tensor(1.2)}, {"m": torch.tensor(5.0)}, stats)
    kinds = [w.kind for w in nuts_warnings(result, NO_DATA)]
    assert kinds == [compiler.ConvergenceWarning, compiler.DivergenceWarning]


def test_every_kind_is_a_pplc_warning_a_caller_can_filter_at_once():
    kinds = (compiler.DataWarning, compiler.ConvergenceWarning, compiler.KhatWarning, compiler.DivergenceWarning,
             compiler.FitWarning)
    assert all(issubclass(kind, compiler.PplcWarning) and issubclass(kind, UserWarning) for kind in kinds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", compiler.PplcWarning)
        compiler.compile_file(COIN).fit(max_steps=2, draws=100)
    assert caught == []


def test_a_fit_logs_how_it_ended_on_the_pplc_logger(caplog):
    with caplog.at_level(logging.INFO, logger="pplc"):
        compiler.compile_file(COIN).fit(draws=100)
    [record] = [r for r in caplog.records if r.name == "pplc"]
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith(f"{COIN}: VI (lbfgs), converged after ")


def test_pplc_prints_a_warning_once_and_raises_none(capsys):
    raised = _recorded(lambda: cli.main(["run", COIN, "--max-steps", "2", "--num-draws", "100", "--quiet"]))
    out, err = capsys.readouterr()
    assert raised == []
    assert out.count("the ELBO was still changing") == 1 and "still changing" not in err
