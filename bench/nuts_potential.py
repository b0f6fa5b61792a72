"""What one NUTS leapfrog step costs in the model: the potential energy and its gradient.

For each model of `bench/nuts.py`, in this one process, one thread: milliseconds per
evaluation of U(z) and ∇U(z) at the same point, by
- Pyro: `initialize_model`'s potential_fn (what Pyro's NUTS calls), with autograd for
  the gradient as Pyro's `potential_grad` does; eager, and with `jit_compile=True`;
- pplc: `compiled_potential.flat_with_gradient` (the forward and backward operations as one frozen
  graph, after its peephole pass), whitened around it as the chains are (`compiled_potential.whitened_with_gradient`).
All three on the same generated Pyro model and data; the values are checked equal.

    python bench/nuts_potential.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from nuts import MODELS, spec_and_data
from pyro.infer.mcmc.util import initialize_model

from compiler import compile_file
from compiler.inference import compiled_potential, nuts, params
from compiler.inference.no_u_turn import with_gradient

CALLS, BLOCKS = 200, 5


def milliseconds(evaluate, z: torch.Tensor) -> float:
    """Median over blocks of the mean ms per call."""
    evaluate(z)
    times = []
    for _ in range(BLOCKS):
        started = time.perf_counter()
        for _ in range(CALLS):
            evaluate(z)
        times.append((time.perf_counter() - started) / CALLS * 1e3)
    return statistics.median(times)


def evaluators(spec: Path, data: Path) -> tuple[dict, torch.Tensor]:
    program = compile_file(spec)
    model, model_data = program.compiled.scored(program.load_data(data))
    nesting = program.compiled.ir.max_plate_nesting
    potentials = {}
    for jit in (False, True):
        with params.scope():
            params.fresh(0)
            initial, potential, _, _ = initialize_model(model, (model_data,), max_plate_nesting=nesting,
                                                        jit_compile=jit)
        potentials[jit] = potential
    sites = tuple(sorted(initial))
    shapes = tuple(initial[site].shape for site in sites)
    centre = torch.cat([initial[site].detach().reshape(-1) for site in sites])
    identity = torch.eye(len(centre), dtype=centre.dtype)
    geometry = nuts.Geometry(sites, shapes, centre, identity, warm=True)
    flat = compiled_potential.flat_with_gradient(lambda z: potentials[False](geometry.split(z)), centre)
    return {
        "pyro": with_gradient(nuts.whitened(potentials[False], geometry)),
        "pyro, jit_compile": with_gradient(nuts.whitened(potentials[True], geometry)),
        "pplc": compiled_potential.whitened_with_gradient(flat, centre, identity),
    }, torch.zeros_like(centre)


def main() -> None:
    warnings.filterwarnings("ignore")  # (Pyro's jit_compile traces with warnings about constants it freezes)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    print("| model | coordinates | Pyro (ms) | Pyro, jit_compile (ms) | pplc (ms) | Pyro / pplc | Pyro jit / pplc |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for model in MODELS:
            candidates, z = evaluators(*spec_and_data(model, Path(folder)))
            values = [float(evaluate(z)[0]) for evaluate in candidates.values()]
            assert max(values) - min(values) <= 1e-9 * max(1.0, abs(values[0])), values
            ms = {name: milliseconds(evaluate, z) for name, evaluate in candidates.items()}
            print(f"| {model} | {z.numel()} | {ms['pyro']:.3f} | {ms['pyro, jit_compile']:.3f} | {ms['pplc']:.3f} | "
                  f"{ms['pyro'] / ms['pplc']:.1f} | {ms['pyro, jit_compile'] / ms['pplc']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
