"""The command line's options built from pydantic configurations (`inference.config`): each
field's name, type, default, bounds and help text become one option, so that they are
written once, in the configuration; and the options several commands share.                 [cli]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo


# Where the command line does not spell a field as `--` + its name, `-` for `_`.
FLAGS = {"draws": "--num-draws"}  # `pplc run --draws FILE.csv` writes the draws
METAVARS = {"batch_size": "B"}
# What a field checked by a pattern accepts, in words, for the message when a value does not match.
IN_WORDS = {"device": "cpu, cuda or cuda:N"}


class Command(argparse.ArgumentParser):
    """A command's parser. Options built from the fit configurations (`config_options`) are added
    when the command is parsed (or its --help shown): reading the configurations loads pydantic,
    which commands that fit nothing (`pplc check`) never pay for."""

    def __init__(self, *args: Any, config_options: Callable[[argparse.ArgumentParser], None] | None = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._config_options = config_options

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple[argparse.Namespace, list[str]]:
        if self._config_options is not None:
            add, self._config_options = self._config_options, None
            add(self)
        return super().parse_known_args(args, namespace)


def add_option(parser: argparse.ArgumentParser, name: str, field: FieldInfo, context: str = "") -> None:
    """One config field as an option: its name, its description and default as the help, the
    choices of a Literal, a flag for a bool, and any other value checked by the field's own bounds."""
    flag = FLAGS.get(name, "--" + name.replace("_", "-"))
    shown_default = "" if field.default is None or isinstance(field.default, bool) else f" (default {field.default})"
    help_text = (context + (field.description or "") + shown_default).replace("%", "%%")
    kind = _without_none(field.annotation)
    if kind is bool:
        # A flag that is on by default gets its --no- form too.
        action = argparse.BooleanOptionalAction if field.default else "store_true"
        parser.add_argument(flag, dest=name, action=action, default=field.default, help=help_text)
    elif get_origin(kind) is Literal:
        parser.add_argument(flag, dest=name, choices=get_args(kind), default=field.default, help=help_text)
    else:
        parser.add_argument(flag, dest=name, type=_checked(name, kind, field), default=field.default,
                            metavar=METAVARS.get(name), help=help_text)


def _without_none(annotation: Any) -> Any:
    """`int` for `int | None`: on the command line an option left out is the None."""
    if get_origin(annotation) in (Union, UnionType):
        kinds = [kind for kind in get_args(annotation) if kind is not type(None)]
        return kinds[0] if len(kinds) == 1 else annotation
    return annotation


def _checked(name: str, kind: Any, field: FieldInfo) -> Callable[[str], Any]:
    """The text of an option as the field's type, within the field's bounds; a value outside
    them is a usage error (argparse's message, exit 2), as an unknown option is."""
    from pydantic import TypeAdapter, ValidationError

    adapter = TypeAdapter(Annotated[(kind, *field.metadata)] if field.metadata else kind)

    def parse(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as error:
            problem = error.errors(include_url=False)[0]
            if problem["type"] == "string_pattern_mismatch" and name in IN_WORDS:
                raise argparse.ArgumentTypeError(f"{text!r} is not {IN_WORDS[name]}") from None
            message = problem["msg"]
            raise argparse.ArgumentTypeError(f"{text!r}: {message[:1].lower()}{message[1:]}") from None

    return parse


def fit_options(parser: argparse.ArgumentParser) -> None:
    """Every field of `RunConfig` and `NutsConfig` as an option (`--batch-size` for `batch_size`)."""
    from compiler.inference.config import NutsConfig, RunConfig

    for name, field in RunConfig.model_fields.items():
        if name != "progress":  # shown on a terminal unless --quiet
            add_option(parser, name, field)
    for name, field in NutsConfig.model_fields.items():
        if name not in RunConfig.model_fields:
            add_option(parser, name, field, "NUTS: ")
    quiet_option(parser)


def predict_options(parser: argparse.ArgumentParser) -> None:
    seed_option(parser)
    quiet_option(parser)


def seed_option(parser: argparse.ArgumentParser) -> None:
    from compiler.inference.config import RunConfig

    add_option(parser, "seed", RunConfig.model_fields["seed"])


def quiet_option(parser: argparse.ArgumentParser) -> None:
    from compiler.inference.config import RunConfig

    progress = RunConfig.model_fields["progress"].description
    parser.add_argument("--quiet", action="store_true", help=f"no progress bar (otherwise, on a terminal: {progress})")


def spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="the .ppl file")
    guide_argument(parser)


def guide_argument(parser: argparse.ArgumentParser) -> None:
    from compiler.backend.codegen import GUIDE_FAMILIES
    from compiler.backend.guide import LOW_RANK

    parser.add_argument("--guide", choices=GUIDE_FAMILIES, default="normal",
                        help="guide family: normal (mean-field ADVI, default), native (Beta, Gamma, Dirichlet), "
                        "fullrank (one multivariate normal over all the latents' unconstrained coordinates) or "
                        f"lowrank (the same, its covariance diagonal plus rank min({LOW_RANK}, ceil(coordinates / 2))); "
                        "docs/inference.md")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value
