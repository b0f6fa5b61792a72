"""Deterministic ADVI's normal factors' log-scales, set where the fixed-draw ELBO puts them given
everything else (a step `lbfgs.maximise` takes between L-BFGS calls).

For a factor z = m + s e (e the fixed draws, zero mean and unit mean square per coordinate),
the negative ELBO's derivative in u = log s is -1 (the entropy) plus s E[e g(z)], g the
derivative of -log p in z. Where -log p is quadratic in z with curvature H, s E[e g(z)] =
H s², so the derivative is d = H s² - 1, and the u that zeroes it, s² = 1/H, is

    u* = u - log(d + 1) / 2,

read off the gradient L-BFGS already has. Far from its optimum a log-scale's derivative is
nearly -1 whatever its distance (the entropy's slope), so L-BFGS, whose steps are scaled by
the curvature of the steep coordinates (the locations), brings it back a little each
iteration: on the 1,000-group hierarchy `sigma_y`'s log-scale, driven down to -51 while the
group locations were still far off, took some 300 iterations to climb back to -6.1. The step
is exact for a Gaussian posterior; elsewhere `lbfgs.maximise` keeps it only where the ELBO rises.
"""

from __future__ import annotations

import torch

# A log-scale is reset when its conditional optimum is further than this from it (a factor
# of e in the scale); nearer, L-BFGS's own steps are as good, and keep their curvature history.
FURTHEST = 1.0
# H s² is resolved beside the entropy's 1 where it exceeds this many float epsilons.
RESOLVED = 4


def steps(log_scale_gradients: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each log-scale's step to its conditional optimum, 0 where that is within FURTHEST or the
    curvature the gradient implies is negative (no optimum along it). Where the curvature is
    lost to rounding (H s² below the float's resolution beside the entropy's 1), the optimum
    is at least -log(RESOLVED) / 2 above: a step that long, the next reset going on from there."""
    moves = []
    for gradient in log_scale_gradients:
        resolved = RESOLVED * torch.finfo(gradient.dtype).eps
        curvature = gradient + 1  # H s², by the identity above
        move = torch.where(curvature > -resolved, -curvature.clamp(min=resolved).log() / 2, 0.0)
        moves.append(torch.where(move.abs() > FURTHEST, move, 0.0))
    return moves
