"""Diagnostics measured on a sample of the rows, for data sets too large to measure them on
every row: the importance ratios behind k̂, and the linear-response Hessian.

PSIS's k̂ needs log p(x, z) at a few hundred draws; at N = 10^6 rows that is 2·10^8
log-density terms, more than the fit evaluated (logistic regression: 2.5 s of a 14 s run).
A uniform sample of m rows, scaled by s = N / m, with the control variate the minibatch
fits use (`control_variates`: the full-data value and gradient at the Gaussian's centre ũ,
in the coordinates u it linearises in) estimates each draw's split log-likelihood as

    l^(u) = l(ũ) + G (u - ũ) + s [l_B(u) - l_B(ũ) - g_B (u - ũ)]

without bias; every other term of the ratio (priors, unsplit observations, log q) is exact.
The error left is the sample's departure from its linearisation, second order in u - ũ: at
large N, where the posterior is narrow, a few thousand rows pin each ratio to within 0.01
(Quiroz, Kohn, Villani & Tran 2019, JASA, "Speeding up MCMC by efficient data subsampling").
On a hierarchy with many groups it is not narrow along the group effects, and the error says so.

That error is measured, not assumed: the sampled rows fall into GROUPS groups, each an
estimate of its own (its own l_B(ũ) and g_B), whose spread gives each draw's standard error.
Their root mean square over the draws is the stated error (`SampledRows.error`). Above
ROW_ERROR the sample grows once to the size that error asks for; where that size would not
save most of the cost (SAVING), or is still not enough, every row is scored instead.

The linear-response Hessian is a sum over rows too, and a mean over HESSIAN_GROUPS
independent samples, each scaled up, estimates it without bias. Each sample's own
covariance gives the sds' error (their spread over the samples), and the same rule applies
with COVARIANCE_ERROR, relative to each sd.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from compiler.backend.build import CompiledModel
from compiler.errors import PplError
from compiler.inference import diagnose, minibatch
from compiler.inference.control_variates import (
    Anchor,
    ControlVariate,
    Linearisation,
    gradients,
    guide_centre,
    split_trace,
)
from compiler.inference.elbo import TERMS_PER_STEP, observed_terms
from compiler.inference.records import Objective, SampledRows

# The first sample's rows, and the groups it splits into to measure its error.
FIRST_ROWS, GROUPS = 10_000, 10
# The largest rms error of a log ratio whose weights are kept: noise of sd e in log w costs the
# weights about e² of their effective draws (1 % at 0.1) and leaves the tail's shape (k̂) as it was.
ROW_ERROR = 0.1
# Rows are sampled only where all of them are at least this many times the sample.
SAVING = 4
# The linear-response Hessian's first samples: rows in all, and how many samples; the largest
# standard error of an sd they may leave, relative to it (the accuracy bars are 0.1 sd on a mean).
HESSIAN_ROWS, HESSIAN_GROUPS, COVARIANCE_ERROR = 20_000, 4, 0.02

# (model, data, draws (S, D)) -> each draw's log p(x, z) - log q(z) and the model's trace
Score = Callable[[Callable, Any, torch.Tensor], tuple[torch.Tensor, Any]]


@dataclass(frozen=True)
class Estimate:
    log_ratios: torch.Tensor  # (S,)
    sampled: SampledRows


@dataclass(frozen=True)
class SampledHessian:
    hessian: torch.Tensor
    sampled: SampledRows  # its error: the largest relative error of an sd
    sample: Objective  # the first of the samples, scaled up


def log_ratios(compiled: CompiledModel, objective: Objective, values: torch.Tensor, score: Score,
               generator: torch.Generator) -> Estimate | None:
    """Each draw's log ratio from a sample of the rows, or None where every row should be scored:
    rows that cannot be split, too few to save most of the cost, or a sample whose error stays
    above ROW_ERROR. The same draws, data and generator give the same sample."""
    rows = _split(compiled, objective, FIRST_ROWS)
    if rows is None:
        return None
    with diagnose.checked_once():
        return _grown(rows, FIRST_ROWS, GROUPS, ROW_ERROR, lambda wanted: _estimate(
            compiled, objective, rows, wanted, values, score, generator))


def hessian(compiled: CompiledModel, objective: Objective, of: Callable[[Objective], torch.Tensor],
            sds: Callable[[torch.Tensor], torch.Tensor | None],
            generator: torch.Generator) -> SampledHessian | None:
    """The Hessian `of` an objective, as the mean of its values on HESSIAN_GROUPS samples of the rows,
    and the largest relative error of the `sds` it gives; None where every row should be used."""
    rows = _split(compiled, objective, HESSIAN_ROWS)
    if rows is None:
        return None
    everything = _all_rows(rows)

    def measured(wanted: int) -> SampledHessian:
        batching = minibatch.Batching(rows, wanted // HESSIAN_GROUPS)
        model = minibatch.ScaleObservations(batching.scales)(objective.model)
        samples = [Objective(model, batching.sample(objective.data, generator)) for _ in range(HESSIAN_GROUPS)]
        each = [of(sample) for sample in samples]
        pooled = torch.stack(each).mean(0)
        own, sd = [sds(h) for h in each], sds(pooled)
        error = math.inf if sd is None or any(s is None for s in own) else (
            (torch.stack(own).std(0) / math.sqrt(HESSIAN_GROUPS) / sd).max().item())
        return SampledHessian(pooled, SampledRows(wanted, everything, error), samples[0])

    return _grown(rows, HESSIAN_ROWS, HESSIAN_GROUPS, COVARIANCE_ERROR, measured)


def _grown(rows: minibatch.Rows, first: int, groups: int, tolerance: float,
           measure: Callable[[int], Estimate | SampledHessian | None]) -> Estimate | SampledHessian | None:
    """`measure(rows)` on the first sample, else once more on the sample its error asks for; None
    where that would not save most of the cost or the error stays above `tolerance`."""
    everything, wanted = _all_rows(rows), first
    for _ in range(2):
        if SAVING * wanted > everything:
            return None
        found = measure(wanted)
        if found is None or found.sampled.error <= tolerance:
            return found
        if not math.isfinite(found.sampled.error):
            return None
        # (the error falls as 1 / sqrt(rows); a quarter more for the error of the error)
        wanted = groups * math.ceil(1.25 * wanted * (found.sampled.error / tolerance) ** 2 / groups)
    return None


def _all_rows(rows: minibatch.Rows) -> int:
    """The length of the one plate `_split` splits."""
    return next(iter(rows.sizes.values()))


def _split(compiled: CompiledModel, objective: Objective, first: int) -> minibatch.Rows | None:
    """The rows to sample: one data plate of observe statements only (a factor's terms have no row
    of data to score), longer than the first sample would need to save most of the cost."""
    try:
        rows = minibatch.split_rows(compiled, objective.data, SAVING * first, "sampling rows")
    except PplError:
        return None
    observed = {observe.name for observe in compiled.ir.observed}
    if len(rows.sizes) != 1 or not set(rows.sites) <= observed:
        return None
    return rows


def _estimate(compiled: CompiledModel, objective: Objective, rows: minibatch.Rows, wanted: int,
              values: torch.Tensor, score: Score, generator: torch.Generator) -> Estimate | None:
    batching = minibatch.Batching(rows, wanted)
    batch = batching.sample(objective.data, generator)
    control = ControlVariate(compiled, objective.model, batching)
    latents = [latent.name for latent in compiled.ir.guided_latents]
    control.anchor_at(guide_centre(compiled.guide, batch, latents), objective.data, batch)
    model = functools.partial(control.step_model, linearisation=control.linearised(batch))
    groups = _Groups.anchored(control, batch)
    if groups is None:
        return None
    ratios, errors = [], []
    chunk = max(1, TERMS_PER_STEP // max(observed_terms(compiled, batch), 1))
    for part in values.split(chunk):
        ratio, trace = score(model, batch, part)
        ratios.append(ratio)
        errors.append(groups.standard_errors(trace, len(part)))
    error = torch.cat(errors).square().mean().sqrt().item()
    return Estimate(torch.cat(ratios), SampledRows(wanted, _all_rows(rows), error))


@dataclass(frozen=True)
class _Groups:
    """The sample's rows in GROUPS groups (consecutive: the rows were drawn independently), and
    each group's own linearisation at the anchor: its scaled log-likelihood and gradient there."""

    row_dims: dict[str, int]  # each split site's dim of the rows' plate in its log-density
    at_anchor: torch.Tensor  # (GROUPS,)
    slopes: tuple[Linearisation, ...]  # each group's gradient, as a correction with no offset
    nesting: int

    @classmethod
    def anchored(cls, control: ControlVariate, batch) -> _Groups | None:
        """None where a split site's rows are not its plate named after their size (nothing to
        read them by)."""
        anchor: Anchor = control.anchor
        leaves, trace = split_trace(control.batched_model, batch, anchor.point, anchor.transforms, control.sites)
        nesting = control.compiled.ir.max_plate_nesting
        row_dims = {name: next((frame.dim for frame in trace.nodes[name]["cond_indep_stack"]
                                if frame.name == control.size), None) for name in control.sites}
        if None in row_dims.values():
            return None
        per_group = _grouped(_per_row(trace, row_dims, 1, nesting))[0]
        slopes = tuple(Linearisation(torch.zeros(()), gradients(total, leaves, retain=True), anchor)
                       for total in per_group)
        return cls(row_dims, per_group.detach(), slopes, nesting)

    def standard_errors(self, trace, count: int) -> torch.Tensor:
        """Each draw's standard error of its estimated log-likelihood: sqrt(GROUPS) times the sd over
        the groups of their residuals from their own linearisations (each group's estimate is
        GROUPS times its residual plus what they share; the estimate is their mean)."""
        per_group = _grouped(_per_row(trace, self.row_dims, count, self.nesting))
        with torch.no_grad():
            linear = torch.stack([slope.value(trace, self.nesting).reshape(-1).expand(count)
                                  for slope in self.slopes], dim=1)
        residuals = per_group - self.at_anchor - linear
        return math.sqrt(GROUPS) * residuals.std(dim=1)


def _per_row(trace, row_dims: dict[str, int], count: int, nesting: int) -> torch.Tensor:
    """(draws, rows): the sampled rows' scaled log-likelihood at each draw, summed over the sites
    (every other axis of a site's, an observation's own, summed)."""
    total = 0
    for name, row_dim in row_dims.items():
        log_prob = trace.nodes[name]["log_prob"]
        log_prob = log_prob.reshape((1,) * (nesting + 1 - log_prob.dim()) + log_prob.shape)
        moved = torch.movedim(log_prob, (-(nesting + 1), row_dim), (0, 1))
        total = total + moved.reshape(moved.shape[0], moved.shape[1], -1).sum(-1).expand(count, -1)
    return total


def _grouped(per_row: torch.Tensor) -> torch.Tensor:
    """(draws, GROUPS): the rows' sums in GROUPS consecutive groups of (nearly) equal size."""
    return torch.stack([part.sum(-1) for part in per_row.tensor_split(GROUPS, dim=-1)], dim=-1)
