"""Minibatch gradients with most of their noise taken out: a control variate.

A batch of B rows scaled up by s = N / B estimates the split log-likelihood
l(z) without bias, but its gradient's noise grows with N: at N = 10^6 and
B = 10^4 it is ten times the gradient of a step of one posterior sd, and Adam
stops long before the noise has averaged out. SVRG's correction (Johnson &
Zhang, NeurIPS 2013), applied to the latents z, removes it. With an anchor
point z~ and the full-data value l(z~) and gradient G there (one pass over all
the rows, a chunk at a time), each step scores

    l^(z) = l(z~) + G (z - z~) + s [l_B(z) - l_B(z~) - g_B (z - z~)]

where l_B and g_B are the batch's log-likelihood and gradient. Its expectation
over batches is l(z) whatever the anchor, so the ELBO stays unbiased; what is
left of the noise is the batch's departure from its own linearisation at z~,
which vanishes as z nears z~. At large N the posterior is narrow, and with the
anchor at the guide's centre z stays within a few posterior sds of it: the
noise falls by about sqrt(N) (measured in docs/scaling.md).

The anchor moves to the guide's centre again every `anchor_every` steps, so
that a pass over all the rows costs no more than the steps between passes. Models with point parameters or enumerated latents, and data plates
split more than one way, keep plain minibatches (`applies`): the correction
would need linearising in the parameters or summing out the discrete values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyro
import torch
from pyro import poutine

from compiler import dadvi, minibatch
from compiler.data import CHUNK_ROWS

SITE = "minibatch.control_variate"  # a dot: never a spec name
# Steps between anchors: at least this many, and enough that the terms a pass
# scores (one per row) are no more than the steps' (batch rows x particles).
MIN_ANCHOR_EVERY = 100


def applies(program, batching: minibatch.Batching) -> bool:
    ir_model = program.ir
    return (len(batching.rows.sizes) == 1 and not ir_model.params and bool(ir_model.guided_latents)
            and not any(latent.enumerated for latent in ir_model.latents))


@dataclass(frozen=True)
class Linearisation:
    """What a step adds to the batch's scaled log-likelihood s l_B(z):
    `offset` + sum over latents of `slopes` (z - `point`), per particle."""

    offset: torch.Tensor  # l(z~) - s l_B(z~)
    slopes: dict[str, torch.Tensor]  # G - s g_B
    point: dict[str, torch.Tensor]  # z~

    def value(self, trace, nesting: int) -> torch.Tensor:
        """The correction at the latents of a model trace: one per particle, shaped to
        sit in the vectorised particles plate (left of the model's `nesting` plates)."""
        total = self.offset
        for name, slope in self.slopes.items():
            site = trace.nodes[name]
            term = slope * (site["value"] - self.point[name])
            particles_dim = site["value"].dim() - site["fn"].event_dim - nesting - 1
            if particles_dim < 0:
                total = total + term.sum()
            else:
                per_particle = term.flatten(particles_dim + 1).sum(-1)
                total = total + per_particle.reshape(per_particle.shape + (1,) * nesting)
        return total


class ControlVariate:
    """The step model and the per-step linearisation for one minibatched fit."""

    def __init__(self, program, model: Callable, batching: minibatch.Batching, particles: int):
        self.program = program
        self.model = model  # the objective's model: full-data scale
        self.batched_model = minibatch.ScaleObservations(batching.scales)(model)
        self.batching = batching
        self.sites = frozenset(batching.rows.sites)
        self.latents = [latent.name for latent in program.ir.guided_latents]
        (self.size, self.rows), = batching.rows.sizes.items()
        self.anchor_every = max(MIN_ANCHOR_EVERY, math.ceil(self.rows / (batching.batch_size * particles)))
        self.point: dict[str, torch.Tensor] = {}
        self.total = torch.zeros(())
        self.gradient: dict[str, torch.Tensor] = {}

    def step_model(self, batch, linearisation: Linearisation) -> None:
        """The batch-scaled model plus the correction, a factor on the latents it drew."""
        trace = poutine.trace(self.batched_model).get_trace(batch)
        pyro.factor(SITE, linearisation.value(trace, self.program.ir.max_plate_nesting))

    def step_guide(self, batch, linearisation: Linearisation) -> None:
        self.program.guide(batch)

    def anchor(self, data: Mapping[str, Any], batch) -> None:
        """Move the anchor to the guide's centre and pass over all the rows there."""
        self.point = guide_centre(self.program.guide, batch, self.latents)
        self.total, self.gradient = self.full_pass(data)

    def full_pass(self, data: Mapping[str, Any], chunk_rows: int = CHUNK_ROWS):
        """The split log-likelihood at the anchor over all the rows, a chunk at a time, and its gradient."""
        total, gradient = torch.zeros(()), {name: torch.zeros_like(v) for name, v in self.point.items()}
        for low in range(0, self.rows, chunk_rows):
            high = min(low + chunk_rows, self.rows)
            chunk = self.batching.rows.sliced(data, {self.size: slice(low, high)}, {self.size: high - low})
            value, part = _split_log_likelihood(self.model, chunk, self.point, self.sites)
            total = total + value
            for name in gradient:
                gradient[name] += part[name]
        return total, gradient

    def linearised(self, batch) -> Linearisation:
        value, gradient = _split_log_likelihood(self.batched_model, batch, self.point, self.sites)
        return Linearisation(self.total - value, {name: self.gradient[name] - gradient[name] for name in self.latents},
                             self.point)


class ControlledSteps:
    """Each step's arguments: a batch and its linearisation, the anchor moved first
    every `anchor_every` steps."""

    def __init__(self, control: ControlVariate, data: Mapping[str, Any], generator: torch.Generator):
        self.control, self.data, self.generator = control, data, generator
        self.taken = 0

    def __call__(self) -> tuple[Any, Linearisation]:
        batch = self.control.batching.sample(self.data, self.generator)
        if self.taken % self.control.anchor_every == 0:
            self.control.anchor(self.data, batch)
        self.taken += 1
        return batch, self.control.linearised(batch)


def guide_centre(guide: Callable, data, latents: list[str]) -> dict[str, torch.Tensor]:
    """The guide's draw with its normal noise at zero: the median of every normal factor."""
    with torch.no_grad(), dadvi.standard_normal_draws(_zeros):
        trace = poutine.trace(guide).get_trace(data)
    return {name: trace.nodes[name]["value"].detach() for name in latents}


def _zeros(shape, dtype=None, device=None) -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype, device=device)


def _split_log_likelihood(model: Callable, data, point: dict[str, torch.Tensor],
                          sites: frozenset[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The split sites' log-likelihood (with their scales) with the latents at `point`, and its
    gradient in them."""
    leaves = {name: value.detach().clone().requires_grad_() for name, value in point.items()}
    trace = poutine.trace(poutine.condition(model, data=leaves)).get_trace(data)
    trace.compute_log_prob(site_filter=lambda name, site: name in sites)
    value = sum(trace.nodes[name]["log_prob_sum"] for name in sites)
    gradients = torch.autograd.grad(value, list(leaves.values()), allow_unused=True)
    return value.detach(), {name: torch.zeros_like(leaf) if g is None else g
                            for (name, leaf), g in zip(leaves.items(), gradients)}
