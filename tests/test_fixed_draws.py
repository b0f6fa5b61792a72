"""Deterministic ADVI's fixed draws: a Pyro messenger that gives the named guide sites
antithetic, whitened noise, the same at every evaluation, differentiable in the
factor's location and scale."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
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


def _log_normal_site(loc: torch.Tensor, log_scale: torch.Tensor, draws: FixedDraws) -> tuple[torch.Tensor, ...]:
    """A LogNormal guide factor's draw at the fixed noise and the log density the trace scores it with."""
    with draws.active():
        trace = pyro.poutine.trace(lambda: pyro.sample(
            "s", dist.LogNormal(loc, log_scale.exp()).expand([8]).to_event(1))).get_trace()
    trace.compute_log_prob()
    return trace.nodes["s"]["value"], trace.nodes["s"]["log_prob"]


def test_a_draw_is_scored_from_its_noise_even_where_its_scale_is_below_its_locations_rounding(float64):
    # At a scale of e^-124, loc + scale * e rounds to loc, and inverting the draw (log, then
    # (z - loc) / scale) divides that rounding by the scale: once a log density of about -1e75.
    loc, log_scale = torch.tensor(-0.36), torch.tensor(-124.0)
    draws = FixedDraws(["s"], seed=2)
    value, log_density = _log_normal_site(loc, log_scale, draws)
    e = draws.draws["s"]
    x = loc + log_scale.exp() * e  # before exp; log |d exp(x) / dx| = x
    exact = (-log_scale - e**2 / 2 - 0.5 * math.log(2 * math.pi) - x).sum()
    assert torch.allclose(log_density, exact, rtol=1e-12)
    assert torch.equal(value, x.exp())


def test_collapsing_a_scale_costs_the_fixed_draw_elbo_a_nat_per_unit_of_log_scale(float64):
    """The ELBO of the guide's own part (its entropy at the draws) falls with the log-scale, however
    small: no floor to run down. Its gradient in the log-scale is -1 there, not 1e75."""
    draws = FixedDraws(["s"], seed=2)
    at = {}
    for log_scale in (-20.0, -124.0):
        u = torch.tensor(log_scale, requires_grad=True)
        _, log_density = _log_normal_site(torch.tensor(-0.36), u, draws)
        log_density.backward()
        at[log_scale] = log_density.item(), u.grad.item()
    assert at[-124.0][0] - at[-20.0][0] == pytest.approx(8 * 104, rel=1e-12)  # log q: 8 draws, -log s each
    assert at[-124.0][1] == pytest.approx(-8.0, rel=1e-12)
