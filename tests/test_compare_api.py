"""`compiler.compare`: `pplc compare` for fits made in Python."""

from __future__ import annotations

from pathlib import Path

import compiler

COIN = Path("specs/coin.ppl").read_text()
PRIORS = {"flat": "Beta(1, 1)", "confident": "Beta(200, 20)"}  # the coin's data favour the flat prior


def test_compare_ranks_fits_of_two_models_to_the_same_data_by_name():
    fits = {name: compiler.compile_source(COIN.replace("Beta(10, 10)", prior), f"{name}.ppl").fit(
                "specs/coin.data.json", draws=1000) for name, prior in PRIORS.items()}
    comparison = compiler.compare(fits)
    assert [model.name for model in comparison.models] == ["flat", "confident"]
    assert comparison.models[0].elpd_loo > comparison.models[1].elpd_loo
