"""pplc's L-BFGS is torch.optim.LBFGS's algorithm, step for step, with the iterations
and curvature history kept by pplc."""

from __future__ import annotations

import pytest
import torch

from compiler.inference.quasi_newton import LBFGS


def _rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return ((1 - x[:-1]) ** 2).sum() + 100 * ((x[1:] - x[:-1] ** 2) ** 2).sum()


@pytest.mark.parametrize("step_scale", [1.0, 0.1])
def test_every_call_reaches_the_same_point_as_torchs_lbfgs(step_scale, float64):
    start = torch.tensor([-1.2, 1.0, 0.5, -0.3])
    theirs, ours = start.clone().requires_grad_(), start.clone().requires_grad_()
    optimizer = torch.optim.LBFGS([theirs], lr=step_scale, max_iter=10, history_size=50,
                                  line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=1e-15)
    mine = LBFGS([ours], step_scale, history=50)

    def their_loss():
        optimizer.zero_grad()
        loss = _rosenbrock(theirs)
        loss.backward()
        return loss

    def our_loss():
        ours.grad = None
        loss = _rosenbrock(ours)
        loss.backward()
        return loss.item()

    for _ in range(6):
        optimizer.step(their_loss)
        mine.run(our_loss, max_iterations=10, max_evaluations=12)
        assert torch.equal(theirs, ours)


def test_iterations_are_counted_across_calls(float64):
    x = torch.tensor([3.0, -2.0], requires_grad=True)

    def loss():
        x.grad = None
        value = (x ** 2).sum() + (x[0] - x[1]) ** 2
        value.backward()
        return value.item()

    optimizer = LBFGS([x])
    start = loss()
    optimizer.run(loss, max_iterations=1, max_evaluations=12)
    optimizer.run(loss, max_iterations=2, max_evaluations=12)
    assert optimizer.iterations == 3
    assert loss() < start / 10

