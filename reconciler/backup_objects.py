"""The MySQLBackup record of the final backup (pure): its name, the object, and the status
that mirrors this lifetime's final-backup attempts.

The record is written by the teardown before anything is deleted and carries no owner
reference, so it outlives the MySQL object and says, after `kubectl delete mysql X`, that
the backup ran, where the dump is, how big it is and its sha256. Its name comes from the
object's deletionTimestamp, which the API server sets once: a reconciler killed between
any two steps writes the same record again, never a second one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from reconciler.conditions import Reason, timestamp
from reconciler.names import backup_claim_name
from reconciler.status import JobPhase, JobRecord
from reconciler.vocabulary import (
    ANNOTATION_INSTANCE_UID,
    API_VERSION,
    BACKUP_KIND,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_TRIGGER,
    MANAGED_BY,
)

CONDITION_COMPLETE: Final = "Complete"
_SHA256: Final = re.compile(r"^[0-9a-f]{64}$")
_STAMP: Final = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})")


class BackupPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Trigger(StrEnum):
    MANUAL = "manual"
    SCHEDULE = "schedule"
    DELETE = "delete"


@dataclass(frozen=True)
class BackupObjectState:
    """What the operator reads back of a MySQLBackup."""

    name: str
    instance_uid: str | None  # whose data: the annotation the operator wrote
    phase: str | None
    attempt: int | None


def backup_object_state(obj: Mapping[str, Any]) -> BackupObjectState:
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    attempt = status.get("attempt")
    return BackupObjectState(
        name=str(metadata.get("name", "")),
        instance_uid=(metadata.get("annotations") or {}).get(ANNOTATION_INSTANCE_UID),
        phase=status.get("phase"),
        attempt=attempt if isinstance(attempt, int) else None,
    )


def final_backup_name(instance: str, deletion_timestamp: str) -> str | None:
    """`<instance>-<UTC yyyymmddhhmmss>` of the delete request; None without a valid
    deletionTimestamp (the object is not being deleted)."""
    found = _STAMP.match(deletion_timestamp)
    if found is None:
        return None
    return f"{instance}-{''.join(found.groups())}"


def phase_of(record: JobRecord) -> BackupPhase:
    if record.phase is JobPhase.SUCCEEDED:
        return BackupPhase.SUCCEEDED
    if record.phase in (JobPhase.FAILED, JobPhase.REFUSED):
        return BackupPhase.FAILED
    return BackupPhase.RUNNING


def in_sync(live: BackupObjectState | None, record: JobRecord) -> bool:
    return (
        live is not None and live.phase == phase_of(record).value and live.attempt == record.attempt
    )


@dataclass(frozen=True)
class BackupObject:
    """A MySQLBackup to create (if absent) and the status to write on it."""

    name: str
    manifest: dict[str, Any]
    status: dict[str, Any]


def final_backup_object(
    *,
    namespace: str,
    instance: str,
    uid: str,
    name: str,
    started_at: str,
    record: JobRecord,
    now: datetime,
) -> BackupObject:
    manifest: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": BACKUP_KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                LABEL_INSTANCE: instance,
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_TRIGGER: Trigger.DELETE.value,
            },
            "annotations": {ANNOTATION_INSTANCE_UID: uid},
        },
        "spec": {"instance": instance},
    }
    return BackupObject(name, manifest, final_backup_status(instance, uid, started_at, record, now))


def final_backup_status(
    instance: str, uid: str, started_at: str, record: JobRecord, now: datetime
) -> dict[str, Any]:
    phase = phase_of(record)
    status: dict[str, Any] = {
        "phase": phase.value,
        "trigger": Trigger.DELETE.value,
        "instanceUID": uid,
        "attempt": record.attempt,
        "startedAt": started_at,
    }
    if record.job is not None:
        status["job"] = record.job
    if record.message:
        status["message"] = record.message[:1024]
    # A merge patch: null removes what an earlier, failed attempt wrote.
    status["completedAt"] = None if phase is BackupPhase.RUNNING else timestamp(now)
    if phase is BackupPhase.SUCCEEDED:
        status.update(_dump_fields(instance, record))
    reason, condition_status, message = _complete(phase, record)
    status["conditions"] = [
        {
            "type": CONDITION_COMPLETE,
            "status": condition_status,
            "reason": reason.value,
            "message": message,
            "observedGeneration": 1,
            "lastTransitionTime": timestamp(now),
        }
    ]
    return status


def _dump_fields(instance: str, record: JobRecord) -> dict[str, Any]:
    """What the script's result line says of the dump: where, how big, its sha256."""
    result = record.result
    fields: dict[str, Any] = {}
    dump = result.get("dump")
    if dump:
        fields["location"] = f"pvc://{backup_claim_name(instance)}/{dump}"
    size = result.get("size", "")
    if size.isdigit():
        fields["sizeBytes"] = int(size)
    sha256 = result.get("sha256", "")
    if _SHA256.match(sha256):
        fields["sha256"] = sha256
    version = result.get("server_version")
    if version:
        fields["serverVersion"] = version
    return fields


def _complete(phase: BackupPhase, record: JobRecord) -> tuple[Reason, str, str]:
    job = record.job or "its Job"
    if phase is BackupPhase.SUCCEEDED:
        return Reason.BACKUP_SUCCEEDED, "True", f"{job}: {record.message or 'completed'}"
    if phase is BackupPhase.FAILED:
        return (
            Reason.BACKUP_FAILED,
            "False",
            f"attempt {record.attempt} ({job}) failed: {record.message or 'no message'}; "
            "the MySQL object stays until a backup succeeds",
        )
    return Reason.BACKUP_RUNNING, "Unknown", f"{job}, attempt {record.attempt}"
