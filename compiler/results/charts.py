"""Phase 5 (files): small inline SVG charts for `explain_html`'s page: the ELBO trace as a line,
a latent's prior and posterior as two density histograms. Plain SVG text, no script and no
external resource, so that the page stays one self-contained file."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

WIDTH, HEIGHT, MARGIN = 380, 150, 46
BINS = 40


def line_chart(values: Sequence[float], label: str, x_name: str) -> str:
    """`values` against their step (1, 2, ...), the first and last step and the range written beside the axes."""
    y = np.asarray(values, dtype=float)
    x = np.arange(1, len(y) + 1, dtype=float)
    points = _points(x, y, (1.0, max(float(x[-1]), 2.0)), _range(y))
    lines = [f'<polyline class="series" points="{points}"/>']
    return _frame(label, lines, (f"{y.min():.4g}", f"{y.max():.4g}"), ("1", str(len(y))), x_name)


def densities(prior: np.ndarray | None, posterior: np.ndarray, label: str) -> str:
    """The draws as density histograms over one window: the posterior's central 99 % joined with the
    prior's central 90 % (a heavy-tailed prior would otherwise squash the posterior). No prior: the
    posterior alone (an improper prior has no draws)."""
    sets = {"posterior": posterior} if prior is None else {"prior": prior, "posterior": posterior}
    low = min(np.quantile(draws, 0.005 if name == "posterior" else 0.05) for name, draws in sets.items())
    high = max(np.quantile(draws, 0.995 if name == "posterior" else 0.95) for name, draws in sets.items())
    if high <= low:  # one value, drawn every time
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, BINS + 1)
    heights = {name: _density(draws, edges) for name, draws in sets.items()}
    top = max(float(h.max()) for h in heights.values()) or 1.0
    lines = []
    for name, height in heights.items():
        x = np.repeat(edges, 2)[1:-1]  # a step outline: each bin's left and right edge at its height
        points = _points(x, np.repeat(height, 2), (low, high), (0.0, top))
        lines.append(f'<polyline class="{name}" points="{points}"/>')
    return _frame(label, lines, ("0", f"{top:.3g}"), (f"{low:.4g}", f"{high:.4g}"), "value")


def _density(draws: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # Normalised by every draw, not only those in the window: the area shown is the mass inside it.
    counts, _ = np.histogram(draws, edges)
    return counts / (len(draws) * np.diff(edges))


def _range(values: np.ndarray) -> tuple[float, float]:
    low, high = float(values.min()), float(values.max())
    return (low - 0.5, high + 0.5) if high == low else (low, high)


def _points(x: np.ndarray, y: np.ndarray, x_range: tuple[float, float], y_range: tuple[float, float]) -> str:
    inner_width, inner_height = WIDTH - 2 * MARGIN, HEIGHT - 2 * MARGIN
    px = MARGIN + (x - x_range[0]) / (x_range[1] - x_range[0]) * inner_width
    py = HEIGHT - MARGIN - (y - y_range[0]) / (y_range[1] - y_range[0]) * inner_height
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))


def _frame(label: str, lines: list[str], y_ticks: tuple[str, str], x_ticks: tuple[str, str], x_name: str) -> str:
    """The axes, their end values and the caption around the plotted lines (`label` is escaped by the caller)."""
    bottom, right = HEIGHT - MARGIN, WIDTH - MARGIN
    return "\n".join([
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img">',
        f"<title>{label}</title>",
        f'<path class="axes" d="M{MARGIN},{MARGIN} V{bottom} H{right}"/>',
        *lines,
        f'<text x="{MARGIN - 4}" y="{bottom}" text-anchor="end">{y_ticks[0]}</text>',
        f'<text x="{MARGIN - 4}" y="{MARGIN + 4}" text-anchor="end">{y_ticks[1]}</text>',
        f'<text x="{MARGIN}" y="{bottom + 14}" text-anchor="middle">{x_ticks[0]}</text>',
        f'<text x="{right}" y="{bottom + 14}" text-anchor="middle">{x_ticks[1]}</text>',
        f'<text x="{WIDTH / 2}" y="{bottom + 26}" text-anchor="middle">{x_name}</text>',
        f'<text x="{WIDTH / 2}" y="{MARGIN - 12}" text-anchor="middle" class="caption">{label}</text>',
        "</svg>",
    ])
