"""The next status of an instance (pure): from the status it has, the action being
applied, and what the engine run or Job made of it. The executor writes what these return
and assembles no status itself."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from reconciler.actions import JobKind, Notice
from reconciler.conditions import (
    Condition,
    ConditionType,
    Reason,
    Status,
    find,
    mark_ready,
    mark_reconciling,
    mark_stalled,
    set_condition,
)
from reconciler.desired import Desired
from reconciler.names import names_for
from reconciler.runs import FailureKind, RunResult, StackError, stack_name
from reconciler.status import (
    Endpoint,
    InstanceStatus,
    JobPhase,
    JobRecord,
    PasswordRecord,
    ToolchainVersions,
    UpdateRecord,
    Volumes,
)
from reconciler.vocabulary import MYSQL_PORT, Stage


@dataclass(frozen=True)
class Moment:
    """For which generation, and when, the conditions are set."""

    generation: int
    now: datetime


def _conditions(
    status: InstanceStatus, conditions: tuple[Condition, ...], moment: Moment
) -> InstanceStatus:
    return replace(status, conditions=conditions, observed_generation=moment.generation)


def reconciling(
    status: InstanceStatus, reason: Reason, message: str, moment: Moment
) -> InstanceStatus:
    marked = mark_reconciling(
        status.conditions, reason, message, generation=moment.generation, now=moment.now
    )
    return _conditions(status, marked, moment)


def stalled(status: InstanceStatus, reason: Reason, message: str, moment: Moment) -> InstanceStatus:
    marked = mark_stalled(
        status.conditions, reason, message, generation=moment.generation, now=moment.now
    )
    return _conditions(status, marked, moment)


def schedule_recorded(status: InstanceStatus, fire_time: str) -> InstanceStatus:
    return replace(status, last_schedule_time=fire_time)


def ready(
    status: InstanceStatus,
    message: str,
    moment: Moment,
    drift: tuple[Reason, str] | None = None,
) -> InstanceStatus:
    marked = mark_ready(status.conditions, message, generation=moment.generation, now=moment.now)
    if drift is not None:
        reason, said = drift
        state = Status.FALSE if reason is Reason.NO_DRIFT else Status.TRUE
        marked = set_condition(
            marked,
            ConditionType.DRIFT_DETECTED,
            state,
            reason,
            said,
            generation=moment.generation,
            now=moment.now,
        )
        if reason is Reason.NO_DRIFT:
            status = replace(status, drift_healed=None)
    return _conditions(status, marked, moment)


def drift_healed(status: InstanceStatus, healed: str) -> InstanceStatus:
    return replace(status, drift_healed=healed)


def new_stall(before: InstanceStatus, after: InstanceStatus) -> Notice | None:
    """The Warning Event for a problem that is new in `after`: one per problem, not one
    per resync."""
    now = find(after.conditions, ConditionType.STALLED)
    if now is None or now.status is not Status.TRUE:
        return None
    then = find(before.conditions, ConditionType.STALLED)
    if (
        then is not None
        and then.status is Status.TRUE
        and then.reason is now.reason
        and then.message == now.message
    ):
        return None
    return Notice(now.reason.value, now.message, warning=True)


def volumes_recorded(status: InstanceStatus, volumes: Volumes) -> InstanceStatus:
    return replace(status, volumes=volumes)


def password_recorded(status: InstanceStatus, record: PasswordRecord) -> InstanceStatus:
    return replace(status, password=record)


def job_recorded(
    status: InstanceStatus, kind: JobKind, record: JobRecord, moment: Moment
) -> InstanceStatus:
    if kind is JobKind.RESTORE:
        # Gated, the client Service has existed since the first `up`; the restore's end is
        # what lets it route to the server.
        opens = record.gates_readiness and record.phase is JobPhase.SUCCEEDED
        status = replace(status, restore=record, served=status.served or opens)
        condition = ConditionType.RESTORED
    else:
        status, condition = replace(status, final_backup=record), ConditionType.BACKUP_READY
    state, reason, message = job_condition(kind, record)
    marked = set_condition(
        status.conditions,
        condition,
        state,
        reason,
        message,
        generation=moment.generation,
        now=moment.now,
    )
    return _conditions(status, marked, moment)


def job_condition(kind: JobKind, record: JobRecord) -> tuple[Status, Reason, str]:
    noun = "restore" if kind is JobKind.RESTORE else "final backup"
    running, succeeded, failed_reason = (
        (Reason.RESTORE_RUNNING, Reason.RESTORE_SUCCEEDED, Reason.RESTORE_FAILED)
        if kind is JobKind.RESTORE
        else (Reason.BACKUP_RUNNING, Reason.BACKUP_SUCCEEDED, Reason.BACKUP_FAILED)
    )
    if record.phase is JobPhase.SUCCEEDED:
        return Status.TRUE, succeeded, f"{noun} Job {record.job}: {record.message}"
    if record.phase is JobPhase.RUNNING:
        return Status.UNKNOWN, running, f"{noun} Job {record.job}, attempt {record.attempt}"
    return (
        Status.FALSE,
        Reason(record.reason)
        if record.phase is JobPhase.REFUSED and record.reason
        else failed_reason,
        f"{noun} attempt {record.attempt} (Job {record.job}) failed: {record.message}",
    )


def deployed(
    status: InstanceStatus,
    desired: Desired,
    fingerprint: str,
    run: RunResult,
    *,
    toolchain: ToolchainVersions,
    cluster_domain: str,
) -> InstanceStatus:
    """After an `up` of `desired`: what was applied, by which toolchain, and where
    clients connect."""
    instance = desired.instance
    service = names_for(instance).service
    return replace(
        status,
        inputs_fingerprint=fingerprint,
        toolchain=toolchain,
        last_update=update_record(run, desired.stage.value),
        endpoint=Endpoint(f"{service}.{instance.namespace}.svc.{cluster_domain}", MYSQL_PORT),
        stack=stack_name(instance.namespace, instance.name),
        served=status.served or (desired.stage is Stage.SERVING and _restored(status)),
    )


def _restored(status: InstanceStatus) -> bool:
    return status.restore is not None and status.restore.phase is JobPhase.SUCCEEDED


def destroyed(status: InstanceStatus, run: RunResult) -> InstanceStatus:
    return replace(status, last_update=update_record(run, "destroy"))


def failed(status: InstanceStatus, step: str, error: StackError, moment: Moment) -> InstanceStatus:
    """After a stack operation failed: Stalled when only a change fixes it or a resource
    failed (retried with backoff all the same), Reconciling when retrying is all it takes."""
    if error.kind is FailureKind.SPEC:
        return stalled(status, Reason.SPEC_INVALID, error.message, moment)
    if error.kind is FailureKind.FAILED:
        return stalled(
            status,
            Reason.UPDATE_FAILED,
            f"{step} failed; retrying with backoff: {error.message}",
            moment,
        )
    return reconciling(
        status, Reason.RETRY, f"{step}: {error.kind.value} error: {error.message}", moment
    )


def update_record(run: RunResult, stage: str) -> UpdateRecord:
    return UpdateRecord(
        id=run.update_id,
        kind=run.kind,
        stage=stage,
        result=run.result,
        resource_changes=run.resource_changes,
    )
