"""Normal observations whose mean is linear in data (`a[g[i]] + b * x[i] + c`) are scored
from per-group statistics (`compiler.backend.linear_normal`): the same log-likelihood as
the rows' own, at a cost that does not grow with the rows."""

from __future__ import annotations

import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from compiler import compile_source
from compiler.backend import runtime
from compiler.inference.diagnose import initialise

pytestmark = pytest.mark.usefixtures("float64")  # as pplc computes

HIERARCHY = """data N: int
data J: int
data g: int<lower=0, upper=J-1>[N]
data x: real[N]
data y: real[N]
latent mu ~ Normal(0, 5)
latent tau ~ HalfNormal(2)
latent a[J] ~ Normal(mu, tau)
latent b ~ Normal(0, 5)
latent sigma ~ HalfNormal(2)
"""


def _rows(groups: int, rows: int, features: int, offset: float = 0.0):
    generator = torch.Generator().manual_seed(groups * rows + features)
    index = torch.randint(0, groups - 1, (rows,), generator=generator)  # the last group has no rows
    x = offset + torch.randn((features, rows), generator=generator)
    y = offset + torch.randn(rows, generator=generator) * 3
    return index, x, y


def _particles(generator: torch.Generator, groups: int, features: int):
    """Values as the fit's particles carry them: whole values, sample dim (3) then one unit dim."""
    by_group = torch.randn((3, 1, groups), generator=generator)
    offset = torch.randn((3, 1), generator=generator)
    coefficients = [torch.randn((3, 1), generator=generator) for _ in range(features)]
    return by_group, offset, coefficients, torch.rand((3, 1), generator=generator) + 0.5


def _row_by_row(y, index, x, by_group, offset, coefficients, scale) -> torch.Tensor:
    mean = offset + by_group[..., 0, :][:, index]
    for beta, feature in zip(coefficients, x):
        mean = mean + beta * feature
    return dist.Normal(mean, scale).log_prob(y).sum(-1, keepdim=True)


@pytest.mark.parametrize("features", [0, 1, 3])
def test_the_log_likelihood_from_group_statistics_is_the_sum_of_the_rows_log_densities(features):
    index, x, y = _rows(groups=7, rows=200, features=features)
    by_group, offset, coefficients, scale = _particles(torch.Generator().manual_seed(features), 7, features)
    statistics = runtime.linear_normal_statistics(y, index, list(x))
    fast = runtime.linear_normal_log_likelihood(by_group, offset, coefficients, scale, statistics)
    expected = _row_by_row(y, index, x, by_group, offset, coefficients, scale)
    assert fast.shape == expected.shape
    assert torch.allclose(fast, expected, rtol=1e-9, atol=0)


def test_group_statistics_keep_their_precision_far_from_zero():
    index, x, y = _rows(groups=5, rows=300, features=1, offset=1e6)
    by_group, offset, coefficients, scale = _particles(torch.Generator().manual_seed(9), 5, 1)
    by_group = by_group + 1e6 - coefficients[0][..., None] * 1e6  # means near the data's
    statistics = runtime.linear_normal_statistics(y, index, list(x))
    fast = runtime.linear_normal_log_likelihood(by_group, offset, coefficients, scale, statistics)
    assert torch.allclose(fast, _row_by_row(y, index, x, by_group, offset, coefficients, scale), rtol=1e-9, atol=0)


def test_the_gradient_from_group_statistics_is_the_rows_gradient():
    index, x, y = _rows(groups=6, rows=120, features=2)
    values = _particles(torch.Generator().manual_seed(3), 6, 2)
    by_group, offset, scale = (v.clone().requires_grad_() for v in (values[0], values[1], values[3]))
    coefficients = [c.clone().requires_grad_() for c in values[2]]
    statistics = runtime.linear_normal_statistics(y, index, list(x))
    inputs = [by_group, offset, scale, *coefficients]
    fast = torch.autograd.grad(runtime.linear_normal_log_likelihood(by_group, offset, coefficients, scale,
                                                                    statistics).sum(), inputs)
    rows = torch.autograd.grad(_row_by_row(y, index, x, by_group, offset, coefficients, scale).sum(), inputs)
    for mine, theirs in zip(fast, rows):
        assert torch.allclose(mine, theirs, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("scale, shift", [(1e-6, 0.0), (1e6, 0.0), (0.7, -32.0), (math.exp(-0.36), 1e3)])
def test_the_statistics_match_the_rows_at_extreme_scales_and_far_off_locations(scale, shift):
    """Where the 1,000-group hierarchy's first attempt went (a scale collapsing, `mu_a` at -32):
    the statistics' log-likelihood and its gradient are still the rows' own there, so the fit's
    divergence came from elsewhere (the guide's log density, tests/test_fixed_draws.py)."""
    index, x, y = _rows(groups=6, rows=120, features=1)
    values = _particles(torch.Generator().manual_seed(5), 6, 1)
    by_group = (values[0] + shift).requires_grad_()
    coefficient, scales = values[2][0].clone().requires_grad_(), torch.full_like(values[3], scale).requires_grad_()
    inputs = [by_group, coefficient, scales]
    statistics = runtime.linear_normal_statistics(y, index, list(x))
    fast = runtime.linear_normal_log_likelihood(by_group, values[1], [coefficient], scales, statistics)
    rows = _row_by_row(y, index, x, by_group, values[1], [coefficient], scales)
    assert torch.allclose(fast, rows, rtol=1e-9, atol=0)
    for mine, theirs in zip(torch.autograd.grad(fast.sum(), inputs), torch.autograd.grad(rows.sum(), inputs)):
        assert torch.allclose(mine, theirs, rtol=1e-9, atol=1e-9 * theirs.abs().max().item())


@pytest.mark.parametrize("mean", ["a[g[i]] + b * x[i]", "mu - b * x[i] + a[g[i]]", "a[g[i]]", "a[g] + 2.5"])
def test_means_linear_in_data_are_scored_from_statistics(mean):
    observed = "y" if mean == "a[g] + 2.5" else "y[i]"
    source = HIERARCHY + f"observe {observed} ~ Normal({mean}, sigma)"
    assert "rt.linear_normal_log_likelihood" in compile_source(source).code.source


@pytest.mark.parametrize("mean, scale", [
    ("a[g[i]] * x[i]", "sigma"),  # a group's coefficient: not a sum of per-group and per-feature terms
    ("a[g[i]] + a[g[i]]", "sigma"),  # two group terms
    ("mu - a[g[i]]", "sigma"),  # a group term subtracted
    ("mu + b * x[i]", "sigma"),  # no group term: a regression's rows stay splittable by --batch-size
    ("b * x[i] * x[i]", "sigma"),  # not linear in the data
    ("a[g[i]] + b * x[i]", "sigma * (1 + x[i] * x[i])"),  # a scale that varies by row
])
def test_other_means_are_scored_row_by_row(mean, scale):
    source = HIERARCHY + f"observe y[i] ~ Normal({mean}, {scale})"
    assert "linear_normal" not in compile_source(source).code.source


def test_a_truncated_normal_is_scored_row_by_row():
    source = HIERARCHY + "observe y[i] ~ Normal(a[g[i]] + b * x[i], sigma) T[-10, 10]"
    assert "linear_normal" not in compile_source(source).code.source


def test_the_hierarchy_scores_all_its_rows_in_one_term():
    program = compile_source(HIERARCHY + "observe y[i] ~ Normal(a[g[i]] + b * x[i], sigma)")
    index, x, y = _rows(groups=40, rows=20_000, features=1)
    data = program.load_data({"N": 20_000, "J": 40, "g": index.tolist(), "x": x[0].tolist(), "y": y.tolist()})
    initialise(program.compiled, data)
    scored_model, scored_data = program.compiled.scored(data)
    trace = poutine.trace(scored_model).get_trace(scored_data)
    trace.compute_log_prob()
    assert trace.nodes["y"]["log_prob"].numel() == 1


def test_arrays_mapped_from_files_give_the_statistics_of_the_same_arrays_in_memory(tmp_path):
    index, x, y = _rows(groups=4, rows=50, features=1)
    mapped = {}
    for name, values in {"y": y.numpy(), "g": index.numpy(), "x": x[0].numpy()}.items():
        np.save(tmp_path / f"{name}.npy", values)
        mapped[name] = np.load(tmp_path / f"{name}.npy", mmap_mode="r")
    from_files = runtime.linear_normal_statistics(mapped["y"], mapped["g"], [mapped["x"]])
    in_memory = runtime.linear_normal_statistics(y, index, [x[0]])
    for mine, theirs in zip(from_files, in_memory):
        assert torch.equal(mine, theirs)


def test_the_collapsed_model_has_the_log_joint_of_the_model_at_the_same_latents():
    """Offsets, a subtracted feature, a coefficient shared with an offset, an int feature, a let's groups."""
    source = HIERARCHY.replace("data y: real[N]", "data y: real[N]\ndata w: real[N]") + (
        "latent z[J] ~ Normal(0, 1)\nlatent c ~ Normal(0, 1)\nlet u[j] = mu + tau * z[j]\n"
        "observe y[i] ~ Normal(2.5 - b * x[i] + u[g[i]] + c * w[i] - c + mu * g[i], sigma)")
    program = compile_source(source)
    index, x, y = _rows(groups=9, rows=300, features=2)
    data = program.load_data({"N": 300, "J": 10, "g": index.tolist(), "x": x[0].tolist(), "w": x[1].tolist(),
                              "y": y.tolist()})
    scored_model, scored_data = program.compiled.scored(data)
    assert scored_model is not program.model
    latents = {name: site["value"] for name, site in poutine.trace(program.model).get_trace(data).nodes.items()
               if site["type"] == "sample" and not site["is_observed"]}
    row_by_row = poutine.trace(poutine.condition(program.model, latents)).get_trace(data).log_prob_sum()
    collapsed = poutine.trace(poutine.condition(scored_model, latents)).get_trace(scored_data).log_prob_sum()
    assert collapsed.item() == pytest.approx(row_by_row.item(), rel=1e-10)


def test_a_hierarchy_with_no_rows_is_fitted_and_its_rows_add_nothing():
    program = compile_source(HIERARCHY + "observe y[i] ~ Normal(a[g[i]] + b * x[i], sigma)")
    data = program.load_data({"N": 0, "J": 3, "g": [], "x": [], "y": []})
    assert program.fit(data, seed=0).converged  # not refused: no plate is declared for the rows
    scored_model, scored_data = program.compiled.scored(data)
    trace = poutine.trace(scored_model).get_trace(scored_data)
    trace.compute_log_prob()
    assert torch.equal(trace.nodes["y"]["log_prob"], torch.zeros_like(trace.nodes["y"]["log_prob"]))
