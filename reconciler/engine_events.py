"""A run's timings from when the engine reported each resource step (pure).

The engine streams its events to the driver during `up` and `destroy`; the driver feeds
the step starts and ends in here as they arrive. Steps on Kubernetes objects include the
provider's readiness awaits (claims Bound, the Deployment available, a Job complete), so
the wall time covered by them is the readiness wait, and the rest of the run is the
engine's own cost: start-up, plugins, the program, state writes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RunTimings:
    """Seconds of one engine run: `total` from the command's start to its exit, `resources`
    the wall time during which at least one step on a Kubernetes object was in flight."""

    total_s: float
    resources_s: float

    @property
    def engine_s(self) -> float:
        return max(0.0, self.total_s - self.resources_s)


def covered_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """The length of the union of [start, end] intervals."""
    covered = 0.0
    reach = float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        covered += end - max(start, reach)
        reach = end
    return covered


class StepClock:
    """Times the steps of one run; the engine reports them on several threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._started_at = clock()
        self._open: dict[str, float] = {}
        self._intervals: list[tuple[float, float]] = []

    def step_started(self, urn: str) -> None:
        now = self._clock()
        with self._lock:
            self._open[urn] = now

    def step_ended(self, urn: str) -> None:
        now = self._clock()
        with self._lock:
            started = self._open.pop(urn, None)
            if started is not None:
                self._intervals.append((started, now))

    def timings(self) -> RunTimings:
        now = self._clock()
        with self._lock:
            # A step still open (a failed run) counts until now.
            intervals = [*self._intervals, *((start, now) for start in self._open.values())]
        return RunTimings(total_s=now - self._started_at, resources_s=covered_seconds(intervals))
