"""Carries out one reconcile: observe, `decide`, act through the gateway and the driver,
report through status, Events, logs and metrics.

It holds no Kubernetes or Pulumi client of its own: every effect goes through
`kube.Gateway` or `driver.Driver`, so it can be read as the sequence of steps.
The process may die between any two steps; each step is safe to repeat, and the
finalizer is the last thing removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from reconciler.conditions import (
    ConditionType,
    Reason,
    Status,
    find,
    mark_backup,
    mark_ready,
    mark_reconciling,
    mark_stalled,
)
from reconciler.driver import Driver, FailureKind, RunResult, StackError, stack_name
from reconciler.engine_events import RunTimings
from reconciler.kube import ApiUnavailable, Conflict, Gateway
from reconciler.metrics import Metrics
from reconciler.names import MYSQL_PORT, names_for
from reconciler.program import Phase
from reconciler.reconcile import (
    FINALIZER,
    Action,
    AddFinalizer,
    Deploy,
    Forget,
    InSync,
    Observation,
    Stall,
    Teardown,
    decide,
    generation_of,
    is_deleting,
)
from reconciler.spec import Instance, SpecError, parse_instance
from reconciler.status import (
    Endpoint,
    ToolchainVersions,
    UpdateRecord,
    parse_status,
)

log = logging.getLogger(__name__)

Key = tuple[str, str]
# Adding the finalizer re-reads the object; more passes than this means it keeps changing.
MAX_PASSES: Final = 3


class Outcome(StrEnum):
    DONE = "done"  # converged (or nothing to do): forget the backoff
    RETRY = "retry"  # try again after a backoff delay
    STALLED = "stalled"  # wait for a change from outside (the next event or resync)
    GONE = "gone"  # the object no longer exists


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    action: str
    error_kind: str | None = None
    error: str | None = None  # what failed, for the log (the status and Events have it too)
    engine_run: RunTimings | None = None  # the engine run this pass made, if it made one


class Executor:
    def __init__(
        self,
        gateway: Gateway,
        driver: Driver,
        toolchain: ToolchainVersions,
        metrics: Metrics,
        *,
        cluster_domain: str,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.gateway = gateway
        self.driver = driver
        self.toolchain = toolchain
        self.metrics = metrics
        self.cluster_domain = cluster_domain
        self.now = now

    def reconcile(self, key: Key) -> Result:
        started = time.monotonic()
        action_name = "read"
        try:
            result = self._reconcile(key)
            action_name = result.action
        except (ApiUnavailable, Conflict) as error:
            log.warning("retrying", extra=_fields(key, action_name, error=str(error)))
            result = Result(Outcome.RETRY, action_name, "kubernetes")
        duration = time.monotonic() - started
        self.metrics.reconciles.labels(action=result.action, outcome=result.outcome.value).inc()
        self.metrics.durations.labels(action=result.action).observe(duration)
        if result.error_kind is not None:
            self.metrics.errors.labels(kind=result.error_kind).inc()
        level = logging.DEBUG if result.action == "in-sync" else logging.INFO
        fields = _fields(key, result.action, outcome=result.outcome.value, duration_s=duration)
        if result.engine_run is not None:
            # The engine's own cost and the readiness awaits inside its resource steps.
            fields.update(
                engine_s=round(result.engine_run.engine_s, 3),
                resources_s=round(result.engine_run.resources_s, 3),
            )
        if result.error is not None:
            level = logging.WARNING
            fields.update(error_kind=result.error_kind, error=result.error)
        log.log(level, "reconciled", extra=fields)
        return result

    # -- observe and decide ----------------------------------------------------------------

    def _reconcile(self, key: Key) -> Result:
        for _ in range(MAX_PASSES):
            obj = self.gateway.get_mysql(*key)
            if obj is None:
                self.metrics.observe_instance(key, None, None)
                return Result(Outcome.GONE, "gone")
            action = decide(self._observe(obj))
            if isinstance(action, AddFinalizer):
                self.gateway.set_finalizer(obj, FINALIZER, present=True)
                continue
            return _Run(self, key, obj).execute(action)
        return Result(Outcome.RETRY, "add-finalizer")

    def _observe(self, obj: Mapping[str, Any]) -> Observation:
        namespace = str(obj["metadata"]["namespace"])
        name = str(obj["metadata"]["name"])
        try:
            instance: Instance | None = parse_instance(obj)
        except SpecError:
            instance = None
        if is_deleting(obj):
            return Observation(
                obj,
                self.toolchain,
                namespace_terminating=self.gateway.namespace_terminating(namespace),
                stack_deployed=self._stack_deployed(namespace, name),
            )
        secret_problem = None
        if instance is not None and instance.spec.password_secret_ref is not None:
            ref = instance.spec.password_secret_ref
            secret_problem = self.gateway.secret_problem(namespace, ref.name, ref.key)
        return Observation(obj, self.toolchain, secret_problem=secret_problem)

    def _stack_deployed(self, namespace: str, name: str) -> bool:
        try:
            return self.driver.deployed_objects(namespace, name) > 0
        except StackError:
            return True  # unknown counts as deployed: never skip a backup on a guess


class _Run:
    """One pass of one action on one object, keeping the status it last wrote."""

    def __init__(self, executor: Executor, key: Key, obj: Mapping[str, Any]) -> None:
        self.executor = executor
        self.gateway = executor.gateway
        self.driver = executor.driver
        self.key = key
        self.obj = obj
        self.generation = generation_of(obj)
        self.written = parse_status(obj)
        self.status = self.written

    def execute(self, action: Action) -> Result:
        if isinstance(action, Forget):
            self.executor.metrics.observe_instance(self.key, None, None)
            return Result(Outcome.DONE, "forget")
        if isinstance(action, InSync):
            self._observe_metrics()
            return Result(Outcome.DONE, "in-sync")
        if isinstance(action, Stall):
            self._stall(action.reason, action.message)
            return Result(Outcome.STALLED, "stall", "stalled")
        if isinstance(action, Deploy):
            return self._deploy(action.instance, action.fingerprint)
        if isinstance(action, Teardown):
            return self._teardown(action)
        raise AssertionError(f"unhandled action {action!r}")

    # -- deploy ----------------------------------------------------------------------------

    def _deploy(self, instance: Instance, fingerprint: str) -> Result:
        self._reconciling(Reason.PROCESSING, f"running update for generation {self.generation}")
        self._event("Updating", f"running the stack update for generation {self.generation}")
        try:
            run = self.driver.up(instance, Phase.RUNNING)
        except StackError as error:
            return self._failed("deploy", error, Reason.UPDATE_FAILED)
        names = names_for(instance)
        endpoint = Endpoint(
            f"{names.service}.{instance.namespace}.svc.{self.executor.cluster_domain}", MYSQL_PORT
        )
        self.status = replace(
            self.status,
            inputs_fingerprint=fingerprint,
            toolchain=self.executor.toolchain,
            last_update=_record(run, Phase.RUNNING),
            endpoint=endpoint,
            stack=stack_name(instance.namespace, instance.name),
        )
        self._set_conditions(
            mark_ready(
                self.status.conditions,
                f"update {run.update_id} applied generation {self.generation}",
                generation=self.generation,
                now=self.executor.now(),
            )
        )
        self._event("Updated", f"update {run.update_id}: {_changes(run)}")
        return Result(Outcome.DONE, "deploy", engine_run=run.timings)

    # -- teardown --------------------------------------------------------------------------

    def _teardown(self, action: Teardown) -> Result:
        self._reconciling(Reason.DELETING, "backing up, then destroying the stack")
        if action.backup:
            assert action.instance is not None
            result = self._backup(action.instance)
            if result is not None:
                return result
        else:
            self._event("BackupSkipped", "no backup on delete: nothing deployed, or the policy")
        try:
            run = self.driver.destroy(action.namespace, action.name)
            if run is not None:
                self.status = replace(self.status, last_update=_record(run, Phase.TEARDOWN))
                self._write()
                self._event("Destroyed", f"destroy {run.update_id}: {_changes(run)}")
            self.driver.remove_stack(action.namespace, action.name)
        except StackError as error:
            return self._failed("destroy", error, Reason.UPDATE_FAILED)
        # Last: the object may vanish the moment the finalizer goes. Read it again, since
        # the status writes above moved its resourceVersion.
        fresh = self.gateway.get_mysql(*self.key)
        if fresh is not None:
            self.gateway.set_finalizer(fresh, FINALIZER, present=False)
        self.executor.metrics.observe_instance(self.key, None, None)
        return Result(Outcome.DONE, "teardown")

    def _backup(self, instance: Instance) -> Result | None:
        """Runs the TEARDOWN `up`; a Result means it failed and the teardown stops."""
        job = names_for(instance).backup_job
        self._set_conditions(
            mark_backup(
                self.status.conditions,
                Status.UNKNOWN,
                Reason.BACKUP_RUNNING,
                f"backup Job {job} running",
                generation=self.generation,
                now=self.executor.now(),
            )
        )
        self._event("BackupStarted", f"backup Job {job} started before anything is deleted")
        try:
            run = self.driver.up(instance, Phase.TEARDOWN)
        except StackError as error:
            conditions = mark_backup(
                self.status.conditions,
                Status.FALSE,
                Reason.BACKUP_FAILED,
                error.message,
                generation=self.generation,
                now=self.executor.now(),
            )
            self._set_conditions(conditions)
            self._stall(
                Reason.BACKUP_FAILED,
                f"backup failed, nothing was deleted; retrying with backoff: {error.message}",
            )
            return Result(Outcome.RETRY, "backup", error.kind.value, error.message)
        self.status = replace(self.status, last_update=_record(run, Phase.TEARDOWN))
        self._set_conditions(
            mark_backup(
                self.status.conditions,
                Status.TRUE,
                Reason.BACKUP_SUCCEEDED,
                f"backup Job {job} completed (update {run.update_id})",
                generation=self.generation,
                now=self.executor.now(),
            )
        )
        self._event("BackupSucceeded", f"backup Job {job} completed")
        return None

    # -- reporting -------------------------------------------------------------------------

    def _failed(self, step: str, error: StackError, reason: Reason) -> Result:
        if error.kind is FailureKind.SPEC:
            self._stall(Reason.SPEC_INVALID, error.message)
            return Result(Outcome.STALLED, step, error.kind.value, error.message)
        if error.kind is FailureKind.FAILED:
            self._stall(reason, f"{step} failed; retrying with backoff: {error.message}")
        else:
            self._reconciling(Reason.RETRY, f"{step}: {error.kind.value} error: {error.message}")
            self._event("Retrying", f"{step}: {error.message}", warning=True)
        return Result(Outcome.RETRY, step, error.kind.value, error.message)

    def _stall(self, reason: Reason, message: str) -> None:
        before = find(self.status.conditions, ConditionType.STALLED)
        self._set_conditions(
            mark_stalled(
                self.status.conditions,
                reason,
                message,
                generation=self.generation,
                now=self.executor.now(),
            )
        )
        # One Event per new problem, not one per resync.
        if before is None or before.reason is not reason or before.message != message:
            self._event(reason.value, message, warning=True)

    def _reconciling(self, reason: Reason, message: str) -> None:
        self._set_conditions(
            mark_reconciling(
                self.status.conditions,
                reason,
                message,
                generation=self.generation,
                now=self.executor.now(),
            )
        )

    def _set_conditions(self, conditions: tuple[Any, ...]) -> None:
        self.status = replace(
            self.status, conditions=conditions, observed_generation=self.generation
        )
        self._write()

    def _write(self) -> None:
        if self.status != self.written:
            self.gateway.patch_status(*self.key, self.status.to_patch())
            self.written = self.status
        self._observe_metrics()

    def _observe_metrics(self) -> None:
        ready = find(self.status.conditions, ConditionType.READY)
        self.executor.metrics.observe_instance(
            self.key,
            ready.status.value if ready else Status.UNKNOWN.value,
            ready.reason.value if ready else "None",
        )

    def _event(self, reason: str, message: str, *, warning: bool = False) -> None:
        self.gateway.post_event(self.obj, warning=warning, reason=reason, message=message)


def _record(run: RunResult, phase: Phase) -> UpdateRecord:
    return UpdateRecord(
        id=run.update_id,
        kind=run.kind,
        phase=phase.value,
        result=run.result,
        resource_changes=run.resource_changes,
    )


def _changes(run: RunResult) -> str:
    changes = {op: n for op, n in run.resource_changes.items() if op != "same" and n}
    return ", ".join(f"{op} {n}" for op, n in sorted(changes.items())) or "no changes"


def _fields(key: Key, action: str, **more: object) -> dict[str, object]:
    return {"instance": f"{key[0]}/{key[1]}", "phase": action, **more}
