"""Too few antithetic pairs for the coordinates bias the guide's own scales (mean-field sds), not a
covariance measured from the ELBO's curvature: the report says so only where its sds are the guide's."""

from __future__ import annotations

import numpy as np
import pytest

from compiler import compile_file

PAIRS_NOTE = "too few to decorrelate"


@pytest.fixture(scope="module")
def correlated(specs):
    """Logistic regression whose two predictors correlate 0.95."""
    rng = np.random.default_rng(3)
    n = 2000
    z = rng.standard_normal((n, 2))
    x = np.stack([z[:, 0], 0.95 * z[:, 0] + np.sqrt(1 - 0.95**2) * z[:, 1]], 1)
    y = (rng.random(n) < 1 / (1 + np.exp(0.3 - x @ np.array([1.0, -0.5])))).astype(int)
    return compile_file(specs / "logistic_regression.ppl"), {"N": n, "K": 2, "X": x, "y": y}


def _fit(correlated, **options):
    program, data = correlated
    return program.fit(program.load_data(data), draws=2000, **options)


def test_linear_response_sds_from_one_pair_are_those_of_many_and_carry_no_pair_warning(correlated):
    few, many = _fit(correlated, particles=2), _fit(correlated, particles=64)
    assert not any(PAIRS_NOTE in warning for warning in few.warnings)
    assert np.allclose(few.posterior["beta"].sd, many.posterior["beta"].sd, rtol=0.02)


def test_mean_field_sds_from_one_pair_are_too_small_and_say_so(correlated):
    few = _fit(correlated, particles=2, covariance="mean-field")
    many = _fit(correlated, particles=64, covariance="mean-field")
    assert any(PAIRS_NOTE in warning for warning in few.warnings)
    assert np.all(np.asarray(few.posterior["beta"].sd) < 0.9 * np.asarray(many.posterior["beta"].sd))
