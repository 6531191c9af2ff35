"""A run's timings from when its resource steps started and ended (pure: the clock is a
number the test moves)."""

from __future__ import annotations

import pytest

from reconciler.engine_events import RunTimings, StepClock, covered_seconds

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_covered_seconds_counts_overlapping_intervals_once() -> None:
    assert covered_seconds([]) == 0.0
    assert covered_seconds([(0.0, 1.0), (0.5, 2.0), (3.0, 4.0)]) == pytest.approx(3.0)
    assert covered_seconds([(0.0, 5.0), (1.0, 2.0)]) == pytest.approx(5.0)


def test_resource_time_is_the_steps_in_flight_and_the_rest_is_the_engine() -> None:
    clock = Clock()
    steps = StepClock(clock)
    clock.now = 100.5  # engine start-up
    steps.step_started("secret")
    steps.step_started("deployment")
    clock.now = 100.6
    steps.step_ended("secret")
    clock.now = 102.5  # the Deployment's readiness await
    steps.step_ended("deployment")
    steps.step_started("job")
    clock.now = 103.0
    steps.step_ended("job")
    steps.step_ended("never-started")  # ignored
    clock.now = 103.4  # state writes, exit
    timings = steps.timings()
    assert timings.total_s == pytest.approx(3.4)
    assert timings.resources_s == pytest.approx(2.5)
    assert timings.engine_s == pytest.approx(0.9)


def test_a_step_still_open_counts_until_the_timings_are_taken() -> None:
    clock = Clock()
    steps = StepClock(clock)
    steps.step_started("job")
    clock.now = 101.0
    assert steps.timings() == RunTimings(total_s=1.0, resources_s=1.0)
