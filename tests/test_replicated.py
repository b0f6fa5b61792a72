"""The linear response's Hessian-vector products and per-draw gradients from replicated
particles (inference/replicated.py): the same numbers batched autograd gives, without the
import batched autograd brings."""

from __future__ import annotations

import functools
import subprocess
import sys

import pytest
import torch

from compiler import compile_file
from compiler.inference import linear_response, params
from compiler.inference.replicated import Replicas


def _at_the_measurement(monkeypatch, compare) -> list:
    """`compare(compiled, objective, draws, particles)` at each linear-response measurement of a fit
    (the fitted guide lives only inside it), with the draws cut as `measure` cuts them."""
    found, original = [], linear_response.measure

    def measured(compiled, objective, draws, particles):
        cut, count = draws, particles
        if particles % 2 == 0 and particles > 2 * linear_response.HESSIAN_PAIRS:
            cut, count = draws.first_pairs(linear_response.HESSIAN_PAIRS), 2 * linear_response.HESSIAN_PAIRS
        found.append(compare(compiled, objective, cut, count))
        return original(compiled, objective, draws, particles)

    monkeypatch.setattr(linear_response, "measure", measured)
    return found


@pytest.mark.parametrize("spec", ["radon", "eight_schools", "logistic_regression"])
def test_the_replicated_hessian_is_batched_autograds(specs, monkeypatch, spec):
    def both(compiled, objective, draws, particles):
        loss = functools.partial(linear_response._mean_loss, compiled, objective, draws, particles)
        batched = linear_response._hessian_by_autograd(loss, list(params.named().values()))
        return Replicas.of(compiled, objective, draws, particles).hessian(), batched

    found = _at_the_measurement(monkeypatch, both)
    compile_file(specs / f"{spec}.ppl").fit(draws=200)
    replicated, batched = found[0]
    assert torch.allclose(replicated, batched, rtol=1e-10, atol=1e-10 * batched.abs().max().item())


def test_replicated_gradients_are_each_draws_own(specs, monkeypatch):
    def both(compiled, objective, draws, particles):
        losses = linear_response.per_draw_losses(compiled, objective, draws, particles)
        one_by_one = linear_response._per_draw_gradients(losses, list(params.named().values()), batched=False)
        return Replicas.of(compiled, objective, draws, particles).gradients(), one_by_one

    found = _at_the_measurement(monkeypatch, both)
    compile_file(specs / "radon.ppl").fit(draws=200)
    replicated, one_by_one = found[0]
    assert replicated.shape == one_by_one.shape and torch.allclose(replicated, one_by_one, rtol=1e-10, atol=1e-12)


def test_a_model_with_point_parameters_is_not_replicated(specs, monkeypatch):
    # (a point parameter enters the model's arithmetic, where a copy per particle need not broadcast)
    found = _at_the_measurement(monkeypatch, lambda compiled, objective, draws, particles: Replicas.of(
        compiled, objective, draws, particles))
    compile_file(specs / "noise_scale.ppl").fit(draws=200)
    assert found and all(replicas is None for replicas in found)


def test_radons_linear_response_leaves_torchs_symbolic_shapes_unloaded(specs):
    # Batched autograd imports it, and sympy with it, on first use: 0.43-0.55 s, most of radon's linear response.
    code = ("import sys; from compiler import compile_file; "
            f"fit = compile_file({str(specs / 'radon.ppl')!r}).fit(); "
            "print(fit.report.covariance, 'torch.fx.experimental.symbolic_shapes' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split()[-2:] == ["linear-response", "False"], done.stderr[-2000:]
