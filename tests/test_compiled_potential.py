"""The compiled potential's peephole pass: it drops exactly the operations that return an operand unchanged."""

import torch
from torch.fx.experimental.proxy_tensor import make_fx

from compiler.inference import compiled_potential


def _operations(graph) -> list[str]:
    return [str(node.target) for node in graph.graph.nodes if node.op == "call_function"]


def _recorded(function, example):
    return compiled_potential._simplified(make_fx(function)(example))


def test_operations_that_return_their_operand_are_dropped():
    def function(x):
        return (-(-(x * 1 + 0 - 0.0) / 1) ** 1.0).detach().sum()

    x = torch.randn(4, dtype=torch.float64)
    graph = _recorded(function, x)
    assert _operations(graph) == ["aten.sum.default"]
    assert graph(x) == function(x)


def test_an_addition_that_changes_the_dtype_is_kept():
    def function(x):
        return x + 0.0

    x = torch.arange(3)
    graph = _recorded(function, x)
    assert graph(x).dtype == torch.get_default_dtype()
    assert _operations(graph) == ["aten.add.Tensor"]


def test_a_reshape_that_changes_the_shape_is_kept():
    def function(x):
        return x.view(2).expand(3, 2)

    x = torch.ones(1, 2)
    assert _operations(_recorded(function, x)) == ["aten.view.default", "aten.expand.default"]


def test_a_reshape_to_the_same_shape_is_dropped():
    def function(x):
        return x.view(2, 3).expand(2, 3) * 2

    x = torch.ones(2, 3)
    assert _operations(_recorded(function, x)) == ["aten.mul.Tensor"]


def test_arithmetic_that_changes_values_is_kept():
    def function(x):
        return (x * 2 + 1) ** 2

    x = torch.randn(3, dtype=torch.float64)
    graph = _recorded(function, x)
    assert len(_operations(graph)) == 3
    assert torch.equal(graph(x), function(x))
