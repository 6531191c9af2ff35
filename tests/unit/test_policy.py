"""The rules the lifecycle and the teardown share: a Job attempt's next step (first
attempt, success, failure, backoff, refusal, retry on request), why a server is not ready,
the synced check, and the desired state of a stage."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from reconciler.actions import JobKind, Notice, RecordJob, Stall, Wait
from reconciler.conditions import Reason, timestamp
from reconciler.desired import ClaimBinding
from reconciler.observation import Live
from reconciler.policy import (
    POLL_S,
    changed_storage_field,
    deploy_reason,
    desired_for,
    first_attempt,
    job_step,
    retry_delay_s,
    server_problem,
    storage_fields,
    synced,
)
from reconciler.status import InstanceStatus, JobPhase, JobRecord, VolumeRecord, Volumes
from reconciler.vocabulary import ANNOTATION_RETRY, Stage
from tests.unit.builders import (
    BACKUP_JOB_1,
    DEPLOYED,
    EMPTY_STACK,
    NOW,
    RESTORE_JOB_1,
    TOOLCHAIN,
    claim,
    instance,
    job,
    job_pod,
    live_of,
    mysql_object,
    observe,
    pod,
    serving_live,
)

pytestmark = pytest.mark.unit

RESTORE = JobKind.RESTORE
BACKUP = JobKind.FINAL_BACKUP
RUNNING = JobRecord(attempt=1, job=RESTORE_JOB_1)


def step(
    record: JobRecord,
    *,
    kind: JobKind = RESTORE,
    live: Live | None = None,
    annotations: dict[str, str] | None = None,
    minutes_later: float = 0,
) -> Any:
    obj = mysql_object(annotations=annotations)
    observation = observe(obj, live=live or live_of(), now=NOW + timedelta(minutes=minutes_later))
    return job_step(observation, instance(), kind, record)


def with_job(raw_job: dict[str, Any], *pods: dict[str, Any]) -> Live:
    return live_of(job=raw_job, job_pods=pods)


def failed_job(exit_code: int, message: str = "it broke", name: str = RESTORE_JOB_1) -> Live:
    return with_job(
        job(name, failed=("BackoffLimitExceeded", "Job has reached the specified backoff limit")),
        job_pod(name, exit_code=exit_code, message=message),
    )


def failed_record(attempt: int = 1, *, seconds_ago: float = 0, **changes: Any) -> JobRecord:
    return replace(
        JobRecord(
            attempt=attempt,
            job=f"mysql-instance-restore-0f3c2a9e-{attempt}",
            phase=JobPhase.FAILED,
            message="it broke",
            reason=Reason.JOB_FAILED.value,
            failed_at=timestamp(NOW - timedelta(seconds=seconds_ago)),
        ),
        **changes,
    )


# -- the first attempt ----------------------------------------------------------------------


def test_the_first_attempt_is_recorded_before_its_job_exists() -> None:
    action = first_attempt(instance(), RESTORE, mysql_object())
    assert action == RecordJob(
        RESTORE, JobRecord(attempt=1, job=RESTORE_JOB_1, gates_readiness=True)
    )
    assert action.record.phase is JobPhase.RUNNING


def test_the_first_final_backup_attempt_names_the_backup_job() -> None:
    action = first_attempt(instance(), BACKUP, mysql_object())
    assert action.record.job == BACKUP_JOB_1
    assert not action.record.gates_readiness


def test_the_first_attempt_honours_a_retry_token_already_set() -> None:
    # A token set before the attempt must not trigger a retry of that same attempt.
    obj = mysql_object(annotations={ANNOTATION_RETRY: "1"})
    assert first_attempt(instance(), RESTORE, obj).record.retry_token == "1"


# -- an attempt under way -------------------------------------------------------------------


def test_a_job_that_disappeared_counts_as_a_failed_attempt() -> None:
    # job_step runs only once the stack is synced, so the Job was created: someone
    # deleted it. The attempt failed; the next one follows after the backoff.
    action = step(RUNNING)
    assert isinstance(action, RecordJob)
    assert action.record.phase is JobPhase.FAILED
    assert action.record.attempt == 1
    assert action.record.failed_at == "2026-01-01T12:00:00Z"
    assert action.notice is not None
    assert action.notice.warning


def test_a_running_job_waits_and_looks_again_after_a_poll() -> None:
    action = step(RUNNING, live=with_job(job(), job_pod(RESTORE_JOB_1)))
    assert isinstance(action, Wait)
    assert action.reason is Reason.RESTORING
    assert action.requeue_after_s == POLL_S


def test_a_running_job_waits_with_the_running_reason_of_its_kind() -> None:
    backup = JobRecord(attempt=1, job=BACKUP_JOB_1)
    action = step(backup, kind=BACKUP, live=with_job(job(BACKUP_JOB_1), job_pod(BACKUP_JOB_1)))
    assert isinstance(action, Wait)
    assert action.reason is Reason.BACKING_UP
    assert BACKUP_JOB_1 in action.message


def test_a_job_pod_that_cannot_pull_its_image_is_reported_while_waiting() -> None:
    stuck = job_pod(RESTORE_JOB_1, waiting=("ErrImagePull", "manifest unknown"))
    action = step(RUNNING, live=with_job(job(), stuck))
    assert isinstance(action, Wait), "a Job is still retried; it does not stall"
    assert action.reason is Reason.IMAGE_PULL_FAILED
    assert "manifest unknown" in action.message


def test_success_records_the_scripts_result() -> None:
    line = "restored dump=dump-0000000007.sql.gz sequence=7"
    live = with_job(job(succeeded=True), job_pod(RESTORE_JOB_1, exit_code=0, message=line))
    action = step(RUNNING, live=live)
    assert isinstance(action, RecordJob)
    assert action.record == replace(RUNNING, phase=JobPhase.SUCCEEDED, message=line)
    assert action.record.result == {"dump": "dump-0000000007.sql.gz", "sequence": "7"}
    assert action.notice is not None
    assert action.notice.reason == "RestoreSucceeded"
    assert not action.notice.warning


def test_a_succeeded_record_needs_nothing_more() -> None:
    assert step(replace(RUNNING, phase=JobPhase.SUCCEEDED)) is None


# -- failure, backoff, the next attempt -----------------------------------------------------


def test_a_failure_is_recorded_with_its_time() -> None:
    action = step(RUNNING, live=failed_job(1, "mysql: connection refused"))
    assert isinstance(action, RecordJob)
    record = action.record
    assert record.phase is JobPhase.FAILED
    assert record.attempt == 1
    assert record.reason == Reason.JOB_FAILED.value
    assert record.message == "mysql: connection refused"
    assert record.failed_at == "2026-01-01T12:00:00Z"
    assert action.notice is not None
    assert action.notice.warning
    assert "exit code 1" in action.notice.message


def test_a_failed_attempt_waits_out_its_backoff() -> None:
    action = step(failed_record(1, seconds_ago=4))
    assert isinstance(action, Wait)
    assert action.reason is Reason.RESTORE_RETRYING
    assert action.requeue_after_s == pytest.approx(retry_delay_s(1) - 4)
    assert "attempt 2" in action.message


def test_after_the_backoff_the_next_attempt_is_a_new_job() -> None:
    action = step(failed_record(1, seconds_ago=retry_delay_s(1)))
    assert isinstance(action, RecordJob)
    assert action.record == JobRecord(
        attempt=2, job="mysql-instance-restore-0f3c2a9e-2", phase=JobPhase.RUNNING
    )


def test_backoff_grows_with_each_attempt_up_to_a_cap() -> None:
    delays = [retry_delay_s(attempt) for attempt in range(1, 10)]
    assert delays[:4] == [10.0, 20.0, 40.0, 80.0]
    assert delays[-1] == 600.0
    assert retry_delay_s(10_000) == 600.0


def test_a_third_attempt_waits_longer_than_a_first() -> None:
    first = step(failed_record(1, seconds_ago=0))
    third = step(failed_record(3, seconds_ago=0))
    assert isinstance(first, Wait)
    assert isinstance(third, Wait)
    assert third.requeue_after_s == 4 * first.requeue_after_s


def test_a_clock_that_went_back_never_lengthens_the_wait() -> None:
    # The failure seems to lie an hour in the future: wait the delay, not an hour more.
    action = step(failed_record(1, seconds_ago=-3600))
    assert isinstance(action, Wait)
    assert action.requeue_after_s == retry_delay_s(1)


def test_an_unreadable_failure_time_does_not_block_the_retry() -> None:
    action = step(failed_record(1, failed_at="yesterday"))
    assert isinstance(action, RecordJob)
    assert action.record.attempt == 2


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exit_code", "reason"),
    [
        (2, Reason.JOB_FAILED),
        (3, Reason.RESTORE_TARGET_NOT_EMPTY),
        (4, Reason.RESTORE_DUMP_CORRUPT),
    ],
)
def test_a_restore_that_retrying_cannot_fix_is_refused(exit_code: int, reason: Reason) -> None:
    action = step(RUNNING, live=failed_job(exit_code, "refused: the target holds tables"))
    assert isinstance(action, RecordJob)
    assert action.record.phase is JobPhase.REFUSED
    assert action.record.reason == reason.value


def test_a_final_backup_with_a_bad_configuration_is_refused() -> None:
    record = JobRecord(attempt=1, job=BACKUP_JOB_1)
    action = step(record, kind=BACKUP, live=failed_job(2, "bad configuration", BACKUP_JOB_1))
    assert isinstance(action, RecordJob)
    assert action.record.phase is JobPhase.REFUSED
    assert action.notice is not None
    assert action.notice.reason == "FinalBackupFailed"


@pytest.mark.parametrize("exit_code", [1, 3, 4])
def test_other_final_backup_failures_are_retried(exit_code: int) -> None:
    # backup.sh exits 0, 1 or 2 only; 3 and 4 are the restore script's refusals.
    record = JobRecord(attempt=1, job=BACKUP_JOB_1)
    action = step(record, kind=BACKUP, live=failed_job(exit_code, "x", BACKUP_JOB_1))
    assert isinstance(action, RecordJob)
    assert action.record.phase is JobPhase.FAILED


def test_a_refused_attempt_stalls_and_says_how_to_retry() -> None:
    refused = failed_record(1, phase=JobPhase.REFUSED, reason=Reason.RESTORE_TARGET_NOT_EMPTY.value)
    action = step(refused, minutes_later=60)
    assert isinstance(action, Stall), "a refusal is never retried by itself"
    assert action.reason is Reason.RESTORE_TARGET_NOT_EMPTY
    assert ANNOTATION_RETRY in action.message


# -- a retry on request ---------------------------------------------------------------------


def test_a_new_retry_token_retries_a_refused_attempt_at_once() -> None:
    refused = failed_record(1, phase=JobPhase.REFUSED, reason=Reason.JOB_FAILED.value)
    action = step(refused, annotations={ANNOTATION_RETRY: "fixed-it"})
    assert isinstance(action, RecordJob)
    assert action.record.attempt == 2
    assert action.record.phase is JobPhase.RUNNING
    assert action.record.retry_token == "fixed-it"
    assert action.notice == Notice("RetryRequested", "restore: attempt 2 now, as asked")


def test_a_new_retry_token_skips_the_backoff() -> None:
    action = step(failed_record(1, seconds_ago=0), annotations={ANNOTATION_RETRY: "now"})
    assert isinstance(action, RecordJob)
    assert action.record.attempt == 2


def test_a_token_already_honoured_changes_nothing() -> None:
    refused = failed_record(
        2, phase=JobPhase.REFUSED, reason=Reason.JOB_FAILED.value, retry_token="fixed-it"
    )
    action = step(refused, annotations={ANNOTATION_RETRY: "fixed-it"})
    assert isinstance(action, Stall)


def test_a_retry_keeps_the_honoured_token_when_none_is_new() -> None:
    failed = failed_record(1, seconds_ago=3600, retry_token="earlier")
    action = step(failed, annotations={ANNOTATION_RETRY: "earlier"})
    assert isinstance(action, RecordJob)
    assert action.record.retry_token == "earlier"


# -- the server -----------------------------------------------------------------------------


def problem(live: Live) -> Any:
    return server_problem(observe(mysql_object(), live=live), instance())


def test_a_ready_server_has_no_problem() -> None:
    assert problem(serving_live()) is None


def test_a_claim_not_yet_created_is_pending() -> None:
    action = problem(serving_live(data_claim=None))
    assert isinstance(action, Wait)
    assert action.reason is Reason.VOLUME_PENDING


def test_a_pending_claim_reports_its_newest_event() -> None:
    action = problem(
        serving_live(
            data_claim=claim(phase="Pending", volume=None),
            claim_event='ProvisioningFailed: storageclass "fast" not found',
        )
    )
    assert isinstance(action, Wait)
    assert action.reason is Reason.VOLUME_PENDING
    assert 'storageclass "fast" not found' in action.message


def test_no_pod_yet_is_starting() -> None:
    action = problem(serving_live(server_pod=None))
    assert isinstance(action, Wait)
    assert action.reason is Reason.POD_STARTING


def test_a_pod_not_ready_is_starting() -> None:
    action = problem(serving_live(server_pod=pod(ready=False)))
    assert isinstance(action, Wait)
    assert action.reason is Reason.POD_STARTING


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"])
def test_an_image_that_cannot_be_pulled_stalls(reason: str) -> None:
    broken = pod(phase="Pending", ready=False, waiting=(reason, "not found"))
    action = problem(serving_live(server_pod=broken))
    assert isinstance(action, Stall)
    assert action.reason is Reason.IMAGE_PULL_FAILED
    assert "'mysql:5.7'" in action.message


def test_a_crash_loop_stalls_with_the_last_termination() -> None:
    crashing = pod(
        ready=False,
        waiting=("CrashLoopBackOff", "back-off"),
        last_terminated=("Error", "[ERROR] InnoDB: corrupt page"),
        restarts=5,
    )
    action = problem(serving_live(server_pod=crashing))
    assert isinstance(action, Stall)
    assert action.reason is Reason.CRASH_LOOPING
    assert "restarted 5 times" in action.message
    assert "[ERROR] InnoDB: corrupt page" in action.message


def test_a_missing_secret_key_stalls() -> None:
    broken = pod(ready=False, waiting=("CreateContainerConfigError", 'secret "x" not found'))
    action = problem(serving_live(server_pod=broken))
    assert isinstance(action, Stall)
    assert action.reason is Reason.SECRET_MISSING


def test_an_unschedulable_pod_stalls_unless_it_waits_for_its_claim() -> None:
    no_room = pod(phase="Pending", ready=False, unschedulable="0/1 nodes: Insufficient cpu")
    action = problem(serving_live(server_pod=no_room))
    assert isinstance(action, Stall)
    assert action.reason is Reason.POD_UNSCHEDULABLE
    binding = pod(
        phase="Pending",
        ready=False,
        unschedulable="pod has unbound immediate PersistentVolumeClaims",
    )
    action = problem(serving_live(server_pod=binding))
    assert isinstance(action, Wait)
    assert action.reason is Reason.POD_STARTING


# -- the synced check and the desired state -------------------------------------------------


def test_synced_needs_the_fingerprint_the_toolchain_and_a_deployed_stack() -> None:
    status = InstanceStatus(inputs_fingerprint="sha256:a", toolchain=TOOLCHAIN)
    assert synced(status, "sha256:a", TOOLCHAIN, DEPLOYED)
    assert synced(status, "sha256:a", TOOLCHAIN, None), "an unknown stack is not lost"
    assert not synced(status, "sha256:b", TOOLCHAIN, DEPLOYED)
    assert not synced(status, "sha256:a", replace(TOOLCHAIN, pulumi_cli="3.1.0"), DEPLOYED)
    assert not synced(status, "sha256:a", TOOLCHAIN, EMPTY_STACK)
    assert not synced(InstanceStatus(), "sha256:a", TOOLCHAIN, DEPLOYED)


def test_a_deployed_instance_whose_stack_is_empty_lost_its_state() -> None:
    deployed_before = InstanceStatus(inputs_fingerprint="sha256:a")
    reason, message = deploy_reason(deployed_before, EMPTY_STACK, 3)
    assert reason is Reason.STACK_STATE_LOST
    assert "adopting" in message
    assert deploy_reason(InstanceStatus(), EMPTY_STACK, 3)[0] is Reason.PROCESSING
    assert deploy_reason(deployed_before, None, 3)[0] is Reason.PROCESSING
    assert "generation 3" in deploy_reason(deployed_before, DEPLOYED, 3)[1]


def test_the_desired_state_carries_the_attempts_and_the_bindings() -> None:
    status = InstanceStatus(
        volumes=Volumes(
            data=VolumeRecord("mysql-instance-data", "pv-old", "local", "2Gi", "uid-0"),
            backup=VolumeRecord("mysql-instance-backup"),
        ),
        restore=JobRecord(attempt=3),
        final_backup=JobRecord(attempt=2),
    )
    found = desired_for(instance(), Stage.FINAL_BACKUP, status)
    assert found.stage is Stage.FINAL_BACKUP
    assert (found.restore_attempt, found.backup_attempt) == (3, 2)
    assert found.data_binding == ClaimBinding("pv-old", "local", "2Gi")
    assert found.backup_binding == ClaimBinding()


def test_without_records_the_desired_state_is_the_first_attempt_of_everything() -> None:
    found = desired_for(instance(), Stage.RESTORING, InstanceStatus())
    assert (found.restore_attempt, found.backup_attempt) == (1, 1)
    assert found.data_binding == ClaimBinding()


def test_a_changed_storage_field_is_named_with_both_values() -> None:
    recorded = storage_fields(instance())
    assert changed_storage_field(recorded, instance()) is None
    changed = changed_storage_field(recorded, instance(storage_class="fast"))
    assert changed == "spec.storage_class: was unset, now 'fast'"
    assert changed_storage_field(recorded, instance(backup={"host_path": "/mnt/b"})) == (
        "spec.backup.host_path: was unset, now '/mnt/b'"
    )


def test_a_storage_field_the_record_does_not_know_is_not_a_change() -> None:
    assert changed_storage_field({}, instance(storage_class="fast")) is None
