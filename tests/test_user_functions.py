"""User functions (`fun hill(x, k, n) = ...`): a call is the body with the arguments put in.

A model written with functions is the model written out by hand: the same log joint at any
point, the same generated code. Each call is typed on its own arguments (a scalar or a
vector), and every mistake is a spec error located where it is made."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pyro import poutine

from compiler import PplError, compile_source
from compiler.frontend import user_functions

pytestmark = pytest.mark.usefixtures("float64")  # as pplc computes

DATA = """
data N: int
data dose: real<lower=0>[N]
data y: real[N]
latent top ~ Normal(0, 10)
latent k ~ LogNormal(0, 1)
latent n ~ LogNormal(0, 1)
latent sigma ~ HalfNormal(1)
"""

WITH_FUNCTIONS = """
fun hill(x, k, n) = x ^ n / (k ^ n + x ^ n)
fun scaled_hill(top, x, k, n) = top * hill(x, k, n)
""" + DATA + """
let curve = scaled_hill(top, dose, k, n)
observe y[i] ~ Normal(scaled_hill(top, dose[i], k, n), sigma)
factor shrink = -hill(k, 1, 2)
"""

WRITTEN_OUT = DATA + """
let curve = top * (dose ^ n / (k ^ n + dose ^ n))
observe y[i] ~ Normal(top * (dose[i] ^ n / (k ^ n + dose[i] ^ n)), sigma)
factor shrink = -(k ^ 2 / (1 ^ 2 + k ^ 2))
"""


def _log_joint(program, data: dict, values: dict[str, float]) -> float:
    conditioned = poutine.condition(program.compiled.model, {k: torch.tensor(v) for k, v in values.items()})
    return poutine.trace(conditioned).get_trace(program.load_data(data)).log_prob_sum().item()


def test_a_model_written_with_functions_has_the_log_joint_of_the_model_written_out():
    generator = np.random.default_rng(20)
    data = {"N": 12, "dose": generator.uniform(0.1, 5, 12).tolist(), "y": generator.normal(1, 1, 12).tolist()}
    with_functions, written_out = compile_source(WITH_FUNCTIONS), compile_source(WRITTEN_OUT)
    for _ in range(3):
        values = {"top": generator.normal(0, 3), "k": generator.lognormal(), "n": generator.lognormal(),
                  "sigma": generator.uniform(0.2, 2)}
        assert _log_joint(with_functions, data, values) == _log_joint(written_out, data, values)


def test_a_call_compiles_to_the_expression_written_out():
    assert compile_source(WITH_FUNCTIONS).code.source == compile_source(WRITTEN_OUT).code.source


def test_a_function_is_typed_at_each_call_on_its_arguments_shapes():
    model = compile_source(WITH_FUNCTIONS).ir
    curve = next(s for s in model.statements if s.name == "curve")
    observe = next(s for s in model.statements if s.name == "y")
    assert curve.shape == ("N",)  # hill(dose, ...): a vector, as dose is
    assert observe.distribution.arguments[0][1].type.shape == ()  # hill(dose[i], ...): a number per row


def test_a_function_in_an_ode_derivative_is_the_derivative_written_out():
    ode = """
data T: int
data ts: real[T]
latent k ~ LogNormal(0, 1)
ode dz(t, z) = {derivative}
let z = solve(dz, [1.0, 0.0], 0, ts)
"""
    with_function = "fun decay(rate, amount) = -rate * amount\n" + ode.format(
        derivative="[decay(k, z[0]), -decay(k, z[0]) + decay(k, z[1])]")
    written_out = ode.format(derivative="[-k * z[0], -(-k * z[0]) + -k * z[1]]")
    assert compile_source(with_function).code.source == compile_source(written_out).code.source


def test_arguments_whose_shapes_do_not_fit_the_body_are_an_error_at_the_call_naming_the_function():
    spec = "fun ratio(x, k) = x / (k + x)\ndata N: int\ndata M: int\ndata a: real[N]\ndata b: real[M]\n" \
           "let r = 2 * ratio(a, b)\n"
    with pytest.raises(PplError, match=r"^in ratio\(\.\.\.\), defined on line 1: shapes \[M\] and \[N\]") as error:
        compile_source(spec)
    assert (error.value.span.line, error.value.span.column) == (6, 13)


def _error(spec: str) -> PplError:
    with pytest.raises(PplError) as error:
        compile_source(spec)
    return error.value


@pytest.mark.parametrize("spec, line, column, message, hint", [
    ("fun f(x, k) = x * k\ndata d: real\nlet h = f(d)\n", 3, 9, "f takes 2 arguments, got 1",
     "it is defined on line 1: f(x, k)"),
    ("fun f(x) = x\ndata d: real\nlet h = f(x=d)\n", 3, 11, "f takes no keyword arguments", "pass them in order: f(x)"),
    ("fun f(x) = x > 1 ? f(x - 1) : x\n", 1, 20, "f calls itself", "functions cannot be recursive"),
    ("fun f(x) = g(x)\nfun g(x) = f(x)\n", 1, 12, "g is used before its definition (line 2)",
     "define a function above every statement that calls it"),
    ("data d: real\nlet h = f(d)\nfun f(x) = x\n", 2, 9, "f is used before its definition (line 3)",
     "define a function above every statement that calls it"),
    ("fun exp(x) = x\n", 1, 5, "'exp' is a built-in function", "cannot replace a built-in one"),
    ("fun Normal(x) = x\n", 1, 5, "'Normal' is a built-in distribution", "cannot replace a built-in one"),
    ("fun f(x) = Normal(x, 1)\n", 1, 12, "'Normal' is a distribution, but a function's body is an expression",
     "draw with `~` where f is called"),
    ("fun f(x) = x * k\nlatent k ~ LogNormal(0, 1)\n", 1, 16, "'k' is not a parameter of f",
     "a function sees only its parameters: make it one, fun f(x, k) = ..."),
    ("fun f(x, x) = x\n", 1, 10, "'x' names two parameters of f", "give each parameter its own name"),
    ("latent k ~ LogNormal(0, 1)\nfun k(x) = x\n", 2, 5, "'k' is already declared on line 1",
     "each name is declared once"),
    ("fun hill(x, k) = x / (k + x)\ndata d: real\nlet h = hil(d, 1)\n", 3, 9, "unknown function 'hil'",
     "did you mean 'hill'?"),
    ("fun f(x) = foo(x)\n", 1, 12, "unknown function 'foo'", "see docs/language.md for the function table"),
    ("fun f(x) = lambda\n", 1, 12, "'lambda' is not a parameter of f", "make it a parameter: fun f(x, lambda)"),
    ("fun f(x) = 2 * x\ndata d: real\nlet h = f + d\n", 3, 9, "'f' is a function, not a value",
     "call it with its arguments: f(...)"),
], ids=["arity", "keyword", "recursion", "mutual recursion", "call above the definition", "shadows a function",
        "shadows a distribution", "a distribution as body", "a spec name in the body", "a parameter twice",
        "a name declared twice", "a misspelt user function", "an unknown function in a body", "unknown name",
        "a function as a value"])
def test_a_mistake_with_a_function_is_a_spec_error_where_it_is_made(spec, line, column, message, hint):
    error = _error(spec)
    assert (error.span.line, error.span.column, error.message) == (line, column, message)
    assert hint in error.hint


def test_an_unknown_function_far_from_every_user_function_keeps_the_checkers_hint():
    error = _error("fun hill(x, k) = x / (k + x)\ndata d: real[3]\nlet h = logsumexp(d)\n")
    assert (error.message, error.hint) == ("unknown function 'logsumexp'", "did you mean 'log_sum_exp'?")


def test_functions_that_multiply_their_size_at_each_level_are_refused_before_they_are_built():
    levels = "".join(f"fun f{level}(x) = f{level - 1}(x) + f{level - 1}(x) + f{level - 1}(x)\n"
                     for level in range(1, 16))
    error = _error("fun f0(x) = x\n" + levels)
    assert error.message.startswith("putting in the bodies of the functions makes the spec more than")
    assert error.span.line < 16


def test_a_call_that_would_nest_too_deep_is_refused_at_the_call():
    levels = "".join(f"fun f{level}(x) = 1 + f{level - 1}(x)\n" for level in range(1, 120))
    error = _error("fun f0(x) = x\n" + levels)
    assert "nested more than 100 deep" in error.message


def test_a_spec_without_functions_is_checked_as_it_was_parsed():
    from compiler.errors import Source
    from compiler.frontend.parse import parse_program

    program = parse_program(Source("s.ppl", DATA))
    assert user_functions.inline_functions(program) is program
