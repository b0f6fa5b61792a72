"""Minibatch log-likelihoods with most of their noise taken out: a control variate.

A batch of B rows scaled up by s = N / B estimates the split log-likelihood
l without bias, but its gradient's noise grows with N: at N = 10^6 and
B = 10^4 it is ten times the gradient of a step of one posterior sd, and Adam
stops long before the noise has averaged out. SVRG's correction (Johnson &
Zhang, NeurIPS 2013), applied to the latents, removes it. In coordinates u of
the latents (see `_transforms`), with an anchor point u~ and the full-data value
l(u~) and gradient G there (one pass over all the rows, a chunk at a time),
the batch scores

    l^(u) = l(u~) + G (u - u~) + s [l_B(u) - l_B(u~) - g_B (u - u~)]

where l_B and g_B are the batch's log-likelihood and gradient. Its expectation
over batches is l(u) whatever the anchor, so the ELBO stays unbiased; what is
left of the noise is the batch's departure from its own linearisation at u~,
which vanishes as u nears u~. At large N the posterior is narrow, and with the
anchor at the guide's centre u stays within a few posterior sds of it: the
noise falls by about sqrt(N) (measured in docs/scaling.md). The coordinates
keep l^ bounded above: a scale is linearised in its logarithm (its
log-likelihood falls as -N log sigma, which a slope in sigma would overtake),
a latent on an interval or a simplex in its own values (towards a bound the
log-likelihood levels off, which a slope in the logit would overtake).

Adam's steps (`ControlledSteps`) move the anchor to the guide's centre every
`anchor_every` steps, so that a pass over all the rows costs no more than
the steps between passes; minibatch L-BFGS (infer.py) holds one batch and
anchor a round. Models with point parameters or enumerated latents, and data
plates split more than one way, keep plain minibatches (`applies`): the
correction would need linearising in the parameters or summing out the
discrete values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyro
import torch
from pyro import poutine
from torch.distributions import Transform, biject_to, constraints
from torch.distributions.transforms import identity_transform

from compiler.arrays import CHUNK_ROWS
from compiler.backend.build import CompiledModel
from compiler.inference import minibatch
from compiler.inference.fixed_draws import FixedNoise, no_noise

SITE = "minibatch.control_variate"  # a dot: never a spec name
# Steps between anchors: at least this many, and enough that the terms a pass
# scores (one per row) are no more than the steps' (batch rows x particles).
MIN_ANCHOR_EVERY = 100


def applies(compiled: CompiledModel, batching: minibatch.Batching) -> bool:
    ir_model = compiled.ir
    return (len(batching.rows.sizes) == 1 and not ir_model.params and bool(ir_model.guided_latents)
            and not any(latent.enumerated for latent in ir_model.latents))


@dataclass(frozen=True)
class Anchor:
    """Where the log-likelihood is linearised, and its full-data value and gradient there."""

    transforms: dict[str, Transform]  # latent -> the map from the real line onto its support
    point: dict[str, torch.Tensor]  # u~, unconstrained
    total: torch.Tensor  # l(u~)
    gradient: dict[str, torch.Tensor]  # G


@dataclass(frozen=True)
class Linearisation:
    """What a batch adds to its scaled log-likelihood s l_B(u):
    `offset` + sum over latents of `slopes` (u - u~), per particle."""

    offset: torch.Tensor  # l(u~) - s l_B(u~)
    slopes: dict[str, torch.Tensor]  # G - s g_B
    anchor: Anchor

    def value(self, trace, nesting: int) -> torch.Tensor:
        """The correction at the latents of a model trace: one per particle, shaped to
        sit in the vectorised particles plate (left of the model's `nesting` plates)."""
        total = self.offset
        for name, slope in self.slopes.items():
            site = trace.nodes[name]
            unconstrained = self.anchor.transforms[name].inv(site["value"])
            term = slope * (unconstrained - self.anchor.point[name])
            particles_dim = site["value"].dim() - site["fn"].event_dim - nesting - 1
            if particles_dim < 0:
                total = total + term.sum()
            else:
                per_particle = term.flatten(particles_dim + 1).sum(-1)
                total = total + per_particle.reshape(per_particle.shape + (1,) * nesting)
        return total


class ControlVariate:
    """The batch model and the per-batch linearisation for one minibatched fit."""

    def __init__(self, compiled: CompiledModel, model: Callable, batching: minibatch.Batching):
        self.compiled = compiled
        self.model = model  # the objective's model: full-data scale
        self.batched_model = minibatch.ScaleObservations(batching.scales)(model)
        self.batching = batching
        self.sites = frozenset(batching.rows.sites)
        self.latents = [latent.name for latent in compiled.ir.guided_latents]
        (self.size, self.rows), = batching.rows.sizes.items()
        self.anchor: Anchor | None = None

    def step_model(self, batch, linearisation: Linearisation) -> None:
        """The batch-scaled model plus the correction, a factor on the latents it drew."""
        trace = poutine.trace(self.batched_model).get_trace(batch)
        pyro.factor(SITE, linearisation.value(trace, self.compiled.ir.max_plate_nesting))

    def step_guide(self, batch, linearisation: Linearisation) -> None:
        self.compiled.guide(batch)

    def move_anchor(self, data: Mapping[str, Any], batch) -> None:
        """Anchor at the guide's centre."""
        self.anchor_at(guide_centre(self.compiled.guide, batch, self.latents), data, batch)

    def anchor_at(self, point: dict[str, torch.Tensor], data: Mapping[str, Any], batch,
                  chunk_rows: int = CHUNK_ROWS) -> None:
        """Anchor at `point` (constrained values) and pass over all the rows there, a chunk at a time."""
        transforms = _transforms(self.model, batch, point)
        unconstrained = {name: transforms[name].inv(value) for name, value in point.items()}
        total, gradient = torch.zeros(()), {name: torch.zeros_like(u) for name, u in unconstrained.items()}
        for low in range(0, self.rows, chunk_rows):
            high = min(low + chunk_rows, self.rows)
            chunk = self.batching.rows.sliced(data, {self.size: slice(low, high)}, {self.size: high - low})
            value, part = _split_log_likelihood(self.model, chunk, unconstrained, transforms, self.sites)
            total = total + value
            for name in gradient:
                gradient[name] += part[name]
        self.anchor = Anchor(transforms, unconstrained, total, gradient)

    def linearised(self, batch) -> Linearisation:
        anchor = self.anchor
        value, gradient = _split_log_likelihood(self.batched_model, batch, anchor.point, anchor.transforms, self.sites)
        return Linearisation(anchor.total - value, {name: anchor.gradient[name] - gradient[name] for name in self.latents},
                             anchor)


class ControlledSteps:
    """Adam's arguments for each step: a batch and its linearisation, the anchor moved
    first every `anchor_every` steps."""

    def __init__(self, control: ControlVariate, data: Mapping[str, Any], generator: torch.Generator,
                 particles: int):
        self.control, self.data, self.generator = control, data, generator
        rows_a_step = control.batching.batch_size * particles
        self.anchor_every = max(MIN_ANCHOR_EVERY, math.ceil(control.rows / rows_a_step))
        self.taken = 0

    def __call__(self) -> tuple[Any, Linearisation]:
        batch = self.control.batching.sample(self.data, self.generator)
        if self.taken % self.anchor_every == 0:
            self.control.move_anchor(self.data, batch)
        self.taken += 1
        return batch, self.control.linearised(batch)


def guide_centre(guide: Callable, data, latents: list[str]) -> dict[str, torch.Tensor]:
    """The guide's draw with its normal noise at zero: the median of every normal factor."""
    with torch.no_grad(), FixedNoise(latents, no_noise):
        trace = poutine.trace(guide).get_trace(data)
    return {name: trace.nodes[name]["value"].detach() for name in latents}


def _transforms(model: Callable, data, point: dict[str, torch.Tensor]) -> dict[str, Transform]:
    """The coordinates each latent is linearised in: on a support unbounded above (the
    real line, the positive reals) the real line's, through the map the guide uses;
    on a bounded one (an interval, a simplex) the latent's own values, where the
    linear term is bounded too (in unconstrained coordinates the log-likelihood
    levels off towards a bound while a slope keeps climbing)."""
    with torch.no_grad():
        trace = poutine.trace(poutine.condition(model, data=point)).get_trace(data)
    supports = {name: trace.nodes[name]["fn"].support for name in point}
    return {name: biject_to(support) if _unbounded_above(support) else identity_transform
            for name, support in supports.items()}


def _unbounded_above(support) -> bool:
    while isinstance(support, constraints.independent):  # a vector or matrix latent
        support = support.base_constraint
    return support is constraints.real or isinstance(support, constraints.greater_than)  # positive included


def split_trace(model: Callable, data, point: dict[str, torch.Tensor], transforms: dict[str, Transform],
                sites: frozenset[str]) -> tuple[dict[str, torch.Tensor], Any]:
    """The model's trace with the latents at the unconstrained `point`, through leaves that
    require gradients (returned with it), and the split sites' log-densities computed."""
    leaves = {name: value.detach().clone().requires_grad_() for name, value in point.items()}
    values = {name: transforms[name](leaf) for name, leaf in leaves.items()}
    trace = poutine.trace(poutine.condition(model, data=values)).get_trace(data)
    trace.compute_log_prob(site_filter=lambda name, site: name in sites)
    return leaves, trace


def gradients(value: torch.Tensor, leaves: dict[str, torch.Tensor], retain: bool = False) -> dict[str, torch.Tensor]:
    """d value / d each leaf (zeros where it does not depend on one)."""
    found = torch.autograd.grad(value, list(leaves.values()), retain_graph=retain, allow_unused=True)
    return {name: torch.zeros_like(leaf) if g is None else g for (name, leaf), g in zip(leaves.items(), found)}


def _split_log_likelihood(model: Callable, data, point: dict[str, torch.Tensor], transforms: dict[str, Transform],
                          sites: frozenset[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The split sites' log-likelihood (with their scales) with the latents at the
    unconstrained `point`, and its gradient there."""
    leaves, trace = split_trace(model, data, point, transforms, sites)
    value = sum(trace.nodes[name]["log_prob_sum"] for name in sites)
    return value.detach(), gradients(value, leaves)
