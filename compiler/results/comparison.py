"""Phase 5, comparison: fits of several models to the same observations, ranked by PSIS-LOO.

ArviZ does the statistics (`az.loo` per model, `az.compare` for the ranking, the
stacking weights and the standard errors of the differences); this module checks that
the models saw the same observations, hands ArviZ each fit's pointwise
log-likelihood, and keeps what it returns as pure data (`ModelComparison`), with each
model's PSIS k̂ per observation: where k̂ > 0.7 the observation's LOO estimate is not
to be trusted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from compiler.errors import DataError

if TYPE_CHECKING:
    from compiler.results.fit import Fit

KHAT_RELIABLE = 0.7  # PSIS-LOO's own bound for a trustworthy observation (Vehtari et al. 2024)
ALL_OBSERVATIONS = "all observations"  # the one variable LOO reads where a model has several observed sites


class ComparedModel(BaseModel):
    """One row of `az.compare`'s table, and the model's PSIS k̂ per observation."""

    model_config = ConfigDict(frozen=True)

    name: str
    rank: int
    elpd_loo: float
    p_loo: float
    elpd_diff: float
    weight: float
    se: float
    dse: float
    warning: bool  # ArviZ's: some k̂ above its threshold
    method: str  # vi | nuts: where the draws came from
    pareto_k: list[float]  # per observation, in the order of the data (sites by name, elements row-major)

    @property
    def unreliable(self) -> int:
        return sum(k > KHAT_RELIABLE for k in self.pareto_k)


class ModelComparison(BaseModel):
    model_config = ConfigDict(frozen=True)

    observations: int
    models: list[ComparedModel]  # best first


def compare(fits: dict[str, Fit]) -> ModelComparison:
    """Rank the fitted models by their expected log predictive density (PSIS-LOO)."""
    import arviz

    _same_observations(fits)
    data = {name: _loo_data(fit) for name, fit in fits.items()}
    table = arviz.compare(data, ic="loo", var_name=ALL_OBSERVATIONS)
    pareto_k = {name: arviz.loo(idata, pointwise=True, var_name=ALL_OBSERVATIONS).pareto_k.values.tolist()
                for name, idata in data.items()}
    models = [ComparedModel(name=name, rank=int(row["rank"]), elpd_loo=row["elpd_loo"], p_loo=row["p_loo"],
                            elpd_diff=row["elpd_diff"], weight=row["weight"], se=row["se"], dse=row["dse"],
                            warning=bool(row["warning"]), method=fits[name].method, pareto_k=pareto_k[name])
              for name, row in table.iterrows()]
    return ModelComparison(observations=len(pareto_k[models[0].name]), models=models)


def render(comparison: ModelComparison) -> str:
    """`az.compare`'s table, and which observations LOO cannot vouch for."""
    headings = ("rank", "elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse", "k̂ > 0.7")
    width = max(len("model"), *(len(m.name) for m in comparison.models))
    lines = [f"PSIS-LOO over {comparison.observations} observations (higher elpd_loo predicts better)",
             f"{'model':<{width}}  " + "  ".join(f"{h:>9}" for h in headings)]
    for m in comparison.models:
        values = (m.elpd_loo, m.p_loo, m.elpd_diff, m.weight, m.se, m.dse)
        lines.append(f"{m.name:<{width}}  {m.rank:>9}  " + "  ".join(f"{v:>9.2f}" for v in values)
                     + f"  {m.unreliable:>9}")
    for m in comparison.models:
        if m.unreliable:
            worst = sorted(range(len(m.pareto_k)), key=lambda i: -m.pareto_k[i])[:5]
            shown = ", ".join(f"#{i} ({m.pareto_k[i]:.2f})" for i in worst)
            lines.append(f"warning ({m.name}): PSIS k̂ > {KHAT_RELIABLE} for {m.unreliable} observations, "
                         f"worst {shown}: their LOO terms are unreliable; fit with --method nuts, or check "
                         "them by refitting without them")
    return "\n".join(lines)


def _same_observations(fits: dict[str, Fit]) -> None:
    import torch

    (first, fit), *rest = fits.items()
    observed = fit.observed()
    for name, other in rest:
        theirs = other.observed()
        same = observed.keys() == theirs.keys() and all(
            torch.as_tensor(observed[k]).shape == torch.as_tensor(theirs[k]).shape
            and torch.equal(torch.as_tensor(observed[k]).double(), torch.as_tensor(theirs[k]).double())
            for k in observed)
        if not same:
            raise DataError(f"{first} and {name} were fitted to different observations "
                           f"({', '.join(sorted(observed)) or 'none'} against {', '.join(sorted(theirs)) or 'none'}), "
                           "so their predictive accuracies cannot be compared",
                           hint="observe the same arrays under the same names, and give both the same --data")


def _loo_data(fit: Fit):
    """The fit's InferenceData with one log-likelihood variable over every observation."""
    import arviz
    import torch

    pointwise = fit.log_likelihood()
    chains = fit.report.chains or 1
    joined = torch.cat([pointwise[name].reshape(len(pointwise[name]), -1) for name in sorted(pointwise)], dim=1)
    posterior = {name: value.detach().numpy().reshape((chains, -1) + tuple(value.shape[1:]))
                 for name, value in fit.draws.items()}
    return arviz.from_dict(posterior=posterior,
                           log_likelihood={ALL_OBSERVATIONS: joined.numpy().reshape(chains, -1, joined.shape[1])})
