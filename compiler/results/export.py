"""Phase 5 (files): a fit's draws as the files and objects users already read.

A CSV of draws (one column per scalar element, `beta[0]`, `X[1, 2]`, as ArviZ
and PyMC name them, 0-based like the language; `a[Boston]` along an axis named
by labels, `render.element_name`), an ArviZ `InferenceData` (posterior and observed
data, saved as netCDF; an axis named by labels is a dim with them as coords),
a pandas summary in the layout of `az.summary`, and plots of the ELBO trace and
each latent's marginals (PNG pages or one PDF). Everything is built from the draws and data the fit already
holds; nothing is refitted. Every file is written through
`files.write_atomically`: it appears whole or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from compiler.results import engine, files

PANELS_PER_PAGE = 12  # plots per page of `write_plot`: the ELBO's and every scalar element's marginal

Element = Callable[[str, tuple[int, ...]], str]  # site, position -> the element's name (`render.element_name`)
Dims = dict[str, list[str | None]]  # `Report.dims`


def numbered(name: str, position: tuple[int, ...]) -> str:
    """`f`, `beta[0]`, `X[1, 2]`: an element named by its position alone."""
    return f"{name}[{', '.join(map(str, position))}]" if position else name


def columns(draws: dict[str, torch.Tensor], element: Element = numbered) -> dict[str, np.ndarray]:
    """One column of draws per scalar element: `f`, `beta[0]`, `X[1, 2]` (`element` names them)."""
    table: dict[str, np.ndarray] = {}
    for name, values in draws.items():
        flat = values.detach().double().reshape(values.shape[0], -1).numpy()
        shape = tuple(values.shape[1:])
        for position, index in enumerate(np.ndindex(*shape) if shape else [()]):
            table[element(name, index)] = flat[:, position]
    return table


def write_draws_csv(draws: dict[str, torch.Tensor], path: str | Path, chains: int | None = None,
                    element: Element = numbered) -> None:
    files.write_atomically(path, lambda temporary: print_draws_csv(draws, temporary, chains, element))


def print_draws_csv(draws: dict[str, torch.Tensor], stream: TextIO | Path, chains: int | None = None,
                    element: Element = numbered) -> None:
    """The CSV of `write_draws_csv`, to a stream (standard output) or a path as it is: a
    `draw` column, and with `chains` (NUTS's draws, chains end to end) a `chain` column
    before it, the draw counted within its chain."""
    import pandas as pd

    frame = pd.DataFrame(columns(draws, element))
    if chains is None:
        frame.to_csv(stream, index_label="draw")
        return
    per_chain = len(frame) // chains
    frame.insert(0, "draw", np.tile(np.arange(per_chain), chains))
    frame.insert(0, "chain", np.repeat(np.arange(chains), per_chain))
    frame.to_csv(stream, index=False)


def summary_frame(draws: dict[str, torch.Tensor], diagnostics: dict[str, dict[str, torch.Tensor]] | None = None,
                  element: Element = numbered):
    """`az.summary`'s layout: mean, sd, hdi_3%, hdi_97% per scalar element, and
    r_hat and ess_bulk where NUTS measured them."""
    import pandas as pd

    rows = {}
    for label, values in columns(draws, element).items():
        low, high = engine.hdi(torch.as_tensor(values)).tolist()
        rows[label] = {"mean": values.mean(), "sd": values.std(ddof=1), "hdi_3%": low, "hdi_97%": high}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    for column, per_site in (diagnostics or {}).items():
        values = columns({site: value.unsqueeze(0) for site, value in per_site.items()}, element)
        frame[column] = pd.Series({label: float(value[0]) for label, value in values.items()})
    return frame


def inference_data(draws: dict[str, torch.Tensor], observed: dict[str, torch.Tensor],
                   predictive: dict[str, torch.Tensor] | None = None, prior: bool = False, chains: int = 1,
                   log_likelihood: dict[str, torch.Tensor] | None = None,
                   sample_stats: dict[str, torch.Tensor] | None = None, dims: Dims | None = None,
                   coords: dict[str, list[str]] | None = None):
    """An ArviZ `InferenceData`: the posterior (`chains` chains, the draws end to end), the
    observed data, and, when given, the pointwise log-likelihood, the sampler's statistics
    (already (chains, samples)) and the posterior predictive; with `prior`, only the prior
    predictive. Axes named in `dims` (`Report.dims`) are dims of those names, with `coords`."""
    import logging

    import arviz

    def grouped(values: dict[str, torch.Tensor]):
        return {name: value.detach().double().numpy().reshape((chains, -1) + tuple(value.shape[1:]))
                for name, value in values.items()}

    if prior:
        groups = {"prior_predictive": grouped(predictive)}
    else:
        groups = {"posterior": grouped(draws),
                  "observed_data": {name: np.asarray(value) for name, value in observed.items()}}
        if predictive:
            groups["posterior_predictive"] = grouped(predictive)
        if log_likelihood:
            groups["log_likelihood"] = grouped(log_likelihood)
        if sample_stats:
            groups["sample_stats"] = {name: value.numpy() for name, value in sample_stats.items()}
    arviz_log = logging.getLogger("arviz")
    level = arviz_log.level
    arviz_log.setLevel(logging.ERROR)  # one chain of independent draws is what VI has; no warning for it
    try:
        return arviz.from_dict(**groups, **_arviz_axes(dims, coords))
    finally:
        arviz_log.setLevel(level)


def _arviz_axes(dims: Dims | None, coords: dict[str, list[str]] | None) -> dict[str, dict]:
    """ArviZ's `dims` and `coords`: an axis not named by labels keeps ArviZ's own name (`a_dim_0`); a site
    with two axes of one name keeps ArviZ's names for all of them, as a dim appears once per variable."""
    named = {}
    for site, axes in (dims or {}).items():
        if len(set(filter(None, axes))) == len(list(filter(None, axes))):
            named[site] = [axis or f"{site}_dim_{position}" for position, axis in enumerate(axes)]
    return {"dims": named, "coords": coords or {}}


def write_predictive(predictive: dict[str, torch.Tensor], path: str | Path,
                     posterior: dict[str, torch.Tensor] | None = None,
                     observed: dict[str, torch.Tensor] | None = None, data: str | None = None,
                     constant: dict[str, torch.Tensor] | None = None, element: Element = numbered,
                     dims: Dims | None = None, coords: dict[str, list[str]] | None = None) -> None:
    """Predictive draws as CSV (one column per element) or, for `.nc`, as InferenceData:
    beside the fit's posterior draws and observed data, as its `posterior_predictive`
    or, for new data (`constant`: their arrays other than observations), as
    `predictions` with `predictions_constant_data`; with no posterior, alone as a prior
    predictive. The predictive group's `data` attribute names the data they are for."""
    if Path(path).suffix.lower() != ".nc":
        write_draws_csv(predictive, path, element=element)
        return
    if posterior is None:
        idata, group = inference_data({}, {}, predictive, prior=True), "prior_predictive"
    elif constant is None:
        idata, group = inference_data(posterior, observed or {}, predictive, dims=dims, coords=coords), \
            "posterior_predictive"
    else:
        idata, group = inference_data(posterior, observed or {}, dims=dims, coords=coords), "predictions"
        idata.extend(_predictions(predictive, constant, dims, coords))
    if data is not None:
        getattr(idata, group).attrs["data"] = data
    write_netcdf(idata, path)


def _predictions(predictive: dict[str, torch.Tensor], constant: dict[str, torch.Tensor], dims: Dims | None,
                 coords: dict[str, list[str]] | None):
    """ArviZ's groups for out-of-sample draws: `predictions` (one chain) and the arrays they were drawn for."""
    import arviz

    axes = _arviz_axes(dims, coords)
    return arviz.from_dict(predictions={name: value.detach().double().numpy()[None] for name, value in predictive.items()},
                           predictions_constant_data={name: np.asarray(value) for name, value in constant.items()},
                           pred_dims=axes["dims"], coords=axes["coords"])  # ArviZ 0.23 drops `pred_coords`


def write_netcdf(idata, path: str | Path) -> None:
    files.write_atomically(path, lambda temporary: idata.to_netcdf(str(temporary)))


def write_plot(draws: dict[str, torch.Tensor], elbo_trace: tuple[float, ...], path: str | Path,
               title: str, step: str = "step", element: Element = numbered) -> list[Path]:
    """The ELBO against the step (for VI), then one histogram per scalar element, every one of them,
    PANELS_PER_PAGE panels a page: a PDF holds the pages in one file; any other format (PNG) gets a
    file per page, `fit.png`, `fit-2.png`, ... Returns the files written, in page order."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt

    panels: list[tuple[str, np.ndarray | None]] = [("ELBO", None)] if elbo_trace else []
    panels += list(columns(draws, element).items())
    pages = [panels[start:start + PANELS_PER_PAGE] for start in range(0, len(panels), PANELS_PER_PAGE)]

    def figures() -> Iterator:
        """Each page's figure in turn, closed once written: a thousand marginals never share memory."""
        for k, page in enumerate(pages, 1):
            figure = _figure(page, elbo_trace, step, title if len(pages) == 1 else f"{title} ({k} of {len(pages)})")
            try:
                yield figure
            finally:
                plt.close(figure)

    if Path(path).suffix.lower() == ".pdf":
        return [files.write_atomically(path, lambda temporary: _write_pdf(figures(), temporary))]
    return [files.write_atomically(page_path(path, k), lambda temporary, figure=figure: figure.savefig(temporary, dpi=100))
            for k, figure in enumerate(figures(), 1)]


def page_path(path: str | Path, page: int) -> Path:
    """Where page `page` of a plot goes: the path itself for the first, `fit-2.png` beside it for the second."""
    path = Path(path)
    return path if page == 1 else path.with_name(f"{path.stem}-{page}{path.suffix}")


def _figure(panels: list[tuple[str, np.ndarray | None]], elbo_trace: tuple[float, ...], step: str, title: str):
    import matplotlib.pyplot as plt

    across = min(4, len(panels))
    down = -(-len(panels) // across)
    figure, axes = plt.subplots(down, across, figsize=(3.2 * across, 2.6 * down), squeeze=False)
    flat_axes = axes.ravel()
    for ax, (label, values) in zip(flat_axes, panels):
        if values is None:
            ax.plot(np.arange(1, len(elbo_trace) + 1), elbo_trace, linewidth=1)
            ax.set(title=label, xlabel=step)
            continue
        # The central 99 %: a heavy tail (a half-Cauchy scale) would squeeze the rest into one bin.
        ax.hist(values, bins=60, range=tuple(np.quantile(values, [0.005, 0.995])), density=True,
                color="tab:blue", alpha=0.8)
        ax.set(title=label, yticks=[])
    for ax in flat_axes[len(panels):]:
        ax.axis("off")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def _write_pdf(figures: Iterator, path: Path) -> None:
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(path) as pdf:
        for figure in figures:
            pdf.savefig(figure)
