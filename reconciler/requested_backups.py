"""Backups asked for with a MySQLBackup, by a person or by the schedule (schedules.py)
(pure): when each starts, how its end is recorded, and what becomes of them when their
instance goes.

- One at a time per instance, the oldest request first, and only while the instance is
  Ready: a backup of a server that is still restoring would be a dump of half a database.
  Until then the request is `Pending`, and says what it waits for.
- The Job is a plain Job, not part of the instance's stack: a backup is an event, not a
  state to converge on, so it costs no engine run. Its name comes from the request's uid,
  and the status names the Job before the Job is created, so a reconciler killed between
  the two creates the same Job again, never a second one.
- The Job dumps with `--single-transaction` while clients keep working, and its dump is
  marked with its trigger: a person's (`manual`) is never rotated away; scheduled ones
  (`schedule`) keep `backup.keep` (backup.sh), and their records follow (executor).
- An instance being deleted finishes the request under way before its final backup
  starts (two Jobs writing the same directory would race for a sequence number); the
  requests that had not started fail, saying why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from reconciler.actions import Action, PatchBackupStatus, StartBackup, Wait
from reconciler.backup_objects import (
    RequestedBackup,
    Trigger,
    abandoned_status,
    backup_status,
    requested_job_name,
    waiting_status,
)
from reconciler.conditions import Reason, timestamp
from reconciler.manifests import requested_backup_job
from reconciler.observation import Observation
from reconciler.passwords import declared_password
from reconciler.policy import desired_for, s3_problem
from reconciler.spec import Instance
from reconciler.status import JobPhase, JobRecord
from reconciler.vocabulary import Stage

WAITING_FOR_READY: Final = Reason.INSTANCE_NOT_READY
JOB_POLL_S: Final = 5.0


def requested_backup_step(
    observation: Observation, instance: Instance, *, ready: bool
) -> Action | None:
    """The next write for the instance's requested backups; None when there is none.
    `ready`: the instance is in sync and serving, so a request may start."""
    requests = sorted(observation.live.requested_backups, key=lambda r: (r.created, r.name))
    running = next((r for r in requests if r.started), None)
    if running is not None:
        return _running_step(observation, instance, running, ready=ready)
    pending = [r for r in requests if not r.finished]
    if not pending:
        return None
    first = pending[0]
    if ready:
        return _start(observation, instance, first)
    for request in pending:
        if request.reason != WAITING_FOR_READY.value:
            return PatchBackupStatus(
                request.name,
                waiting_status(
                    WAITING_FOR_READY,
                    f"waiting for MySQL {instance.name} to be Ready; the backup starts then",
                    observation.now,
                    request.trigger,
                ),
            )
    return None


def _start(
    observation: Observation,
    instance: Instance,
    request: RequestedBackup,
    job: str | None = None,
    started_at: str | None = None,
) -> Action:
    """Names the request's Job in its status and creates it: a new start, or (`job` and
    `started_at` given) the same start again when the Job is missing."""
    if instance.spec.backup.s3 is not None:
        problem = s3_problem(instance, observation)
        if problem is not None:
            # Nothing was started: the request fails at once, naming the field to fix.
            return PatchBackupStatus(
                request.name,
                abandoned_status(
                    problem, observation.now, request.trigger, Reason.BACKUP_STORE_UNUSABLE
                ),
            )
    job = job or requested_job_name(instance.name, request.uid, request.trigger)
    started_at = started_at or timestamp(observation.now)
    record = JobRecord(attempt=1, job=job)
    status = observation.parsed_object.status
    # The Job connects with the password the server has, from the operator's Secret.
    password = declared_password(
        instance, status.password, observation.passwords, observation.fingerprint_key
    )
    desired = desired_for(instance, Stage.SERVING, status, password)
    return StartBackup(
        request.name,
        _status(instance, request, started_at, record, observation.now),
        requested_backup_job(
            desired, job, request.name, request.trigger.value, observation.transfer_image
        ),
    )


def _running_step(
    observation: Observation, instance: Instance, request: RequestedBackup, *, ready: bool
) -> Action | None:
    job = observation.live.requested_backup_job
    started_at = request.started_at or timestamp(observation.now)
    assert request.job is not None
    if job is None:
        # Named in the status, then the reconciler stopped before creating it (or the Job
        # was deleted by hand): create it again, under the same name.
        return _start(observation, instance, request, request.job, started_at) if ready else None
    if not (job.succeeded or job.failed):
        return None  # the Job's own events wake the instance when it ends
    record = JobRecord(
        attempt=1,
        job=request.job,
        phase=JobPhase.SUCCEEDED if job.succeeded else JobPhase.FAILED,
        message=job.message,
    )
    retention = (
        instance.spec.backup.keep
        if request.trigger is Trigger.SCHEDULE and record.phase is JobPhase.SUCCEEDED
        else None
    )
    return PatchBackupStatus(
        request.name, _status(instance, request, started_at, record, observation.now), retention
    )


def _status(
    instance: Instance, request: RequestedBackup, started_at: str, record: JobRecord, now: datetime
) -> dict[str, Any]:
    """The status of a request whose Job was started."""
    return backup_status(request.trigger, instance.name, instance.uid, started_at, record, now)


def requested_backups_on_delete(observation: Observation, instance: Instance) -> Action | None:
    """Before the final backup: the request under way finishes and is recorded; the others
    can never start and fail."""
    requests = observation.live.requested_backups
    running = next((r for r in requests if r.started), None)
    if running is not None:
        step = _running_step(observation, instance, running, ready=False)
        if step is not None:
            return step
        if observation.live.requested_backup_job is not None:
            return Wait(
                Reason.BACKING_UP,
                f"the requested backup {running.name} (Job {running.job}) is running; the "
                "final backup starts when it ends",
                JOB_POLL_S,
            )
        return _abandon(running, instance, observation.now)
    for request in requests:
        if not request.finished:
            return _abandon(request, instance, observation.now)
    return None


def requests_without_instance(
    namespace: str, name: str, requests: tuple[RequestedBackup, ...], now: datetime
) -> tuple[PatchBackupStatus, ...]:
    """Requests that name a MySQL object that does not exist say so, once: `spec.instance`
    may be a typo, or the instance may be created later (the request then starts)."""
    message = (
        f"spec.instance: there is no MySQL {name!r} in namespace {namespace}; the backup "
        "starts once it exists and is Ready"
    )
    return tuple(
        PatchBackupStatus(
            request.name,
            waiting_status(Reason.INSTANCE_NOT_FOUND, message, now, request.trigger),
        )
        for request in requests
        if not request.finished and request.reason != Reason.INSTANCE_NOT_FOUND.value
    )


def _abandon(request: RequestedBackup, instance: Instance, now: datetime) -> Action:
    return PatchBackupStatus(
        request.name,
        abandoned_status(
            f"MySQL {instance.name} was deleted before this backup ran; its final backup "
            "is recorded as a MySQLBackup with trigger delete",
            now,
            request.trigger,
        ),
    )
