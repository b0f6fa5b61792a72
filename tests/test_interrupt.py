"""Ctrl-C during a fit is a flag the loops read between steps, never an exception
raised inside a Pyro handler; outside a fit it is what it always was."""

from __future__ import annotations

import signal

import pytest

from compiler import compile_file
from compiler.inference import interrupt


def test_ctrl_c_inside_sets_the_flag_instead_of_raising():
    with interrupt.caught():
        assert not interrupt.requested()
        signal.raise_signal(signal.SIGINT)
        assert interrupt.requested()
        with pytest.raises(interrupt.Interrupted):
            interrupt.check()


def test_the_previous_handler_is_back_afterwards():
    previous = signal.getsignal(signal.SIGINT)
    with interrupt.caught():
        pass
    assert signal.getsignal(signal.SIGINT) is previous
    assert not interrupt.requested()


def test_ctrl_c_pressed_before_a_fit_does_not_stop_it(specs):
    coin = compile_file(specs / "coin.ppl")
    with interrupt.caught():
        signal.raise_signal(signal.SIGINT)  # pressed before the fit's own handler: the fit must not see it
    report = coin.fit(seed=0)
    assert not report.interrupted and report.converged
