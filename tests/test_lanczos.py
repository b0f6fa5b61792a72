"""Block Lanczos: H⁻¹ from Hessian-vector products, exact once its space holds every
direction in which the scaled Hessian is not the identity."""

from __future__ import annotations

import torch

from compiler.inference import lanczos
from compiler.inference.linear_response import DenseInverse


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _identity_plus_rank(dimension: int, rank: int) -> torch.Tensor:
    """A scaled Hessian as a hierarchical model's is: the identity but in `rank` directions."""
    directions = torch.randn((dimension, rank), generator=_generator(), dtype=torch.float64)
    return torch.eye(dimension, dtype=torch.float64) + directions @ directions.T / dimension


def _product(matrix: torch.Tensor):
    return lambda vectors: vectors @ matrix


def test_the_inverse_is_exact_when_the_hessian_is_the_identity_but_in_a_few_directions():
    scaled = _identity_plus_rank(300, 4)
    curvature = torch.linspace(1.0, 5.0, 300, dtype=torch.float64)
    hessian = curvature.sqrt()[:, None] * scaled * curvature.sqrt()
    columns = torch.arange(300)
    inverse = lanczos.inverse_hessian(_product(hessian), curvature, columns, _generator())
    assert inverse.converged
    assert len(inverse.basis) <= 2 * lanczos.BLOCK
    assert torch.allclose(inverse.block(columns), torch.linalg.inv(hessian), rtol=0, atol=1e-10)


def test_the_variances_are_the_diagonal_of_the_block():
    hessian = _identity_plus_rank(100, 3)
    columns = torch.arange(0, 100, 3)
    inverse = lanczos.inverse_hessian(_product(hessian), torch.ones(100, dtype=torch.float64), columns, _generator())
    assert torch.allclose(inverse.variances(columns), inverse.block(columns).diagonal())


def test_applying_the_inverse_solves_the_linear_system():
    hessian = _identity_plus_rank(200, 5)
    columns = torch.arange(200)
    inverse = lanczos.inverse_hessian(_product(hessian), torch.ones(200, dtype=torch.float64), columns, _generator())
    right_hand_sides = torch.randn((3, 200), generator=_generator(), dtype=torch.float64)
    assert torch.allclose(inverse.apply(right_hand_sides) @ hessian, right_hand_sides, atol=1e-10)


def test_an_indefinite_hessian_has_no_inverse():
    hessian = _identity_plus_rank(50, 2)
    hessian[0, 0] = -3.0
    columns = torch.arange(50)
    assert lanczos.inverse_hessian(_product(hessian), torch.ones(50, dtype=torch.float64), columns,
                                   _generator()) is None
    assert DenseInverse.of(hessian) is None


def test_a_run_that_spends_its_vectors_before_settling_says_so(monkeypatch):
    monkeypatch.setattr(lanczos, "MAX_VECTORS", lanczos.BLOCK)
    spread = torch.diag(torch.linspace(0.1, 10.0, 400, dtype=torch.float64))  # no cluster to settle on
    inverse = lanczos.inverse_hessian(_product(spread), torch.ones(400, dtype=torch.float64), torch.arange(400),
                                      _generator())
    assert not inverse.converged
