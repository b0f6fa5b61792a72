"""The command line: `pplc run | compare | predict | report | check | explain | emit`. Parses arguments,
prints, sets exit codes.

Exit codes: 0 ok, 2 spec error, 3 data error, 4 fitting error, 70 internal
error (a bug in pplc), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from compiler.api import compile_file, load_fit
from compiler.errors import PplError, Source, render

EXIT_CODES = {"spec": 2, "data": 3, "fit": 4}
DATA_HELP = ("data file (.json, .csv, .npy, .arrow, .parquet) or a folder of them; "
             "default: SPEC's stem + .data.json beside it")
EXIT_INTERNAL = 70
# Seeds are offset for retries and further starts (seed + k * 1000); torch and numpy take 0..2^32 - 1.
MAX_SEED = 2**31
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    source: Source | None = None
    try:
        if args.spec is None:  # commands that read a saved fit, not a spec
            return args.command(None, args)
        program = compile_file(args.spec, guide=getattr(args, "guide", "normal"))
        source = program.source
        return args.command(program, args)
    except PplError as error:
        print(render(error, source or _source_of(args.spec)), file=sys.stderr)
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


def run(program, args) -> int:
    _check_folders(args.draws_csv, args.idata, args.plot, args.save)
    if args.save is not None and args.method == "nuts":
        raise PplError("--save keeps a VI fit (its guide); NUTS draws are not saved", hint="drop --method nuts")
    if args.method == "nuts":
        report = program.sample(args.data, **_nuts_options(args))
    else:
        report = program.fit(args.data, **_svi_options(args))
    if args.distributed:
        from compiler.inference import distributed

        if distributed.rank() != 0:  # every process holds the same fit; the first reports it
            return 0
    _write_files(report, args)
    if args.json:
        print(report.to_json())
    else:
        print(report.table())
    return EXIT_INTERRUPTED if report.interrupted else 0


def predict(program, args) -> int:
    _check_folders(args.out)
    if args.fit is not None:
        report = load_fit(args.fit, args.data or program.default_data_path(), spec=args.spec)
        draws = report.predict(args.n)
    else:
        report, draws = program.predict(args.data, draws=args.n, seed=args.seed, progress=_progress(args))
    from compiler.results import export

    which = "prior" if report is None else "posterior"
    shapes = ", ".join(f"{name} {list(value.shape[1:])}" for name, value in draws.items())
    contents = f"{args.n} {which} predictive draws of {shapes}"
    if args.out is None:  # standard output is the data; what it holds is said beside it
        export.print_draws_csv(draws, sys.stdout)
        print(f"printed {contents} as CSV", file=sys.stderr)
    else:
        _write(args.out, lambda path: export.write_predictive(report, draws, path), contents)
    return 0


def report_command(_, args) -> int:
    from compiler.results import saved

    fit = saved.load(args.fit_file)
    saved.compile_spec(fit, args.fit_file)  # only a file whose guide is its spec's is reported
    if args.json:
        # json's ASCII output escapes every control character in the file's names (pydantic's leaves C1 ones).
        shown = fit.model_dump(mode="json", exclude_none=True, exclude={"guide_parameters", "spec_text"})
        print(json.dumps(shown, indent=2))
    else:
        print(f"fit of {saved.printable(fit.spec_name)} (sha256 {fit.spec_sha256[:12]}) to "
              f"{saved.printable(fit.data_origin)} (sha256 {fit.data_sha256[:12]})")
        print(saved.printable_report(fit.report).table())
    return 0


def _check_folders(*paths) -> None:
    for path in paths:
        if path is not None and not path.parent.is_dir():
            raise PplError(f"cannot write {path}: there is no folder {path.parent}")  # before a fit is spent


def _write_files(report, args) -> None:
    def write_idata(path):
        report.write_idata(path, predictive=args.predictive or 0)

    for path, write in ((args.draws_csv, report.write_draws), (args.idata, write_idata),
                        (args.plot, report.write_plot), (args.save, report.save)):
        if path is not None:
            _write(path, write)


def _write(path: Path, write: Callable[[Path], None], contents: str | None = None) -> None:
    """Write one file (whole or not at all: see `files`) and name it on stderr."""
    try:
        write(path)
    except OSError as error:
        raise PplError(f"cannot write {path}: {error.strerror or error}") from None
    print(f"wrote {path}" + (f" ({contents})" if contents else ""), file=sys.stderr)


def compare(program, args) -> int:
    from compiler.results.report import compare as compare_reports
    from compiler.results.report import render_comparison

    data = program.load_data(args.data)
    nuts_options = _nuts_options(args)
    vi = program.fit(data, **_svi_options(args))
    nuts = program.sample(data, **nuts_options)
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


def _svi_options(args) -> dict:
    options = {"seed": args.seed, "discrete": getattr(args, "discrete", False), "progress": _progress(args)}
    for option in ("optimizer", "steps", "max_steps", "lr", "draws", "jit", "batch_size", "distributed", "device"):
        if getattr(args, option, None) is not None:
            options[option] = getattr(args, option)
    return options


VI_ONLY = ("batch_size", "distributed", "device")


def _nuts_options(args) -> dict:
    """NUTS's options; the fitting options it has no use for are refused, not ignored."""
    given = [name for name in VI_ONLY if getattr(args, name, None) not in (None, False, "cpu")]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise PplError(f"{flag} applies to VI fits; NUTS runs in one process over all the data, on the CPU",
                       hint=f"drop {flag}, or fit with VI (pplc run without --method nuts)")
    options = {"seed": args.seed}
    for option in ("warmup", "samples", "chains"):
        if getattr(args, option, None) is not None:
            options[option] = getattr(args, option)
    return options


def explain(program, args) -> int:
    if args.trace:
        result = program.trace(args.data, fitted=args.fitted, seed=args.seed)
    else:
        result = program.explain()
    print(result.to_json() if args.json else result.text())
    return 0


def check(program, args) -> int:
    print(program.summary())
    return 0


def emit(program, args) -> int:
    print(program.code.source, end="")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pplc", description="Compile a .ppl model to Pyro, fit it with mean-field VI, report the posterior.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run_parser = commands.add_parser("run", help="compile, fit with VI (or NUTS) and report the posterior")
    run_parser.set_defaults(command=run)
    _spec_arguments(run_parser)
    run_parser.add_argument("--data", type=Path, help=DATA_HELP)
    run_parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    run_parser.add_argument("--method", choices=("vi", "nuts"), default="vi",
                            help="vi (mean-field VI, default) or nuts (Pyro's NUTS, with R-hat and ESS)")
    _fit_arguments(run_parser)
    run_parser.add_argument("--discrete", action="store_true",
                            help="also report P(z = k) per element of each enumerated discrete latent")
    run_parser.add_argument("--num-draws", type=_positive_int, dest="draws",
                            help="posterior draws behind the summary (default 10000)")
    run_parser.add_argument("--draws", type=Path, metavar="FILE.csv", dest="draws_csv",
                            help="write the posterior draws, one column per scalar element (beta[0], ...)")
    run_parser.add_argument("--idata", type=Path, metavar="FILE.nc",
                            help="write an ArviZ InferenceData (posterior, observed_data) as netCDF")
    run_parser.add_argument("--predictive", type=_positive_int, metavar="N",
                            help="with --idata: add N posterior predictive draws of every observed site")
    run_parser.add_argument("--plot", type=Path, metavar="FILE.png",
                            help="draw the ELBO trace and each latent's marginal posterior")
    run_parser.add_argument("--save", type=Path, metavar="FILE",
                            help="save the fit (spec, data hash, guide, report) for `pplc report` and `--fit`")

    compare_parser = commands.add_parser("compare", help="fit with VI and with NUTS; print them side by side")
    compare_parser.set_defaults(command=compare)
    _spec_arguments(compare_parser)
    compare_parser.add_argument("--data", type=Path, help=DATA_HELP)
    compare_parser.add_argument("--json", action="store_true", help="print one JSON object")
    _fit_arguments(compare_parser)

    check_parser = commands.add_parser("check", help="parse and check a spec without fitting")
    check_parser.set_defaults(command=check)
    _spec_arguments(check_parser)

    explain_parser = commands.add_parser(
        "explain", help="show the joint's factorisation, the guide and the ELBO; --trace computes one term")
    explain_parser.set_defaults(command=explain)
    _spec_arguments(explain_parser)
    explain_parser.add_argument("--trace", action="store_true",
                                help="draw z from the guide, replay the model, print each site's log-prob")
    explain_parser.add_argument("--fitted", action="store_true", help="with --trace: fit first, draw from the fit")
    explain_parser.add_argument("--data", type=Path, help="with --trace: " + DATA_HELP)
    explain_parser.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    explain_parser.add_argument("--json", action="store_true", help="print one JSON object")

    predict_parser = commands.add_parser(
        "predict", help="draw every observed site from the posterior predictive (or, with observed arrays "
        "left out of the data, the prior predictive)")
    predict_parser.set_defaults(command=predict)
    _spec_arguments(predict_parser)
    predict_parser.add_argument("--data", type=Path, help=DATA_HELP)
    predict_parser.add_argument("--n", type=_positive_int, default=1000, help="predictive draws (default 1000)")
    predict_parser.add_argument("--out", type=Path, metavar="FILE.csv|FILE.nc",
                                help="write them to FILE: CSV, or ArviZ InferenceData for .nc "
                                "(default: CSV on standard output)")
    predict_parser.add_argument("--fit", type=Path, metavar="FILE",
                                help="a fit saved with `pplc run --save`, instead of fitting again")
    predict_parser.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    predict_parser.add_argument("--quiet", action="store_true", help="no progress bar")

    report_parser = commands.add_parser("report", help="print the report of a fit saved with `pplc run --save`")
    report_parser.set_defaults(command=report_command, spec=None)
    report_parser.add_argument("fit_file", type=Path, metavar="FILE")
    report_parser.add_argument("--json", action="store_true", help="print the saved fit as JSON")

    emit_parser = commands.add_parser("emit", help="print the generated Pyro model and guide")
    emit_parser.set_defaults(command=emit)
    _spec_arguments(emit_parser)
    return parser


def _fit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"),
                        help="lbfgs (default: L-BFGS on the ELBO over fixed draws) or adam (stochastic SVI)")
    parser.add_argument("--steps", type=_positive_int,
                        help="a fixed number of L-BFGS iterations or Adam steps (default: stop when the ELBO is level)")
    parser.add_argument("--max-steps", type=_positive_int,
                        help="the cap when stopping at convergence (1000 L-BFGS iterations, 10000 Adam steps)")
    parser.add_argument("--lr", type=_positive_float, help="Adam's initial learning rate (default 0.05)")
    parser.add_argument("--jit", action="store_true", default=None,
                        help="with --optimizer adam: compile each step with Pyro's JitTrace_ELBO")
    parser.add_argument("--batch-size", type=_positive_int, metavar="B",
                        help="minibatch VI: batches of B random rows of every data plate, corrected by "
                        "a control variate (one per L-BFGS round, or per Adam step)")
    parser.add_argument("--device", type=_device, help="cpu (default), cuda or cuda:N: where the data, "
                        "parameters and draws live while fitting")
    parser.add_argument("--distributed", action="store_true", default=None,
                        help="one of the processes torchrun launched: each fits its slice of the data, "
                        "gradients averaged over all (docs/scaling.md)")
    parser.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--warmup", type=_positive_int, help="NUTS warm-up iterations per chain (default 500)")
    parser.add_argument("--samples", type=_positive_int, help="NUTS draws kept per chain (default 500)")
    parser.add_argument("--chains", type=_positive_int, help="NUTS chains (default 2)")


def _spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="the .ppl file")
    parser.add_argument("--guide", choices=("normal", "native"), default="normal",
                        help="guide family: normal (ADVI, default) or native (Beta, Gamma, Dirichlet)")


def _device(text: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not cpu, cuda or cuda:N")
    return text


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be in 0..{MAX_SEED - 1}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


if __name__ == "__main__":
    sys.exit(main())
