"""How a notebook shows pplc's objects: `_repr_html_` of a fit and of a program, the same
content as the terminal's, every text escaped."""

from __future__ import annotations

import html
import re

from compiler import compile_source

SPEC = "data N: int\ndata y: real[N]\nlatent m ~ Normal(0, 5)\nobserve y[i] ~ Normal(m, 1)\n"


def test_a_fit_shows_as_an_html_table_of_its_posterior(fitted_linear_regression):
    page = fitted_linear_regression._repr_html_()
    cells = re.findall(r"<td>([^<]*)</td>", page)
    for label in ("alpha", "beta[0]", "beta[2]", "sigma"):
        assert label in cells
    assert page.count("<tr><td>") == len(fitted_linear_regression.summary())  # one row per scalar element


def test_the_html_holds_what_the_table_says_below_it(fitted_coin):
    page = fitted_coin._repr_html_()
    assert "draws: the linear-response Gaussian" in page and "ELBO" in page


def test_warnings_show_in_the_html():
    fit = compile_source(SPEC, "warned.ppl").fit({"N": 3, "y": [0.1, 0.2, 0.3]}, steps=2, optimizer="adam")
    assert fit.warnings and all(html.escape(w) in fit._repr_html_() for w in fit.warnings)


def test_a_program_shows_its_check_line_and_its_spec_escaped():
    page = compile_source(SPEC + "let small = m < 1 ? 1 : 0\n", "model.ppl")._repr_html_()
    assert "model.ppl: ok" in page and "m &lt; 1 ? 1 : 0" in page and "m < 1" not in page
