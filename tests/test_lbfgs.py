"""Deterministic ADVI's loop: L-BFGS calls of ten iterations until the ELBO is level,
iterations counted by pplc, Ctrl-C answered between evaluations."""

from __future__ import annotations

import signal

import pytest
import torch

from compiler.inference import interrupt
from compiler.inference.fixed_draws import FixedDraws
from compiler.inference.lbfgs import LEVEL_CALLS, Progress, maximise


def _quadratic(x: torch.Tensor):
    target = torch.tensor([1.0, -2.0, 0.5])
    return lambda: ((x - target) ** 2 * torch.tensor([1.0, 10.0, 100.0])).sum()


def _never(loss: float, iteration: int) -> Exception:
    return AssertionError(f"non-finite loss {loss} at {iteration}")


def test_a_fixed_number_of_iterations_is_exactly_that_many():
    x = torch.zeros(3, requires_grad=True)
    progress = Progress(max_iterations=1000, fixed_iterations=7)
    maximise(_quadratic(x), [x], progress, FixedDraws([], seed=0), 1.0, _never)
    assert progress.iterations == 7


def test_the_run_stops_once_the_elbo_is_level_twice_and_is_at_the_optimum():
    x = torch.zeros(3, requires_grad=True)
    progress = Progress(max_iterations=1000, fixed_iterations=None)
    maximise(_quadratic(x), [x], progress, FixedDraws([], seed=0), 1.0, _never)
    assert progress.converged and progress.level_calls == LEVEL_CALLS
    assert torch.allclose(x, torch.tensor([1.0, -2.0, 0.5]), atol=1e-8)


def test_ctrl_c_puts_back_the_parameters_where_the_call_started():
    x = torch.zeros(3, requires_grad=True)
    quadratic, evaluations = _quadratic(x), []

    def loss():
        evaluations.append(x.detach().clone())
        if len(evaluations) == 4:  # inside the first call, after it has moved x
            signal.raise_signal(signal.SIGINT)
        return quadratic()

    with interrupt.caught(), pytest.raises(interrupt.Interrupted):
        maximise(loss, [x], Progress(1000, None), FixedDraws([], seed=0), 1.0, _never)
    assert torch.equal(x.detach(), torch.zeros(3))
