"""Real posteriors from posteriordb (specs/posteriordb/, references from long Stan
NUTS runs): badly scaled regressions with flat priors and posterior correlations
near -1, where Adam-based mean-field VI stops far from the optimum. For a Gaussian
posterior the mean-field optimum has the exact means, so every mean must be
within 0.3 reference sds (the bar of issue 6; measured worst: 0.18, see
docs/inference.md). Sds are not tested here: mean-field understates them by the
ratio each reference states (`meanfield_sd_ratio`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compiler import compile_file

POSTERIORDB = Path(__file__).resolve().parent.parent / "specs" / "posteriordb"
MEAN_BAR = 0.3
# Two of the hardest, fast enough for every run: corr(beta) = -0.998 and -0.99.
QUICK = ["earnings-logearn_height", "kidiq-kidscore_momiq"]
# Posteriors the default mean-field guide does not fit to the bar, and the guide docs/inference.md
# gives them: the Gaussian process's magnitude alpha is skewed and tied to f_tilde (0.72 sds at defaults).
GUIDES = {"gp_pois_regr-gp_pois_regr": "fullrank"}
# And those sampled by NUTS, which their report recommends: the centred eight schools' funnel (tau 1.13
# sds off at defaults, with a k̂ warning; NUTS 0.08).
SAMPLED = {"eight_schools-eight_schools_centered"}


def worst_mean_error(name: str) -> float:
    spec = POSTERIORDB / f"{name}.ppl"
    reference = json.loads(spec.with_suffix(".reference.json").read_text())["posterior"]
    program = compile_file(spec, guide=GUIDES.get(name, "normal"))
    report = program.sample(seed=0) if name in SAMPLED else program.fit(seed=0)
    return max(
        float(np.max(np.abs(np.asarray(report.posterior[site].mean) - np.asarray(expected["mean"]))
                     / np.asarray(expected["sd"])))
        for site, expected in reference.items())


@pytest.mark.parametrize("name", QUICK)
def test_badly_scaled_flat_prior_regression_gets_its_means(name):
    assert worst_mean_error(name) < MEAN_BAR


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.stem for p in POSTERIORDB.glob("*.ppl")))
def test_every_posteriordb_posterior_gets_its_means(name):
    assert worst_mean_error(name) < MEAN_BAR
