"""Prometheus metrics of the reconciler, in a registry of its own (no global state)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Key = tuple[str, str]


class QueueView(Protocol):
    def __len__(self) -> int: ...

    def oldest_wait_s(self) -> float: ...

    def delayed(self) -> int: ...


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
        self.queue_depth = Gauge(
            "mysql_operator_queue_depth",
            "Keys waiting for a worker now.",
            registry=self.registry,
        )
        self.queue_oldest = Gauge(
            "mysql_operator_queue_oldest_wait_seconds",
            "How long the key that has waited longest for a worker has waited.",
            registry=self.registry,
        )
        self.queue_delayed = Gauge(
            "mysql_operator_queue_delayed",
            "Keys waiting out a backoff or a poll delay.",
            registry=self.registry,
        )
        self._states: dict[Key, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def watch_queue(self, queue: QueueView) -> None:
        """Reads the queue's figures whenever /metrics is scraped."""
        self.queue_depth.set_function(lambda: float(len(queue)))
        self.queue_oldest.set_function(queue.oldest_wait_s)
        self.queue_delayed.set_function(lambda: float(queue.delayed()))

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
