"""What a fit spends beyond its own evaluations: k̂'s importance draws are priced by the fit's
cost (with their count and k̂'s error reported), and what the data load checked is not
checked again at every evaluation."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
from torch.distributions import constraints

import compiler
from compiler.inference import importance
from compiler.inference.elbo import TERMS_PER_STEP
from compiler.results.render import render_table

LOGISTIC = """
data N: int
data x: real[N]
data y: int<lower=0, upper=1>[N]
latent a ~ Normal(0, 2)
latent b ~ Normal(0, 2)
observe y[i] ~ Bernoulli(logits=a + b * x[i])
"""


def _logistic_data(n: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    return {"x": x, "y": (rng.random(n) < 1 / (1 + np.exp(-(0.3 + x)))).astype(int)}


@pytest.fixture(scope="module")
def program():
    return compiler.compile_source(LOGISTIC)


def test_a_large_fit_spends_a_tenth_of_its_own_terms_on_khat(program):
    data = program.load_data(_logistic_data(100_000))
    fitted = 30 * 20  # iterations times particles: a fit of 10^5 rows this cheap affords few draws
    count = importance.draw_count(program.compiled, data, fitted)
    terms = 100_000
    budget = max(importance.FREE_TERMS, importance.DIAGNOSTIC_SHARE * importance.GRADIENT_COST * fitted * terms)
    assert count == max(importance.PSIS_MIN_DRAWS, int(budget // terms))
    assert count * terms <= max(budget, importance.PSIS_MIN_DRAWS * terms)


def test_small_data_keep_every_importance_draw(program):
    data = program.load_data(_logistic_data(50))
    assert importance.draw_count(program.compiled, data, 1) == importance.PSIS_DRAWS
    assert 50 * importance.PSIS_DRAWS <= TERMS_PER_STEP  # the free budget covers them


def test_the_report_gives_khat_with_its_draws_and_standard_error(program):
    report = program.fit(_logistic_data(200)).report
    tail = min(report.khat_draws / 5, 3 * report.khat_draws ** 0.5)
    assert report.khat_draws == importance.PSIS_DRAWS
    assert report.khat_error == pytest.approx((1 + report.khat) / tail ** 0.5)


def test_the_text_report_states_khats_error(program):
    fitted = program.fit(_logistic_data(200)).report
    report = fitted.model_copy(update={"log_ratio_sd": 1.0})  # weights that vary: the k̂ line is shown
    assert f"± {report.khat_error:.2f} from {report.khat_draws} draws" in render_table(report)


def test_observed_data_are_checked_once_not_at_every_evaluation(program, monkeypatch):
    data = program.load_data(_logistic_data(200))
    checks = []
    check = constraints.boolean.check
    monkeypatch.setattr(constraints.boolean, "check", lambda value: checks.append(value.shape) or check(value))
    report = program.fit(data).report
    observed = [shape for shape in checks if shape[-1:] == (200,)]
    assert report.steps > 5 and len(observed) <= 2  # the first evaluation's check (and predictive draws' none)


def test_pyro_calls_after_a_fit_keep_their_checks(program):
    program.fit(_logistic_data(200))
    assert pyro.distributions.is_validation_enabled()
    with pytest.raises(ValueError):
        pyro.distributions.Bernoulli(probs=2.0)
