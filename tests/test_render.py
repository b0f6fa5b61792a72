"""The terminal's view of a report: the table `pplc run` prints, and VI against NUTS (`pplc vi-vs-nuts`)."""

from __future__ import annotations

import pytest

from compiler.results.render import compare, render_comparison, render_table
from compiler.results.report import Report, Summary


def _summary(mean, sd=1.0) -> Summary:
    same = mean if not isinstance(mean, list) else [0.0] * len(mean)
    return Summary(mean=mean, sd=sd, hdi_3=same, hdi_97=same, q05=same, q50=same, q95=same)


def _report(**fields) -> Report:
    defaults = dict(spec="s.ppl", guide={"m": "Normal"}, elbo=-3.0, steps=10, converged=True,
                    posterior={"m": _summary(0.0)}, params={}, seed=0, optimizer="lbfgs")
    return Report(**{**defaults, **fields})


def test_the_first_line_names_the_method_the_seed_and_convergence():
    assert render_table(_report(converged=False)).splitlines()[0] == (
        "s.ppl: VI by L-BFGS on fixed draws, 10 iterations, seed 0 (NOT converged)")


def test_table_has_one_row_per_element_and_folds_long_arrays():
    table = render_table(_report(posterior={"a": _summary([0.5] * 85, sd=[1.0] * 85)}))
    assert "a[0]" in table and "a[9]" in table
    assert "a[10]" not in table
    assert "75 more of a" in table


def test_point_parameters_get_a_line_each():
    assert "param sigma = 0.5" in render_table(_report(params={"sigma": 0.5}))


def test_warnings_end_the_table():
    assert render_table(_report(warnings=["not converged"])).splitlines()[-1] == "warning: not converged"


def test_a_nuts_report_shows_r_hat_and_ess_columns():
    nuts = _report(method="nuts", optimizer=None, elbo=None, chains=2, divergences=0,
                   posterior={"m": _summary(0.0).model_copy(update={"rhat": 1.0, "ess": 800.0})})
    table = render_table(nuts)
    assert "NUTS, 2 chains x 10 draws, 0 divergences" in table
    assert "r_hat" in table and "ess" in table


def test_comparison_measures_the_vi_error_in_nuts_sds():
    vi = _report(posterior={"m": _summary(1.0, sd=0.5)})
    nuts = _report(posterior={"m": _summary(0.0, sd=2.0)}, method="nuts", chains=2)
    [row] = compare(vi, nuts)
    assert (row.name, row.error_in_nuts_sds, row.sd_ratio) == ("m", pytest.approx(0.5), pytest.approx(0.25))
    assert "largest mean error: m, +0.50 NUTS sds" in render_comparison(vi, nuts, [row])


def test_comparison_names_each_element_of_an_array():
    vi = _report(posterior={"b": _summary([1.0, 2.0], sd=[1.0, 1.0])})
    nuts = _report(posterior={"b": _summary([1.0, 2.0], sd=[1.0, 1.0])})
    assert [row.name for row in compare(vi, nuts)] == ["b[0]", "b[1]"]
