"""The next step for an instance being deleted, and for claims whose instance is gone:
where an operator loses data if it is careless. In order: the finalizer, a terminating
namespace, whether the data needs a final backup, the backup itself, destroy, adoption
of lost state, and the release of the claims."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from reconciler.actions import (
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
from reconciler.backup_objects import BackupObjectState, final_backup_name, phase_of
from reconciler.conditions import Reason
from reconciler.fingerprint import inputs_fingerprint
from reconciler.live import claim_state, volume_state
from reconciler.observation import Live, StackState
from reconciler.policy import desired_for
from reconciler.status import InstanceStatus, JobPhase, JobRecord, VolumeRecord
from reconciler.teardown import GOING_POLL_S, decide_orphans, decide_teardown, holds_data
from reconciler.vocabulary import (
    ANNOTATION_RELEASED,
    ANNOTATION_RETAINED_REASON,
    ANNOTATION_SKIP_FINAL_BACKUP,
    CLAIM_FINALIZER,
    Stage,
    VolumeRole,
)
from reconciler.volumes import release_patch
from tests.unit.builders import (
    BACKUP_CLAIM,
    BACKUP_JOB_1,
    BACKUP_PV,
    DATA_CLAIM,
    DATA_PV,
    DEPLOYED,
    EMPTY_STACK,
    FINGERPRINT_KEY,
    FRESH_VOLUMES,
    NAME,
    NAMESPACE,
    NO_STACK,
    NOW,
    RESTORE_JOB_1,
    RESTORED,
    STAMP,
    STATIC_DATA_PV,
    UID,
    claim,
    instance,
    job,
    job_pod,
    kept_volume,
    live_of,
    merge_patch,
    mysql_object,
    observe,
    serving_live,
    synced_status,
    volume,
)

pytestmark = pytest.mark.unit

FRESH = FRESH_VOLUMES
BACKUP_RUNNING = JobRecord(attempt=1, job=BACKUP_JOB_1)
BACKUP_LINE = "backed up dump=dump-0000000009.sql.gz sequence=9 sha256=9f"
BACKED_UP = replace(BACKUP_RUNNING, phase=JobPhase.SUCCEEDED, message=BACKUP_LINE)
BACKUP_RECORD = f"{NAME}-20260101120000"


applied = synced_status


SERVED = applied(InstanceStatus(volumes=FRESH, restore=RESTORED, served=True), Stage.SERVING)
NEVER_SERVED = applied(InstanceStatus(volumes=FRESH, restore=RESTORED), Stage.RESTORING)


def backing_up(record: JobRecord = BACKUP_RUNNING) -> InstanceStatus:
    """Served, with the final backup's attempt deployed."""
    return applied(replace(SERVED, final_backup=record), Stage.FINAL_BACKUP)


def decide(
    status: InstanceStatus | None = SERVED,
    *,
    live: Live | None = None,
    stack: StackState | None = DEPLOYED,
    namespace_terminating: bool = False,
    finalizer: bool = True,
    annotations: dict[str, str] | None = None,
    backup_recorded: bool = True,
    **spec: Any,
) -> Any:
    """`backup_recorded`: the MySQLBackup of the final backup, if there is one, already
    says what the status does (the steps that write it are tested on their own)."""
    obj = mysql_object(
        deleting=True, finalizer=finalizer, status=status, annotations=annotations, **spec
    )
    live = live if live is not None else serving_live()
    record = status.final_backup if status is not None else None
    if backup_recorded and record is not None and live.backup_object is None:
        in_step = BackupObjectState(BACKUP_RECORD, UID, phase_of(record).value, record.attempt)
        live = replace(live, backup_object=in_step)
    return decide_teardown(
        observe(obj, live=live, stack=stack, namespace_terminating=namespace_terminating)
    )


def destroyed(**changes: Any) -> Live:
    """After destroy: the claims (retained by the stack) and their volumes, no workload."""
    parts: dict[str, Any] = {"server_pod": None, "deployment_present": False}
    parts.update(changes)
    return serving_live(**parts)


def released(raw_claim: dict[str, Any]) -> dict[str, Any]:
    """The claim after the operator dropped its finalizer (it may linger, deleting)."""
    return {
        **raw_claim,
        "metadata": {
            **raw_claim["metadata"],
            "finalizers": [f for f in raw_claim["metadata"]["finalizers"] if f != CLAIM_FINALIZER],
        },
    }


# -- the finalizer --------------------------------------------------------------------------


def test_an_object_without_our_finalizer_is_forgotten() -> None:
    assert decide(finalizer=False) == Forget()


# -- a namespace being deleted --------------------------------------------------------------


def test_a_terminating_namespace_retains_each_bound_volume_first() -> None:
    live = serving_live(data_volume=volume(reclaim="Delete"))
    action = decide(live=live, namespace_terminating=True)
    assert isinstance(action, PatchVolumes)
    assert {patch.volume for patch in action.patches} == {DATA_PV}
    patched = volume()
    for patch in action.patches:
        patched = merge_patch(patched, patch.patch)
    assert patched["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    annotations = patched["metadata"]["annotations"]
    assert annotations[ANNOTATION_RETAINED_REASON] == "namespace shop was deleted"
    assert annotations["otus.homework/instance-uid"] == UID
    assert annotations["otus.homework/original-reclaim-policy"] == "Delete"
    assert action.notice is not None
    assert action.notice.warning
    assert action.notice.reason == "VolumeRetained"


def test_a_terminating_namespace_annotates_an_already_kept_volume() -> None:
    action = decide(namespace_terminating=True)
    assert isinstance(action, PatchVolumes)
    (patch,) = action.patches
    assert patch.volume == DATA_PV
    assert patch.patch["metadata"]["annotations"][ANNOTATION_RETAINED_REASON] == (
        "namespace shop was deleted"
    )


def namespace_kept(**changes: Any) -> Live:
    """Both volumes already retained for the namespace deletion."""
    reason = {ANNOTATION_RETAINED_REASON: "namespace shop was deleted"}
    parts: dict[str, Any] = {
        "data_volume": kept_volume(annotations=reason),
        "backup_volume": kept_volume(
            BACKUP_PV, VolumeRole.BACKUP, claim_name=BACKUP_CLAIM, annotations=reason
        ),
    }
    parts.update(changes)
    return serving_live(**parts)


def test_then_the_claim_finalizers_are_dropped_and_the_claims_left_to_the_namespace() -> None:
    action = decide(live=namespace_kept(), namespace_terminating=True)
    assert action == ReleaseClaim(claim_state(claim()), None, keep_claim=True)
    live = namespace_kept(data_claim=released(claim()))
    action = decide(live=live, namespace_terminating=True)
    assert isinstance(action, ReleaseClaim)
    assert action.claim.name == BACKUP_CLAIM
    assert action.keep_claim
    assert action.volume is None


def test_then_the_stack_is_forgotten_without_touching_the_cluster() -> None:
    live = namespace_kept(
        data_claim=released(claim()),
        backup_claim=released(claim(BACKUP_CLAIM, volume=BACKUP_PV)),
    )
    assert decide(live=live, namespace_terminating=True) == ForgetStack()


def test_then_the_finalizer_goes_naming_the_retained_volumes() -> None:
    live = namespace_kept(
        data_claim=released(claim()),
        backup_claim=released(claim(BACKUP_CLAIM, volume=BACKUP_PV)),
    )
    action = decide(live=live, stack=NO_STACK, namespace_terminating=True)
    assert isinstance(action, RemoveFinalizer)
    assert action.notice.reason == "NamespaceDeleted"
    assert action.notice.warning
    assert f"{DATA_PV}, {BACKUP_PV}" in action.notice.message


def test_a_terminating_namespace_never_starts_a_backup() -> None:
    # A served instance would need a final backup, but no Job can run there any more.
    for live in (serving_live(), namespace_kept(), live_of()):
        action = decide(SERVED, live=live, namespace_terminating=True)
        assert not isinstance(action, RecordJob | Deploy | Destroy), action


def test_a_volume_released_on_purpose_is_not_retained_again() -> None:
    gone = kept_volume(annotations={ANNOTATION_RELEASED: "backed up"})
    action = decide(live=namespace_kept(data_volume=gone), namespace_terminating=True)
    assert isinstance(action, ReleaseClaim)


# -- does the data need a backup? -----------------------------------------------------------


ADOPTED = replace(FRESH, data=VolumeRecord(DATA_CLAIM, adopted_volume="pv-old"))
PREEXISTING = replace(FRESH, data=VolumeRecord(DATA_CLAIM, preexisting=True))


@pytest.mark.parametrize(
    ("status", "data_claim", "holds"),
    [
        (InstanceStatus(volumes=FRESH, served=True), None, False),
        (InstanceStatus(volumes=FRESH, served=True), claim(phase="Pending", volume=None), False),
        (InstanceStatus(), claim(), True),
        (InstanceStatus(volumes=FRESH), claim(), False),
        (InstanceStatus(volumes=FRESH, served=True), claim(), True),
        (InstanceStatus(volumes=ADOPTED), claim(), True),
        (InstanceStatus(volumes=PREEXISTING), claim(), True),
    ],
    ids=[
        "no-claim",
        "claim-never-bound",
        "history-unknown",
        "fresh-never-served",
        "served",
        "adopted-volume",
        "claim-from-before",
    ],
)
def test_holds_data(status: InstanceStatus, data_claim: dict[str, Any] | None, holds: bool) -> None:
    assert holds_data(status, live_of(data_claim=data_claim)) is holds


# -- the final backup -----------------------------------------------------------------------


def test_the_final_backup_is_recorded_first() -> None:
    assert decide(SERVED) == RecordJob(JobKind.FINAL_BACKUP, JobRecord(attempt=1, job=BACKUP_JOB_1))


def test_then_clients_are_cut_off_and_the_backup_job_declared() -> None:
    status = replace(SERVED, final_backup=BACKUP_RUNNING)
    action = decide(status)
    assert isinstance(action, Deploy)
    assert action.desired == desired_for(instance(), Stage.FINAL_BACKUP, status)
    assert action.fingerprint == inputs_fingerprint(action.desired, FINGERPRINT_KEY)
    assert action.reason is Reason.BACKING_UP
    assert BACKUP_JOB_1 in action.message


def test_a_lost_stack_is_adopted_for_the_backup() -> None:
    action = decide(replace(SERVED, final_backup=BACKUP_RUNNING), stack=EMPTY_STACK)
    assert isinstance(action, Deploy)
    assert action.reason is Reason.STACK_STATE_LOST
    assert action.desired.stage is Stage.FINAL_BACKUP


def test_a_deleted_deployment_is_recreated_for_the_backup() -> None:
    action = decide(backing_up(), live=serving_live(deployment_present=False))
    assert isinstance(action, Deploy)
    assert action.refresh
    assert action.desired.stage is Stage.FINAL_BACKUP


def test_the_backup_job_is_waited_for() -> None:
    live = serving_live(job=job(BACKUP_JOB_1), job_pods=[job_pod(BACKUP_JOB_1)])
    action = decide(backing_up(), live=live)
    assert isinstance(action, Wait)
    assert action.reason is Reason.BACKING_UP


def test_a_finished_backup_is_recorded_with_its_dump() -> None:
    live = serving_live(
        job=job(BACKUP_JOB_1, succeeded=True),
        job_pods=[job_pod(BACKUP_JOB_1, exit_code=0, message=BACKUP_LINE)],
    )
    action = decide(backing_up(), live=live)
    assert isinstance(action, RecordJob)
    assert action.record == BACKED_UP
    assert action.record.result["dump"] == "dump-0000000009.sql.gz"


# -- the MySQLBackup record of the final backup --------------------------------------------


def test_the_record_is_written_running_before_the_backup_job_is_declared() -> None:
    action = decide(replace(SERVED, final_backup=BACKUP_RUNNING), backup_recorded=False)
    assert isinstance(action, WriteBackupObject)
    backup = action.backup
    assert backup.name == BACKUP_RECORD == final_backup_name(NAME, STAMP)
    metadata = backup.manifest["metadata"]
    assert (metadata["name"], metadata["namespace"]) == (BACKUP_RECORD, NAMESPACE)
    # No owner reference: the record outlives the MySQL object.
    assert "ownerReferences" not in metadata
    assert backup.manifest["spec"] == {"instance": NAME}
    assert backup.status["phase"] == "Running"
    assert backup.status["trigger"] == "delete"
    assert backup.status["startedAt"] == STAMP
    assert backup.status["attempt"] == 1
    assert backup.status["completedAt"] is None


def test_the_record_says_succeeded_with_the_dump_before_the_destroy() -> None:
    sha = "ab" * 32
    line = f"dump=dump-0000000009.sql.gz sequence=9 size=4096 sha256={sha} server_version=5.7.44"
    done = replace(BACKED_UP, message=line)
    action = decide(backing_up(done), backup_recorded=False)
    assert isinstance(action, WriteBackupObject)
    status = action.backup.status
    assert status["phase"] == "Succeeded"
    assert status["location"] == f"pvc://{BACKUP_CLAIM}/dump-0000000009.sql.gz"
    assert (status["sizeBytes"], status["sha256"], status["serverVersion"]) == (
        4096,
        sha,
        "5.7.44",
    )
    assert status["completedAt"] == STAMP
    assert status["conditions"][0]["reason"] == "BackupSucceeded"
    # Once the record says so, the destroy follows.
    assert decide(backing_up(done)) == Destroy()


def test_a_failed_attempt_shows_on_the_record_and_so_does_the_retry() -> None:
    failed = replace(
        BACKUP_RUNNING,
        phase=JobPhase.FAILED,
        message="mysqldump: lost connection",
        reason=Reason.JOB_FAILED.value,
        failed_at=STAMP,
    )
    action = decide(backing_up(failed), backup_recorded=False)
    assert isinstance(action, WriteBackupObject)
    assert action.backup.status["phase"] == "Failed"
    assert "lost connection" in action.backup.status["conditions"][0]["message"]
    retry = replace(BACKUP_RUNNING, attempt=2, job=f"{BACKUP_JOB_1[:-2]}-2")
    shown_failed = BackupObjectState(BACKUP_RECORD, UID, "Failed", 1)
    action = decide(backing_up(retry), live=serving_live(backup_object=shown_failed))
    assert isinstance(action, WriteBackupObject)
    assert (action.backup.status["phase"], action.backup.status["attempt"]) == ("Running", 2)


def test_a_record_of_another_instance_under_the_name_stalls() -> None:
    other = BackupObjectState(BACKUP_RECORD, "uid-of-an-earlier-object", "Succeeded", 1)
    action = decide(backing_up(), live=serving_live(backup_object=other))
    assert isinstance(action, Stall)
    assert action.reason is Reason.BACKUP_RECORD_CONFLICT
    assert BACKUP_RECORD in action.message


def test_a_request_or_scheduled_backup_under_the_name_is_never_overwritten() -> None:
    for trigger in (None, "schedule"):
        other = BackupObjectState(BACKUP_RECORD, None, "Succeeded", 1, trigger)
        action = decide(backing_up(), live=serving_live(backup_object=other))
        assert isinstance(action, Stall), trigger
        assert action.reason is Reason.BACKUP_RECORD_CONFLICT


def test_a_record_written_before_its_status_is_adopted() -> None:
    # Created, then the reconciler died before writing the status: no annotation lost.
    bare = BackupObjectState(BACKUP_RECORD, UID, None, None)
    action = decide(backing_up(), live=serving_live(backup_object=bare))
    assert isinstance(action, WriteBackupObject)


def test_nothing_is_destroyed_while_the_backup_fails() -> None:
    failed = replace(
        BACKUP_RUNNING,
        phase=JobPhase.FAILED,
        message="mysqldump: lost connection",
        reason=Reason.JOB_FAILED.value,
        failed_at="2026-01-01T12:00:00Z",
    )
    action = decide(backing_up(failed))
    assert isinstance(action, Wait)
    assert action.reason is Reason.BACKUP_RETRYING


def test_a_refused_backup_stalls() -> None:
    refused = replace(
        BACKUP_RUNNING, phase=JobPhase.REFUSED, message="bad", reason=Reason.JOB_FAILED.value
    )
    action = decide(backing_up(refused))
    assert isinstance(action, Stall)


def test_the_skip_annotation_with_the_uid_skips_the_backup() -> None:
    refused = replace(
        BACKUP_RUNNING, phase=JobPhase.REFUSED, message="bad", reason=Reason.JOB_FAILED.value
    )
    skip = {ANNOTATION_SKIP_FINAL_BACKUP: UID}
    assert decide(backing_up(refused), annotations=skip) == Destroy()
    assert decide(SERVED, annotations=skip) == Destroy()


def test_the_skip_annotation_with_another_uid_does_nothing() -> None:
    # The annotation names the lifetime: one copied from an earlier object is ignored.
    action = decide(SERVED, annotations={ANNOTATION_SKIP_FINAL_BACKUP: "some-other-uid"})
    assert isinstance(action, RecordJob)


def test_after_the_backup_the_stack_is_destroyed() -> None:
    assert decide(backing_up(BACKED_UP)) == Destroy()


def test_an_instance_that_never_served_is_destroyed_without_a_backup() -> None:
    assert decide(NEVER_SERVED) == Destroy()


GATED_RUNNING = JobRecord(attempt=1, job=RESTORE_JOB_1, gates_readiness=True)
GATED_RESTORING = applied(InstanceStatus(volumes=FRESH, restore=GATED_RUNNING), Stage.SERVING)
ADOPTED_RESTORING = applied(
    InstanceStatus(
        volumes=replace(FRESH, data=VolumeRecord(DATA_CLAIM, adopted_volume=DATA_PV)),
        restore=JobRecord(attempt=1, job=RESTORE_JOB_1),
    ),
    Stage.RESTORING,
)
UNFINISHED = "deleted before its restore finished"


@pytest.mark.parametrize(
    "status",
    [
        GATED_RESTORING,
        replace(GATED_RESTORING, restore=replace(GATED_RUNNING, phase=JobPhase.FAILED)),
        ADOPTED_RESTORING,
    ],
    ids=["gated-running", "gated-failed", "adopted-running"],
)
def test_an_unfinished_restore_is_never_backed_up_and_its_volume_is_kept(
    status: InstanceStatus,
) -> None:
    # A backup now could make a half-restored database the newest dump.
    assert decide(status) == Destroy()
    action = decide(status, live=destroyed(), stack=EMPTY_STACK)
    assert isinstance(action, PatchVolumes)
    annotations = action.patches[-1].patch["metadata"]["annotations"]
    assert annotations[ANNOTATION_RETAINED_REASON] == UNFINISHED
    kept = kept_volume(annotations={ANNOTATION_RETAINED_REASON: UNFINISHED})
    action = decide(status, live=destroyed(data_volume=kept), stack=EMPTY_STACK)
    assert action == ReleaseClaim(claim_state(claim()), None), "the claim goes, not the volume"
    gone = destroyed(data_claim=None, data_volume=None, backup_claim=None, backup_volume=None)
    goodbye = decide(status, live=gone, stack=NO_STACK)
    assert isinstance(goodbye, RemoveFinalizer)
    assert goodbye.notice is not None
    assert goodbye.notice.reason == "BackupSkipped"
    assert goodbye.notice.message.startswith(UNFINISHED)


def test_a_restore_job_that_succeeded_meanwhile_is_recorded_before_anything_else() -> None:
    line = "restored dump=dump-0000000003.sql.gz"
    live = serving_live(
        job=job(succeeded=True), job_pods=[job_pod(RESTORE_JOB_1, exit_code=0, message=line)]
    )
    action = decide(GATED_RESTORING, live=live)
    assert isinstance(action, RecordJob)
    assert action.kind is JobKind.RESTORE
    assert action.record.phase is JobPhase.SUCCEEDED


@pytest.mark.parametrize(
    "job_pods",
    [
        [job_pod(RESTORE_JOB_1, waiting=("ImagePullBackOff", "not found"))],
        [],
    ],
    ids=["image-cannot-be-pulled", "no-pod"],
)
def test_a_restore_job_that_never_started_is_abandoned_and_the_volume_released(
    job_pods: list[dict[str, Any]],
) -> None:
    action = decide(GATED_RESTORING, live=serving_live(job=job(), job_pods=job_pods))
    assert isinstance(action, RecordJob)
    assert action.record.phase is JobPhase.ABANDONED
    abandoned = replace(GATED_RESTORING, restore=action.record)
    assert decide(abandoned) == Destroy()
    released = decide(abandoned, live=destroyed(), stack=EMPTY_STACK)
    assert isinstance(released, ReleaseClaim)
    assert released.volume is not None, "released on purpose: it never served"


def test_a_restore_job_whose_pod_runs_may_be_half_way() -> None:
    live = serving_live(job=job(), job_pods=[job_pod(RESTORE_JOB_1)])
    assert decide(GATED_RESTORING, live=live) == Destroy()
    action = decide(GATED_RESTORING, live=destroyed(), stack=EMPTY_STACK)
    assert isinstance(action, PatchVolumes), "retained, not released"


def test_a_refused_gated_restore_never_opened_so_its_volume_is_released() -> None:
    refused = replace(GATED_RUNNING, phase=JobPhase.REFUSED, reason="RestoreDumpCorrupt")
    status = replace(GATED_RESTORING, restore=refused)
    assert decide(status) == Destroy()
    action = decide(status, live=destroyed(), stack=EMPTY_STACK)
    assert isinstance(action, ReleaseClaim)
    assert action.claim.name == DATA_CLAIM
    assert action.volume is not None, "released on purpose: it never served"


def test_a_gated_restore_that_finished_is_backed_up_like_any_served_instance() -> None:
    done = replace(GATED_RUNNING, phase=JobPhase.SUCCEEDED, message="restored")
    status = replace(GATED_RESTORING, restore=done, served=True)
    assert decide(status) == RecordJob(JobKind.FINAL_BACKUP, JobRecord(attempt=1, job=BACKUP_JOB_1))


@pytest.mark.parametrize("spec", [{"deletion_policy": "Delete"}, {"backup": {"on_delete": False}}])
def test_no_backup_when_the_spec_says_so(spec: dict[str, Any]) -> None:
    assert decide(applied(SERVED, Stage.SERVING, **spec), **spec) == Destroy()


def test_retain_still_backs_up_first() -> None:
    spec: dict[str, Any] = {"deletion_policy": "Retain"}
    action = decide(applied(SERVED, Stage.SERVING, **spec), **spec)
    assert isinstance(action, RecordJob)


def test_an_invalid_spec_with_data_stalls_and_says_how_to_skip() -> None:
    action = decide(SERVED, image="")
    assert isinstance(action, Stall)
    assert action.reason is Reason.SPEC_INVALID
    assert "spec.image" in action.message
    assert f"{ANNOTATION_SKIP_FINAL_BACKUP}={UID}" in action.message


def test_an_invalid_spec_without_data_is_destroyed() -> None:
    assert decide(NEVER_SERVED, image="") == Destroy()


def test_a_stack_that_cannot_be_read_is_destroyed_rather_than_dropped() -> None:
    assert decide(backing_up(BACKED_UP), stack=None) == Destroy()


# -- lost state -----------------------------------------------------------------------------


def test_live_objects_without_a_stack_are_adopted_before_the_destroy() -> None:
    live = destroyed(workload_present=True)
    action = decide(NEVER_SERVED, live=live, stack=EMPTY_STACK)
    assert isinstance(action, Deploy)
    assert action.desired.stage is Stage.RELEASING
    assert action.reason is Reason.STACK_STATE_LOST
    assert action.fingerprint == inputs_fingerprint(action.desired, FINGERPRINT_KEY)


def test_adoption_needs_a_valid_spec() -> None:
    action = decide(NEVER_SERVED, live=destroyed(workload_present=True), stack=NO_STACK, image="")
    assert isinstance(action, Stall)
    assert action.reason is Reason.SPEC_INVALID


# -- releasing the claims -------------------------------------------------------------------


def test_after_a_verified_backup_the_data_claim_and_volume_are_released() -> None:
    action = decide(backing_up(BACKED_UP), live=destroyed(), stack=EMPTY_STACK)
    assert isinstance(action, ReleaseClaim)
    assert action.claim == claim_state(claim())
    why = f"its data is in the verified final backup ({BACKUP_LINE})"
    assert action.volume == release_patch(volume_state(kept_volume()), why)
    assert action.volume is not None
    assert action.volume.patch["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert not action.keep_claim
    assert action.delete_volume is None, "a provisioned volume goes with its policy"
    assert action.notice is not None
    assert action.notice.reason == "DataReleased"


def test_a_static_volume_object_of_ours_is_deleted_with_its_claim() -> None:
    spec: dict[str, Any] = {"host_path": "/mnt/mysql"}
    live = destroyed(
        data_claim=claim(volume=STATIC_DATA_PV),
        data_volume=kept_volume(STATIC_DATA_PV, original="Retain"),
    )
    status = backing_up(BACKED_UP)
    action = decide(status, live=live, stack=EMPTY_STACK, **spec)
    assert isinstance(action, ReleaseClaim)
    assert action.delete_volume == STATIC_DATA_PV
    assert action.volume is not None
    assert action.volume.patch["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_delete_releases_the_data_without_a_backup() -> None:
    spec: dict[str, Any] = {"deletion_policy": "Delete"}
    action = decide(
        applied(SERVED, Stage.SERVING, **spec), live=destroyed(), stack=EMPTY_STACK, **spec
    )
    assert isinstance(action, ReleaseClaim)
    assert action.claim.name == DATA_CLAIM
    assert action.volume is not None
    assert (
        "deletion_policy Delete"
        in action.volume.patch["metadata"]["annotations"][ANNOTATION_RELEASED]
    )


def test_a_never_kept_provisioned_volume_goes_back_to_its_provisioner() -> None:
    # Deleted after the claim bound but before the retention step ran: the volume still
    # has the Delete policy it came with, and nothing recorded it.
    live = destroyed(data_volume=volume(reclaim="Delete"))
    action = decide(NEVER_SERVED, live=live, stack=EMPTY_STACK)
    assert isinstance(action, ReleaseClaim)
    assert action.volume is not None
    assert action.volume.patch["spec"]["persistentVolumeReclaimPolicy"] == "Delete"


def test_a_claim_that_never_bound_is_released_without_a_volume_patch() -> None:
    live = destroyed(data_claim=claim(phase="Pending", volume=None), data_volume=None)
    action = decide(NEVER_SERVED, live=live, stack=EMPTY_STACK)
    assert isinstance(action, ReleaseClaim)
    assert action.claim.name == DATA_CLAIM
    assert action.volume is None
    assert not action.keep_claim


def test_retain_marks_the_volume_retained_and_keeps_the_claim() -> None:
    spec: dict[str, Any] = {"deletion_policy": "Retain"}
    status = applied(backing_up(BACKED_UP), Stage.FINAL_BACKUP, **spec)
    action = decide(status, live=destroyed(), stack=EMPTY_STACK, **spec)
    assert isinstance(action, PatchVolumes)
    (patch,) = action.patches
    assert patch.volume == DATA_PV
    assert patch.patch["metadata"]["annotations"][ANNOTATION_RETAINED_REASON] == (
        "deletion_policy Retain"
    )
    kept = kept_volume(annotations={ANNOTATION_RETAINED_REASON: "deletion_policy Retain"})
    action = decide(status, live=destroyed(data_volume=kept), stack=EMPTY_STACK, **spec)
    assert isinstance(action, RemoveFinalizer), "the data claim stays, with its finalizer"


def test_skipping_the_backup_retains_the_volume_and_lets_the_claim_go() -> None:
    skip = {ANNOTATION_SKIP_FINAL_BACKUP: UID}
    action = decide(SERVED, live=destroyed(), stack=EMPTY_STACK, annotations=skip)
    assert isinstance(action, PatchVolumes)
    assert action.patches[-1].patch["metadata"]["annotations"][ANNOTATION_RETAINED_REASON] == (
        "deleted without a final backup"
    )
    kept = kept_volume(annotations={ANNOTATION_RETAINED_REASON: "deleted without a final backup"})
    action = decide(SERVED, live=destroyed(data_volume=kept), stack=EMPTY_STACK, annotations=skip)
    assert action == ReleaseClaim(claim_state(claim()), None)


def test_the_backup_claim_with_its_dumps_is_kept() -> None:
    live = destroyed(data_claim=released(claim()))
    action = decide(backing_up(BACKED_UP), live=live, stack=EMPTY_STACK)
    assert isinstance(action, RemoveFinalizer), "nothing is done to the backup claim"


def test_an_unkept_backup_volume_is_made_retain_before_letting_go() -> None:
    live = destroyed(
        data_claim=released(claim()),
        backup_volume=volume(BACKUP_PV, reclaim="Delete", claim_name=BACKUP_CLAIM),
    )
    action = decide(backing_up(BACKED_UP), live=live, stack=EMPTY_STACK)
    assert isinstance(action, PatchVolumes)
    (patch,) = action.patches
    assert patch.volume == BACKUP_PV
    assert patch.patch["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert patch.patch["metadata"]["labels"]["otus.homework/volume-role"] == "backup"


def test_a_backup_claim_that_never_bound_is_released() -> None:
    live = destroyed(
        data_claim=released(claim()),
        backup_claim=claim(BACKUP_CLAIM, phase="Pending", volume=None),
        backup_volume=None,
    )
    action = decide(backing_up(BACKED_UP), live=live, stack=EMPTY_STACK)
    assert isinstance(action, ReleaseClaim)
    assert action.claim.name == BACKUP_CLAIM
    assert not action.keep_claim


# -- the end --------------------------------------------------------------------------------


def all_released() -> Live:
    return destroyed(data_claim=None, data_volume=None)


def test_the_emptied_stack_stays_with_its_history_and_the_finalizer_goes() -> None:
    expected = RemoveFinalizer(Notice("Deleted", f"deleted after the final backup: {BACKUP_LINE}"))
    assert decide(backing_up(BACKED_UP), live=all_released(), stack=EMPTY_STACK) == expected
    assert decide(backing_up(BACKED_UP), live=all_released(), stack=NO_STACK) == expected


def test_the_goodbye_says_when_there_was_nothing_to_back_up() -> None:
    action = decide(NEVER_SERVED, live=all_released(), stack=NO_STACK)
    assert isinstance(action, RemoveFinalizer)
    assert action.notice.reason == "BackupSkipped"


def test_the_goodbye_says_a_skipped_backup_left_the_volume() -> None:
    # The claim is gone by the time the finalizer goes; the status says what it held.
    skip = {ANNOTATION_SKIP_FINAL_BACKUP: UID}
    action = decide(SERVED, live=all_released(), stack=NO_STACK, annotations=skip)
    assert isinstance(action, RemoveFinalizer)
    assert "retained" in action.notice.message


def test_the_object_goes_after_the_claim_it_released() -> None:
    # A pod that still mounts the claim keeps it (pvc-protection); a MySQL object of the
    # same name created now would meet it.
    skip = {ANNOTATION_SKIP_FINAL_BACKUP: UID}
    live = destroyed(data_claim=claim(deleting=True, finalizers=["kubernetes.io/pvc-protection"]))
    action = decide(SERVED, live=live, stack=NO_STACK, annotations=skip)
    assert isinstance(action, Wait)
    assert action.reason is Reason.DELETING
    assert f"PersistentVolumeClaim/{DATA_CLAIM}" in action.message


def test_the_object_goes_after_the_objects_the_destroy_deleted() -> None:
    # The engine does not wait for deletions; a Deployment waits for its pods.
    live = replace(all_released(), going=("Deployment/mysql-instance", "Job/x-backup-1"))
    action = decide(backing_up(BACKED_UP), live=live, stack=NO_STACK)
    assert action == Wait(
        Reason.DELETING,
        "waiting for Deployment/mysql-instance, Job/x-backup-1 to be deleted",
        GOING_POLL_S,
    )
    assert decide(backing_up(BACKED_UP), live=all_released(), stack=NO_STACK) == RemoveFinalizer(
        Notice("Deleted", f"deleted after the final backup: {BACKUP_LINE}")
    )


def test_the_goodbye_of_a_retained_instance_says_its_data_is_kept() -> None:
    # Retain without a backup: nothing was deleted, the data claim stays for the next
    # lifetime. The Event must say so, not "deleted without a backup".
    spec: dict[str, Any] = {"deletion_policy": "Retain", "backup": {"on_delete": False}}
    status = applied(SERVED, Stage.SERVING, **spec)
    kept = kept_volume(annotations={ANNOTATION_RETAINED_REASON: "deletion_policy Retain"})
    action = decide(status, live=destroyed(data_volume=kept), stack=NO_STACK, **spec)
    assert isinstance(action, RemoveFinalizer)
    assert "retain" in action.notice.message.lower(), action.notice.message


# -- claims without an instance -------------------------------------------------------------


def orphans(live: Live) -> Any:
    return decide_orphans(NAMESPACE, NAME, live, NOW)


def test_an_orphan_claim_in_use_needs_nothing() -> None:
    assert (
        orphans(
            live_of(
                backup_claim=claim(BACKUP_CLAIM, volume=BACKUP_PV),
                backup_volume=kept_volume(BACKUP_PV, VolumeRole.BACKUP),
            )
        )
        is None
    )


def test_a_deleted_orphan_claim_retains_its_volume_then_lets_go() -> None:
    deleting = claim(BACKUP_CLAIM, volume=BACKUP_PV, deleting=True)
    kept = kept_volume(BACKUP_PV, VolumeRole.BACKUP, claim_name=BACKUP_CLAIM)
    action = orphans(live_of(backup_claim=deleting, backup_volume=kept))
    assert isinstance(action, PatchVolumes)
    (patch,) = action.patches
    assert patch.volume == BACKUP_PV
    reason = patch.patch["metadata"]["annotations"][ANNOTATION_RETAINED_REASON]
    assert reason == f"claim {BACKUP_CLAIM} was deleted after its instance"
    retained = kept_volume(
        BACKUP_PV,
        VolumeRole.BACKUP,
        claim_name=BACKUP_CLAIM,
        annotations={ANNOTATION_RETAINED_REASON: reason},
    )
    action = orphans(live_of(backup_claim=deleting, backup_volume=retained))
    assert action == ReleaseClaim(claim_state(deleting), None, keep_claim=True)


def test_an_orphan_volume_that_is_not_kept_is_made_retain_first() -> None:
    deleting = claim(volume=DATA_PV, deleting=True)
    action = orphans(live_of(data_claim=deleting, data_volume=volume(reclaim="Delete")))
    assert isinstance(action, PatchVolumes)
    assert action.patches[0].patch["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_an_orphan_claim_already_let_go_needs_nothing() -> None:
    deleting = released(claim(deleting=True))
    assert orphans(live_of(data_claim=deleting, data_volume=kept_volume())) is None


def test_a_deleted_orphan_claim_that_never_bound_just_lets_go() -> None:
    deleting = claim(phase="Pending", volume=None, deleting=True)
    action = orphans(live_of(data_claim=deleting))
    assert action == ReleaseClaim(claim_state(deleting), None, keep_claim=True)
