"""What the operator does to an instance's PersistentVolumes, as pure patch builders.

The rule: a volume that holds an instance's data (or its dumps) is `Retain` from the
moment it is bound, so no deletion outside the operator's own verified teardown (a
namespace deletion, a cascade, the garbage collector, a `kubectl delete pvc`) can free
its bytes. Each such volume says whose data it holds, in labels (namespace, name, role)
and annotations (uid, the reclaim policy it had, when and why it was retained), so that a
re-created instance with the same namespace and name finds it and binds it again.

The operator lets a volume go only on purpose: after a verified final backup, or when the
policy says so. Then it restores the reclaim policy the volume came with (so a provisioned
volume is deleted by its provisioner) and marks it released: a released volume is never
adopted again, because its data is in a dump (or was meant to go).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.conditions import timestamp
from reconciler.live import VolumeState
from reconciler.names import volume_labels
from reconciler.vocabulary import (
    ANNOTATION_ADOPTED_BY,
    ANNOTATION_INSTANCE_UID,
    ANNOTATION_ORIGINAL_RECLAIM,
    ANNOTATION_RELEASED,
    ANNOTATION_RETAINED_AT,
    ANNOTATION_RETAINED_REASON,
    VolumeRole,
)

RETAIN = "Retain"


@dataclass(frozen=True)
class VolumePatch:
    """A JSON merge patch for one PersistentVolume, and why (for the log and Events)."""

    volume: str
    patch: dict[str, Any]
    why: str


def retention_patch(
    volume: VolumeState, namespace: str, name: str, role: VolumeRole, uid: str | None
) -> VolumePatch | None:
    """Makes a bound volume `Retain` and says whose it is (the uid, when known); None when
    it already is."""
    labels = volume_labels(namespace, name, role)
    wanted_annotations = {ANNOTATION_INSTANCE_UID: uid} if uid else {}
    if ANNOTATION_ORIGINAL_RECLAIM not in volume.annotations:
        wanted_annotations[ANNOTATION_ORIGINAL_RECLAIM] = volume.reclaim_policy
    if (
        volume.reclaim_policy == RETAIN
        and all(volume.labels.get(k) == v for k, v in labels.items())
        and all(volume.annotations.get(k) == v for k, v in wanted_annotations.items())
    ):
        return None
    return VolumePatch(
        volume.name,
        {
            "metadata": {"labels": labels, "annotations": wanted_annotations},
            "spec": {"persistentVolumeReclaimPolicy": RETAIN},
        },
        f"volume {volume.name} holds {role.value} of {namespace}/{name}: reclaim policy Retain",
    )


def retained_patch(volume: VolumeState, reason: str, now: datetime) -> VolumePatch:
    """Records why a volume outlives its claim (the claim goes; the bytes stay)."""
    return VolumePatch(
        volume.name,
        {
            "metadata": {
                "annotations": {
                    ANNOTATION_RETAINED_AT: timestamp(now),
                    ANNOTATION_RETAINED_REASON: reason,
                }
            },
            "spec": {"persistentVolumeReclaimPolicy": RETAIN},
        },
        f"volume {volume.name} retained: {reason}",
    )


def release_patch(volume: VolumeState, reason: str) -> VolumePatch:
    """Lets a volume go on purpose: back to the reclaim policy it came with, and marked
    released so that it is never adopted again."""
    # No record: the operator never changed the policy, so the volume still has its own.
    original = volume.annotations.get(ANNOTATION_ORIGINAL_RECLAIM, volume.reclaim_policy)
    return VolumePatch(
        volume.name,
        {
            "metadata": {"annotations": {ANNOTATION_RELEASED: reason}},
            "spec": {"persistentVolumeReclaimPolicy": original},
        },
        f"volume {volume.name} released ({reason}); reclaim policy {original}",
    )


def adoption_candidates(volumes: Sequence[VolumeState], namespace: str) -> list[VolumeState]:
    """Volumes an earlier lifetime left (their claim is gone) that were not released on
    purpose. The caller lists them by the instance's volume labels."""
    return sorted(
        (
            volume
            for volume in volumes
            if not volume.released_on_purpose
            and (
                volume.phase == "Released"
                or (volume.phase == "Available" and volume.claim_namespace in (None, namespace))
            )
        ),
        key=lambda volume: volume.name,
    )


def adoption_patch(volume: VolumeState, namespace: str, claim: str, uid: str) -> VolumePatch:
    """Reserves a retained volume for the new lifetime's claim: the claim reference loses
    the old claim's uid, so the volume becomes Available to a claim of that name only."""
    return VolumePatch(
        volume.name,
        {
            "metadata": {"annotations": {ANNOTATION_ADOPTED_BY: uid}},
            "spec": {
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": namespace,
                    "name": claim,
                    "uid": None,
                    "resourceVersion": None,
                }
            },
        },
        f"volume {volume.name} adopted by {namespace}/{claim}",
    )
