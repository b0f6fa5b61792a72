"""Hidden Markov models: a latent recurrence of discrete states (`latent z[0] ~ Categorical(rho)`,
`latent z[t in 1:T] ~ Categorical(theta[z[t - 1]])`) summed out with the observations it feeds, as
one Pyro `DiscreteHMM` site. Its log density is checked against the forward algorithm written out
as a Python loop, and a tiny model's posterior against the sum over every path of states."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from pyro import poutine

from compiler import FitError, PplError, compile_source
from compiler.errors import Source
from compiler.frontend import syntax
from compiler.frontend.parse import parse_program

HMM = """
data T: int
data K: int
data y: real[T]
data rho: real[K]
data theta: real[K, K]
data mu: real[K]
data sigma: real[K]
latent z[0] ~ Categorical(rho)
latent z[t in 1:T] ~ Categorical(theta[z[t - 1]])
observe y[t] ~ Normal(mu[z[t]], sigma[z[t]])
"""

# Two observations per time point, scored together given the state.
TWO_EMISSIONS = """
data T: int
data K: int
data u: real[T]
data v: real[T]
data theta: real[K, K]
data rate_u: real[K]
data rate_v: real[K]
latent z[0] ~ Categorical(ones(K) / K)
latent z[t in 1:T] ~ Categorical(theta[z[t - 1]])
observe u[t] ~ Exponential(rate_u[z[t]])
observe v[t] ~ Exponential(rate_v[z[t]])
"""

# T = 3, K = 2: the state switches the observations' mean between 0 and the latent mu.
TINY = """
data T: int
data y: real[T]
latent mu ~ Normal(0, 2)
latent z[0] ~ Bernoulli(0.4)
latent z[t in 1:T] ~ Bernoulli(z[t - 1] == 1 ? 0.8 : 0.3)
observe y[t] ~ Normal(z[t] == 1 ? mu : 0, 1)
"""


def _random_hmm(states: int, length: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"T": length, "K": states, "y": rng.normal(size=length).tolist(),
            "rho": rng.dirichlet(np.ones(states)).tolist(),
            "theta": rng.dirichlet(np.ones(states), size=states).tolist(),
            "mu": rng.normal(size=states).tolist(), "sigma": rng.uniform(0.5, 2.0, size=states).tolist()}


def _log_joint(source: str, data: dict) -> float:
    program = compile_source(source)
    return float(poutine.trace(program.compiled.model).get_trace(program.load_data(data)).log_prob_sum())


def _forward_algorithm(data: dict) -> float:
    """log p(y), the states summed out one time point after another: the hand-written loop."""
    rho, theta = torch.tensor(data["rho"]), torch.tensor(data["theta"])
    emission = torch.distributions.Normal(torch.tensor(data["mu"]), torch.tensor(data["sigma"]))
    alpha = rho.log() + emission.log_prob(torch.tensor(data["y"][0]))
    for t in range(1, data["T"]):
        alpha = torch.logsumexp(alpha[:, None] + theta.log(), dim=0) + emission.log_prob(torch.tensor(data["y"][t]))
    return float(torch.logsumexp(alpha, dim=0))


def test_a_chain_parses_as_a_first_state_and_a_step():
    program = parse_program(Source("hmm.ppl", HMM))
    first, step = [s for s in program.statements if isinstance(s, syntax.LatentDecl)]
    assert first.subscripts == (syntax.Number(0, first.subscripts[0].span),)
    assert isinstance(step.subscripts[0], syntax.StepRange)


def test_a_chain_is_checked_as_a_latent_summed_out_with_its_states():
    program = compile_source(HMM)
    (chain,) = program.ir.latents
    assert chain.chain and chain.recurrence.states == "K"
    assert program.ir.guided_latents == ()
    assert program.summary().endswith("; chain: z")


def test_a_chain_and_its_observations_are_one_discrete_hmm_site_without_a_loop():
    source = compile_source(HMM).code.source
    model = source[source.index("def model"):source.index("def guide")]
    assert "z = rt.chain_states(K, 1)" in model
    assert "y_given_z = dist.Normal(mu[rt.index(z, K)], sigma[rt.index(z, K)])" in model
    assert "lambda z_previous: dist.Categorical(probs=theta[rt.index(z_previous, K)])" in model
    assert model.count("pyro.sample(") == 1 and '"z",\n        rt.hidden_markov(' in model
    assert "obs=rt.emitted(y)" in model and "for " not in model


@pytest.mark.parametrize("states", [2, 3])
@pytest.mark.parametrize("length", [1, 2, 17])
def test_the_log_density_is_the_forward_algorithm(states, length):
    data = _random_hmm(states, length, seed=10 * states + length)
    assert _log_joint(HMM, data) == pytest.approx(_forward_algorithm(data), rel=1e-6)


def test_two_observations_of_one_chain_are_scored_together_given_the_state():
    rng = np.random.default_rng(5)
    theta = rng.dirichlet(np.ones(2), size=2)
    u, v = rng.exponential(size=6), rng.exponential(size=6)
    rate_u, rate_v = np.array([0.5, 2.0]), np.array([1.5, 0.3])
    paths = itertools.product(range(2), repeat=6)
    total = np.logaddexp.reduce([
        math.log(0.5) + sum(math.log(theta[a, b]) for a, b in zip(path, path[1:]))
        + sum(math.log(rate_u[k]) - rate_u[k] * u[t] + math.log(rate_v[k]) - rate_v[k] * v[t]
              for t, k in enumerate(path))
        for path in paths])
    data = {"T": 6, "K": 2, "u": u.tolist(), "v": v.tolist(), "theta": theta.tolist(),
            "rate_u": rate_u.tolist(), "rate_v": rate_v.tolist()}
    assert _log_joint(TWO_EMISSIONS, data) == pytest.approx(total, rel=1e-6)


def _tiny_posterior_on_a_grid(y: list[float], grid: np.ndarray) -> np.ndarray:
    """p(mu | y) on `grid`, every one of the 2^3 paths of states summed by hand."""
    def log_path(path, mu):
        prior = math.log(0.4 if path[0] else 0.6)
        moves = sum(math.log((0.8 if a else 0.3) if b else (0.2 if a else 0.7)) for a, b in zip(path, path[1:]))
        return prior + moves + sum(-0.5 * (y[t] - (mu if k else 0)) ** 2 for t, k in enumerate(path))
    log_density = np.array([-mu ** 2 / 8 + np.logaddexp.reduce([log_path(p, mu) for p in
                                                                 itertools.product((0, 1), repeat=3)])
                            for mu in grid])
    weights = np.exp(log_density - log_density.max())
    return weights / weights.sum()


def test_a_tiny_hmm_has_the_posterior_of_every_path_summed_out():
    y = [1.8, 2.4, -0.3]
    grid = np.linspace(-6, 8, 1401)
    exact = _tiny_posterior_on_a_grid(y, grid)
    program = compile_source(TINY)
    data = program.load_data({"T": 3, "y": y})
    # Every grid point at once, as a draw: on the sample dim, left of the model's one plate dim.
    conditioned = poutine.condition(program.compiled.model, {"mu": torch.tensor(grid)[:, None]})
    trace = poutine.trace(conditioned).get_trace(data)
    trace.compute_log_prob()
    log_density = sum(site["log_prob"].reshape(-1) for site in trace.nodes.values() if site["type"] == "sample")
    weights = torch.exp(log_density - log_density.max()).numpy()
    assert weights / weights.sum() == pytest.approx(exact, abs=1e-9)


@pytest.mark.slow  # 30 s: NUTS
def test_nuts_samples_a_tiny_hmm_s_posterior_with_the_chain_summed_out():
    y = [1.8, 2.4, -0.3]
    grid = np.linspace(-6, 8, 1401)
    exact = _tiny_posterior_on_a_grid(y, grid)
    mean = float(np.sum(grid * exact))
    sd = math.sqrt(float(np.sum((grid - mean) ** 2 * exact)))
    fitted = compile_source(TINY).sample({"T": 3, "y": y}, warmup=200, samples=400, chains=1, seed=0)
    assert abs(float(fitted.posterior["mu"].mean) - mean) < 4 * sd / math.sqrt(100)


def test_predictions_of_a_model_with_a_chain_are_refused_where_the_chain_is():
    program = compile_source(HMM)
    with pytest.raises(FitError) as caught:
        program.predict({k: v for k, v in _random_hmm(2, 4, seed=0).items() if k != "y"}, draws=5)
    assert "chain of discrete states ('z')" in str(caught.value)
    assert caught.value.span.line == 10


@pytest.mark.parametrize(("step", "message", "marked"), [
    ("Categorical(theta[z[t - 2]])", "reaches back 2 steps", "z[t - 2]"),
    ("Categorical(theta[z[t + 1]])", "not computed yet", "z[t + 1]"),
    ("Categorical(theta[z[t - 1]] * y[t])", "reads the time 't'", "t]"),
    ("Poisson(z[t - 1])", "infinitely many values", "Poisson"),
])
def test_a_misused_chain_step_is_refused_where_it_goes_wrong(step, message, marked):
    source = HMM.replace("Categorical(theta[z[t - 1]])", step)
    with pytest.raises(PplError) as caught:
        compile_source(source)
    error = caught.value
    assert message in str(error)
    line = source.splitlines()[error.span.line - 1]
    assert line[error.span.column - 1:].startswith(marked)


@pytest.mark.parametrize(("extra", "message", "marked"), [
    ("let m[t] = mu[z[t]]\n", "read only in their observe statements", "z[t]]"),
    ("observe w[t] ~ Normal(mu[z[t - 1]], 1)\n", "at its own time point only", "z[t - 1]"),
    ("factor f = sum(mu[z])\n", "summed out element by element", "z])"),
])
def test_a_chain_state_read_outside_its_own_time_in_an_observation_is_refused(extra, message, marked):
    source = HMM.replace("data y: real[T]\n", "data y: real[T]\ndata w: real[T]\n") + extra
    with pytest.raises(PplError) as caught:
        compile_source(source)
    error = caught.value
    assert message in str(error)
    line = source.splitlines()[error.span.line - 1]
    assert line[error.span.column - 1:].startswith(marked)


def test_explain_shows_the_chain_summed_out_with_the_densities_of_its_observations():
    text = compile_source(TWO_EMISSIONS).explain().text()
    assert ("log p(u, v) = log Σ_z Categorical(z[0] | ones(K) / K) Π_t Categorical(z[t] | theta[z[t - 1]]) "
            "p(u[t] | z[t]) p(v[t] | z[t])") in text
    assert "where p(u[t] | z[t]) = Exponential(u[t] | rate_u[z[t]])" in text
    assert "where p(v[t] | z[t]) = Exponential(v[t] | rate_v[z[t]])" in text


def _smoothed_by_every_path(data: dict) -> np.ndarray:
    """P(z[t] = k | y) for every t and k, from the joint probability of every path of states."""
    rho, theta = np.array(data["rho"]), np.array(data["theta"])
    mu, sigma, y = np.array(data["mu"]), np.array(data["sigma"]), np.array(data["y"])
    marginals = np.zeros((data["T"], data["K"]))
    for path in itertools.product(range(data["K"]), repeat=data["T"]):
        weight = rho[path[0]] * np.prod([theta[a, b] for a, b in zip(path, path[1:])])
        weight *= np.prod([np.exp(-0.5 * ((y[t] - mu[k]) / sigma[k]) ** 2) / sigma[k] for t, k in enumerate(path)])
        marginals[np.arange(data["T"]), path] += weight
    return marginals / marginals.sum(1, keepdims=True)


def test_discrete_reports_each_state_s_probability_at_each_time_point_given_all_observations():
    data = _random_hmm(3, 5, seed=4)
    fit = compile_source(HMM).fit(data, discrete=True)
    reported = np.asarray(fit.report.discrete["z"])
    assert reported.shape == (5, 3)
    assert reported == pytest.approx(_smoothed_by_every_path(data), abs=1e-9)


def test_a_chain_along_the_rows_a_minibatch_splits_is_refused():
    program = compile_source(HMM.replace("data mu: real[K]", "latent mu[K] ~ Normal(0, 1)"))
    data = {k: v for k, v in _random_hmm(2, 8, seed=1).items() if k != "mu"}
    with pytest.raises(PplError) as caught:
        program.fit(data, batch_size=4)
    assert "the chain 'z' runs along them" in str(caught.value)


def test_a_chain_beside_a_statement_over_two_plates_keeps_the_forward_algorithm_s_density():
    data = _random_hmm(2, 6, seed=3)
    data["X"] = np.random.default_rng(0).normal(size=(6, 2)).tolist()
    source = HMM + "data X: real[T, K]\nobserve X[i, j] ~ Normal(mu[j], 1)\n"  # two plates: the states' dim moves left
    others = torch.distributions.Normal(torch.tensor(data["mu"]), 1).log_prob(torch.tensor(data["X"])).sum()
    assert _log_joint(source, data) == pytest.approx(_forward_algorithm(data) + float(others), rel=1e-6)
