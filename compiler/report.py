"""Phase 5, report: `FitResult` -> `Report` (data) -> a table or JSON (presentation).

The JSON schema is the pydantic `Report`; the terminal table is rendered
from the same object, so the two never disagree.
"""

from __future__ import annotations

import itertools
from typing import Union

from pydantic import BaseModel, ConfigDict
from typing_extensions import TypeAliasType

# Scalars, or nested lists shaped like an array-valued site.
Nested = TypeAliasType("Nested", Union[float, list["Nested"]])

MAX_ROWS_PER_ARRAY = 10
COLUMNS = ("mean", "sd", "q05", "q50", "q95")
HEADINGS = ("mean", "sd", "5%", "50%", "95%")


class Summary(BaseModel):
    """Posterior summary of one site; arrays are nested lists shaped like the site."""

    model_config = ConfigDict(frozen=True)

    mean: Nested
    sd: Nested
    q05: Nested
    q50: Nested
    q95: Nested


class Report(BaseModel):
    model_config = ConfigDict(frozen=True)

    spec: str
    guide: dict[str, str]
    elbo: float
    steps: int
    converged: bool
    interrupted: bool = False
    posterior: dict[str, Summary]
    params: dict[str, Nested]
    seed: int
    discrete: dict[str, Nested] = {}  # enumerated latent -> P(z = k), k along the last axis
    warnings: list[str] = []

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    def table(self) -> str:
        return render_table(self)


def build_report(program, result, config, warnings: tuple[str, ...] = ()) -> Report:
    import torch

    posterior = {}
    for name, draws in result.draws.items():
        draws = draws.double()
        quantiles = torch.quantile(draws, torch.tensor([0.05, 0.5, 0.95], dtype=draws.dtype), dim=0)
        posterior[name] = Summary(
            mean=draws.mean(0).tolist(), sd=draws.std(0).tolist(),
            q05=quantiles[0].tolist(), q50=quantiles[1].tolist(), q95=quantiles[2].tolist(),
        )
    notes = list(warnings)
    if result.interrupted:
        notes.append(f"interrupted at step {len(result.elbo_trace)}: this is the posterior reached so far")
    elif not result.converged:
        notes.append(f"the ELBO was still changing after {len(result.elbo_trace)} steps: "
                     "the fit has not converged; try more --steps or a larger --max-steps")
    return Report(
        spec=program.source.name,
        guide=program.code.guide_families,
        elbo=result.elbo,
        steps=len(result.elbo_trace),
        converged=result.converged,
        interrupted=result.interrupted,
        posterior=posterior,
        params={name: value.tolist() for name, value in result.params.items()},
        seed=config.seed,
        discrete={name: value.tolist() for name, value in result.discrete.items()},
        warnings=notes,
    )


def render_table(report: Report) -> str:
    status = "converged" if report.converged else "NOT converged"
    lines = [f"{report.spec}: SVI, {report.steps} steps, seed {report.seed} ({status})"]
    rows = [row for name, summary in report.posterior.items() for row in _rows(name, summary)]
    if rows:
        width = max(len(r[0]) for r in rows)
        lines.append(" " * width + "".join(f"{h:>10}" for h in HEADINGS))
        for label, *values in rows:
            lines.append(label.ljust(width) + "".join(
                f"{v:>10}" if isinstance(v, str) else f"{v:>10.4g}" for v in values))
    for name, value in report.params.items():
        lines.append(f"param {name} = {_format_nested(value)}")
    for name, value in report.discrete.items():
        lines.append(f"P({name} = k), k = 0, 1, ...: {_format_rows(value)}")
    lines.append(f"ELBO {report.elbo:.4g}")
    lines += [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def _rows(name: str, summary: Summary):
    """One row per scalar element, `name[i, j]`; long arrays are folded with a count."""
    columns = [getattr(summary, c) for c in COLUMNS]
    if not isinstance(columns[0], list):
        yield (name, *columns)
        return
    elements = list(_flatten(columns[0]))
    flat = [list(_flatten(c)) for c in columns]
    for index, (position, _) in enumerate(elements):
        if index == MAX_ROWS_PER_ARRAY:
            yield (f"... {len(elements) - index} more of {name}", "", "", "", "", "")
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
