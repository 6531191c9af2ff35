"""Carries out reconciles: observe, `decide`, apply the one action, and again, until the
decision is to wait, to stall, or that all is done; then report through status, Events,
logs and metrics.

It holds no Kubernetes or Pulumi client of its own: every effect goes through
`kube.Gateway` or `driver.Driver`. The process may die between any two steps; each step
is safe to repeat, and the object's finalizer is the last thing removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from reconciler import transitions
from reconciler.actions import (
    Action,
    AddFinalizer,
    Deploy,
    Destroy,
    Forget,
    ForgetStack,
    MarkReady,
    Notice,
    PatchBackupStatus,
    PatchVolumes,
    RecordJob,
    RecordPassword,
    RecordVolumes,
    ReleaseClaim,
    RemoveFinalizer,
    ScheduleBackup,
    Stall,
    StartBackup,
    StartRotation,
    Wait,
    WriteBackupObject,
)
from reconciler.backup_objects import Trigger, requested_backup, scheduled_records_to_prune
from reconciler.conditions import ConditionType, Reason, Status, find
from reconciler.drift import signature
from reconciler.driver import Driver
from reconciler.engine_events import RunTimings
from reconciler.gather import live_objects, observe
from reconciler.history import ChangeKind, kind_of, update_message
from reconciler.kube import ApiUnavailable, Conflict, Gateway
from reconciler.metrics import Metrics
from reconciler.observation import Observation
from reconciler.policy import generation_of, metadata_of
from reconciler.reconcile import decide
from reconciler.requested_backups import requests_without_instance
from reconciler.runs import FailureKind, StackError, describe_changes
from reconciler.selectors import Selector
from reconciler.status import InstanceStatus, ToolchainVersions
from reconciler.teardown import decide_orphans
from reconciler.transitions import Moment
from reconciler.vocabulary import CLAIM_FINALIZER, FINALIZER, LABEL_INSTANCE, LABEL_TRIGGER
from reconciler.volumes import VolumePatch

log = logging.getLogger(__name__)

Key = tuple[str, str]
# Each pass applies one action; a new instance needs about eight to reach its first wait.
MAX_PASSES: Final = 16


class Outcome(StrEnum):
    DONE = "done"  # converged (or nothing to do): forget the backoff
    WAIT = "wait"  # something is under way: look again after `requeue_after_s`
    RETRY = "retry"  # try again after a backoff delay
    STALLED = "stalled"  # wait for a change from outside (the next event or resync)
    GONE = "gone"  # the object no longer exists


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    action: str
    error_kind: str | None = None
    error: str | None = None  # what failed, for the log (the status and Events have it too)
    engine_run: RunTimings | None = None  # the last engine run this reconcile made
    engine_runs: int = 0
    requeue_after_s: float | None = None
    reason: str | None = None


class Executor:
    def __init__(
        self,
        gateway: Gateway,
        driver: Driver,
        toolchain: ToolchainVersions,
        metrics: Metrics,
        *,
        cluster_domain: str,
        fingerprint_key: bytes,
        selector: Selector | None = None,
        host_path_root: str | None = None,
        transfer_image: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        requested_backups: Callable[[Key], tuple[str, ...]] = lambda _key: (),
    ) -> None:
        self.gateway = gateway
        self.driver = driver
        self.toolchain = toolchain
        self.metrics = metrics
        self.cluster_domain = cluster_domain
        self.fingerprint_key = fingerprint_key
        self.selector = selector or Selector()  # None: every object
        self.host_path_root = host_path_root
        self.transfer_image = transfer_image
        self.now = now
        self.requested_backups = requested_backups

    def reconcile(self, key: Key) -> Result:
        started = time.monotonic()
        try:
            result = self._reconcile(key)
        except (ApiUnavailable, Conflict) as error:
            result = Result(Outcome.RETRY, "kubernetes", "kubernetes", str(error))
        duration = time.monotonic() - started
        self.metrics.reconciles.labels(action=result.action, outcome=result.outcome.value).inc()
        self.metrics.durations.labels(action=result.action).observe(duration)
        if result.error_kind is not None:
            self.metrics.errors.labels(kind=result.error_kind).inc()
        quiet = (
            result.outcome in (Outcome.DONE, Outcome.WAIT, Outcome.STALLED)
            and result.engine_runs == 0
        )
        level = logging.DEBUG if quiet else logging.INFO
        fields = _fields(key, result.action, outcome=result.outcome.value, duration_s=duration)
        if result.reason is not None:
            fields["reason"] = result.reason
        if result.engine_run is not None:
            fields.update(
                engine_runs=result.engine_runs,
                engine_s=round(result.engine_run.engine_s, 3),
                resources_s=round(result.engine_run.resources_s, 3),
            )
        if result.error is not None:
            level = logging.WARNING
            fields.update(error_kind=result.error_kind, error=result.error)
        log.log(level, "reconciled", extra=fields)
        return result

    def _reconcile(self, key: Key) -> Result:
        runs = 0
        last_run: RunTimings | None = None
        for _ in range(MAX_PASSES):
            obj = self.gateway.get_mysql(*key)
            if obj is None:
                return self._orphans(key)
            if not self.selector.matches(metadata_of(obj).get("labels") or {}):
                # Woken through one of its objects, but another reconciler's to drive.
                return Result(Outcome.DONE, "not-selected")
            observation = observe(
                obj,
                self.gateway,
                self.driver,
                toolchain=self.toolchain,
                fingerprint_key=self.fingerprint_key,
                host_path_root=self.host_path_root,
                transfer_image=self.transfer_image,
                now=self.now(),
                requested_backups=self.requested_backups(key),
            )
            action = decide(observation)
            step = _Step(self, key, obj, observation)
            result = step.apply(action)
            if step.engine_run is not None:
                runs, last_run = runs + 1, step.engine_run
            if result is not None:
                # A reconcile that ran the engine and ended Ready was a deploy.
                name = "deploy" if runs and result.action == "ready" else result.action
                return replace(result, action=name, engine_run=last_run, engine_runs=runs)
        return Result(Outcome.RETRY, "passes", "loop", f"no decision after {MAX_PASSES} passes")

    # -- claims without an object -------------------------------------------------------------

    def _orphans(self, key: Key) -> Result:
        """The MySQL object is gone; its claims may still need their volumes kept."""
        self.metrics.observe_instance(key, None, None)
        namespace, name = key
        for _ in range(MAX_PASSES):
            action = decide_orphans(
                namespace, name, live_objects(self.gateway, namespace, name, None), self.now()
            )
            if action is None:
                self._requests_without_instance(key)
                return Result(Outcome.GONE, "gone")
            if isinstance(action, PatchVolumes):
                _patch_volumes(self.gateway, action.patches)
            elif isinstance(action, ReleaseClaim):
                _release_claim(self.gateway, namespace, action)
            else:
                raise AssertionError(f"unexpected action for claims without an instance: {action}")
        return Result(Outcome.RETRY, "orphans", "loop", f"no decision after {MAX_PASSES} passes")

    def _requests_without_instance(self, key: Key) -> None:
        names = self.requested_backups(key)
        if not names:
            return
        namespace, name = key
        requests = tuple(
            requested_backup(raw)
            for backup in names
            if (raw := self.gateway.get_backup_object(namespace, backup)) is not None
        )
        for patch in requests_without_instance(namespace, name, requests, self.now()):
            self.gateway.patch_backup_status(namespace, patch.name, patch.status)


def _patch_volumes(gateway: Gateway, patches: tuple[VolumePatch, ...]) -> None:
    for patch in patches:
        gateway.patch_volume(patch.volume, patch.patch)
        log.info("volume patched", extra={"volume": patch.volume, "why": patch.why})


def _release_claim(gateway: Gateway, namespace: str, action: ReleaseClaim) -> None:
    """The volume first, then the claim: if the process dies in between, the claim is
    still there and the step is simply repeated."""
    if action.volume is not None:
        _patch_volumes(gateway, (action.volume,))
    raw = gateway.get_claim(namespace, action.claim.name)
    if raw is not None:
        gateway.set_claim_finalizer(raw, CLAIM_FINALIZER, present=False)
        if not action.keep_claim:
            gateway.delete_claim(namespace, action.claim.name)
    if action.delete_volume is not None:
        gateway.delete_volume(action.delete_volume)
    log.info(
        "claim released",
        extra={"claim": f"{namespace}/{action.claim.name}", "kept": action.keep_claim},
    )


class _Step:
    """Applies one action to one object; None means "decide again", a Result ends the
    reconcile. The next status comes from `transitions`; this class only carries out the
    effects and writes that status."""

    def __init__(
        self, executor: Executor, key: Key, obj: Mapping[str, Any], observation: Observation
    ) -> None:
        self.executor = executor
        self.gateway = executor.gateway
        self.driver = executor.driver
        self.key = key
        self.obj = obj
        self.generation = generation_of(obj)
        self.uid = str(metadata_of(obj).get("uid", ""))
        self.written = observation.parsed_object.status
        self.status = self.written
        self.engine_run: RunTimings | None = None

    def apply(self, action: Action) -> Result | None:
        status = self.status
        if isinstance(action, Forget):
            self.executor.metrics.observe_instance(self.key, None, None)
            return Result(Outcome.DONE, "forget")
        if isinstance(action, AddFinalizer):
            self.gateway.set_finalizer(self.obj, FINALIZER, present=True)
            return None
        if isinstance(action, Stall):
            # Logged when the problem is new; a resync of the same one is quiet.
            new = self._move(
                transitions.stalled(status, action.reason, action.message, self.moment)
            )
            return Result(
                Outcome.STALLED,
                "stall",
                "stalled" if new else None,
                action.message if new else None,
                reason=action.reason.value,
                requeue_after_s=action.requeue_after_s,
            )
        if isinstance(action, Wait):
            self._move(transitions.reconciling(status, action.reason, action.message, self.moment))
            return Result(
                Outcome.WAIT,
                "wait",
                requeue_after_s=action.requeue_after_s,
                reason=action.reason.value,
            )
        if isinstance(action, RecordVolumes):
            _patch_volumes(self.gateway, action.adopt)
            self._move(transitions.volumes_recorded(status, action.volumes))
            self._notice(action.notice)
            return None
        if isinstance(action, RecordJob):
            self._move(transitions.job_recorded(status, action.kind, action.record, self.moment))
            self._notice(action.notice)
            return None
        if isinstance(action, RecordPassword):
            if action.delete_secret is not None:
                # The Secret first: once status no longer names it, nothing would.
                self.gateway.delete_secret(self.key[0], action.delete_secret)
            self._move(transitions.password_recorded(status, action.record))
            self._notice(action.notice)
            return None
        if isinstance(action, StartRotation):
            # The Secret before the Job: the Job's pod reads it when it starts.
            self.gateway.create_secret(self.key[0], action.secret)
            self.gateway.create_job(self.key[0], action.job)
            log.info(
                "password rotation started",
                extra={**_fields(self.key, "password"), "job": action.job["metadata"]["name"]},
            )
            return None
        if isinstance(action, WriteBackupObject):
            backup = action.backup
            self.gateway.create_backup_object(self.key[0], backup.manifest)
            self._backup_status(backup.name, backup.status, "teardown")
            return None
        if isinstance(action, PatchBackupStatus):
            self._backup_status(action.name, action.status, "backup")
            if action.prune_scheduled is not None:
                self._prune_scheduled(action.prune_scheduled)
            return None
        if isinstance(action, StartBackup):
            # The status names the Job first: a run killed in between creates the same Job.
            self.gateway.patch_backup_status(self.key[0], action.name, action.status)
            self.gateway.create_job(self.key[0], action.job)
            self._notice(
                Notice(
                    "BackupStarted",
                    f"MySQLBackup {action.name}: Job {action.job['metadata']['name']}",
                )
            )
            return None
        if isinstance(action, Deploy):
            return self._deploy(action)
        if isinstance(action, PatchVolumes):
            _patch_volumes(self.gateway, action.patches)
            self._notice(action.notice)
            return None
        if isinstance(action, MarkReady):
            self._move(transitions.ready(status, action.message, self.moment, action.drift))
            self._notice(action.notice)
            return Result(Outcome.DONE, "ready", requeue_after_s=action.requeue_after_s)
        if isinstance(action, ScheduleBackup):
            if action.backup is not None:
                self.gateway.create_backup_object(self.key[0], action.backup.manifest)
            self._move(transitions.schedule_recorded(status, action.fire_time))
            self._notice(action.notice)
            return None
        if isinstance(action, Destroy):
            return self._destroy()
        if isinstance(action, ReleaseClaim):
            _release_claim(self.gateway, self.key[0], action)
            self._notice(action.notice)
            return None
        if isinstance(action, ForgetStack):
            return self._stack_call(lambda: self.driver.forget_stack(*self.key), "forget-stack")
        if isinstance(action, RemoveFinalizer):
            self._notice(action.notice)
            log.info(
                "finalizer removed",
                extra={**_fields(self.key, "teardown"), "why": action.notice.message},
            )
            self.gateway.set_finalizer(self.obj, FINALIZER, present=False)
            self.executor.metrics.observe_instance(self.key, None, None)
            return Result(Outcome.DONE, "teardown")
        raise AssertionError(f"unhandled action {action!r}")

    def _backup_status(self, backup: str, status: dict[str, Any], step: str) -> None:
        self.gateway.patch_backup_status(self.key[0], backup, status)
        log.info(
            "backup status",
            extra={**_fields(self.key, step), "backup": backup, "backup_phase": status["phase"]},
        )

    def _prune_scheduled(self, keep: int) -> None:
        """Retention after a scheduled backup succeeded: its Job's rotation removed the
        older scheduled dumps, and their records go the same way (the same rule)."""
        namespace, name = self.key
        selector = f"{LABEL_INSTANCE}={name},{LABEL_TRIGGER}={Trigger.SCHEDULE.value}"
        for backup in scheduled_records_to_prune(
            self.gateway.list_backup_objects(namespace, selector), keep
        ):
            self.gateway.delete_backup_object(namespace, backup)
            log.info(
                "backup record pruned", extra={**_fields(self.key, "backup"), "backup": backup}
            )

    # -- the engine --------------------------------------------------------------------------

    def _deploy(self, action: Deploy) -> Result | None:
        self._move(transitions.reconciling(self.status, action.reason, action.message, self.moment))
        if action.reason is Reason.STACK_STATE_LOST or action.refresh:
            self._notice(Notice(action.reason.value, action.message, warning=True))
        try:
            kind = kind_of(action.desired.stage, refresh=action.refresh)
            cause = f"{action.reason.value}: {action.message}"
            run = self.driver.up(
                action.desired,
                refresh=action.refresh,
                message=update_message(kind, self.generation, self.uid, cause),
                replace=action.replace,
            )
        except StackError as error:
            if action.heals:
                # A heal that fails is not tried again for the same drift: it is reported.
                self.status = transitions.drift_healed(self.status, signature(action.heals))
            return self._failed("deploy", error)
        self.engine_run = run.timings
        executor = self.executor
        after = transitions.deployed(
            self.status,
            action.desired,
            action.fingerprint,
            run,
            toolchain=executor.toolchain,
            cluster_domain=executor.cluster_domain,
        )
        if action.heals:
            after = transitions.drift_healed(after, signature(action.heals))
        self._move(after)
        stage = action.desired.stage.value
        self._notice(
            Notice("Updated", f"update {run.update_id} ({stage}): {describe_changes(run)}")
        )
        if action.heals:
            self._notice(Notice("DriftHealed", f"reverted: {'; '.join(action.heals)}"))
        return None

    def _destroy(self) -> Result | None:
        self._move(
            transitions.reconciling(
                self.status, Reason.DELETING, "destroying the stack", self.moment
            )
        )
        try:
            message = update_message(
                ChangeKind.DESTROY, self.generation, self.uid, "the MySQL object is being deleted"
            )
            run = self.driver.destroy(*self.key, message=message)
        except StackError as error:
            return self._failed("destroy", error)
        if run is not None:
            self.engine_run = run.timings
            self._move(transitions.destroyed(self.status, run))
            self._notice(Notice("Destroyed", f"destroy {run.update_id}: {describe_changes(run)}"))
        return None

    def _stack_call(self, call: Callable[[], None], step: str) -> Result | None:
        try:
            call()
        except StackError as error:
            return self._failed(step, error)
        return None

    def _failed(self, step: str, error: StackError) -> Result:
        self._move(transitions.failed(self.status, step, error, self.moment))
        outcome = Outcome.STALLED if error.kind is FailureKind.SPEC else Outcome.RETRY
        return Result(outcome, step, error.kind.value, error.message)

    # -- writing -----------------------------------------------------------------------------

    @property
    def moment(self) -> Moment:
        """Conditions set now (after an engine run, not when the pass began)."""
        return Moment(self.generation, self.executor.now())

    def _move(self, status: InstanceStatus) -> bool:
        """Writes `status` when it differs from what the object has, with a Warning Event
        when it brings a new stall; True when it did."""
        stall = transitions.new_stall(self.status, status)
        self.status = status
        if status != self.written:
            self.gateway.patch_status(*self.key, status.to_patch())
            self.written = status
        self._observe_metrics()
        self._notice(stall)
        return stall is not None

    def _observe_metrics(self) -> None:
        ready = find(self.status.conditions, ConditionType.READY)
        self.executor.metrics.observe_instance(
            self.key,
            ready.status.value if ready else Status.UNKNOWN.value,
            ready.reason.value if ready else "None",
        )

    def _notice(self, notice: Notice | None) -> None:
        if notice is None:
            return
        self.gateway.post_event(
            self.obj, warning=notice.warning, reason=notice.reason, message=notice.message
        )
        level = logging.WARNING if notice.warning else logging.INFO
        log.log(
            level, notice.message, extra={**_fields(self.key, "event"), "reason": notice.reason}
        )


def _fields(key: Key, action: str, **more: object) -> dict[str, object]:
    return {"instance": f"{key[0]}/{key[1]}", "phase": action, **more}
