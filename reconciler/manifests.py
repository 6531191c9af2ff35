"""Pure builders: the Kubernetes manifest of each object of an instance, as plain dicts in
the API's own shape, from a `Desired` alone.

Nothing here knows Pulumi: `program.py` registers these manifests with the options each
object needs. A builder returns None when its object is not part of the stage. There are
no owner references anywhere: the garbage collector must never act on an instance's
objects, whatever happens to the MySQL object (a foreground cascade would delete the data
claim before the final backup). The operator's finalizer and teardown do that work.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any, Final

from reconciler.desired import ClaimBinding, Desired
from reconciler.job_scripts import BACKUP_SCRIPT, RESTORE_SCRIPT, ROTATION_SCRIPT, job_scripts
from reconciler.names import InstanceNames, labels_for, names_for, selector_for, volume_labels
from reconciler.spec import ComputeResources, Instance, ResourceAmounts, quantity_value
from reconciler.transfer_jobs import downloading, instance_prefix, uploading
from reconciler.vocabulary import (
    ANNOTATION_BACKUP,
    ANNOTATION_PASSWORD_ROTATIONS,
    CLAIM_FINALIZER,
    LABEL_CUT_OFF,
    MYSQL_PORT,
    PASSWORD_KEY,
    ROTATION_NEW_KEY,
    ROTATION_OLD_KEY,
    Component,
    Stage,
    VolumeRole,
)

Manifest = dict[str, Any]

DATA_MOUNT: Final = "/var/lib/mysql"
# MySQL 5.7 refuses to initialize a data directory holding `lost+found`, which many
# volumes have at their root; a sub-directory avoids that for every MySQL version.
DATA_SUB_PATH: Final = "mysql"
BACKUP_MOUNT: Final = "/backup"
SCRIPTS_MOUNT: Final = "/scripts"
# How long a restore Job waits for the server to answer before it fails (and is retried).
RESTORE_WAIT_S: Final = 900
# The official mysql image's mysql user and group: the server and the Jobs run as them.
RUN_AS: Final = 999
# Defaults for what spec.resources leaves out: enough for MySQL's default configuration
# (a 128 MiB buffer pool); no CPU limit, so a busy server is not throttled.
SERVER_RESOURCES: Final = ComputeResources(
    requests=ResourceAmounts(cpu="100m", memory="256Mi"),
    limits=ResourceAmounts(memory="1Gi"),
)
# The Jobs run a client (mysqldump or mysql, and gzip) that streams.
JOB_RESOURCES: Final = ComputeResources(
    requests=ResourceAmounts(cpu="50m", memory="64Mi"),
    limits=ResourceAmounts(memory="512Mi"),
)
READINESS_COMMAND: Final = (
    "client=$(command -v mysql || command -v mariadb) && "
    'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec "$client" --protocol=TCP '
    '--host=127.0.0.1 --user=root --execute="SELECT 1"'
)
# What the restore script records when this lifetime's restore has ended (restore.sh).
RESTORE_DONE_EVENTS: Final = ("restored", "initialized", "kept")
_UID: Final = re.compile(r"[A-Za-z0-9-]{1,64}")


def gated_readiness_command(uid: str) -> str:
    """Ready means "answers a query over TCP, and this lifetime's restore has ended": the
    count of the restore's end records for `uid`. A missing table is an error, so the
    count is empty and the test fails."""
    if _UID.fullmatch(uid) is None:
        raise ValueError(f"unexpected instance uid {uid!r}")
    events = ", ".join(f"'{event}'" for event in RESTORE_DONE_EVENTS)
    # The uid matched _UID and the events are constants: nothing here needs quoting.
    query = (
        f"SELECT COUNT(*) FROM mysql_operator.lifecycle WHERE uid = '{uid}' "  # noqa: S608
        f"AND event IN ({events})"
    )
    return (
        "client=$(command -v mysql || command -v mariadb) && "
        'count=$(MYSQL_PWD="$MYSQL_ROOT_PASSWORD" "$client" --protocol=TCP '
        "--host=127.0.0.1 --user=root --batch --skip-column-names "
        f'--execute="{query}") && [ "$count" -gt 0 ]'
    )


def _metadata(desired: Desired, name: str, component: Component) -> Manifest:
    return _instance_metadata(desired.instance, name, component)


def _instance_metadata(instance: Instance, name: str, component: Component) -> Manifest:
    return {
        "name": name,
        "namespace": instance.namespace,
        "labels": labels_for(instance, component),
    }


def _pod_security(*, host_directory: bool) -> tuple[Manifest, Manifest]:
    """The pod's and the container's securityContext. Pods pass Pod Security "restricted":
    not root, no capabilities, no privilege escalation, the runtime's seccomp profile;
    fsGroup makes a provisioned volume writable for them. A node directory (host_path)
    is root's and fsGroup does not apply to it, so a pod that mounts one starts as the
    image's user (root, which hands over to mysql) with its default capabilities."""
    pod: Manifest = {"seccompProfile": {"type": "RuntimeDefault"}}
    container: Manifest = {"allowPrivilegeEscalation": False}
    if not host_directory:
        pod.update(
            runAsNonRoot=True,
            runAsUser=RUN_AS,
            runAsGroup=RUN_AS,
            fsGroup=RUN_AS,
            fsGroupChangePolicy="OnRootMismatch",
        )
        container["capabilities"] = {"drop": ["ALL"]}
    return pod, container


def _password_env(desired: Desired, names: InstanceNames, variable: str) -> Manifest:
    """From the operator's Secret, which holds the password the server has; from the
    user's Secret only for a Desired made without a password (builders' tests)."""
    ref = desired.instance.spec.password_secret_ref
    secret, key = (
        (ref.name, ref.key)
        if ref is not None and desired.applied_password is None
        else (names.credentials_secret, PASSWORD_KEY)
    )
    return _secret_env(variable, secret, key)


def _secret_env(variable: str, secret: str, key: str) -> Manifest:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


# -- credentials and scripts ----------------------------------------------------------------


def credentials_secret(desired: Desired) -> Manifest | None:
    """The operator's password Secret: the password the server has (passwords.py), which
    the server, its probe and the Jobs read. The program marks the value secret; it must
    never reach the state unencrypted."""
    password = desired.applied_password
    if password is None:
        return None
    names = names_for(desired.instance)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(desired, names.credentials_secret, Component.CREDENTIALS),
        "type": "Opaque",
        "stringData": {PASSWORD_KEY: password},
    }


def scripts_config_map(desired: Desired) -> Manifest:
    names = names_for(desired.instance)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(desired, names.scripts_config_map, Component.SCRIPTS),
        "data": dict(job_scripts()),
    }


# -- storage --------------------------------------------------------------------------------


def data_volume(desired: Desired) -> Manifest | None:
    spec = desired.instance.spec
    if spec.host_path is None or desired.data_binding.adopted:
        return None
    names = names_for(desired.instance)
    return _static_volume(
        desired,
        names.data_volume,
        names.data_claim,
        VolumeRole.DATA,
        host_path=spec.host_path,
        size=spec.storage_size,
        storage_class=spec.storage_class,
    )


def data_claim(desired: Desired) -> Manifest:
    spec = desired.instance.spec
    names = names_for(desired.instance)
    return _claim(
        desired,
        names.data_claim,
        Component.STORAGE,
        size=spec.storage_size,
        storage_class=spec.storage_class,
        static_volume=names.data_volume if spec.host_path is not None else None,
        binding=desired.data_binding,
    )


def backup_volume(desired: Desired) -> Manifest | None:
    backup = desired.instance.spec.backup
    if backup.host_path is None or desired.backup_binding.adopted:
        return None
    names = names_for(desired.instance)
    return _static_volume(
        desired,
        names.backup_volume,
        names.backup_claim,
        VolumeRole.BACKUP,
        host_path=backup.host_path,
        size=backup.storage_size,
        storage_class=backup.storage_class,
    )


def backup_claim(desired: Desired) -> Manifest:
    backup = desired.instance.spec.backup
    names = names_for(desired.instance)
    return _claim(
        desired,
        names.backup_claim,
        Component.BACKUP_STORAGE,
        size=backup.storage_size,
        storage_class=backup.storage_class,
        static_volume=names.backup_volume if backup.host_path is not None else None,
        binding=desired.backup_binding,
    )


def _claim(
    desired: Desired,
    name: str,
    component: Component,
    *,
    size: str,
    storage_class: str | None,
    static_volume: str | None,
    binding: ClaimBinding,
) -> Manifest:
    volume = static_volume
    if binding.adopted:
        volume, storage_class = binding.volume_name, binding.storage_class
        size = binding.size or size
    elif static_volume is not None and storage_class is None:
        storage_class = ""  # bind to our static volume, never to a provisioned one
    metadata = _metadata(desired, name, component)
    # Kept until the operator has made sure the volume outlives the claim.
    metadata["finalizers"] = [CLAIM_FINALIZER]
    spec: Manifest = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    if volume is not None:
        spec["volumeName"] = volume
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": spec}


def _static_volume(
    desired: Desired,
    name: str,
    claim: str,
    role: VolumeRole,
    *,
    host_path: str,
    size: str,
    storage_class: str | None,
) -> Manifest:
    instance = desired.instance
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "labels": volume_labels(instance.namespace, instance.name, role),
        },
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class or "",
            # Kubernetes itself must never wipe a host directory.
            "persistentVolumeReclaimPolicy": "Retain",
            # Reserved for our claim, so no other claim can bind it first.
            "claimRef": {"namespace": instance.namespace, "name": claim},
            "hostPath": {"path": host_path, "type": "DirectoryOrCreate"},
        },
    }


# -- the server -----------------------------------------------------------------------------


def deployment(desired: Desired) -> Manifest:
    instance, spec = desired.instance, desired.instance.spec
    names = names_for(instance)
    pod_security, container_security = _pod_security(host_directory=spec.host_path is not None)
    readiness = (
        gated_readiness_command(instance.uid) if desired.readiness_gated else READINESS_COMMAND
    )
    container: Manifest = {
        "name": "mysql",
        "image": spec.image,
        "env": [
            _password_env(desired, names, "MYSQL_ROOT_PASSWORD"),
            {"name": "MYSQL_DATABASE", "value": spec.database},
        ],
        "ports": [{"name": "mysql", "containerPort": MYSQL_PORT}],
        "volumeMounts": [{"name": "data", "mountPath": DATA_MOUNT, "subPath": DATA_SUB_PATH}],
        "securityContext": container_security,
        "resources": _resources(with_defaults(spec.resources, SERVER_RESOURCES)),
        # Ready means "answers a query over TCP" (and, gated, "this lifetime's restore has
        # ended"): the image's first-start initialization runs a server without
        # networking, which this ignores. The password goes through the environment,
        # never the command line.
        "readinessProbe": {
            "exec": {"command": ["sh", "-c", readiness]},
            "initialDelaySeconds": 5,
            "periodSeconds": 5,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(desired, names.deployment, Component.DATABASE),
        "spec": {
            "replicas": 1,
            # Two pods must never share one data directory.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector_for(instance)},
            "template": {
                "metadata": _pod_metadata(desired),
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security,
                    "containers": [container],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": names.data_claim}}
                    ],
                },
            },
        },
    }


def _pod_metadata(desired: Desired) -> Manifest:
    """The server reads its password from the environment, set when the pod starts: after
    a rotation, the count in the template makes a new pod."""
    metadata: Manifest = {"labels": labels_for(desired.instance, Component.DATABASE)}
    if desired.password_rotations is not None:
        metadata["annotations"] = {ANNOTATION_PASSWORD_ROTATIONS: str(desired.password_rotations)}
    return metadata


def with_defaults(given: ComputeResources, defaults: ComputeResources) -> ComputeResources:
    """`given`, with `defaults` where it says nothing. A default that would contradict a
    value the user gave (a request above the limit) yields to it."""
    requests: dict[str, str | None] = {}
    limits: dict[str, str | None] = {}
    for kind in ("cpu", "memory"):
        given_request, given_limit = getattr(given.requests, kind), getattr(given.limits, kind)
        request = given_request or getattr(defaults.requests, kind)
        limit = given_limit or getattr(defaults.limits, kind)
        if (
            request is not None
            and limit is not None
            and quantity_value(request) > quantity_value(limit)
        ):
            if given_request is None:
                request = limit
            else:
                limit = request
        requests[kind], limits[kind] = request, limit
    return ComputeResources(ResourceAmounts(**requests), ResourceAmounts(**limits))


def _resources(resources: ComputeResources) -> Manifest:
    def amounts(given: ResourceAmounts) -> dict[str, str]:
        present = {"cpu": given.cpu, "memory": given.memory}
        return {key: value for key, value in present.items() if value is not None}

    chosen = {"requests": amounts(resources.requests), "limits": amounts(resources.limits)}
    return {key: value for key, value in chosen.items() if value}


def client_service(desired: Desired) -> Manifest | None:
    """What clients connect to. No client may see a database that is still empty or half
    restored: gated, the Service exists from the start and routes only to a ready server,
    which the restore makes ready; otherwise it is absent until the restore has finished.
    During the final backup it selects nothing, so no client can write after the dump."""
    if desired.stage is Stage.RESTORING:
        return None
    instance = desired.instance
    names = names_for(instance)
    selector = selector_for(instance)
    if desired.stage in (Stage.FINAL_BACKUP, Stage.RELEASING):
        # No pod ever carries this label: the Service keeps its name but has no endpoints.
        selector = {**selector, LABEL_CUT_OFF: "true"}
    return _service(desired, names.service, Component.DATABASE, selector)


def internal_service(desired: Desired) -> Manifest:
    """What the restore and backup Jobs connect to; it always selects the server, and,
    gated, also before it is ready: the restore is what makes it ready."""
    names = names_for(desired.instance)
    service = _service(
        desired, names.internal_service, Component.INTERNAL, selector_for(desired.instance)
    )
    if desired.readiness_gated:
        service["spec"]["publishNotReadyAddresses"] = True
    return service


def _service(
    desired: Desired, name: str, component: Component, selector: dict[str, str]
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(desired, name, component),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "mysql", "port": MYSQL_PORT, "targetPort": MYSQL_PORT}],
        },
    }


# -- jobs -----------------------------------------------------------------------------------


def restore_job(desired: Desired) -> Manifest | None:
    """Declared while restoring; gated, also while serving (the finished Job stays), so
    that the end of the restore needs no `up`."""
    serving_gated = desired.stage is Stage.SERVING and desired.readiness_gated
    if desired.stage is not Stage.RESTORING and not serving_gated:
        return None
    names = names_for(desired.instance)
    idle = str(desired.instance.spec.backup.idle_timeout_seconds)
    env = [
        {"name": "RESTORE_WAIT_SECONDS", "value": str(RESTORE_WAIT_S)},
        {"name": "RESTORE_IDLE_TIMEOUT_SECONDS", "value": idle},
    ]
    source = desired.restore_source
    if source is not None:
        # A named backup: its dump, read from the claim that holds it, which is not written,
        # or downloaded from S3 into the Job's own staging directory.
        env.append({"name": "RESTORE_SOURCE", "value": source.dump})
    job = _job(
        desired,
        names.restore_job(desired.restore_attempt),
        Component.RESTORE,
        RESTORE_SCRIPT,
        env,
        backup_claim=source.claim if source is not None and source.url is None else None,
    )
    if source is None or source.url is None:
        return job
    return downloading(job, source=source, staging_mount=BACKUP_MOUNT)


def backup_job(desired: Desired) -> Manifest | None:
    """The final backup, taken after clients are cut off; it must succeed (or the data be
    retained) before anything is deleted. With spec.backup.s3 its dump, kept on the
    backup claim, is also copied into the bucket, and only that copy's success ends it."""
    if desired.stage is not Stage.FINAL_BACKUP:
        return None
    instance = desired.instance
    backup = instance.spec.backup
    job = _job(
        desired,
        names_for(instance).backup_job(desired.backup_attempt),
        Component.BACKUP,
        BACKUP_SCRIPT,
        [
            {"name": "BACKUP_KEEP", "value": str(backup.keep)},
            {"name": "BACKUP_FINAL", "value": "true"},
            {"name": "BACKUP_IDLE_TIMEOUT_SECONDS", "value": str(backup.idle_timeout_seconds)},
        ],
    )
    upload = desired.final_upload
    if upload is None:
        return job
    return uploading(
        job,
        s3=upload.store,
        key=upload.key,
        image=upload.transfer_image,
        trigger="delete",
        keep=backup.keep,
        prefix=instance_prefix(upload.store, instance.namespace, instance.name),
        staging_mount=BACKUP_MOUNT,
        final_of_instance=instance.uid,
    )


# A finished requested backup's Job, and its pod's log, stay this long for people to read.
REQUESTED_JOB_TTL_S: Final = 86400


def requested_backup_job(
    desired: Desired,
    name: str,
    backup: str,
    trigger: str = "manual",
    transfer_image: str | None = None,
) -> Manifest:
    """A backup asked for with a MySQLBackup, by a person (`manual`: rotation never removes
    its dump) or by the schedule (`schedule`: its dumps rotate, `backup.keep` of them
    kept). Taken while clients keep working; created directly, not by the stack. With
    spec.backup.s3 the dump goes to the bucket, moved there by `transfer_image`."""
    spec = desired.instance.spec.backup
    job = _job(
        desired,
        name,
        Component.BACKUP,
        BACKUP_SCRIPT,
        [
            {"name": "BACKUP_KEEP", "value": str(spec.keep)},
            {"name": "BACKUP_FINAL", "value": "false"},
            {"name": "BACKUP_TRIGGER", "value": trigger},
            {"name": "BACKUP_IDLE_TIMEOUT_SECONDS", "value": str(spec.idle_timeout_seconds)},
        ],
    )
    job["metadata"].setdefault("annotations", {})[ANNOTATION_BACKUP] = backup
    job["spec"]["ttlSecondsAfterFinished"] = REQUESTED_JOB_TTL_S
    if spec.s3 is None:
        return job
    assert transfer_image is not None, "checked before the Job is built"
    instance = desired.instance
    return uploading(
        job,
        s3=spec.s3,
        key=spec.s3.key_for(instance.namespace, instance.name, backup),
        image=transfer_image,
        trigger=trigger,
        keep=spec.keep,
        prefix=instance_prefix(spec.s3, instance.namespace, instance.name),
        staging_mount=BACKUP_MOUNT,
    )


# -- password rotation (created by the operator, not the stack) -----------------------------

ROTATION_WAIT_S: Final = 120  # how long the rotation Job waits for the server to answer
ROTATION_DEADLINE_S: Final = 600


@cache
def rotation_script() -> str:
    return resources.files("reconciler").joinpath("scripts", ROTATION_SCRIPT).read_text()


def rotation_secret(instance: Instance, name: str, *, old: str, new: str) -> Manifest:
    """Hands the rotation Job the password the server has and the new one; deleted once
    the rotation ended."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _instance_metadata(instance, name, Component.PASSWORD),
        "type": "Opaque",
        "stringData": {ROTATION_OLD_KEY: old, ROTATION_NEW_KEY: new},
    }


def rotation_job(instance: Instance, name: str) -> Manifest:
    """Gives every root account the password in the Secret of the same name
    (scripts/rotate-password.sh, run inline so that the scripts ConfigMap stays as it is)."""
    spec, names = instance.spec, names_for(instance)
    pod_security, container_security = _pod_security(host_directory=False)
    env = [
        {"name": "MYSQL_HOST", "value": names.internal_service},
        {"name": "MYSQL_PORT", "value": str(MYSQL_PORT)},
        _secret_env("OLD_PASSWORD", name, ROTATION_OLD_KEY),
        _secret_env("NEW_PASSWORD", name, ROTATION_NEW_KEY),
        {"name": "ROTATE_WAIT_SECONDS", "value": str(ROTATION_WAIT_S)},
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _instance_metadata(instance, name, Component.PASSWORD),
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": ROTATION_DEADLINE_S,
            "ttlSecondsAfterFinished": REQUESTED_JOB_TTL_S,
            "template": {
                "metadata": {"labels": labels_for(instance, Component.PASSWORD)},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security,
                    "containers": [
                        {
                            "name": Component.PASSWORD.value,
                            "image": spec.image,
                            "command": ["sh", "-c", rotation_script()],
                            "env": env,
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "securityContext": container_security,
                            "resources": _resources(JOB_RESOURCES),
                        }
                    ],
                },
            },
        },
    }


def rendered(desired: Desired) -> list[Manifest]:
    """Every object of the stage, in the order the program declares them."""
    builders = (
        credentials_secret,
        scripts_config_map,
        data_volume,
        data_claim,
        deployment,
        internal_service,
        client_service,
        backup_volume,
        backup_claim,
        restore_job,
        backup_job,
    )
    return [manifest for build in builders if (manifest := build(desired)) is not None]


def _job(
    desired: Desired,
    name: str,
    component: Component,
    script: str,
    extra_env: list[Manifest],
    *,
    backup_claim: str | None = None,
) -> Manifest:
    """`backup_claim`: another claim than the instance's own, mounted read-only."""
    instance, spec = desired.instance, desired.instance.spec
    names = names_for(instance)
    # Keys only when read-only: the manifests of every other Job stay as they were, and
    # so do the inputs fingerprints of the instances that run them.
    backup_mount: Manifest = {"name": "backup", "mountPath": BACKUP_MOUNT}
    backup_source: Manifest = {"claimName": names.backup_claim}
    if backup_claim is not None:
        backup_mount["readOnly"] = True
        backup_source = {"claimName": backup_claim, "readOnly": True}
    env = [
        {"name": "MYSQL_HOST", "value": names.internal_service},
        {"name": "MYSQL_PORT", "value": str(MYSQL_PORT)},
        {"name": "MYSQL_USER", "value": "root"},
        # The mysql clients read the password from MYSQL_PWD themselves.
        _password_env(desired, names, "MYSQL_PWD"),
        {"name": "MYSQL_DATABASE", "value": spec.database},
        {"name": "BACKUP_DIR", "value": BACKUP_MOUNT},
        {"name": "BACKUP_SCOPE", "value": spec.backup.scope.value},
        {"name": "INSTANCE_UID", "value": instance.uid},
        *extra_env,
    ]
    labels = labels_for(instance, component)
    pod_security, container_security = _pod_security(
        host_directory=spec.backup.host_path is not None
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(desired, name, component),
        "spec": {
            # One pod per Job: the operator retries with a new Job, with backoff, and
            # reads why the pod failed from its exit code and termination message.
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.job_deadline_seconds,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security,
                    "containers": [
                        {
                            "name": component.value,
                            # The instance's image has mysql and mysqldump matching the
                            # server.
                            "image": spec.image,
                            "command": ["sh", f"{SCRIPTS_MOUNT}/{script}"],
                            "env": env,
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                            "securityContext": container_security,
                            "resources": _resources(JOB_RESOURCES),
                            "volumeMounts": [
                                {"name": "scripts", "mountPath": SCRIPTS_MOUNT, "readOnly": True},
                                backup_mount,
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "scripts",
                            "configMap": {
                                "name": names.scripts_config_map,
                                "defaultMode": 0o555,
                            },
                        },
                        {
                            "name": "backup",
                            "persistentVolumeClaim": backup_source,
                        },
                    ],
                },
            },
        },
    }
