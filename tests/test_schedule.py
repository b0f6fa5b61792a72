"""When SVI stops: the ELBO is level within tolerance or noise, then a refinement phase."""

from __future__ import annotations

import random

from compiler.inference.schedule import MIN_REFINEMENT, WINDOW, Schedule, is_level


def noisy(values, sd=0.5, seed=0):
    rng = random.Random(seed)
    return [v + rng.gauss(0, sd) for v in values]


def test_a_flat_noisy_elbo_is_level():
    assert is_level(noisy([-100.0] * (2 * WINDOW)), tolerance=1e-6)


def test_a_rising_elbo_is_not_level():
    assert not is_level([-1000.0 + step for step in range(2 * WINDOW)], tolerance=1e-3)


def test_a_small_relative_change_counts_as_level():
    series = [-10_000.0] * WINDOW + [-9_995.0] * WINDOW
    assert is_level(series, tolerance=1e-3)
    assert not is_level(series, tolerance=1e-5)


def run(schedule: Schedule, elbo_at) -> int:
    step = 0
    while step < schedule.total_steps:
        schedule.record(step, elbo_at(step))
        step += 1
    return step


def test_refinement_starts_once_the_elbo_is_level_twice_in_a_row():
    schedule = Schedule(decay=0.1, tolerance=1e-3, max_steps=10_000, fixed_steps=None, average_fraction=0.5)
    elbo = noisy([-50.0] * 20_000)
    steps = run(schedule, lambda step: elbo[step])
    assert schedule.converged
    assert schedule.refine_from == 2 * WINDOW + WINDOW // 2
    assert steps == schedule.refine_from + MIN_REFINEMENT


def test_a_run_that_never_levels_stops_at_the_cap_unconverged():
    schedule = Schedule(decay=0.1, tolerance=1e-6, max_steps=2_000, fixed_steps=None, average_fraction=0.5)
    steps = run(schedule, lambda step: -10_000.0 + 5 * step)
    assert steps == 2_000
    assert not schedule.converged


def test_the_learning_rate_decays_only_during_refinement():
    schedule = Schedule(decay=0.1, tolerance=1e-3, max_steps=10_000, fixed_steps=None, average_fraction=0.5)
    schedule.refine_from, schedule.refine_steps = 300, 400
    assert schedule.lr_factor(299) == 1.0
    assert abs(schedule.lr_factor(500) - 0.1 ** 0.5) < 1e-12
    assert not schedule.averaging(299) and schedule.averaging(300)


def test_fixed_steps_run_exactly_that_many():
    schedule = Schedule(decay=0.1, tolerance=1e-3, max_steps=10_000, fixed_steps=123, average_fraction=0.5)
    assert run(schedule, lambda step: -1.0) == 123


def test_the_coin_stops_well_before_the_cap(fitted_coin):
    report = fitted_coin
    assert report.converged
    assert report.steps <= 50  # L-BFGS iterations; the cap is 1,000. Accuracy at this stop: test_accuracy_coin.py


def test_the_coin_stops_well_before_the_cap_with_adam(fitted_coin_with_adam):
    report = fitted_coin_with_adam
    assert report.converged
    assert report.steps <= 1_000  # Adam steps; the cap is 10,000
