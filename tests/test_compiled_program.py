"""`results.program.CompiledProgram` names what results read from `api.Program` (results sit
below api, so they cannot import it): every member it names, a `Program` has."""

from __future__ import annotations

from compiler import compile_file
from compiler.results.program import CompiledProgram


def _members() -> set[str]:
    return set(CompiledProgram.__annotations__) | {
        name for name, value in vars(CompiledProgram).items() if isinstance(value, property)}


def test_the_protocol_names_the_program_parts_results_use():
    assert _members() == {"source", "ir", "guide_family", "code", "compiled", "model", "guide"}


def test_a_program_has_every_member_the_protocol_names(specs):
    program = compile_file(specs / "coin.ppl")
    assert all(hasattr(program, name) for name in _members())
