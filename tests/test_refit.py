"""The draw check's refit with more fixed draws starts from the last optimum, which more draws move
by their sampling error only: the same optimum as a fresh fit with those draws, in fewer iterations."""

from __future__ import annotations

import numpy as np
import torch

from compiler import compile_file
from compiler.inference import fit as infer
from compiler.inference.config import RunConfig


def test_a_refit_from_the_last_optimum_reaches_the_fresh_fits_optimum_in_fewer_iterations(specs):
    # 20,000 rows: one antithetic pair leaves the fitted means too unsure, and the check refits with two.
    program = compile_file(specs / "logistic_regression.ppl")
    rng = np.random.default_rng(20_000)
    x = rng.standard_normal((20_000, 5))
    y = (rng.random(20_000) < 1 / (1 + np.exp(0.5 - x @ np.array([1.0, -0.8, 0.5, 0.0, 0.3])))).astype(int)
    data = program.load_data({"N": 20_000, "K": 5, "X": x, "y": y})
    refitted = infer.fit(program.compiled, data, RunConfig(particles=2, draws=100, resample=False))
    fresh = infer.fit(program.compiled, data, RunConfig(particles=4, draws=100, resample=False))
    assert [note.values["more"] for note in refitted.notes if note.kind == "more_draws"] == [4]
    for name, value in fresh.guide_state["params"].items():
        assert torch.allclose(refitted.guide_state["params"][name], value, atol=1e-6)
    assert refitted.steps < fresh.steps
