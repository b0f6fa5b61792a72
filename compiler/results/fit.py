"""Phase 5, the handle a fit returns: `Fit` = the `Report` (pure data) + what it was computed from.

`Program.fit`, `Program.sample` and `load_fit` return a `Fit`. It holds the
compiled spec, the data, the draws behind the summaries and, for VI, the fitted
guide's state, so that it can draw the posterior predictive (for its data or
new data), save the fit, and write the draws, an ArviZ `InferenceData` or a plot. The report's fields read
through it (`fit.posterior`, `fit.warnings`, ...) as through the report itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.errors import PplError
from compiler.precision import in_float64
from compiler.results import engine, render, saved, summarise, warned
from compiler.results.report import Nested, Report, RowSample, Summary

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas
    import torch
    from typing_extensions import TypeAlias

    from compiler.data.values import Data
    from compiler.inference.config import NutsConfig, RunConfig
    from compiler.results.program import CompiledProgram

Draws = dict[str, "torch.Tensor"]  # site -> (draws, *shape)
if TYPE_CHECKING:
    # What `Program.load_data` reads: a data file or folder, Python objects by data name, a DataFrame,
    # or data already loaded; None: the data file beside the spec (or, for `Fit.predict`, the fitted data).
    DataSource: TypeAlias = "str | Path | Mapping[str, Any] | pandas.DataFrame | Data | None"


@dataclass(frozen=True)
class Fit:
    """A fit: its `report`, and the spec, data, draws and guide it was computed from."""

    report: Report
    program: CompiledProgram
    data: Data | None  # None: a saved fit read back without its data
    draws: Draws = field(default_factory=dict)  # what the summaries were computed from
    guide_state: dict[str, Any] | None = None  # VI: the fitted guide (Pyro's param store state)
    elbo_trace: tuple[float, ...] = ()
    diagnostics: dict[str, Draws] = field(default_factory=dict)  # NUTS: r_hat / ess_bulk -> site -> values
    sample_stats: Draws = field(default_factory=dict)  # NUTS: diverging, n_steps, tree_depth, step_size (chains, samples)
    gaussian: Any = None  # VI: the Gaussian the draws came from (`linear_response.Gaussian`); None: the guide's own

    # The report's fields, read through the handle ------------------------------------------

    @property
    def spec(self) -> str:
        return self.report.spec

    @property
    def method(self) -> str:
        return self.report.method

    @property
    def optimizer(self) -> str | None:
        return self.report.optimizer

    @property
    def guide(self) -> dict[str, str]:
        return self.report.guide

    @property
    def elbo(self) -> float | None:
        return self.report.elbo

    @property
    def steps(self) -> int:
        return self.report.steps

    @property
    def converged(self) -> bool:
        return self.report.converged

    @property
    def interrupted(self) -> bool:
        return self.report.interrupted

    @property
    def posterior(self) -> dict[str, Summary]:
        return self.report.posterior

    @property
    def params(self) -> dict[str, Nested]:
        return self.report.params

    @property
    def seed(self) -> int:
        return self.report.seed

    @property
    def discrete(self) -> dict[str, Nested]:
        return self.report.discrete

    @property
    def chains(self) -> int | None:
        return self.report.chains

    @property
    def covariance(self) -> str | None:
        return self.report.covariance

    @property
    def resampled(self) -> bool:
        return self.report.resampled

    @property
    def khat(self) -> float | None:
        return self.report.khat

    @property
    def khat_error(self) -> float | None:
        return self.report.khat_error

    @property
    def khat_draws(self) -> int | None:
        return self.report.khat_draws

    @property
    def khat_threshold(self) -> float | None:
        return self.report.khat_threshold

    @property
    def reweighting_shift(self) -> float | None:
        return self.report.reweighting_shift

    @property
    def log_ratio_sd(self) -> float | None:
        return self.report.log_ratio_sd

    @property
    def khat_rows(self) -> RowSample | None:
        return self.report.khat_rows

    @property
    def covariance_rows(self) -> RowSample | None:
        return self.report.covariance_rows

    @property
    def divergences(self) -> int | None:
        return self.report.divergences

    @property
    def warnings(self) -> list[str]:
        return self.report.warnings

    @property
    def dims(self) -> dict[str, list[str | None]]:
        return self.report.dims

    @property
    def coords(self) -> dict[str, list[str]]:
        return self.report.coords

    def to_json(self) -> str:
        """The report as JSON (`Report.to_json`)."""
        return self.report.to_json()

    def table(self) -> str:
        """The report as the table `pplc run` prints."""
        return render.render_table(self.report)

    def _repr_html_(self) -> str:
        """How a notebook shows a fit: the same table and warnings, as HTML."""
        return render.render_html(self.report)

    # What the draws, data and guide make possible -------------------------------------------

    def summary(self):
        """A pandas DataFrame laid out like `az.summary`: one row per scalar element."""
        from compiler.results import export

        return export.summary_frame(self.draws, self.diagnostics, self._element)

    @in_float64
    def predict(self, draws: int = 1000, data: DataSource = None) -> Draws:
        """Posterior predictive draws of every observed site, {site: (draws, *shape)}: the
        model run on each of the fit's posterior draws of the latents, its observations
        drawn rather than scored. On the fitted data, or on `data` (a path, a dict or
        `Data`, as `Program.load_data` takes them; observed arrays may be left out, and
        every latent must keep its fitted shape). Predictive draw i uses posterior draw
        i * held // draws, so that they spread evenly over the draws the fit holds (every
        chain of a NUTS fit); asked for more than it holds, each is used draws / held times."""
        import torch

        if self.data is None:
            raise PplError("this needs the fit's draws, and a saved fit read back without its data has none",
                           hint="pass load_fit the data it was fitted to")
        new = self.data if data is None else self.program.load_data(data, simulate_missing=True)
        new = new.coded_as(self.data.labels, self.program.ir)  # labels as the fit's data coded them
        held = self._held()
        chosen = torch.arange(draws) * held // draws
        latents = {s.name: self.draws[s.name][chosen] for s in self.program.ir.guided_latents}
        return engine.posterior_predictive(self.program, new, latents, draws, self.report.seed, self.guide_state)

    def save(self, path: str | Path) -> None:
        """Everything needed to use this fit again, checked against its spec and data (`compiler.load_fit`)."""
        data, guide_state = self._fitted()
        saved.save(path, self.report, self.program, data, guide_state, self._held(), self.gaussian)

    @in_float64
    def log_likelihood(self) -> Draws:
        """log p(x_i | z) of every observed element at every posterior draw: {site: (draws, *shape)}."""
        if self.data is None:
            raise PplError("the pointwise log-likelihood needs the fit's data: this saved fit was read back "
                           "without them")
        return engine.log_likelihood(self.program, self.data, self.draws)

    def to_arviz(self, predictive: int = 0, log_likelihood: bool = True):
        """An ArviZ `InferenceData`: the posterior draws (per chain for NUTS), the observed
        data, the pointwise log-likelihood (`az.loo`, `az.waic`, `az.compare` read it) where
        the model has one, NUTS's `sample_stats`, and `predictive` posterior predictive
        draws when asked for."""
        from compiler.results import export

        pointwise = self.log_likelihood() if log_likelihood and self.has_log_likelihood else None
        return export.inference_data(self.draws, self.observed(), self.predict(predictive) if predictive else None,
                                     chains=self.report.chains or 1, log_likelihood=pointwise,
                                     sample_stats=self.sample_stats, dims=self.report.dims, coords=self.report.coords)

    @property
    def has_log_likelihood(self) -> bool:
        """Whether each observation's likelihood can be computed: not where a discrete latent
        (or chain) is summed out, nor without the data."""
        return self.data is not None and not any(s.enumerated or s.chain for s in self.program.ir.latents)

    def write_draws(self, path: str | Path) -> None:
        """The draws as CSV, one column per scalar element (`beta[0]`, ...), and for NUTS a
        `chain` column."""
        from compiler.results import export

        export.write_draws_csv(self.draws, path, self.report.chains, self._element)

    def write_idata(self, path: str | Path, predictive: int = 0) -> None:
        """An ArviZ `InferenceData` (`to_arviz`) as netCDF."""
        from compiler.results import export

        export.write_netcdf(self.to_arviz(predictive), path)

    def write_plot(self, path: str | Path) -> list[Path]:
        """The ELBO trace and every scalar element's marginal posterior, 12 panels a page: a PNG per page
        (`fit.png`, `fit-2.png`, ...) or, for a `.pdf` path, one PDF of them all. Returns the files written."""
        from compiler.results import export

        step = "L-BFGS call (10 iterations)" if self.report.optimizer == "lbfgs" else "step"
        return export.write_plot(self.draws, self.elbo_trace, path, self.report.spec, step, self._element)

    def write_predictive(self, predictive: Draws, path: str | Path, data: Data | None = None) -> None:
        """Predictive draws (`predict`) for `data` (by default the fitted data) as CSV, or for `.nc`
        as InferenceData beside this fit's posterior: `posterior_predictive` for the fitted data,
        `predictions` and `predictions_constant_data` (the data's arrays other than observations) for other data."""
        from compiler.results import export

        data = self.data if data is None or self.data is None else data.coded_as(self.data.labels, self.program.ir)
        constant = None
        if data is not None and (self.data is None or data.digest != self.data.digest):
            observed = {site.name for site in self.program.ir.observed}
            constant = {decl.name: data[decl.name] for decl in self.program.ir.data if decl.name not in observed}
        export.write_predictive(predictive, path, self.draws, self.observed(), data.origin if data else None, constant,
                                self._element, self.report.dims, self.report.coords)

    def observed(self) -> dict[str, torch.Tensor]:
        """The observed data by site; none for a saved fit read back without its data."""
        if self.data is None:
            return {}
        data = self.data.in_memory()
        return {site.name: data[site.name] for site in self.program.ir.observed}

    def _fitted(self) -> tuple[Data, dict[str, Any]]:
        if self.data is None or self.guide_state is None:
            raise PplError("this needs a VI fit with its data: NUTS draws and reports read back without "
                           "their data have no guide to save")
        return self.data, self.guide_state

    def _element(self, name: str, position: tuple[int, ...]) -> str:
        """An element's name in tables and files: `a[Boston]` along an axis named by labels."""
        return render.element_name(self.report, name, position)

    def _held(self) -> int:
        """How many posterior draws the fit holds (those the report summarised)."""
        return next(iter(self.draws.values())).shape[0] if self.draws else engine.run_config().draws


def fit_vi(program: CompiledProgram, data: Data, config: RunConfig) -> Fit:
    """Fit the guide by maximising the ELBO (`inference.fit`); its warnings raised (`warned`)."""
    result = engine.fit(program, data, config)
    report = summarise.vi_report(program, result, config, data)
    warned.raise_warnings(summarise.vi_warnings(result, data), _note(report))
    return Fit(report, program, data, result.draws, result.guide_state, tuple(result.elbo_trace),
               gaussian=result.gaussian)


def fit_nuts(program: CompiledProgram, data: Data, config: NutsConfig) -> Fit:
    """Sample the posterior with NUTS (`inference.nuts`); its warnings raised (`warned`)."""
    result = engine.sample(program, data, config)
    stats = result.stats
    report = summarise.nuts_report(program, result, config, data)
    warned.raise_warnings(summarise.nuts_warnings(result, data), _note(report))
    return Fit(report, program, data, result.draws,
               diagnostics={"r_hat": result.rhat, "ess_bulk": result.ess},
               sample_stats={"diverging": stats.diverging, "n_steps": stats.n_steps, "tree_depth": stats.tree_depth,
                             "step_size": stats.step_size})


def _note(report: Report) -> str:
    """How a fit ended, in one line, for the "pplc" logger."""
    ended = "interrupted" if report.interrupted else "converged" if report.converged else "not converged"
    warnings = f"{len(report.warnings)} warning" + ("" if len(report.warnings) == 1 else "s")
    if report.method == "nuts":
        return (f"{report.spec}: NUTS, {report.chains} chains of {report.steps} draws, {ended}, "
                f"{report.divergences} divergent transitions, {warnings}")
    khat = "" if report.khat is None else f", Pareto k̂ {report.khat:.2f}"
    return (f"{report.spec}: VI ({report.optimizer}), {ended} after {report.steps} steps, ELBO {report.elbo:.6g}"
            f"{khat}, {warnings}")


def fit_saved(fit_file: saved.SavedFit, program: CompiledProgram, data: Data | None, path: str | Path) -> Fit:
    """A saved fit back as a `Fit`: with its data, the guide restored and the report's draws
    drawn again (`saved.redraw`: the same Gaussian and seed, the same draws); without, its report only."""
    if data is None:
        return Fit(fit_file.report, program, None)
    saved.check_pairing(fit_file, None, data)
    guide_state = saved.restore_guide(fit_file, program, data, path)
    draws, gaussian = saved.redraw(fit_file, program, data, guide_state, path)
    return Fit(fit_file.report, program, data, draws, guide_state, gaussian=gaussian)
