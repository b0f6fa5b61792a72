"""Phase 5, report: `FitResult` -> `Report` (data) -> a table or JSON (presentation).

The JSON schema is the pydantic `Report`; the terminal table is rendered
from the same object, so the two never disagree.
"""

from __future__ import annotations

import itertools
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, PrivateAttr
from typing_extensions import TypeAliasType

from compiler.errors import PplError
from compiler.precision import in_float64
from compiler.results import notes as notes_module

# Scalars, or nested lists shaped like an array-valued site.
Nested = TypeAliasType("Nested", Union[float, list["Nested"]])

MAX_ROWS_PER_ARRAY = 10
KHAT_GOOD, KHAT_UNRELIABLE = 0.5, 0.7  # Yao et al. (2018)
# Below this sd of log p(x, z)/q(z), k̂'s tail carries no weight: reweighting the draws
# from q towards the posterior moves a mean by at most sd(weights) x sd(value)
# (Cauchy-Schwarz), under a tenth of its sd. The coin's is 0.018, where k̂ is 5.7.
UNIFORM_WEIGHTS_SD = 0.1
COLUMNS = ("mean", "sd", "hdi_3", "hdi_97", "q05", "q50", "q95")
HEADINGS = ("mean", "sd", "hdi_3%", "hdi_97%", "5%", "50%", "95%")  # az.summary's, then quantiles


class Summary(BaseModel):
    """Posterior summary of one site; arrays are nested lists shaped like the site."""

    model_config = ConfigDict(frozen=True)

    mean: Nested
    sd: Nested
    hdi_3: Nested  # the 94 % highest-density interval, as az.summary reports it
    hdi_97: Nested
    q05: Nested
    q50: Nested
    q95: Nested
    rhat: Nested | None = None  # NUTS only: rank-normalised split R̂ across chains
    ess: Nested | None = None  # NUTS only: bulk effective sample size


class Report(BaseModel):
    model_config = ConfigDict(frozen=True)

    spec: str
    method: str = "vi"  # vi | nuts
    optimizer: str | None = None  # VI only: lbfgs | adam
    guide: dict[str, str]
    elbo: float | None = None  # SVI's final ELBO; None for NUTS
    steps: int  # L-BFGS iterations or Adam steps, or NUTS draws per chain
    converged: bool
    interrupted: bool = False
    posterior: dict[str, Summary]
    params: dict[str, Nested]
    seed: int
    discrete: dict[str, Nested] = {}  # enumerated latent -> P(z = k), k along the last axis
    chains: int | None = None  # NUTS only
    khat: float | None = None  # SVI only: Pareto k̂ of p(x, z)/q(z) over guide draws
    log_ratio_sd: float | None = None  # SVI only: the sd of log p(x, z)/q(z) over the same draws
    divergences: int | None = None  # NUTS only
    warnings: list[str] = []

    # What the summaries were computed from, kept for files and notebooks; never serialised.
    _draws: dict = PrivateAttr(default_factory=dict)  # site -> (draws, *shape)
    _elbo_trace: tuple = PrivateAttr(default=())
    _diagnostics: dict = PrivateAttr(default_factory=dict)  # NUTS: r_hat / ess_bulk -> site -> values
    _source: Any = PrivateAttr(default=None)  # (program, data, guide state or None for NUTS)

    def to_json(self) -> str:
        """The report as JSON; fields that do not apply to the method (None) are left out."""
        return self.model_dump_json(indent=2, exclude_none=True)

    def table(self) -> str:
        return render_table(self)

    def summary(self):
        """A pandas DataFrame laid out like `az.summary`: one row per scalar element."""
        from compiler.results import export

        return export.summary_frame(self._draws, self._diagnostics)

    @in_float64
    def predict(self, draws: int = 1000) -> dict:
        """Posterior predictive draws of every observed site: {site: (draws, *shape)}."""
        from compiler.inference.posterior import predictive_draws

        program, data, guide_state = self._fitted()
        return predictive_draws(program.compiled, data, draws, self.seed, guide_state)

    def _observed(self) -> dict:
        if self._source is None:
            return {}
        program, data, _ = self._source
        data = data.in_memory()
        return {site.name: data[site.name] for site in program.ir.observed}

    def save(self, path) -> None:
        """Everything needed to use this fit again, checked against its spec and data (`compiler.load_fit`)."""
        from compiler.results import saved

        self._fitted()
        saved.save(self, path)

    def _fitted(self):
        if self._source is None or self._source[2] is None:
            raise PplError("this needs a VI fit with its data: NUTS draws and reports read back without "
                           "their data have no guide to draw from")
        return self._source

    def to_arviz(self, predictive: int = 0):
        """An ArviZ `InferenceData` with the posterior draws and the observed data,
        and `predictive` posterior predictive draws when asked for."""
        from compiler.results import export

        return export.inference_data(self._draws, self._observed(), self.predict(predictive) if predictive else None)

    def write_draws(self, path) -> None:
        """The draws as CSV, one column per scalar element (`beta[0]`, ...)."""
        from compiler.results import export

        export.write_draws_csv(self._draws, path)

    def write_idata(self, path, predictive: int = 0) -> None:
        """An ArviZ `InferenceData` (`to_arviz`) as netCDF."""
        from compiler.results import export

        export.write_netcdf(self.to_arviz(predictive), path)

    def write_plot(self, path) -> None:
        """A PNG of the ELBO trace and each latent's marginal posterior."""
        from compiler.results import export

        step = "L-BFGS call (10 iterations)" if self.optimizer == "lbfgs" else "step"
        export.write_plot(self._draws, self._elbo_trace, path, self.spec, step)

    def _keep(self, program, data, draws, guide_state=None, elbo_trace=(), diagnostics=None) -> Report:
        """Attach what the report was computed from (a saved fit gets it back in `load_fit`)."""
        self._source = (program, data, guide_state)
        self._draws, self._elbo_trace, self._diagnostics = draws, tuple(elbo_trace), diagnostics or {}
        return self


def summarise(draws, rhat=None, ess=None) -> Summary:
    """Mean, sd, 94 % HDI and quantiles over the leading (draws) dim."""
    import torch

    from compiler.inference import stats

    draws = draws.double()
    quantiles = torch.quantile(draws, torch.tensor([0.05, 0.5, 0.95], dtype=draws.dtype), dim=0)
    hdi = stats.hdi(draws)
    return Summary(mean=draws.mean(0).tolist(), sd=draws.std(0).tolist(), hdi_3=hdi[..., 0].tolist(),
                   hdi_97=hdi[..., 1].tolist(), q05=quantiles[0].tolist(),
                   q50=quantiles[1].tolist(), q95=quantiles[2].tolist(),
                   rhat=None if rhat is None else rhat.tolist(), ess=None if ess is None else ess.tolist())


def build_nuts_report(program, result, config, data) -> Report:
    notes = list(data.warnings)
    if not result.converged:
        notes.append("R̂ ≥ 1.01 for some parameter: the chains disagree; run more --warmup and --samples")
    if result.divergences:
        notes.append(f"{result.divergences} divergent transitions: the sampler may have missed part of the "
                     "posterior; try a higher target acceptance or a non-centred parameterisation")
    return Report(
        spec=program.source.name, method="nuts", guide={}, elbo=None, steps=config.samples,
        converged=result.converged,
        posterior={name: summarise(draws, result.rhat[name], result.ess[name]) for name, draws in result.draws.items()},
        params={}, seed=config.seed, chains=config.chains, divergences=result.divergences, warnings=notes,
    )._keep(program, data, result.draws, diagnostics={"r_hat": result.rhat, "ess_bulk": result.ess})


def build_report(program, result, config, data) -> Report:
    posterior = {name: summarise(draws) for name, draws in result.draws.items()}
    notes = list(data.warnings) + [notes_module.sentence(note) for note in result.notes]
    if result.interrupted:
        notes.append(f"interrupted at step {result.steps}: this is the posterior reached so far")
    elif not result.converged:
        notes.append(f"the ELBO was still changing after {result.steps} steps: "
                     "the fit has not converged; try more --steps or a larger --max-steps")
    checked = result.importance
    if checked and checked.khat is not None and checked.khat > KHAT_UNRELIABLE and not _uniform(checked.log_sd):
        notes.append(f"Pareto k̂ = {checked.khat:.2f} > {KHAT_UNRELIABLE}: the posterior has regions the mean-field "
                     "guide barely reaches (heavy-tailed importance ratios p(x, z)/q(z)), so these means may be "
                     "off and the sds too small; check with --method nuts or `pplc compare`")
    return Report(
        spec=program.source.name,
        guide=program.code.guide_families,
        elbo=result.elbo,
        optimizer=result.optimizer,
        steps=result.steps,
        converged=result.converged,
        interrupted=result.interrupted,
        posterior=posterior,
        params={name: value.tolist() for name, value in result.params.items()},
        seed=config.seed,
        discrete={name: value.tolist() for name, value in result.discrete.items()},
        khat=checked.khat if checked else None,
        log_ratio_sd=checked.log_sd if checked else None,
        warnings=notes,
    )._keep(program, data, result.draws, result.guide_state, result.elbo_trace)


def _uniform(log_ratio_sd: float | None) -> bool:
    return log_ratio_sd is not None and log_ratio_sd < UNIFORM_WEIGHTS_SD


def render_table(report: Report) -> str:
    status = "converged" if report.converged else "NOT converged"
    if report.method == "nuts":
        run = f"NUTS, {report.chains} chains x {report.steps} draws, {report.divergences} divergences"
    elif report.optimizer == "lbfgs":
        run = f"VI by L-BFGS on fixed draws, {report.steps} iterations"
    else:
        run = f"SVI by Adam, {report.steps} steps"
    lines = [f"{report.spec}: {run}, seed {report.seed} ({status})"]
    rows = [row for name, summary in report.posterior.items() for row in _rows(name, summary)]
    if rows:
        width = max(len(r[0]) for r in rows)
        headings = HEADINGS + (("r_hat", "ess") if report.method == "nuts" else ())
        lines.append(" " * width + "".join(f"{h:>10}" for h in headings))
        for label, *values in rows:
            lines.append(label.ljust(width) + "".join(
                f"{v:>10}" if isinstance(v, str) else f"{v:>10.4g}" for v in values))
    for name, value in report.params.items():
        lines.append(f"param {name} = {_format_nested(value)}")
    for name, value in report.discrete.items():
        lines.append(f"P({name} = k), k = 0, 1, ...: {_format_rows(value)}")
    if report.elbo is not None:
        lines.append(f"ELBO {report.elbo:.4g}")
    if report.khat is not None and _uniform(report.log_ratio_sd):
        lines.append(f"Pareto k̂ {report.khat:.2f} of importance weights that barely vary (sd of log p/q "
                     f"{report.log_ratio_sd:.2g} < {UNIFORM_WEIGHTS_SD}): q matches the posterior")
    elif report.khat is not None:
        lines.append(f"Pareto k̂ {report.khat:.2f} (q matches the posterior below {KHAT_GOOD}, "
                     f"is unreliable above {KHAT_UNRELIABLE})")
    lines += [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)


class ComparedElement(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # e.g. beta[1]
    vi_mean: float
    nuts_mean: float
    error_in_nuts_sds: float  # (vi mean - nuts mean) / nuts sd
    vi_sd: float
    nuts_sd: float
    sd_ratio: float  # vi sd / nuts sd


def compare(vi: Report, nuts: Report) -> list[ComparedElement]:
    """VI against NUTS per scalar element of every site both report."""
    rows = []
    for name in vi.posterior:
        if name not in nuts.posterior:
            continue
        a, b = vi.posterior[name], nuts.posterior[name]
        for (position, vi_mean), (_, nuts_mean), (_, vi_sd), (_, nuts_sd) in zip(
                _flatten(a.mean), _flatten(b.mean), _flatten(a.sd), _flatten(b.sd)):
            label = f"{name}[{', '.join(map(str, position))}]" if position else name
            rows.append(ComparedElement(name=label, vi_mean=vi_mean, nuts_mean=nuts_mean,
                                        error_in_nuts_sds=(vi_mean - nuts_mean) / nuts_sd,
                                        vi_sd=vi_sd, nuts_sd=nuts_sd, sd_ratio=vi_sd / nuts_sd))
    return rows


def render_comparison(vi: Report, nuts: Report, rows: list[ComparedElement]) -> str:
    width = max([len(r.name) for r in rows] + [4])
    headings = ("vi mean", "nuts mean", "err/sd", "vi sd", "nuts sd", "sd ratio")
    lines = [f"{vi.spec}: mean-field VI ({vi.steps} steps) against NUTS "
             f"({nuts.chains} chains x {nuts.steps} draws)",
             " " * width + "".join(f"{h:>11}" for h in headings)]
    for r in rows:
        values = (r.vi_mean, r.nuts_mean, r.error_in_nuts_sds, r.vi_sd, r.nuts_sd, r.sd_ratio)
        lines.append(r.name.ljust(width) + "".join(f"{v:>11.4g}" for v in values))
    worst = max(rows, key=lambda r: abs(r.error_in_nuts_sds), default=None)
    if worst is not None:
        lines.append(f"largest mean error: {worst.name}, {worst.error_in_nuts_sds:+.2f} NUTS sds; "
                     f"sd ratios {min(r.sd_ratio for r in rows):.2f} to {max(r.sd_ratio for r in rows):.2f}")
    lines += [f"warning (vi): {w}" for w in vi.warnings] + [f"warning (nuts): {w}" for w in nuts.warnings]
    return "\n".join(lines)


def _rows(name: str, summary: Summary):
    """One row per scalar element, `name[i, j]`; long arrays are folded with a count."""
    columns = [getattr(summary, c) for c in COLUMNS] + [c for c in (summary.rhat, summary.ess) if c is not None]
    if not isinstance(columns[0], list):
        yield (name, *columns)
        return
    elements = list(_flatten(columns[0]))
    flat = [list(_flatten(c)) for c in columns]
    for index, (position, _) in enumerate(elements):
        if index == MAX_ROWS_PER_ARRAY:
            yield (f"... {len(elements) - index} more of {name}", *([""] * len(columns)))
            return
        yield (f"{name}[{', '.join(map(str, position))}]", *(c[index][1] for c in flat))


def _flatten(nested, prefix=()):
    if isinstance(nested, list):
        for i, item in enumerate(nested):
            yield from _flatten(item, prefix + (i,))
    else:
        yield prefix, nested


def _format_rows(value: Nested) -> str:
    """Per-element probability vectors, folded like the posterior table."""
    rows = value if isinstance(value, list) and value and isinstance(value[0], list) else [value]
    shown = "; ".join(_format_nested(row) for row in rows[:MAX_ROWS_PER_ARRAY])
    return shown + (f"; ... {len(rows) - MAX_ROWS_PER_ARRAY} more" if len(rows) > MAX_ROWS_PER_ARRAY else "")


def _format_nested(value: Nested) -> str:
    if isinstance(value, list):
        items = list(itertools.islice(_flatten(value), MAX_ROWS_PER_ARRAY))
        return "[" + ", ".join(f"{v:.4g}" for _, v in items) + (", ...]" if len(items) == MAX_ROWS_PER_ARRAY else "]")
    return f"{value:.4g}"
