"""The next step for one object, as the pure decisions return it and the executor carries
it out. Each is one effect (or none), safe to repeat: the process may die after any."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.backup_objects import BackupObject
from reconciler.conditions import Reason
from reconciler.desired import Desired
from reconciler.live import ClaimState
from reconciler.status import JobRecord, PasswordRecord, Volumes
from reconciler.volumes import VolumePatch


class JobKind(StrEnum):
    RESTORE = "restore"
    FINAL_BACKUP = "final-backup"


@dataclass(frozen=True)
class Notice:
    """An Event (and log line) to post with an action."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Forget:
    """Nothing to do: the object is going and is not ours to hold."""


@dataclass(frozen=True)
class AddFinalizer:
    pass


@dataclass(frozen=True)
class Stall:
    """Report and wait for a change from outside; no engine run, no retry storm."""

    reason: Reason
    message: str
    # Look again then even if nothing changes (a serving instance's next scheduled backup).
    requeue_after_s: float | None = None


@dataclass(frozen=True)
class Wait:
    """Something is under way that resolves by itself (a volume binds, a pod starts, a
    Job runs): report it and look again when a watched object changes, or after
    `requeue_after_s` at the latest. Never a worker blocked on the cluster."""

    reason: Reason
    message: str
    requeue_after_s: float


@dataclass(frozen=True)
class RecordVolumes:
    """Decides how this lifetime's claims find their volumes: reserve the adopted ones
    first (`adopt`), then record the decision in status."""

    volumes: Volumes
    adopt: tuple[VolumePatch, ...] = ()
    notice: Notice | None = None


@dataclass(frozen=True)
class RecordJob:
    """Records a restore or final-backup attempt's progress (status only)."""

    kind: JobKind
    record: JobRecord
    notice: Notice | None = None


@dataclass(frozen=True)
class RecordPassword:
    """Deletes a finished rotation's Secret (`delete_secret`), then records the password's
    state in status."""

    record: PasswordRecord
    delete_secret: str | None = None
    notice: Notice | None = None


@dataclass(frozen=True)
class StartRotation:
    """Creates the rotation's Secret, then its Job (each only if absent)."""

    secret: dict[str, Any] = field(repr=False)
    job: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class WriteBackupObject:
    """Creates the MySQLBackup record if it is absent, then writes its status."""

    backup: BackupObject


@dataclass(frozen=True)
class ScheduleBackup:
    """A fire time of spec.backup.schedule: create its MySQLBackup (if `backup`; None when
    the fire is skipped), then record the fire time in status."""

    fire_time: str
    backup: BackupObject | None
    notice: Notice | None = None


@dataclass(frozen=True)
class PatchBackupStatus:
    """Writes the status of a requested or scheduled MySQLBackup (never creates one);
    after a scheduled one succeeded, `prune_scheduled` is the retention to apply."""

    name: str
    status: dict[str, Any]
    prune_scheduled: int | None = None


@dataclass(frozen=True)
class StartBackup:
    """Names the Job in the MySQLBackup's status, then creates it (if absent)."""

    name: str
    status: dict[str, Any]
    job: dict[str, Any]


@dataclass(frozen=True)
class Deploy:
    """An `up` of the stack with this desired state."""

    desired: Desired
    fingerprint: str
    reason: Reason
    message: str
    refresh: bool = False  # read the live objects first (some were deleted by hand)
    heals: tuple[str, ...] = ()  # the drift this `up --refresh` reverts (drift.py)
    replace: tuple[str, ...] = ()  # Services to create again, by name (drift.py)


@dataclass(frozen=True)
class PatchVolumes:
    patches: tuple[VolumePatch, ...]
    notice: Notice | None = None


@dataclass(frozen=True)
class MarkReady:
    message: str
    # Look again then even if nothing changes (the next fire of spec.backup.schedule).
    requeue_after_s: float | None = None
    notice: Notice | None = None  # what this readiness ends (a resize), said once
    # The DriftDetected condition to set: (reason, message); None: not looked at.
    drift: tuple[Reason, str] | None = None


@dataclass(frozen=True)
class Destroy:
    """`destroy` of the stack: every object but the claims and their volumes."""


@dataclass(frozen=True)
class ReleaseClaim:
    """Lets a claim go: patch its volume first (`volume`: released or retained), then
    drop the operator's claim finalizer, then delete the claim (unless `keep_claim`)."""

    claim: ClaimState
    volume: VolumePatch | None
    delete_volume: str | None = None  # a static volume the stack made: its object goes
    keep_claim: bool = False
    notice: Notice | None = None


@dataclass(frozen=True)
class ForgetStack:
    """Removes the stack's state without touching the cluster (namespace deletion)."""


@dataclass(frozen=True)
class RemoveFinalizer:
    notice: Notice


Action = (
    Forget
    | AddFinalizer
    | Stall
    | Wait
    | RecordVolumes
    | RecordJob
    | RecordPassword
    | StartRotation
    | WriteBackupObject
    | PatchBackupStatus
    | StartBackup
    | ScheduleBackup
    | Deploy
    | PatchVolumes
    | MarkReady
    | Destroy
    | ReleaseClaim
    | ForgetStack
    | RemoveFinalizer
)
