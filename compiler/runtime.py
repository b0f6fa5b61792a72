"""The fixed runtime that generated code may call, besides torch and pyro.

Kept tiny on purpose: generated code should read like hand-written Pyro.
"""

from __future__ import annotations

import torch


def position(size: int, dim: int) -> torch.Tensor:
    """0..size-1 laid out along plate `dim`, to gather with an index variable."""
    return torch.arange(size).reshape((-1,) + (1,) * (-dim - 1))


def initial(value, shape: tuple[int, ...]) -> torch.Tensor:
    """A param's initial value, broadcast to its declared shape."""
    return torch.as_tensor(value, dtype=torch.get_default_dtype()).expand(shape).clone()


def lift(value: torch.Tensor, rank: int, plates: int) -> torch.Tensor:
    """Insert `plates` unit dims just left of a value's own `rank` dims, so the
    value broadcasts against a statement's plate dims and not across them."""
    split = value.dim() - rank
    return value.reshape(value.shape[:split] + (1,) * plates + value.shape[split:])


def matvec(matrix: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """matrix @ vector, broadcasting any dims left of the matrix and the vector."""
    return (matrix @ vector.unsqueeze(-1)).squeeze(-1)


def vecmat(vector: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    return (vector.unsqueeze(-2) @ matrix).squeeze(-2)


def uniform_init(shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform on (-2, 2): Stan's default initialisation on the unconstrained scale."""
    return torch.rand(shape) * 4 - 2
