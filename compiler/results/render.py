"""Phase 5, presentation: a `Report` as the terminal table, and VI against NUTS (`pplc vi-vs-nuts`).

Pure functions of the report data: what `pplc run` and `pplc vi-vs-nuts` print.
"""

from __future__ import annotations

import html
import itertools

from compiler.results.report import (
    KHAT_UNRELIABLE,
    UNIFORM_WEIGHTS_SD,
    ComparedElement,
    Nested,
    Report,
    Summary,
    weights_uniform,
)

MAX_ROWS_PER_ARRAY = 10
COLUMNS = ("mean", "sd", "hdi_3", "hdi_97", "q05", "q50", "q95")
HEADINGS = ("mean", "sd", "hdi_3%", "hdi_97%", "5%", "50%", "95%")  # az.summary's, then quantiles


def render_table(report: Report) -> str:
    lines = [_heading(report)]
    rows = _table_rows(report)
    if rows:
        width = max(len(r[0]) for r in rows)
        lines.append(" " * width + "".join(f"{h:>10}" for h in _headings(report)))
        for label, *values in rows:
            lines.append(label.ljust(width) + "".join(
                f"{v:>10}" if isinstance(v, str) else f"{v:>10.4g}" for v in values))
    return "\n".join(lines + _notes(report) + [f"warning: {w}" for w in report.warnings])


def render_html(report: Report) -> str:
    """The same report as one HTML fragment, for notebooks (`Fit._repr_html_`): every text escaped."""
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in ("", *_headings(report)))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v if isinstance(v, str) else f'{v:.4g}')}</td>"
                                    for v in row) + "</tr>" for row in _table_rows(report))
    notes = "".join(f"<p>{html.escape(line)}</p>" for line in _notes(report))
    warnings = "".join(f'<p style="color:#b00"><b>warning:</b> {html.escape(w)}</p>' for w in report.warnings)
    return (f"<div><p><b>{html.escape(_heading(report))}</b></p><table><thead><tr>{cells}</tr></thead>"
            f"<tbody>{body}</tbody></table>{notes}{warnings}</div>")


def element_name(report: Report, name: str, position: tuple[int, ...]) -> str:
    """The name of one element of a site: `a[3]`, or `a[Boston]` along an axis named by labels (`Report.dims`)."""
    if not position:
        return name
    axes = report.dims.get(name, [])
    parts = [report.coords[axes[axis]][index] if axis < len(axes) and axes[axis] else str(index)
             for axis, index in enumerate(position)]
    return f"{name}[{', '.join(parts)}]"


def _heading(report: Report) -> str:
    status = "converged" if report.converged else "NOT converged"
    if report.method == "nuts":
        run = f"NUTS, {report.chains} chains x {report.steps} draws, {report.divergences} divergences"
    elif report.optimizer == "lbfgs":
        run = f"VI by L-BFGS on fixed draws, {report.steps} iterations"
    else:
        run = f"SVI by Adam, {report.steps} steps"
    return f"{report.spec}: {run}, seed {report.seed} ({status})"


def _headings(report: Report) -> tuple[str, ...]:
    return HEADINGS + (("r_hat", "ess") if report.method == "nuts" else ())


def _table_rows(report: Report) -> list:
    return [row for name, summary in report.posterior.items() for row in _rows(report, name, summary)]


def _notes(report: Report) -> list[str]:
    """What follows the table: params, discrete probabilities, the ELBO, where the draws come from, k̂."""
    lines = [f"param {name} = {_format_nested(value)}" for name, value in report.params.items()]
    lines += [f"P({name} = k), k = 0, 1, ...: {_format_rows(value)}" for name, value in report.discrete.items()]
    if report.elbo is not None:
        lines.append(f"ELBO {report.elbo:.4g}")
    if report.covariance is not None:
        lines.append(f"draws: the {report.covariance} Gaussian" + (", resampled by PSIS weights" if report.resampled
                                                                   else ""))
    if report.log_ratio_sd is not None and weights_uniform(report.log_ratio_sd):
        lines.append(f"importance weights p/q barely vary (sd of log p/q {report.log_ratio_sd:.2g} < "
                     f"{UNIFORM_WEIGHTS_SD}): the approximation matches the posterior")
    elif report.khat is not None:
        threshold = report.khat_threshold if report.khat_threshold is not None else KHAT_UNRELIABLE
        shift = "" if report.reweighting_shift is None else (
            f"; reweighting would move a mean or sd by at most {report.reweighting_shift:.2g} sds")
        error = "" if report.khat_error is None else f" ± {report.khat_error:.2f} from {report.khat_draws} draws"
        lines.append(f"Pareto k̂ {report.khat:.2f}{error} (importance weights reliable below {threshold:.2f}){shift}")
    sampled = _sampled_rows(report)
    if sampled:
        lines.append(f"measured on a sample of the rows: {'; '.join(sampled)} (standard errors of the sampling)")
    return lines


def _sampled_rows(report: Report) -> list[str]:
    found = []
    if report.covariance_rows is not None:
        rows = report.covariance_rows
        found.append(f"the covariance on {rows.rows:,} of {rows.out_of:,}, each sd within ±{rows.error:.1%}")
    if report.khat_rows is not None:
        rows = report.khat_rows
        found.append(f"the importance weights on {rows.rows:,} of {rows.out_of:,}, each log p/q within ±{rows.error:.2g}")
    return found


def compare(vi: Report, nuts: Report) -> list[ComparedElement]:
    """VI against NUTS per scalar element of every site both report."""
    rows = []
    for name in vi.posterior:
        if name not in nuts.posterior:
            continue
        a, b = vi.posterior[name], nuts.posterior[name]
        for (position, vi_mean), (_, nuts_mean), (_, vi_sd), (_, nuts_sd) in zip(
                _flatten(a.mean), _flatten(b.mean), _flatten(a.sd), _flatten(b.sd)):
            label = element_name(vi, name, position)
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


def _rows(report: Report, name: str, summary: Summary):
    """One row per scalar element, `name[i, j]` (`name[Boston]` along an axis named by labels); long arrays
    are folded with a count."""
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
        yield (element_name(report, name, position), *(c[index][1] for c in flat))


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
