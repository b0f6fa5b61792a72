"""Phase 3: checked IR -> generated Pyro source -> callables."""

from __future__ import annotations

import ast
import inspect
import math
import re
from pathlib import Path

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample
from update_golden import GOLDEN, emitted, golden_file, golden_specs

from compiler import DataError, compile_file, compile_source
from compiler.backend.emitter import LINE_LIMIT

SPECS = Path(__file__).resolve().parent.parent / "specs"
EVERY_SPEC = pytest.mark.parametrize("spec", golden_specs(), ids=lambda path: path.stem)


@EVERY_SPEC
def test_generated_code_matches_its_golden_file(spec):
    """A change to generated code shows as a diff of tests/golden (`python tests/update_golden.py`)."""
    assert emitted(spec) == golden_file(spec).read_text()


def test_every_golden_file_belongs_to_a_spec():
    assert sorted(GOLDEN.rglob("*.py")) == sorted(golden_file(spec) for spec in golden_specs())


@EVERY_SPEC
@pytest.mark.parametrize("guide", ["normal", "native"])
def test_every_generated_line_is_within_the_line_limit(spec, guide):
    lines = compile_file(spec, guide=guide).code.source.splitlines()
    assert max(len(line) for line in lines) <= LINE_LIMIT


def plate_blocks(source: str, function: str) -> list[str]:
    tree = ast.parse(source)
    body = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == function)
    return [ast.unparse(node.items[0].context_expr) for node in ast.walk(body) if isinstance(node, ast.With)]


def test_consecutive_statements_under_one_plate_share_one_with_block(specs):
    assert plate_blocks(compile_file(specs / "mixture.ppl").code.source, "model") == ["K_plate", "N_plate"]


def test_a_statement_outside_the_plate_ends_the_with_block(specs):
    assert plate_blocks(compile_file(specs / "eight_schools.ppl").code.source, "model") == ["J_plate", "J_plate"]


def test_an_index_array_along_the_statements_plate_is_plain_indexing(specs):
    source = compile_file(specs / "radon.ppl").code.source
    assert "a[..., county]" in source and "Vindex" not in source


def test_an_index_that_carries_sample_dims_is_gathered_with_vindex(specs):
    assert "Vindex(rt.lift(mu, 1, 1))[..., rt.index(z, K)]" in compile_file(specs / "mixture.ppl").code.source


def test_a_number_index_into_a_latent_is_plain_indexing():
    program = compile_source("data N: int\ndata x: real[N]\ndata y: real[N]\nlatent b[2] ~ Normal(0, 1)\n"
                             "observe y ~ Normal(b[0] + b[1] * x, 1)")
    assert "b[..., 0, None, None] + b[..., 1, None, None] * x" in program.code.source
    assert "Vindex" not in program.code.source


def test_a_lift_of_a_lift_is_written_as_one():
    source = compile_file(SPECS / "posteriordb/radon_mn-radon_partially_pooled_noncentered.ppl").code.source
    assert "rt.lift(alpha, 1, 2)" in source and "rt.lift(rt.lift(" not in source


def test_a_spec_without_transformed_data_has_no_transform_data_function(specs):
    program = compile_file(specs / "coin.ppl")
    assert "transform_data" not in program.code.source and "transform_data" not in program.code.functions
    assert dict(program.load_data({"N": 2, "x": [1, 0]}))["N"] == 2


def test_generated_code_records_its_imports_helpers_and_data(specs):
    code = compile_file(specs / "mixture.ppl").code
    assert code.imports == ("import pyro", "import pyro.distributions as dist", "import torch",
                            "from pyro.distributions import constraints", "from pyro.ops.indexing import Vindex",
                            "from compiler.backend import runtime as rt")
    assert code.runtime_helpers == {"index", "lift", "uniform_init"}
    assert code.data_names == {"N", "K", "y"}


def test_guide_parameters_are_recorded_per_latent_for_each_family(specs):
    assert compile_file(specs / "coin.ppl").code.guide_parameters == {"f": ("f.loc", "f.scale")}
    assert compile_file(specs / "coin.ppl", guide="native").code.guide_parameters == {"f": ("f.alpha", "f.beta")}


def test_observe_statement_is_one_sample_site_inside_a_plate(specs):
    tree = ast.parse(compile_file(specs / "coin.ppl").code.source)
    model = next(f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "model")
    with_blocks = [node for node in ast.walk(model) if isinstance(node, ast.With)]
    (plate_block,) = with_blocks
    sites = [node for node in ast.walk(plate_block) if isinstance(node, ast.Call)
             and ast.unparse(node.func) == "pyro.sample" and ast.unparse(node.args[0]) == "'x'"]
    assert len(sites) == 1
    assert not any(isinstance(node, (ast.For, ast.While)) for node in ast.walk(tree))


def test_the_emitted_code_is_the_code_that_runs(specs):
    program = compile_file(specs / "coin.ppl")
    assert inspect.unwrap(program.model).__code__.co_filename.startswith("<pplc generated from")
    assert "pyro.sample(\"x\"" in program.code.source


# A guide parameter, a plate, a recurrence's previous elements, or an observation given a chain's states.
GENERATED_LOCAL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*_(plate|loc|scale|alpha|beta|concentration|rate|previous)_*"
                             r"|[A-Za-z_][A-Za-z0-9_]*_given_[A-Za-z_][A-Za-z0-9_]*")


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.ppl")) + sorted(SPECS.glob("posteriordb/*.ppl")),
                         ids=lambda path: path.stem)
def test_generated_code_uses_only_spec_names_numbers_and_the_fixed_runtime(path):
    """What reaches `exec` in backend.build: names are the spec's own, the fixed runtime's
    or locals derived from them; strings are site, plate and parameter names; no builtins."""
    allowed_roots = {"torch", "pyro", "dist", "constraints", "rt", "Vindex", "data", "MAX_PLATE_NESTING"}
    program = compile_file(path)
    tree = ast.parse(program.code.source)
    spec_names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", program.source.text))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef)) and ast.get_docstring(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            assert node.id in allowed_roots | spec_names or GENERATED_LOCAL.fullmatch(node.id), node.id
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            assert re.fullmatch(r"[A-Za-z0-9_]+(\.[a-z]+)?", node.value), node.value  # "195": a literal size
        assert not isinstance(node, (ast.Import, ast.ImportFrom)) or node.col_offset == 0


def test_log_joint_of_the_model_trace_is_log_p_x_f(specs):
    program = compile_file(specs / "coin.ppl")
    data = program.load_data()
    trace = poutine.trace(poutine.condition(program.model, {"f": torch.tensor(0.3)})).get_trace(data)
    x = torch.tensor([1.0] * 6 + [0.0] * 4)
    expected = dist.Beta(10.0, 10.0).log_prob(torch.tensor(0.3)) + dist.Bernoulli(0.3).log_prob(x).sum()
    assert torch.allclose(trace.log_prob_sum(), expected)


def test_guide_has_one_factor_per_continuous_latent(specs):
    program = compile_file(specs / "mixture.ppl")
    trace = poutine.trace(program.guide).get_trace(program.load_data())
    sampled = [name for name, site in trace.nodes.items()
               if site["type"] == "sample" and not site_is_subsample(site)]
    assert sampled == ["w", "mu", "sigma"]


def test_guide_parameters_have_readable_names(specs):
    program = compile_file(specs / "coin.ppl")
    program.guide(program.load_data())
    assert set(pyro.get_param_store().keys()) == {"f.loc", "f.scale"}


def test_the_compiled_model_names_the_parameters_its_guide_creates(specs):
    program = compile_file(specs / "mixture.ppl")
    program.guide(program.load_data())
    named = {name for names in program.compiled.guide_parameters.values() for name in names}
    assert named == set(pyro.get_param_store().keys()) and set(program.compiled.guide_parameters) == {"w", "mu", "sigma"}


def test_native_guide_uses_a_beta_for_a_unit_interval_latent(specs):
    program = compile_file(specs / "coin.ppl", guide="native")
    trace = poutine.trace(program.guide).get_trace(program.load_data())
    assert isinstance(trace.nodes["f"]["fn"], dist.Beta)
    assert program.code.guide_families == {"f": "Beta"}


def test_flat_prior_guide_starts_without_sampling_the_prior():
    program = compile_source("data N: int\ndata y: real[N]\nlatent m ~ Flat()\nlatent s ~ HalfFlat()\n"
                             "observe y[i] ~ Normal(m, s)")
    data = program.load_data({"y": [1.0, 2.0, 3.0]})
    trace = poutine.trace(program.guide).get_trace(data)
    assert torch.isfinite(trace.nodes["m"]["value"]) and trace.nodes["s"]["value"] > 0


def test_guide_locals_never_shadow_a_data_name_spelled_like_them():
    program = compile_source("data hi_scale: real\nlatent hi ~ Uniform(0, hi_scale)")
    data = program.load_data({"hi_scale": 50.0})
    pyro.get_param_store().setdefault("hi.loc", torch.tensor(0.0))  # q(hi) centred mid-interval
    value = poutine.trace(program.guide).get_trace(data).nodes["hi"]["value"]
    assert 20.0 < value < 30.0  # about 25 = 50 * sigmoid(0); the guide's scale 0.1 would give ~0.05


def test_statements_over_the_same_size_share_one_plate(specs):
    source = compile_file(specs / "eight_schools.ppl").code.source
    model_source = source[source.index("def model"):source.index("def guide")]
    assert model_source.count('pyro.plate("J"') == 1
    assert model_source.count("with J_plate:") == 2


def test_model_accepts_vectorised_particles(specs):
    program = compile_file(specs / "radon.ppl")
    data = program.load_data()
    with pyro.plate("particles", 7, dim=-2):
        trace = poutine.trace(poutine.replay(program.model, poutine.trace(program.guide).get_trace(data))
                              ).get_trace(data)
    assert trace.nodes["log_radon"]["fn"].batch_shape == (7, 900)


def transformed(spec: str, data: dict) -> dict:
    """The transformed data of a spec, as its generated `transform_data` computes them."""
    program = compile_source(spec)
    return dict(program.load_data(data))


def test_a_parenthesised_product_inside_a_function_or_a_product_keeps_its_parentheses():
    values = transformed("data N: int\ndata x: real[N]\ndata X: real[N, N]\nlet a = exp((x + 1) * (x + 2))\n"
                         "let b = (x + x) @ x\nlet c = exp(x @ x)\nlet d = (X + X) @ X",
                         {"x": [0.1, 0.2], "X": [[1.0, 2.0], [3.0, 4.0]]})
    x, X = torch.tensor([0.1, 0.2]), torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.allclose(values["a"], torch.exp((x + 1) * (x + 2)))
    assert torch.allclose(values["b"], (x + x) @ x)
    assert torch.allclose(values["c"], torch.exp(x @ x))
    assert torch.allclose(values["d"], (X + X) @ X)


def test_functions_apply_to_numbers_and_scalar_data():
    values = transformed("data v: real\ndata n: int\nlet a = sqrt(4)\nlet b = exp(v)\nlet c = abs(-n)\n"
                         "let d = log1p(n) + softplus(v)", {"v": 0.5, "n": 3})
    assert values["a"] == 2.0 and values["c"] == 3.0
    assert math.isclose(values["b"], math.exp(0.5))
    assert math.isclose(values["d"], math.log1p(3) + math.log1p(math.exp(0.5)))


def test_arithmetic_on_numbers_follows_torch_where_python_would_raise():
    values = transformed("data v: real\nlet a = 1 / v\nlet b = 10.0 ^ 400\nlet c = (-8.0) ^ v", {"v": 0.0})
    assert values["a"] == math.inf and values["b"] == math.inf and values["c"] == 1.0


def test_a_power_of_a_latent_times_an_array_is_padded_as_a_whole():
    program = compile_source("data N: int\ndata x: real[N]\ndata y: real[N]\nlatent a ~ Normal(0, 1)\n"
                             "observe y ~ Normal(a^2 * x, 1)")
    data = program.load_data({"x": [1.0, 2.0, 3.0], "y": [0.0, 0.0, 0.0]})
    a = torch.tensor([[0.5], [2.0]])  # two particles
    with pyro.plate("particles", 2, dim=-2):
        trace = poutine.trace(poutine.condition(program.model, {"a": a})).get_trace(data)
    assert torch.allclose(trace.nodes["y"]["fn"].loc, a**2 * torch.tensor([1.0, 2.0, 3.0]))


def test_a_computed_index_is_made_an_integer_and_checked_against_its_axis():
    program = compile_source("data N: int\ndata J: int\ndata g: int<lower=1>[N]\ndata w: real[J]\nlet wg = w[g - 1]")
    assert "rt.index(g - 1, J)" in program.code.source
    assert program.load_data({"J": 2, "g": [2, 1], "w": [5.0, 7.0]})["wg"].tolist() == [7.0, 5.0]
    with pytest.raises(DataError) as caught:
        program.load_data({"J": 2, "g": [2, 3], "w": [5.0, 7.0]})
    assert caught.value.message == ("cannot compute 'wg' from this data: index 2 is out of range for an axis of "
                                    "length 2")
    assert caught.value.span.line == 5


def test_an_index_array_checked_when_the_data_load_is_used_as_it_is():
    source = compile_file(SPECS / "radon.ppl").code.source
    assert "[..., county]" in source and "rt.index" not in source


def test_a_failing_transformed_data_statement_broken_over_lines_is_named():
    terms = " + ".join(["w[g - 1]"] * 12)
    program = compile_source(f"data N: int\ndata J: int\ndata g: int<lower=1>[N]\ndata w: real[J]\nlet wg = {terms}")
    assert max(len(line) for line in program.code.source.splitlines()) <= LINE_LIMIT
    with pytest.raises(DataError) as caught:
        program.load_data({"J": 2, "g": [2, 3], "w": [5.0, 7.0]})
    assert caught.value.message.startswith("cannot compute 'wg' from this data: index 2 is out of range")


def test_a_scalar_of_transformed_data_computed_from_numbers_is_a_tensor():
    """So that a chain of lets squaring it gives inf at once rather than ever longer Python integers."""
    values = transformed("let v0 = 2\n" + "".join(f"let v{k} = v{k - 1} * v{k - 1}\n" for k in range(1, 41)), {})
    assert isinstance(values["v0"], torch.Tensor) and values["v40"] == math.inf


def test_an_indexed_row_beside_a_whole_matrix_broadcasts_along_the_rows_as_numpy_does():
    program = compile_source("data K: int\ndata S: real[K, K]\nlet V[i] = S[i] + S\nlet W[i] = S * S[i]")
    S = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    values = program.load_data({"S": S.tolist()})
    assert torch.equal(values["V"], torch.stack([S[i] + S for i in range(2)]))
    assert torch.equal(values["W"], torch.stack([S * S[i] for i in range(2)]))
