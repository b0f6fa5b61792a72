"""Every fit option once, with its bounds: a value outside them is refused where it is given."""

from __future__ import annotations

import pydantic
import pytest

from compiler.inference.config import NutsConfig, RunConfig


@pytest.mark.parametrize("option", [{"steps": 0}, {"seed": 2**31}, {"lr_decay": 0.0}, {"device": "gpu"},
                                    {"covariance": "full"}, {"max_steps": 1}])
def test_an_option_outside_its_bounds_is_refused(option):
    with pytest.raises(pydantic.ValidationError):
        RunConfig(**option)


def test_the_defaults_are_the_documented_ones():
    config = RunConfig()
    assert (config.optimizer, config.covariance, config.resample, config.draws) == (None, "linear-response", True, 10000)


def test_an_unknown_option_is_refused_not_ignored():
    with pytest.raises(pydantic.ValidationError):
        NutsConfig(warmpu=100)
