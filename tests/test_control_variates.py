"""Minibatch gradients corrected by a control variate (control_variates.py): unbiased
for any anchor, far less noisy near it, and a minibatch fit that reaches the
full-data posterior."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine

from compiler import compile_file, compile_source
from compiler.errors import PplError
from compiler.inference import control_variates, minibatch
from compiler.inference import fit as infer
from compiler.inference.diagnose import initialise

LOGISTIC = ("data N: int\ndata x: real[N]\ndata y: int<lower=0, upper=1>[N]\n"
            "latent a ~ Normal(0, 2.5)\nlatent b ~ Normal(0, 2.5)\n"
            "observe y[i] ~ Bernoulli(logits=a + b * x[i])\n")

pytestmark = pytest.mark.usefixtures("float64")


@pytest.fixture(scope="module")
def logistic():
    return compile_source(LOGISTIC)


def _logistic_data(rows: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(size=rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(-0.5 + 1.5 * x)))).astype(int)
    return {"N": rows, "x": x.tolist(), "y": y.tolist()}


def _exact_mean_field(data: dict) -> tuple[np.ndarray, np.ndarray]:
    """The posterior mode by Newton's method, and the mean-field sds of the Gaussian
    there (one over the square root of the precision's diagonal): what the normal
    guide's optimum converges to as N grows."""
    design = np.c_[np.ones(data["N"]), data["x"]]
    y = np.array(data["y"])
    w = np.zeros(2)
    for _ in range(30):
        p = 1 / (1 + np.exp(-design @ w))
        precision = (design * (p * (1 - p))[:, None]).T @ design + np.eye(2) / 2.5**2
        w = w + np.linalg.solve(precision, design.T @ (y - p) - w / 2.5**2)
    return w, 1 / np.sqrt(np.diag(precision))


def _gradients(model, data, point: dict[str, float], *args) -> torch.Tensor:
    """The gradient of the model's log joint in the latents, at `point`."""
    leaves = {name: torch.tensor(value, requires_grad=True) for name, value in point.items()}
    log_joint = poutine.trace(poutine.condition(model, data=leaves)).get_trace(data, *args).log_prob_sum()
    return torch.stack(torch.autograd.grad(log_joint, list(leaves.values())))


def _corrected_and_plain(program, rows: int, batch_size: int, anchor: dict, point: dict, batches: int,
                         plain: bool = True):
    """At `point`, the batches' gradients corrected by the control variate anchored at `anchor`,
    the same batches' plain gradients (if `plain`), and the full-data gradient."""
    data = program.load_data(_logistic_data(rows))
    batching = minibatch.plan(program, data, batch_size)
    control = control_variates.ControlVariate(program, program.model, batching)
    control.anchor_at({name: torch.tensor(value) for name, value in anchor.items()}, data, data,
                      chunk_rows=700)  # uneven chunks: the pass must not depend on them
    generator = torch.Generator().manual_seed(0)
    corrected, uncorrected = [], []
    for _ in range(batches):
        batch = batching.sample(data, generator)
        corrected.append(_gradients(control.step_model, batch, point, control.linearised(batch)))
        if plain:
            uncorrected.append(_gradients(control.batched_model, batch, point))
    return torch.stack(corrected), torch.stack(uncorrected) if plain else None, _gradients(program.model, data, point)


ANCHOR = {"a": -0.45, "b": 1.4}
NEAR_ANCHOR = {"a": -0.47, "b": 1.43}


def test_the_corrected_gradient_is_unbiased_whatever_the_anchor(logistic):
    far = {"a": 0.3, "b": 0.2}  # far from the anchor: little noise removed, but no bias
    corrected, _, full = _corrected_and_plain(logistic, 2_000, 50, ANCHOR, far, 1_000, plain=False)
    standard_error = corrected.std(0) / len(corrected) ** 0.5
    assert torch.all((corrected.mean(0) - full).abs() < 4 * standard_error)


def test_near_the_anchor_the_correction_removes_nearly_all_the_batch_noise(logistic):
    corrected, plain, _ = _corrected_and_plain(logistic, 2_000, 50, ANCHOR, NEAR_ANCHOR, 300)
    assert torch.all(corrected.var(0) < plain.var(0) / 100)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_minibatch_fit_reaches_the_full_data_posterior(optimizer, logistic):
    data = _logistic_data(20_000)
    mean, sd = _exact_mean_field(data)
    report = logistic.fit(data, batch_size=500, seed=1, optimizer=optimizer)
    assert any("control variate" in note for note in report.warnings)
    # 0.25 posterior sds on the means is the bar of the target programs (docs/inference.md);
    # the sds within 10 %, the spread of Adam's answers over seeds on the conjugate coin.
    for k, name in enumerate(("a", "b")):
        assert report.posterior[name].mean == pytest.approx(mean[k], abs=0.25 * sd[k])
        assert report.posterior[name].sd == pytest.approx(sd[k], rel=0.1)


def test_a_model_with_point_parameters_keeps_plain_minibatches():
    program = compile_source("data N: int\ndata x: real[N]\ndata y: real[N]\nparam s: real<lower=0> = 1.0\n"
                             "latent b ~ Normal(0, 5)\nobserve y[i] ~ Normal(b * x[i], s)\n")
    x = np.random.default_rng(0).normal(size=400)
    data = program.load_data({"N": 400, "x": x.tolist(), "y": (2 * x + 1).tolist()})
    assert not control_variates.applies(program, minibatch.plan(program, data, 40))
    fitted = infer.fit(program.compiled, data, infer.RunConfig(batch_size=40, steps=50))
    assert fitted.optimizer == "adam"
    kinds = [note.kind for note in fitted.notes]
    assert "minibatch_svi" in kinds and "minibatch_svi_controlled" not in kinds
    assert "adam_without_control_variate" in kinds


def test_at_the_anchor_the_corrected_log_joint_is_the_full_one_whatever_the_batch(logistic):
    data = logistic.load_data(_logistic_data(2_000))
    batching = minibatch.plan(logistic, data, 50)
    control = control_variates.ControlVariate(logistic, logistic.model, batching)
    control.anchor_at({name: torch.tensor(value) for name, value in ANCHOR.items()}, data, data)
    conditioned = {name: torch.tensor(value) for name, value in ANCHOR.items()}
    full = poutine.trace(poutine.condition(logistic.model, data=conditioned)).get_trace(data).log_prob_sum()
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        batch = batching.sample(data, generator)
        step = poutine.condition(control.step_model, data=conditioned)
        corrected = poutine.trace(step).get_trace(batch, control.linearised(batch)).log_prob_sum()
        assert corrected.item() == pytest.approx(full.item(), rel=1e-10)


def test_adam_steps_move_the_anchor_every_anchor_every_steps(logistic, monkeypatch):
    steps, moves = [], []
    linearised, move_anchor = control_variates.ControlVariate.linearised, control_variates.ControlVariate.move_anchor
    monkeypatch.setattr(control_variates.ControlVariate, "linearised",
                        lambda self, batch: steps.append(1) or linearised(self, batch))
    monkeypatch.setattr(control_variates.ControlVariate, "move_anchor",
                        lambda self, data, batch: moves.append(len(steps)) or move_anchor(self, data, batch))
    logistic.fit(_logistic_data(2_000), batch_size=50, optimizer="adam", steps=250)
    assert moves == [0, 100, 200]  # before steps 1, 101 and 201: every 100, the minimum


def test_the_anchor_is_the_median_of_each_normal_guide_factor():
    program = compile_source("data N: int\ndata x: real[N]\ndata y: real[N]\nlatent b ~ Normal(0, 5)\n"
                             "latent s ~ HalfNormal(1)\nobserve y[i] ~ Normal(b * x[i], s)\n")
    data = program.load_data({"N": 4, "x": [1.0, 2.0, 3.0, 4.0], "y": [2.0, 4.1, 5.9, 8.0]})
    initialise(program.compiled, data)
    store = pyro.get_param_store()
    centre = control_variates.guide_centre(program.guide, data, ["b", "s"])
    assert centre["b"].item() == pytest.approx(store["b.loc"].item())
    assert centre["s"].item() == pytest.approx(store["s.loc"].exp().item())  # LogNormal's median


@pytest.fixture(scope="module")
def near_its_bound():
    """A regression whose intercept u is 4.99 under its Uniform(0, 5) prior: the spec, 4,000 rows,
    and the fit from all of them."""
    program = compile_source("data N: int\ndata x: real[N]\ndata y: real[N]\nlatent u ~ Uniform(0, 5)\n"
                             "latent b ~ Normal(0, 1)\nlatent s ~ HalfNormal(1)\n"
                             "observe y[i] ~ Normal(u + b * x[i], s)\n")
    rng = np.random.default_rng(0)
    x = rng.normal(size=4_000)
    data = {"N": 4_000, "x": x.tolist(), "y": (4.99 + 0.5 * x + 0.3 * rng.normal(size=4_000)).tolist()}
    return program, data, program.fit(data, covariance="guide")  # batched fits draw from the guide


# Seed 0 in every run; the other seeds (13 s of fitting each) with -m slow.
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_a_latent_near_its_bound_is_fitted_from_batches_as_from_all_the_rows(near_its_bound, seed):
    # Linearised in the logit, a batch's slope towards the bound would outgrow the
    # log-likelihood, which levels off there; in the latent's own values it cannot.
    program, data, full = near_its_bound
    batched = program.fit(data, batch_size=100, seed=seed)
    for name, summary in full.posterior.items():
        assert batched.posterior[name].mean == pytest.approx(summary.mean, abs=0.1 * summary.sd), name
        assert batched.posterior[name].sd == pytest.approx(summary.sd, rel=0.1), name


def test_once_converged_the_rounds_are_averaged_until_they_have_held_a_thousand_rows(linear_regression,
                                                                                   linear_regression_in_batches):
    full, batched = linear_regression.fit(seed=0, covariance="guide"), linear_regression_in_batches
    assert any("the answer averages the last 25" in note for note in batched.warnings)
    # One round's sds carry its batch's curvature (0.95-1.42 of these); 25 rounds' average, 5 %.
    for name, summary in full.posterior.items():
        assert np.allclose(batched.posterior[name].sd, summary.sd, rtol=0.05), name


def test_a_fit_that_stops_in_its_first_round_says_no_round_was_corrected(linear_regression):
    report = linear_regression.fit(batch_size=50, steps=5)
    assert any("stopped before a round corrected by the full-data gradient" in note for note in report.warnings)


def test_minibatch_lbfgs_needs_the_normal_guide(specs):
    program = compile_file(specs / "linear_regression.ppl", guide="native")
    with pytest.raises(PplError, match="minibatch L-BFGS needs the normal guide"):
        program.fit(batch_size=50, optimizer="lbfgs")
