"""The fast path: observations that share one distribution are scored from
sufficient statistics (`collapsed_model`), with the same log joint and the same
gradients as the Pyro trace of `model`."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from conftest import SPECS
from pyro import poutine

from compiler import compile_file, compile_source
from compiler.backend import runtime
from compiler.frontend import distributions
from compiler.inference.diagnose import initialise
from compiler.inference.elbo import elbo

ALL_SPECS = sorted(SPECS.glob("*.ppl")) + sorted(SPECS.glob("posteriordb/*.ppl"))

# One Pyro distribution per row with sufficient statistics, its parameters batched
# as particles are (3, 1), and data in its support.
EXAMPLES = {
    "Normal": (lambda: dist.Normal(torch.randn(3, 1), torch.rand(3, 1) + 0.5), lambda: 5 + torch.randn(50)),
    "HalfNormal": (lambda: dist.HalfNormal(torch.rand(3, 1) + 0.5), lambda: torch.rand(50) * 3),
    "LogNormal": (lambda: dist.LogNormal(torch.randn(3, 1), torch.rand(3, 1) + 0.5), lambda: torch.rand(50) + 0.1),
    "Exponential": (lambda: dist.Exponential(torch.rand(3, 1) + 0.5), lambda: torch.rand(50) * 4),
    "Gamma": (lambda: dist.Gamma(torch.rand(3, 1) + 0.5, torch.rand(3, 1) + 0.5), lambda: torch.rand(50) + 0.1),
    "Bernoulli": (lambda: dist.Bernoulli(torch.rand(3, 1)), lambda: (torch.rand(50) < 0.3).double()),
    "Poisson": (lambda: dist.Poisson(torch.rand(3, 1) * 5), lambda: torch.poisson(torch.full((50,), 3.0))),
}


pytestmark = pytest.mark.usefixtures("float64")  # as pplc computes


def test_every_row_with_sufficient_statistics_has_an_example():
    assert set(EXAMPLES) == {name for name, row in distributions.TABLE.items() if row.sufficient}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_log_likelihood_from_statistics_is_the_sum_of_log_probs(name):
    make_distribution, make_data = EXAMPLES[name]
    distribution, values = make_distribution(), make_data()
    expected = distribution.log_prob(values).sum(-1, keepdim=True)
    statistics = runtime.sufficient_statistics(name, values)
    assert torch.allclose(runtime.log_likelihood(name, distribution, statistics), expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_statistics_of_parts_combine_into_those_of_the_whole(name):
    statistics = distributions.TABLE[name].sufficient
    values = EXAMPLES[name][1]()
    parts = [statistics.of_data(part) for part in values.split([7, 30, 13])]
    combined = statistics.combine(statistics.combine(parts[0], parts[1]), parts[2])
    for part, whole in zip(combined, statistics.of_data(values)):
        assert torch.as_tensor(part).item() == pytest.approx(torch.as_tensor(whole).item(), rel=1e-12)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_no_observations_add_nothing_to_the_log_likelihood_nor_to_its_gradient(name):
    distribution = EXAMPLES[name][0]()
    parameters = [getattr(distribution, name).requires_grad_() for name in distribution.arg_constraints]
    log_likelihood = runtime.log_likelihood(name, distribution, runtime.sufficient_statistics(name, torch.empty(0)))
    assert torch.equal(log_likelihood, torch.zeros_like(log_likelihood))
    for gradient in torch.autograd.grad(log_likelihood.sum(), parameters, allow_unused=True):
        assert gradient is None or torch.equal(gradient, torch.zeros_like(gradient))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_an_empty_part_leaves_the_statistics_it_is_merged_with_unchanged(name):
    statistics = distributions.TABLE[name].sufficient
    values = EXAMPLES[name][1]()
    empty = statistics.of_data(values[:0])
    for merged in (statistics.combine(empty, statistics.of_data(values)), statistics.combine(empty, empty)):
        expected = statistics.of_data(values) if merged[0] else empty
        for part, whole in zip(merged, expected):
            assert torch.as_tensor(part).item() == pytest.approx(torch.as_tensor(whole).item(), rel=1e-12)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_an_empty_array_on_disk_has_the_statistics_of_no_observations(name):
    on_disk = runtime.sufficient_statistics(name, np.empty(0))
    in_memory = runtime.sufficient_statistics(name, torch.empty(0))
    assert [torch.as_tensor(v).item() for v in on_disk] == [torch.as_tensor(v).item() for v in in_memory]


def test_normal_statistics_keep_their_precision_far_from_zero():
    values = 1e6 + torch.randn(1000)
    distribution = dist.Normal(torch.tensor(1e6), torch.tensor(1.0))
    statistics = runtime.sufficient_statistics("Normal", values)
    expected = distribution.log_prob(values).sum()
    assert torch.allclose(runtime.log_likelihood("Normal", distribution, statistics), expected, rtol=1e-12)


def _loss_and_gradients(program, model, data) -> tuple[float, dict[str, torch.Tensor]]:
    objective = elbo(program.compiled, particles=4)
    pyro.set_rng_seed(0)
    loss = objective.differentiable_loss(model, program.guide, data)
    parameters = dict(pyro.get_param_store().named_parameters())
    gradients = torch.autograd.grad(loss, list(parameters.values()), allow_unused=True)
    return loss.item(), {name: g for name, g in zip(parameters, gradients) if g is not None}


# One program per table row: each row's statistics through codegen, the fit's ELBO and its gradients.
ROW_PROGRAMS = {
    "Normal": ("latent m ~ Normal(0, 1)\nobserve y[i] ~ Normal(m, 2)", lambda: 3 + torch.randn(40)),
    "HalfNormal": ("latent s ~ HalfNormal(1)\nobserve y[i] ~ HalfNormal(s)", lambda: torch.rand(40) * 2),
    "LogNormal": ("latent m ~ Normal(0, 1)\nobserve y[i] ~ LogNormal(m, 1)", lambda: torch.rand(40) + 0.1),
    "Exponential": ("latent r ~ HalfNormal(2)\nobserve y[i] ~ Exponential(r)", lambda: torch.rand(40) * 3),
    "Gamma": ("latent a ~ HalfNormal(2)\nobserve y[i] ~ Gamma(a, 2)", lambda: torch.rand(40) + 0.1),
    "Bernoulli": ("latent l ~ Normal(0, 1)\nobserve y[i] ~ Bernoulli(logits=l)", lambda: (torch.rand(40) < 0.3).double()),
    "Poisson": ("latent r ~ HalfNormal(3)\nobserve y[i] ~ Poisson(r)", lambda: torch.poisson(torch.full((40,), 2.0))),
}


def test_every_row_with_sufficient_statistics_has_a_program():
    assert set(ROW_PROGRAMS) == set(EXAMPLES)


def _row_program(name: str):
    source, make_data = ROW_PROGRAMS[name]
    real = "int" if name in ("Bernoulli", "Poisson") else "real"
    program = compile_source(f"data N: int\ndata y: {real}[N]\n{source}")
    return program, program.load_data({"y": make_data().tolist()})


def _specs_with_a_fast_path() -> list:
    return [path for path in ALL_SPECS if "collapsed_model" in compile_file(path).code.source]


@pytest.mark.parametrize("case", [("spec", path) for path in _specs_with_a_fast_path()]
                         + [("row", name) for name in sorted(ROW_PROGRAMS)],
                         ids=lambda case: case[1] if isinstance(case[1], str) else case[1].stem)
def test_the_fast_path_gives_the_log_joint_and_gradients_of_the_pyro_trace(case):
    kind, which = case
    if kind == "spec":
        program = compile_file(which)
        data = program.load_data()
    else:
        program, data = _row_program(which)
    initialise(program.compiled, data)
    scored_model, scored_data = program.compiled.scored(data)
    assert scored_model is not program.model
    loss, gradients = _loss_and_gradients(program, program.model, data)
    fast_loss, fast_gradients = _loss_and_gradients(program, scored_model, scored_data)
    assert fast_loss == pytest.approx(loss, rel=1e-10, abs=1e-8)
    assert gradients.keys() == fast_gradients.keys()
    for name, gradient in gradients.items():
        assert torch.allclose(fast_gradients[name], gradient, rtol=1e-8, atol=1e-8), name


def test_the_coin_scores_its_flips_in_one_term(coin):
    scored_model, scored_data = coin.compiled.scored(coin.load_data({"N": 10_000, "x": [1, 0] * 5_000}))
    trace = poutine.trace(scored_model).get_trace(scored_data)
    trace.compute_log_prob()
    assert trace.nodes["x"]["log_prob"].numel() == 1


def test_observations_whose_arguments_vary_are_scored_one_by_one(specs):
    program = compile_file(specs / "logistic_regression.ppl")
    assert "collapsed_model" not in program.code.source
    assert program.compiled.scored(program.load_data())[0] is program.model


def test_the_model_users_read_keeps_its_plate():
    program = compile_source("data N: int\ndata y: real[N]\nlatent mu ~ Normal(0, 1)\nobserve y[i] ~ Normal(mu, 1)")
    source = program.code.source
    model_source = source[source.index("def model("):source.index("def guide(")]
    assert 'pyro.sample("y", dist.Normal(mu, 1), obs=y)' in model_source
    assert 'pyro.factor("y"' in source[source.index("def collapsed_model("):]
