"""Linear-response covariances at the deterministic-ADVI optimum.

The mean-field guide's scales are the mean-field optimum's, far below the
posterior's sds wherever latents are correlated. Its means are right, and the
curvature of the fixed-draw objective around them carries the correlations:
with H the Hessian of the negative ELBO at the fixed draws in all the guide's
unconstrained parameters (locations m and log-scales), the linear-response
covariance of the unconstrained latents is the m-block of H⁻¹ (Giordano,
Broderick & Jordan, JMLR 2018; with fixed draws: Giordano, Ingram &
Broderick, JMLR 2024). It is exact for a Gaussian posterior, whatever the
number of antithetic draws; for others PSIS reweighting (`importance`) mends
what is left.

The same papers' frequentist check says whether the fixed draws are enough:
the sandwich H⁻¹ V H⁻¹ / M, with V the covariance of the per-draw gradients
over the M antithetic pairs, is the sampling covariance of the optimum over
the choice of draws; where its sd for some location exceeds DRAW_ERROR of that
latent's posterior sd, the fit is repeated with twice the draws.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import pyro
import torch
from pyro import poutine

from compiler.backend.build import CompiledModel
from compiler.inference import diagnose, lanczos, params, sampled_rows
from compiler.inference.elbo import observed_terms, per_draw_log_prob
from compiler.inference.fixed_draws import FixedDraws
from compiler.inference.records import Objective, SampledRows
from compiler.inference.replicated import Replicas

# A Hessian row costs about two gradients; beyond this many unconstrained parameters the
# dense Hessian would cost more than a typical fit (radon's 89 latents, 180 parameters,
# took as long as its fit), and H⁻¹ comes from Hessian-vector products instead (`lanczos`).
MAX_PARAMETERS = 600
# The report's Gaussian is dense in the latents' coordinates: 4,000 of them take 128 MB and
# a Cholesky of about a second; beyond, the report keeps the mean-field covariance and says so.
MAX_COORDINATES = 4000
DRAW_ERROR = 0.1  # the largest sampling sd of a location, in posterior sds, that the fixed draws may leave
ROWS_AT_ONCE = 16  # Hessian rows per batched backward pass
FINITE_STEP = 1e-5
# Where two gradients per parameter cost at most this many log-density terms, the Hessian is
# differenced and the per-draw gradients taken one backward pass each (the coin, the small
# regressions: a few milliseconds); beyond, batched backward passes are far cheaper, and the
# compiler's import they bring is small beside them (diamonds, 52 parameters x 5,000 rows:
# 6 s batched against over 200 s differenced on a loaded machine).
DIFFERENCED_TERMS = 5_000_000
# LR is exact for a Gaussian posterior whatever the number of antithetic pairs, so the Hessian
# need not see all of a large fit's: on radon (90 pairs) 16 gave the same sds (within 1.5 %, the
# Monte Carlo error of the reported sds)
HESSIAN_PAIRS = 16


@dataclass(frozen=True)
class Block:
    """Where one latent's unconstrained coordinates sit in the flat vector."""

    latent: str
    start: int
    shape: tuple[int, ...]  # the shape of its guide factor's location

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Gaussian:
    """A Gaussian over the flat unconstrained coordinates of the normal guide factors (or of a joint guide)."""

    blocks: tuple[Block, ...]
    mean: torch.Tensor  # (D,)
    scale_tril: torch.Tensor  # (D, D)
    kind: str  # "linear-response" | "mean-field"; a joint guide's own: "full-rank" | "low-rank"
    rows: SampledRows | None = None  # where the covariance was measured on samples of the rows; None: every row

    @property
    def dim(self) -> int:
        return self.mean.numel()

    def sample(self, count: int, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn((count, self.dim), generator=generator, dtype=torch.float64)
        return self.mean + noise @ self.scale_tril.T

    def log_prob(self, values: torch.Tensor) -> torch.Tensor:
        # MultivariateNormal's density, written out: constructing one imports sympy (torch's
        # broadcast_shapes), 0.4 s of a small model's whole run (tests/test_linear_response.py).
        # One solve with the draws as columns: batched along them, each draw got its own copy of
        # the D x D factor (0.22 s a chunk of 40 draws at D = 1,004, against milliseconds).
        centred = (values - self.mean).reshape(-1, self.dim).T
        whitened = torch.linalg.solve_triangular(self.scale_tril, centred, upper=False).T.reshape(values.shape)
        return (-0.5 * (whitened ** 2).sum(-1) - self.scale_tril.diagonal().log().sum()
                - 0.5 * self.dim * math.log(2 * math.pi))


@dataclass(frozen=True)
class LinearResponse:
    """The corrected Gaussian (None where H is not positive definite), and the sampling sd
    of the fitted locations over the choice of draws, in posterior sds (the largest)."""

    gaussian: Gaussian | None
    draw_error: float
    converged: bool  # False: `lanczos` spent its vectors before the variances settled


def blocks(compiled: CompiledModel) -> tuple[Block, ...]:
    """The normal guide factors' locations laid end to end, in the guide's order."""
    located, found, start = params.locations(compiled), [], 0
    for latent in compiled.ir.guided_latents:
        if latent.name in located:
            shape = tuple(located[latent.name].shape)
            found.append(Block(latent.name, start, shape))
            start += math.prod(shape)
    return tuple(found)


def mean_field(compiled: CompiledModel) -> Gaussian:
    """The fitted mean-field guide as a Gaussian over the same coordinates."""
    layout = blocks(compiled)
    located, scaled = params.locations(compiled), params.scales(compiled)
    mean = torch.cat([located[b.latent].detach().reshape(-1) for b in layout])
    scale = torch.cat([scaled[b.latent].detach().reshape(-1) for b in layout])
    return Gaussian(layout, mean, torch.diag(scale), "mean-field")


def measure(compiled: CompiledModel, objective: Objective, draws: FixedDraws, particles: int) -> LinearResponse:
    """H at the current (fitted) parameters, from the fit's own fixed draws: their first
    HESSIAN_PAIRS antithetic pairs, which give the same covariance at a fraction of the cost.
    Up to MAX_PARAMETERS guide parameters H is formed and inverted; beyond, `lanczos` finds
    H⁻¹ from Hessian-vector products."""
    units = particles // 2 if particles % 2 == 0 and particles > 2 else particles
    if particles % 2 == 0 and particles > 2 * HESSIAN_PAIRS:
        draws, particles = draws.first_pairs(HESSIAN_PAIRS), 2 * HESSIAN_PAIRS
    layout = blocks(compiled)
    names = list(params.named())
    parameters = [params.named()[name] for name in names]
    count = sum(p.numel() for p in parameters)
    small = _small(compiled, objective, count, particles)
    locations = _location_columns(compiled, names, parameters, layout)
    sampled, rows = None, objective
    replicas = Replicas.of(compiled, objective, draws, particles)
    if count > MAX_PARAMETERS:
        loss = functools.partial(_mean_loss, compiled, objective, draws, particles)
        product = replicas.products if replicas and replicas.cheap_for(lanczos.BLOCK) else _hessian_product(
            loss, parameters)
        inverse = lanczos.inverse_hessian(product, params.mean_field_curvature(compiled), locations,
                                          torch.Generator().manual_seed(0))
    else:
        hessian, sampled, rows = _hessian(compiled, objective, draws, particles, parameters, locations, small,
                                          replicas)
        inverse = DenseInverse.of(hessian)
    if inverse is None:
        return LinearResponse(None, math.nan, True)
    covariance = inverse.block(locations)
    scale_tril, failed = torch.linalg.cholesky_ex(covariance)
    if failed:
        return LinearResponse(None, math.nan, True)
    mean = torch.cat([params.locations(compiled)[b.latent].detach().reshape(-1) for b in layout])
    # (on a sample of the rows where H was: the draws' gradients differ by sums over rows of coherent
    # terms, which a sample of m rows scaled up keeps to a relative error of about 1 / sqrt(m))
    if replicas:  # (one backward pass, where autograd takes one a draw or a batched one)
        per_draw = replicas.on(rows).gradients()
    else:
        per_draw = _per_draw_gradients(per_draw_losses(compiled, rows, draws, particles), parameters, batched=not small)
    draw_error = (_sampling_variances(inverse, per_draw, units, locations).clamp(min=0).sqrt()
                  / covariance.diagonal().sqrt()).max().item()
    return LinearResponse(Gaussian(layout, mean, scale_tril, "linear-response", sampled), draw_error,
                          inverse.converged)


def _hessian(compiled: CompiledModel, objective: Objective, draws: FixedDraws, particles: int,
             parameters: list[torch.Tensor], locations: torch.Tensor,
             differenced: bool, replicas: Replicas | None) -> tuple[torch.Tensor, SampledRows | None, Objective]:
    """H in all the parameters' coordinates: on samples of the rows where the data are large
    enough for their error to allow it (`sampled_rows`), else on every row; and the objective of
    one sample, or of every row. Differenced where the whole data's would be (`_small`: some
    second derivatives load torch's compiler), else from `replicated` particles where every
    parameter is a normal factor's and the model is cheap enough to replicate, else by batched
    autograd."""
    def of(part: Objective) -> torch.Tensor:
        loss = functools.partial(_mean_loss, compiled, part, draws, particles)
        if differenced:
            return _hessian_by_differences(loss, parameters)
        replicated = replicas.on(part) if replicas else None
        if replicated and replicated.cheap_for(sum(p.numel() for p in parameters)):
            return replicated.hessian()
        return _hessian_by_autograd(loss, parameters)

    def sds(hessian: torch.Tensor) -> torch.Tensor | None:
        inverse = DenseInverse.of(hessian)
        return None if inverse is None else inverse.block(locations).diagonal().sqrt()

    found = sampled_rows.hessian(compiled, objective, of, sds, torch.Generator().manual_seed(0))
    return (of(objective), None, objective) if found is None else (found.hessian, found.sampled, found.sample)


def _small(compiled: CompiledModel, objective: Objective, count: int, particles: int) -> bool:
    """Whether two gradients per parameter are cheap enough to difference (DIFFERENCED_TERMS)."""
    return 2 * count * particles * observed_terms(compiled, objective.data) <= DIFFERENCED_TERMS


def _mean_loss(compiled: CompiledModel, objective: Objective, draws: FixedDraws, particles: int) -> torch.Tensor:
    return per_draw_losses(compiled, objective, draws, particles).mean()


@dataclass(frozen=True)
class DenseInverse:
    """H⁻¹ formed whole."""

    matrix: torch.Tensor
    converged: bool = True

    @classmethod
    def of(cls, hessian: torch.Tensor) -> DenseInverse | None:
        factor, failed = torch.linalg.cholesky_ex(hessian)
        return None if failed else cls(torch.cholesky_inverse(factor))

    def apply(self, vectors: torch.Tensor) -> torch.Tensor:
        return vectors @ self.matrix

    def block(self, columns: torch.Tensor) -> torch.Tensor:
        return self.matrix[columns][:, columns]


def per_draw_losses(compiled: CompiledModel, objective: Objective, draws: FixedDraws, particles: int) -> torch.Tensor:
    """-(log p(x, z_n) - log q(z_n)) for each fixed draw z_n: their mean is the fit's loss."""
    nesting = compiled.ir.max_plate_nesting
    with draws.active(), diagnose.checked_once(), pyro.plate("particles", particles, dim=-(nesting + 1)):
        guide_trace = poutine.trace(compiled.guide).get_trace(objective.data)
        model_trace = poutine.trace(poutine.replay(objective.model, guide_trace)).get_trace(objective.data)
    return per_draw_log_prob(guide_trace, particles) - per_draw_log_prob(model_trace, particles)


def _hessian_by_autograd(loss, parameters: list[torch.Tensor]) -> torch.Tensor:
    """The Hessian of `loss()` in all the parameters' coordinates: ROWS_AT_ONCE rows a batched
    double-backward pass."""
    gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss(), parameters, create_graph=True)])
    hessian = torch.cat([_rows(gradient, parameters, basis)
                         for basis in torch.eye(gradient.numel(), dtype=gradient.dtype).split(ROWS_AT_ONCE)])
    return (hessian + hessian.T) / 2


def _hessian_by_differences(loss, parameters: list[torch.Tensor]) -> torch.Tensor:
    """The same Hessian by central differences of the gradient: first-order backward passes
    only, because some of torch's second derivatives load its compiler, whose import alone
    costs more than a small model's whole fit. Steps of FINITE_STEP x max(1, |coordinate|)
    leave errors near 1e-9 of the curvature (the conjugate regression's covariance comes out
    exact to 1e-6, tests/test_linear_response.py)."""
    flat = [p.view(-1) for p in parameters]
    columns = []
    for which, values in enumerate(flat):
        for k in range(values.numel()):
            original = values[k].item()
            step = FINITE_STEP * max(1.0, abs(original))
            with torch.no_grad():
                values[k] = original + step
            ahead = _gradient(loss, parameters)
            with torch.no_grad():
                values[k] = original - step
            behind = _gradient(loss, parameters)
            with torch.no_grad():
                values[k] = original
            columns.append((ahead - behind) / (2 * step))
    hessian = torch.stack(columns, dim=1)
    return (hessian + hessian.T) / 2


def _gradient(loss, parameters: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss(), parameters, allow_unused=True,
                                                                 materialize_grads=True)])


def _rows(outputs: torch.Tensor, parameters: list[torch.Tensor], basis: torch.Tensor,
          batched: bool = True) -> torch.Tensor:
    """The vector-Jacobian products of `outputs` with each row of `basis`: one batched backward
    pass, or one pass a row (batching loads torch's compiler, whose import costs more than a
    small model's whole Hessian: DIFFERENCED_TERMS)."""
    if not batched:
        # (a scalar per row, not grad_outputs=row, for which torch imports sympy to check shapes)
        return torch.stack([torch.cat([part.reshape(-1) for part in torch.autograd.grad(
            (outputs * row).sum(), parameters, retain_graph=True, allow_unused=True, materialize_grads=True)])
            for row in basis]).detach()
    parts = torch.autograd.grad(outputs, parameters, grad_outputs=basis, is_grads_batched=True, retain_graph=True,
                                allow_unused=True, materialize_grads=True)
    return torch.cat([part.reshape(len(basis), -1) for part in parts], dim=1).detach()


def _per_draw_gradients(losses: torch.Tensor, parameters: list[torch.Tensor], batched: bool) -> torch.Tensor:
    """(draws, parameters): the gradient of each draw's loss."""
    return torch.cat([_rows(losses, parameters, basis, batched)
                      for basis in torch.eye(losses.numel(), dtype=losses.dtype).split(ROWS_AT_ONCE)])


def _sampling_variances(inverse: DenseInverse | lanczos.InverseHessian, per_draw: torch.Tensor, units: int,
                        columns: torch.Tensor) -> torch.Tensor:
    """The diagonal, at `columns`, of H⁻¹ V H⁻¹ / M for the fit's M antithetic pairs (the
    independent units of its draws), V the covariance of the per-pair gradients over the
    pairs measured here: the variance over those pairs of H⁻¹ times their gradients."""
    count = per_draw.shape[0]
    pairs = (per_draw[: count // 2] + per_draw[count // 2:]) / 2 if count % 2 == 0 and count > 2 else per_draw
    if len(pairs) < 2:
        return torch.full((len(columns),), math.inf, dtype=per_draw.dtype)
    return inverse.apply(pairs)[:, columns].var(dim=0) / units


def _hessian_product(loss, parameters: list[torch.Tensor]):
    """Rows V -> rows of HV, by batched double backward through one gradient."""
    gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss(), parameters, create_graph=True)])
    return lambda vectors: _rows(gradient, parameters, vectors)


def _location_columns(compiled: CompiledModel, names: list[str], parameters: list[torch.Tensor],
                      layout: tuple[Block, ...]) -> torch.Tensor:
    """The positions of the locations (in `layout`'s order) among all the parameters' coordinates."""
    offsets, start = {}, 0
    for name, value in zip(names, parameters):
        offsets[name] = start
        start += value.numel()
    factors = params.normal_factors(compiled)
    return torch.cat([torch.arange(offsets[factors[b.latent][0]], offsets[factors[b.latent][0]] + b.size)
                      for b in layout])
