"""The codegen emitter: code built from values that record what they need, laid out within the line limit."""

from __future__ import annotations

import ast

from compiler.backend import emitter as em
from compiler.backend.emitter import LINE_LIMIT, Assign, Function, Line, Module, Return, With


def module(*body, docstring: str | None = None) -> Module:
    return Module("A test module.", (), (Function("f", ("data",), docstring, tuple(body)),))


def source(*body) -> str:
    return em.render_module(module(*body)).source


def long_call(arguments: int) -> em.Code:
    return em.call(em.imported("torch", "stack"), *(em.name(f"argument_number_{k}") for k in range(arguments)))


def test_a_call_that_fits_stays_on_one_line():
    assert "    x = torch.stack(argument_number_0, argument_number_1)\n" in source(Assign("x", long_call(2)))


def test_a_call_too_long_for_the_line_puts_one_argument_a_line():
    lines = source(Assign("x", long_call(6))).splitlines()
    start = lines.index("    x = torch.stack(")
    assert lines[start + 1:start + 8] == [f"        argument_number_{k}," for k in range(6)] + ["    )"]


def test_a_long_sum_inside_a_call_breaks_before_its_operators():
    total = em.name("a_rather_long_name_0")
    for k in range(1, 6):
        total = em.chain(total, "+", em.name(f"a_rather_long_name_{k}"))
    lines = source(Line(em.call(em.imported("torch", "exp"), total))).splitlines()
    assert "        + a_rather_long_name_4" in lines and all(len(line) <= LINE_LIMIT for line in lines)


def test_a_long_sum_assigned_at_statement_level_is_put_in_brackets():
    total = em.name("a_rather_long_name_0")
    for k in range(1, 6):
        total = em.chain(total, "-", em.name(f"a_rather_long_name_{k}"))
    text = source(Assign("x", total))
    assert "    x = (\n" in text
    assigned = next(node for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Assign))
    assert ast.unparse(assigned.value) == total.flat()


def test_breaking_a_line_never_changes_what_the_code_means():
    nested = em.call(em.imported("dist", "Normal"), long_call(4), em.keyword("scale", long_call(3)))
    text = source(Line(em.subscript(em.name("values"), em.text("..."), nested)))
    statement = ast.parse(text).body[-1].body[0]
    assert len(text.splitlines()) > 10 and ast.unparse(statement) == ast.unparse(ast.parse(
        em.subscript(em.name("values"), em.text("..."), nested).flat()).body[0])


def test_a_subscript_broken_over_lines_gets_no_trailing_comma():
    text = source(Line(em.subscript(em.name("values"), *(em.name(f"an_index_named_{k}") for k in range(8)))))
    assert "an_index_named_7\n" in text and "an_index_named_6,\n" in text


def test_a_module_imports_only_what_its_code_records():
    text = source(Assign("x", em.call(em.runtime("lift"), em.name("y"), em.number(1), em.number(1))))
    assert text.count("import") == 1 and "from compiler.backend import runtime as rt" in text


def test_imports_are_grouped_and_ordered_as_isort_writes_them():
    code = em.call(em.imported("pyro", "sample"), em.imported("Vindex"), em.imported("torch", "ones"),
                   em.runtime("real"), em.imported("dist", "Normal"))
    assert module(Line(code)).imports() == [
        "import pyro", "import pyro.distributions as dist", "import torch",
        "from pyro.ops.indexing import Vindex", "", "from compiler.backend import runtime as rt"]


def test_runtime_helpers_and_names_read_are_recorded():
    code = em.call(em.runtime("index"), em.chain(em.name("g"), "-", em.number(1)), em.name("J"))
    assert code.needs.helpers == {"index"} and code.needs.names == {"g", "J"}


def test_names_a_body_assigns_itself_are_not_free_even_inside_a_block():
    body = [With((em.name("N_plate"),), (Assign("t", em.name("N")), Line(em.name("t")))), Line(em.name("x"))]
    assert em.free_names(body) == {"N_plate", "N", "x"}


def test_guide_parameters_are_recorded_in_the_order_they_are_created():
    made = [em.call(em.imported("pyro", "param"), em.parameter(name)) for name in ("a.loc", "a.scale", "a.loc")]
    assert em.union(code.needs for code in made).parameters == ("a.loc", "a.scale")


def test_each_line_of_an_assignment_names_what_it_assigns():
    rendered = em.render_module(module(Assign("first", em.number(1)), Assign("second", long_call(6)),
                                       Return(em.name("second"))))
    lines = rendered.source.splitlines()
    assert {rendered.assigned[n] for n in range(1, len(lines) + 1) if lines[n - 1].startswith("        arg")} == {"second"}
    assert rendered.assigned[lines.index("    first = 1") + 1] == "first"
    assert lines.index("    return second") + 1 not in rendered.assigned


def test_a_docstring_too_long_for_one_line_is_wrapped_within_the_limit():
    text = em.render_module(module(Line(em.text("pass")), docstring="word " * 40)).source
    docstring = ast.get_docstring(ast.parse(text).body[-1])
    assert docstring.split() == ["word"] * 40 and all(len(line) <= LINE_LIMIT for line in text.splitlines())
