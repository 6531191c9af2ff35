"""Status conditions, after the Pulumi Kubernetes Operator's Ready/Reconciling/Stalled model.

Pure: no I/O. `Ready` is always present. `Reconciling` and `Stalled` are present only
while true ("abnormal-true" polarity), so `kubectl get mysql` shows Ready and its reason.
Every reason comes from a closed enum. A setter keeps `lastTransitionTime` when the
status does not change, so that repeated reconciles do not make conditions flap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class ConditionType(StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    RESTORED = "Restored"  # this lifetime's restore: running, done or failed
    BACKUP_READY = "BackupReady"  # the final backup before deletion
    DRIFT_DETECTED = "DriftDetected"  # hand edits of the Deployment or Services


class Status(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Reason(StrEnum):
    """Every reason a condition can carry. Ready=False repeats the reason of Reconciling
    or Stalled, so `kubectl get mysql` shows why an instance is not Ready."""

    # Ready
    UP_TO_DATE = "UpToDate"
    # Reconciling: the operator is working on it, or waiting for something that resolves
    # by itself; no person needs to act.
    PROCESSING = "Processing"
    RETRY = "Retrying"
    DELETING = "Deleting"
    STACK_STATE_LOST = "StackStateLost"
    VOLUME_PENDING = "VolumePending"
    POD_STARTING = "PodStarting"
    RESTORING = "Restoring"
    RESTORE_RETRYING = "RestoreRetrying"
    BACKING_UP = "BackingUp"
    BACKUP_RETRYING = "BackupRetrying"
    STORAGE_RESIZING = "StorageResizing"
    STORAGE_RESIZE_PENDING = "StorageResizePending"  # the file system grows at the next mount
    DRIFT_HEALING = "DriftHealing"  # an `up --refresh` puts hand edits back
    PASSWORD_ROTATING = "PasswordRotating"  # noqa: S105 (a reason, not a password)
    # Stalled: progress needs a person; the message says what to do.
    SPEC_INVALID = "SpecInvalid"
    SECRET_MISSING = "SecretMissing"  # noqa: S105 (a reason, not a secret)
    SECRET_NOT_ALLOWED = "SecretNotAllowed"  # noqa: S105 (a reason, not a secret)
    HOST_PATH_NOT_ALLOWED = "HostPathNotAllowed"
    IMMUTABLE_FIELD_CHANGED = "ImmutableFieldChanged"
    STORAGE_NOT_EXPANDABLE = "StorageNotExpandable"
    UPDATE_FAILED = "UpdateFailed"
    IMAGE_PULL_FAILED = "ImagePullFailed"
    CRASH_LOOPING = "CrashLooping"
    POD_UNSCHEDULABLE = "PodUnschedulable"
    RESTORE_TARGET_NOT_EMPTY = "RestoreTargetNotEmpty"
    RESTORE_DUMP_CORRUPT = "RestoreDumpCorrupt"
    RESTORE_SOURCE_MISSING = "RestoreSourceMissing"
    BACKUP_STORE_UNUSABLE = "BackupStoreUnusable"  # spec.backup.s3 cannot be used
    AMBIGUOUS_VOLUMES = "AmbiguousRetainedVolumes"
    CLAIM_DELETED = "ClaimDeleted"
    JOB_FAILED = "JobFailed"
    BACKUP_RECORD_CONFLICT = "BackupRecordConflict"
    PASSWORD_ROTATION_FAILED = "PasswordRotationFailed"  # noqa: S105
    PASSWORD_INVALID = "PasswordInvalid"  # noqa: S105 (the referenced value is unusable)
    PASSWORD_UNKNOWN = "PasswordUnknown"  # noqa: S105 (the applied one cannot be read)
    # Restored
    RESTORE_RUNNING = "RestoreRunning"
    RESTORE_SUCCEEDED = "RestoreSucceeded"
    RESTORE_FAILED = "RestoreFailed"
    # BackupReady
    BACKUP_RUNNING = "BackupRunning"
    BACKUP_SUCCEEDED = "BackupSucceeded"
    BACKUP_FAILED = "BackupFailed"
    BACKUP_SKIPPED = "BackupSkipped"
    # A requested backup (MySQLBackup) waiting for its instance
    INSTANCE_NOT_READY = "InstanceNotReady"
    INSTANCE_NOT_FOUND = "InstanceNotFound"
    # DriftDetected
    NO_DRIFT = "NoDrift"
    DRIFTED = "Drifted"
    DRIFT_NOT_HEALED = "DriftNotHealed"  # still there after the heal: reported only


@dataclass(frozen=True)
class Condition:
    type: ConditionType
    status: Status
    reason: Reason
    message: str
    observed_generation: int
    last_transition_time: str  # RFC 3339, seconds precision, as the API server stores it

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "status": self.status.value,
            "reason": self.reason.value,
            "message": self.message,
            "observedGeneration": self.observed_generation,
            "lastTransitionTime": self.last_transition_time,
        }


def timestamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_conditions(raw: object) -> tuple[Condition, ...]:
    """Conditions from status; entries this version does not know are dropped."""
    if not isinstance(raw, Sequence):
        return ()
    parsed: list[Condition] = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        try:
            parsed.append(
                Condition(
                    type=ConditionType(str(item.get("type"))),
                    status=Status(str(item.get("status"))),
                    reason=Reason(str(item.get("reason"))),
                    message=str(item.get("message", "")),
                    observed_generation=int(item.get("observedGeneration", 0)),
                    last_transition_time=str(item.get("lastTransitionTime", "")),
                )
            )
        except (ValueError, TypeError):
            continue
    return tuple(parsed)


def find(conditions: Iterable[Condition], kind: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type is kind), None)


def is_true(conditions: Iterable[Condition], kind: ConditionType) -> bool:
    found = find(conditions, kind)
    return found is not None and found.status is Status.TRUE


def set_condition(
    conditions: Sequence[Condition],
    kind: ConditionType,
    status: Status,
    reason: Reason,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> tuple[Condition, ...]:
    """Replaces (or adds) one condition; lastTransitionTime moves only when status does."""
    previous = find(conditions, kind)
    if previous is not None and previous.status is status:
        updated = replace(previous, reason=reason, message=message, observed_generation=generation)
    else:
        updated = Condition(
            type=kind,
            status=status,
            reason=reason,
            message=message,
            observed_generation=generation,
            last_transition_time=timestamp(now),
        )
    kept = [c for c in conditions if c.type is not kind]
    return _ordered([*kept, updated])


def remove_condition(conditions: Sequence[Condition], kind: ConditionType) -> tuple[Condition, ...]:
    return tuple(c for c in conditions if c.type is not kind)


def mark_ready(
    conditions: Sequence[Condition], message: str, *, generation: int, now: datetime
) -> tuple[Condition, ...]:
    updated = set_condition(
        conditions,
        ConditionType.READY,
        Status.TRUE,
        Reason.UP_TO_DATE,
        message,
        generation=generation,
        now=now,
    )
    return remove_condition(
        remove_condition(updated, ConditionType.RECONCILING), ConditionType.STALLED
    )


def mark_reconciling(
    conditions: Sequence[Condition], reason: Reason, message: str, *, generation: int, now: datetime
) -> tuple[Condition, ...]:
    """Work is in progress or will be retried; Ready goes False and Stalled is cleared."""
    return _mark_not_ready(
        conditions,
        ConditionType.RECONCILING,
        ConditionType.STALLED,
        reason,
        message,
        generation=generation,
        now=now,
    )


def mark_stalled(
    conditions: Sequence[Condition], reason: Reason, message: str, *, generation: int, now: datetime
) -> tuple[Condition, ...]:
    """Progress needs a change from outside; Ready goes False and Reconciling is cleared."""
    return _mark_not_ready(
        conditions,
        ConditionType.STALLED,
        ConditionType.RECONCILING,
        reason,
        message,
        generation=generation,
        now=now,
    )


def _mark_not_ready(
    conditions: Sequence[Condition],
    active: ConditionType,
    cleared: ConditionType,
    reason: Reason,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> tuple[Condition, ...]:
    """Sets `active` True and Ready False with the same reason, and removes `cleared`."""
    updated = conditions
    for kind, status in ((active, Status.TRUE), (ConditionType.READY, Status.FALSE)):
        updated = set_condition(
            updated, kind, status, reason, message, generation=generation, now=now
        )
    return remove_condition(updated, cleared)


_ORDER = {kind: index for index, kind in enumerate(ConditionType)}


def _ordered(conditions: Iterable[Condition]) -> tuple[Condition, ...]:
    # A stable order keeps status patches minimal and diffs readable.
    return tuple(sorted(conditions, key=lambda c: _ORDER[c.type]))
