"""Everything one reconcile pass looked at, gathered by the executor and read by the pure
decisions (`lifecycle.py`, `teardown.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconciler.backup_objects import BackupObjectState, RequestedBackup, SourceBackup
from reconciler.live import ClaimState, JobState, PodState, SecretState, VolumeState
from reconciler.spec import Instance, SpecError, parse_instance
from reconciler.status import InstanceStatus, ToolchainVersions, parse_status


@dataclass(frozen=True)
class Parsed:
    """The object's spec and status, parsed once per pass."""

    instance: Instance | None
    spec_error: str | None  # why the spec is invalid, when it is
    status: InstanceStatus


def parse_object(obj: Mapping[str, Any]) -> Parsed:
    try:
        instance: Instance | None = parse_instance(obj)
        error = None
    except SpecError as problem:
        instance, error = None, str(problem)
    return Parsed(instance, error, parse_status(obj))


@dataclass(frozen=True)
class StackState:
    """What the state backend holds for the instance's stack."""

    exists: bool
    resources: int  # Kubernetes objects in its checkpoint

    @property
    def deployed(self) -> bool:
        return self.resources > 0


@dataclass(frozen=True)
class Live:
    """The instance's objects in the cluster (None: absent)."""

    data_claim: ClaimState | None = None
    backup_claim: ClaimState | None = None
    data_volume: VolumeState | None = None  # the volume the data claim is bound to
    backup_volume: VolumeState | None = None
    # Volumes an earlier lifetime left, looked up only before the claims are first made.
    retained_data: tuple[VolumeState, ...] = ()
    retained_backup: tuple[VolumeState, ...] = ()
    deployment_present: bool = True
    server_pod: PodState | None = None
    job: JobState | None = None  # the current attempt's restore or final-backup Job
    claim_event: str | None = None  # the newest Event of a claim that is not Bound
    workload_present: bool = False  # a Deployment or Service of the instance exists
    # The instance's Deployments, Services and Jobs that are being deleted ("Kind/name").
    going: tuple[str, ...] = ()
    # The client Service has a ready endpoint (read only once the server is ready).
    service_routes: bool = True
    # The MySQLBackup recording this lifetime's final backup (read only while deleting).
    backup_object: BackupObjectState | None = None
    # This instance's unfinished requested and scheduled MySQLBackups, and the Job of the
    # one under way.
    requested_backups: tuple[RequestedBackup, ...] = ()
    requested_backup_job: JobState | None = None
    # spec.restore_from's MySQLBackup and the claim its dump is on, read until the restore
    # has recorded them.
    restore_from: SourceBackup | None = None
    restore_from_claim: ClaimState | None = None
    # The newest Succeeded backup of this instance name in spec.backup.s3's bucket, read
    # while a new instance with fresh claims decides what to restore.
    newest_backup: SourceBackup | None = None
    # (StorageClass, allowVolumeExpansion, None when it does not exist) of the classes of
    # claims the spec grew, read only then.
    volume_expansion: tuple[tuple[str, bool | None], ...] = ()
    # (claim, its newest Event) of a claim whose capacity is below its request.
    resize_event: tuple[str, str] | None = None
    # The Deployment and Services as they are, (kind, name) -> object, read once the
    # instance has been restored, to compare with what is declared (drift.py).
    workload_objects: tuple[tuple[tuple[str, str], Mapping[str, Any]], ...] = ()
    # The Job of the password rotation under way (passwords.py).
    rotation_job: JobState | None = None


@dataclass(frozen=True)
class Passwords:
    """The password values one pass read; never printed."""

    # The value of the Secret spec.passwordSecretRef names (None: not set, or it cannot
    # be read); passwords.wanted_password is what the spec asks for.
    wanted: str | None = field(default=None, repr=False)
    # What the operator's credentials Secret holds (None: absent, or not read).
    applied: str | None = field(default=None, repr=False)
    # The new password of the rotation under way, from its Secret (None: not read).
    rotated: str | None = field(default=None, repr=False)
    # Why the referenced Secret's value cannot be used as text, when it cannot.
    unreadable: str | None = None


@dataclass(frozen=True)
class Observation:
    obj: Mapping[str, Any]  # the object as the API server returned it
    toolchain: ToolchainVersions
    fingerprint_key: bytes = field(repr=False)
    now: datetime
    stack: StackState | None = None  # None: could not tell; never read as "nothing there"
    live: Live = Live()
    namespace_terminating: bool = False
    # The Secret spec.passwordSecretRef names, when it does and the Secret exists.
    password_secret: SecretState | None = None
    # Directories under which spec host paths may be (None: host paths are not allowed).
    host_path_root: str | None = None
    # The image that moves dumps to and from S3 in Jobs (None: the operator has none).
    transfer_image: str | None = None
    # spec.backup.s3's credentials Secret (its keys only), read when a Job is to use it;
    # None when it does not exist or was not read.
    s3_secret: SecretState | None = None
    # The root password's values this pass read (passwords.py).
    passwords: Passwords = Passwords()
    # The object parsed; made from `obj` when not given.
    parsed: Parsed | None = None

    def __post_init__(self) -> None:
        if self.parsed is None:
            object.__setattr__(self, "parsed", parse_object(self.obj))

    @property
    def parsed_object(self) -> Parsed:
        """The parsed object (always set after construction)."""
        assert self.parsed is not None
        return self.parsed
