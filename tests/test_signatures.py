"""The Python API names its options: `Program.fit`, `Program.predict` and `Program.sample` take
`RunConfig`'s and `NutsConfig`'s fields as typed keyword arguments with the configuration's own
defaults, so that IDEs and `help()` show them; these tests keep the two in step."""

from __future__ import annotations

import inspect
import typing

import pytest

from compiler import api
from compiler.api import Program, compile_file
from compiler.backend.codegen import GUIDE_FAMILIES
from compiler.inference.config import NutsConfig, RunConfig
from compiler.results.fit import Fit

# The arguments a method takes besides its configuration's fields.
OWN = {"fit": ("data",), "sample": ("data",), "predict": ("data", "draws", "seed")}


def _options(method, own: tuple[str, ...]) -> dict[str, inspect.Parameter]:
    return {name: p for name, p in inspect.signature(method).parameters.items() if name not in ("self", *own)}


def _hinted(annotation: str):
    """An annotation as a type, evaluated where the API's module evaluates it."""
    return eval(annotation, vars(api))  # noqa: S307 - the API's own annotations, not input


def _same_type(a, b) -> bool:
    # `int | None` and `Optional[int]` are one type spelt two ways.
    if typing.get_origin(a) in (typing.Union, type(int | None)):
        return typing.get_origin(b) in (typing.Union, type(int | None)) and set(typing.get_args(a)) == set(
            typing.get_args(b))
    return a == b


@pytest.mark.parametrize(("method", "config", "left_to_default"), [
    (Program.fit, RunConfig, ()), (Program.sample, NutsConfig, ()), (Program.predict, RunConfig, ("draws", "seed")),
])
def test_a_methods_options_are_its_configurations_fields_with_their_types_and_defaults(method, config, left_to_default):
    options = _options(method, OWN[method.__name__])
    fields = {name: field for name, field in config.model_fields.items() if name not in left_to_default}
    assert list(options) == list(fields)
    for name, parameter in options.items():
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameter.default == fields[name].default, name
        assert _same_type(_hinted(parameter.annotation), fields[name].annotation), name


def test_predicts_own_draws_and_seed_are_the_predictive_draws_and_the_fits_seed():
    parameters = inspect.signature(Program.predict).parameters
    assert (parameters["draws"].default, parameters["seed"].default) == (1000, RunConfig.model_fields["seed"].default)


def test_the_guide_families_a_signature_names_are_the_generators():
    assert typing.get_args(api.GuideFamily) == GUIDE_FAMILIES
    assert inspect.signature(compile_file).parameters["guide"].annotation == "GuideFamily"


def test_fit_passes_its_options_to_the_fit():
    fit = compile_file("specs/coin.ppl").fit(steps=30, draws=200, seed=3, covariance="mean-field")
    assert (fit.steps, fit.seed, fit.covariance, fit.draws["f"].shape[0]) == (30, 3, "mean-field", 200)


def test_an_unknown_option_is_refused_by_name():
    with pytest.raises(TypeError, match="stpes"):
        compile_file("specs/coin.ppl").fit(stpes=30)


def test_fit_predict_takes_its_draws_and_data_typed():
    parameters = inspect.signature(Fit.predict).parameters
    assert (parameters["draws"].annotation, parameters["data"].annotation) == ("int", "DataSource")
