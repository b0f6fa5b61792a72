"""The compiler in a few lines: source -> parse -> check -> generate -> `Program`.

The command line and the library both call `compile_source`; `Program` is the
compiled spec: its generated Pyro `model` and `guide`, and `fit`.
"""

from __future__ import annotations

import gc
import html
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from compiler.backend import codegen
from compiler.errors import DataError, Source
from compiler.frontend import ir
from compiler.frontend.check import check_program
from compiler.frontend.parse import parse_program
from compiler.precision import in_float64

if TYPE_CHECKING:
    import torch

    from compiler.backend.build import CompiledModel
    from compiler.data import values as data_module
    from compiler.results.comparison import ModelComparison
    from compiler.results.explain import Explanation, TraceExplanation
    from compiler.results.fit import DataSource, Fit

DATA_SUFFIXES = (".data.json", ".json", ".csv")
GuideFamily = Literal["normal", "native", "fullrank", "lowrank"]  # codegen.GUIDE_FAMILIES, as a type


def compile_source(text: str, name: str = "<string>", guide: GuideFamily = "normal") -> Program:
    """A `Program` from the text of a spec (`name` is what errors call it); `guide` as for `compile_file`."""
    return _compile(Source(name, text), guide)


def compile_file(path: str | Path, guide: GuideFamily = "normal") -> Program:
    """A `Program` from a .ppl file. `guide`: normal (mean-field ADVI), native (Beta, Gamma, Dirichlet
    factors), fullrank or lowrank (one multivariate normal over all the latents; docs/inference.md)."""
    return _compile(Source.from_path(path), guide)


def _options(arguments: dict[str, Any], *taken: str) -> dict[str, Any]:
    """A method's keyword options, read from its `locals()` first thing (before it binds any
    other name), less `self` and the arguments named in `taken`, which it uses itself. The
    options of `Program.fit` and `Program.sample` are their configuration's fields, named in the
    signature so that IDEs and `help()` show them (tests/test_signatures.py keeps them in step
    with the configuration)."""
    return {name: value for name, value in arguments.items() if name not in ("self", *taken)}


def _compile(source: Source, guide: str) -> Program:
    # Compiling builds many small objects and frees none of them: the cyclic garbage
    # collector's passes over them would only grow with the spec (half of codegen's time
    # at 10,000 statements), so it waits until the compiler is done.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return Program(source, check_program(parse_program(source), source.name), guide)
    finally:
        if collecting:
            gc.enable()


@in_float64
def load_fit(path: str | Path, data: Any = None, spec: str | Path | None = None) -> Fit:
    """The `Fit` saved with `Fit.save` / `pplc run --save`. Given the spec file, it
    must be the one fitted; the data (by default the saved data file, if it is
    still there) must be the data fitted, and bring back the report's draws, so
    that the fit's `predict` (for these data or, with its `data`, new ones) and
    `to_arviz` work again; without them it holds the report only. A file that is
    not what it claims to be (see `saved`) is a spec error naming it."""
    from compiler.results import fit as fits
    from compiler.results import saved

    fit_file = saved.load(path)
    saved.check_pairing(fit_file, Source.from_path(spec).text if spec is not None else None, None)
    program = saved.compile_spec(fit_file, path, compile_source)
    if data is None:
        data = saved.data_file(fit_file)
    return fits.fit_saved(fit_file, program, None if data is None else program.load_data(data), path)


def compare(fits: Mapping[str, Fit]) -> ModelComparison:
    """Rank fits of several models to the same observations by PSIS-LOO (`az.compare`), as `pplc compare`
    does: `.models`, best first, each with its elpd_loo, the difference from the best and its standard error,
    the stacking weight, and PSIS k̂ per observation (`results.comparison`)."""
    from compiler.results import comparison

    return comparison.compare(dict(fits))


def version() -> str:
    """The installed distribution's version (`compiler.__version__`, `pplc --version`), read when
    asked: importing importlib.metadata would add about 35 ms to every command."""
    from importlib import metadata

    try:
        return metadata.version("pplc")
    except metadata.PackageNotFoundError:  # a checkout on the path, never installed
        return "0+unknown"


def names(items: Iterable[ir.DataDecl | ir.Statement]) -> str:
    return ", ".join(item.name for item in items) or "none"


class Program:
    """A checked spec with its generated code. `model` and `guide` are plain
    Pyro callables taking the data (see `load_data`)."""

    def __init__(self, source: Source, model_ir: ir.Model, guide: GuideFamily = "normal"):
        if guide not in codegen.GUIDE_FAMILIES:
            raise ValueError(f"guide must be one of {codegen.GUIDE_FAMILIES}, not {guide!r}")
        self.source = source
        self.ir = model_ir
        self.guide_family = guide
        self.code = codegen.generate(model_ir, guide)

    @cached_property
    def compiled(self) -> CompiledModel:
        """The generated functions as callables (`backend.build.CompiledModel`); torch loads here."""
        from compiler.backend import build

        return build.build(self.code, self.ir, self.guide_family, self.source.name)

    @property
    def model(self) -> Callable:
        return self.compiled.model

    @property
    def guide(self) -> Callable:
        return self.compiled.guide

    def _repr_html_(self) -> str:
        """How a notebook shows a program: `pplc check`'s line and the spec itself."""
        return f"<div><p>{html.escape(self.summary())}</p><pre>{html.escape(self.source.text)}</pre></div>"

    def summary(self) -> str:
        """One line: what `pplc check` prints."""
        m = self.ir
        enumerated = [s for s in m.latents if s.enumerated]
        text = (f"{self.source.name}: ok — data: {names(m.data)}; latent: {names(m.latents)}; "
                f"observed: {names(m.observed)}")
        if m.params:
            text += f"; params: {names(m.params)}"
        if m.lets:
            text += f"; let: {names(m.lets)}"
        if enumerated:
            text += f"; enumerated: {names(enumerated)}"
        if chains := [s for s in m.latents if s.chain]:
            text += f"; chain: {names(chains)}"
        return text

    def default_data_path(self) -> Path | None:
        spec = Path(self.source.name)
        for suffix in DATA_SUFFIXES:
            candidate = spec.with_name(spec.stem + suffix)
            if candidate.is_file():
                return candidate
        return None

    @in_float64
    def load_data(self, data: DataSource = None, simulate_missing: bool = False,
                  keep_on_disk: bool = False) -> data_module.Data:
        """Validated tensors from a path, a mapping of name -> value (numbers, lists, numpy arrays,
        torch tensors, pandas Series), a pandas DataFrame, or the data file beside the spec
        (docs/language.md, "Data").
        With `simulate_missing`, observed arrays the data leave out become zero
        stand-ins (see `Data.placeholders`), for a prior predictive. With
        `keep_on_disk`, arrays in memory-mapped files stay there (`Data.on_disk`),
        for a fit that reads them a batch or a shard at a time."""
        from compiler.data import files as data_files
        from compiler.data import objects as data_objects
        from compiler.data import values as data_module
        from compiler.data.labels import code_labels
        from compiler.data.validate import load_data

        if isinstance(data, data_module.Data):
            return data if keep_on_disk else data.in_memory()
        if data is None and not self.ir.data:
            data = {}
        if data is None:
            data = self.default_data_path()
            if data is None:
                raise DataError(f"no data file beside {self.source.name}",
                                hint=f"pass --data FILE or create {Path(self.source.name).stem}.data.json")
        if isinstance(data, (str, Path)):
            origin = str(data)
            raw = data_files.read_data_file(data)
        else:
            origin = "data"
            raw = data_objects.raw_data(data, origin)
        observed = frozenset(site.name for site in self.ir.observed) if simulate_missing else frozenset()
        raw, labels = code_labels(self.ir, raw, origin)
        values, warnings = load_data(self.ir, raw, origin, observed)
        tensors = data_module.to_tensors(self.ir, values)
        transformed = self.compiled.transform_data(tensors)
        placeholders = tuple(sorted(observed - set(raw)))
        loaded = data_module.Data(dict(transformed), origin, data_module.digest(raw, labels), warnings, placeholders,
                                  self.ir.index_arrays, labels)
        return loaded if keep_on_disk else loaded.in_memory()

    def explain(self) -> Explanation:
        """The factorisation of the joint, the guide and the ELBO (`explain.Explanation`)."""
        from compiler.results import explain

        return explain.explain(self)

    @in_float64
    def trace(self, data: DataSource = None, fitted: bool = False, seed: int = 0, **fit_options: Any) -> TraceExplanation:
        """One ELBO term computed for real (`explain.TraceExplanation`): at the guide's
        initial values, or with `fitted` at those of a fit (`fit`'s options)."""
        from compiler.results import explain

        loaded = self.load_data(data)
        guide_state = self.fit(loaded, seed=seed, **fit_options).guide_state if fitted else None
        return explain.trace(self, loaded, guide_state, seed)

    @in_float64
    def explain_html(self, path: str | Path, data: DataSource = None, fitted: bool = False, seed: int = 0,
                     fit: Fit | None = None, **fit_options: Any) -> Path:
        """Write one self-contained HTML page (`explain_html`): the spec beside the generated model and
        guide, each statement linked to its Pyro sites; the joint's factorisation; one traced draw, the
        numbers of `trace(data, fitted, seed)`; and, from a fit, the ELBO trace and each scalar latent's
        prior and posterior. The fit is `fit` (for example one `load_fit` read back, with the data it
        was fitted to, which the page then shows), or by default one made here (`fit`'s options)."""
        from compiler.results import explain_html

        if fit is None:
            fit = self.fit(self.load_data(data), seed=seed, **fit_options)
        elif fit.program.source.text != self.source.text:
            raise DataError(f"the fit is of {fit.spec}, not of {self.source.name}", hint="explain the spec it fitted")
        elif fit.data is None:
            raise DataError("the page traces a draw at the data fitted, and a saved fit read back without its data "
                            "has none", hint="pass load_fit the data it was fitted to")
        return explain_html.write_page(path, self, fit.data, fit, seed, fitted)

    @in_float64
    def sample(self, data: DataSource = None, *, warmup: int | None = None, samples: int = 1000, chains: int = 2,
               seed: int = 0, target_accept: float = 0.8, warm_start: bool = True, progress: bool = False) -> Fit:
        """Run NUTS on the same model; returns the `Fit`, its report with R̂ and ESS. The options are
        `NutsConfig`'s (what each does and its bounds: `pplc run --help`, the NUTS options)."""
        options = _options(locals(), "data")
        from compiler.results import engine
        from compiler.results import fit as fits

        return fits.fit_nuts(self, self.load_data(data), engine.nuts_config(**options))

    @in_float64
    def predict(self, data: DataSource = None, draws: int = 1000, seed: int = 0, *,
                optimizer: Literal["lbfgs", "adam"] | None = None, steps: int | None = None,
                max_steps: int | None = None, starts: int | None = None, tolerance: float = 1e-3, lr: float = 0.05,
                lr_decay: float = 0.1, particles: int | None = None, average: float = 0.5,
                covariance: Literal["linear-response", "mean-field", "guide"] = "linear-response",
                resample: bool = True, discrete: bool = False, progress: bool = False, jit: bool = False,
                batch_size: int | None = None, distributed: bool = False, device: str = "cpu",
                ) -> tuple[Fit | None, dict[str, torch.Tensor]]:
        """Draws of every observed site: from the posterior predictive after a fit
        (`Fit.predict`: from the fit's posterior draws), or, when the data leave
        observed arrays out, from the prior predictive (nothing is fitted).
        Returns `(fit or None, {site: (draws, *shape)})`; for new data, fit first
        and call `fit.predict(draws, data=new)`. `draws` is the number of predictive
        draws; the other options are `fit`'s (its own `draws`, those behind the report, keep their default)."""
        fit_options = _options(locals(), "data", "draws", "seed")
        from compiler.results import engine

        loaded = self.load_data(data, simulate_missing=True)
        if loaded.placeholders:
            return None, engine.prior_predictive(self, loaded, draws, seed)
        fit = self.fit(loaded, seed=seed, **fit_options)
        return fit, fit.predict(draws)

    @in_float64
    def fit(self, data: DataSource = None, *, optimizer: Literal["lbfgs", "adam"] | None = None,
            steps: int | None = None, max_steps: int | None = None, starts: int | None = None,
            tolerance: float = 1e-3, lr: float = 0.05, lr_decay: float = 0.1, particles: int | None = None,
            average: float = 0.5, seed: int = 0, draws: int = 10000,
            covariance: Literal["linear-response", "mean-field", "guide"] = "linear-response",
            resample: bool = True, discrete: bool = False, progress: bool = False, jit: bool = False,
            batch_size: int | None = None, distributed: bool = False, device: str = "cpu") -> Fit:
        """Maximise the ELBO; returns the `Fit`, with its report. The options are `RunConfig`'s
        (what each does and its bounds: `pplc run --help`, docs/inference.md)."""
        options = _options(locals(), "data")
        from compiler.results import engine
        from compiler.results import fit as fits

        run_config = engine.run_config(**options)
        loaded = self.load_data(data, keep_on_disk=run_config.batch_size is not None or run_config.distributed)
        return fits.fit_vi(self, loaded, run_config)
