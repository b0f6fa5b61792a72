"""The command line's fitting options are `RunConfig`'s and `NutsConfig`'s fields: one name,
default, bound and help text per option, written once in `inference/config.py`."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from compiler.cli import _nuts_options, _parser, _svi_options, main
from compiler.inference.config import NutsConfig, RunConfig


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    # argparse wraps lines, also after a hyphen: compare words, hyphenated ones rejoined
    return re.sub(r"- ", "-", " ".join(capsys.readouterr().out.split()))


@pytest.mark.parametrize("config", [RunConfig, NutsConfig])
def test_run_help_lists_every_config_field_with_its_description(config, capsys):
    shown = _help("run", capsys)
    for name, field in config.model_fields.items():
        if config is NutsConfig and name in RunConfig.model_fields:
            continue  # one option for both (the seed), described by RunConfig
        assert " ".join(field.description.split()) in shown, name
        if name not in ("draws", "progress"):  # --num-draws, and --quiet for the progress bar
            assert "--" + name.replace("_", "-") in shown, name


def test_compare_takes_the_same_fitting_options_as_run(capsys):
    run_help, compare_help = _help("run", capsys), _help("compare", capsys)
    for name in (*RunConfig.model_fields, *NutsConfig.model_fields):
        if name not in ("draws", "progress"):
            flag = "--" + name.replace("_", "-")
            assert (flag in run_help) == (flag in compare_help), flag


def test_an_option_reaches_the_config_under_its_field_name():
    args = _parser().parse_args(["run", "x.ppl", "--batch-size", "7", "--lr-decay", "0.5", "--num-draws", "300",
                                 "--optimizer", "adam", "--jit"])
    config = RunConfig(**_svi_options(args))
    assert (config.batch_size, config.lr_decay, config.draws, config.optimizer, config.jit) == (7, 0.5, 300, "adam", True)


def test_options_left_out_leave_the_configs_defaults():
    args = _parser().parse_args(["run", "x.ppl"])
    assert RunConfig(**_svi_options(args)) == RunConfig()
    assert NutsConfig(**_nuts_options(args)) == NutsConfig()


def test_nuts_options_reach_the_nuts_config():
    args = _parser().parse_args(["run", "x.ppl", "--method", "nuts", "--target-accept", "0.9", "--chains", "3"])
    config = NutsConfig(**_nuts_options(args))
    assert (config.target_accept, config.chains) == (0.9, 3)


@pytest.mark.parametrize("option, value, bound", [
    ("--max-steps", "1", "greater than or equal to 2"),  # RunConfig's bound, not a blanket "at least 1"
    ("--num-draws", "1", "greater than or equal to 2"),
    ("--seed", str(2**31), "less than 2147483648"),
    ("--lr-decay", "1.5", "less than or equal to 1"),
    ("--target-accept", "1", "less than 1"),
])
def test_a_value_outside_the_fields_bounds_is_a_usage_error(option, value, bound, specs, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(specs / "coin.ppl"), option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"pplc run: error: argument {option}: '{value}': input should be {bound}" in err
    assert "Traceback" not in err


def test_a_value_of_the_wrong_type_is_a_usage_error(specs, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(specs / "coin.ppl"), "--steps", "ten"])
    assert exit_.value.code == 2
    assert "argument --steps: 'ten': input should be a valid integer" in capsys.readouterr().err


def test_predict_and_explain_take_the_seed_with_runs_bounds(specs, capsys):
    for command in ("predict", "explain"):
        with pytest.raises(SystemExit):
            main([command, str(specs / "coin.ppl"), "--seed", "-1"])
        assert "'-1': input should be greater than or equal to 0" in capsys.readouterr().err


def test_check_never_reads_the_configurations(specs):
    # The options built from them are added only to the command being run: `pplc check` stays light.
    code = ("import sys\nfrom compiler.cli import main\n"
            f"code = main(['check', {str(specs / 'coin.ppl')!r}])\nprint(code, 'pydantic' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines()[-1] == "0 False", result.stderr[-2000:]



def _wait_policy(environment: dict[str, str], module: str) -> str:
    # (torch loads when a model is built, later than importing pplc sets this, which it must precede)
    code = f"import os, sys, {module}; assert 'torch' not in sys.modules; print(os.environ['OMP_WAIT_POLICY'])"
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.parametrize("module", ["compiler", "compiler.cli"])
def test_the_library_and_the_command_make_openmp_threads_sleep_between_operations(module):
    unset = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    assert _wait_policy(unset, module) == "PASSIVE"


def test_a_wait_policy_the_user_set_is_kept():
    assert _wait_policy({**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}, "compiler") == "ACTIVE"


def test_the_command_freezes_the_collector_once_main_returns_and_main_alone_does_not(monkeypatch):
    # (interpreter shutdown then skips a last full collection of torch's and pyro's objects)
    import gc

    from compiler import cli

    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    monkeypatch.setattr(sys, "argv", ["pplc", "check", "specs/coin.ppl"])
    assert cli.main(["check", "specs/coin.ppl"]) == 0 and not frozen
    assert cli.command() == 0 and frozen == [True]
