"""pplc uses torch's and Pyro's public APIs only: each name below is a private part of
one of them that pplc once reached into (or could), and none may appear in compiler/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "compiler"

PRIVATE = [  # regular expressions
    r"_standard_normal",  # torch.distributions.normal's noise source
    "_PYRO_STACK",  # Pyro's effect-handler stack
    r"pyro\.poutine\.runtime",  # where that stack lives
    r"__dynamo",  # torch's compile-disable cache
    r"torch\._[A-Za-z]",  # any private torch module (torch._dynamo, torch._C ...)
    "n_iter",  # torch.optim.LBFGS's iteration count in its state
    r"\.state\[",  # optimizer state keys
    r"[\"']_deterministic[\"']",  # Pyro's internal flag on pyro.deterministic sites
    "UnconditionMessenger",  # the class behind it
    "param_groups",  # torch.optim internals changed between steps
]


@pytest.mark.parametrize("name", PRIVATE)
def test_no_private_torch_or_pyro_name_appears_in_the_compiler(name):
    found = [f"{path.relative_to(PACKAGE.parent)}:{number}"
             for path in sorted(PACKAGE.rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if re.search(name, line)]
    assert not found, f"{name!r} appears in {found}"
