"""Level-triggered feeding of the work queue: list, then watch from the list's
resourceVersion, and list again on 410 Gone and every resync period.

Every list enqueues every key, so objects that existed before the reconciler started are
reconciled exactly like new ones, and a missed event costs at most one resync period.
A MODIFIED event that changes only the status is dropped: the reconciler's own status
writes must not requeue the key, or a failing object would be retried at once instead of
after its backoff. The queue holds keys only: the worker reads the object fresh, so
nothing here caches objects (only each key's `intent`).
A watch that fails reconnects with capped exponential backoff, reset by every successful
list; `Health` records whether the loop is alive, which /healthz reports.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.kube import ApiUnavailable, Expired, Gateway, key_of
from reconciler.queue import Backoff, WorkQueue

log = logging.getLogger(__name__)

Key = tuple[str, str]


@dataclass
class Health:
    """Per watch loop: when it last heard from the API server, and whether it runs."""

    stale_after_s: float
    _last_ok: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def beat(self, loop: str) -> None:
        with self._lock:
            self._last_ok[loop] = time.monotonic()

    def stopped(self, loop: str) -> None:
        with self._lock:
            self._last_ok[loop] = float("-inf")

    def register(self, loop: str) -> None:
        self.beat(loop)

    def healthy(self) -> bool:
        now = time.monotonic()
        with self._lock:
            return bool(self._last_ok) and all(
                now - last <= self.stale_after_s for last in self._last_ok.values()
            )


# What a user or the API server changes on the object, as opposed to its status: the
# spec (through the generation), deletion, finalizers, labels and annotations.
Intent = tuple[str, int, str, tuple[str, ...], str, str]


def intent(obj: Mapping[str, Any]) -> Intent:
    metadata = obj.get("metadata", {})
    return (
        str(metadata.get("uid", "")),
        int(metadata.get("generation") or 0),
        str(metadata.get("deletionTimestamp") or ""),
        tuple(metadata.get("finalizers") or ()),
        repr(sorted((metadata.get("labels") or {}).items())),
        repr(sorted((metadata.get("annotations") or {}).items())),
    )


def worth_queueing(event_type: str, obj: Mapping[str, Any], last: Intent | None) -> bool:
    """False only for a MODIFIED event whose object's intent is the one last seen."""
    return event_type != "MODIFIED" or last is None or intent(obj) != last


class WatchLoop:
    """One list+watch loop over one namespace, or all of them (`namespace=None`)."""

    def __init__(
        self,
        gateway: Gateway,
        queue: WorkQueue[Key],
        health: Health,
        *,
        namespace: str | None,
        resync_period_s: float,
        watch_timeout_s: int,
        backoff: Backoff[str],
    ) -> None:
        self.gateway = gateway
        self.queue = queue
        self.health = health
        self.namespace = namespace
        self.resync_period_s = resync_period_s
        self.watch_timeout_s = watch_timeout_s
        self.backoff = backoff
        self.name = f"watch:{namespace or '*'}"
        self.stop_event = threading.Event()
        self.intents: dict[Key, Intent] = {}

    def run(self) -> None:
        self.health.register(self.name)
        while not self.stop_event.is_set():
            try:
                self._list_and_watch()
            except ApiUnavailable as error:
                delay = self.backoff.next_delay(self.name)
                log.warning("%s: %s; reconnecting in %.0fs", self.name, error, delay)
                self.stop_event.wait(delay)
            except Exception:
                # Whatever went wrong, the loop must not die silently: /healthz would
                # go stale, but reconnecting is the better first answer.
                delay = self.backoff.next_delay(self.name)
                log.exception("%s: unexpected failure; reconnecting in %.0fs", self.name, delay)
                self.stop_event.wait(delay)
        self.health.stopped(self.name)

    def stop(self) -> None:
        self.stop_event.set()

    def _list_and_watch(self) -> None:
        listing = self.gateway.list_mysqls(self.namespace)
        # The API server answers again: the next failure starts from the shortest delay.
        self.backoff.forget(self.name)
        self.health.beat(self.name)
        self.intents = {key_of(obj): intent(obj) for obj in listing.items}
        for obj in listing.items:
            self.queue.add(key_of(obj))
        log.info("%s: listed %d objects", self.name, len(listing.items))
        resource_version = listing.resource_version
        resync_at = time.monotonic() + self.resync_period_s
        while not self.stop_event.is_set():
            remaining = resync_at - time.monotonic()
            if remaining <= 0:
                return  # resync: list again
            timeout = max(1, min(self.watch_timeout_s, int(remaining) + 1))
            try:
                for event in self.gateway.watch_mysqls(self.namespace, resource_version, timeout):
                    self.health.beat(self.name)
                    version = event.obj.get("metadata", {}).get("resourceVersion")
                    if version:
                        resource_version = str(version)
                    key = key_of(event.obj)
                    if worth_queueing(event.type, event.obj, self.intents.get(key)):
                        self.queue.add(key)
                    if event.type == "DELETED":
                        self.intents.pop(key, None)
                    else:
                        self.intents[key] = intent(event.obj)
                    if self.stop_event.is_set() or time.monotonic() >= resync_at:
                        return
            except Expired:
                log.info("%s: resourceVersion expired; listing again", self.name)
                return
            # The server closed the watch (its timeout): reconnect from where we were.
            self.health.beat(self.name)
