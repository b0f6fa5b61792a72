"""Phase 5 (files): `pplc explain SPEC --html FILE`, the joint shown as one self-contained page.

The spec beside the generated `model` and `guide`, every statement linked to its Pyro site(s)
(hover or click one and its pair lights up); the factorisation of p(x, z) that `explain` writes;
one traced draw, the very `explain.trace` that `pplc explain --trace` prints; and, from a fit,
the ELBO trace and each scalar latent's prior beside its posterior. Inline CSS, script and SVG
only: the page loads nothing. Every text that comes from the spec is escaped.
"""

from __future__ import annotations

import ast
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from compiler.frontend import distributions, ir
from compiler.results import charts, engine, explain, files

if TYPE_CHECKING:
    import torch

    from compiler.backend.codegen import GeneratedCode
    from compiler.data.values import Data
    from compiler.results.fit import Fit
    from compiler.results.program import CompiledProgram

PRIOR_DRAWS = 1000
PYRO_SITE_CALLS = ("sample", "deterministic", "factor", "param")


def write_page(path: str | Path, program: CompiledProgram, data: Data, fit: Fit | None, seed: int = 0,
               fitted: bool = False) -> Path:
    """Write the page to `path` (whole or not at all); the traced draw is from the initial guide, or with
    `fitted` from the fit's, as `pplc explain --trace [--fitted] --seed SEED` draws it."""
    text = page(program, data, fit, seed, fitted)
    return files.write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def page(program: CompiledProgram, data: Data, fit: Fit | None, seed: int = 0, fitted: bool = False) -> str:
    if fitted and fit is None:
        raise ValueError("a draw from the fitted guide needs the fit")
    traced = explain.trace(program, data, fit.guide_state if fitted else None, seed)
    sections = [_code_section(program), _joint_section(explain.explain(program)), _trace_section(traced)]
    if fit is not None:
        sections.append(_fit_section(program, data, fit, seed))
    title = f"{program.source.name}: the joint, the guide and the ELBO"
    return TEMPLATE.format(title=escape(title), sections="\n".join(sections), style=STYLE, script=SCRIPT)


# The spec beside the generated code ---------------------------------------------------------


def _code_section(program: CompiledProgram) -> str:
    spec_sites = _spec_lines(program.ir)
    owners = _parameter_sites(program.code)
    panes = [_pane("spec", program.source.name, program.source.text.splitlines(), 1, spec_sites)]
    for function in ("model", "guide"):
        first, lines, sites = _function_lines(program.code.source, function, owners)
        panes.append(_pane(function, f"def {function}(data)", lines, first, sites))
    return ('<section id="code"><h2>The spec and the Pyro code it compiles to</h2>'
            '<p class="hint">Hover a statement, or click it to keep it lit: its Pyro sites light up.</p>'
            f'<div class="panes">{"".join(panes)}</div></section>')


def _parameter_sites(code: GeneratedCode) -> dict[str, str]:
    """Each guide parameter's site: its latent's, or where every latent shares it (one joint Gaussian), the
    site that draws them all at once."""
    sites: dict[str, str] = {}
    for latent, parameters in code.guide_parameters.items():
        for parameter in parameters:
            sites[parameter] = latent if parameter not in sites else (code.joint_site or parameter)
    return sites


def _spec_lines(model: ir.Model) -> dict[int, str]:
    """Spec line -> the site its statement makes (every line of a statement that spans several)."""
    return {line: statement.name for statement in model.statements
            for line in range(statement.span.line, statement.span.end_line + 1)}


def _function_lines(source: str, function: str, owners: dict[str, str]) -> tuple[int, list[str], dict[int, str]]:
    """The generated function's first line, its lines, and line -> site for each statement that
    makes a Pyro site (a guide's `pyro.param` belongs to its latent's site)."""
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == function)
    sites = {}
    for statement in ast.walk(node):
        if isinstance(statement, ast.stmt) and not hasattr(statement, "body"):  # a simple statement, not a block
            site = _site_of(statement)
            if site is not None:
                sites.update({line: owners.get(site, site) for line in range(statement.lineno, statement.end_lineno + 1)})
    return node.lineno, source.splitlines()[node.lineno - 1:node.end_lineno], sites


def _site_of(statement: ast.stmt) -> str | None:
    for node in ast.walk(statement):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PYRO_SITE_CALLS
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "pyro"
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            return node.args[0].value
    return None


def _pane(kind: str, heading: str, lines: list[str], first: int, sites: dict[int, str]) -> str:
    anchored: set[str] = set()
    rows = []
    for number, text in enumerate(lines, first):
        site = sites.get(number)
        if site is None:
            attributes = f' id="{kind}-line-{number}"'
        elif site in anchored:
            attributes = f' id="{kind}-line-{number}" data-site="{escape(site)}"'
        else:  # a site's first line is its anchor, #spec-f (no name has a hyphen: no clash with #spec-line-3)
            anchored.add(site)
            attributes = f' id="{kind}-{escape(site)}" data-site="{escape(site)}"'
        rows.append(f'<span class="line"{attributes}><span class="number">{number}</span>{escape(text)}</span>')
    return (f'<div class="pane" id="pane-{kind}"><h3>{escape(heading)}</h3>'
            f'<pre><code>{"".join(rows)}</code></pre></div>')


# The factorisation ---------------------------------------------------------------------------


def _joint_section(explanation: explain.Explanation) -> str:
    factors = [t for t in explanation.terms if t.kind not in explain.WHERE]
    defined = [t for t in explanation.terms if t.kind in explain.WHERE]
    rows = [_term_row(explanation.joint + " =" if i == 0 else "+", t) for i, t in enumerate(factors)]
    rows += [_term_row("where", t) for t in defined]
    q = "log q(" + ", ".join(t.site for t in explanation.guide) + ") ="
    guide_rows = [_term_row(q if i == 0 else "+", t) for i, t in enumerate(explanation.guide)]
    return ('<section id="joint"><h2>The joint p(x, z), the guide q(z) and the ELBO</h2>'
            f'<table class="terms">{"".join(rows)}</table>'
            f'<table class="terms">{"".join(guide_rows)}</table>'
            f'<p class="elbo">{escape(explanation.elbo)}</p></section>')


def _term_row(lead: str, term: explain.Term) -> str:
    over = f"; {'; '.join(term.plates)}" if term.plates else ""
    over += f"; {term.density}" if term.density else ""
    return (f'<tr data-site="{escape(term.site)}"><td class="lead">{escape(lead)}</td>'
            f'<td class="formula">{escape(term.formula)}</td>'
            f'<td class="role">{escape(term.kind)} {escape(term.site)}: {escape(term.role)}{escape(over)}</td></tr>')


# One traced draw -----------------------------------------------------------------------------


def _trace_section(traced: explain.TraceExplanation) -> str:
    which = "the fitted guide" if traced.fitted else "the initial guide"
    tables = [_site_table("model (p)", "model", traced.model_sites, "log p(x, z)", traced.log_joint),
              _site_table("guide (q)", "guide", traced.guide_sites, "log q(z)", traced.log_guide)]
    notes = "".join(f'<p class="note">note: {escape(n)}</p>' for n in traced.notes)
    return (f'<section id="trace"><h2>One ELBO term, with z drawn from {which}</h2>'
            '<p class="hint">Latents at the guide\'s draw, observed sites scored at the data; '
            'each table\'s sites add up to its total.</p>'
            f'{"".join(tables)}'
            f'<p class="total">ELBO term = log p(x, z) − log q(z) = {_number("elbo", traced.elbo)}'
            ' (the ELBO averages many such terms)</p>'
            f'{notes}</section>')


def _site_table(title: str, side: str, rows: list[explain.SiteRow], total_name: str, total: float) -> str:
    body = "".join(
        f'<tr data-site="{escape(r.site)}" id="trace-{side}-{escape(r.site)}"><td>{escape(r.site)}</td>'
        f'<td>{escape(r.kind)}</td><td class="number">{escape(r.value)}</td><td class="number">{r.terms}</td>'
        f'<td class="number">{_number(f"{side}-{r.site}", r.log_prob_sum)}</td></tr>' for r in rows)
    key = "log_joint" if side == "model" else "log_guide"
    return (f'<table class="sites" id="trace-{side}"><tr><th>{title}</th><th>kind</th><th>value</th><th>terms</th>'
            f'<th>log-prob sum</th></tr>{body}<tr class="sum"><td colspan="4">{total_name} = Σ</td>'
            f'<td class="number">{_number(key, total)}</td></tr></table>')


def _number(name: str, value: float) -> str:
    """Shown as `explain --trace` prints it; the exact float in `data-value`, as its JSON holds it."""
    return f'<span class="value" data-name="{escape(name)}" data-value="{value!r}">{value:.4f}</span>'


# After a fit ---------------------------------------------------------------------------------


def _fit_section(program: CompiledProgram, data: Data, fit: Fit, seed: int) -> str:
    figures, notes = _marginals(program, data, fit, seed)
    if fit.elbo_trace:
        step = "L-BFGS call (10 iterations)" if fit.optimizer == "lbfgs" else "step"  # as Fit.write_plot labels it
        figures.insert(0, charts.line_chart(fit.elbo_trace, "ELBO during the fit", step))
    how = ", ".join([fit.method.upper(), *([fit.optimizer] if fit.optimizer else []), f"seed {fit.seed}",
                     *(["interrupted"] if fit.interrupted else [])])
    return (f'<section id="fit"><h2>After the fit ({escape(how)})</h2>'
            '<p class="hint"><span class="key prior">prior</span> draws from the model, '
            '<span class="key posterior">posterior</span> draws from the fit.</p>'
            f'<div class="charts">{"".join(figures)}</div>'
            + "".join(f'<p class="hint">{note}</p>' for note in notes) + "</section>")


def _marginals(program: CompiledProgram, data: Data, fit: Fit, seed: int) -> tuple[list[str], list[str]]:
    """A chart of each scalar latent's prior and posterior, and notes (HTML) on what is not drawn."""
    scalars = [s.name for s in program.ir.guided_latents if not s.shape and s.name in fit.draws]
    improper = [s.name for s in program.ir.latents if distributions.TABLE[s.distribution.name].improper]
    prior = {} if improper else _prior_draws(program, data, scalars, seed)
    figures = []
    for name in scalars:
        chart = charts.densities(prior[name].cpu().numpy() if prior else None, fit.draws[name].cpu().numpy(),
                                 f"{escape(name)}: {'prior and ' if prior else ''}posterior")
        figures.append(f'<figure data-site="{escape(name)}" id="marginal-{escape(name)}">{chart}</figure>')
    others = [s.name for s in program.ir.guided_latents if s.name not in scalars]
    notes = []
    if improper and scalars:
        notes.append(f"The prior of {escape(', '.join(improper))} is improper: it has no draws, so only the posterior "
                     "is drawn.")
    if others:
        notes.append(f"Latents with more than one element ({escape(', '.join(others))}) are drawn by "
                     "<code>pplc run --plot</code>.")
    return figures, notes


def _prior_draws(program: CompiledProgram, data: Data, names: list[str], seed: int) -> dict[str, torch.Tensor]:
    """Draws of the named scalar latents from their prior: the model, given nothing but the data, run
    once under a plate of draws left of its own plates (as the fit vectorises its particles)."""
    import pyro
    import torch
    from pyro import poutine

    if not names:
        return {}
    draws = pyro.plate("__prior_draws", PRIOR_DRAWS, dim=-(program.ir.max_plate_nesting + 1))
    with engine.guide_scope(None), torch.no_grad(), draws:
        pyro.set_rng_seed(seed)
        trace = poutine.trace(program.model).get_trace(data)
    return {name: trace.nodes[name]["value"].reshape(PRIOR_DRAWS) for name in names}


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; } h3 { font-size: 0.95em; margin: 0.2em 0; }
.panes { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 0.8em; }
pre { background: #f6f8fa; padding: 0.5em; overflow-x: auto; margin: 0; font-size: 12px; }
.line { display: block; white-space: pre; }
.line .number { display: inline-block; width: 2.5em; color: #999; user-select: none; }
[data-site] { cursor: pointer; }
.hover { background: #fff3b0; }
.selected { background: #ffd54f; outline: 1px solid #e0a800; }
table { border-collapse: collapse; margin: 0.6em 0; }
td, th { padding: 0.15em 0.7em; text-align: left; }
.terms .lead { text-align: right; font-family: monospace; white-space: pre; }
.terms .formula { font-family: monospace; } .terms .role { color: #555; }
.sites th { border-bottom: 1px solid #ccc; } .sites .number { text-align: right; font-family: monospace; }
.sites .sum td { border-top: 1px solid #ccc; font-weight: 600; }
.elbo, .total { font-family: monospace; font-weight: 600; }
.hint, .note { color: #555; }
.charts { display: flex; flex-wrap: wrap; gap: 0.6em; } figure { margin: 0; }
.chart text { font-size: 10px; fill: #333; } .chart .caption { font-size: 11px; font-weight: 600; }
.chart .axes { stroke: #888; fill: none; }
.chart polyline { fill: none; stroke-width: 1.5; }
.chart .series, .chart .posterior { stroke: #1f6fd1; } .chart .prior { stroke: #999; stroke-dasharray: 4 2; }
.key.prior { color: #777; } .key.posterior { color: #1f6fd1; }
"""

# Hovering a linked element lights every element of its site; a click keeps it lit until the next.
SCRIPT = """
const linked = Array.from(document.querySelectorAll('[data-site]'));
function light(site, name) {
  for (const element of linked) element.classList.toggle(name, element.dataset.site === site);
}
for (const element of linked) {
  element.addEventListener('mouseenter', () => light(element.dataset.site, 'hover'));
  element.addEventListener('mouseleave', () => light(null, 'hover'));
  element.addEventListener('click', () => light(element.dataset.site, 'selected'));
}
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<h1>{title}</h1>
{sections}
<script>{script}</script>
</body>
</html>
"""
