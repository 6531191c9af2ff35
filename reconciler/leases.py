"""Leader election on a coordination.k8s.io/v1 Lease: the rules, without the API calls.

One reconciler at a time may drive the stacks. Candidates share one Lease; its holder
renews it every few seconds, and a candidate takes it over only when the holder has
released it or has not renewed it for the Lease's whole duration.

"Has not renewed" is judged by the candidate's own monotonic clock: it notes when it
first saw the Lease's current version and waits `leaseDurationSeconds` from then. The
`renewTime` written by the holder is never compared with the candidate's clock, so a
skewed clock on either side can neither shorten nor stretch the wait. A candidate that
starts late waits one full duration at most, even for a holder that died long before.

The holder counts itself leader only while its last successful renewal is younger than
the renew deadline, which is shorter than the duration: it gives up (and the process
ends) before any candidate may take over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

DEFAULT_LEASE_NAME: Final = "mysql-operator-reconciler"
LEASE_DURATION_S: Final = 15
RENEW_DEADLINE_S: Final = 10
RETRY_PERIOD_S: Final = 2


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease as the API server holds it."""

    holder: str  # "" when released or never held
    duration_s: int
    transitions: int
    resource_version: str
    acquired_at: str | None

    @classmethod
    def parse(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_s=duration if isinstance(duration, int) and duration > 0 else LEASE_DURATION_S,
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str((lease.get("metadata") or {}).get("resourceVersion", "")),
            acquired_at=spec.get("acquireTime"),
        )


@dataclass(frozen=True)
class Sighting:
    """When this candidate first saw a version of the Lease, on its monotonic clock."""

    resource_version: str
    seen_at: float


class Move(StrEnum):
    CREATE = "create"  # no Lease yet
    RENEW = "renew"  # ours: write a new renewTime
    TAKE = "take"  # released, or not renewed for a whole duration: write ourselves in
    WAIT = "wait"  # another candidate holds it


def next_move(
    record: LeaseRecord | None, identity: str, last: Sighting | None, now: float
) -> tuple[Move, Sighting | None]:
    """What the candidate `identity` does with the Lease it just read, and what it
    remembers about it for the next read."""
    if record is None:
        return Move.CREATE, None
    if last is not None and last.resource_version == record.resource_version:
        sighting = last
    else:
        sighting = Sighting(record.resource_version, now)
    if record.holder == identity:
        return Move.RENEW, sighting
    if not record.holder or now - sighting.seen_at >= record.duration_s:
        return Move.TAKE, sighting
    return Move.WAIT, sighting


def lease_manifest(
    name: str,
    identity: str,
    now: datetime,
    record: LeaseRecord | None,
    *,
    duration_s: int = LEASE_DURATION_S,
) -> dict[str, Any]:
    """The Lease held by `identity` from `now`: created, renewed or taken over `record`.
    A replace carries the version read, so two candidates cannot both win."""
    stamp = micro_time(now)
    renewing = record is not None and record.holder == identity
    metadata: dict[str, Any] = {"name": name}
    if record is not None:
        metadata["resourceVersion"] = record.resource_version
    transitions = 0 if record is None else record.transitions + (0 if renewing else 1)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": duration_s,
            "acquireTime": (record.acquired_at if renewing and record else None) or stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        },
    }


def released_manifest(name: str, record: LeaseRecord, now: datetime) -> dict[str, Any]:
    """The Lease given up by its holder at shutdown: no holder, so the next candidate
    takes it at its next read instead of waiting a whole duration."""
    stamp = micro_time(now)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "resourceVersion": record.resource_version},
        "spec": {
            "holderIdentity": None,
            "leaseDurationSeconds": 1,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": record.transitions,
        },
    }


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime: RFC 3339 in UTC with microseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
