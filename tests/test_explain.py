"""`pplc explain`: the joint's factorisation, the guide and the ELBO, and one ELBO
term computed for real that agrees with Pyro to float precision."""

from __future__ import annotations

import json

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO

from compiler import compile_file
from compiler.cli import main


def test_explanation_names_every_site_with_what_it_is(coin):
    terms = {t.site: t for t in coin.explain().terms}
    assert terms["f"].kind == "latent" and "sampled" in terms["f"].role
    assert terms["x"].kind == "observed" and "scored at the data (obs=), never sampled" in terms["x"].role


def test_explanation_writes_the_joint_in_the_spec_names(coin):
    explanation = coin.explain()
    assert explanation.joint == "log p(x, f)"
    assert [t.formula for t in explanation.terms] == ["log Beta(f | 10, 10)", "Σ_i log Bernoulli(x[i] | f)"]
    assert explanation.elbo == "ELBO = E_q[ log p(x, f) − log q(f) ]  ≤  log p(x)"


def test_guide_has_one_factor_per_latent_with_its_parameters(coin):
    (factor,) = coin.explain().guide
    assert factor.formula == "log LogitNormal(f | f.loc, f.scale)"


def test_native_guide_is_explained_as_a_beta(specs):
    (factor,) = compile_file(specs / "coin.ppl", guide="native").explain().guide
    assert factor.formula == "log Beta(f | f.alpha, f.beta)"


def test_lets_params_and_enumerated_latents_say_what_they_are(specs):
    kinds = {t.site: t.kind for t in compile_file(specs / "eight_schools.ppl").explain().terms}
    assert kinds["theta"] == "let"
    assert {t.site: t.kind for t in compile_file(specs / "noise_scale.ppl").explain().terms}["sigma"] == "param"
    mixture = {t.site: t for t in compile_file(specs / "mixture.ppl").explain().terms}
    assert mixture["z"].kind == "enumerated" and "summed out" in mixture["z"].role


def test_traced_log_joint_equals_pyro_replay_to_float_precision(coin):
    data = coin.load_data()
    result = coin.trace(data, seed=3)
    pyro.clear_param_store()  # as trace() does: the guide starts at its initial values
    pyro.set_rng_seed(3)
    guide_trace = poutine.trace(coin.guide).get_trace(data)
    expected = poutine.trace(poutine.replay(coin.model, guide_trace)).get_trace(data).log_prob_sum()
    assert result.log_joint == pytest.approx(expected.item(), rel=1e-6)


def test_traced_elbo_equals_minus_trace_elbo_loss_on_the_same_draw(coin):
    data = coin.load_data()
    result = coin.trace(data, seed=5)
    pyro.clear_param_store()
    pyro.set_rng_seed(5)
    loss = Trace_ELBO().loss(coin.model, coin.guide, data)
    assert result.elbo == pytest.approx(-loss, rel=1e-6)


def test_traced_elbo_after_fitting_is_higher_than_at_the_start(coin):
    data = coin.load_data()
    initial = [coin.trace(data, seed=s).elbo for s in range(5)]
    fitted = [coin.trace(data, fitted=True, seed=s).elbo for s in range(5)]
    assert sum(fitted) > sum(initial)


def test_trace_rows_give_kind_terms_and_log_prob(coin):
    rows = {r.site: r for r in coin.trace(seed=0).model_sites}
    assert rows["x"].kind == "observed" and rows["x"].terms == 10
    assert rows["f"].kind == "latent" and rows["f"].terms == 1
    assert sum(r.log_prob_sum for r in rows.values()) == pytest.approx(coin.trace(seed=0).log_joint, rel=1e-6)


def test_trace_of_a_let_records_its_value_without_a_density(specs):
    rows = {r.site: r for r in compile_file(specs / "eight_schools.ppl").trace(seed=0).model_sites}
    assert rows["theta"].kind == "let" and rows["theta"].terms == 0


def test_explain_cli_prints_text_and_json(specs, capsys):
    assert main(["explain", str(specs / "coin.ppl")]) == 0
    assert "log p(x, f) = log Beta(f | 10, 10)" in capsys.readouterr().out
    assert main(["explain", str(specs / "coin.ppl"), "--trace", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["elbo"] == pytest.approx(report["log_joint"] - report["log_guide"])
    assert torch.isfinite(torch.tensor(report["elbo"]))


def test_a_joint_guide_is_explained_as_one_gaussian_not_as_mean_field(specs):
    from compiler import compile_file
    from compiler.results.explain import render_explanation

    text = render_explanation(compile_file(specs / "radon.ppl", guide="fullrank").explain())
    assert "one full-rank Gaussian over every latent" in text and "mean-field" not in text
