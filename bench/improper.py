"""The improper-posterior check's statistic on every spec, against its threshold.

For every spec in specs/ and specs/posteriordb/ (and the improper examples of
tests/test_improper.py): fit at seed 0 with the default settings, then the
smallest |eigenvalue| of S H S (compiler/inference/improper.py) over the latents with
improper priors, which is what the check compares with improper.FLAT, and, to
show the margin it would have, over every latent with a normal guide factor.
Run from the repository root:

    python bench/improper.py                      # the table in docs/inference.md
    python bench/improper.py --optimizer adam
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pyro

from compiler import FitError, compile_file, compile_source
from compiler.inference import fit as infer
from compiler.inference import improper

SPECS = Path(__file__).resolve().parent.parent / "specs"
IMPROPER = {  # name -> (spec, data): posteriors that do not exist
    "a + b observed": ("data N: int\ndata y: real[N]\nlatent a ~ Flat()\nlatent b ~ Flat()\n"
                       "observe y[i] ~ Normal(a + b, 1)", {"N": 3, "y": [0.1, -0.3, 1.2]}),
    "HalfFlat s unobserved": ("data N: int\ndata y: real[N]\nlatent mu ~ Normal(0, 10)\nlatent s ~ HalfFlat()\n"
                              "observe y[i] ~ Normal(mu, 1)", {"N": 3, "y": [0.1, -0.3, 1.2]}),
    "Flat mu, no data": ("latent mu ~ Flat()", {}),
}


def _smallest(curvature) -> str:
    return "-" if curvature is None else f"{curvature.smallest:.2g}"


def measure_spec(name: str, program, data, optimizer: str | None) -> None:
    started = time.perf_counter()
    try:
        program.fit(data, seed=0, optimizer=optimizer)
        outcome = "fit"
    except FitError as error:
        outcome = "FitError: improper" if "improper" in error.message else f"FitError: {error.message[:40]}"
    seconds = time.perf_counter() - started
    loaded = program.load_data(data)
    objective = infer.Objective(*program.compiled.scored(loaded))
    store = pyro.get_param_store()
    checked = improper.improper_latents(program)
    located = [latent for latent in program.ir.guided_latents if f"{latent.name}.loc" in store]
    coordinates = sum(store[f"{latent.name}.loc"].numel() for latent in checked)
    own = infer.curvature(program, objective, 0) if checked else None
    every = infer.curvature(program, objective, 0, located) if located else None
    print(f"| {name} | {coordinates} | {_smallest(own)} | {_smallest(every)} | {outcome} | {seconds:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default=None)
    optimizer = parser.parse_args().optimizer
    print(f"threshold improper.FLAT = {improper.FLAT:g}\n")
    print("| spec | improper coordinates | statistic (improper latents) | statistic (every latent) | outcome | "
          "seconds |\n|---|---|---|---|---|---|")
    for path in sorted(SPECS.glob("*.ppl")) + sorted(SPECS.glob("posteriordb/*.ppl")):
        program = compile_file(path)
        measure_spec(path.stem, program, None, optimizer)
    for name, (source, data) in IMPROPER.items():
        program = compile_source(source, name)
        measure_spec(name, program, data, optimizer)


if __name__ == "__main__":
    main()
