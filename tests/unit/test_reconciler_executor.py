"""The executor against an in-memory cluster and stack backend: it observes, decides and
applies one action per pass, and every effect happens in a safe order (volumes patched
before a claim is let go, the finalizer removed last, nothing destroyed before a
verified backup).

The fakes are plain classes with the methods the executor calls. `GatewayPort` and
`DriverPort` list those methods; mypy checks that the real `Gateway` and `Driver` and the
fakes all satisfy them, so a fake cannot drift from the real signature unnoticed.
"""

# The fakes keep the real signatures and ignore some arguments.
# ruff: noqa: ARG002

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import pytest

from reconciler import manifests
from reconciler.conditions import Reason
from reconciler.desired import ClaimBinding, Desired
from reconciler.driver import Driver
from reconciler.engine_events import RunTimings
from reconciler.executor import MAX_PASSES, Executor, Outcome, Result
from reconciler.fingerprint import fingerprint_key, inputs_fingerprint
from reconciler.kube import ApiUnavailable, Gateway
from reconciler.metrics import Metrics
from reconciler.names import volume_labels
from reconciler.observation import StackState
from reconciler.policy import POLL_S, retry_delay_s
from reconciler.runs import FailureKind, RunResult, StackError
from reconciler.selectors import parse_selector
from reconciler.status import InstanceStatus, JobRecord
from reconciler.teardown import GOING_POLL_S
from reconciler.vocabulary import (
    ANNOTATION_RELEASED,
    ANNOTATION_RETAINED_REASON,
    CLAIM_FINALIZER,
    FINALIZER,
    LABEL_INSTANCE,
    LABEL_TRIGGER,
    Stage,
    VolumeRole,
)
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
    KEY,
    NAME,
    NO_STACK,
    NOW,
    RESTORE_JOB_1,
    RESTORED,
    TOOLCHAIN,
    UID,
    claim,
    job,
    job_pod,
    kept_volume,
    left_volume,
    merge_patch,
    mysql_object,
    pod,
    synced_status,
    volume,
)

pytestmark = pytest.mark.unit

PVC_PROTECTION = "kubernetes.io/pvc-protection"


# -- the ports and the fakes ----------------------------------------------------------------


class GatewayPort(Protocol):
    def get_mysql(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def set_finalizer(self, obj: Mapping[str, Any], finalizer: str, *, present: bool) -> None: ...
    def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None: ...
    def post_event(
        self, obj: Mapping[str, Any], *, warning: bool, reason: str, message: str
    ) -> None: ...
    def events_for(self, namespace: str, kind: str, name: str) -> Sequence[Mapping[str, Any]]: ...
    def get_claim(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def set_claim_finalizer(
        self, claim: Mapping[str, Any], finalizer: str, *, present: bool
    ) -> None: ...
    def delete_claim(self, namespace: str, name: str) -> None: ...
    def get_volume(self, name: str) -> Mapping[str, Any] | None: ...
    def list_volumes(self, label_selector: str) -> Sequence[Mapping[str, Any]]: ...
    def patch_volume(self, name: str, patch: Mapping[str, Any]) -> None: ...
    def delete_volume(self, name: str) -> None: ...
    def deployment_exists(self, namespace: str, name: str) -> bool: ...
    def get_workload_object(
        self, namespace: str, kind: str, name: str
    ) -> Mapping[str, Any] | None: ...
    def workload(
        self, namespace: str, label_selector: str
    ) -> tuple[tuple[str, str, bool], ...]: ...
    def list_pods(self, namespace: str, label_selector: str) -> Sequence[Mapping[str, Any]]: ...
    def service_routes(self, namespace: str, service: str) -> bool: ...
    def get_job(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def secret_metadata(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def secret_value(self, namespace: str, name: str, key: str) -> str | None: ...
    def create_secret(self, namespace: str, manifest: Mapping[str, Any]) -> None: ...
    def delete_secret(self, namespace: str, name: str) -> None: ...
    def namespace_terminating(self, namespace: str) -> bool: ...
    def get_backup_object(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...
    def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> None: ...
    def list_backup_objects(
        self, namespace: str, label_selector: str
    ) -> Sequence[Mapping[str, Any]]: ...
    def delete_backup_object(self, namespace: str, name: str) -> None: ...
    def create_backup_object(self, namespace: str, manifest: Mapping[str, Any]) -> None: ...
    def patch_backup_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None: ...


class DriverPort(Protocol):
    def stack_state(self, namespace: str, name: str, *, definite: bool) -> StackState | None: ...
    def up(
        self,
        desired: Desired,
        *,
        refresh: bool = False,
        message: str | None = None,
        replace: tuple[str, ...] = (),
    ) -> RunResult: ...
    def destroy(
        self, namespace: str, name: str, message: str | None = None
    ) -> RunResult | None: ...
    def forget_stack(self, namespace: str, name: str) -> None: ...


def _ports_fit(
    gateway: Gateway, fake_gateway: FakeGateway, driver: Driver, fake: FakeDriver
) -> None:
    """Never called: mypy checks these assignments."""
    _gateways: list[GatewayPort] = [gateway, fake_gateway]
    _drivers: list[DriverPort] = [driver, fake]


def labels_match(labels: Mapping[str, str], selector: str) -> bool:
    wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
    return wanted.items() <= labels.items()


@dataclass
class FakeGateway:
    """An in-memory cluster. `log` records every write, in order, with the driver's runs."""

    mysql: dict[str, Any] | None
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: list[dict[str, Any]] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployment: bool = False
    serving_objects: bool = False  # the Deployment and Service exist
    going: list[str] = field(default_factory=list)  # objects being deleted
    terminating: bool = False
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    routes: bool = True  # the client Service has a ready endpoint
    claim_events: list[dict[str, Any]] = field(default_factory=list)
    volume_patches_apply: bool = True
    unavailable: bool = False
    log: list[str] = field(default_factory=list)
    events: list[tuple[str, bool]] = field(default_factory=list)
    backup_objects: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get_mysql(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        if self.unavailable:
            raise ApiUnavailable("Kubernetes API: 503 Service Unavailable")
        return copy.deepcopy(self.mysql)

    def set_finalizer(self, obj: Mapping[str, Any], finalizer: str, *, present: bool) -> None:
        assert self.mysql is not None
        metadata = self.mysql["metadata"]
        finalizers = [f for f in metadata.get("finalizers") or [] if f != finalizer]
        if present:
            finalizers.append(finalizer)
        metadata["finalizers"] = finalizers
        self.log.append(f"finalizer {'+' if present else '-'}")
        if not finalizers and metadata.get("deletionTimestamp"):
            self.mysql = None  # the API server lets it go

    def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        assert self.mysql is not None
        self.mysql["status"] = merge_patch(self.mysql.get("status"), patch["status"])
        self.log.append("status")

    def post_event(
        self, obj: Mapping[str, Any], *, warning: bool, reason: str, message: str
    ) -> None:
        self.events.append((reason, warning))

    def events_for(self, namespace: str, kind: str, name: str) -> Sequence[Mapping[str, Any]]:
        return self.claim_events

    def get_claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return copy.deepcopy(self.claims.get(name))

    def set_claim_finalizer(
        self, claim: Mapping[str, Any], finalizer: str, *, present: bool
    ) -> None:
        name = claim["metadata"]["name"]
        metadata = self.claims[name]["metadata"]
        finalizers = [f for f in metadata["finalizers"] if f != finalizer]
        if present:
            finalizers.append(finalizer)
        metadata["finalizers"] = finalizers
        self.log.append(f"claim-finalizer {'+' if present else '-'} {name}")

    def delete_claim(self, namespace: str, name: str) -> None:
        self.log.append(f"delete-claim {name}")
        metadata = self.claims[name]["metadata"]
        if not self.pods:
            # Kubernetes' pvc-protection lets go once no pod uses the claim.
            metadata["finalizers"] = [f for f in metadata["finalizers"] if f != PVC_PROTECTION]
        if metadata["finalizers"]:
            metadata["deletionTimestamp"] = "2026-01-01T12:00:00Z"
        else:
            del self.claims[name]

    def get_volume(self, name: str) -> Mapping[str, Any] | None:
        return copy.deepcopy(self.volumes.get(name))

    def list_volumes(self, label_selector: str) -> Sequence[Mapping[str, Any]]:
        return [
            copy.deepcopy(v)
            for v in self.volumes.values()
            if labels_match(v["metadata"].get("labels") or {}, label_selector)
        ]

    def patch_volume(self, name: str, patch: Mapping[str, Any]) -> None:
        self.log.append(f"patch-volume {name}")
        if self.volume_patches_apply:
            self.volumes[name] = merge_patch(self.volumes[name], patch)

    def delete_volume(self, name: str) -> None:
        self.log.append(f"delete-volume {name}")
        self.volumes.pop(name, None)

    def deployment_exists(self, namespace: str, name: str) -> bool:
        return self.deployment

    def get_workload_object(self, namespace: str, kind: str, name: str) -> Mapping[str, Any] | None:
        if kind == "Deployment" and not self.deployment:
            return None
        # Without a spec: nothing to compare, so no drift (tested in test_drift.py).
        return {"kind": kind, "metadata": {"name": name}}

    def workload(self, namespace: str, label_selector: str) -> tuple[tuple[str, str, bool], ...]:
        serving = (("Deployment", "x", False), ("Service", "x", False))
        going = tuple((kind, name, True) for kind, name in (w.split("/") for w in self.going))
        return (serving if self.serving_objects else ()) + going

    def list_pods(self, namespace: str, label_selector: str) -> Sequence[Mapping[str, Any]]:
        return [p for p in self.pods if labels_match(p["metadata"]["labels"], label_selector)]

    def service_routes(self, namespace: str, service: str) -> bool:
        return self.routes

    def get_job(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return copy.deepcopy(self.jobs.get(name))

    def secret_metadata(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return copy.deepcopy(self.secrets.get(name))

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        secret = self.secrets.get(name) or {}
        value = (secret.get("stringData") or {}).get(key)
        return value if isinstance(value, str) else None

    def create_secret(self, namespace: str, manifest: Mapping[str, Any]) -> None:
        self.secrets.setdefault(manifest["metadata"]["name"], copy.deepcopy(dict(manifest)))
        self.log.append(f"secret + {manifest['metadata']['name']}")

    def delete_secret(self, namespace: str, name: str) -> None:
        self.secrets.pop(name, None)
        self.log.append(f"secret - {name}")

    def namespace_terminating(self, namespace: str) -> bool:
        return self.terminating

    def get_backup_object(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return copy.deepcopy(self.backup_objects.get(name))

    def list_backup_objects(
        self, namespace: str, label_selector: str
    ) -> Sequence[Mapping[str, Any]]:
        return [
            copy.deepcopy(found)
            for found in self.backup_objects.values()
            if labels_match(found["metadata"].get("labels") or {}, label_selector)
        ]

    def delete_backup_object(self, namespace: str, name: str) -> None:
        self.backup_objects.pop(name, None)
        self.log.append(f"delete-backup-object {name}")

    def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> None:
        name = manifest["metadata"]["name"]
        if name not in self.jobs:
            self.jobs[name] = {**copy.deepcopy(dict(manifest)), "status": {}}
            self.log.append(f"create-job {name}")

    def create_backup_object(self, namespace: str, manifest: Mapping[str, Any]) -> None:
        name = manifest["metadata"]["name"]
        if name not in self.backup_objects:
            self.backup_objects[name] = copy.deepcopy(dict(manifest))
            self.log.append(f"create-backup-object {name}")

    def patch_backup_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        found = self.backup_objects[name]
        found["status"] = merge_patch(found.get("status"), dict(status))
        self.log.append(f"backup-object {status['phase']}")


class FakeDriver:
    """A stack backend: `up` declares the Deployment, the workload and the stage's Job in
    the fake cluster; `destroy` removes them (claims and volumes are retained)."""

    def __init__(self, gateway: FakeGateway, stack: StackState = NO_STACK) -> None:
        self.gateway = gateway
        self.stack = stack
        self.failures: dict[str, StackError] = {}
        self.deployed: list[Desired] = []
        self.definite: list[bool] = []
        self.messages: list[str | None] = []  # each run's history message

    def _run(self, step: str) -> RunResult:
        self.gateway.log.append(step)
        failure = self.failures.get(step.split()[0])
        if failure is not None:
            raise failure
        return RunResult(
            f"{step.split()[0]}-{len(self.gateway.log)}",
            "update",
            "succeeded",
            {"create": 1},
            RunTimings(total_s=3.0, resources_s=2.25),
        )

    def stack_state(self, namespace: str, name: str, *, definite: bool) -> StackState | None:
        self.definite.append(definite)
        return self.stack

    def up(
        self,
        desired: Desired,
        *,
        refresh: bool = False,
        message: str | None = None,
        replace: tuple[str, ...] = (),
    ) -> RunResult:
        run = self._run(
            f"up {desired.stage.value}"
            + (" refresh" if refresh else "")
            + "".join(f" replace {name}" for name in replace)
        )
        self.deployed.append(desired)
        self.messages.append(message)
        self.stack = DEPLOYED
        self.gateway.deployment = self.gateway.serving_objects = True
        for declared in (manifests.restore_job(desired), manifests.backup_job(desired)):
            if declared is not None:
                name = declared["metadata"]["name"]
                self.gateway.jobs.setdefault(name, job(name))
        return run

    def destroy(self, namespace: str, name: str, message: str | None = None) -> RunResult | None:
        if not self.stack.exists:
            return None
        run = self._run("destroy")
        self.messages.append(message)
        self.stack = EMPTY_STACK
        self.gateway.deployment = self.gateway.serving_objects = False
        self.gateway.pods.clear()
        self.gateway.jobs.clear()
        return run

    def forget_stack(self, namespace: str, name: str) -> None:
        self._run("forget-stack")
        self.stack = NO_STACK


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def executor(
    gateway: FakeGateway,
    driver: FakeDriver,
    *,
    key: bytes = FINGERPRINT_KEY,
    clock: Clock | None = None,
    selector: str = "",
) -> Executor:
    def requested(key: tuple[str, str]) -> tuple[str, ...]:
        # What the MySQLBackup watch indexes: unfinished requests and scheduled backups.
        return tuple(
            name
            for name, found in gateway.backup_objects.items()
            if (found.get("spec") or {}).get("instance") == key[1]
            and (found["metadata"].get("labels") or {}).get(LABEL_TRIGGER) in (None, "schedule")
            and (found.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        )

    return Executor(
        cast(Gateway, gateway),
        cast(Driver, driver),
        TOOLCHAIN,
        Metrics(),
        cluster_domain="cluster.local",
        fingerprint_key=key,
        now=clock or Clock(),
        selector=parse_selector(selector),
        requested_backups=requested,
    )


# -- reading the fake cluster ---------------------------------------------------------------


def status_of(gateway: FakeGateway) -> dict[str, Any]:
    assert gateway.mysql is not None
    status: dict[str, Any] = gateway.mysql["status"]
    return status


def conditions(gateway: FakeGateway) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status_of(gateway)["conditions"]}


def writes(gateway: FakeGateway) -> list[str]:
    """The log without status writes: the effects on the cluster and the stack."""
    return [entry for entry in gateway.log if entry != "status"]


def event_reasons(gateway: FakeGateway) -> list[str]:
    return [reason for reason, _warning in gateway.events]


# -- cluster set-ups ------------------------------------------------------------------------

FRESH = FRESH_VOLUMES
RESTORE_RUNNING = JobRecord(attempt=1, job=RESTORE_JOB_1)
BACKUP_LINE = "backed up dump=dump-0000000009.sql.gz sequence=9"
BACKUP_OBJECT = f"{NAME}-20260101120000"  # the MySQLBackup of the final backup


def applied(
    status: InstanceStatus, stage: Stage, key: bytes = FINGERPRINT_KEY, **spec: Any
) -> InstanceStatus:
    synced = synced_status(status, stage, key=key, **spec)
    return replace(synced, served=status.served or stage is Stage.SERVING)


def bound_storage(gateway: FakeGateway, *, kept: bool) -> None:
    """Both claims bound; their volumes as provisioned (Delete) or already kept."""
    gateway.claims[DATA_CLAIM] = claim()
    gateway.claims[BACKUP_CLAIM] = claim(BACKUP_CLAIM, volume=BACKUP_PV)
    if kept:
        gateway.volumes[DATA_PV] = kept_volume()
        gateway.volumes[BACKUP_PV] = kept_volume(
            BACKUP_PV, VolumeRole.BACKUP, claim_name=BACKUP_CLAIM
        )
    else:
        gateway.volumes[DATA_PV] = volume()
        gateway.volumes[BACKUP_PV] = volume(BACKUP_PV, claim_name=BACKUP_CLAIM)


def running_server(gateway: FakeGateway) -> None:
    gateway.deployment = gateway.serving_objects = True
    gateway.pods.append(pod())


def serving_cluster(*, deleting: bool = False, **spec: Any) -> tuple[FakeGateway, FakeDriver]:
    """A ready, served instance, synced, with kept volumes."""
    status = applied(InstanceStatus(volumes=FRESH, restore=RESTORED), Stage.SERVING)
    gateway = FakeGateway(mysql_object(status=status, deleting=deleting, **spec))
    bound_storage(gateway, kept=True)
    running_server(gateway)
    return gateway, FakeDriver(gateway, DEPLOYED)


# -- a backup someone asked for -------------------------------------------------------------


def test_a_requested_backup_names_its_job_then_creates_it_and_the_instance_stays_ready() -> None:
    gateway, driver = serving_cluster()
    request = {"metadata": {"name": "now", "uid": "9" * 8}, "spec": {"instance": NAME}}
    gateway.backup_objects["now"] = request
    run = executor(gateway, driver)
    result = run.reconcile(KEY)
    job_name = f"{NAME}-manual-99999999"
    assert writes(gateway) == ["backup-object Running", f"create-job {job_name}"]
    assert result.action == "ready"
    assert driver.deployed == [], "a requested backup costs no engine run"
    # Killed before the Job finished: the next pass finds it and waits for it quietly.
    gateway.log.clear()
    run.reconcile(KEY)
    assert writes(gateway) == []
    # Its end is recorded on the MySQLBackup, and the request is no longer open.
    line = f"dump=dump-0000000003.sql.gz sequence=3 size=12 sha256={'d' * 64} server_version=8"
    finish_backup(gateway, job_name, line)
    run.reconcile(KEY)
    assert writes(gateway) == ["backup-object Succeeded"]
    status = gateway.backup_objects["now"]["status"]
    assert (status["sizeBytes"], status["job"]) == (12, job_name)
    assert "BackupStarted" in event_reasons(gateway)


def test_a_scheduled_backup_is_made_run_recorded_and_older_ones_pruned() -> None:
    schedule = {"storage_size": "1Gi", "schedule": "0 3 * * *", "keep": 1}
    status = applied(
        InstanceStatus(volumes=FRESH, restore=RESTORED, last_schedule_time="2025-12-31T04:00:00Z"),
        Stage.SERVING,
        backup=schedule,
    )
    gateway = FakeGateway(mysql_object(status=status, backup=schedule))
    bound_storage(gateway, kept=True)
    running_server(gateway)
    driver = FakeDriver(gateway, DEPLOYED)
    gateway.backup_objects["older"] = {
        "metadata": {"name": "older", "labels": {LABEL_INSTANCE: NAME, LABEL_TRIGGER: "schedule"}},
        "spec": {"instance": NAME},
        "status": {
            "phase": "Succeeded",
            "location": f"pvc://{BACKUP_CLAIM}/dump-0000000001.sql.gz",
        },
    }
    run = executor(gateway, driver)
    result = run.reconcile(KEY)
    fired = f"{NAME}-20260101030000"
    job_name = f"{NAME}-schedule-"
    assert writes(gateway)[0] == f"create-backup-object {fired}"
    assert status_of(gateway)["lastScheduleTime"] == "2026-01-01T03:00:00Z"
    created_job = next(name for name in gateway.jobs if name.startswith(job_name))
    env = gateway.jobs[created_job]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "BACKUP_TRIGGER", "value": "schedule"} in env
    assert result.outcome is Outcome.DONE
    assert result.requeue_after_s is not None
    assert "BackupScheduled" in event_reasons(gateway)

    line = f"dump=dump-0000000002.sql.gz sequence=2 size=9 sha256={'f' * 64} server_version=8"
    finish_backup(gateway, created_job, line)
    gateway.log.clear()
    run.reconcile(KEY)
    assert writes(gateway) == ["backup-object Succeeded", "delete-backup-object older"]
    assert gateway.backup_objects[fired]["status"]["trigger"] == "schedule"


def test_a_request_for_an_instance_that_does_not_exist_says_so() -> None:
    gateway = FakeGateway(None)
    gateway.backup_objects["now"] = {"metadata": {"name": "now"}, "spec": {"instance": NAME}}
    result = executor(gateway, FakeDriver(gateway)).reconcile(KEY)
    assert result.outcome is Outcome.GONE
    status = gateway.backup_objects["now"]["status"]
    assert status["phase"] == "Pending"
    assert status["conditions"][0]["reason"] == "InstanceNotFound"


# -- a new instance -------------------------------------------------------------------------


def test_a_new_object_gets_its_finalizer_plan_and_restore_attempt_before_the_first_up() -> None:
    gateway = FakeGateway(mysql_object(finalizer=False))
    driver = FakeDriver(gateway)
    result = executor(gateway, driver).reconcile(KEY)
    # One `up` declares the client Service too: the server's readiness waits for the restore.
    assert writes(gateway) == ["finalizer +", "up serving"]
    first_up = gateway.log.index("up serving")
    assert gateway.log[:first_up].count("status") >= 2, "plan and attempt recorded first"
    status = status_of(gateway)
    assert status["volumes"]["data"]["claim"] == DATA_CLAIM
    assert status["restore"]["job"] == RESTORE_JOB_1
    assert status["inputsFingerprint"] == inputs_fingerprint(driver.deployed[0], FINGERPRINT_KEY)
    assert status["served"] is False
    assert status["restore"]["gatesReadiness"] is True
    # The fake provisioner has not bound the claim: the instance waits, without blocking.
    assert result.outcome is Outcome.WAIT
    assert result.reason == Reason.VOLUME_PENDING.value
    assert result.requeue_after_s == POLL_S
    assert result.engine_runs == 1
    assert conditions(gateway)["Ready"] == ("False", "VolumePending")
    assert conditions(gateway)["Restored"] == ("Unknown", "RestoreRunning")


def test_a_retained_volume_is_reserved_before_the_first_up_declares_its_claim() -> None:
    gateway = FakeGateway(mysql_object())
    gateway.volumes["pv-old"] = left_volume("pv-old", storage_class="local", capacity="2Gi")
    driver = FakeDriver(gateway)
    executor(gateway, driver).reconcile(KEY)
    assert writes(gateway)[:2] == ["patch-volume pv-old", "up serving"]
    assert driver.deployed[0].data_binding == ClaimBinding("pv-old", "local", "2Gi")
    assert gateway.volumes["pv-old"]["spec"]["claimRef"]["name"] == DATA_CLAIM
    assert "uid" not in gateway.volumes["pv-old"]["spec"]["claimRef"]
    assert "VolumesAdopted" in event_reasons(gateway)


def test_a_restored_instance_keeps_its_volumes_then_opens_to_clients() -> None:
    status = applied(InstanceStatus(volumes=FRESH, restore=RESTORE_RUNNING), Stage.RESTORING)
    gateway = FakeGateway(mysql_object(status=status))
    bound_storage(gateway, kept=False)
    running_server(gateway)
    gateway.jobs[RESTORE_JOB_1] = job(succeeded=True)
    gateway.pods.append(job_pod(RESTORE_JOB_1, exit_code=0, message="restored dump=d-1"))
    driver = FakeDriver(gateway, DEPLOYED)
    result = executor(gateway, driver).reconcile(KEY)
    assert writes(gateway) == [f"patch-volume {DATA_PV}", f"patch-volume {BACKUP_PV}", "up serving"]
    for name in (DATA_PV, BACKUP_PV):
        assert gateway.volumes[name]["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert result.outcome is Outcome.DONE
    assert result.action == "deploy"
    assert result.engine_runs == 1
    status_now = status_of(gateway)
    assert status_now["served"] is True
    assert status_now["restore"]["phase"] == "Succeeded"
    assert status_now["endpoint"] == {
        "host": "mysql-instance.shop.svc.cluster.local",
        "port": 3306,
    }
    assert conditions(gateway)["Ready"] == ("True", "UpToDate")
    assert conditions(gateway)["Restored"] == ("True", "RestoreSucceeded")
    assert "Reconciling" not in conditions(gateway)


def test_a_gated_restore_that_ends_makes_the_instance_ready_without_a_second_up() -> None:
    gated = replace(RESTORE_RUNNING, gates_readiness=True)
    status = applied(InstanceStatus(volumes=FRESH, restore=gated), Stage.SERVING)
    gateway = FakeGateway(mysql_object(status=replace(status, served=False)))
    bound_storage(gateway, kept=False)
    running_server(gateway)
    gateway.jobs[RESTORE_JOB_1] = job(succeeded=True)
    gateway.pods.append(job_pod(RESTORE_JOB_1, exit_code=0, message="restored dump=d-1"))
    driver = FakeDriver(gateway, DEPLOYED)
    run = executor(gateway, driver)
    results = [run.reconcile(KEY) for _ in range(3)]
    assert driver.deployed == [], "the first up declared the serving stage already"
    assert writes(gateway) == [f"patch-volume {DATA_PV}", f"patch-volume {BACKUP_PV}"]
    assert results[-1] == Result(Outcome.DONE, "ready")
    status_now = status_of(gateway)
    assert status_now["served"] is True
    assert status_now["restore"]["phase"] == "Succeeded"
    assert conditions(gateway)["Ready"] == ("True", "UpToDate")


def test_an_unchanged_ready_instance_costs_no_engine_run_and_no_write() -> None:
    gateway, driver = serving_cluster()
    run = executor(gateway, driver)
    assert run.reconcile(KEY).outcome is Outcome.DONE
    before = list(gateway.log)
    result = run.reconcile(KEY)
    assert result == Result(Outcome.DONE, "ready")
    assert gateway.log == before
    assert driver.deployed == []


def test_the_stack_state_is_read_definitely_only_while_deleting() -> None:
    gateway, driver = serving_cluster()
    executor(gateway, driver).reconcile(KEY)
    assert set(driver.definite) == {False}
    gateway, driver = serving_cluster(deleting=True)
    executor(gateway, driver).reconcile(KEY)
    assert set(driver.definite) == {True}


def test_the_fingerprint_key_decides_whether_the_instance_is_synced() -> None:
    gateway, driver = serving_cluster()
    executor(gateway, driver, key=FINGERPRINT_KEY).reconcile(KEY)
    assert driver.deployed == []
    executor(gateway, driver, key=fingerprint_key("a rotated passphrase")).reconcile(KEY)
    assert [d.stage for d in driver.deployed] == [Stage.SERVING]


def test_a_lost_stack_is_rebuilt_and_reported() -> None:
    gateway, driver = serving_cluster()
    driver.stack = EMPTY_STACK
    result = executor(gateway, driver).reconcile(KEY)
    assert writes(gateway) == ["up serving"]
    assert ("StackStateLost", True) in gateway.events
    assert result.outcome is Outcome.DONE


def test_a_deleted_deployment_is_recreated_with_a_refresh() -> None:
    gateway, driver = serving_cluster()
    gateway.deployment = False
    executor(gateway, driver).reconcile(KEY)
    assert writes(gateway) == ["up serving refresh"]


def test_a_wait_asks_to_be_looked_at_again() -> None:
    gateway, driver = serving_cluster()
    gateway.pods[0] = pod(ready=False)
    result = executor(gateway, driver).reconcile(KEY)
    assert result.outcome is Outcome.WAIT
    assert result.requeue_after_s == POLL_S
    assert conditions(gateway)["Reconciling"] == ("True", "PodStarting")


def test_an_object_outside_the_selector_is_left_alone() -> None:
    # Woken through one of its pods, but another reconciler's (a shard) to drive.
    gateway = FakeGateway(mysql_object(finalizer=False))
    driver = FakeDriver(gateway)
    result = executor(gateway, driver, selector="shard=a").reconcile(KEY)
    assert result == Result(Outcome.DONE, "not-selected")
    assert gateway.log == []


def test_an_object_inside_the_selector_is_reconciled() -> None:
    obj = mysql_object(finalizer=False)
    obj["metadata"]["labels"] = {"shard": "a"}
    gateway = FakeGateway(obj)
    executor(gateway, FakeDriver(gateway), selector="shard=a").reconcile(KEY)
    assert gateway.log[0] == "finalizer +"


# -- problems -------------------------------------------------------------------------------


def test_a_stall_is_reported_once_per_problem() -> None:
    gateway = FakeGateway(mysql_object(storage_size="0"))
    driver = FakeDriver(gateway)
    run = executor(gateway, driver)
    result = run.reconcile(KEY)
    assert result.outcome is Outcome.STALLED
    assert result.reason == "SpecInvalid"
    assert result.error_kind == "stalled"
    assert result.error is not None
    assert result.error.startswith("spec.storage_size: ")
    assert conditions(gateway)["Stalled"] == ("True", "SpecInvalid")
    assert conditions(gateway)["Ready"] == ("False", "SpecInvalid")
    assert gateway.events == [("SpecInvalid", True)]
    again = run.reconcile(KEY)
    assert again.outcome is Outcome.STALLED
    assert (again.error_kind, again.error) == (None, None), "a known problem is quiet"
    assert gateway.events == [("SpecInvalid", True)], "no new Event for the same problem"


@pytest.mark.parametrize(
    ("kind", "outcome", "condition"),
    [
        (FailureKind.TRANSIENT, Outcome.RETRY, ("Reconciling", "Retrying")),
        (FailureKind.STUCK, Outcome.RETRY, ("Reconciling", "Retrying")),
        (FailureKind.FAILED, Outcome.RETRY, ("Stalled", "UpdateFailed")),
        (FailureKind.SPEC, Outcome.STALLED, ("Stalled", "SpecInvalid")),
    ],
)
def test_a_failed_up_is_reported_by_kind(
    kind: FailureKind, outcome: Outcome, condition: tuple[str, str]
) -> None:
    gateway, driver = serving_cluster(image="mysql:8.0")
    driver.failures["up"] = StackError(kind, "it went wrong")
    result = executor(gateway, driver).reconcile(KEY)
    assert result.outcome is outcome
    assert result.error_kind == kind.value
    found, reason = condition
    assert conditions(gateway)[found] == ("True", reason)
    assert conditions(gateway)["Ready"] == ("False", reason)


def test_a_kubernetes_outage_is_retried() -> None:
    gateway, driver = serving_cluster()
    gateway.unavailable = True
    result = executor(gateway, driver).reconcile(KEY)
    assert result.outcome is Outcome.RETRY
    assert result.error_kind == "kubernetes"


def test_an_action_that_never_takes_effect_ends_in_a_retry_not_a_spin() -> None:
    gateway, driver = serving_cluster()
    gateway.volumes[DATA_PV] = volume()
    gateway.volume_patches_apply = False
    result = executor(gateway, driver).reconcile(KEY)
    assert result.outcome is Outcome.RETRY
    assert result.error_kind == "loop"
    assert writes(gateway) == [f"patch-volume {DATA_PV}"] * MAX_PASSES


def test_a_deploy_logs_the_engine_runs_split(caplog: pytest.LogCaptureFixture) -> None:
    gateway, driver = serving_cluster(image="mysql:8.0")
    with caplog.at_level(logging.INFO, logger="reconciler.executor"):
        executor(gateway, driver).reconcile(KEY)
    (line,) = [record for record in caplog.records if record.getMessage() == "reconciled"]
    assert (line.__dict__["engine_s"], line.__dict__["resources_s"]) == (0.75, 2.25)
    assert line.__dict__["engine_runs"] == 1


# -- deletion -------------------------------------------------------------------------------


def test_deletion_backs_up_with_clients_cut_off_and_waits_for_the_job() -> None:
    gateway, driver = serving_cluster(deleting=True)
    result = executor(gateway, driver).reconcile(KEY)
    # The record users see comes first, so the backup is visible while it runs.
    assert writes(gateway) == [
        f"create-backup-object {BACKUP_OBJECT}",
        "backup-object Running",
        "up final-backup",
    ]
    assert gateway.backup_objects[BACKUP_OBJECT]["spec"] == {"instance": NAME}
    assert driver.deployed[0].stage is Stage.FINAL_BACKUP
    assert result.outcome is Outcome.WAIT
    assert result.reason == Reason.BACKING_UP.value
    assert status_of(gateway)["finalBackup"]["job"] == BACKUP_JOB_1
    assert conditions(gateway)["BackupReady"] == ("Unknown", "BackupRunning")


def finish_backup(gateway: FakeGateway, name: str = BACKUP_JOB_1, line: str = BACKUP_LINE) -> None:
    gateway.jobs[name] = job(name, succeeded=True)
    gateway.pods.append(job_pod(name, exit_code=0, message=line))


def test_after_a_verified_backup_destroy_then_release_then_the_finalizer() -> None:
    gateway, driver = serving_cluster(deleting=True)
    run = executor(gateway, driver)
    run.reconcile(KEY)
    gateway.log.clear()
    finish_backup(gateway)
    result = run.reconcile(KEY)
    assert writes(gateway) == [
        "backup-object Succeeded",
        "destroy",
        f"patch-volume {DATA_PV}",
        f"claim-finalizer - {DATA_CLAIM}",
        f"delete-claim {DATA_CLAIM}",
        "finalizer -",
    ]
    assert result == Result(Outcome.DONE, "teardown", engine_run=result.engine_run, engine_runs=1)
    assert gateway.mysql is None
    released = gateway.volumes[DATA_PV]
    assert released["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert BACKUP_LINE in released["metadata"]["annotations"][ANNOTATION_RELEASED]
    # The dumps stay: the backup claim keeps its finalizer, its volume stays Retain.
    assert CLAIM_FINALIZER in gateway.claims[BACKUP_CLAIM]["metadata"]["finalizers"]
    assert "deletionTimestamp" not in gateway.claims[BACKUP_CLAIM]["metadata"]
    assert gateway.volumes[BACKUP_PV]["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert event_reasons(gateway)[-3:] == ["Destroyed", "DataReleased", "Deleted"]
    # The record outlives the MySQL object and says what the backup wrote.
    record = gateway.backup_objects[BACKUP_OBJECT]["status"]
    assert (record["phase"], record["trigger"]) == ("Succeeded", "delete")
    assert record["location"] == f"pvc://{BACKUP_CLAIM}/dump-0000000009.sql.gz"


def test_each_engine_run_records_its_kind_generation_uid_and_cause() -> None:
    gateway, driver = serving_cluster(deleting=True)
    run = executor(gateway, driver)
    run.reconcile(KEY)
    finish_backup(gateway)
    run.reconcile(KEY)
    teardown, destroy = driver.messages[-2:]
    assert teardown == (
        f"teardown of generation 1 (uid {UID}): BackingUp: clients cut off; final backup Job "
        f"{BACKUP_JOB_1} (attempt 1)"
    )
    assert destroy == f"destroy of generation 1 (uid {UID}): the MySQL object is being deleted"


def test_the_finalizer_stays_until_the_destroyed_objects_are_gone() -> None:
    gateway, driver = serving_cluster(deleting=True)
    run = executor(gateway, driver)
    run.reconcile(KEY)
    finish_backup(gateway)
    gateway.going = ["Deployment/mysql-instance"]
    result = run.reconcile(KEY)
    assert result.outcome is Outcome.WAIT
    assert result.requeue_after_s == GOING_POLL_S
    assert gateway.mysql is not None
    assert FINALIZER in gateway.mysql["metadata"]["finalizers"]
    assert "waiting for Deployment/mysql-instance" in str(gateway.mysql["status"])
    gateway.going = []
    assert run.reconcile(KEY).outcome is Outcome.DONE
    assert gateway.mysql is None


def test_the_finalizer_stays_when_the_destroy_fails() -> None:
    gateway, driver = serving_cluster(deleting=True)
    finish_backup(gateway)
    driver.failures["destroy"] = StackError(FailureKind.TRANSIENT, "i/o timeout")
    result = executor(gateway, driver).reconcile(KEY)
    assert result.outcome is Outcome.RETRY
    assert gateway.mysql is not None
    assert FINALIZER in gateway.mysql["metadata"]["finalizers"]
    assert "finalizer -" not in gateway.log
    assert CLAIM_FINALIZER in gateway.claims[DATA_CLAIM]["metadata"]["finalizers"]
    assert gateway.volumes[DATA_PV]["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_a_failed_backup_is_retried_as_a_new_job_and_nothing_is_destroyed() -> None:
    gateway, driver = serving_cluster(deleting=True)
    clock = Clock()
    run = executor(gateway, driver, clock=clock)
    run.reconcile(KEY)
    gateway.jobs[BACKUP_JOB_1] = job(BACKUP_JOB_1, failed=("BackoffLimitExceeded", "x"))
    gateway.pods.append(job_pod(BACKUP_JOB_1, exit_code=1, message="lost connection"))
    result = run.reconcile(KEY)
    assert result.outcome is Outcome.WAIT
    assert result.reason == Reason.BACKUP_RETRYING.value
    assert result.requeue_after_s == retry_delay_s(1)
    assert conditions(gateway)["BackupReady"] == ("False", "BackupFailed")
    clock.now += timedelta(seconds=retry_delay_s(1))
    run.reconcile(KEY)
    assert [d.backup_attempt for d in driver.deployed] == [1, 2]
    assert "mysql-instance-backup-0f3c2a9e-2" in gateway.jobs
    assert "destroy" not in gateway.log


def test_a_never_served_instance_is_torn_down_without_a_backup() -> None:
    status = applied(InstanceStatus(volumes=FRESH, restore=RESTORE_RUNNING), Stage.RESTORING)
    gateway = FakeGateway(mysql_object(status=status, deleting=True))
    bound_storage(gateway, kept=True)
    running_server(gateway)
    driver = FakeDriver(gateway, DEPLOYED)
    result = executor(gateway, driver).reconcile(KEY)
    assert result.outcome is Outcome.DONE
    assert driver.deployed == []
    assert writes(gateway)[0] == "destroy"
    assert "BackupSkipped" in event_reasons(gateway)


def test_lost_state_with_live_objects_is_adopted_then_destroyed() -> None:
    status = applied(InstanceStatus(volumes=FRESH, restore=RESTORE_RUNNING), Stage.RESTORING)
    gateway = FakeGateway(mysql_object(status=status, deleting=True))
    bound_storage(gateway, kept=True)
    running_server(gateway)
    driver = FakeDriver(gateway, NO_STACK)
    executor(gateway, driver).reconcile(KEY)
    assert writes(gateway)[:2] == ["up releasing", "destroy"]
    assert gateway.mysql is None


def test_a_terminating_namespace_keeps_the_volumes_and_lets_go() -> None:
    gateway, driver = serving_cluster(deleting=True)
    bound_storage(gateway, kept=False)
    gateway.terminating = True
    result = executor(gateway, driver).reconcile(KEY)
    assert result.outcome is Outcome.DONE
    assert writes(gateway) == [
        f"patch-volume {DATA_PV}",
        f"patch-volume {DATA_PV}",
        f"patch-volume {BACKUP_PV}",
        f"patch-volume {BACKUP_PV}",
        f"claim-finalizer - {DATA_CLAIM}",
        f"claim-finalizer - {BACKUP_CLAIM}",
        "forget-stack",
        "finalizer -",
    ]
    for name, role in ((DATA_PV, VolumeRole.DATA), (BACKUP_PV, VolumeRole.BACKUP)):
        kept = gateway.volumes[name]
        assert kept["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert kept["metadata"]["annotations"][ANNOTATION_RETAINED_REASON] == (
            "namespace shop was deleted"
        )
        assert volume_labels("shop", NAME, role).items() <= kept["metadata"]["labels"].items()
    assert "deletionTimestamp" not in gateway.claims[DATA_CLAIM]["metadata"], (
        "the namespace deletes the claims, not the operator"
    )
    assert ("NamespaceDeleted", True) in gateway.events


def test_claims_going_with_their_namespace_are_noticed_before_the_object_is() -> None:
    # The namespace controller may delete the claims before it marks the MySQL object.
    gateway, driver = serving_cluster()
    gateway.claims[DATA_CLAIM]["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    gateway.terminating = True
    executor(gateway, driver).reconcile(KEY)
    assert driver.deployed == []
    assert f"claim-finalizer - {DATA_CLAIM}" in gateway.log
    assert gateway.volumes[DATA_PV]["metadata"]["annotations"][ANNOTATION_RETAINED_REASON] == (
        "namespace shop was deleted"
    )


def test_a_claim_deleted_by_hand_in_a_living_namespace_stalls() -> None:
    gateway, driver = serving_cluster()
    gateway.claims[DATA_CLAIM]["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    result = executor(gateway, driver).reconcile(KEY)
    assert result.outcome is Outcome.STALLED
    assert result.reason == "ClaimDeleted"
    assert CLAIM_FINALIZER in gateway.claims[DATA_CLAIM]["metadata"]["finalizers"]


# -- claims without an instance -------------------------------------------------------------


def test_a_gone_object_without_claims_is_nothing_to_do() -> None:
    gateway = FakeGateway(None)
    driver = FakeDriver(gateway)
    assert executor(gateway, driver).reconcile(KEY) == Result(Outcome.GONE, "gone")
    assert gateway.log == []


def test_a_deleted_orphan_claim_has_its_volume_retained_before_it_goes() -> None:
    gateway = FakeGateway(None)
    gateway.claims[BACKUP_CLAIM] = claim(BACKUP_CLAIM, volume=BACKUP_PV, deleting=True)
    gateway.volumes[BACKUP_PV] = kept_volume(BACKUP_PV, VolumeRole.BACKUP, claim_name=BACKUP_CLAIM)
    result = executor(gateway, FakeDriver(gateway)).reconcile(KEY)
    assert result.outcome is Outcome.GONE
    assert gateway.log == [f"patch-volume {BACKUP_PV}", f"claim-finalizer - {BACKUP_CLAIM}"]
    annotations = gateway.volumes[BACKUP_PV]["metadata"]["annotations"]
    assert annotations[ANNOTATION_RETAINED_REASON] == (
        f"claim {BACKUP_CLAIM} was deleted after its instance"
    )
