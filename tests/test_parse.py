"""Phase 1: spec text -> syntax tree."""

from __future__ import annotations

import pytest

from compiler.errors import PplError, Source
from compiler.frontend import syntax
from compiler.frontend.parse import parse_program


def parse(text: str) -> syntax.Program:
    return parse_program(Source("test.ppl", text))


def test_every_example_spec_parses(specs):
    for path in sorted(specs.glob("*.ppl")):
        assert parse_program(Source.from_path(path)).statements, path


def test_data_declaration_keeps_type_bounds_and_dims():
    (decl,) = parse("data x: int<lower=0, upper=1>[N]").statements
    assert isinstance(decl, syntax.DataDecl)
    assert decl.name.id == "x"
    assert decl.type.base == "int"
    assert [b.kind for b in decl.type.bounds] == ["lower", "upper"]
    assert [d.id for d in decl.type.dims] == ["N"]


def test_observe_keeps_index_variable_and_distribution():
    (statement,) = parse("observe x[i] ~ Bernoulli(f)").statements
    assert isinstance(statement, syntax.Observe)
    assert [s.id for s in statement.subscripts] == ["i"]
    assert statement.distribution.function == "Bernoulli"


def test_keyword_arguments_are_kept_by_name():
    (statement,) = parse("observe y ~ Bernoulli(logits=a)").statements
    (argument,) = statement.distribution.arguments
    assert argument.keyword == "logits"


def test_power_binds_tighter_than_unary_minus():
    (statement,) = parse("let y = -x ^ 2").statements
    assert isinstance(statement.value, syntax.Negate)
    assert statement.value.operand.operator == "^"


def test_product_binds_tighter_than_sum():
    (statement,) = parse("let y = a + b * c").statements
    assert statement.value.operator == "+"
    assert statement.value.right.operator == "*"


def test_nodes_carry_their_source_span():
    (statement,) = parse("\n\nlatent f ~ Beta(10, 10)").statements
    assert (statement.span.line, statement.span.column) == (3, 1)
    assert (statement.distribution.span.line, statement.distribution.span.column) == (3, 12)


def test_comments_and_blank_lines_are_ignored():
    program = parse("# a comment\n\ndata N: int  # trailing\n\n")
    assert len(program.statements) == 1


def test_syntax_error_points_at_the_unexpected_token():
    with pytest.raises(PplError) as caught:
        parse("latent f ~ Beta(10 10)")
    assert (caught.value.span.line, caught.value.span.column) == (1, 20)
    assert "unexpected" in caught.value.message


def test_unexpected_character_is_a_syntax_error():
    with pytest.raises(PplError, match="unexpected character"):
        parse("latent f ~ Beta(10, 10); import os")


def test_deeply_nested_expression_is_a_clean_error():
    with pytest.raises(PplError, match="nested more than 100 deep"):
        parse("let y = " + "-" * 500 + "1")


def test_redundant_parentheses_add_no_depth():
    (statement,) = parse("let y = " + "(" * 500 + "1" + ")" * 500).statements
    assert statement.value.value == 1


def test_overlong_line_is_rejected_before_parsing():
    with pytest.raises(PplError, match="line 1 is 10,000,009 characters long"):
        parse("let y = " + "1" * 10_000_001)


def parse_error(text: str) -> PplError:
    with pytest.raises(PplError) as caught:
        parse(text)
    return caught.value


def test_an_integer_beyond_int64_is_an_error_at_the_number():
    found = parse_error("latent a ~ Normal(9223372036854775808, 1)")
    assert found.message == "the integer 9223372036854775808 is out of range"
    assert (found.span.column, found.span.end_column) == (19, 38)


def test_an_integer_of_4301_digits_is_an_error_at_the_number_not_a_python_limit():
    found = parse_error("let a = " + "7" * 4301)
    assert found.message == "the integer 777777777777…777777 (4,301 characters) is out of range"
    assert found.span.column == 9


def test_a_real_beyond_float_range_is_an_error_rather_than_infinity():
    assert parse_error("let a = 1e309").message == "the number 1e309 is out of range"
    assert parse_error("let a = " + "9" * 400 + ".0").message.endswith("(402 characters) is out of range")


def test_a_real_that_float64_would_make_zero_is_an_error():
    assert parse_error("let a = 1e-400").message == "the number 1e-400 is too small to tell from 0"


@pytest.mark.parametrize("text, value", [("0.0", 0.0), ("0e5", 0.0), ("00", 0), ("1e-320", 1e-320),
                                         ("9223372036854775807", 2**63 - 1), (".5", 0.5)])
def test_numbers_at_the_edges_of_the_range_are_read_exactly(text, value):
    (statement,) = parse(f"let a = {text}").statements
    assert statement.value.value == value and type(statement.value.value) is type(value)


def test_more_statements_than_the_limit_is_an_error_at_the_first_one_over():
    lines = ["# comments and blank lines are not statements", ""] + ["latent a ~ Normal(0, 1)"] * 50_001
    found = parse_error("\n".join(lines))
    assert found.message == "the spec has more than 50,000 statements"
    assert found.span.line == 50_003


def test_a_spec_longer_than_the_character_limit_is_an_error_before_it_is_parsed():
    found = parse_error("\n".join(["# " + "x" * 9_000] * 250))
    assert found.message == "the spec is longer than 2,000,000 characters"
    assert found.span.line == 2_000_000 // 9_003 + 1
