"""Level-triggered feeding of the work queue: list, then watch from the list's
resourceVersion, and list again on 410 Gone and every resync period.

Two kinds of loops feed it. The MySQL loop enqueues every object on every list, so
objects that existed before the reconciler started are reconciled like new ones and a
missed event costs at most one resync period; a MODIFIED event that changes only the
status or adds the operator's own finalizer is dropped, so the reconciler's own writes never
requeue a key (an urgent add would send an instance on its way to the back of a burst of
new objects). Loops over the instance's claims, pods and Jobs only wake the instance they
belong to (its labels name it) when one of them changes, so a Job that completes or a
claim that binds is noticed at once instead of at the next poll. The MySQLBackup loop
wakes the instance a backup names (`spec.instance`) and keeps `BackupIndex`, the names of
the unfinished requested and scheduled backups, per instance, so that a pass reads only
those. The loop over the Secrets labelled as password Secrets (only their metadata is
kept) wakes the MySQL objects of the Secret's namespace, so an edited password is applied
without waiting for a resync.
The queue holds keys only: the worker reads the objects fresh, so nothing here caches
objects (only each MySQL object's `intent`, and those names). A watch that fails
reconnects with capped exponential backoff, reset by every successful list; `Health`
records whether each loop is alive, which /healthz reports.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from reconciler.backup_objects import is_requested, requested_backup, requested_instance
from reconciler.kube import ApiUnavailable, Expired, Gateway, Kind, key_of
from reconciler.queue import Backoff, WorkQueue
from reconciler.vocabulary import FINALIZER, LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY

log = logging.getLogger(__name__)

Key = tuple[str, str]
OWNED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"


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

    def stale_loops(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return sorted(
                loop for loop, last in self._last_ok.items() if now - last > self.stale_after_s
            )

    def healthy(self) -> bool:
        with self._lock:
            registered = bool(self._last_ok)
        return registered and not self.stale_loops()


class BackupIndex:
    """Per instance, the names of its unfinished requested and scheduled MySQLBackups."""

    def __init__(self) -> None:
        self._open: dict[Key, set[str]] = {}
        self._lock = threading.Lock()

    def open_for(self, key: Key) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._open.get(key, ())))

    def replace_namespace(
        self, namespace: str | None, items: tuple[Mapping[str, Any], ...]
    ) -> None:
        """A fresh list of one namespace (None: all of them) replaces what was known."""
        with self._lock:
            for key in [k for k in self._open if namespace is None or k[0] == namespace]:
                del self._open[key]
            for obj in items:
                self._note(obj, deleted=False)

    def update(self, obj: Mapping[str, Any], *, deleted: bool) -> None:
        with self._lock:
            self._note(obj, deleted=deleted)

    def _note(self, obj: Mapping[str, Any], *, deleted: bool) -> None:
        key = backup_instance_key(obj)
        if key is None:
            return
        name = str(obj.get("metadata", {}).get("name", ""))
        names = self._open.setdefault(key, set())
        if deleted or requested_backup(obj).finished:
            names.discard(name)
        else:
            names.add(name)
        if not names:
            del self._open[key]


def backup_instance_key(obj: Mapping[str, Any]) -> Key | None:
    """The instance a requested or scheduled MySQLBackup names; None for a final-backup
    record, which the teardown reads by name."""
    namespace = obj.get("metadata", {}).get("namespace")
    instance = requested_instance(obj)
    if not is_requested(obj) or instance is None or not isinstance(namespace, str):
        return None
    return namespace, instance


class Intent(NamedTuple):
    """What a user or the API server changes on the object, as opposed to what the
    reconciler writes (status, its own finalizer)."""

    uid: str
    generation: int  # the spec
    deletion: str
    other_finalizers: tuple[str, ...]
    labels: str
    annotations: str
    # The operator's own finalizer: adding it is the reconciler's write; its removal from a
    # live object is someone else's, and the reconciler must put it back at once.
    holds_finalizer: bool


def intent(obj: Mapping[str, Any]) -> Intent:
    metadata = obj.get("metadata", {})
    finalizers = tuple(metadata.get("finalizers") or ())
    return Intent(
        uid=str(metadata.get("uid", "")),
        generation=int(metadata.get("generation") or 0),
        deletion=str(metadata.get("deletionTimestamp") or ""),
        other_finalizers=tuple(name for name in finalizers if name != FINALIZER),
        labels=repr(sorted((metadata.get("labels") or {}).items())),
        annotations=repr(sorted((metadata.get("annotations") or {}).items())),
        holds_finalizer=FINALIZER in finalizers,
    )


def worth_queueing(event_type: str, obj: Mapping[str, Any], last: Intent | None) -> bool:
    """False only for a MODIFIED event that changes nothing of the intent last seen but
    the status, or that adds the operator's own finalizer."""
    if event_type != "MODIFIED" or last is None:
        return True
    now = intent(obj)
    if now._replace(holds_finalizer=False) != last._replace(holds_finalizer=False):
        return True
    return last.holds_finalizer and not now.holds_finalizer


def instance_key(obj: Mapping[str, Any]) -> Key | None:
    """The instance an owned object belongs to, from its labels."""
    metadata = obj.get("metadata", {})
    name = (metadata.get("labels") or {}).get(LABEL_INSTANCE)
    namespace = metadata.get("namespace")
    if not isinstance(name, str) or not isinstance(namespace, str):
        return None
    return namespace, name


def listed_fields(kind: str) -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    """What a loop reads of a listed object: the metadata (the key, the intent, the
    instance label), and for a MySQLBackup also its spec and status (BackupIndex). A list
    of thousands of objects is then held as much less while it is handled."""
    if kind == Kind.BACKUP:
        return _without_managed_fields
    return _metadata_only


def _metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata") or {}
    return {key: value for key, value in metadata.items() if key != "managedFields"}


def _metadata_only(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return {"metadata": _metadata(obj)}


def _without_managed_fields(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return {**obj, "metadata": _metadata(obj)}


class WatchLoop:
    """One list+watch loop over one kind in one namespace, or all of them (None)."""

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
        kind: str = Kind.MYSQL,
        label_selector: str = "",
        backups: BackupIndex | None = None,
        instances_in: Callable[[str], list[Key]] | None = None,
    ) -> None:
        self.gateway = gateway
        self.queue = queue
        self.health = health
        self.namespace = namespace
        self.resync_period_s = resync_period_s
        self.watch_timeout_s = watch_timeout_s
        self.backoff = backoff
        self.kind = kind
        self.label_selector = label_selector
        self.name = f"watch:{kind}:{namespace or '*'}"
        self.stop_event = threading.Event()
        self.intents: dict[Key, Intent] = {}
        self.backups = backups if backups is not None else BackupIndex()
        # The MySQL objects of a namespace, which a password Secret's change wakes.
        self.instances_in = instances_in or (lambda _namespace: [])
        handlers = {
            Kind.MYSQL: self._mysql_event,
            Kind.BACKUP: self._backup_event,
            Kind.SECRET: self._secret_event,
        }
        self._handle: Callable[[str, Mapping[str, Any]], None] = handlers.get(
            kind, self._owned_event
        )

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
        listing = self.gateway.list(
            self.kind, self.namespace, self.label_selector, keep=listed_fields(self.kind)
        )
        self.health.beat(self.name)
        self._listed(listing.items)
        resource_version = listing.resource_version
        resync_at = time.monotonic() + self.resync_period_s
        while not self.stop_event.is_set():
            remaining = resync_at - time.monotonic()
            if remaining <= 0:
                return  # resync: list again
            timeout = max(1, min(self.watch_timeout_s, int(remaining) + 1))
            try:
                for event in self.gateway.watch(
                    self.kind, self.namespace, resource_version, timeout, self.label_selector
                ):
                    self.health.beat(self.name)
                    version = event.obj.get("metadata", {}).get("resourceVersion")
                    if version:
                        resource_version = str(version)
                    self._handle(event.type, event.obj)
                    if self.stop_event.is_set() or time.monotonic() >= resync_at:
                        return
            except Expired:
                log.info("%s: resourceVersion expired; listing again", self.name)
                return
            # The server closed the watch (its timeout): that was a successful watch, so
            # the next failure starts from the shortest delay again.
            self.backoff.forget(self.name)
            self.health.beat(self.name)

    def _listed(self, items: tuple[Mapping[str, Any], ...]) -> None:
        if self.kind == Kind.MYSQL:
            self.intents = {key_of(obj): intent(obj) for obj in items}
            for obj in items:
                # A resync never overrides a key's backoff or poll delay (WorkQueue.add).
                self.queue.add(key_of(obj))
        elif self.kind == Kind.BACKUP:
            self.backups.replace_namespace(self.namespace, items)
            for obj in items:
                key = backup_instance_key(obj)
                if key is not None and not requested_backup(obj).finished:
                    self.queue.add(key, wake=True)
        elif self.kind == Kind.CLAIM:
            # Claims being deleted may belong to an instance that is gone: only a listed
            # claim would tell the operator to keep its volume.
            for obj in items:
                key = instance_key(obj)
                if key is not None and obj.get("metadata", {}).get("deletionTimestamp"):
                    self.queue.add(key, wake=True)
        log.info("%s: listed %d objects", self.name, len(items))
        self.backoff.forget(self.name)

    def _mysql_event(self, event_type: str, obj: Mapping[str, Any]) -> None:
        key = key_of(obj)
        if worth_queueing(event_type, obj, self.intents.get(key)):
            # New, edited or deleted: served before retries and resyncs, whatever its backoff.
            self.queue.add(key, urgent=True)
        if event_type == "DELETED":
            self.intents.pop(key, None)
        else:
            self.intents[key] = intent(obj)

    def _backup_event(self, event_type: str, obj: Mapping[str, Any]) -> None:
        self.backups.update(obj, deleted=event_type == "DELETED")
        key = backup_instance_key(obj)
        if key is not None and event_type == "ADDED":
            # A new request is served like a new object; the operator's own status writes
            # need not wake anything (the instance's pass made them).
            self.queue.add(key, urgent=True)

    def _secret_event(self, _event_type: str, obj: Mapping[str, Any]) -> None:
        """A password Secret changed (its value, most likely): the instances of its
        namespace look again; the ones that reference it rotate the password."""
        namespace = obj.get("metadata", {}).get("namespace")
        if isinstance(namespace, str):
            for key in self.instances_in(namespace):
                self.queue.add(key, wake=True)

    def _owned_event(self, _event_type: str, obj: Mapping[str, Any]) -> None:
        key = instance_key(obj)
        if key is not None:
            # Ends a wait at once, but not a failing key's backoff.
            self.queue.add(key, wake=True)
