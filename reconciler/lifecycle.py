"""The next step for an instance that is not being deleted (pure).

In order: the finalizer, a valid spec and password, claims nobody deleted by hand, how
the claims find their volumes (decided once, adopting what an earlier lifetime left),
the stack (an `up` only when the inputs changed or the state was lost), volumes made
`Retain`, the restore Job (before clients can connect), and finally a ready server.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from reconciler.actions import (
    Action,
    AddFinalizer,
    Deploy,
    JobKind,
    MarkReady,
    Notice,
    PatchVolumes,
    RecordVolumes,
    Stall,
    Wait,
)
from reconciler.backup_objects import BackupPhase, SourceBackup
from reconciler.conditions import Reason
from reconciler.drift import drift_step
from reconciler.fingerprint import inputs_fingerprint
from reconciler.live import ClaimState, VolumeState
from reconciler.names import names_for
from reconciler.observation import Observation
from reconciler.passwords import (
    RotationContext,
    declared_password,
    recorded_again,
    rotation_step,
    unknown_password,
    wanted_problem,
)
from reconciler.policy import (
    annotation,
    changed_storage_field,
    deploy_reason,
    desired_for,
    first_attempt,
    generation_of,
    has_finalizer,
    host_path_problem,
    job_step,
    password_secret_problem,
    s3_problem,
    server_problem,
    storage_fields,
    synced,
)
from reconciler.requested_backups import requested_backup_step
from reconciler.schedules import schedule_step, wake_in_s
from reconciler.spec import Instance
from reconciler.status import JobPhase, RestoreSource, VolumeRecord, Volumes
from reconciler.storage import (
    as_claimed,
    growth_problem,
    resize_progress,
    resized_notice,
    serving_despite,
)
from reconciler.vocabulary import (
    ANNOTATION_INSTANCE_UID,
    ANNOTATION_RETAINED_REASON,
    ANNOTATION_RETRY,
    Stage,
    VolumeRole,
)
from reconciler.volumes import VolumePatch, adoption_candidates, adoption_patch, retention_patch

# A new Service's endpoints follow within a second or two; they are not watched.
SERVICE_POLL_S: Final = 2.0
# A named backup still running is not watched from here.
RESTORE_SOURCE_POLL_S: Final = 10.0


def decide_lifecycle(observation: Observation) -> Action:
    """The instance's next step. The schedule's and the requested backups' writes go
    first; a backup may start only when the instance would otherwise be marked Ready, and
    a Ready instance with a schedule is looked at again at its next fire."""
    action = _instance_step(observation)
    instance = observation.parsed_object.instance
    if instance is None or isinstance(action, AddFinalizer):
        return action
    scheduled = schedule_step(observation, instance)
    if scheduled is not None:
        return scheduled
    ready = isinstance(action, MarkReady)
    serving = serving_despite(action)
    backup = requested_backup_step(observation, instance, ready=ready or serving)
    if backup is not None:
        return backup
    wake = wake_in_s(instance, observation.now)
    if wake is not None and isinstance(action, MarkReady | Stall) and (ready or serving):
        return replace(action, requeue_after_s=wake)
    return action


def _instance_step(observation: Observation) -> Action:
    obj = observation.obj
    if not has_finalizer(obj):
        return AddFinalizer()
    parsed = observation.parsed_object
    instance = parsed.instance
    if instance is None:
        return Stall(Reason.SPEC_INVALID, str(parsed.spec_error))
    secret = password_secret_problem(instance, observation.password_secret)
    if secret is not None:
        return Stall(*secret)
    passwords, key = observation.passwords, observation.fingerprint_key
    unusable = wanted_problem(instance, passwords)
    if unusable is not None:
        return Stall(Reason.PASSWORD_INVALID, unusable)
    recorded = recorded_again(instance, parsed.status.password, passwords, key)
    if recorded is not None:
        return recorded
    host_path = host_path_problem(instance, observation.host_path_root)
    if host_path is not None:
        return Stall(Reason.HOST_PATH_NOT_ALLOWED, host_path)
    live = observation.live
    for claim in (live.data_claim, live.backup_claim):
        if claim is not None and claim.deleting:
            return Stall(
                Reason.CLAIM_DELETED,
                f"claim {claim.name} was deleted outside the operator; it is kept (and its "
                "volume retained) while the instance exists. Delete the MySQL object to tear "
                "the instance down with a final backup",
            )
    status = parsed.status
    if status.volumes is None:
        return plan_volumes(observation, instance)
    changed = changed_storage_field(status.volumes.storage_fields, instance)
    if changed is not None:
        return Stall(
            Reason.IMMUTABLE_FIELD_CHANGED,
            f"{changed}: the claims' storage cannot change after creation; set it back",
        )
    growth = growth_problem(observation, instance)
    if growth is not None:
        instance = as_claimed(observation, instance)
    restore = status.restore
    if restore is None:
        if instance.spec.restore_from is not None:
            return _named_restore(observation, instance)
        newest = observation.live.newest_backup
        if newest is not None and not any(
            record.carries_data for record in (status.volumes.data, status.volumes.backup)
        ):
            # Both claims are new, so no dump of an earlier lifetime is on them: the newest
            # backup of this name in the bucket is what the instance last held.
            field = f"the newest backup of {instance.name}: MySQLBackup {newest.name!r}"
            return _restore_from_s3(observation, instance, newest, field)
        return first_attempt(instance, JobKind.RESTORE, obj)
    restored = restore.phase is JobPhase.SUCCEEDED
    # Gated, the server becomes ready (and so reachable by clients) through the restore
    # itself: the stack declares the serving stage from the first `up`.
    stage = Stage.SERVING if restored or restore.gates_readiness else Stage.RESTORING
    declared = declared_password(instance, status.password, passwords, key)
    if declared is None:
        return unknown_password(instance)
    desired = desired_for(instance, stage, status, declared)
    fingerprint = inputs_fingerprint(desired, key)
    if not synced(status, fingerprint, observation.toolchain, observation.stack):
        reason, message = deploy_reason(status, observation.stack, generation_of(obj))
        if restored and not status.served:
            message = f"{restore.message or 'restore done'}; opening the Service to clients"
        return Deploy(desired, fingerprint, reason, message)
    if not live.deployment_present:
        return Deploy(
            desired,
            fingerprint,
            Reason.PROCESSING,
            "the Deployment was deleted outside the operator: re-creating it",
            refresh=True,
        )
    patches = retention_patches(observation, instance)
    if patches:
        return PatchVolumes(patches)
    problem = server_problem(observation, instance)
    if not restored:
        step = job_step(observation, instance, JobKind.RESTORE, restore)
        # While the restore runs, a problem of the server says more than "running"; a
        # gated server is not ready before the restore ends, which is no problem.
        if restore.gates_readiness and problem is not None and _only_unready(observation):
            problem = None
        if isinstance(step, Wait) and problem is not None:
            return problem
        if step is not None:
            return step
    else:
        assert status.password is not None
        context = RotationContext(
            instance=instance,
            record=status.password,
            passwords=passwords,
            key=key,
            retry=annotation(obj, ANNOTATION_RETRY),
            job=live.rotation_job,
            now=observation.now,
        )
        rotation = rotation_step(context, server_problem=problem)
        if rotation is not None:
            return rotation
    if problem is not None:
        return problem
    resizing = resize_progress(observation, instance)
    if resizing is not None:
        return resizing
    if not live.service_routes:
        # Ready means a client can connect: the Service must route to the server.
        return Wait(
            Reason.POD_STARTING,
            f"the Service {names_for(instance).service} does not route to the server yet",
            SERVICE_POLL_S,
        )
    if growth is not None:
        # Serving, with everything else applied: only the growth is refused.
        return growth
    drift = drift_step(observation, instance, desired, fingerprint)
    if isinstance(drift, Deploy):
        return drift
    return MarkReady(
        f"generation {generation_of(obj)} applied; serving at "
        f"{names_for(instance).service}.{instance.namespace}",
        notice=resized_notice(observation, instance),
        drift=drift,
    )


def _named_restore(observation: Observation, instance: Instance) -> Action:
    """spec.restore_from, resolved once into the restore's record: the MySQLBackup must
    have succeeded with a dump on a claim of this namespace. Anything else stops the
    instance before a server starts, never an empty database served instead."""
    named = instance.spec.restore_from
    assert named is not None
    field = f"spec.restore_from.backup: MySQLBackup {named.backup!r}"
    source = observation.live.restore_from
    if source is None:
        return Stall(
            Reason.RESTORE_SOURCE_MISSING,
            f"{field} does not exist in namespace {instance.namespace}",
        )
    if source.phase in (None, BackupPhase.PENDING.value, BackupPhase.RUNNING.value):
        return Wait(Reason.RESTORING, f"{field} has not finished yet", RESTORE_SOURCE_POLL_S)
    if source.phase != BackupPhase.SUCCEEDED.value:
        return Stall(Reason.RESTORE_SOURCE_MISSING, f"{field} is {source.phase}: it has no dump")
    located = source.claim_and_dump
    if located is None and source.bucket is not None:
        return _restore_from_s3(observation, instance, source, field)
    if located is None:
        return Stall(
            Reason.RESTORE_SOURCE_MISSING,
            f"{field} is at {source.location!r}; only dumps on a backup claim or in S3 can "
            "be restored",
        )
    claim, dump = located
    found = observation.live.restore_from_claim
    if found is None or not found.bound or found.deleting:
        return Stall(
            Reason.RESTORE_SOURCE_MISSING,
            f"{field} is on claim {claim}, which is missing, unbound or being deleted",
        )
    step = first_attempt(instance, JobKind.RESTORE, observation.obj)
    return replace(
        step, record=replace(step.record, source=RestoreSource(named.backup, claim, dump))
    )


def _restore_from_s3(
    observation: Observation, instance: Instance, source: SourceBackup, field: str
) -> Action:
    """A named backup in S3 is read through this instance's own spec.backup.s3 (its
    endpoint and credentials), which must name the same bucket."""
    s3 = instance.spec.backup.s3
    if s3 is None or s3.bucket != source.bucket:
        return Stall(
            Reason.RESTORE_SOURCE_MISSING,
            f"{field} is in S3 bucket {source.bucket}: set spec.backup.s3 to that bucket "
            "(its endpoint and credentials) to restore it",
        )
    if source.size is None or source.sha256 is None or source.dump is None:
        return Stall(
            Reason.RESTORE_SOURCE_MISSING,
            f"{field} records no size, sha256 or dump name: it cannot be verified",
        )
    problem = s3_problem(instance, observation)
    if problem is not None:
        return Stall(Reason.BACKUP_STORE_UNUSABLE, problem)
    assert source.location is not None
    assert observation.transfer_image is not None
    named = RestoreSource(
        source.name,
        None,
        source.dump,
        url=source.location,
        size=source.size,
        sha256=source.sha256,
        transfer_image=observation.transfer_image,
        store=s3,
    )
    step = first_attempt(instance, JobKind.RESTORE, observation.obj)
    return replace(step, record=replace(step.record, source=named))


def _only_unready(observation: Observation) -> bool:
    """The server runs and only its readiness is missing."""
    pod = observation.live.server_pod
    return pod is not None and pod.phase == "Running" and pod.waiting_reason is None


def plan_volumes(observation: Observation, instance: Instance) -> Action:
    """Before the first `up`: each claim either exists already (it outlived an earlier
    lifetime), or binds a volume an earlier lifetime left, or gets a new one."""
    names = names_for(instance)
    live = observation.live
    records: list[VolumeRecord] = []
    patches: list[VolumePatch] = []
    notes: list[str] = []
    for claim_name, claim, candidates in (
        (names.data_claim, live.data_claim, live.retained_data),
        (names.backup_claim, live.backup_claim, live.retained_backup),
    ):
        named = instance.spec.restore_from
        holds_data = claim is not None or adoption_candidates(candidates, instance.namespace)
        if named is not None and claim_name == names.data_claim and holds_data:
            what = f"claim {claim_name}" if claim is not None else "a volume"
            return Stall(
                Reason.RESTORE_TARGET_NOT_EMPTY,
                f"spec.restore_from: {what} of an earlier {instance.namespace}/{instance.name} "
                f"holds its data, and restoring MySQLBackup {named.backup} would overwrite it. "
                "Delete that claim (or mark the volume otus.homework/released=by-hand), or "
                "create the instance without restore_from to keep that data",
            )
        if claim is not None:
            records.append(VolumeRecord(claim_name, preexisting=True))
            notes.append(f"claim {claim_name} exists already and is taken over")
            continue
        found = adoption_candidates(candidates, instance.namespace)
        if len(found) > 1:
            listed = ", ".join(volume.name for volume in found)
            return Stall(
                Reason.AMBIGUOUS_VOLUMES,
                f"volumes {listed} all hold data an earlier {instance.namespace}/"
                f"{instance.name} left; the operator will not guess which to use. Mark the "
                "ones not to use with the annotation otus.homework/released=by-hand",
            )
        if found:
            volume = found[0]
            records.append(_adopted(claim_name, volume))
            patches.append(adoption_patch(volume, instance.namespace, claim_name, instance.uid))
            notes.append(
                f"volume {volume.name} (retained: "
                f"{volume.annotations.get(ANNOTATION_RETAINED_REASON, 'unknown reason')}) "
                f"is bound to claim {claim_name} again; its data is kept"
            )
        else:
            records.append(VolumeRecord(claim_name))
    volumes = Volumes(data=records[0], backup=records[1], storage_fields=storage_fields(instance))
    notice = Notice("VolumesAdopted", "; ".join(notes)) if notes else None
    return RecordVolumes(volumes, tuple(patches), notice)


def _adopted(claim: str, volume: VolumeState) -> VolumeRecord:
    return VolumeRecord(
        claim,
        adopted_volume=volume.name,
        storage_class=volume.storage_class,
        size=volume.capacity,
        adopted_from=volume.annotations.get(ANNOTATION_INSTANCE_UID),
    )


def retention_patches(observation: Observation, instance: Instance) -> tuple[VolumePatch, ...]:
    """`Retain` (and whose data) on every volume bound to one of the instance's claims."""
    live = observation.live
    pairs: tuple[tuple[ClaimState | None, VolumeState | None, VolumeRole], ...] = (
        (live.data_claim, live.data_volume, VolumeRole.DATA),
        (live.backup_claim, live.backup_volume, VolumeRole.BACKUP),
    )
    patches = []
    for claim, volume, role in pairs:
        if claim is None or not claim.bound or volume is None:
            continue
        patch = retention_patch(volume, instance.namespace, instance.name, role, instance.uid)
        if patch is not None:
            patches.append(patch)
    return tuple(patches)
