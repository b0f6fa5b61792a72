"""The progress bar (`tqdm.auto`) says only what is known: a fit that stops where the ELBO levels off
has no total until one is known; a fit of fixed length counts against it."""

from __future__ import annotations

import re

import pytest

from compiler import compile_file


@pytest.fixture(scope="module")
def coin():
    return compile_file("specs/coin.ppl")


def test_an_lbfgs_fit_to_convergence_counts_iterations_without_a_made_up_total(coin, capsys):
    coin.fit(draws=100, progress=True)
    bar = capsys.readouterr().err
    assert "L-BFGS" in bar and "iteration/s" in bar and "ELBO" in bar
    assert "%|" not in bar and not re.search(r"\d+/\d+", bar)  # no share done, no "n/total"


def test_an_lbfgs_fit_of_fixed_length_counts_against_it(coin, capsys):
    coin.fit(draws=100, steps=30, progress=True)
    assert "/30 [" in capsys.readouterr().err


def test_an_adam_fit_to_convergence_shows_its_refinement_with_the_total_it_then_knows(coin, capsys):
    fit = coin.fit(draws=100, optimizer="adam", progress=True)
    bar = capsys.readouterr().err
    exploring, refining = bar.split("Adam refining", 1)
    assert "%|" not in exploring and f"/{fit.steps} [" in refining


def test_no_bar_unless_asked_for(coin, capsys):
    coin.fit(draws=100)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("chains", [1, 2])  # in this process, and in forked workers counting in shared memory
def test_nuts_counts_every_chains_warmup_and_draws_against_their_total(coin, capsys, chains):
    coin.sample(warmup=20, samples=30, chains=chains, progress=True)
    bar = capsys.readouterr().err
    assert "L-BFGS" in bar.split("NUTS")[0]  # the warm start's fit first, in a bar of its own
    assert f"/{chains * 50} [" in bar


def test_a_nuts_chain_in_this_process_says_while_it_warms_up(coin, capsys):
    coin.sample(warmup=20, samples=30, chains=1, progress=True)
    assert "1 of 1 chains warming up" in capsys.readouterr().err
