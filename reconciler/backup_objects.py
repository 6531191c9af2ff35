"""MySQLBackup objects (pure): the record of the final backup (its name, the object, and
the status that mirrors this lifetime's final-backup attempts), and the backups people
ask for by creating one (what the operator reads of them, their Job's name, their status).

The record is written by the teardown before anything is deleted and carries no owner
reference, so it outlives the MySQL object and says, after `kubectl delete mysql X`, that
the backup ran, where the dump is, how big it is and its sha256. Its name comes from the
object's deletionTimestamp, which the API server sets once: a reconciler killed between
any two steps writes the same record again, never a second one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
    trigger: str | None = Trigger.DELETE.value  # the trigger label


def backup_object_state(obj: Mapping[str, Any]) -> BackupObjectState:
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    attempt = status.get("attempt")
    return BackupObjectState(
        name=str(metadata.get("name", "")),
        instance_uid=(metadata.get("annotations") or {}).get(ANNOTATION_INSTANCE_UID),
        phase=status.get("phase"),
        attempt=attempt if isinstance(attempt, int) else None,
        trigger=(metadata.get("labels") or {}).get(LABEL_TRIGGER),
    )


def final_backup_name(instance: str, deletion_timestamp: str) -> str | None:
    """`<instance>-<UTC yyyymmddhhmmss>` of the delete request; None without a valid
    deletionTimestamp (the object is not being deleted)."""
    found = _STAMP.match(deletion_timestamp)
    if found is None:
        return None
    return f"{instance}-{''.join(found.groups())}"


def _record_manifest(
    namespace: str, instance: str, uid: str, name: str, trigger: Trigger
) -> dict[str, Any]:
    """A MySQLBackup the operator makes: labelled with its instance and trigger, with the
    instance's uid, and no owner reference (it outlives the instance)."""
    return {
        "apiVersion": API_VERSION,
        "kind": BACKUP_KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                LABEL_INSTANCE: instance,
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_TRIGGER: trigger.value,
            },
            "annotations": {ANNOTATION_INSTANCE_UID: uid},
        },
        "spec": {"instance": instance},
    }


def scheduled_backup_object(
    *, namespace: str, instance: str, uid: str, fire_time: datetime
) -> BackupObject:
    """The MySQLBackup of one fire of spec.backup.schedule, named after the fire time (so
    a repeated create is a no-op); the request machinery runs it like a manual one."""
    name = f"{instance}-{fire_time.astimezone(UTC).strftime('%Y%m%d%H%M%S')}"
    manifest = _record_manifest(namespace, instance, uid, name, Trigger.SCHEDULE)
    return BackupObject(name, manifest, {})


def scheduled_records_to_prune(items: Sequence[Mapping[str, Any]], keep: int) -> list[str]:
    """Scheduled MySQLBackups beyond retention: all but the newest `keep` Succeeded ones
    (by their dump's sequence, as backup.sh rotates), and the Failed ones created before
    the oldest that is kept. Unfinished ones are left alone."""
    succeeded: list[tuple[str, str, str]] = []  # (location, created, name)
    failed: list[tuple[str, str]] = []  # (created, name)
    for item in items:
        if _trigger_label(item) != Trigger.SCHEDULE.value:
            continue
        metadata = item.get("metadata") or {}
        name, created = str(metadata.get("name", "")), str(metadata.get("creationTimestamp", ""))
        status = item.get("status") or {}
        if status.get("phase") == BackupPhase.SUCCEEDED.value:
            # One instance's dumps share a claim: the location sorts by sequence.
            succeeded.append((str(status.get("location", "")), created, name))
        elif status.get("phase") == BackupPhase.FAILED.value:
            failed.append((created, name))
    succeeded.sort()
    cut = max(0, len(succeeded) - keep)
    pruned = [name for _location, _created, name in succeeded[:cut]]
    kept = succeeded[cut:]
    if kept:
        oldest_kept = min(created for _location, created, _name in kept)
        pruned += [name for created, name in failed if created < oldest_kept]
    return sorted(pruned)


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
    manifest = _record_manifest(namespace, instance, uid, name, Trigger.DELETE)
    status = backup_status(Trigger.DELETE, instance, uid, started_at, record, now)
    return BackupObject(name, manifest, status)


def backup_status(
    trigger: Trigger, instance: str, uid: str, started_at: str, record: JobRecord, now: datetime
) -> dict[str, Any]:
    """The status of a backup whose Job was started: the record's attempt, and once it
    ended, how (with the dump's fields when it succeeded)."""
    phase = phase_of(record)
    status: dict[str, Any] = {
        "phase": phase.value,
        "trigger": trigger.value,
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
    reason, condition_status, message = _complete(phase, record, trigger)
    status["conditions"] = [_condition(condition_status, reason, message, now)]
    return status


def _condition(status: str, reason: Reason, message: str, now: datetime) -> dict[str, Any]:
    return {
        "type": CONDITION_COMPLETE,
        "status": status,
        "reason": reason.value,
        "message": message,
        "observedGeneration": 1,
        "lastTransitionTime": timestamp(now),
    }


# -- a backup to restore (spec.restore_from) -------------------------------------------------

_PVC_LOCATION: Final = re.compile(
    r"^pvc://([a-z0-9]([-a-z0-9.]*[a-z0-9])?)/(dump-[0-9]{10}\.sql\.gz)$"
)
# s3://<bucket>/<key>; the key's characters are those spec.backup.s3.prefix and object
# names allow.
_S3_LOCATION: Final = re.compile(
    r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/([A-Za-z0-9!_.*()/-]+)$"
)
_DUMP_NAME: Final = re.compile(r"^dump-[0-9]{10}\.sql\.gz$")


@dataclass(frozen=True)
class SourceBackup:
    """A MySQLBackup that a new instance is asked to restore."""

    name: str
    phase: str | None
    location: str | None
    size: int | None = None
    sha256: str | None = None
    dump: str | None = None  # the dump's file name, as backup.sh named it

    @property
    def claim_and_dump(self) -> tuple[str, str] | None:
        """(claim, dump file) of a dump on a backup claim; None for any other location."""
        found = _PVC_LOCATION.match(self.location or "")
        return (found.group(1), found.group(3)) if found is not None else None

    @property
    def bucket(self) -> str | None:
        """The bucket of a dump in S3; None for any other location."""
        found = _S3_LOCATION.match(self.location or "")
        return found.group(1) if found is not None else None


def source_backup(obj: Mapping[str, Any]) -> SourceBackup:
    status = obj.get("status") or {}
    location, size, sha256, dump = (
        status.get(key) for key in ("location", "sizeBytes", "sha256", "dump")
    )
    return SourceBackup(
        name=str((obj.get("metadata") or {}).get("name", "")),
        phase=status.get("phase"),
        location=location if isinstance(location, str) else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        sha256=sha256 if isinstance(sha256, str) and _SHA256.match(sha256) else None,
        dump=dump if isinstance(dump, str) and _DUMP_NAME.match(dump) else None,
    )


def newest_in_bucket(
    items: Sequence[Mapping[str, Any]], instance: str, bucket: str
) -> SourceBackup | None:
    """The newest Succeeded backup of any lifetime of `instance` whose dump is in
    `bucket` and can be verified, by completedAt, then name; None when there is none.
    completedAt is the operator's clock at each backup's end: the newest is the one it
    recorded last."""
    found: list[tuple[str, str, SourceBackup]] = []
    for item in items:
        spec, status = item.get("spec") or {}, item.get("status") or {}
        source = source_backup(item)
        if (
            spec.get("instance") != instance
            or source.phase != BackupPhase.SUCCEEDED.value
            or source.bucket != bucket
            or None in (source.size, source.sha256, source.dump)
        ):
            continue
        found.append((str(status.get("completedAt", "")), source.name, source))
    return max(found, key=lambda entry: entry[:2])[2] if found else None


# -- backups people ask for -------------------------------------------------------------------


@dataclass(frozen=True)
class RequestedBackup:
    """A MySQLBackup that asks for a backup (a person's, or one the schedule made), as
    the operator reads it."""

    name: str
    uid: str
    created: str  # creationTimestamp: the oldest request runs first
    phase: str | None
    reason: str | None  # of its Complete condition
    job: str | None  # set when its Job was started
    started_at: str | None
    instance_uid: str | None
    trigger: Trigger = Trigger.MANUAL  # SCHEDULE for the operator's scheduled ones

    @property
    def finished(self) -> bool:
        return self.phase in (BackupPhase.SUCCEEDED.value, BackupPhase.FAILED.value)

    @property
    def started(self) -> bool:
        return self.job is not None and not self.finished


def requested_backup(obj: Mapping[str, Any]) -> RequestedBackup:
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    complete: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == CONDITION_COMPLETE), {}
    )
    return RequestedBackup(
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        created=str(metadata.get("creationTimestamp", "")),
        phase=status.get("phase"),
        reason=complete.get("reason"),
        job=status.get("job"),
        started_at=status.get("startedAt"),
        instance_uid=status.get("instanceUID"),
        trigger=Trigger.SCHEDULE
        if _trigger_label(obj) == Trigger.SCHEDULE.value
        else Trigger.MANUAL,
    )


def _trigger_label(obj: Mapping[str, Any]) -> str | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    label = labels.get(LABEL_TRIGGER)
    return label if isinstance(label, str) else None


def is_requested(obj: Mapping[str, Any]) -> bool:
    """A backup to run through the request machinery: one a person created (no trigger
    label), or one of the schedule. The final backup's record is not."""
    return _trigger_label(obj) in (None, Trigger.SCHEDULE.value)


def requested_instance(obj: Mapping[str, Any]) -> str | None:
    instance = (obj.get("spec") or {}).get("instance")
    return instance if isinstance(instance, str) and instance else None


def requested_job_name(instance: str, backup_uid: str, trigger: Trigger = Trigger.MANUAL) -> str:
    """`<instance>-<manual|schedule>-<8 hex of the MySQLBackup's uid>`: one Job per
    request, and a name that a re-created request of the same name does not share."""
    return f"{instance}-{trigger.value}-{backup_uid.replace('-', '')[:8]}"


def waiting_status(
    reason: Reason, message: str, now: datetime, trigger: Trigger = Trigger.MANUAL
) -> dict[str, Any]:
    """A requested backup that cannot start yet (the instance is not Ready, or absent)."""
    return {
        "phase": BackupPhase.PENDING.value,
        "trigger": trigger.value,
        "conditions": [_condition("False", reason, message, now)],
    }


def abandoned_status(
    message: str,
    now: datetime,
    trigger: Trigger = Trigger.MANUAL,
    reason: Reason = Reason.BACKUP_FAILED,
) -> dict[str, Any]:
    """A requested backup that can never start: its instance is being deleted, or its
    S3 store cannot be used."""
    return {
        "phase": BackupPhase.FAILED.value,
        "trigger": trigger.value,
        "completedAt": timestamp(now),
        "message": message,
        "conditions": [_condition("False", reason, message, now)],
    }


def _dump_fields(instance: str, record: JobRecord) -> dict[str, Any]:
    """What the script's result line says of the dump: where, how big, its sha256."""
    result = record.result
    fields: dict[str, Any] = {}
    dump, location = result.get("dump"), result.get("location", "")
    if _S3_LOCATION.match(location) and dump and _DUMP_NAME.match(dump):
        # The staged file's name goes with it: a restore stages it under that name again.
        fields["location"], fields["dump"] = location, dump
    elif dump:
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


def _complete(phase: BackupPhase, record: JobRecord, trigger: Trigger) -> tuple[Reason, str, str]:
    job = record.job or "its Job"
    if phase is BackupPhase.SUCCEEDED:
        return Reason.BACKUP_SUCCEEDED, "True", f"{job}: {record.message or 'completed'}"
    if phase is BackupPhase.FAILED:
        after = (
            "the MySQL object stays until a backup succeeds"
            if trigger is Trigger.DELETE
            else "create a new MySQLBackup to try again"
        )
        return (
            Reason.BACKUP_FAILED,
            "False",
            f"attempt {record.attempt} ({job}) failed: {record.message or 'no message'}; {after}",
        )
    return Reason.BACKUP_RUNNING, "Unknown", f"{job}, attempt {record.attempt}"
