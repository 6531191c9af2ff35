"""The reconcile decision: from one object, its status and what the cluster and the state
backend show, the next action (pure). `lifecycle.py` decides for an instance that lives,
`teardown.py` for one that is being deleted; `gather_plan` tells the executor what to
look at first, so that a pass reads only what its decision needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.actions import Action
from reconciler.backup_objects import final_backup_name
from reconciler.lifecycle import decide_lifecycle
from reconciler.names import names_for
from reconciler.observation import Observation, Parsed
from reconciler.policy import is_deleting, metadata_of
from reconciler.status import JobPhase
from reconciler.teardown import decide_teardown


def decide(observation: Observation) -> Action:
    # The namespace controller may delete the claims before it marks the object: a
    # terminating namespace is a teardown either way.
    if is_deleting(observation.obj) or observation.namespace_terminating:
        return decide_teardown(observation)
    return decide_lifecycle(observation)


@dataclass(frozen=True)
class GatherPlan:
    """What the executor reads for one pass, besides the claims and their volumes."""

    deleting: bool
    adoption_candidates: bool  # volumes an earlier lifetime left (before the first `up`)
    job: str | None  # the Job of the attempt under way
    secret: str | None  # the user's password Secret to check
    backup_object: str | None = None  # the MySQLBackup recording the final backup
    restore_from: str | None = None  # the MySQLBackup to restore, until the restore records it
    s3_secret: str | None = None  # spec.backup.s3's credentials Secret
    # spec.backup.s3's bucket, to look in for the newest backup of the instance's name:
    # a new instance whose claims are both new has no dump of its own to restore.
    newest_in_bucket: str | None = None
    # (kind, name) of the Deployment and Services to compare with what is declared.
    drift_objects: tuple[tuple[str, str], ...] = ()
    rotation_job: str | None = None  # the Job of the password rotation under way


def gather_plan(obj: Mapping[str, Any], parsed: Parsed) -> GatherPlan:
    deleting = is_deleting(obj)
    status = parsed.status
    record = status.final_backup if deleting else status.restore
    if deleting and record is None:
        # Whether a restore under way could have served clients decides the teardown.
        record = status.restore
    job = record.job if record is not None and record.phase is JobPhase.RUNNING else None
    secret = None
    if parsed.instance is not None:
        ref = parsed.instance.spec.password_secret_ref
        secret = ref.name if ref is not None else None
    backup_object = None
    if deleting and status.final_backup is not None:
        metadata = metadata_of(obj)
        backup_object = final_backup_name(
            str(metadata.get("name", "")), str(metadata.get("deletionTimestamp", ""))
        )
    restore_from = None
    if not deleting and status.restore is None and parsed.instance is not None:
        named = parsed.instance.spec.restore_from
        restore_from = named.backup if named is not None else None
    s3 = parsed.instance.spec.backup.s3 if parsed.instance is not None else None
    newest_in_bucket = None
    volumes = status.volumes
    if (
        s3 is not None
        and not deleting
        and status.restore is None
        and restore_from is None
        and volumes is not None
        and not volumes.data.carries_data
        and not volumes.backup.carries_data
    ):
        newest_in_bucket = s3.bucket
    drift_objects: tuple[tuple[str, str], ...] = ()
    restored = status.restore is not None and status.restore.phase is JobPhase.SUCCEEDED
    if not deleting and parsed.instance is not None and restored:
        names = names_for(parsed.instance)
        drift_objects = (
            ("Deployment", names.deployment),
            ("Service", names.service),
            ("Service", names.internal_service),
        )
    password = status.password
    rotation = password.rotation if password is not None else None
    return GatherPlan(
        rotation_job=rotation.job
        if rotation is not None and rotation.phase is JobPhase.RUNNING
        else None,
        deleting=deleting,
        adoption_candidates=not deleting and status.volumes is None,
        job=job,
        secret=secret,
        backup_object=backup_object,
        restore_from=restore_from,
        s3_secret=s3.credentials_secret if s3 is not None else None,
        newest_in_bucket=newest_in_bucket,
        drift_objects=drift_objects,
    )


def identity(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """(namespace, name, uid) of an object."""
    metadata = metadata_of(obj)
    return (
        str(metadata.get("namespace", "")),
        str(metadata.get("name", "")),
        str(metadata.get("uid", "")),
    )
