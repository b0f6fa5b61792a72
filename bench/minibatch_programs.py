"""Minibatch fits of every program with a data plate against its full-data fit.

For each spec in specs/ and specs/posteriordb/ whose data plate can be split,
fit it over all the data (the default L-BFGS) and with --batch-size N / 5 (the
default optimizer for batches), and print the largest distance of a
posterior mean in full-data sds and the range of sd ratios, as Markdown.

    python bench/minibatch_programs.py      # about three minutes
"""

from __future__ import annotations

import warnings

import numpy as np
from common import SPECS

from compiler import compile_file
from compiler.api import compute_in_float64
from compiler.errors import PplError
from compiler.inference import minibatch


def compare(spec) -> str | None:
    program = compile_file(spec)
    data = program.load_data(program.default_data_path())
    try:
        sizes = minibatch.plan(program, data, 1).rows.sizes
    except PplError:
        return None  # a local latent, or a size used as a number: refused
    if not sizes:
        return None
    rows = next(iter(sizes.values()))
    full = program.fit(data)
    batched = program.fit(data, batch_size=rows // 5)
    errors, ratios = [], []
    for name, summary in full.posterior.items():
        sd = np.ravel(summary.sd)
        errors += list(np.abs(np.ravel(batched.posterior[name].mean) - np.ravel(summary.mean)) / sd)
        ratios += list(np.ravel(batched.posterior[name].sd) / sd)
    khat = "—" if batched.khat is None else f"{batched.khat:.2f}"
    return (f"| {spec.stem} | {rows:,} | {rows // 5:,} | {batched.optimizer} | {max(errors):.2f} | "
            f"{min(ratios):.2f}–{max(ratios):.2f} | {khat} |")


def main() -> None:
    compute_in_float64()
    warnings.filterwarnings("ignore")
    print("| program | N | batch | optimizer | worst mean error (sds) | sd ratios | k̂ |")
    print("|---|---|---|---|---|---|---|")
    for spec in sorted(SPECS.glob("*.ppl")) + sorted(SPECS.glob("posteriordb/*.ppl")):
        line = compare(spec)
        if line:
            print(line, flush=True)


if __name__ == "__main__":
    main()
