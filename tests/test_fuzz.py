"""Property: whatever text a user types, pplc either compiles it, builds its model and
guide and runs them on data of the declared shapes, or stops with a clean `PplError`,
never any other exception (an undefined name in the generated code, a shape error, a
Python number divided by zero); and every `let` it computes equals what numpy computes
(`fuzz_reference.py`).

The specs come from `fuzzing.py`: token-level mutations of the example specs,
statements generated from the grammar (most pass the checker, so their code runs), and
random text and bytes. Every case is a seed, so a failure names the seed that replays
it. The default run is 2,600 cases; `-m slow` runs 20,000 more.
"""

from __future__ import annotations

import collections
import warnings

import pytest
from fuzzing import generated_spec, mutated_spec, random_text, run_case


def run_all(source, seeds: range, folder) -> collections.Counter:
    """How the cases ended; the first that raises anything but a PplError (or a refusal of
    values a distribution does not accept) fails the test with its seed and spec."""
    outcomes: collections.Counter = collections.Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pyro and torch warn about some of these specs; only exceptions count
        for seed in seeds:
            spec = source(seed)
            try:
                outcomes[run_case(spec, seed, folder)] += 1
            except Exception as error:  # noqa: BLE001 - any other exception is the failure this test looks for
                raise AssertionError(f"{source.__name__}({seed}) raised {type(error).__name__}: {error}\n"
                                     f"--- spec ---\n{spec!r}") from error
    return outcomes


def test_mutated_example_specs_run_or_fail_cleanly(tmp_path):
    outcomes = run_all(mutated_spec, range(1_000), tmp_path)
    assert outcomes["traced"] >= 30  # some edits keep the spec valid, and its code runs


def test_generated_specs_run_or_fail_cleanly(tmp_path):
    outcomes = run_all(generated_spec, range(800), tmp_path)
    assert outcomes["traced"] >= 400  # most generated specs pass the checker, are traced and their lets compared


def test_random_text_and_bytes_fail_cleanly(tmp_path):
    run_all(random_text, range(800), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("source", [mutated_spec, generated_spec, random_text])
def test_many_more_cases_run_or_fail_cleanly(source, tmp_path):
    run_all(source, range(100_000, 100_000 + {random_text: 4_000}.get(source, 8_000)), tmp_path)
