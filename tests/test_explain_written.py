"""`pplc explain` shows each statement as the spec wrote it: a truncated or censored term with
its `T[lo, hi]` / `censored[lo, hi]` and the density it stands for, a recurrence with its first
elements and its step, an ODE's derivative and where it is solved, a user function's call;
and `explain --trace` still adds up to the model's log joint."""

from __future__ import annotations

import pyro
import pytest
from pyro import poutine
from test_recurrences import GARCH, STOCHASTIC_VOLATILITY

from compiler import compile_source
from compiler.cli import main


def _terms(spec: str) -> dict:
    return {term.site: term for term in compile_source(spec).explain().terms}


TRUNCATED_AND_CENSORED = """
data N: int
data y: real[N]
data c: real[N]
data w: real[N]
latent mu ~ Normal(0, 10)
latent sigma ~ Normal(0, 5) T[0, ]
observe y[i] ~ Normal(mu, sigma) T[, 8]
observe w[i] ~ Normal(mu, 2) censored[c[i] - 1, c[i]]
"""


def test_a_truncated_latent_shows_its_bounds_and_its_renormalised_density():
    sigma = _terms(TRUNCATED_AND_CENSORED)["sigma"]
    assert sigma.formula == "log Normal(sigma | 0, 5) T[0, ]"
    assert sigma.density == "Normal(0, 5) truncated to [0, ∞): log Normal(sigma | 0, 5) − log(1 − F(0)), F its CDF"


def test_an_observation_truncated_from_above_divides_by_the_mass_below_its_bound():
    y = _terms(TRUNCATED_AND_CENSORED)["y"]
    assert y.formula == "Σ_i log Normal(y[i] | mu, sigma) T[, 8]"
    assert y.density == "Normal(mu, sigma) truncated to (−∞, 8]: log Normal(y[i] | mu, sigma) − log(F(8)), F its CDF"


def test_a_censored_observation_shows_the_tail_each_bound_stands_for():
    w = _terms(TRUNCATED_AND_CENSORED)["w"]
    assert w.formula == "Σ_i log Normal(w[i] | mu, 2) censored[c[i] - 1, c[i]]"
    assert w.density == ("Normal(mu, 2) censored below c[i] - 1 and above c[i]: log F(c[i] - 1) where w[i] = c[i] - 1, "
                         "log(1 − F(c[i])) where w[i] = c[i], else log Normal(w[i] | mu, 2); F its CDF")


def test_the_text_prints_the_density_under_its_term(capsys, tmp_path):
    spec = tmp_path / "truncated.ppl"
    spec.write_text(TRUNCATED_AND_CENSORED)
    assert main(["explain", str(spec)]) == 0
    lines = capsys.readouterr().out.splitlines()
    sigma = next(index for index, line in enumerate(lines) if "T[0, ]" in line)
    assert lines[sigma + 1].strip() == (
        "(Normal(0, 5) truncated to [0, ∞): log Normal(sigma | 0, 5) − log(1 − F(0)), F its CDF)")


def test_a_let_recurrence_shows_its_first_element_and_its_step_as_written():
    assert _terms(GARCH)["v"].formula == (
        "v[0] = sigma1 ^ 2; v[t in 1:T] = alpha0 + alpha1 * (y[t - 1] - mu) ^ 2 + beta1 * v[t - 1]")


def test_a_latent_recurrence_shows_the_density_of_its_first_element_and_of_each_step():
    assert _terms(STOCHASTIC_VOLATILITY)["h"].formula == (
        "log Normal(h[0] | mu, s / sqrt(1 - phi ^ 2)) + Σ_t log Normal(h[t] | mu + phi * (h[t - 1] - mu), s)")


ODE = """
fun decay(rate, amount) = -rate * amount
data N: int
data ts: real[N]
data y: real[N, 2]
latent k ~ LogNormal(0, 1)
ode dz(t, z) = [decay(k, z[0]), decay(k, z[1]) - decay(k, z[0])]
let z_at = solve(dz, [1.0, 0.0], 0, ts)
observe y[n, j] ~ Normal(z_at[n, j], 0.1)
"""


def test_an_ode_shows_its_derivative_and_the_statement_that_solves_it():
    dz = _terms(ODE)["dz"]
    assert dz.kind == "ode"
    assert dz.formula == "dz(t, z) = dz/dt = [decay(k, z[0]), decay(k, z[1]) - decay(k, z[0])]"
    assert dz.role.endswith("; solved in let z_at")


def test_a_user_function_is_shown_as_its_call():
    spec = ("fun hill(x, k, n) = x ^ n / (k ^ n + x ^ n)\ndata N: int\ndata dose: real[N]\ndata y: real[N]\n"
            "latent k ~ LogNormal(0, 1)\nobserve y[i] ~ Normal(2 * hill(dose[i], k, 3), 1)\n")
    assert _terms(spec)["y"].formula == "Σ_i log Normal(y[i] | 2 * hill(dose[i], k, 3), 1)"


def test_the_traced_log_joint_of_restricted_and_recurrent_terms_is_the_models():
    spec = TRUNCATED_AND_CENSORED + "latent h[0] ~ Normal(mu, 1)\nlatent h[t in 1:N] ~ Normal(h[t - 1], sigma)\n"
    program = compile_source(spec)
    data = program.load_data({"N": 3, "y": [1.0, 2.0, 7.5], "c": [0.5, 1.0, 3.0], "w": [-0.5, 0.7, 3.0]})
    result = program.trace(data, seed=4)
    pyro.clear_param_store()  # as trace() does: the guide starts at its initial values
    pyro.set_rng_seed(4)
    guide_trace = poutine.trace(program.guide).get_trace(data)
    expected = poutine.trace(poutine.replay(program.model, guide_trace)).get_trace(data).log_prob_sum().item()
    assert result.log_joint == pytest.approx(expected, rel=1e-12)
    assert sum(row.log_prob_sum for row in result.model_sites) == pytest.approx(expected, rel=1e-12)


def test_the_html_page_gives_a_restricted_terms_density_beside_it():
    from html import escape

    from compiler.results import explain_html

    program = compile_source(TRUNCATED_AND_CENSORED)
    data = program.load_data({"N": 2, "y": [1.0, 2.0], "c": [0.5, 1.0], "w": [-0.5, 1.0]})
    html = explain_html.page(program, data, None)
    assert escape("; Normal(0, 5) truncated to [0, ∞): log Normal(sigma | 0, 5) − log(1 − F(0)), F its CDF") in html
