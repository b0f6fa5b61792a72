"""Comparisons (`==`, `!=`, `<`, `<=`, `>`, `>=`: 1 where they hold, 0 elsewhere) and the
conditional `c ? a : b` (elementwise, torch.where): their parse, types and values."""

from __future__ import annotations

import pytest
import torch
from pyro import poutine

from compiler import PplError, compile_source
from compiler.frontend import ir

DATA = {"N": 4, "y": [-1.0, 0.0, 2.0, 3.0]}


def _lets(source: str, latents: dict[str, torch.Tensor] | None = None, data: dict = DATA) -> dict[str, torch.Tensor]:
    """Every let's value (transformed data's from the data), the latents conditioned on `latents`."""
    program = compile_source(source)
    model = poutine.condition(program.compiled.model, latents or {})
    loaded = program.load_data(data)
    trace = poutine.trace(model).get_trace(loaded)
    transformed = {let.name: torch.as_tensor(loaded[let.name]) for let in program.ir.lets if let.transformed_data}
    return transformed | {name: site["value"] for name, site in trace.nodes.items() if site["type"] == "sample"}


HEADER = "data N: int\ndata y: real[N]\nlatent m ~ Normal(0, 1)\n"


@pytest.mark.parametrize("operator, expected", [
    ("==", [0, 1, 0, 0]), ("!=", [1, 0, 1, 1]), ("<", [1, 0, 0, 0]),
    ("<=", [1, 1, 0, 0]), (">", [0, 0, 1, 1]), (">=", [0, 1, 1, 1]),
])
def test_a_comparison_is_one_where_it_holds_and_zero_elsewhere(operator, expected):
    values = _lets(HEADER + f"let c[i] = y[i] {operator} m\n", {"m": torch.tensor(0.0)})
    assert values["c"].tolist() == expected


def test_comparisons_count_in_arithmetic():
    values = _lets(HEADER + "let count = sum(y > m) - (y[0] < m)\n", {"m": torch.tensor(0.0)})
    assert values["count"].item() == 2 - 1


def test_a_comparison_is_an_int():
    model = compile_source(HEADER + "let c = y > m\n").ir
    assert model.lets[0].value.type == ir.Type("int", ("N",))


def test_the_conditional_chooses_elementwise():
    values = _lets(HEADER + "let r[i] = y[i] > m ? y[i] : 2 * m\n", {"m": torch.tensor(0.5)})
    assert values["r"].tolist() == [1.0, 1.0, 2.0, 3.0]


def test_a_conditional_of_numbers_is_a_tensor():
    values = _lets("data N: int\nlatent m ~ Normal(0, 1)\nlet r = N > 3 ? 1.5 : 2.5\n", {}, {"N": 4})
    assert values["r"].item() == 1.5


def test_conditionals_nest_to_the_right():
    values = _lets(HEADER + "let r[i] = y[i] < 0 ? -1.0 : y[i] == 0 ? 0.0 : 1.0\n", {"m": torch.tensor(0.0)})
    assert values["r"].tolist() == [-1.0, 0.0, 1.0, 1.0]


def test_a_conditional_works_in_a_fit():
    source = HEADER + "observe y[i] ~ Normal(y[i] > 1 ? m + 1 : m, 1)\n"
    fit = compile_source(source).fit(DATA, seed=0)
    exact = (sum(DATA["y"]) - 2) / (4 + 1)  # a conjugate normal mean: prior N(0, 1), two rows shifted by 1
    assert fit.gaussian.mean.item() == pytest.approx(exact, rel=1e-6)


@pytest.mark.parametrize("source, message", [
    ("data y: real[3]\ndata z: real[2]\nlet c = y < z\n", r"cannot compare shapes \[3\] and \[2\]"),
    ("data y: real[3]\nlet c = y ? 1 : 0\n", "a condition must be a comparison or an int"),
    ("data y: real[3]\ndata z: real[2]\nlet c = y > 0 ? z : 0\n", r"the condition \[3\] and the values \[2\]"),
])
def test_the_checker_refuses_mismatched_comparisons_and_conditions(source, message):
    with pytest.raises(PplError, match=message):
        compile_source(source)


def test_comparisons_do_not_chain():
    with pytest.raises(PplError, match="syntax error"):
        compile_source("data y: real\nlet c = 0 < y < 1\n")


def test_a_bound_still_closes_at_its_angle_bracket():
    model = compile_source("data J: int\ndata g: int<lower=0, upper=J - 1>[3]\n").ir
    assert model.data[1].upper.type.base == "int"
