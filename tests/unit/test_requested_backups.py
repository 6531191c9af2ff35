"""Backups people ask for with a MySQLBackup: when they start, how they end, and what an
instance's deletion does to them (the pure decisions)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from reconciler.actions import (
    JobKind,
    MarkReady,
    PatchBackupStatus,
    RecordJob,
    Stall,
    StartBackup,
    Wait,
)
from reconciler.backup_objects import RequestedBackup, SourceBackup, requested_job_name
from reconciler.conditions import Reason
from reconciler.lifecycle import decide_lifecycle
from reconciler.live import claim_state, job_state
from reconciler.manifests import restore_job
from reconciler.observation import Live
from reconciler.policy import desired_for
from reconciler.requested_backups import requests_without_instance
from reconciler.status import (
    InstanceStatus,
    JobRecord,
    RestoreSource,
)
from reconciler.teardown import decide_teardown
from reconciler.vocabulary import ANNOTATION_BACKUP, Stage
from tests.unit.builders import (
    BACKUP_CLAIM,
    BACKUP_PV,
    DATA_CLAIM,
    FRESH_VOLUMES,
    NAME,
    RESTORE_JOB_1,
    RESTORED,
    STAMP,
    UID,
    claim,
    instance,
    job,
    job_pod,
    live_of,
    mysql_object,
    observe,
    pod,
    serving_live,
    synced_status,
)
from tests.unit.builders import (
    NOW as NOW_TIME,
)

pytestmark = pytest.mark.unit

VOLUMES = FRESH_VOLUMES
SERVING = synced_status(
    InstanceStatus(volumes=VOLUMES, restore=RESTORED, served=True), Stage.SERVING
)
REQUEST_UID = "7a1b2c3d-0000-1111-2222-333344445555"
JOB = requested_job_name(NAME, REQUEST_UID)
LINE = f"dump=dump-0000000004.sql.gz sequence=4 size=77 sha256={'c' * 64} server_version=10.11"


def request(
    name: str = "now",
    created: str = "2026-01-01T11:00:00Z",
    phase: str | None = None,
    job_name: str | None = None,
    reason: str | None = None,
    uid: str = REQUEST_UID,
) -> RequestedBackup:
    return RequestedBackup(
        name=name,
        uid=uid,
        created=created,
        phase=phase,
        reason=reason,
        job=job_name,
        started_at="2026-01-01T11:30:00Z" if job_name else None,
        instance_uid=UID if job_name else None,
    )


def with_requests(
    live: Live,
    *requests: RequestedBackup,
    job_exists: bool = False,
    succeeded: bool = False,
    failed: str | None = None,
    exit_code: int | None = None,
    message: str | None = None,
) -> Live:
    """`live` with these requests; with `job_exists`, their Job (running, succeeded, or
    failed with a reason) and its pod (terminated with `exit_code` and `message`)."""
    found = None
    if job_exists:
        raw = job(
            JOB, succeeded=succeeded, failed=("BackoffLimitExceeded", failed) if failed else None
        )
        found = job_state(raw, [job_pod(JOB, exit_code=exit_code, message=message)])
    return replace(live, requested_backups=requests, requested_backup_job=found)


def living(live: Live, status: InstanceStatus = SERVING) -> Any:
    return decide_lifecycle(observe(mysql_object(status=status), live=live))


def deleting(live: Live, status: InstanceStatus = SERVING) -> Any:
    return decide_teardown(observe(mysql_object(deleting=True, status=status), live=live))


# -- starting ---------------------------------------------------------------------------------


def test_without_requests_a_ready_instance_is_just_ready() -> None:
    assert isinstance(living(serving_live()), MarkReady)


def test_a_request_starts_once_the_instance_is_ready() -> None:
    action = living(with_requests(serving_live(), request()))
    assert isinstance(action, StartBackup)
    assert action.name == "now"
    assert action.status["phase"] == "Running"
    assert action.status["trigger"] == "manual"
    assert action.status["job"] == JOB == f"{NAME}-manual-7a1b2c3d"
    assert action.status["startedAt"] == STAMP
    manifest = action.job
    assert manifest["metadata"]["name"] == JOB
    assert manifest["metadata"]["annotations"][ANNOTATION_BACKUP] == "now"
    assert manifest["spec"]["ttlSecondsAfterFinished"] > 0
    env = {
        item["name"]: item.get("value")
        for item in manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    # Clients keep working (no global lock), and rotation never removes the dump.
    assert (env["BACKUP_FINAL"], env["BACKUP_TRIGGER"]) == ("false", "manual")
    # The password reaches the Job only as a reference to the Secret.
    assert env["MYSQL_PWD"] is None


def test_the_oldest_request_goes_first_and_one_at_a_time() -> None:
    newer = request("b-newer", created="2026-01-01T11:50:00Z", uid="2" * 8)
    older = request("z-older", created="2026-01-01T11:10:00Z", uid="1" * 8)
    action = living(with_requests(serving_live(), newer, older))
    assert isinstance(action, StartBackup)
    assert action.name == "z-older"
    running = request("z-older", phase="Running", job_name=JOB)
    live = with_requests(serving_live(), newer, running, job_exists=True)
    # The running one is left to its Job; the newer one waits, and the instance is Ready.
    assert isinstance(living(live), MarkReady)


def test_a_request_waits_while_the_instance_is_not_ready() -> None:
    not_ready = serving_live(server_pod=pod(ready=False))
    action = living(with_requests(not_ready, request()))
    assert isinstance(action, PatchBackupStatus)
    assert action.status["phase"] == "Pending"
    condition = action.status["conditions"][0]
    assert condition["reason"] == Reason.INSTANCE_NOT_READY.value
    assert NAME in condition["message"]
    # Said once: the next pass goes on with the instance.
    said = request(phase="Pending", reason=Reason.INSTANCE_NOT_READY.value)
    assert not isinstance(living(with_requests(not_ready, said)), PatchBackupStatus)


# -- ending ----------------------------------------------------------------------------------


def test_a_finished_job_is_recorded_with_its_dump() -> None:
    running = request(phase="Running", job_name=JOB)
    live = with_requests(
        serving_live(), running, job_exists=True, succeeded=True, exit_code=0, message=LINE
    )
    action = living(live)
    assert isinstance(action, PatchBackupStatus)
    status = action.status
    assert status["phase"] == "Succeeded"
    assert status["location"] == f"pvc://{BACKUP_CLAIM}/dump-0000000004.sql.gz"
    assert (status["sizeBytes"], status["sha256"]) == (77, "c" * 64)
    assert status["startedAt"] == "2026-01-01T11:30:00Z"
    assert status["completedAt"] == STAMP


def test_a_failed_job_fails_the_request_and_says_how_to_try_again() -> None:
    running = request(phase="Running", job_name=JOB)
    live = with_requests(
        serving_live(),
        running,
        job_exists=True,
        failed="the pod failed",
        exit_code=1,
        message="dump failed",
    )
    action = living(live)
    assert isinstance(action, PatchBackupStatus)
    assert action.status["phase"] == "Failed"
    message = action.status["conditions"][0]["message"]
    assert "dump failed" in message
    assert "create a new MySQLBackup" in message


def test_a_job_named_but_never_created_is_created_under_the_same_name() -> None:
    running = request(phase="Running", job_name=JOB)
    action = living(with_requests(serving_live(), running))
    assert isinstance(action, StartBackup)
    assert action.job["metadata"]["name"] == JOB
    assert action.status["startedAt"] == "2026-01-01T11:30:00Z"


# -- deletion --------------------------------------------------------------------------------


def test_the_final_backup_waits_for_a_running_request() -> None:
    running = request(phase="Running", job_name=JOB)
    action = deleting(with_requests(serving_live(), running, job_exists=True))
    assert isinstance(action, Wait)
    assert action.reason is Reason.BACKING_UP
    assert JOB in action.message


def test_a_request_that_ends_during_the_deletion_is_recorded_first() -> None:
    running = request(phase="Running", job_name=JOB)
    live = with_requests(
        serving_live(), running, job_exists=True, succeeded=True, exit_code=0, message=LINE
    )
    action = deleting(live)
    assert isinstance(action, PatchBackupStatus)
    assert action.status["phase"] == "Succeeded"


def test_requests_that_never_started_fail_when_the_instance_goes() -> None:
    action = deleting(with_requests(serving_live(), request()))
    assert isinstance(action, PatchBackupStatus)
    assert action.status["phase"] == "Failed"
    assert "deleted before this backup ran" in action.status["message"]
    assert action.status["completedAt"] == STAMP
    # A started one whose Job never came cannot run either.
    orphaned = request(phase="Running", job_name=JOB)
    action = deleting(with_requests(serving_live(), orphaned))
    assert isinstance(action, PatchBackupStatus)
    assert action.status["phase"] == "Failed"


def test_with_no_requests_left_the_teardown_goes_on() -> None:
    done = request(phase="Succeeded", job_name=JOB)
    action = deleting(with_requests(serving_live(), done))
    # The final backup's first step: recording its attempt.
    assert isinstance(action, RecordJob)
    assert action.kind is JobKind.FINAL_BACKUP


# -- no such instance ------------------------------------------------------------------------


def test_a_request_for_a_missing_instance_says_so_naming_the_field_once() -> None:
    (patch,) = requests_without_instance("shop", "typo", (request(),), NOW_TIME)
    assert patch.status["phase"] == "Pending"
    condition = patch.status["conditions"][0]
    assert condition["reason"] == Reason.INSTANCE_NOT_FOUND.value
    assert condition["message"].startswith("spec.instance: there is no MySQL 'typo'")
    said = request(phase="Pending", reason=Reason.INSTANCE_NOT_FOUND.value)
    assert requests_without_instance("shop", "typo", (said,), NOW_TIME) == ()


# -- restoring a named backup (spec.restore_from) ------------------------------------------

SOURCE_CLAIM = "old-db-backup"
SOURCE_LOCATION = f"pvc://{SOURCE_CLAIM}/dump-0000000007.sql.gz"


def new_instance(live: Live, status: InstanceStatus | None = None) -> Any:
    """A new instance whose volumes are planned, asking for the backup `before-upgrade`."""
    status = status or InstanceStatus(volumes=VOLUMES)
    obj = mysql_object(status=status, restore_from={"backup": "before-upgrade"})
    return decide_lifecycle(observe(obj, live=live))


def source(phase: str | None = "Succeeded", location: str | None = SOURCE_LOCATION) -> Any:
    return SourceBackup("before-upgrade", phase, location)


def test_the_named_backup_is_resolved_once_into_the_restore_record() -> None:
    live = replace(
        serving_live(),
        restore_from=source(),
        restore_from_claim=claim_state(claim(SOURCE_CLAIM, volume="pv-old")),
    )
    action = new_instance(live)
    assert isinstance(action, RecordJob)
    assert action.kind is JobKind.RESTORE
    assert action.record.source == RestoreSource(
        "before-upgrade", SOURCE_CLAIM, "dump-0000000007.sql.gz"
    )
    assert action.record.gates_readiness


def test_the_restore_job_reads_the_named_dump_from_its_claim_read_only() -> None:
    named = RestoreSource("before-upgrade", SOURCE_CLAIM, "dump-0000000007.sql.gz")
    record = JobRecord(attempt=1, job=RESTORE_JOB_1, gates_readiness=True, source=named)
    desired = desired_for(
        instance(), Stage.SERVING, InstanceStatus(volumes=VOLUMES, restore=record)
    )
    job_manifest = restore_job(desired)
    assert job_manifest is not None
    pod_spec = job_manifest["spec"]["template"]["spec"]
    env = {item["name"]: item.get("value") for item in pod_spec["containers"][0]["env"]}
    assert env["RESTORE_SOURCE"] == "dump-0000000007.sql.gz"
    mount = next(m for m in pod_spec["containers"][0]["volumeMounts"] if m["name"] == "backup")
    assert mount["readOnly"] is True
    volume = next(v for v in pod_spec["volumes"] if v["name"] == "backup")
    assert volume["persistentVolumeClaim"] == {"claimName": SOURCE_CLAIM, "readOnly": True}
    # Without restore_from, the Job reads the newest dump on the instance's own claim.
    plain = restore_job(
        desired_for(
            instance(),
            Stage.SERVING,
            InstanceStatus(volumes=VOLUMES, restore=replace(record, source=None)),
        )
    )
    assert plain is not None
    plain_spec = plain["spec"]["template"]["spec"]
    assert "RESTORE_SOURCE" not in {e["name"] for e in plain_spec["containers"][0]["env"]}
    plain_volume = next(v for v in plain_spec["volumes"] if v["name"] == "backup")
    assert plain_volume["persistentVolumeClaim"] == {"claimName": BACKUP_CLAIM}


@pytest.mark.parametrize(
    ("found", "claim_found", "expected"),
    [
        (None, None, "does not exist"),
        (source(phase="Failed"), None, "is Failed: it has no dump"),
        (source(location="s3://bucket/key"), None, "is in S3 bucket bucket: set spec.backup.s3"),
        (source(location="nfs://server/dump"), None, "only dumps on a backup claim or in S3"),
        (source(), None, f"claim {SOURCE_CLAIM}, which is missing"),
    ],
)
def test_a_named_backup_that_cannot_be_restored_stops_the_instance_naming_the_field(
    found: Any, claim_found: Any, expected: str
) -> None:
    live = replace(serving_live(), restore_from=found, restore_from_claim=claim_found)
    action = new_instance(live)
    assert isinstance(action, Stall)
    assert action.reason is Reason.RESTORE_SOURCE_MISSING
    assert action.message.startswith("spec.restore_from.backup: MySQLBackup 'before-upgrade'")
    assert expected in action.message


def test_a_named_backup_still_running_is_waited_for() -> None:
    action = new_instance(replace(serving_live(), restore_from=source(phase="Running")))
    assert isinstance(action, Wait)
    assert action.reason is Reason.RESTORING


def test_data_an_earlier_lifetime_left_is_never_overwritten_by_a_named_restore() -> None:
    # The data claim outlived an earlier lifetime (deletion_policy Retain): it holds data.
    live = live_of(data_claim=claim(), backup_claim=claim(BACKUP_CLAIM, volume=BACKUP_PV))
    obj = mysql_object(restore_from={"backup": "before-upgrade"})
    action = decide_lifecycle(observe(obj, live=live))
    assert isinstance(action, Stall)
    assert action.reason is Reason.RESTORE_TARGET_NOT_EMPTY
    assert action.message.startswith(f"spec.restore_from: claim {DATA_CLAIM}")
