"""Phase 2: syntax tree -> checked IR (names, plates, shapes, distributions)."""

from __future__ import annotations

import math

import pytest

from compiler.errors import PplError, Source
from compiler.frontend import constants, ir
from compiler.frontend.check import check_program
from compiler.frontend.parse import parse_program

COIN = """
data N: int
data x: int<lower=0, upper=1>[N]
latent f ~ Beta(10, 10)
observe x[i] ~ Bernoulli(f)
"""


def check(text: str) -> ir.Model:
    return check_program(parse_program(Source("test.ppl", text)), "test.ppl")


def error(text: str) -> PplError:
    with pytest.raises(PplError) as caught:
        check(text)
    return caught.value


def test_coin_has_one_latent_and_one_observed_site():
    model = check(COIN)
    assert [s.name for s in model.latents] == ["f"]
    assert [s.name for s in model.observed] == ["x"]


def test_index_variable_becomes_a_plate_over_the_indexed_axis():
    (observe,) = check(COIN).observed
    assert observe.plates == (ir.Plate("N", "N", -1, "i"),)


def test_observed_value_under_its_plate_needs_no_gather():
    (observe,) = check(COIN).observed
    assert isinstance(observe.value, ir.Subscript) and observe.value.aligned


def test_sized_latent_gets_a_plate_named_after_its_size():
    model = check("data K: int\nlatent beta[K] ~ Normal(0, 1)")
    (latent,) = model.latents
    assert latent.plates == (ir.Plate("K", "K", -1, None),)
    assert latent.shape == ("K",)


def test_index_variable_range_is_inferred_from_the_right_side():
    model = check("data J: int\ndata u: real[J]\nlatent a[j] ~ Normal(u[j], 1)")
    assert model.latents[0].plates[0].size == "J"


def test_nested_indexing_marks_the_index_array():
    model = check("data N: int\ndata J: int\ndata g: int<lower=0>[N]\ndata y: real[N]\n"
                  "latent a[J] ~ Normal(0, 1)\nobserve y[i] ~ Normal(a[g[i]], 1)")
    assert {d.name: d.index_range for d in model.data}["g"] == "J"


def test_dirichlet_latent_has_an_event_shape():
    model = check("data K: int\nlatent w ~ Dirichlet(ones(K))")
    assert model.latents[0].shape == ("K",)


def test_categorical_latent_is_enumerated():
    model = check("data N: int\ndata K: int\nlatent w ~ Dirichlet(ones(K))\nlatent z[N] ~ Categorical(w)")
    assert model.latents[1].enumerated
    assert [s.name for s in model.guided_latents] == ["w"]


def test_let_over_data_alone_is_transformed_data():
    model = check("data N: int\ndata y: real<lower=0>[N]\nlet log_y = log(y)\nlatent m ~ Normal(0, 1)\n"
                  "observe log_y ~ Normal(m, 1)")
    assert model.lets[0].transformed_data


def test_matrix_vector_product_has_the_rows_shape():
    model = check("data N: int\ndata K: int\ndata X: real[N, K]\nlatent b[K] ~ Normal(0, 1)\nlet eta = X @ b")
    assert model.lets[0].shape == ("N",)


def test_unknown_name_suggests_the_closest_declared_name():
    found = error(COIN.replace("Bernoulli(f)", "Bernoulli(g)"))
    assert found.message == "unknown name 'g'"
    assert found.hint == "did you mean 'f'?"
    assert (found.span.line, found.span.column) == (5, 26)


def test_redeclared_name_is_an_error_naming_the_first_line():
    assert "already declared on line 1" in error("data N: int\ndata N: real").message


def test_latent_used_before_it_is_declared_is_an_error():
    found = error("latent a ~ Normal(b, 1)\nlatent b ~ Normal(0, 1)")
    assert "before it is declared" in found.message


def test_observing_a_latent_is_an_error():
    assert "only data can be observed" in error("latent f ~ Normal(0, 1)\nobserve f ~ Normal(0, 1)").message


def test_index_variable_without_a_range_suggests_a_size():
    found = error("latent a[j] ~ Normal(0, 1)")
    assert "cannot infer the range of index 'j'" in found.message
    assert "size" in found.hint


def test_index_ranges_that_disagree_name_both():
    found = error("data N: int\ndata M: int\ndata a: real[N]\ndata b: real[M]\nobserve a[i] ~ Normal(b[i], 1)")
    assert "ranges over M here but over N" in found.message


def test_shape_mismatch_names_both_shapes():
    found = error("data N: int\ndata K: int\ndata a: real[N]\ndata b: real[K]\nlet c = a + b")
    assert found.message == "shapes [N] and [K] do not match"


def test_wrong_argument_count_shows_the_signature():
    found = error("latent f ~ Normal(0, 1, 2)")
    assert "Normal takes 2 positional arguments" in found.message
    assert found.hint == "Normal(loc, scale)"


def test_unknown_keyword_suggests_the_parameter():
    assert error("latent f ~ Normal(0, scal=1)").hint == "did you mean 'scale'?"


def test_probs_and_logits_together_are_an_error():
    assert "only one of probs or logits" in error("data y: int\nobserve y ~ Bernoulli(0.5, logits=0)").message


def test_unknown_distribution_suggests_the_closest():
    assert error("latent f ~ Normall(0, 1)").hint == "did you mean 'Normal'?"


def test_unknown_function_suggests_the_closest():
    assert error("let y = expp(1)").hint == "did you mean 'exp'?"


def test_infinite_discrete_latent_is_rejected():
    assert "cannot be summed out" in error("latent k ~ Poisson(3)").message


def test_python_names_are_reserved():
    assert "reserved" in error("data __import__: int").message
    assert "reserved" in error("data torch: int").message


def test_a_literal_size_of_zero_is_an_error_at_the_size():
    found = error("latent b[0] ~ Normal(0, 1)")
    assert found.message == "a size must be at least 1"
    assert (found.span.line, found.span.column) == (1, 10)


def test_more_subscripts_than_axes_allowed_is_an_error_at_the_first_extra_one():
    found = error("latent b[" + ", ".join(["2"] * 9) + "] ~ Normal(0, 1)")
    assert found.message == "more than 8 subscripts"
    assert found.span.column == len("latent b[") + 1 + 3 * 8


def test_a_value_gathered_into_more_than_eight_axes_is_an_error():
    found = error("data G: int<lower=0, upper=1>[2, 2]\nlet H = G[G]\nlet H2 = H[H]\nlet H3 = H2[H2]")
    assert found.message == "this value has 9 axes, more than 8"
    assert found.span.line == 4


def test_a_summed_out_latent_is_used_element_by_element_over_its_own_axes():
    model = check("data N: int\ndata y: real[N]\nlatent mu[2] ~ Normal(0, 1)\nlatent z[N] ~ Bernoulli(0.5)\n"
                  "let m[i] = mu[z[i]]\nobserve y[i] ~ Normal(m[i], 1)")
    assert [s.name for s in model.lets] == ["m"]


@pytest.mark.parametrize("use", ["sum(z)", "z[g[0]]", "z[0]", "m[0]"])
def test_a_summed_out_latent_used_whole_gathered_or_at_a_fixed_position_is_an_error(use):
    found = error("data N: int\ndata g: int<lower=0>[N]\nlatent z[N] ~ Bernoulli(0.5)\nlet m[i] = z[i] * 2\n"
                  f"latent a ~ Normal({use}, 1)")
    assert "is summed out element by element over [N]" in found.message
    assert found.span.line == 5


def test_a_summed_out_latent_without_axes_can_be_used_whole():
    model = check("data y: real\nlatent z ~ Bernoulli(0.5)\nobserve y ~ Normal(2 * z - 1, 1)")
    assert model.latents[0].enumerated


def test_a_number_argument_that_comes_to_infinity_is_an_error():
    found = error("latent a ~ Normal(0, 10^10^10)")
    assert found.message == "the scale of Normal comes to inf"


def test_folding_numbers_follows_float_arithmetic_without_raising():
    def folded(expression: str) -> float:
        return constants.constant_value(check(f"let a = {expression}").lets[0].value, {})

    assert folded("1 / 0") == math.inf
    assert math.isnan(folded("(-8) ^ 0.5"))  # not a complex number
    assert folded("10 ^ 10 ^ 10") == math.inf  # not ten billion digits


def test_only_an_index_array_used_itself_as_the_index_is_checked_when_the_data_load():
    model = check("data N: int\ndata J: int\ndata g: int[N]\ndata h: int[N]\ndata y: real[N]\n"
                  "latent a[J] ~ Normal(0, 1)\nobserve y[i] ~ Normal(a[g[i]] + a[h[i] - 1], 1)")
    assert model.index_arrays == {"g"}  # h - 1 is checked where it is computed, so 1-based h is fine


@pytest.mark.parametrize("count", ["n", "c[i]"])
def test_a_summed_out_binomial_needs_one_total_count_from_data(count):
    found = error("data N: int\ndata c: int<lower=0>[N]\nlatent n ~ Binomial(3, 0.5)\n"
                  f"latent m[i] ~ Binomial({count}, probs=c[i] / 10)")
    assert "its total_count must be one number, from data alone" in found.message
