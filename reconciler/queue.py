"""A deduplicating work queue of object keys, after client-go's workqueue, with three
lanes and two kinds of delay.

- A key waits in the queue at most once, however often it is added.
- A key being processed is never handed to a second worker: adding it meanwhile marks it
  dirty, and it is queued again when the first worker calls `done`.
- Lanes, strongest first: urgent (a new, edited or deleted object), progress (one of the
  instance's objects changed, or a poll came due: an instance on its way), and plain (a
  resync, or a retry after its backoff). Urgent and progress keys take turns while both
  wait, so a burst of new objects does not hold back the instances already on their way;
  both go before every plain key. A key added more strongly moves to the stronger lane.
- Urgent keys end any delay of theirs: an edit may be the fix a failing object waited for.
- A delayed key is either backing off after a failure or polling while something is
  under way. A plain `add` never ends a delay; `add(wake=True)` ends a poll, but not a
  backoff.
- `Backoff` gives each key a capped exponential delay that `forget` resets.

The clock is injected so that the unit tests never sleep.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

Clock = Callable[[], float]


class ShutDown(Exception):
    """The queue was shut down; workers should exit."""


_PLAIN, _WAKE, _URGENT = 0, 1, 2


@dataclass(frozen=True)
class _Delay:
    due: float
    backoff: bool  # True: after a failure; False: polling


@dataclass(frozen=True)
class _Queued:
    lane: int  # the strength it was added with, strongest so far
    since: float


@dataclass
class WorkQueue(Generic[K]):
    clock: Clock = time.monotonic
    # One lane per strength (_PLAIN, _WAKE, _URGENT).
    _lanes: tuple[deque[K], deque[K], deque[K]] = field(
        default_factory=lambda: (deque(), deque(), deque())
    )
    # Keys in a lane: which lane (a strength), and since when.
    _queued: dict[K, _Queued] = field(default_factory=dict)
    _urgent_served_last: bool = False
    _processing: set[K] = field(default_factory=set)
    # Keys added while processing, with the strongest way they were added.
    _dirty: dict[K, int] = field(default_factory=dict)
    _delays: dict[K, _Delay] = field(default_factory=dict)
    _heap: list[tuple[float, int, K]] = field(default_factory=list)
    _sequence: int = 0
    _shut_down: bool = False
    _lock: threading.Condition = field(default_factory=threading.Condition)

    def add(self, key: K, *, urgent: bool = False, wake: bool = False) -> None:
        with self._lock:
            if self._shut_down:
                return
            strength = _URGENT if urgent else _WAKE if wake else _PLAIN
            if key in self._processing:
                self._dirty[key] = max(self._dirty.get(key, _PLAIN), strength)
                return
            if not self._ends_delay(key, strength):
                return  # a resync, or a wake during a backoff, waits its turn
            self._enqueue(key, strength)

    def add_after(self, key: K, delay_s: float, *, backoff: bool) -> None:
        """Queues the key after `delay_s`; the latest delay of a key replaces earlier ones."""
        with self._lock:
            if self._shut_down:
                return
            if delay_s <= 0:
                self._delays.pop(key, None)
                if key in self._processing:
                    self._dirty.setdefault(key, _PLAIN)
                else:
                    self._enqueue(key, _PLAIN if backoff else _WAKE)
                return
            due = self.clock() + delay_s
            self._delays[key] = _Delay(due, backoff)
            self._sequence += 1
            heapq.heappush(self._heap, (due, self._sequence, key))
            self._lock.notify()

    def get(self, timeout_s: float | None = None) -> K | None:
        """The next key, marked as processing; None on timeout. Raises `ShutDown`."""
        deadline = None if timeout_s is None else self.clock() + timeout_s
        with self._lock:
            while True:
                if self._shut_down:
                    raise ShutDown()
                self._promote_due()
                key = self._next_key()
                if key is not None:
                    self._processing.add(key)
                    return key
                now = self.clock()
                if deadline is not None and now >= deadline:
                    return None
                wait = self._heap[0][0] - now if self._heap else None
                if deadline is not None:
                    wait = deadline - now if wait is None else min(wait, deadline - now)
                self._lock.wait(timeout=wait)

    def done(self, key: K) -> None:
        with self._lock:
            self._processing.discard(key)
            if key in self._dirty:
                strength = self._dirty.pop(key)
                if self._ends_delay(key, strength):
                    self._enqueue(key, strength)

    def shut_down(self) -> None:
        with self._lock:
            self._shut_down = True
            self._lock.notify_all()

    def __len__(self) -> int:
        with self._lock:
            return len(self._queued)

    def oldest_wait_s(self) -> float:
        """How long the longest-waiting queued key has waited (0 when none)."""
        with self._lock:
            if not self._queued:
                return 0.0
            return max(0.0, self.clock() - min(q.since for q in self._queued.values()))

    def delayed(self) -> int:
        with self._lock:
            return len(self._delays)

    def _ends_delay(self, key: K, strength: int) -> bool:
        """Whether an add of this strength may queue the key now (ending its delay)."""
        delay = self._delays.get(key)
        if delay is None:
            return True
        if strength == _URGENT or (strength == _WAKE and not delay.backoff):
            del self._delays[key]
            return True
        return False

    def _next_key(self) -> K | None:
        plain, progress, urgent = self._lanes
        if urgent and progress:
            # Taking turns: neither new objects nor those on their way starve.
            lane = progress if self._urgent_served_last else urgent
        else:
            lane = urgent or progress or plain
        if not lane:
            return None
        self._urgent_served_last = lane is urgent
        key = lane.popleft()
        del self._queued[key]
        return key

    def _enqueue(self, key: K, strength: int) -> None:
        current = self._queued.get(key)
        if current is not None:
            if strength > current.lane:
                self._lanes[current.lane].remove(key)
                self._lanes[strength].append(key)
                self._queued[key] = _Queued(strength, current.since)
            return
        self._queued[key] = _Queued(strength, self.clock())
        self._lanes[strength].append(key)
        self._lock.notify()

    def _promote_due(self) -> None:
        now = self.clock()
        while self._heap and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            delay = self._delays.get(key)
            if delay is None or delay.due != due:
                continue  # replaced by a later delay, or ended by an add
            del self._delays[key]
            if key in self._processing:
                self._dirty.setdefault(key, _PLAIN)
            else:
                # A poll that came due is progress; a retry after a backoff is not.
                self._enqueue(key, _PLAIN if delay.backoff else _WAKE)


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
