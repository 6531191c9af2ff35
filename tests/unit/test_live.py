"""Parsing what the cluster shows (claims, volumes, pods, Jobs, Events) into the small
values the decisions read."""

from __future__ import annotations

import pytest

from reconciler.live import (
    claim_state,
    job_state,
    newest_event_message,
    pod_state,
    volume_state,
)
from reconciler.vocabulary import ANNOTATION_RELEASED, CLAIM_FINALIZER
from tests.unit.builders import (
    DATA_CLAIM,
    DATA_PV,
    NAMESPACE,
    RESTORE_JOB_1,
    claim,
    event,
    job,
    job_pod,
    pod,
    volume,
)

pytestmark = pytest.mark.unit


# -- claims ---------------------------------------------------------------------------------


def test_a_bound_claim() -> None:
    state = claim_state(claim())
    assert (state.name, state.phase, state.volume) == (DATA_CLAIM, "Bound", DATA_PV)
    assert state.bound
    assert not state.deleting
    assert state.finalizers == (CLAIM_FINALIZER, "kubernetes.io/pvc-protection")
    assert state.resource_version == "42"


def test_a_pending_claim_without_a_volume() -> None:
    state = claim_state(claim(phase="Pending", volume=None))
    assert state.volume is None
    assert not state.bound


def test_a_pending_claim_reserved_for_a_static_volume_is_not_bound() -> None:
    state = claim_state(claim(phase="Pending", volume="shop-mysql-instance-data"))
    assert state.volume == "shop-mysql-instance-data"
    assert not state.bound


def test_a_claim_being_deleted() -> None:
    assert claim_state(claim(deleting=True)).deleting


def test_a_claim_without_status_is_pending() -> None:
    raw = claim()
    del raw["status"]
    assert claim_state(raw).phase == "Pending"


# -- volumes --------------------------------------------------------------------------------


def test_a_volume() -> None:
    state = volume_state(volume(storage_class="local", capacity="5Gi", labels={"a": "b"}))
    assert state.name == DATA_PV
    assert (state.phase, state.reclaim_policy) == ("Bound", "Delete")
    assert (state.storage_class, state.capacity) == ("local", "5Gi")
    assert (state.claim_namespace, state.claim_name) == (NAMESPACE, DATA_CLAIM)
    assert state.claim_uid == "uid-of-mysql-instance-data"
    assert state.labels == {"a": "b"}
    assert not state.released_on_purpose


def test_a_volume_without_a_policy_or_class_gets_the_api_defaults() -> None:
    raw = volume(claim_name=None)
    del raw["spec"]["persistentVolumeReclaimPolicy"]
    del raw["spec"]["storageClassName"]
    state = volume_state(raw)
    assert state.reclaim_policy == "Delete"
    assert state.storage_class == ""
    assert (state.claim_namespace, state.claim_name, state.claim_uid) == (None, None, None)


def test_a_volume_released_on_purpose() -> None:
    assert volume_state(volume(annotations={ANNOTATION_RELEASED: "backed up"})).released_on_purpose


# -- pods -----------------------------------------------------------------------------------


def test_a_ready_pod() -> None:
    state = pod_state(pod())
    assert state.ready
    assert state.phase == "Running"
    assert (state.waiting_reason, state.unschedulable, state.terminated_exit_code) == (
        None,
        None,
        None,
    )


def test_a_pod_that_cannot_pull_its_image() -> None:
    state = pod_state(
        pod(
            phase="Pending",
            ready=False,
            waiting=("ImagePullBackOff", 'Back-off pulling image "mysql:nope"'),
        )
    )
    assert not state.ready
    assert state.waiting_reason == "ImagePullBackOff"
    assert state.waiting_message == 'Back-off pulling image "mysql:nope"'


def test_a_crash_looping_pod_keeps_its_last_termination() -> None:
    state = pod_state(
        pod(
            ready=False,
            waiting=("CrashLoopBackOff", "back-off 5m0s restarting failed container"),
            last_terminated=(
                "Error",
                "initializing\n[ERROR] --initialize specified but dir has files\n",
            ),
            restarts=6,
        )
    )
    assert state.waiting_reason == "CrashLoopBackOff"
    assert state.restarts == 6
    assert state.last_termination_reason == "Error"
    assert state.last_termination_message == "[ERROR] --initialize specified but dir has files"


def test_an_unschedulable_pod_carries_the_scheduler_message() -> None:
    message = "0/1 nodes are available: 1 Insufficient memory."
    state = pod_state(pod(phase="Pending", ready=False, unschedulable=message))
    assert state.unschedulable == message


def test_a_terminated_container_gives_its_exit_code_and_last_message_line() -> None:
    state = pod_state(job_pod(RESTORE_JOB_1, exit_code=3, message="restore: working\nrefused: x\n"))
    assert state.terminated_exit_code == 3
    assert state.terminated_message == "refused: x"
    assert state.phase == "Failed"


def test_a_long_termination_message_is_cut() -> None:
    state = pod_state(job_pod(RESTORE_JOB_1, exit_code=1, message="x" * 5000))
    assert state.terminated_message == "x" * 500


def test_an_init_container_speaks_first() -> None:
    raw = pod(ready=False)
    raw["status"]["initContainerStatuses"] = [
        {"name": "init", "restartCount": 2, "state": {"waiting": {"reason": "ErrImagePull"}}}
    ]
    state = pod_state(raw)
    assert state.waiting_reason == "ErrImagePull"
    assert state.restarts == 2


def test_a_pod_being_deleted() -> None:
    assert pod_state(pod(deleting=True)).deleting


# -- Jobs -----------------------------------------------------------------------------------


def test_a_running_job() -> None:
    state = job_state(job(), [job_pod(RESTORE_JOB_1)])
    assert state.name == RESTORE_JOB_1
    assert not state.succeeded
    assert not state.failed
    assert state.exit_code is None


def test_a_job_that_succeeded_reports_the_scripts_result_line() -> None:
    line = "restored dump=dump-0000000007.sql.gz sequence=7 sha256=ab12"
    state = job_state(job(succeeded=True), [job_pod(RESTORE_JOB_1, exit_code=0, message=line)])
    assert state.succeeded
    assert state.exit_code == 0
    assert state.message == line


def test_a_failed_job_reads_its_pods_exit_code_and_message() -> None:
    state = job_state(
        job(failed=("BackoffLimitExceeded", "Job has reached the specified backoff limit")),
        [job_pod(RESTORE_JOB_1, exit_code=4, message="refused: dump-7 fails its checksum")],
    )
    assert state.failed
    assert state.failure_reason == "BackoffLimitExceeded"
    assert state.exit_code == 4
    assert state.message == "refused: dump-7 fails its checksum"


def test_a_job_without_a_pod_message_falls_back_to_its_condition() -> None:
    failed = job(failed=("DeadlineExceeded", "Job was active longer than specified deadline"))
    assert job_state(failed, []).message == "Job was active longer than specified deadline"
    assert job_state(failed, []).pod is None
    assert job_state(failed, []).exit_code is None


def test_the_newest_pod_of_a_job_speaks() -> None:
    older = job_pod(RESTORE_JOB_1, exit_code=1, message="old", created="2026-01-01T10:00:00Z")
    newer = job_pod(RESTORE_JOB_1, exit_code=2, message="new", created="2026-01-01T11:00:00Z")
    state = job_state(job(failed=("BackoffLimitExceeded", "x")), [newer, older])
    assert (state.exit_code, state.message) == (2, "new")
    state = job_state(job(failed=("BackoffLimitExceeded", "x")), [older, newer])
    assert (state.exit_code, state.message) == (2, "new")


# -- Events ---------------------------------------------------------------------------------


def test_no_events_no_message() -> None:
    assert newest_event_message([]) is None


def test_the_newest_event_is_reported_as_reason_and_message() -> None:
    events = [
        event("Provisioning", "waiting for a volume", last="2026-01-01T10:00:00Z"),
        event("ExternalProvisioning", "waiting for the provisioner", last="2026-01-01T11:00:00Z"),
    ]
    assert newest_event_message(events) == "ExternalProvisioning: waiting for the provisioner"


def test_a_warning_wins_over_a_newer_normal_event() -> None:
    events = [
        event(
            "ProvisioningFailed",
            'storageclass.storage.k8s.io "x" not found',
            warning=True,
            last="2026-01-01T10:00:00Z",
        ),
        event("WaitForFirstConsumer", "waiting for first consumer", last="2026-01-01T11:00:00Z"),
    ]
    message = newest_event_message(events)
    assert message is not None
    assert message.startswith("ProvisioningFailed: ")


def test_an_event_time_stands_in_for_a_missing_last_timestamp() -> None:
    older = event("A", "older", last="2026-01-01T10:00:00Z")
    newer = event("B", "newer", last=None)
    newer["eventTime"] = "2026-01-01T11:00:00.000000Z"
    assert newest_event_message([older, newer]) == "B: newer"
