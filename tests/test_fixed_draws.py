"""Deterministic ADVI's fixed draws: a Pyro messenger that gives the named guide sites
antithetic, whitened noise, the same at every evaluation, differentiable in the
factor's location and scale."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from compiler.inference.fixed_draws import FixedDraws, FixedNoise, at_the_centre, no_noise


def _guide(loc: torch.Tensor, scale: torch.Tensor, particles: int = 8) -> dict[str, torch.Tensor]:
    with pyro.plate("particles", particles, dim=-2):
        a = pyro.sample("a", dist.Normal(loc, scale).expand([particles, 1]))
        with pyro.plate("two", 2, dim=-1):
            b = pyro.sample("b", dist.LogNormal(loc, scale).expand([particles, 2]))
    return {"a": a, "b": b}


def test_draws_are_antithetic_and_whitened_across_sites():
    draws = FixedDraws(["a", "b"], seed=0)
    with draws.active():
        _guide(torch.tensor(0.0), torch.tensor(1.0))
    draws.whiten()
    joined = torch.cat([d.reshape(8, -1) for d in draws.draws.values()], dim=1)
    assert torch.allclose(joined[:4], -joined[4:])
    assert torch.allclose(joined.T @ joined / 8, torch.eye(3, dtype=joined.dtype), atol=1e-12)


def test_every_evaluation_replays_the_same_draws():
    draws = FixedDraws(["a", "b"], seed=3)
    with draws.active():
        first = _guide(torch.tensor(0.5), torch.tensor(2.0))
    with draws.active():
        again = _guide(torch.tensor(0.5), torch.tensor(2.0))
    assert all(torch.equal(first[name], again[name]) for name in first)


def test_sites_not_named_draw_afresh():
    draws = FixedDraws(["a"], seed=0)
    with draws.active():
        first = _guide(torch.tensor(0.0), torch.tensor(1.0))["b"]
    pyro.set_rng_seed(123)  # outside `active` torch's generator moves on
    second = _guide(torch.tensor(0.0), torch.tensor(1.0))["b"]
    assert not torch.equal(first, second)
    assert set(draws.draws) == {"a"}


def test_a_draw_is_location_plus_scale_times_the_noise_through_the_transform(float64):
    loc, scale = torch.tensor(0.3, requires_grad=True), torch.tensor(1.5, requires_grad=True)
    draws = FixedDraws(["a", "b"], seed=1)
    with draws.active():
        b = _guide(loc, scale)["b"]
    assert torch.allclose(b, torch.exp(loc + draws.draws["b"] * scale))
    b.sum().backward()
    assert torch.allclose(loc.grad, b.sum())  # d/d loc of exp(loc + e scale), summed
    assert torch.allclose(scale.grad, (b * draws.draws["b"]).sum())


def test_at_the_centre_every_normal_factor_draws_its_location():
    with at_the_centre(["a", "b"], seed=0):
        values = _guide(torch.tensor(0.7), torch.tensor(3.0))
    assert torch.all(values["a"] == 0.7)
    assert torch.allclose(values["b"], torch.exp(torch.tensor(0.7)))


def test_observed_and_replayed_sites_keep_their_values():
    with FixedNoise(["a"], no_noise):
        value = pyro.sample("a", dist.Normal(5.0, 1.0), obs=torch.tensor(2.0))
    assert value == 2.0
