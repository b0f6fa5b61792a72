"""Fitting errors: a non-finite ELBO names its site and keeps the last finite state;
Ctrl-C stops cleanly with the posterior reached so far."""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from compiler import FitError, compile_source
from compiler.cli import main

OVERFLOWING = """data N: int
data y: real[N]
latent m ~ Normal(0, 1)
latent s ~ HalfNormal(1)
observe y[i] ~ Normal(m, s * 1e-300)
"""


@pytest.fixture
def overflowing():
    return compile_source(OVERFLOWING, "overflow.ppl")


def test_non_finite_elbo_names_the_step_and_the_site(overflowing):
    with pytest.raises(FitError) as caught:
        overflowing.fit({"y": [1e300, -1e300, 3.0]}, steps=10)
    assert re.match(r"the ELBO became (inf|nan) at step 1 at site 'y'", caught.value.message)
    assert (caught.value.span.line, caught.value.span.column) == (5, 1)


def test_a_diverged_fit_is_retried_once_at_a_tenth_of_the_rate_before_failing(overflowing):
    with pytest.raises(FitError) as caught:
        overflowing.fit({"y": [1e300, -1e300, 3.0]}, steps=10, optimizer="adam", lr=0.05)
    assert caught.value.message.endswith("a retry from a fresh initialisation with Adam learning rate 0.005 failed too")


def test_a_diverged_lbfgs_fit_is_retried_once_with_shorter_steps_before_failing(overflowing):
    with pytest.raises(FitError) as caught:
        overflowing.fit({"y": [1e300, -1e300, 3.0]})
    assert caught.value.message.endswith(
        "a retry from a fresh initialisation with L-BFGS steps scaled by 0.1 failed too")


def test_an_adam_step_a_distribution_refuses_is_a_divergence_not_an_internal_error():
    program = compile_source("data N: int\ndata y: real[N]\nlatent s ~ HalfNormal(1)\nobserve y[i] ~ Normal(0, s)\n")
    with pytest.raises(FitError) as caught:  # steps this long underflow s to 0, which Normal refuses as a scale
        program.fit({"y": [0.5, -1.0, 2.0]}, optimizer="adam", lr=1e3, steps=20)
    assert re.match(r"the ELBO became nan at step \d+", caught.value.message)
    assert caught.value.message.endswith("a retry from a fresh initialisation with Adam learning rate 100 failed too")


POISSON = """data N: int
data x: real[N]
data c: int<lower=0>[N]
latent a ~ Normal(0, 10)
latent b ~ Normal(0, 10)
observe c[i] ~ Poisson(exp(a + b * x[i]))
"""


def test_a_retry_that_succeeds_is_reported():
    x = [0.2 * i for i in range(50)]
    data = {"x": x, "c": [int(2.718281828 ** (0.3 * v)) for v in x]}
    report = compile_source(POISSON).fit(data, steps=300, optimizer="adam", lr=20.0)
    assert any("this fit is a retry from a fresh initialisation with Adam learning rate 2" in w
               for w in report.warnings)
    assert all(math.isfinite(report.posterior[name].mean) for name in ("a", "b"))


def test_a_fit_that_fails_leaves_the_users_param_store_as_it_was(overflowing):
    import pyro

    mine = pyro.param("mine", torch.tensor(1.0))
    with pytest.raises(FitError):
        overflowing.fit({"y": [1e300, -1e300, 3.0]}, steps=10)
    assert list(pyro.get_param_store().keys()) == ["mine"] and pyro.param("mine") is mine


def test_fitting_error_exits_4_with_the_spec_line(tmp_path, capsys):
    spec = tmp_path / "overflow.ppl"
    spec.write_text(OVERFLOWING)
    (tmp_path / "overflow.data.json").write_text(json.dumps({"y": [1e300, -1e300, 3.0]}))
    assert main(["run", str(spec)]) == 4
    err = capsys.readouterr().err
    assert re.search(r"error: the ELBO became (inf|nan) at step 1 at site 'y'", err)
    assert "  5 | observe y[i] ~ Normal(m, s * 1e-300)" in err


# `pplc ARGS` in a process of its own, which says on stderr when torch and Pyro, most of its start-up, are imported.
RUN_AFTER_IMPORTS = """
import sys
import pyro  # noqa: F401 - imported before saying so
from compiler.cli import main
print("imported", file=sys.stderr, flush=True)
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_stops_the_fit_and_reports_what_was_reached(specs):
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_AFTER_IMPORTS, "run", str(specs / "coin.ppl"), "--steps", "1000000", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr.readline() == "imported\n"
    time.sleep(3)  # past compiling the coin and loading its ten flips (a fraction of a second), into the SVI loop
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["interrupted"] and not report["converged"]
    assert 0 < report["steps"] < 1_000_000
    assert "interrupted at step" in report["warnings"][0]


def test_a_distribution_refusing_its_data_derived_arguments_is_reported_at_its_statement_without_a_retry():
    program = compile_source("data N: int\ndata y: real[N]\ndata s: real[N]\nlatent m ~ Normal(0, 1)\n"
                             "observe y[i] ~ Normal(m, s[i])\n", "scales.ppl")
    with pytest.raises(FitError) as caught:
        program.fit({"y": [1.0, 2.0], "s": [1.0, -1.0]}, steps=10)
    assert caught.value.message.startswith("'y' cannot be evaluated at the initial values: the scale of Normal "
                                           "must satisfy GreaterThan(lower_bound=0.0)")
    assert "retry" not in caught.value.message
    assert caught.value.span.line == 5


def test_jit_is_refused_with_lbfgs(specs, capsys):
    assert main(["run", str(specs / "coin.ppl"), "--jit"]) == 2
    assert "--jit applies to Adam's steps" in capsys.readouterr().err
