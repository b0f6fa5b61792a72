"""The normal factors' log-scales reset to their conditional optima between L-BFGS calls
(`lbfgs.scale_steps`): read off the gradient, exact for a Gaussian posterior,
kept only where the loss falls."""

from __future__ import annotations

import math

import torch

from compiler.inference.fixed_draws import FixedDraws
from compiler.inference.lbfgs import RESET_BEYOND, RESOLVED, Progress, maximise, scale_steps

CURVATURES = torch.tensor([4.0, 1e4], dtype=torch.float64)  # a Gaussian posterior's precisions: sds 0.5 and 0.01


def _gaussian_elbo(location: torch.Tensor, log_scale: torch.Tensor):
    """The negative ELBO of a mean-field normal guide for a Gaussian posterior centred at 1, up to a
    constant: -log s + H (m - 1)² / 2 + H s² / 2, per coordinate."""
    return lambda: (-log_scale + CURVATURES * ((location - 1) ** 2 + (2 * log_scale).exp()) / 2).sum()


def _fit(iterations: int, reset: bool) -> torch.Tensor:
    """The log-scales after `iterations` of L-BFGS from log-scales of -50 (scales of 2e-22)."""
    location = torch.zeros(len(CURVATURES), requires_grad=True)
    log_scale = torch.full((len(CURVATURES),), -50.0, requires_grad=True)
    progress = Progress(max_iterations=iterations, fixed_iterations=iterations)
    maximise(_gaussian_elbo(location, log_scale), [location, log_scale], progress, FixedDraws([], seed=0), 1.0,
             lambda loss, iteration: AssertionError(loss), [log_scale] if reset else [])
    return log_scale.detach()


def test_a_step_goes_to_the_scale_that_zeroes_the_gradient_of_a_quadratic_log_density(float64):
    log_scale = torch.tensor([-12.0, 3.0])
    gradient = -1 + CURVATURES * (2 * log_scale).exp()  # d/du of -u + H e^(2u) / 2
    (moved,) = scale_steps([gradient])
    assert torch.allclose(log_scale + moved, -CURVATURES.log() / 2)


def test_a_log_scale_whose_curvature_is_lost_to_rounding_moves_up_by_the_resolution(float64):
    gradient = -1 + CURVATURES * torch.tensor(-50.0).exp()  # H s² under 1e-16: exactly -1 in float64
    (moved,) = scale_steps([gradient])
    assert torch.equal(gradient, torch.full((2,), -1.0))
    assert torch.allclose(moved, torch.full((2,), -math.log(RESOLVED * torch.finfo(torch.float64).eps) / 2))


def test_no_step_where_the_optimum_is_near_or_the_implied_curvature_is_not_positive(float64):
    near = math.log(1.5)  # the scale a factor 1.5 from its optimum: within RESET_BEYOND
    assert near < RESET_BEYOND
    (moved,) = scale_steps([torch.tensor([1.5**2 - 1, -1.5, -3.0])])
    assert torch.equal(moved, torch.zeros(3))


def test_log_scales_far_below_their_optima_are_at_them_after_two_calls(float64):
    # The first reset can only move the log-scales up by the resolution (their curvature is lost
    # to rounding at -50), the second puts them at the optimum; L-BFGS alone, following a gradient
    # of about -1, is still on its way.
    optimum = -CURVATURES.log() / 2
    assert torch.allclose(_fit(20, reset=True), optimum, atol=1e-9)
    assert (_fit(20, reset=False) - optimum).abs().max() > 0.1


def test_a_reset_that_would_raise_the_loss_is_undone(float64):
    location = torch.zeros(1, requires_grad=True)
    log_scale = torch.full((1,), -20.0, requires_grad=True)
    # Not the quadratic the step assumes: the loss rises steeply beyond log-scale -25, so the
    # step (to -log(2)/2 for this gradient) is refused, and L-BFGS moves from the start alone.
    def loss():
        return (-log_scale + (2 * log_scale).exp() + 1e6 * torch.relu(log_scale + 25) ** 2
                + (location - 1) ** 2).sum()

    progress = Progress(max_iterations=1, fixed_iterations=1)
    maximise(loss, [location, log_scale], progress, FixedDraws([], seed=0), 1.0,
             lambda value, iteration: AssertionError(value), [log_scale])
    assert log_scale.item() < -24
