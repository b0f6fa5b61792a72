"""The inverse of a Hessian too large to form, from Hessian-vector products: block Lanczos.

A dense Hessian costs two gradients per guide parameter, more than the fit itself
beyond a few hundred. But scaled by the mean-field guide's own curvature D (1/scale²
for a location: the mean-field optimum's condition; 2 for a log-scale: that of a
Gaussian), H̃ = D^-½ H D^-½ is the identity except in the few directions in which
the latents are correlated (a hierarchical model's globals with their groups, a
regression's coefficients with each other). Those are H̃'s extreme eigenvectors,
which a block Krylov space {V, H̃V, H̃²V, ...} from random V finds in a few steps:
the process behind conjugate gradients, kept whole so that one run serves every
latent. On the space's complement H̃ is taken as the identity:

    H⁻¹ ≈ D^-½ (Q T⁻¹ Qᵀ + I − Q Qᵀ) D^-½,    T = Qᵀ H̃ Q,

exact once the space holds every direction in which H̃ is not the identity
(tests/test_linear_response.py: a 400-group Gaussian hierarchy to 1e-6, and
radon's dense answer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

BLOCK = 16  # vectors a step: one batched double-backward pass
TOLERANCE = 5e-3  # the steps stop when no location's variance changed by more than this, relatively (sds: 0.25 %)
MAX_VECTORS = 512  # beyond, the run stops where it is, and says so
RANK_FLOOR = 1e-8  # a new direction shorter than this (relative) is already in the space


@dataclass(frozen=True)
class InverseHessian:
    """H⁻¹ in the factored form above."""

    scaling: torch.Tensor  # D^-½, (P,)
    basis: torch.Tensor  # Qᵀ, (k, P), orthonormal rows
    projected_inverse: torch.Tensor  # T⁻¹, (k, k)
    converged: bool

    def apply(self, vectors: torch.Tensor) -> torch.Tensor:
        """H⁻¹ v for each row v of `vectors`."""
        scaled = vectors * self.scaling
        coefficients = scaled @ self.basis.T
        inside = (coefficients @ self.projected_inverse - coefficients) @ self.basis
        return (scaled + inside) * self.scaling

    def block(self, columns: torch.Tensor) -> torch.Tensor:
        """The submatrix of H⁻¹ at `columns` (rows and columns)."""
        scaling, basis, correction = self._at(columns)
        return torch.diag(scaling**2) + basis.T @ correction @ basis

    def variances(self, columns: torch.Tensor) -> torch.Tensor:
        """The diagonal of `block(columns)`, without forming it."""
        scaling, basis, correction = self._at(columns)
        return scaling**2 + ((correction @ basis) * basis).sum(0)

    def _at(self, columns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        scaling = self.scaling[columns]
        identity = torch.eye(len(self.projected_inverse), dtype=scaling.dtype)
        return scaling, self.basis[:, columns] * scaling, self.projected_inverse - identity


def inverse_hessian(product: Callable[[torch.Tensor], torch.Tensor], curvature: torch.Tensor,
                    columns: torch.Tensor, generator: torch.Generator) -> InverseHessian | None:
    """H⁻¹ from `product` (rows V -> rows of HV), with `curvature` the diagonal D that
    scales H; None where H is not positive definite on the space explored. The steps go
    on until the variances at `columns` settle (TOLERANCE) or MAX_VECTORS are spent. They
    start at `columns`: the rest of H̃ (the log-scales, noisy with the fixed draws) enters the
    space only as far as it is coupled to them."""
    scaling = curvature.rsqrt()
    dimension = scaling.numel()
    def scaled_product(vectors: torch.Tensor) -> torch.Tensor:
        return product(vectors * scaling) * scaling

    start = torch.zeros((min(BLOCK, len(columns)), dimension), dtype=torch.float64)
    start[:, columns] = torch.randn((len(start), len(columns)), generator=generator, dtype=torch.float64)
    basis = _orthonormal(start, start.norm(dim=1).max())
    latest = products = scaled_product(basis)
    previous = None
    while True:
        projected = basis @ products.T
        factor, failed = torch.linalg.cholesky_ex((projected + projected.T) / 2)
        if failed:
            return None
        newest = _orthonormal(_outside(latest, basis), latest.norm(dim=1).max())
        inverse = InverseHessian(scaling, basis, torch.cholesky_inverse(factor), converged=len(newest) == 0)
        variances = inverse.variances(columns)
        settled = previous is not None and ((variances - previous).abs() / previous).max() <= TOLERANCE
        if settled or inverse.converged:
            return InverseHessian(scaling, basis, inverse.projected_inverse, converged=True)
        if len(basis) + len(newest) > min(MAX_VECTORS, dimension):
            return inverse
        previous = variances
        latest = scaled_product(newest)
        basis, products = torch.cat([basis, newest]), torch.cat([products, latest])


def _outside(vectors: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """`vectors` less their part in the basis's span (twice: one pass leaves rounding's share)."""
    for _ in range(2):
        vectors = vectors - (vectors @ basis.T) @ basis
    return vectors


def _orthonormal(vectors: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Orthonormal rows spanning `vectors`' rows, less the directions in which they are
    shorter than RANK_FLOOR x `reference` (already in the space, but for rounding)."""
    _, lengths, directions = torch.linalg.svd(vectors, full_matrices=False)
    return directions[lengths > RANK_FLOOR * reference]
