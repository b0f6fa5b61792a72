"""The objective: Pyro's ELBO chosen for the model (enumeration, --jit), and its
average over processes, which in one process is the ELBO itself."""

from __future__ import annotations

import pytest
import torch
from pyro.infer import JitTrace_ELBO, Trace_ELBO, TraceEnum_ELBO

from compiler import compile_file
from compiler.inference import params
from compiler.inference.diagnose import initialise
from compiler.inference.elbo import AveragedELBO, elbo


@pytest.mark.parametrize("spec, jit, kind", [("coin", False, Trace_ELBO), ("coin", True, JitTrace_ELBO),
                                             ("mixture", False, TraceEnum_ELBO)])
def test_the_elbo_fits_the_model(specs, spec, jit, kind):
    compiled = compile_file(specs / f"{spec}.ppl").compiled
    assert type(elbo(compiled, particles=4, jit=jit)) is kind


def test_in_one_process_the_averaged_elbo_is_the_elbo(specs, float64):
    program = compile_file(specs / "coin.ppl")
    data = program.load_data()
    with params.scope():
        params.fresh(0)
        initialise(program.compiled, data)
        inner = elbo(program.compiled, particles=4)
        torch.manual_seed(1)
        expected = inner.loss(program.model, program.guide, data)
        torch.manual_seed(1)
        assert AveragedELBO(inner).loss_and_grads(program.model, program.guide, data) == pytest.approx(expected)
        assert all(p.grad is not None for p in params.unconstrained())
