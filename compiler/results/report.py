"""Phase 5, report: what a fit found, as pure data (`Report`, `Summary`, `ComparedElement`).

The JSON schema is the pydantic `Report`; `summarise` builds it from the
engine's records, `render` turns it into the terminal table, and `fit.Fit`
holds it beside what produced it (draws, data, the fitted guide). Nothing here
runs inference or writes files: a `Report` read back from JSON is the same
object as the one a fit returned.
"""

from __future__ import annotations

from typing import Union

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypeAliasType

# Scalars, or nested lists shaped like an array-valued site.
Nested = TypeAliasType("Nested", Union[float, list["Nested"]])

KHAT_GOOD, KHAT_UNRELIABLE = 0.5, 0.7  # Yao et al. (2018)
# Below this sd of log p(x, z)/q(z), k̂'s tail carries no weight: reweighting the draws
# from q towards the posterior moves a mean by at most about sd(weights) x sd(value)
# (Cauchy-Schwarz). Measured over the 24 posteriors of specs/ and specs/posteriordb/ with
# references (docs/inference.md): k̂ > 0.7 with an sd under 0.3 came with right answers
# every time (the coin: sd 0.014, k̂ 3.2), and k̂ above its threshold with an sd of at
# least 0.3 marked every approximation that was materially off.
UNIFORM_WEIGHTS_SD = 0.3
# Where k̂ is above its threshold on weights that do vary, the report warns only if
# reweighting its draws would move some coordinate's mean by this many sds, or its sd by
# this much (in log): the "materially wrong" is 0.25 sds and 0.75-1.33x (log 0.29),
# and heavy-tailed weights understate the change. Measured (bench/uncertainty.py,
# docs/inference.md): 0.16 on mesquite's linear-response Gaussian, whose sds are right;
# 0.23 to 0.96 on the mean-field Gaussians that are off.
MATERIAL_SHIFT = 0.2
# Where k̂ is at or below its threshold, the report still warns if reweighting would move some
# coordinate by FAR_SHIFT (mean in sds, or log sd): the Gaussian then barely reaches where the
# posterior is, so few of its draws land there, k̂ reads low (the more so from the few hundred
# draws of a large-data fit), and the reweighted draws fall short. Twice the 0.25 sds that make
# an answer materially wrong. Measured (bench/uncertainty.py, docs/inference.md): gp_pois_regr's
# default, resampled yet 0.72 reference sds off, 0.71 (k̂ 0.56), and 0.63-0.83 with k̂'s draws
# capped at 400 or 200; every answer within the bar at most 0.28 (eight schools' mean-field
# Gaussians, k̂ 0.62-0.65), at defaults at most 0.22, and at most 0.14 from 200 draws.
FAR_SHIFT = 0.5


class RowSample(BaseModel):
    """A diagnostic measured on a uniform sample of the data's rows (inference/sampled_rows.py)."""

    model_config = ConfigDict(frozen=True)

    rows: int
    out_of: int
    # Its standard error from sampling the rows: of each log p(x, z)/q(z) (k̂), or the largest of an
    # sd's, relative to that sd (the covariance).
    error: float


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
    """A fit's findings: the posterior summaries, how the fit went, and the warnings about it."""

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
    covariance: str | None = None  # VI only: the Gaussian the draws come from (linear response | mean-field)
    resampled: bool = False  # VI only: the draws were resampled by their PSIS weights
    khat: float | None = None  # SVI only: Pareto k̂ of p(x, z)/q(z) over draws from the approximation
    khat_threshold: float | None = None  # SVI only: k̂ above it makes importance weights unreliable
    khat_error: float | None = None  # SVI only: k̂'s standard error from this many draws
    khat_draws: int | None = None  # SVI only: the importance draws behind k̂
    log_ratio_sd: float | None = None  # SVI only: the sd of log p(x, z)/q(z) over the same draws
    khat_rows: RowSample | None = None  # SVI only: where the ratios behind k̂ scored a sample of the rows
    covariance_rows: RowSample | None = None  # SVI only: where the linear-response covariance did
    reweighting_shift: float | None = None  # SVI only: how far PSIS reweighting moves a mean (sds) or sd (log)
    divergences: int | None = None  # NUTS only
    warnings: list[str] = []
    # Axes named by labels: site -> per axis the `index` data it is named after (None: numbered), and
    # that data -> its labels in code order, as InferenceData's dims and coords (`data county: index[J][N]`).
    dims: dict[str, list[str | None]] = {}
    coords: dict[str, list[str]] = {}

    def to_json(self) -> str:
        """The report as JSON; fields that do not apply to the method (None) are left out."""
        return self.model_dump_json(indent=2, exclude_none=True)


def weights_uniform(log_ratio_sd: float | None) -> bool:
    """Whether the importance weights barely vary, so that k̂ says nothing (see UNIFORM_WEIGHTS_SD)."""
    return log_ratio_sd is not None and log_ratio_sd < UNIFORM_WEIGHTS_SD


class ComparedElement(BaseModel):
    """One scalar element's posterior by VI against NUTS (`pplc vi-vs-nuts`)."""

    model_config = ConfigDict(frozen=True)

    name: str  # e.g. beta[1]
    vi_mean: float
    nuts_mean: float
    error_in_nuts_sds: float  # (vi mean - nuts mean) / nuts sd
    vi_sd: float
    nuts_sd: float
    sd_ratio: float  # vi sd / nuts sd
