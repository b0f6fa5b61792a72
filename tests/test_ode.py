"""`ode dz(t, z) = [...]` and `solve(dz, initial, start, times)`: a system of ODEs, integrated
by torchdiffeq's dopri5 into the state at each of the times.

The solution must match closed forms to the solver's tolerance, the log joint must be that of
a hand-written Pyro model calling torchdiffeq, sample dims must be independent systems, a
fitted rate must agree with a grid posterior, and a solve that fails must be a fit error."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torchdiffeq import odeint

from compiler import PplError, compile_file, compile_source
from compiler.backend import runtime
from compiler.cli import main
from compiler.errors import Source
from compiler.frontend import syntax
from compiler.frontend.parse import parse_program

LV_SPEC = Path(__file__).resolve().parent.parent / "specs" / "posteriordb" / "hudson_lynx_hare-lotka_volterra.ppl"

DECAY_OF_DATA = """
data N: int
data ts: real[N]
data k: real<lower=0>
data y0: real
ode dy(t, y) = [-k * y[0]]
let y = solve(dy, [y0], 0, ts, rtol=1e-9, atol=1e-9)
"""

OSCILLATOR = """
data N: int
data ts: real[N]
latent w ~ HalfNormal(2)
# x'' = -w^2 x as two first-order equations: the position x[0] and the velocity x[1].
ode dx(t, x) = [x[1], -w^2 * x[0]]
let x = solve(dx, [1.0, 0.0], 0, ts, rtol=1e-9, atol=1e-9)
"""

NOISY_DECAY = """
data N: int
data ts: real[N]
data y: real[N]
latent k ~ LogNormal(0, 1)
ode dc(t, c) = [-k * c[0]]
let c = solve(dc, [10.0], 0, ts)
observe y[n] ~ Normal(c[n, 0], 0.5)
"""


def _times(count: int = 12, end: float = 6.0) -> list[float]:
    return np.linspace(end / count, end, count).tolist()


def _deterministic(program, data, values: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    trace = poutine.trace(poutine.condition(program.compiled.model, values)).get_trace(program.load_data(data))
    return trace.nodes[name]["value"]


# Syntax ----------------------------------------------------------------------------------


def test_an_ode_statement_parses_to_its_name_time_state_and_vector_derivative():
    (ode,) = parse_program(Source("s.ppl", "ode dz(t, z) = [z[1], -z[0]]\n")).statements
    assert isinstance(ode, syntax.Ode)
    assert (ode.name.id, ode.time.id, ode.state.id) == ("dz", "t", "z")
    assert isinstance(ode.value, syntax.Vector) and len(ode.value.elements) == 2


def test_ode_is_a_keyword_and_cannot_name_data():
    with pytest.raises(PplError, match="'ode' is a keyword of the language"):
        compile_source("data ode: real\n")


def test_an_index_variable_cannot_reuse_the_name_of_an_ode():
    source = NOISY_DECAY.replace("observe y[n] ~ Normal(c[n, 0], 0.5)", "observe y[dc] ~ Normal(c[dc, 0], 0.5)")
    with pytest.raises(PplError, match="'dc' names the ode on line 6"):
        compile_source(source)


def test_a_vector_literal_stacks_its_scalars_element_by_element():
    program = compile_source("data N: int\ndata x: real[N]\nlet v[i] = [x[i], 2 * x[i], 1]\nlet w = [x[0], x[1]]\n")
    data = program.load_data({"x": [1.0, 2.0, 3.0]})
    assert torch.equal(data["v"], torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 1.0], [3.0, 6.0, 1.0]]))
    assert torch.equal(data["w"], torch.tensor([1.0, 2.0]))


def test_the_derivative_is_a_generated_function_of_time_and_state():
    source = compile_source(OSCILLATOR).code.source
    assert "    def dx(t, x):\n" in source
    assert "        return rt.vector(x[..., 1], -w ** 2 * x[..., 0])\n" in source
    assert "rt.solve(dx, rt.vector(1.0, 0.0), 0, ts, rtol=1e-09, atol=1e-09, max_steps=100000)" in source


# Solutions against closed forms ------------------------------------------------------------


def test_a_solve_of_data_alone_is_transformed_data_and_decays_exponentially():
    ts = _times()
    program = compile_source(DECAY_OF_DATA)
    data = program.load_data({"ts": ts, "k": 0.7, "y0": 3.0})
    expected = 3.0 * torch.exp(-0.7 * torch.tensor(ts))
    assert data["y"].shape == (len(ts), 1)
    torch.testing.assert_close(data["y"][:, 0], expected, rtol=1e-7, atol=1e-8)


def test_a_harmonic_oscillator_follows_cosine_and_sine():
    ts = _times(20, 10.0)
    w = 1.3
    x = _deterministic(compile_source(OSCILLATOR), {"ts": ts}, {"w": torch.tensor(w)}, "x")
    t = torch.tensor(ts)
    torch.testing.assert_close(x[:, 0], torch.cos(w * t), rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(x[:, 1], -w * torch.sin(w * t), rtol=1e-7, atol=1e-7)


def test_sample_dims_are_independent_systems():
    ts = _times(20, 10.0)
    program = compile_source(OSCILLATOR)
    rates = torch.tensor([0.5, 1.0, 2.0])
    batched = _deterministic(program, {"ts": ts}, {"w": rates}, "x")
    assert batched.shape == (3, len(ts), 2)
    for draw, w in enumerate(rates):
        alone = _deterministic(program, {"ts": ts}, {"w": w}, "x")
        torch.testing.assert_close(batched[draw], alone, rtol=1e-7, atol=1e-7)


# The log joint ----------------------------------------------------------------------------


def _lotka_volterra_by_hand(data: dict, theta, z_init, sigma) -> torch.Tensor:
    """posteriordb's Lotka-Volterra written directly in torch, with torchdiffeq."""

    def dz(t, z):
        u, v = z[..., 0], z[..., 1]
        return torch.stack([(theta[0] - theta[1] * v) * u, (-theta[2] + theta[3] * u) * v], -1)

    grid = torch.tensor([0.0] + data["ts"])
    z = odeint(dz, z_init, grid, rtol=1e-5, atol=1e-3, method="dopri5",
               options={"max_num_steps": 500, "norm": lambda e: e.abs().max()})[1:]
    prior_mean, prior_sd = torch.tensor([1, 0.05, 1, 0.05]), torch.tensor([0.5, 0.05, 0.5, 0.05])
    y_init, y = torch.tensor(data["y_init"], dtype=torch.float64), torch.tensor(data["y"])
    return (-0.5 * ((theta - prior_mean) / prior_sd) ** 2).sum() \
        + dist.LogNormal(math.log(10), 1.0).log_prob(z_init).sum() \
        + dist.LogNormal(-1.0, 1.0).log_prob(sigma).sum() \
        + dist.LogNormal(torch.log(z_init), sigma).log_prob(y_init).sum() \
        + dist.LogNormal(torch.log(z), sigma).log_prob(y).sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_log_joint_is_that_of_a_hand_written_pyro_model_with_torchdiffeq(seed):
    generator = torch.Generator().manual_seed(seed)
    theta = torch.tensor([0.55, 0.028, 0.8, 0.024]) * torch.exp(0.1 * torch.randn(4, generator=generator))
    z_init = torch.tensor([34.0, 6.0]) * torch.exp(0.1 * torch.randn(2, generator=generator))
    sigma = torch.exp(-1.5 + 0.3 * torch.randn(2, generator=generator))
    program = compile_file(LV_SPEC)
    data = json.loads(LV_SPEC.with_suffix(".data.json").read_text())
    values = {"theta": theta, "z_init": z_init, "sigma": sigma}
    trace = poutine.trace(poutine.condition(program.compiled.model, values)).get_trace(program.load_data(data))
    assert trace.log_prob_sum().item() == pytest.approx(_lotka_volterra_by_hand(data, **values).item(), rel=1e-10)


# Fitting ------------------------------------------------------------------------------------


def _noisy_decay() -> dict:
    generator = np.random.default_rng(1)
    ts = np.asarray(_times(10, 5.0))
    return {"ts": ts.tolist(), "y": (10 * np.exp(-0.6 * ts) + 0.5 * generator.normal(size=ts.size)).tolist()}


def _grid_posterior(data: dict) -> tuple[float, float]:
    """The posterior mean and sd of the decay rate, by quadrature on a fine grid."""
    k = np.linspace(0.3, 1.0, 20_001)
    ts, y = np.asarray(data["ts"]), np.asarray(data["y"])
    log_prior = -np.log(k) - 0.5 * np.log(k) ** 2
    log_likelihood = -0.5 * (((y[None, :] - 10 * np.exp(-k[:, None] * ts[None, :])) / 0.5) ** 2).sum(1)
    weights = np.exp(log_prior + log_likelihood - (log_prior + log_likelihood).max())
    weights /= weights.sum()
    mean = (weights * k).sum()
    return mean, math.sqrt((weights * (k - mean) ** 2).sum())


@pytest.mark.slow  # about 10 s
def test_a_fitted_decay_rate_matches_the_grid_posterior():
    data = _noisy_decay()
    mean, sd = _grid_posterior(data)
    fitted = compile_source(NOISY_DECAY).fit(data, seed=0).posterior["k"]
    assert abs(float(fitted.mean) - mean) < 0.05 * sd
    assert float(fitted.sd) == pytest.approx(sd, rel=0.05)


# Failures -----------------------------------------------------------------------------------


def test_a_solve_that_cannot_finish_gives_nan_rather_than_an_error():
    def blowing_up(t, y):  # y' = y^2 from y(0) = 1 is 1 / (1 - t): infinite at t = 1
        return y**2

    solution = runtime.solve(blowing_up, torch.ones(1), 0, torch.tensor([0.5, 2.0]), 1e-6, 1e-6, 1000)
    assert solution.shape == (2, 1) and torch.isnan(solution).all()


def test_a_fit_whose_solves_fail_is_a_fit_error_not_a_traceback(tmp_path, capsys):
    spec = tmp_path / "blowup.ppl"
    spec.write_text("data N: int\ndata ts: real[N]\ndata y: real[N]\nlatent k ~ LogNormal(0, 0.1)\n"
                    "ode dz(t, z) = [k * z[0]^2]\nlet z = solve(dz, [1.0], 0, ts)\n"
                    "observe y[n] ~ Normal(z[n, 0], 1)\n")
    (tmp_path / "blowup.data.json").write_text(json.dumps({"ts": [0.5, 5.0], "y": [2.0, 3.0]}))
    assert main(["run", str(spec)]) == 4
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(("times", "message"), [
    ([1.0, 0.5], "ts[1] = 0.5 does not come after ts[0] = 1"),
    ([0.0, 0.5], "ts[0] = 0 does not come after the start time 0"),
])
def test_times_out_of_order_are_a_data_error_at_the_solve(tmp_path, capsys, times, message):
    spec = tmp_path / "times.ppl"
    spec.write_text(NOISY_DECAY)
    (tmp_path / "times.data.json").write_text(json.dumps({"ts": times, "y": [2.0, 3.0]}))
    assert main(["run", str(spec)]) == 3
    err = capsys.readouterr().err
    assert f"times.ppl:7:30: error: with this data, {message}" in err


def test_without_torchdiffeq_a_spec_that_solves_is_refused_at_its_ode(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchdiffeq", None)  # an import of it now fails
    with pytest.raises(PplError, match="needs torchdiffeq") as error:
        compile_source(NOISY_DECAY).compiled
    assert error.value.span.line == 6 and "pplc[ode]" in error.value.hint


@pytest.mark.slow  # about 3.5 minutes of CPU
def test_nuts_on_an_ode_matches_the_grid_posterior():
    """NUTS runs the solver at every leapfrog step (its potential is not traced: a trace would
    freeze the adaptive steps of one run)."""
    data = _noisy_decay()
    mean, sd = _grid_posterior(data)
    draws = compile_source(NOISY_DECAY).sample(data, warmup=200, samples=1000, chains=2, seed=0).draws["k"]
    assert abs(draws.mean().item() - mean) < 0.15 * sd
    assert draws.std().item() == pytest.approx(sd, rel=0.15)
