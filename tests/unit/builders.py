"""Builders for the unit tier: MySQL objects and the instance's claims, volumes, pods, Jobs
and Events as plain dicts in the API's JSON shape, and the frozen values the pure
decisions read (`Instance`, `Desired`, `Live`, `Observation`).

Every builder has defaults for one ordinary instance (`shop/mysql-instance`), so a test
names only what it is about.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from reconciler import live as parse
from reconciler.backup_objects import BackupObjectState
from reconciler.desired import ClaimBinding, Desired
from reconciler.fingerprint import fingerprint_key, inputs_fingerprint
from reconciler.names import volume_labels
from reconciler.observation import Live, Observation, Passwords, StackState
from reconciler.passwords import digest
from reconciler.policy import desired_for, storage_fields
from reconciler.spec import Instance, parse_instance
from reconciler.status import (
    InstanceStatus,
    JobPhase,
    JobRecord,
    PasswordRecord,
    ToolchainVersions,
    VolumeRecord,
    Volumes,
)
from reconciler.vocabulary import (
    ANNOTATION_INSTANCE_UID,
    ANNOTATION_ORIGINAL_RECLAIM,
    API_VERSION,
    CLAIM_FINALIZER,
    FINALIZER,
    KIND,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    Stage,
    VolumeRole,
)

NAME: Final = "mysql-instance"
NAMESPACE: Final = "shop"
KEY: Final = (NAMESPACE, NAME)
UID: Final = "0f3c2a9e-1111-2222-3333-444455556666"
PASSWORD: Final = "otuspassword"
IMAGE: Final = "mysql:5.7"
DATABASE: Final = "otus-database"
TOOLCHAIN: Final = ToolchainVersions("3.274.1", "3.272.0", "4.25.0")
NOW: Final = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
STAMP: Final = "2026-01-01T12:00:00Z"  # NOW as the API server writes it
FINGERPRINT_KEY: Final = fingerprint_key("unit-test-passphrase")
# The value of the user's password Secret (spec.passwordSecretRef) in these tests.
SECRET_PASSWORD: Final = "secret-password"

# The instance's fixed names (names.py derives them; spelled out here so that a change
# there shows up in the tests).
DATA_CLAIM: Final = "mysql-instance-data"
BACKUP_CLAIM: Final = "mysql-instance-backup"
DATA_PV: Final = "pvc-data-0001"
BACKUP_PV: Final = "pvc-backup-0001"
STATIC_DATA_PV: Final = "shop-mysql-instance-data"
STATIC_BACKUP_PV: Final = "shop-mysql-instance-backup"
RESTORE_JOB_1: Final = "mysql-instance-restore-0f3c2a9e-1"
BACKUP_JOB_1: Final = "mysql-instance-backup-0f3c2a9e-1"

# -- the MySQL object ------------------------------------------------------------------------


def mysql_object(
    *,
    name: str = NAME,
    namespace: str = NAMESPACE,
    uid: str = UID,
    generation: int = 1,
    finalizer: bool = True,
    deleting: bool = False,
    annotations: Mapping[str, str] | None = None,
    status: InstanceStatus | None = None,
    password_record: bool = True,
    **spec_changes: Any,
) -> dict[str, Any]:
    """A MySQL object as the API server returns it. A spec change to None removes the
    field (`password=None` with `passwordSecretRef=...`). Its status records that the
    server has the spec's password (`password_record=False`: the first pass has yet to)."""
    spec: dict[str, Any] = {
        "image": IMAGE,
        "database": DATABASE,
        "password": PASSWORD,
        "storage_size": "1Gi",
    }
    for key, value in spec_changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = copy.deepcopy(value)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid,
        "generation": generation,
        "resourceVersion": "7",
        "creationTimestamp": "2025-12-31T00:00:00Z",
    }
    if finalizer:
        metadata["finalizers"] = [FINALIZER]
    if deleting:
        metadata["deletionTimestamp"] = STAMP
    if annotations:
        metadata["annotations"] = dict(annotations)
    obj: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata}
    obj["spec"] = spec
    if password_record and (status is None or status.password is None):
        wanted = spec.get("password", SECRET_PASSWORD)
        record = PasswordRecord(applied=digest(str(wanted), FINGERPRINT_KEY))
        status = replace(status or InstanceStatus(), password=record)
    if status is not None:
        obj["status"] = status.to_patch()["status"]
    return obj


def instance(**changes: Any) -> Instance:
    """The parsed instance of `mysql_object(**changes)`."""
    return parse_instance(mysql_object(**changes))


NEW_VOLUME: Final = ClaimBinding()

# A lifetime whose claims were planned as new, and whose restore succeeded.
FRESH_VOLUMES: Final = Volumes(
    data=VolumeRecord(DATA_CLAIM),
    backup=VolumeRecord(BACKUP_CLAIM),
    storage_fields=storage_fields(instance()),
)
RESTORED: Final = JobRecord(
    attempt=1, job=RESTORE_JOB_1, phase=JobPhase.SUCCEEDED, message="restored"
)


def synced_status(
    status: InstanceStatus, stage: Stage, *, key: bytes = FINGERPRINT_KEY, **spec: Any
) -> InstanceStatus:
    """`status` as a successful `up` of `stage` for the spec leaves it: the inputs
    fingerprint and the toolchain recorded."""
    declared = instance(**spec)
    password = declared.spec.password or SECRET_PASSWORD
    found = desired_for(declared, stage, status, password)
    return replace(status, inputs_fingerprint=inputs_fingerprint(found, key), toolchain=TOOLCHAIN)


def desired(
    stage: Stage = Stage.SERVING,
    *,
    restore_attempt: int = 1,
    backup_attempt: int = 1,
    data_binding: ClaimBinding = NEW_VOLUME,
    backup_binding: ClaimBinding = NEW_VOLUME,
    **changes: Any,
) -> Desired:
    return Desired(
        instance=instance(**changes),
        stage=stage,
        restore_attempt=restore_attempt,
        backup_attempt=backup_attempt,
        data_binding=data_binding,
        backup_binding=backup_binding,
    )


# -- the instance's objects -----------------------------------------------------------------


def owned_labels(component: str, *, name: str = NAME) -> dict[str, str]:
    return {
        LABEL_INSTANCE: name,
        LABEL_MANAGED_BY: MANAGED_BY,
        "app.kubernetes.io/component": component,
    }


def claim(
    name: str = DATA_CLAIM,
    *,
    phase: str = "Bound",
    volume: str | None = DATA_PV,
    finalizers: Sequence[str] = (CLAIM_FINALIZER, "kubernetes.io/pvc-protection"),
    deleting: bool = False,
    namespace: str = NAMESPACE,
    storage_class: str | None = "standard",
    size: str = "1Gi",
) -> dict[str, Any]:
    """A PersistentVolumeClaim; Bound to `volume` unless told otherwise."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-of-{name}",
        "resourceVersion": "42",
        "labels": owned_labels("storage"),
        "finalizers": list(finalizers),
    }
    if deleting:
        metadata["deletionTimestamp"] = STAMP
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    if volume is not None:
        spec["volumeName"] = volume
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": phase},
    }


def volume(
    name: str = DATA_PV,
    *,
    phase: str = "Bound",
    reclaim: str = "Delete",
    storage_class: str = "standard",
    capacity: str = "1Gi",
    claim_name: str | None = DATA_CLAIM,
    claim_namespace: str = NAMESPACE,
    claim_uid: str | None = "uid-of-mysql-instance-data",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A PersistentVolume as a provisioner makes it (reclaim policy Delete by default)."""
    metadata: dict[str, Any] = {"name": name, "resourceVersion": "9"}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    spec: dict[str, Any] = {
        "capacity": {"storage": capacity},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": reclaim,
        "storageClassName": storage_class,
    }
    if claim_name is not None:
        ref = {"kind": "PersistentVolumeClaim", "namespace": claim_namespace, "name": claim_name}
        if claim_uid is not None:
            ref["uid"] = claim_uid
        spec["claimRef"] = ref
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": phase},
    }


def kept_volume(
    name: str = DATA_PV,
    role: VolumeRole = VolumeRole.DATA,
    *,
    uid: str = UID,
    original: str = "Delete",
    annotations: Mapping[str, str] | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """A volume the operator has already made `Retain` and labelled for the instance."""
    changes.setdefault("reclaim", "Retain")
    return volume(
        name,
        labels=volume_labels(NAMESPACE, NAME, role),
        annotations={
            ANNOTATION_INSTANCE_UID: uid,
            ANNOTATION_ORIGINAL_RECLAIM: original,
            **(annotations or {}),
        },
        **changes,
    )


def left_volume(
    name: str,
    role: VolumeRole = VolumeRole.DATA,
    *,
    phase: str = "Released",
    annotations: Mapping[str, str] | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """A volume an earlier lifetime of the instance left behind (its claim is gone)."""
    changes.setdefault("claim_name", DATA_CLAIM if role is VolumeRole.DATA else BACKUP_CLAIM)
    changes.setdefault("claim_uid", "uid-of-the-old-claim")
    return kept_volume(
        name,
        role,
        uid="uid-of-the-earlier-lifetime",
        phase=phase,
        annotations=annotations,
        **changes,
    )


def pod(
    name: str = "mysql-instance-7d9f-abcde",
    *,
    phase: str = "Running",
    ready: bool = True,
    created: str = STAMP,
    labels: Mapping[str, str] | None = None,
    waiting: tuple[str, str | None] | None = None,
    terminated: tuple[int, str | None] | None = None,
    last_terminated: tuple[str, str | None] | None = None,
    restarts: int = 0,
    unschedulable: str | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    """A pod with one container: `waiting` is (reason, message), `terminated` is (exit
    code, termination message), `last_terminated` is (reason, message) of a restart."""
    state: dict[str, Any] = {}
    if waiting is not None:
        state["waiting"] = {"reason": waiting[0], "message": waiting[1]}
    elif terminated is not None:
        state["terminated"] = {
            "exitCode": terminated[0],
            "reason": "Completed" if terminated[0] == 0 else "Error",
            "message": terminated[1],
        }
    else:
        state["running"] = {"startedAt": created}
    container: dict[str, Any] = {
        "name": "mysql",
        "ready": ready,
        "restartCount": restarts,
        "state": state,
    }
    if last_terminated is not None:
        container["lastState"] = {
            "terminated": {
                "exitCode": 1,
                "reason": last_terminated[0],
                "message": last_terminated[1],
            }
        }
    conditions: list[dict[str, Any]] = [
        {"type": "Ready", "status": "True" if ready else "False"},
    ]
    if unschedulable is not None:
        conditions.append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
            }
        )
    else:
        conditions.append({"type": "PodScheduled", "status": "True"})
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": NAMESPACE,
        "creationTimestamp": created,
        "labels": dict(labels) if labels is not None else server_pod_labels(),
    }
    if deleting:
        metadata["deletionTimestamp"] = STAMP
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "status": {"phase": phase, "conditions": conditions, "containerStatuses": [container]},
    }


def server_pod_labels() -> dict[str, str]:
    return {**owned_labels("database"), "app": NAME}


def job_pod(
    job_name: str,
    *,
    exit_code: int | None = None,
    message: str | None = None,
    created: str = STAMP,
    waiting: tuple[str, str | None] | None = None,
) -> dict[str, Any]:
    """A Job's pod: running, or terminated with `exit_code` and a termination message."""
    phase = "Running"
    if exit_code is not None:
        phase = "Succeeded" if exit_code == 0 else "Failed"
    elif waiting is not None:
        phase = "Pending"
    return pod(
        f"{job_name}-x1y2z",
        phase=phase,
        ready=exit_code is None and waiting is None,
        created=created,
        labels={**owned_labels("restore"), "job-name": job_name},
        waiting=waiting,
        terminated=(exit_code, message) if exit_code is not None else None,
    )


def job(
    name: str = RESTORE_JOB_1,
    *,
    succeeded: bool = False,
    failed: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A Job: running, Complete, or Failed with (reason, message)."""
    conditions: list[dict[str, Any]] = []
    if succeeded:
        conditions.append({"type": "Complete", "status": "True"})
    if failed is not None:
        conditions.append(
            {"type": "Failed", "status": "True", "reason": failed[0], "message": failed[1]}
        )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": owned_labels("restore")},
        "status": {"conditions": conditions},
    }


def event(
    reason: str, message: str, *, warning: bool = False, last: str | None = STAMP
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
    }
    if last is not None:
        found["lastTimestamp"] = last
    return found


# -- what the decisions read ----------------------------------------------------------------


def live_of(
    *,
    data_claim: Mapping[str, Any] | None = None,
    backup_claim: Mapping[str, Any] | None = None,
    data_volume: Mapping[str, Any] | None = None,
    backup_volume: Mapping[str, Any] | None = None,
    retained_data: Sequence[Mapping[str, Any]] = (),
    retained_backup: Sequence[Mapping[str, Any]] = (),
    deployment_present: bool = True,
    server_pod: Mapping[str, Any] | None = None,
    job: Mapping[str, Any] | None = None,
    job_pods: Sequence[Mapping[str, Any]] = (),
    claim_event: str | None = None,
    workload_present: bool = False,
    going: Sequence[str] = (),
    backup_object: BackupObjectState | None = None,
) -> Live:
    """`Live` parsed from API dicts, as the executor gathers it."""
    return Live(
        data_claim=parse.claim_state(data_claim) if data_claim is not None else None,
        backup_claim=parse.claim_state(backup_claim) if backup_claim is not None else None,
        data_volume=parse.volume_state(data_volume) if data_volume is not None else None,
        backup_volume=parse.volume_state(backup_volume) if backup_volume is not None else None,
        retained_data=tuple(parse.volume_state(v) for v in retained_data),
        retained_backup=tuple(parse.volume_state(v) for v in retained_backup),
        deployment_present=deployment_present,
        server_pod=parse.pod_state(server_pod) if server_pod is not None else None,
        job=parse.job_state(job, job_pods) if job is not None else None,
        claim_event=claim_event,
        workload_present=workload_present,
        going=tuple(going),
        backup_object=backup_object,
    )


def serving_live(**changes: Any) -> Live:
    """A healthy instance: both claims bound to volumes that are already kept, the server
    ready. Keyword arguments replace parts (as in `live_of`)."""
    parts: dict[str, Any] = {
        "data_claim": claim(),
        "backup_claim": claim(BACKUP_CLAIM, volume=BACKUP_PV),
        "data_volume": kept_volume(),
        "backup_volume": kept_volume(
            BACKUP_PV, VolumeRole.BACKUP, claim_name=BACKUP_CLAIM, claim_uid="uid-of-backup"
        ),
        "server_pod": pod(),
    }
    parts.update(changes)
    return live_of(**parts)


DEPLOYED: Final = StackState(exists=True, resources=9)
NO_STACK: Final = StackState(exists=False, resources=0)
EMPTY_STACK: Final = StackState(exists=True, resources=0)


def observe(
    obj: Mapping[str, Any],
    *,
    live: Live | None = None,
    stack: StackState | None = DEPLOYED,
    now: datetime = NOW,
    key: bytes = FINGERPRINT_KEY,
    namespace_terminating: bool = False,
    password_secret: parse.SecretState | None = None,
    host_path_root: str | None = None,
    transfer_image: str | None = None,
    s3_secret: parse.SecretState | None = None,
    passwords: Passwords | None = None,
) -> Observation:
    """`passwords`: by default, the referenced Secret holds SECRET_PASSWORD."""
    return Observation(
        obj=obj,
        toolchain=TOOLCHAIN,
        fingerprint_key=key,
        now=now,
        stack=stack,
        live=live if live is not None else serving_live(),
        namespace_terminating=namespace_terminating,
        password_secret=password_secret,
        host_path_root=host_path_root,
        transfer_image=transfer_image,
        s3_secret=s3_secret,
        passwords=passwords if passwords is not None else Passwords(wanted=SECRET_PASSWORD),
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies one (None removes a key)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    merged = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def password_secret(
    name: str = "root-pw", *, consent: bool = True, keys: tuple[str, ...] = ("password",)
) -> parse.SecretState:
    """A user's password Secret as the executor sees it: labels and keys, no values."""
    labels = {"otus.homework/mysql-password": "true"} if consent else {}
    return parse.SecretState(name=name, labels=labels, keys=frozenset(keys))
