"""A deduplicating work queue of object keys, after client-go's workqueue.

- A key waits in the queue at most once, however often it is added.
- A key being processed is never handed to a second worker: adding it meanwhile marks it
  dirty, and it is queued again when the first worker calls `done`.
- `add_after` delays a key (backoff, resync); an earlier plain `add` wins.
- `Backoff` gives each key a capped exponential delay that `forget` resets.

The clock is injected so that the unit tests never sleep.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K")

Clock = Callable[[], float]


class ShutDown(Exception):
    """The queue was shut down; workers should exit."""


@dataclass
class WorkQueue(Generic[K]):
    clock: Clock = time.monotonic
    _queue: list[K] = field(default_factory=list)
    _queued: set[K] = field(default_factory=set)
    _processing: set[K] = field(default_factory=set)
    _dirty: set[K] = field(default_factory=set)
    _delayed: list[tuple[float, int, K]] = field(default_factory=list)
    _sequence: int = 0
    _shut_down: bool = False
    _lock: threading.Condition = field(default_factory=threading.Condition)

    def add(self, key: K) -> None:
        with self._lock:
            if self._shut_down:
                return
            if key in self._processing:
                self._dirty.add(key)
                return
            if key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
                self._lock.notify()

    def add_after(self, key: K, delay_s: float) -> None:
        if delay_s <= 0:
            self.add(key)
            return
        with self._lock:
            if self._shut_down:
                return
            self._sequence += 1
            heapq.heappush(self._delayed, (self.clock() + delay_s, self._sequence, key))
            self._lock.notify()

    def get(self, timeout_s: float | None = None) -> K | None:
        """The next key, marked as processing; None on timeout. Raises `ShutDown`."""
        deadline = None if timeout_s is None else self.clock() + timeout_s
        with self._lock:
            while True:
                if self._shut_down:
                    raise ShutDown()
                self._promote_due()
                if self._queue:
                    key = self._queue.pop(0)
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                now = self.clock()
                if deadline is not None and now >= deadline:
                    return None
                wait = self._delayed[0][0] - now if self._delayed else None
                if deadline is not None:
                    wait = deadline - now if wait is None else min(wait, deadline - now)
                self._lock.wait(timeout=wait)

    def done(self, key: K) -> None:
        with self._lock:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._queue.append(key)
                    self._lock.notify()

    def shut_down(self) -> None:
        with self._lock:
            self._shut_down = True
            self._lock.notify_all()

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)

    def pending_delayed(self) -> int:
        with self._lock:
            return len(self._delayed)

    def _promote_due(self) -> None:
        now = self.clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)


@dataclass
class Backoff(Generic[K]):
    """Capped exponential delay per key: base, 2*base, 4*base ... up to `cap_s`."""

    base_s: float = 2.0
    cap_s: float = 300.0
    _failures: dict[K, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_delay(self, key: K) -> float:
        with self._lock:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        return min(self.cap_s, self.base_s * 2.0 ** min(failures, 32))

    def failures(self, key: K) -> int:
        with self._lock:
            return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        with self._lock:
            self._failures.pop(key, None)
