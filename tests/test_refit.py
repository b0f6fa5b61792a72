"""The draw check's refit with more fixed draws starts from the last optimum, which more draws move
by their sampling error only: the same optimum as a fresh fit with those draws, in fewer iterations."""

from __future__ import annotations

import torch

from compiler import compile_file
from compiler.inference import fit as infer
from compiler.inference.config import RunConfig


def test_a_refit_from_the_last_optimum_reaches_the_fresh_fits_optimum_in_fewer_iterations(specs):
    program = compile_file(specs / "eight_schools.ppl")
    data = program.load_data()
    refitted = infer.fit(program.compiled, data, RunConfig(particles=2, draws=100, resample=False))
    fresh = infer.fit(program.compiled, data, RunConfig(particles=8, draws=100, resample=False))
    assert [note.values["more"] for note in refitted.notes if note.kind == "more_draws"] == [4, 8]
    for name, value in fresh.guide_state["params"].items():
        assert torch.allclose(refitted.guide_state["params"][name], value, atol=1e-6)
    assert refitted.steps < fresh.steps
