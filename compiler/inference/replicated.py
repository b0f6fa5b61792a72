"""The fixed-draw ELBO's Hessian-vector products and per-draw gradients, batched in the
model rather than in autograd.

torch's batched backward pass (`is_grads_batched`) imports its symbolic-shapes module, and
sympy with it, the first time it runs: 0.43-0.55 s of CPU, more than the whole linear
response of a small model (radon's: 0.06 s without it). Here each of the n fixed draws is
evaluated once per vector v_j, all in one vectorised run of n b particles, and every
particle has parameters of its own: copies of the param store's, substituted for them
(`poutine.substitute`) in the shape the guide's distributions broadcast them to. The
gradient of the particles' summed loss with respect to the copies is each particle's own
gradient (with b = 1, the per-draw gradients); one more backward pass, of the sum over the
particles of <g_r, v_j(r)>, gives each particle's H_n v_j, whose mean over the draws is H v_j.

It applies where every parameter is a normal guide factor's (`params.normal_factors`): a
model's point parameters enter its arithmetic, where a copy per particle need not broadcast.
"""

from __future__ import annotations

import pyro
import torch
from pyro import poutine
from torch.distributions import Independent, Normal, TransformedDistribution, transform_to

from compiler.backend.build import CompiledModel
from compiler.inference import diagnose, params
from compiler.inference.elbo import TERMS_PER_STEP, computed_terms, per_draw_log_prob
from compiler.inference.fixed_draws import FixedDraws, FixedNoise, Scored, no_noise
from compiler.inference.records import Objective

PARTICLES = "replicated.particles"  # a dot: never a spec name
# Replicating the forward pass for every vector costs about twice the batched pass's arithmetic, so
# it pays only where the import it saves is the larger part: up to this many log-density terms (vectors
# x draws x terms a draw). Logistic regression, 10^4 rows x 5 predictors (3.8 million): 0.19 s for the
# whole linear response against 0.39-0.45 s batched; diamonds, 5,000 rows x 24 predictors (8.3 million):
# 1.0 s against 0.46 s batched once the import was paid.
REPLICATED_TERMS = 5_000_000


class Replicas:
    """The fixed-draw ELBO at the current parameters, one set of copies of them per particle."""

    def __init__(self, compiled: CompiledModel, objective: Objective, draws: FixedDraws, particles: int,
                 shapes: dict[str, torch.Size]):
        self.compiled, self.objective, self.draws, self.particles = compiled, objective, draws, particles
        self.shapes = shapes  # each parameter's broadcast shape, less its leading particle dim
        self.constraints = params.constraints()
        self.terms = max(computed_terms(compiled, objective.data), 1) * particles  # a run of the draws
        self.vectors_at_once = max(1, TERMS_PER_STEP // self.terms)

    @classmethod
    def of(cls, compiled: CompiledModel, objective: Objective, draws: FixedDraws, particles: int) -> Replicas | None:
        """None where some parameter is not a normal guide factor's."""
        nesting = compiled.ir.max_plate_nesting
        with torch.no_grad(), FixedNoise(draws.sites, no_noise), pyro.plate(PARTICLES, 1, dim=-(nesting + 1)):
            trace = poutine.trace(compiled.guide).get_trace(objective.data)
        shapes = {}
        for latent, (location, scale) in params.normal_factors(compiled).items():
            normal = _normal(trace.nodes[latent]["fn"]) if latent in trace.nodes else None
            if normal is None:
                return None
            shapes[location], shapes[scale] = normal.loc.shape[1:], normal.scale.shape[1:]
        return cls(compiled, objective, draws, particles, shapes) if set(shapes) == set(params.named()) else None

    def cheap_for(self, vectors: int) -> bool:
        """Whether products with this many vectors cost less here than batched autograd (REPLICATED_TERMS)."""
        return vectors * self.terms <= REPLICATED_TERMS

    def on(self, objective: Objective) -> Replicas:
        """The same at another objective (a sample of the rows)."""
        return Replicas(self.compiled, objective, self.draws, self.particles, self.shapes)

    def gradients(self) -> torch.Tensor:
        """(draws, parameters): each draw's gradient of its loss."""
        copies, losses = self._losses(1)
        return _flat(torch.autograd.grad(losses.sum(), copies), len(losses))

    def products(self, vectors: torch.Tensor) -> torch.Tensor:
        """Rows V (b, parameters) -> rows of H V, a few vectors a run (as many as TERMS_PER_STEP allow)."""
        return torch.cat([self._products(part) for part in vectors.split(self.vectors_at_once)])

    def hessian(self) -> torch.Tensor:
        """H in all the parameters' coordinates, symmetrised."""
        count = sum(value.numel() for value in params.named().values())
        hessian = self.products(torch.eye(count, dtype=torch.float64))
        return (hessian + hessian.T) / 2

    def _products(self, vectors: torch.Tensor) -> torch.Tensor:
        copies, losses = self._losses(len(vectors))
        at = vectors.device
        vectors = vectors.to(copies[0].device)
        gradients = torch.autograd.grad(losses.sum(), copies, create_graph=True)
        # (particle r = j n + i is draw i with vector j)
        directions = vectors.repeat_interleave(self.particles, dim=0).split([c[0].numel() for c in copies], dim=1)
        along = sum((g * d.reshape(g.shape)).sum() for g, d in zip(gradients, directions))
        rows = _flat(torch.autograd.grad(along, copies), len(losses))
        return rows.reshape(len(vectors), self.particles, -1).mean(1).to(at)

    def _losses(self, replicas: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The copies, (n b, *shape) each, and each particle's -(log p(x, z) - log q(z))."""
        count, nesting = self.particles * replicas, self.compiled.ir.max_plate_nesting
        copies, substituted = [], {}
        for name, value in params.named().items():
            copy = value.detach().expand((count,) + self.shapes[name]).clone().requires_grad_()
            copies.append(copy)
            substituted[name] = transform_to(self.constraints[name])(copy)

        def tiled(site: str, shape: torch.Size) -> torch.Tensor:
            drawn = self.draws.noise(site, torch.Size((self.particles,)) + shape[1:])
            return drawn.repeat((replicas,) + (1,) * (drawn.dim() - 1))

        data = self.objective.data
        with (FixedNoise(self.draws.sites, tiled), torch.random.fork_rng(), diagnose.checked_once(),
              pyro.plate(PARTICLES, count, dim=-(nesting + 1))):
            torch.manual_seed(self.draws.seed)  # (as `FixedDraws.active`: the same non-normal draws)
            guide_trace = poutine.trace(poutine.substitute(self.compiled.guide, data=substituted)).get_trace(data)
            model_trace = poutine.trace(poutine.replay(self.objective.model, guide_trace)).get_trace(data)
        return copies, per_draw_log_prob(guide_trace, count) - per_draw_log_prob(model_trace, count)


def _normal(fn) -> Normal | None:
    """The normal a guide factor draws through, its parameters broadcast as the plates broadcast them."""
    while isinstance(fn, Scored | Independent | TransformedDistribution):
        fn = fn.fn if isinstance(fn, Scored) else fn.base_dist
    return fn if isinstance(fn, Normal) else None


def _flat(parts, count: int) -> torch.Tensor:
    return torch.cat([part.reshape(count, -1) for part in parts], dim=1).detach()
