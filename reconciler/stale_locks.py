"""Which of a stack's DIY backend locks may be removed: only those whose holder is
provably gone.

A DIY backend's lock is one object per holder (`.pulumi/locks/.../<stack>/<id>.json`)
naming the process that wrote it: its pid, user, host name and wall-clock time. The
backend never expires a lock, so one left by a killed process stops every later run on
the stack. Removing a lock whose writer still runs would let two engines write one
stack's state, so a lock is removed only when one of these holds:

- it was written on this host (the same host name: the same pod, whose containers share
  one process namespace) and no process with its pid runs here any more;
- it was written by a pod of this operator (the same user, a pod name with this
  operator's prefix) and that pod no longer exists;
- that pod has ended (Succeeded or Failed), or its containers all started after the lock
  was written. Both times come from the
  clock of the pod's node (the CLI's and the kubelet's), so no two nodes' clocks are
  compared; and every process of a container ends with it, a lost Lease included (the
  reconciler is the container's first process, and leaves at once when it loses the
  Lease).

Anything else (a lock from another machine, a process still running, a pod that may still
run it) is left in place, and the run stops with a message that names the holder.

Pure: the caller gathers the facts (is a local process running, the holder pod's state).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class StackLock:
    key: str  # the lock file's path, or its object key in a bucket
    pid: int
    username: str
    hostname: str
    written: datetime  # timezone-aware

    def holder(self) -> str:
        return f"{self.username}@{self.hostname} (pid {self.pid}, since {self.written.isoformat()})"


def parse_lock(key: str, content: bytes) -> StackLock | None:
    """The lock's contents, or None when they cannot be read (being written, or not a
    lock the CLI wrote)."""
    try:
        fields = json.loads(content)
        written = datetime.fromisoformat(str(fields["timestamp"]))
        if written.tzinfo is None:
            return None
        return StackLock(
            key=key,
            pid=int(fields["pid"]),
            username=str(fields["username"]),
            hostname=str(fields["hostname"]),
            written=written,
        )
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Identity:
    """Who this process is, as a lock would name it."""

    hostname: str
    username: str
    # In a pod: the operator's namespace, and the prefix its Deployment's pods share
    # (`<deployment>-`). None outside a pod, where other hosts' locks are never judged.
    pod_namespace: str | None = None
    pod_name_prefix: str | None = None

    def operator_pod(self, lock: StackLock) -> str | None:
        """The name of the operator pod that wrote `lock`, if one did."""
        if self.pod_namespace is None or not self.pod_name_prefix:
            return None
        if lock.username != self.username or not lock.hostname.startswith(self.pod_name_prefix):
            return None
        return lock.hostname


def pod_name_prefix(pod_name: str) -> str | None:
    """`<deployment>-` of a Deployment's pod name `<deployment>-<template hash>-<suffix>`."""
    parts = pod_name.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return f"{parts[0]}-"


@dataclass(frozen=True)
class PodFacts:
    exists: bool
    # Succeeded or Failed (an evicted pod stays so until it is deleted): no container of
    # it runs, or will again.
    terminal: bool = False
    # When every container runs: the start of the one that started first; else None.
    all_running_since: datetime | None = None


def pod_facts(pod: Mapping[str, Any] | None) -> PodFacts:
    """The facts of a pod as read from the API (None: it does not exist)."""
    if pod is None:
        return PodFacts(exists=False)
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return PodFacts(exists=True, terminal=True)
    starts: list[datetime] = []
    containers = status.get("containerStatuses") or []
    for container in containers:
        started = ((container.get("state") or {}).get("running") or {}).get("startedAt")
        if not started:
            return PodFacts(exists=True)
        starts.append(datetime.fromisoformat(str(started)))
    return PodFacts(exists=True, all_running_since=min(starts) if starts else None)


@dataclass(frozen=True)
class Verdict:
    gone: bool
    reason: str


def same_host(lock: StackLock, identity: Identity) -> bool:
    return lock.hostname == identity.hostname


def judge(
    lock: StackLock,
    identity: Identity,
    *,
    process_running: bool | None = None,
    pod: PodFacts | None = None,
) -> Verdict:
    """Whether the lock's holder is provably gone. `process_running` is asked for a lock
    written on this host, `pod` for one written by an operator pod (see `operator_pod`)."""
    if same_host(lock, identity):
        if process_running is None:
            raise ValueError("a lock from this host needs process_running")
        if process_running:
            return Verdict(False, f"process {lock.pid} on this host is still running")
        return Verdict(True, f"process {lock.pid} on this host has ended")
    pod_name = identity.operator_pod(lock)
    if pod_name is None:
        return Verdict(
            False,
            "it is not held by this host or by a pod of this operator, so nothing here can "
            "tell whether its holder still runs",
        )
    if pod is None:
        raise ValueError("a lock from an operator pod needs the pod's facts")
    where = f"pod {identity.pod_namespace}/{pod_name}"
    if not pod.exists:
        return Verdict(True, f"{where} no longer exists")
    if pod.terminal:
        return Verdict(True, f"{where} has ended (Succeeded or Failed)")
    if pod.all_running_since is not None and pod.all_running_since > lock.written:
        return Verdict(
            True,
            f"{where} restarted at {pod.all_running_since.isoformat()}, after the lock was written",
        )
    return Verdict(False, f"{where} still runs and may hold it")
