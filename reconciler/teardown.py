"""The next step for an instance that is being deleted, and for claims whose MySQL object
is gone (pure). This is where an operator loses data if it is careless, so:

- The final backup runs with clients cut off, and must succeed before anything is
  deleted; a failed backup is retried as a new Job, with backoff, for as long as it takes.
- The data claim is let go only after that backup (or when there provably is nothing to
  lose, or the policy says so); its volume is released on purpose, never by accident.
- A stack that is missing while the cluster holds the instance's objects counts as
  deployed: the objects are adopted and backed up like any others.
- In a namespace that is being deleted no Job can run any more: the volumes are kept
  (`Retain`, annotated with whose data they hold), and the namespace may go.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Final

from reconciler.actions import (
    Action,
    Deploy,
    Destroy,
    Forget,
    ForgetStack,
    JobKind,
    Notice,
    PatchVolumes,
    RecordJob,
    ReleaseClaim,
    RemoveFinalizer,
    Stall,
    Wait,
    WriteBackupObject,
)
from reconciler.backup_objects import Trigger, final_backup_name, final_backup_object, in_sync
from reconciler.conditions import Reason
from reconciler.desired import FinalUpload
from reconciler.fingerprint import inputs_fingerprint
from reconciler.live import ClaimState, VolumeState
from reconciler.names import names_for
from reconciler.observation import Live, Observation
from reconciler.passwords import (
    RotationContext,
    declared_password,
    dropped_rotation,
    settle_rotation,
    unknown_password,
)
from reconciler.policy import (
    IMAGE_PULL_REASONS,
    annotation,
    deploy_reason,
    desired_for,
    first_attempt,
    generation_of,
    has_finalizer,
    job_step,
    metadata_of,
    s3_problem,
    synced,
)
from reconciler.requested_backups import requested_backups_on_delete
from reconciler.spec import DeletionPolicy, Instance
from reconciler.status import InstanceStatus, JobPhase, JobRecord
from reconciler.storage import as_claimed
from reconciler.vocabulary import (
    ANNOTATION_INSTANCE_UID,
    ANNOTATION_RETAINED_REASON,
    ANNOTATION_SKIP_FINAL_BACKUP,
    CLAIM_FINALIZER,
    Stage,
    VolumeRole,
)
from reconciler.volumes import release_patch, retained_patch, retention_patch

GOING_POLL_S: Final = 2.0


def decide_teardown(observation: Observation) -> Action:
    obj = observation.obj
    if not has_finalizer(obj):
        return Forget()
    metadata = metadata_of(obj)
    namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
    uid = str(metadata.get("uid", ""))
    if observation.namespace_terminating:
        return _namespace_deleted(observation, namespace, name, uid)
    parsed = observation.parsed_object
    status, instance, spec_error = parsed.status, parsed.instance, parsed.spec_error or ""
    live, key = observation.live, observation.fingerprint_key
    if instance is not None:
        requested = requested_backups_on_delete(observation, instance)
        if requested is not None:
            return requested
        if status.password is not None:
            settled = settle_rotation(
                RotationContext(
                    instance=instance,
                    record=status.password,
                    passwords=observation.passwords,
                    key=observation.fingerprint_key,
                    retry=None,
                    job=live.rotation_job,
                    now=observation.now,
                )
            )
            if settled is not None:
                return settled
    skip = annotation(obj, ANNOTATION_SKIP_FINAL_BACKUP) == uid
    restore = status.restore
    if restore is not None and restore.phase is JobPhase.RUNNING and instance is not None:
        settled = _settle_restore(observation, instance, restore)
        if settled is not None:
            return settled
    keeps_data = holds_data(status, live)
    unfinished = restore_unfinished(status) and _bound(live.data_claim)
    backs_up = instance is None or instance.spec.backs_up_on_delete
    if keeps_data and backs_up and not skip and not unfinished:
        if instance is None:
            return Stall(
                Reason.SPEC_INVALID,
                f"cannot take the final backup: {spec_error}. Fix the spec so the backup can "
                f"run, or set the annotation {ANNOTATION_SKIP_FINAL_BACKUP}={uid} to delete "
                "without it (the data volume is then retained, not deleted)",
            )
        step = _final_backup(observation, instance, status)
        if step is not None:
            return step
    stack = observation.stack
    if stack is None or stack.deployed:
        return Destroy()
    if live.workload_present:
        # The state is gone but the objects are not: adopt them, so destroy removes them.
        if instance is None:
            return Stall(
                Reason.SPEC_INVALID,
                f"the stack's state is missing and the spec is invalid ({spec_error}); fix "
                "the spec so the operator can adopt and remove the instance's objects",
            )
        password = declared_password(instance, status.password, observation.passwords, key)
        if password is None and status.password is not None:
            return unknown_password(instance)
        desired = desired_for(
            as_claimed(observation, instance, every=True), Stage.RELEASING, status, password
        )
        return Deploy(
            desired,
            inputs_fingerprint(desired, key),
            Reason.STACK_STATE_LOST,
            "the stack's state is missing: adopting the live objects before removing them",
        )
    release = _release_claims(observation, instance, status, namespace, name, uid, skip, keeps_data)
    if release is not None:
        return release
    going = _going(live)
    if going:
        # The object goes last, so a MySQL object of the same name created right after
        # meets none of this lifetime's objects.
        return Wait(Reason.DELETING, f"waiting for {', '.join(going)} to be deleted", GOING_POLL_S)
    # The emptied stack stays, with its history (history.py): a re-created instance of the
    # same name continues it. The claim may be gone by now: what it held is in the status.
    dropped = dropped_rotation(status.password)
    if dropped is not None:
        return dropped
    return RemoveFinalizer(_goodbye(status, instance, skip, keeps_data or _held_data(status)))


def _settle_restore(
    observation: Observation, instance: Instance, restore: JobRecord
) -> Action | None:
    """Deleted while this lifetime's restore was under way: what its Job did decides what
    the data needs. A Job that succeeded is recorded, so a gated server that may have
    served gets its final backup; one whose pod could not start (no pod, an image that
    cannot be pulled, a pod that cannot be scheduled) is recorded as abandoned: it
    changed nothing. Otherwise the restore may be half-way (restore_unfinished)."""
    job = observation.live.job
    if job is None or job.failed:
        return None
    if job.succeeded:
        return job_step(observation, instance, JobKind.RESTORE, restore)
    pod = job.pod
    stuck = pod is None or (
        pod.phase == "Pending"
        and (pod.waiting_reason in IMAGE_PULL_REASONS or pod.unschedulable is not None)
    )
    if not stuck:
        return None
    return RecordJob(
        JobKind.RESTORE,
        replace(
            restore,
            phase=JobPhase.ABANDONED,
            message=f"Job {job.name} never started: the instance was deleted first",
        ),
    )


def restore_unfinished(status: InstanceStatus) -> bool:
    """This lifetime's restore had not finished, yet its data volume may hold what must
    not be lost: data of an earlier lifetime (an adopted or kept volume, perhaps with a
    dump half applied over it), or, gated, data that clients wrote once the restore had
    made the server ready but before the operator saw the Job end. A final backup could
    capture a half-restored database as the newest dump, so there is none: the volume is
    retained, and the restore of a re-created instance sorts it out (restore.sh)."""
    restore = status.restore
    if restore is None or restore.phase is JobPhase.SUCCEEDED:
        return False
    carries = status.volumes is not None and status.volumes.data.carries_data
    # A refused restore stops before it records an end, and an abandoned one never ran:
    # their gate never opened.
    never_opened = restore.phase in (JobPhase.REFUSED, JobPhase.ABANDONED)
    gate_may_have_opened = restore.gates_readiness and not never_opened
    return carries or gate_may_have_opened


def _bound(claim: ClaimState | None) -> bool:
    return claim is not None and claim.bound


def holds_data(status: InstanceStatus, live: Live) -> bool:
    """Whether the data volume may hold anything not also in a dump. A claim that never
    bound holds nothing; a fresh volume that never served clients holds at most the
    restored copy of a dump; when this lifetime's history is unknown, it holds data."""
    claim = live.data_claim
    if claim is None or not claim.bound:
        return False
    return status.volumes is None or _held_data(status)


def _held_data(status: InstanceStatus) -> bool:
    """Whether this lifetime's data volume held anything not also in a dump, by the
    status alone."""
    volumes = status.volumes
    return status.served or (volumes is not None and volumes.data.carries_data)


def _final_backup(
    observation: Observation, instance: Instance, status: InstanceStatus
) -> Action | None:
    record = status.final_backup
    if record is None:
        return first_attempt(instance, JobKind.FINAL_BACKUP, observation.obj)
    recorded = _backup_object(observation, instance, record)
    if recorded is not None:
        return recorded
    if record.phase is JobPhase.SUCCEEDED:
        return None
    upload: FinalUpload | None = None
    if instance.spec.backup.s3 is not None:
        found = final_upload(observation, instance)
        if isinstance(found, Stall):
            return found
        upload = found
    claimed = as_claimed(observation, instance, every=True)
    key = observation.fingerprint_key
    password = declared_password(instance, status.password, observation.passwords, key)
    if password is None and status.password is not None:
        return unknown_password(instance)
    desired = replace(
        desired_for(claimed, Stage.FINAL_BACKUP, status, password), final_upload=upload
    )
    fingerprint = inputs_fingerprint(desired, observation.fingerprint_key)
    if not synced(status, fingerprint, observation.toolchain, observation.stack):
        reason, message = deploy_reason(status, observation.stack, generation_of(observation.obj))
        if reason is Reason.PROCESSING:
            reason = Reason.BACKING_UP
            message = f"clients cut off; final backup Job {record.job} (attempt {record.attempt})"
        return Deploy(desired, fingerprint, reason, message)
    if not observation.live.deployment_present:
        return Deploy(
            desired,
            fingerprint,
            Reason.BACKING_UP,
            "the Deployment was deleted outside the operator: re-creating it for the backup",
            refresh=True,
        )
    return job_step(observation, instance, JobKind.FINAL_BACKUP, record)


def final_upload(observation: Observation, instance: Instance) -> FinalUpload | Stall:
    """Where the final backup's copy goes in spec.backup.s3: under the key of the
    MySQLBackup that records it. A store the Job cannot use stops the delete, naming the
    field: the dump would be on the claim only, and the spec asks for more."""
    s3 = instance.spec.backup.s3
    assert s3 is not None
    problem = s3_problem(instance, observation)
    deleted_at = str(metadata_of(observation.obj).get("deletionTimestamp", ""))
    name = final_backup_name(instance.name, deleted_at)
    if problem is None and name is None:
        problem = f"metadata.deletionTimestamp {deleted_at!r} names no MySQLBackup"
    if problem is not None:
        return Stall(
            Reason.BACKUP_STORE_UNUSABLE,
            f"the final backup goes to the backup claim and to S3, and {problem}. Fix it, "
            "or remove spec.backup.s3 to keep the final backup on the backup claim only",
        )
    assert name is not None
    assert observation.transfer_image is not None
    return FinalUpload(
        store=s3,
        key=s3.key_for(instance.namespace, instance.name, name),
        transfer_image=observation.transfer_image,
    )


def _backup_object(
    observation: Observation, instance: Instance, record: JobRecord
) -> Action | None:
    """The MySQLBackup that tells users about this final backup, kept in step with each
    attempt, and written as Succeeded before the destroy starts."""
    deleted_at = str(metadata_of(observation.obj).get("deletionTimestamp", ""))
    name = final_backup_name(instance.name, deleted_at)
    if name is None:
        return None
    live = observation.live.backup_object
    if live is not None and (
        live.instance_uid not in (None, instance.uid) or live.trigger != Trigger.DELETE.value
    ):
        return Stall(
            Reason.BACKUP_RECORD_CONFLICT,
            f"MySQLBackup {name} is another backup's (trigger {live.trigger or 'manual'}, "
            f"instance uid {live.instance_uid or 'unknown'}); rename or delete it (its dump "
            "stays) so this final backup can be recorded",
        )
    if in_sync(live, record):
        return None
    return WriteBackupObject(
        final_backup_object(
            namespace=instance.namespace,
            instance=instance.name,
            uid=instance.uid,
            name=name,
            started_at=deleted_at,
            record=record,
            now=observation.now,
        )
    )


def _release_claims(
    observation: Observation,
    instance: Instance | None,
    status: InstanceStatus,
    namespace: str,
    name: str,
    uid: str,
    skip: bool,
    keeps_data: bool,
) -> Action | None:
    live = observation.live
    names = names_for(instance) if instance is not None else None
    data_claim, data_volume = live.data_claim, live.data_volume
    retain_policy = instance is not None and instance.spec.deletion_policy is DeletionPolicy.RETAIN
    unfinished = restore_unfinished(status)
    if data_claim is not None and not _released(data_claim):
        if (
            data_volume is not None
            and data_claim.bound
            and (retain_policy or (skip and keeps_data) or unfinished)
        ):
            if retain_policy:
                reason = "deletion_policy Retain"
            elif unfinished:
                reason = "deleted before its restore finished"
            else:
                reason = "deleted without a final backup"
            if data_volume.annotations.get(ANNOTATION_RETAINED_REASON) != reason:
                patches = (
                    retention_patch(data_volume, namespace, name, VolumeRole.DATA, uid),
                    retained_patch(data_volume, reason, observation.now),
                )
                return PatchVolumes(tuple(patch for patch in patches if patch is not None))
            if not retain_policy:
                # The claim goes with the object; the volume stays, as after a namespace
                # deletion, for a re-created instance to adopt.
                return ReleaseClaim(data_claim, None)
            # Retain keeps the claim itself, with its finalizer, for the next lifetime.
            return _release_backup_claim(observation, namespace, name, uid)
        why = _release_reason(status, instance, keeps_data)
        static = (
            data_volume.name
            if data_volume is not None
            and names is not None
            and data_volume.name == names.data_volume
            else None
        )
        return ReleaseClaim(
            data_claim,
            release_patch(data_volume, why)
            if data_volume is not None and data_claim.bound
            else None,
            delete_volume=static,
            notice=Notice("DataReleased", f"claim {data_claim.name}: {why}"),
        )
    return _release_backup_claim(observation, namespace, name, uid)


def _release_backup_claim(
    observation: Observation, namespace: str, name: str, uid: str
) -> Action | None:
    """The backup claim stays, with its dumps; only one that never bound goes."""
    live = observation.live
    backup_claim, backup_volume = live.backup_claim, live.backup_volume
    if backup_claim is not None and not backup_claim.bound and not _released(backup_claim):
        # Never bound, so it holds no dump: nothing to keep.
        return ReleaseClaim(backup_claim, None)
    if backup_claim is not None and backup_volume is not None and backup_claim.bound:
        patch = retention_patch(backup_volume, namespace, name, VolumeRole.BACKUP, uid)
        if patch is not None:
            return PatchVolumes((patch,))
    return None


def _going(live: Live) -> tuple[str, ...]:
    """The instance's objects that are being deleted and still exist (a Deployment waits
    for its pods, a claim for the pod that mounts it)."""
    claims = tuple(
        f"PersistentVolumeClaim/{claim.name}"
        for claim in (live.data_claim, live.backup_claim)
        if claim is not None and claim.deleting
    )
    return live.going + claims


def _released(claim: ClaimState) -> bool:
    """The operator already let this claim go (its finalizer is off)."""
    return CLAIM_FINALIZER not in claim.finalizers


def _release_reason(status: InstanceStatus, instance: Instance | None, keeps_data: bool) -> str:
    record = status.final_backup
    if record is not None and record.phase is JobPhase.SUCCEEDED:
        return f"its data is in the verified final backup ({record.message})"
    if not keeps_data:
        return "the instance never served clients, so it held nothing that is not in a dump"
    if instance is not None and instance.spec.deletion_policy is DeletionPolicy.DELETE:
        return "deletion_policy Delete: deleted without a backup, as the spec asks"
    return "backup.on_delete is false: deleted without a backup, as the spec asks"


def _goodbye(
    status: InstanceStatus, instance: Instance | None, skip: bool, keeps_data: bool
) -> Notice:
    record = status.final_backup
    if record is not None and record.phase is JobPhase.SUCCEEDED:
        return Notice("Deleted", f"deleted after the final backup: {record.message}")
    if restore_unfinished(status):
        return Notice(
            "BackupSkipped",
            "deleted before its restore finished, so without a backup (it could have "
            "captured a half-restored database); if the data claim had bound, its volume is "
            "retained for a re-created instance of this name, whose restore completes or "
            "keeps it",
        )
    if skip and keeps_data:
        return Notice(
            "Deleted", "deleted without a final backup, as annotated; the data volume is retained"
        )
    if instance is not None and instance.spec.deletion_policy is DeletionPolicy.RETAIN:
        return Notice(
            "Deleted",
            "deleted; deletion_policy Retain keeps the data claim and its volume for the next "
            "instance of this name",
        )
    if not keeps_data:
        return Notice(
            "BackupSkipped",
            "deleted without a backup: the instance never served clients (or its claim never "
            "bound), so there was nothing to lose",
        )
    return Notice("Deleted", _release_reason(status, instance, keeps_data))


def _namespace_deleted(observation: Observation, namespace: str, name: str, uid: str) -> Action:
    """No Job can be created in a terminating namespace: keep every volume, let go."""
    live = observation.live
    reason = f"namespace {namespace} was deleted"
    kept: list[str] = []
    pairs: tuple[tuple[ClaimState | None, VolumeState | None, VolumeRole], ...] = (
        (live.data_claim, live.data_volume, VolumeRole.DATA),
        (live.backup_claim, live.backup_volume, VolumeRole.BACKUP),
    )
    for claim, volume, role in pairs:
        if claim is None or volume is None or not claim.bound:
            continue
        kept.append(volume.name)
        if (
            volume.annotations.get(ANNOTATION_RETAINED_REASON) is None
            and not volume.released_on_purpose
        ):
            patches = [retained_patch(volume, reason, observation.now)]
            retention = retention_patch(volume, namespace, name, role, uid)
            if retention is not None:
                patches.insert(0, retention)
            return PatchVolumes(
                tuple(patches),
                Notice(
                    "VolumeRetained",
                    f"{reason}: volume {volume.name} ({role.value}) is kept for a re-created "
                    f"{namespace}/{name}",
                    warning=True,
                ),
            )
    for claim in (live.data_claim, live.backup_claim):
        if claim is not None and not _released(claim):
            return ReleaseClaim(claim, None, keep_claim=True)
    stack = observation.stack
    if stack is None or stack.exists:
        return ForgetStack()
    listed = ", ".join(kept) or "none (no claim was bound)"
    return RemoveFinalizer(
        Notice(
            "NamespaceDeleted",
            f"{reason} with the instance in it; no backup could run there. Retained volumes: "
            f"{listed}. Re-create the namespace and the MySQL object {name} to get the data back",
            warning=True,
        )
    )


def decide_orphans(namespace: str, name: str, live: Live, now: datetime) -> Action | None:
    """Claims whose MySQL object is gone (the backup claim outlives every instance, and a
    data claim outlives one with deletion_policy Retain). When such a claim is deleted
    (by hand, or with its namespace), its volume is retained first; None: nothing to do."""
    pairs: tuple[tuple[ClaimState | None, VolumeState | None, VolumeRole], ...] = (
        (live.data_claim, live.data_volume, VolumeRole.DATA),
        (live.backup_claim, live.backup_volume, VolumeRole.BACKUP),
    )
    for claim, volume, role in pairs:
        if claim is None or _released(claim):
            continue
        if volume is not None and claim.bound:
            uid = volume.annotations.get(ANNOTATION_INSTANCE_UID)
            retention = retention_patch(volume, namespace, name, role, uid)
            if retention is not None:
                return PatchVolumes((retention,))
            if claim.deleting and volume.annotations.get(ANNOTATION_RETAINED_REASON) is None:
                reason = f"claim {claim.name} was deleted after its instance"
                return PatchVolumes(
                    (retained_patch(volume, reason, now),),
                    Notice("VolumeRetained", f"volume {volume.name}: {reason}; kept"),
                )
        if claim.deleting:
            return ReleaseClaim(claim, None, keep_claim=True)
    return None
