"""The one function table: spec function name -> how it maps shapes, and its torch code.

`shape` names the rule `check` applies; `torch` is the code template `codegen`
fills with the generated arguments (`{0}`, `{1}`, and `{axes}` for reductions).
"""

from __future__ import annotations

from dataclasses import dataclass

ELEMENTWISE = "elementwise"  # one argument; same shape out
VECTOR = "vector"  # one vector argument; same shape out (softmax)
REDUCE = "reduce"  # one argument; a scalar out
DOT = "dot"  # two vectors; a scalar out
CONSTRUCT = "construct"  # sizes in; an array of that shape out


@dataclass(frozen=True)
class Function:
    name: str
    arity: int | None  # None: one or more (constructors take one size per axis)
    shape: str
    torch: str


TABLE: dict[str, Function] = {
    f.name: f
    for f in (
        Function("exp", 1, ELEMENTWISE, "torch.exp({0})"),
        Function("log", 1, ELEMENTWISE, "torch.log({0})"),
        Function("log1p", 1, ELEMENTWISE, "torch.log1p({0})"),
        Function("expm1", 1, ELEMENTWISE, "torch.expm1({0})"),
        Function("sqrt", 1, ELEMENTWISE, "torch.sqrt({0})"),
        Function("abs", 1, ELEMENTWISE, "torch.abs({0})"),
        Function("sigmoid", 1, ELEMENTWISE, "torch.sigmoid({0})"),
        Function("logit", 1, ELEMENTWISE, "torch.logit({0})"),
        Function("tanh", 1, ELEMENTWISE, "torch.tanh({0})"),
        Function("softplus", 1, ELEMENTWISE, "torch.nn.functional.softplus({0})"),
        Function("softmax", 1, VECTOR, "torch.softmax({0}, -1)"),
        Function("sum", 1, REDUCE, "{0}.sum({axes})"),
        Function("mean", 1, REDUCE, "{0}.mean({axes})"),
        # The sample standard deviation (n - 1), as in Stan and R.
        Function("sd", 1, REDUCE, "{0}.std({axes}, correction=1)"),
        Function("dot", 2, DOT, "({0} * {1}).sum(-1)"),
        Function("ones", None, CONSTRUCT, "torch.ones({shape})"),
        Function("zeros", None, CONSTRUCT, "torch.zeros({shape})"),
    )
}
