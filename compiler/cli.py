"""The command line: `pplc run | compare | vi-vs-nuts | predict | report | check | explain | emit`. Parses arguments,
prints, sets exit codes.

Exit codes: 0 ok, 2 spec error, 3 data error, 4 fitting error, 70 internal
error (a bug in pplc), 130 interrupted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from compiler import cli_options
from compiler.api import Program, compile_file, compile_source, load_fit, version
from compiler.errors import DataError, PplError, Source, render
from compiler.results.warned import PplcWarning

if TYPE_CHECKING:
    from pydantic import BaseModel

    from compiler.data.values import Data
    from compiler.results.fit import Fit

EXIT_CODES = {"spec": 2, "data": 3, "fit": 4}
DATA_HELP = ("data file (.json, .csv, .npy, .arrow, .parquet) or a folder of them; "
             "default: SPEC's stem + .data.json beside it")
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


def command() -> int:
    """The `pplc` command (and `python -m compiler`): `main`, after which the process ends. Freezing the
    garbage collector's objects spares interpreter shutdown a last full collection of torch's and pyro's
    (`pplc run specs/coin.ppl`: 0.39-0.46 s from `main` returning to the process ending, 0.12-0.19 s frozen;
    the whole process 2.75 s -> 2.35 s, medians of five alternated). `main` itself leaves the collector
    alone, for callers that go on."""
    code = main()
    gc.freeze()
    return code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    source: Source | None = None
    try:
        with warnings.catch_warnings():
            # The report prints a fit's warnings; Python's copies of them (for the library's callers) would repeat them.
            warnings.simplefilter("ignore", PplcWarning)
            if args.spec is None:  # commands that read a saved fit, or several specs, not one spec
                return args.command(None, args)
            program = compile_file(args.spec, guide=getattr(args, "guide", "normal"))
            source = program.source
            return args.command(program, args)
    except PplError as error:
        print(render(error, error.source or source or _source_of(args.spec)), file=sys.stderr)
        return EXIT_CODES[error.kind]
    except KeyboardInterrupt:
        print("pplc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (e.g. `| head`) left: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # noqa: BLE001 - the last line of defence: no traceback for users
        print(f"pplc: internal error: {type(error).__name__}: {error}\n"
              "This is a bug in pplc; please report it with the spec and data that caused it.",
              file=sys.stderr)
        return EXIT_INTERNAL


def _source_of(path: str | None) -> Source | None:
    if path is None:
        return None
    try:
        return Source.from_path(path)
    except PplError:
        return None


def run(program: Program, args: argparse.Namespace) -> int:
    _check_folders(args.draws_csv, args.idata, args.plot, args.save)
    if args.save is not None and args.method == "nuts":
        raise PplError("--save keeps a VI fit (its guide); NUTS draws are not saved", hint="drop --method nuts")
    if args.method == "nuts":
        fit = program.sample(args.data, **_nuts_options(args))
    else:
        fit = program.fit(args.data, **_svi_options(args))
    if args.distributed:
        from compiler.results import engine

        if not engine.reports_here():  # every process holds the same fit; the first reports it
            return 0
    _write_files(fit, args)
    if args.json:
        print(fit.to_json())
    else:
        print(fit.table())
    return EXIT_INTERRUPTED if fit.interrupted else 0


def predict(program: Program, args: argparse.Namespace) -> int:
    _check_folders(args.out)
    data = program.load_data(args.data, simulate_missing=True)
    if args.fit is not None:
        fit = _saved_fit(args, data)
        draws = fit.predict(args.n, data=data)
    else:
        fit, draws = program.predict(data, draws=args.n, seed=args.seed, progress=_progress(args))
    from compiler.results import export

    which = "prior" if fit is None else "posterior"
    shapes = ", ".join(f"{name} {list(value.shape[1:])}" for name, value in draws.items())
    fitted = fit is None or fit.data is None or fit.data.digest == data.digest
    contents = f"{args.n} {which} predictive draws of {shapes} for {data.origin}" + ("" if fitted else " (new data)")
    if args.out is None:  # standard output is the data; what it holds is said beside it
        export.print_draws_csv(draws, sys.stdout)
        print(f"printed {contents} as CSV", file=sys.stderr)
    elif fit is None:
        _write(args.out, lambda path: export.write_predictive(draws, path, data=data.origin), contents)
    else:
        _write(args.out, lambda path: fit.write_predictive(draws, path, data), contents)
    return 0


def _saved_fit(args: argparse.Namespace, data: Data) -> Fit:
    """The fit saved in --fit, restored with the data it was fitted to: the data file it names,
    or the data given, where they are those; predictions may then be for other data."""
    from compiler.results import saved

    fit_file = saved.load(args.fit)
    fitted = data if data.digest == fit_file.data_sha256 else saved.data_file(fit_file)
    if fitted is None:
        raise DataError(f"{args.fit} is restored with the data it was fitted to, {saved.printable(fit_file.data_origin)}"
                        ", and there is no such file", hint="put that file back; --data then names the data to "
                        "predict for")
    return load_fit(args.fit, fitted, spec=args.spec)


def report_command(_: None, args: argparse.Namespace) -> int:
    from compiler.results import render, saved

    fit = saved.load(args.fit_file)
    saved.compile_spec(fit, args.fit_file, compile_source)  # only a file whose guide is its spec's is reported
    if args.json:
        # json's ASCII output escapes every control character in the file's names (pydantic's leaves C1 ones).
        shown = fit.model_dump(mode="json", exclude_none=True, exclude={"guide_parameters", "spec_text"})
        print(json.dumps(shown, indent=2))
    else:
        print(f"fit of {saved.printable(fit.spec_name)} (sha256 {fit.spec_sha256[:12]}) to "
              f"{saved.printable(fit.data_origin)} (sha256 {fit.data_sha256[:12]})")
        print(render.render_table(saved.printable_report(fit.report)))
    return 0


def _check_folders(*paths) -> None:
    for path in paths:
        if path is not None and not path.parent.is_dir():
            raise PplError(f"cannot write {path}: there is no folder {path.parent}")  # before a fit is spent


def _write_files(fit: Fit, args: argparse.Namespace) -> None:
    def write_idata(path):
        fit.write_idata(path, predictive=args.predictive or 0)

    for path, write in ((args.draws_csv, fit.write_draws), (args.idata, write_idata),
                        (args.plot, fit.write_plot), (args.save, fit.save)):
        if path is not None:
            _write(path, write)


def _write(path: Path, write: Callable[[Path], list[Path] | None], contents: str | None = None) -> None:
    """Write one file, or the files `write` returns (a plot's pages), each whole or not at all (see
    `files`), and name them on stderr."""
    try:
        written = write(path) or [path]
    except OSError as error:
        raise PplError(f"cannot write {path}: {error.strerror or error}") from None
    print(f"wrote {', '.join(map(str, written))}" + (f" ({contents})" if contents else ""), file=sys.stderr)


def compare(_: None, args: argparse.Namespace) -> int:
    """Fit every spec to the same data and rank them by PSIS-LOO (`az.compare`)."""
    from compiler.results import comparison

    if len(args.specs) < 2:
        raise PplError("compare ranks two or more models by PSIS-LOO; it was given one spec",
                       hint=f"add the models to compare it with; to set VI against NUTS on one model: "
                       f"pplc vi-vs-nuts {args.specs[0]}")
    fits = {}
    for path in args.specs:
        with _located(path):
            program = compile_file(path, guide=args.guide)
            data = program.load_data(args.data)
            fit = program.sample(data, **_nuts_options(args)) if args.method == "nuts" else \
                program.fit(data, **_svi_options(args))
            fits[_label(path, args.specs)] = fit
    result = comparison.compare(fits)
    print(result.model_dump_json(indent=2) if args.json else comparison.render(result))
    return 0


@contextmanager
def _located(path: str) -> Iterator[None]:
    """Errors meanwhile point into this spec (compare reads several)."""
    try:
        yield
    except PplError as error:
        error.source = error.source or _source_of(path)
        raise


def _label(path: str, paths: list[str]) -> str:
    """A spec's name in the comparison: its stem, or its path where stems repeat."""
    stems = [Path(p).stem for p in paths]
    return Path(path).stem if stems.count(Path(path).stem) == 1 else path


def vi_vs_nuts(program: Program, args: argparse.Namespace) -> int:
    from compiler.results.render import compare as compare_reports
    from compiler.results.render import render_comparison

    data = program.load_data(args.data)
    nuts_options = _nuts_options(args)
    vi = program.fit(data, **_svi_options(args)).report
    nuts = program.sample(data, **nuts_options).report
    rows = compare_reports(vi, nuts)
    if args.json:
        print(json.dumps({"vi": vi.model_dump(), "nuts": nuts.model_dump(),
                          "comparison": [r.model_dump() for r in rows]}, indent=2))
    else:
        print(render_comparison(vi, nuts, rows))
    return 0


def _progress(args) -> bool:
    # The bar is for people watching a terminal, never for pipes, files or JSON readers.
    return sys.stdout.isatty() and sys.stderr.isatty() and not (getattr(args, "json", False) or args.quiet)


def _svi_options(args: argparse.Namespace) -> dict:
    from compiler.inference.config import RunConfig

    return {**_given(args, RunConfig), "progress": _progress(args)}


VI_ONLY = ("batch_size", "distributed", "device")


def _nuts_options(args: argparse.Namespace) -> dict:
    """NUTS's options; the fitting options it has no use for are refused, not ignored."""
    from compiler.inference.config import NutsConfig

    given = [name for name in VI_ONLY if getattr(args, name, None) not in (None, False, "cpu")]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise PplError(f"{flag} applies to VI fits; NUTS runs in one process over all the data, on the CPU",
                       hint=f"drop {flag}, or fit with VI (pplc run without --method nuts)")
    return {**_given(args, NutsConfig), "progress": _progress(args)}


def _given(args: argparse.Namespace, config: type[BaseModel]) -> dict:
    """The config's fields the command line holds a value for (None: the config's own default)."""
    return {name: getattr(args, name) for name in config.model_fields if getattr(args, name, None) is not None}


def explain(program: Program, args: argparse.Namespace) -> int:
    if args.fit is not None and args.html is None:
        raise PplError("--fit gives --html the fit to draw; --trace --fitted fits again",
                       hint="add --html FILE.html, or drop --fit")
    if args.html is not None:
        _check_folders(args.html)
        fit = None if args.fit is None else load_fit(args.fit, args.data, spec=args.spec)
        _write(args.html, lambda path: [program.explain_html(path, args.data, fitted=args.fitted, seed=args.seed,
                                                             fit=fit, progress=False)],
               "the spec, the model and the guide, linked; the joint; one traced draw; the fit")
        return 0
    if args.trace:
        result = program.trace(args.data, fitted=args.fitted, seed=args.seed)
    else:
        result = program.explain()
    print(result.to_json() if args.json else result.text())
    return 0


def check(program: Program, args: argparse.Namespace) -> int:
    print(program.summary())
    return 0


def emit(program: Program, args: argparse.Namespace) -> int:
    print(program.code.source, end="")
    return 0


class _Version(argparse.Action):
    """`--version`, read only when asked for (`api.version`)."""

    def __init__(self, option_strings: list[str], dest: str, **_: object):
        super().__init__(option_strings, dest, nargs=0, help="print pplc's version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"pplc {version()}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pplc", description="Compile a .ppl model to Pyro, fit it with mean-field VI, report the posterior.")
    parser.add_argument("--version", action=_Version)
    commands = parser.add_subparsers(required=True, metavar="COMMAND", parser_class=cli_options.Command)

    run_parser = commands.add_parser("run", help="compile, fit with VI (or NUTS) and report the posterior",
                                     config_options=cli_options.fit_options)
    run_parser.set_defaults(command=run)
    cli_options.spec_arguments(run_parser)
    run_parser.add_argument("--data", type=Path, help=DATA_HELP)
    run_parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    run_parser.add_argument("--method", choices=("vi", "nuts"), default="vi",
                            help="vi (mean-field VI, default) or nuts (Pyro's NUTS, with R-hat and ESS)")
    run_parser.add_argument("--draws", type=Path, metavar="FILE.csv", dest="draws_csv",
                            help="write the posterior draws, one column per scalar element (beta[0], ...)")
    run_parser.add_argument("--idata", type=Path, metavar="FILE.nc",
                            help="write an ArviZ InferenceData (posterior, observed_data) as netCDF")
    run_parser.add_argument("--predictive", type=cli_options.positive_int, metavar="N",
                            help="with --idata: add N posterior predictive draws of every observed site")
    run_parser.add_argument("--plot", type=Path, metavar="FILE.png|FILE.pdf",
                            help="draw the ELBO trace and every latent's marginal posterior, 12 panels a page: "
                            "FILE.png, then FILE-2.png, ... for further pages; FILE.pdf holds every page")
    run_parser.add_argument("--save", type=Path, metavar="FILE",
                            help="save the fit (spec, data hash, guide, report) for `pplc report` and `--fit`")

    compare_parser = commands.add_parser(
        "compare", help="fit two or more models to the same data; rank them by PSIS-LOO (az.compare)",
        config_options=cli_options.fit_options)
    compare_parser.set_defaults(command=compare, spec=None)
    compare_parser.add_argument("specs", nargs="+", metavar="SPEC", help="the .ppl files of the models")
    cli_options.guide_argument(compare_parser)
    compare_parser.add_argument("--data", type=Path, help="the data every model is fitted to (default: each "
                                "spec's own data file, which must hold the same observations)")
    compare_parser.add_argument("--method", choices=("vi", "nuts"), default="vi",
                                help="where the posterior draws come from: vi (default) or nuts")
    compare_parser.add_argument("--json", action="store_true", help="print one JSON object")

    vi_nuts_parser = commands.add_parser("vi-vs-nuts", help="fit one model with VI and with NUTS; print the "
                                         "posteriors side by side", config_options=cli_options.fit_options)
    vi_nuts_parser.set_defaults(command=vi_vs_nuts)
    cli_options.spec_arguments(vi_nuts_parser)
    vi_nuts_parser.add_argument("--data", type=Path, help=DATA_HELP)
    vi_nuts_parser.add_argument("--json", action="store_true", help="print one JSON object")

    check_parser = commands.add_parser("check", help="parse and check a spec without fitting")
    check_parser.set_defaults(command=check)
    cli_options.spec_arguments(check_parser)

    explain_parser = commands.add_parser(
        "explain", help="show the joint's factorisation, the guide and the ELBO; --trace computes one term",
        config_options=cli_options.seed_option)
    explain_parser.set_defaults(command=explain)
    cli_options.spec_arguments(explain_parser)
    explain_parser.add_argument("--trace", action="store_true",
                                help="draw z from the guide, replay the model, print each site's log-prob")
    explain_parser.add_argument("--fitted", action="store_true",
                                help="with --trace: fit first, draw from the fit; with --html: trace a draw from "
                                "the fit, not the initial guide")
    explain_parser.add_argument("--data", type=Path, help="with --trace or --html: " + DATA_HELP)
    shown = explain_parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print one JSON object")
    shown.add_argument("--html", type=Path, metavar="FILE.html",
                       help="write one self-contained page: the spec beside the model and guide, each statement "
                       "linked to its sites, the joint, one traced draw (as --trace), and from a fit with default "
                       "settings the ELBO trace and each scalar latent's prior and posterior")
    explain_parser.add_argument("--fit", type=Path, metavar="FILE",
                                help="with --html: a fit saved with `pplc run --save`, instead of fitting again; it "
                                "is restored with the data file it was fitted to")

    predict_parser = commands.add_parser(
        "predict", help="draw every observed site from the posterior predictive (with --fit, for new data too; "
        "without, with observed arrays left out of the data, from the prior predictive)",
        config_options=cli_options.predict_options)
    predict_parser.set_defaults(command=predict)
    cli_options.spec_arguments(predict_parser)
    predict_parser.add_argument("--data", type=Path, help=DATA_HELP + "; with --fit, the data to predict for, "
                                "which may differ from those fitted (observed arrays may be left out)")
    predict_parser.add_argument("-n", "--n", type=cli_options.positive_int, default=1000,
                                help="predictive draws (default 1000)")
    predict_parser.add_argument("--out", type=Path, metavar="FILE.csv|FILE.nc",
                                help="write them to FILE: CSV, or ArviZ InferenceData for .nc (with the posterior: "
                                "posterior_predictive, or for new data predictions and predictions_constant_data) "
                                "(default: CSV on standard output)")
    predict_parser.add_argument("--fit", type=Path, metavar="FILE",
                                help="a fit saved with `pplc run --save`, instead of fitting again; it is restored "
                                "with the data file it was fitted to")

    report_parser = commands.add_parser("report", help="print the report of a fit saved with `pplc run --save`")
    report_parser.set_defaults(command=report_command, spec=None)
    report_parser.add_argument("fit_file", type=Path, metavar="FILE")
    report_parser.add_argument("--json", action="store_true", help="print the saved fit as JSON")

    emit_parser = commands.add_parser("emit", help="print the generated Pyro model and guide")
    emit_parser.set_defaults(command=emit)
    cli_options.spec_arguments(emit_parser)
    return parser


if __name__ == "__main__":
    sys.exit(main())
