"""pplc's No-U-Turn sampler: right moments on Gaussians of known moments, the step size
adapted to the target acceptance, divergences flagged, and the same seed the same chain."""

from __future__ import annotations

import math

import numpy as np
import torch

from compiler.inference import no_u_turn

DIMENSION = 5


def _standard_normal(u: torch.Tensor) -> torch.Tensor:
    return 0.5 * (u * u).sum()


def _sample(energy, warmup: int = 200, samples: int = 2000, seed: int = 0, target: float = 0.8,
            dimension: int = DIMENSION, start: np.ndarray | None = None) -> no_u_turn.Chain:
    generator = np.random.default_rng(seed)
    start = generator.standard_normal(dimension) if start is None else start
    return no_u_turn.Sampler(no_u_turn.with_gradient(energy), target, generator).run(start, warmup, samples)


def test_draws_of_a_standard_normal_have_its_mean_and_variance():
    chain = _sample(_standard_normal)
    assert chain.draws.shape == (2000, DIMENSION)
    # NUTS on a standard normal is near-antithetic (ESS at least the draws): 5 standard errors of
    # the mean (1/sqrt(2000) each) and of the variance (sqrt(2/2000)).
    assert np.abs(chain.draws.mean(0)).max() < 5 / math.sqrt(2000)
    assert np.abs(chain.draws.var(0) - 1).max() < 5 * math.sqrt(2 / 2000)


def test_trajectories_on_a_standard_normal_stop_at_their_u_turn():
    # The whitened space's target is nearly this. With only the whole-tree U-turn check, a third of
    # the draws on a 10-dimensional standard normal ran to the 1,023-step limit (357 steps a draw on
    # average); with Stan's checks across merged subtrees, a U-turn takes under a period, 2π / step size.
    chain = _sample(_standard_normal, samples=1000, dimension=10)
    assert chain.tree_depth.max() < no_u_turn.MAX_DEPTH
    assert chain.n_steps.mean() < 2 * math.pi / chain.step_size[0]


def test_a_correlated_gaussian_is_sampled_with_its_covariance():
    covariance = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    precision = torch.linalg.inv(covariance)
    chain = _sample(lambda u: 0.5 * u @ precision @ u, samples=2000, dimension=2)
    # Correlation 0.9 unwhitened: ESS a few hundred per 1,000 draws; 0.1 (0.05 for the correlation)
    # is about four errors.
    assert np.abs(np.cov(chain.draws.T) - covariance.numpy()).max() < 0.1
    assert abs(np.corrcoef(chain.draws.T)[0, 1] - 0.9) < 0.05


def test_warm_up_adapts_the_step_size_toward_the_target_acceptance():
    small, large = _sample(_standard_normal, samples=100, target=0.95), _sample(_standard_normal, samples=100,
                                                                                   target=0.6)
    assert small.step_size[0] < large.step_size[0]
    assert (small.step_size == small.step_size[0]).all()  # fixed after warm-up


def test_each_draw_records_its_leapfrog_steps_and_tree_depth():
    chain = _sample(_standard_normal, samples=200)
    assert ((chain.n_steps >= 1) & (chain.n_steps <= 2**no_u_turn.MAX_DEPTH - 1)).all()
    assert (chain.tree_depth == np.ceil(np.log2(chain.n_steps + 1))).mean() > 0.5  # mostly full trees
    assert not chain.diverging.any()


def test_a_step_off_a_cliff_is_a_divergence():
    # A density that is zero beyond u = 1.5 in the first coordinate: steps that cross it diverge.
    def cliff(u: torch.Tensor) -> torch.Tensor:
        return _standard_normal(u) + torch.where(u[0] > 1.5, torch.tensor(math.inf, dtype=u.dtype), 0.0)

    chain = _sample(cliff, samples=500, start=np.zeros(DIMENSION))
    assert chain.diverging.any()
    assert (chain.draws[:, 0] <= 1.5).all()


def test_the_same_seed_gives_the_same_chain():
    assert np.array_equal(_sample(_standard_normal, samples=100).draws, _sample(_standard_normal, samples=100).draws)
    assert not np.array_equal(_sample(_standard_normal, samples=100).draws,
                              _sample(_standard_normal, samples=100, seed=1).draws)


def test_a_chain_started_far_in_the_tails_comes_in_without_error():
    # The first steps lower the energy by thousands: min(1, exp(-ΔH)) is 1, not an overflow.
    chain = _sample(_standard_normal, samples=200, start=np.full(DIMENSION, 100.0))
    assert np.abs(chain.draws).max() < 6
