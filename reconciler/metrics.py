"""Prometheus metrics of the reconciler, in a registry of its own (no global state)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Key = tuple[str, str]


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.reconciles = Counter(
            "mysql_operator_reconciles",
            "Reconciles by action and outcome.",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "mysql_operator_reconcile_errors",
            "Failed reconciles by kind of error.",
            ["kind"],
            registry=self.registry,
        )
        self.durations = Histogram(
            "mysql_operator_reconcile_duration_seconds",
            "Time spent on one reconcile, by action.",
            ["action"],
            buckets=(0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 900, 1800),
            registry=self.registry,
        )
        self.instances = Gauge(
            "mysql_operator_instances",
            "Instances by the reason of their Ready condition.",
            ["ready", "reason"],
            registry=self.registry,
        )
        self._states: dict[Key, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def observe_instance(self, key: Key, ready: str | None, reason: str | None) -> None:
        """Records the instance's Ready condition; None forgets a deleted instance."""
        with self._lock:
            if ready is None or reason is None:
                self._states.pop(key, None)
            else:
                self._states[key] = (ready, reason)
            counts: dict[tuple[str, str], int] = {}
            for state in self._states.values():
                counts[state] = counts.get(state, 0) + 1
            self.instances.clear()
            for (ready_value, reason_value), count in counts.items():
                self.instances.labels(ready=ready_value, reason=reason_value).set(count)
