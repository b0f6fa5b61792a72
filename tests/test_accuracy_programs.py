"""Every target program, fitted at default settings with a fixed seed, against its
reference posterior (long NUTS runs, or exact conjugate answers).

The bar (the whole-language issue's): each mean within max(0.1 reference sd,
1 % of |mean|), each sd within 25 %. The mean-field guide alone cannot meet it
where latents are correlated (poisson_regression's sds came out at 0.56 of the
reference, radon's at 0.46); the default's linear-response covariance and PSIS
resampling meet it on every program (docs/inference.md), so there are no known
misses left. `record_property` keeps the measured sizes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pyro import poutine

from compiler import compile_file

PROGRAMS = ["coin", "noise_scale", "poisson_regression", "linear_regression", "logistic_regression",
            "radon", "eight_schools", "mixture"]



def reference(specs, name: str) -> dict:
    return json.loads((specs / f"{name}.reference.json").read_text())


@pytest.fixture(scope="module")
def fits(specs):
    """Each program fitted once, at default settings, seed 0. The mixture's fit also reports
    P(z = k) per point (`discrete`), which is computed after the fit and leaves it as it is."""
    cache: dict = {}

    def fit(name: str):
        if name not in cache:
            program = compile_file(specs / f"{name}.ppl")
            cache[name] = (program, program.fit(seed=0, discrete=name == "mixture"))
        return cache[name]

    return fit


def fitted_moments(report, name: str, site: str) -> tuple[np.ndarray, np.ndarray]:
    mean, sd = np.asarray(report.posterior[site].mean), np.asarray(report.posterior[site].sd)
    if name == "mixture" and mean.ndim:
        # Components are exchangeable; the reference sorts them by mean.
        order = np.argsort(report.posterior["mu"].mean)
        mean, sd = mean[order], sd[order]
    return mean, sd


def cases(specs_path):
    for name in PROGRAMS:
        for site in json.loads((specs_path / f"{name}.reference.json").read_text())["posterior"]:
            yield name, site


def pytest_generate_tests(metafunc):
    if "program_site" in metafunc.fixturenames:
        from conftest import SPECS

        metafunc.parametrize("program_site", list(cases(SPECS)), ids=lambda c: f"{c[0]}-{c[1]}")


def test_posterior_means_match_the_reference(fits, specs, program_site, record_property):
    name, site = program_site
    _, report = fits(name)
    expected = reference(specs, name)["posterior"][site]
    mean, _ = fitted_moments(report, name, site)
    ref_mean, ref_sd = np.asarray(expected["mean"]), np.asarray(expected["sd"])
    error_in_tolerances = np.max(np.abs(mean - ref_mean) / np.maximum(0.1 * ref_sd, 0.01 * np.abs(ref_mean)))
    record_property("mean_error_in_tolerances", float(error_in_tolerances))
    assert error_in_tolerances <= 1


def test_posterior_sds_match_the_reference(fits, specs, program_site, record_property):
    name, site = program_site
    _, report = fits(name)
    expected = reference(specs, name)["posterior"][site]
    _, sd = fitted_moments(report, name, site)
    ratio = sd / np.asarray(expected["sd"])
    record_property("sd_ratio_min", float(np.min(ratio)))
    assert np.all(np.abs(ratio - 1) <= 0.25)


def test_point_parameter_matches_type_ii_maximum_likelihood(fits, specs):
    _, report = fits("noise_scale")
    assert report.params["sigma"] == pytest.approx(reference(specs, "noise_scale")["params"]["sigma"], rel=0.01)


def test_with_the_mean_field_covariance_poisson_regression_sds_are_the_mean_field_optimum(specs):
    """`--covariance mean-field` keeps the guide's scales, which for a near-Gaussian
    posterior with precision Λ are 1/sqrt(Λ_kk) (below the sds where latents correlate)."""
    program = compile_file(specs / "poisson_regression.ppl")
    report = program.fit(seed=0, covariance="mean-field", resample=False)
    data = program.load_data()
    at = torch.tensor([report.posterior["a"].mean, report.posterior["b"].mean], dtype=torch.float64)

    def log_joint(ab):
        conditioned = poutine.condition(program.model, {"a": ab[0].float(), "b": ab[1].float()})
        return poutine.trace(conditioned).get_trace(data).log_prob_sum().double()

    precision = -torch.autograd.functional.hessian(log_joint, at)
    predicted = 1 / torch.sqrt(torch.diagonal(precision))
    fitted = torch.tensor([report.posterior["a"].sd, report.posterior["b"].sd], dtype=torch.float64)
    assert torch.allclose(fitted, predicted, rtol=0.1)


def test_mixture_assignments_are_reported_per_point(fits, specs):
    _, report = fits("mixture")
    probabilities = np.asarray(report.discrete["z"])
    assert probabilities.shape == (400, 2)
    assert np.allclose(probabilities.sum(axis=1), 1)
    y = np.asarray(json.loads((specs / "mixture.data.json").read_text())["y"])
    high = int(np.argmax(report.posterior["mu"].mean))
    # Points far out on either side belong to the nearer component with certainty.
    assert np.all(probabilities[y > 5, high] > 0.95) and np.all(probabilities[y < -4, high] < 0.05)
