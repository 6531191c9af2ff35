"""The next status from the status, the action and its result: what the executor writes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Final

import pytest

from reconciler.actions import JobKind, Notice
from reconciler.conditions import ConditionType, Reason, Status, find
from reconciler.runs import FailureKind, RunResult, StackError
from reconciler.status import InstanceStatus, JobPhase, JobRecord
from reconciler.transitions import (
    Moment,
    deployed,
    destroyed,
    failed,
    job_recorded,
    new_stall,
    ready,
    reconciling,
    stalled,
)
from reconciler.vocabulary import Stage
from tests.unit.builders import NAME, NAMESPACE, NOW, TOOLCHAIN, desired

pytestmark = pytest.mark.unit

MOMENT: Final = Moment(generation=2, now=NOW)
LATER: Final = Moment(generation=2, now=NOW + timedelta(minutes=1))
RUN: Final = RunResult("u-7", "update", "succeeded", {"create": 3, "same": 2})


def condition(status: InstanceStatus, kind: ConditionType) -> tuple[Status, Reason, str]:
    found = find(status.conditions, kind)
    assert found is not None, kind
    return found.status, found.reason, found.message


def test_reconciling_sets_the_generation_and_clears_a_stall() -> None:
    before = stalled(InstanceStatus(), Reason.SECRET_MISSING, "no Secret", MOMENT)
    after = reconciling(before, Reason.PROCESSING, "updating", MOMENT)
    assert after.observed_generation == 2
    assert condition(after, ConditionType.RECONCILING) == (
        Status.TRUE,
        Reason.PROCESSING,
        "updating",
    )
    assert condition(after, ConditionType.READY)[0] is Status.FALSE
    assert find(after.conditions, ConditionType.STALLED) is None


def test_ready_clears_both_progress_conditions() -> None:
    after = ready(reconciling(InstanceStatus(), Reason.PROCESSING, "x", MOMENT), "up", MOMENT)
    assert condition(after, ConditionType.READY) == (Status.TRUE, Reason.UP_TO_DATE, "up")
    assert find(after.conditions, ConditionType.RECONCILING) is None
    assert find(after.conditions, ConditionType.STALLED) is None


def test_a_stall_is_announced_once_per_problem() -> None:
    first = stalled(InstanceStatus(), Reason.SECRET_MISSING, "no Secret s", MOMENT)
    assert new_stall(InstanceStatus(), first) == Notice(
        "SecretMissing", "no Secret s", warning=True
    )
    # The same problem on a resync, even later: quiet.
    assert new_stall(first, stalled(first, Reason.SECRET_MISSING, "no Secret s", LATER)) is None
    # Another message or reason is a new problem.
    other = stalled(first, Reason.SECRET_MISSING, "no key k in Secret s", MOMENT)
    assert new_stall(first, other) is not None
    # It comes back after it was cleared: announced again.
    cleared = reconciling(first, Reason.PROCESSING, "x", MOMENT)
    assert new_stall(cleared, first) is not None
    assert new_stall(first, cleared) is None


def test_a_job_record_sets_its_own_condition() -> None:
    running = JobRecord(attempt=2, job="db-restore-1-2")
    after = job_recorded(InstanceStatus(), JobKind.RESTORE, running, MOMENT)
    assert after.restore == running
    assert after.final_backup is None
    assert condition(after, ConditionType.RESTORED) == (
        Status.UNKNOWN,
        Reason.RESTORE_RUNNING,
        "restore Job db-restore-1-2, attempt 2",
    )
    done = replace(running, phase=JobPhase.SUCCEEDED, message="dump=d1")
    backed_up = job_recorded(after, JobKind.FINAL_BACKUP, done, MOMENT)
    assert backed_up.final_backup == done
    assert backed_up.restore == running
    assert condition(backed_up, ConditionType.BACKUP_READY) == (
        Status.TRUE,
        Reason.BACKUP_SUCCEEDED,
        "final backup Job db-restore-1-2: dump=d1",
    )


def test_a_refused_job_keeps_the_reason_it_was_refused_for() -> None:
    refused = JobRecord(
        job="j",
        phase=JobPhase.REFUSED,
        message="no dump",
        reason=Reason.RESTORE_TARGET_NOT_EMPTY.value,
    )
    after = job_recorded(InstanceStatus(), JobKind.RESTORE, refused, MOMENT)
    assert condition(after, ConditionType.RESTORED)[:2] == (
        Status.FALSE,
        Reason.RESTORE_TARGET_NOT_EMPTY,
    )
    failed_record = replace(refused, phase=JobPhase.FAILED)
    after = job_recorded(InstanceStatus(), JobKind.RESTORE, failed_record, MOMENT)
    assert condition(after, ConditionType.RESTORED)[:2] == (Status.FALSE, Reason.RESTORE_FAILED)


RESTORED: Final = JobRecord(attempt=1, job="j", phase=JobPhase.SUCCEEDED)


@pytest.mark.parametrize(
    ("stage", "restore", "served"),
    [
        (Stage.RESTORING, None, False),
        (Stage.SERVING, RESTORED, True),
        # Gated, the first `up` declares the serving stage before the restore has ended.
        (Stage.SERVING, JobRecord(attempt=1, job="j", gates_readiness=True), False),
    ],
)
def test_a_deploy_records_what_was_applied(
    stage: Stage, restore: JobRecord | None, served: bool
) -> None:
    after = deployed(
        InstanceStatus(restore=restore),
        desired(stage),
        "fp",
        RUN,
        toolchain=TOOLCHAIN,
        cluster_domain="c.local",
    )
    assert after.inputs_fingerprint == "fp"
    assert after.toolchain == TOOLCHAIN
    assert after.stack == f"{NAMESPACE}.{NAME}"
    assert after.endpoint is not None
    assert after.endpoint.host == f"{NAME}.{NAMESPACE}.svc.c.local"
    assert after.last_update is not None
    assert (after.last_update.id, after.last_update.stage) == ("u-7", stage.value)
    assert after.served is served


@pytest.mark.parametrize(("gated", "served"), [(True, True), (False, False)])
def test_a_gated_restore_that_succeeds_opens_the_service(gated: bool, served: bool) -> None:
    record = replace(RESTORED, gates_readiness=gated)
    after = job_recorded(InstanceStatus(), JobKind.RESTORE, record, MOMENT)
    assert after.served is served


def test_a_gated_restore_that_fails_opens_nothing() -> None:
    record = JobRecord(attempt=1, job="j", phase=JobPhase.FAILED, gates_readiness=True)
    after = job_recorded(InstanceStatus(), JobKind.RESTORE, record, MOMENT)
    assert not after.served


def test_served_stays_once_set() -> None:
    served = InstanceStatus(served=True)
    after = deployed(
        served, desired(Stage.FINAL_BACKUP), "fp", RUN, toolchain=TOOLCHAIN, cluster_domain="c"
    )
    assert after.served


def test_a_destroy_records_its_update() -> None:
    after = destroyed(InstanceStatus(inputs_fingerprint="fp"), RUN)
    assert after.last_update is not None
    assert after.last_update.stage == "destroy"
    assert after.inputs_fingerprint == "fp"


@pytest.mark.parametrize(
    ("kind", "condition_type", "reason"),
    [
        (FailureKind.SPEC, ConditionType.STALLED, Reason.SPEC_INVALID),
        (FailureKind.FAILED, ConditionType.STALLED, Reason.UPDATE_FAILED),
        (FailureKind.TRANSIENT, ConditionType.RECONCILING, Reason.RETRY),
        (FailureKind.STUCK, ConditionType.RECONCILING, Reason.RETRY),
    ],
)
def test_a_failure_is_stalled_only_when_retrying_alone_does_not_fix_it(
    kind: FailureKind, condition_type: ConditionType, reason: Reason
) -> None:
    after = failed(InstanceStatus(), "deploy", StackError(kind, "boom"), MOMENT)
    status, found_reason, message = condition(after, condition_type)
    assert (status, found_reason) == (Status.TRUE, reason)
    assert "boom" in message
    assert condition(after, ConditionType.READY)[:2] == (Status.FALSE, reason)
