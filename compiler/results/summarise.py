"""Phase 5, summarise: the engine's records (`FitResult`, `NutsResult`) -> a `Report`.

Each site's draws become a `Summary` (mean, sd, HDI, quantiles; R̂ and ESS for
NUTS), and what the user must know about the fit (not converged, interrupted,
a heavy-tailed k̂, divergences) becomes a warning sentence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compiler.frontend import ir
from compiler.results import engine
from compiler.results.report import FAR_SHIFT, MATERIAL_SHIFT, Report, RowSample, Summary, weights_uniform
from compiler.results.warned import ConvergenceWarning, DataWarning, DivergenceWarning, FitWarning, KhatWarning, Warned

if TYPE_CHECKING:
    import torch

    from compiler.data.values import Data
    from compiler.inference.config import NutsConfig, RunConfig
    from compiler.inference.fit import FitResult
    from compiler.inference.nuts import NutsResult
    from compiler.inference.records import Importance, SampledRows
    from compiler.results.program import CompiledProgram


def summarise(draws: torch.Tensor, rhat: torch.Tensor | None = None, ess: torch.Tensor | None = None) -> Summary:
    """Mean, sd, 94 % HDI and quantiles over the leading (draws) dim."""
    import torch

    draws = draws.double()
    by_element = torch.movedim(draws, 0, -1).contiguous()  # (sorted along contiguous memory: twice as fast)
    quantiles = torch.quantile(by_element, torch.tensor([0.05, 0.5, 0.95], dtype=draws.dtype), dim=-1)
    hdi = engine.hdi(by_element, dim=-1)
    return Summary(mean=draws.mean(0).tolist(), sd=draws.std(0).tolist(), hdi_3=hdi[..., 0].tolist(),
                   hdi_97=hdi[..., 1].tolist(), q05=quantiles[0].tolist(),
                   q50=quantiles[1].tolist(), q95=quantiles[2].tolist(),
                   rhat=None if rhat is None else rhat.tolist(), ess=None if ess is None else ess.tolist())


def nuts_warnings(result: NutsResult, data: Data) -> list[Warned]:
    """What the user must know about a NUTS fit, each with its kind: the data's warnings, R̂, divergences."""
    warned = [Warned(DataWarning, text) for text in data.warnings]
    if result.unconverged:
        warned.append(Warned(ConvergenceWarning, f"R̂ ≥ 1.01 for {', '.join(result.unconverged)}: the chains "
                             "disagree; run more --warmup and --samples"))
    if result.divergences:
        warned.append(Warned(DivergenceWarning, f"{result.divergences} divergent transitions "
                             f"({_divergent_share(result)}): the sampler may have missed part of the posterior; "
                             "try a higher --target-accept or a non-centred parameterisation"))
    return warned


def nuts_report(program: CompiledProgram, result: NutsResult, config: NutsConfig, data: Data) -> Report:
    notes = [warning.text for warning in nuts_warnings(result, data)]
    return Report(
        spec=program.source.name, method="nuts", guide={}, elbo=None, steps=config.samples,
        converged=result.converged,
        posterior={name: summarise(draws, result.rhat[name], result.ess[name]) for name, draws in result.draws.items()},
        params={}, seed=config.seed, chains=config.chains, divergences=result.divergences, warnings=notes,
        **labelled_axes(program, data))


def _divergent_share(result: NutsResult) -> str:
    per_chain = result.stats.diverging.sum(1).tolist()
    return ", ".join(f"chain {chain}: {count}" for chain, count in enumerate(per_chain))


def vi_report(program: CompiledProgram, result: FitResult, config: RunConfig, data: Data) -> Report:
    checked = result.importance
    return Report(
        spec=program.source.name,
        guide=program.code.guide_families,
        elbo=result.elbo,
        optimizer=result.optimizer,
        steps=result.steps,
        converged=result.converged,
        interrupted=result.interrupted,
        posterior={name: summarise(draws) for name, draws in result.draws.items()},
        params={name: value.tolist() for name, value in result.params.items()},
        seed=config.seed,
        discrete={name: value.tolist() for name, value in result.discrete.items()},
        covariance=result.covariance,
        resampled=result.resampled,
        khat=checked.khat if checked else None,
        khat_threshold=checked.threshold if checked else None,
        khat_error=checked.khat_error if checked else None,
        khat_draws=checked.draws if checked else None,
        log_ratio_sd=checked.log_sd if checked else None,
        khat_rows=_row_sample(checked.sampled if checked else None),
        covariance_rows=_row_sample(result.gaussian.rows if result.gaussian is not None else None),
        reweighting_shift=checked.shift if checked else None,
        warnings=[warning.text for warning in vi_warnings(result, data)],
        **labelled_axes(program, data),
    )


def _row_sample(sampled: SampledRows | None) -> RowSample | None:
    return None if sampled is None else RowSample(rows=sampled.rows, out_of=sampled.out_of, error=sampled.error)


def labelled_axes(program: CompiledProgram, data: Data) -> dict[str, dict]:
    """The report's `dims` and `coords`: each site's axes whose length is a size the data gave labels
    for, named after its `index` data (`county`), and those labels."""
    if not data.labels:
        return {}
    dim_of = {labels.size: labels.dim for labels in data.labels}
    dims = {}
    for statement in program.ir.statements:
        shape = tuple(plate.size for plate in statement.plates) if isinstance(statement, ir.Observe) else statement.shape
        axes = [dim_of.get(size) if isinstance(size, str) else None for size in shape]
        if any(axes):
            dims[statement.name] = axes
    return {"dims": dims, "coords": {labels.dim: list(labels.names) for labels in data.labels}}


def vi_warnings(result: FitResult, data: Data) -> list[Warned]:
    """What the user must know about a VI fit, each with its kind: the data's warnings first, then the
    engine's notes, then convergence and k̂."""
    return ([Warned(DataWarning, text) for text in data.warnings]
            + [Warned(FitWarning, text) for text in engine.note_sentences(result)] + _vi_notes(result))


def _vi_notes(result: FitResult) -> list[Warned]:
    notes = []
    if result.interrupted:
        notes.append(Warned(ConvergenceWarning, f"interrupted at step {result.steps}: this is the posterior reached "
                            "so far"))
    elif not result.converged:
        notes.append(Warned(ConvergenceWarning, f"the ELBO was still changing after {result.steps} steps: "
                            "the fit has not converged; try more --steps or a larger --max-steps"))
    checked = result.importance
    if checked and not weights_uniform(checked.log_sd):
        notes += _importance_notes(checked, result.covariance)
    return notes


def _importance_notes(checked: Importance, covariance: str | None) -> list[Warned]:
    """Whether the approximation may be materially off, judged from importance weights that do vary:
    k̂ above its threshold (a tail the draws barely reach), or k̂ below it while reweighting would still
    move the answer far (the draws barely reach the posterior at all, so too few land there for k̂
    to see the tail: see FAR_SHIFT)."""
    approximation = f"the {covariance} Gaussian" if covariance else "the guide"
    heavy_tailed = checked.khat is not None and checked.khat > checked.threshold
    if heavy_tailed and (checked.shift is None or checked.shift >= MATERIAL_SHIFT):
        return [Warned(KhatWarning, f"Pareto k̂ = {checked.khat:.2f} > {checked.threshold:.2f}: the posterior "
                       f"has regions {approximation} barely reaches (heavy-tailed importance ratios "
                       "p(x, z)/q(z)), so these means may be off and the sds wrong; check with --method nuts "
                       "or `pplc vi-vs-nuts`")]
    if not heavy_tailed and checked.shift is not None and checked.shift >= FAR_SHIFT:
        khat = ("k̂ finds no heavy tail" if checked.khat is None
                else f"Pareto k̂ = {checked.khat:.2f} ≤ {checked.threshold:.2f}")
        fullrank = "" if covariance == "full-rank" else ", or refit with --guide fullrank"
        return [Warned(KhatWarning, f"reweighting by the importance weights p(x, z)/q(z) would move a mean or sd "
                       f"by {checked.shift:.2f} sds although {khat} ({checked.draws} draws): the posterior lies "
                       f"partly where {approximation} barely reaches, too few of its draws land there to show "
                       "the tail, and reweighted draws cannot move far enough, so these means may be off and the "
                       f"sds wrong; check with --method nuts or `pplc vi-vs-nuts`{fullrank}")]
    return []
