"""Deterministic ADVI's fixed draws: antithetic, whitened, replayed, and confined
to the evaluations that ask for them."""

from __future__ import annotations

import torch
import torch.distributions.normal as torch_normal

from compiler.inference.lbfgs import FixedDraws


def test_draws_are_antithetic_and_whitened_across_calls():
    draws = FixedDraws(seed=0)
    with draws.active():
        torch.distributions.Normal(torch.zeros(8, 1), 1.0).rsample()
        torch.distributions.Normal(torch.zeros(8, 2), 1.0).rsample()
    draws.whiten()
    joined = torch.cat([d.reshape(8, -1) for d in draws.draws], dim=1)
    assert torch.allclose(joined[:4], -joined[4:])
    assert torch.allclose(joined.T @ joined / 8, torch.eye(3, dtype=joined.dtype), atol=1e-12)


def test_every_evaluation_replays_the_same_draws():
    draws = FixedDraws(seed=3)
    with draws.active():
        first = torch.distributions.Normal(torch.zeros(6, 2), 1.0).rsample()
    with draws.active():
        again = torch.distributions.Normal(torch.zeros(6, 2), 1.0).rsample()
    assert torch.equal(first, again)


def test_the_hook_is_removed_after_each_evaluation():
    original = torch_normal._standard_normal
    with FixedDraws(seed=0).active():
        assert torch_normal._standard_normal is not original
    assert torch_normal._standard_normal is original


def test_adam_remains_available_and_reaches_the_coin(fitted_coin_with_adam):
    report = fitted_coin_with_adam
    assert report.optimizer == "adam"
    assert abs(report.posterior["f"].mean - 16 / 30) < 0.01 * 16 / 30
