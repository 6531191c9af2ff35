"""The stack program (`reconciler.program`) with the real engine and provider on the local cluster.

Each test creates a real MySQL object first, so that the owner references in the stack
point at a live uid (with a made-up uid the garbage collector would delete what the stack
creates), parses it with `parse_instance` and runs `build_program` in an inline Automation
API stack: file backend in tmp_path, passphrase secrets provider. Every outcome is checked
in the API server with the kubernetes client, not through Pulumi's view of it.

Storage: this cluster has no provisioner, and pulumi-kubernetes awaits a claim until it is
Bound (for a class that is not WaitForFirstConsumer), so a dynamically provisioned claim
would hold `up` for the provider's five-minute timeout and fail. The spec's `host_path`
option gives both claims a static PV reserved for them, which the controller-manager
binds. The fake kwok node never touches the host path.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import pytest
from kubernetes import client
from pulumi import automation as auto

from reconciler.names import InstanceNames, names_for
from reconciler.program import ClusterAccess, Phase, build_program
from reconciler.spec import Instance, parse_instance
from tests.integration.test_crd_admission import GROUP, PLURAL, VERSION, ensure_crd
from tests.support import (
    delete_namespace_and_volumes,
    eventually,
    file_backend_stack,
    read_or_none,
)

pytestmark = pytest.mark.integration

PROJECT: Final = "mysql-it"
NAME: Final = "mysql-instance"
GONE_TIMEOUT_S: Final = 120.0
# Distinctive, so that finding it anywhere is never a coincidence.
PASSWORD: Final = f"it-root-{uuid.uuid4().hex}"
PASSWORD_B64: Final = base64.b64encode(PASSWORD.encode()).decode()

DEPLOYMENT_TYPE: Final = "kubernetes:apps/v1:Deployment"
JOB_TYPE: Final = "kubernetes:batch/v1:Job"
# Stack, provider, Secret, ConfigMap, data PV + PVC, Deployment, Service, backup PV + PVC,
# restore Job.
RUNNING_RESOURCES: Final = 11


def quiet(_line: str) -> None:
    """Engine output is not needed: outcomes are read from the API server."""


@dataclass
class StepLog:
    """Engine steps in the order the engine reported them: (op, resource type, name)."""

    steps: list[tuple[str, str, str]] = field(default_factory=list)

    def __call__(self, event: auto.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            meta = event.resource_pre_event.metadata
            self.steps.append((meta.op.value, meta.type, meta.urn.rsplit("::", 1)[-1]))
        elif event.res_outputs_event is not None:
            meta = event.res_outputs_event.metadata
            self.steps.append((f"{meta.op.value}-done", meta.type, meta.urn.rsplit("::", 1)[-1]))

    def ops(self, *, done: bool = False) -> list[tuple[str, str, str]]:
        return [step for step in self.steps if step[0].endswith("-done") == done]


@dataclass
class Lab:
    """One test's namespace, MySQL objects and stacks, with the clients that check them."""

    namespace: str
    api_client: client.ApiClient
    kubeconfig: Path
    work_dir: Path
    stacks: list[auto.Stack] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.batch = client.BatchV1Api(self.api_client)
        self.custom = client.CustomObjectsApi(self.api_client)

    # -- MySQL objects ----------------------------------------------------------------------

    def spec(self) -> dict[str, Any]:
        # Static hostPath volumes: see the module docstring.
        host_root = f"/var/lib/mysql-it/{self.namespace}"
        return {
            "image": "mysql:5.7",
            "database": "otus-database",
            "password": PASSWORD,
            "storage_size": "1Gi",
            "host_path": f"{host_root}/data",
            "backup": {"host_path": f"{host_root}/backup", "storage_size": "2Gi"},
        }

    def create_mysql(self) -> Instance:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MySQL",
            "metadata": {"name": NAME},
            "spec": self.spec(),
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        return self.read_mysql()

    def read_mysql(self) -> Instance:
        # What the reconciler will see: the stored object, with the schema's defaults.
        stored = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, NAME
        )
        return parse_instance(stored)

    def set_image(self, image: str) -> Instance:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, NAME, {"spec": {"image": image}}
        )
        return self.read_mysql()

    def delete_mysql(self) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, NAME)
        eventually(
            lambda: read_or_none(
                lambda: self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, NAME
                )
            ),
            lambda found: found is None,
            timeout_s=GONE_TIMEOUT_S,
            what=f"MySQL {self.namespace}/{NAME} deleted",
        )

    # -- stacks -----------------------------------------------------------------------------

    def stack(self, instance: Instance, phase: Phase) -> auto.Stack:
        """The instance's stack, selected with the program for `phase`."""
        stack = file_backend_stack(
            self.work_dir,
            PROJECT,
            f"{instance.namespace}.{instance.name}",
            build_program(instance, phase, ClusterAccess(kubeconfig=str(self.kubeconfig))),
        )
        self.stacks.append(stack)
        return stack

    def state_text(self, stack: auto.Stack) -> str:
        """The stack's state as `export_stack` shows it, which is with secrets decrypted."""
        deployment = stack.export_stack().deployment
        assert deployment is not None
        return json.dumps(deployment)

    def stored_state_text(self) -> str:
        """Every file the file backend wrote (checkpoints, history, backups), as stored."""
        texts = []
        for path in sorted((self.work_dir / "state").rglob("*")):
            if path.is_file():
                raw = path.read_bytes()
                texts.append(gzip.decompress(raw) if path.suffix == ".gz" else raw)
        return b"\n".join(texts).decode()

    # -- reading the cluster ----------------------------------------------------------------

    def job(self, name: str) -> client.V1Job | None:
        found: client.V1Job | None = read_or_none(
            lambda: self.batch.read_namespaced_job(name, self.namespace)
        )
        return found

    def claim(self, name: str) -> client.V1PersistentVolumeClaim | None:
        found: client.V1PersistentVolumeClaim | None = read_or_none(
            lambda: self.core.read_namespaced_persistent_volume_claim(name, self.namespace)
        )
        return found

    def volume(self, name: str) -> client.V1PersistentVolume | None:
        found: client.V1PersistentVolume | None = read_or_none(
            lambda: self.core.read_persistent_volume(name)
        )
        return found

    def serialized(self, obj: object) -> str:
        plain = self.api_client.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return json.dumps(plain)

    # -- cleanup ----------------------------------------------------------------------------

    def clean_up(self) -> None:
        """Best effort, in order: destroy what the stack may destroy, then the namespace
        (and with it the retained claims), then the static volumes reserved for it."""
        if self.stacks:
            try:
                # A RUNNING stack protects the data volume; the namespace takes it below.
                self.stacks[-1].destroy(on_output=quiet, exclude_protected=True)
            except auto.CommandError as error:
                print(f"cleanup: destroy failed, deleting the namespace anyway: {error}")
        delete_namespace_and_volumes(self.core, self.namespace, GONE_TIMEOUT_S)


@pytest.fixture(scope="module")
def mysql_crd(api_client: client.ApiClient) -> None:
    ensure_crd(api_client)


@pytest.fixture
def lab(
    mysql_crd: None,  # noqa: ARG001 (requested for its effect: the CRD is served)
    api_client: client.ApiClient,
    kubeconfig: Path,
    namespace_name: str,
    tmp_path: Path,
) -> Iterator[Lab]:
    lab = Lab(namespace_name, api_client, kubeconfig, tmp_path)
    lab.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace_name)))
    try:
        yield lab
    finally:
        lab.clean_up()


def assert_job_complete(job: client.V1Job | None) -> None:
    assert job is not None
    conditions = {c.type: c.status for c in job.status.conditions or []}
    assert conditions.get("Complete") == "True", conditions
    assert job.status.succeeded == 1


def assert_password_from_secret(
    env: list[client.V1EnvVar] | None, variable: str, secret: str
) -> None:
    (entry,) = [e for e in env or [] if e.name == variable]
    assert entry.value is None
    assert entry.value_from.secret_key_ref.name == secret
    assert entry.value_from.secret_key_ref.key == "password"


def up_running(lab: Lab, instance: Instance) -> auto.UpResult:
    result = lab.stack(instance, Phase.RUNNING).up(on_output=quiet)
    assert result.summary.result == "succeeded"
    return result


def test_up_creates_every_object_and_never_shows_the_password(lab: Lab) -> None:
    instance = lab.create_mysql()
    names = names_for(instance)
    up = up_running(lab, instance)
    assert up.summary.resource_changes == {"create": RUNNING_RESOURCES}
    ns = lab.namespace

    # Every object exists, carries app=<name> and is owned by the live MySQL object
    # (except the storage, which must outlive it or is cluster-scoped).
    owner = (instance.uid, "MySQL", NAME)

    def owners(meta: client.V1ObjectMeta | None) -> list[tuple[str, str, str]]:
        assert meta is not None
        return [(r.uid, r.kind, r.name) for r in meta.owner_references or []]

    secret = lab.core.read_namespaced_secret(names.credentials_secret, ns)
    assert base64.b64decode((secret.data or {})["password"]).decode() == PASSWORD
    config_map = lab.core.read_namespaced_config_map(names.scripts_config_map, ns)
    assert set(config_map.data or {}) == {"backup.sh", "restore.sh"}
    deployment = lab.apps.read_namespaced_deployment(names.deployment, ns)
    assert deployment.spec.strategy.type == "Recreate"
    assert deployment.spec.replicas == 1
    assert deployment.status.ready_replicas == 1
    service = lab.core.read_namespaced_service(names.service, ns)
    assert [(p.port, p.target_port) for p in service.spec.ports] == [(3306, 3306)]
    assert service.spec.selector == deployment.spec.selector.match_labels
    for meta in (secret.metadata, config_map.metadata, deployment.metadata, service.metadata):
        assert (meta.labels or {}).get("app") == NAME
        assert owners(meta) == [owner]

    data_claim, backup_claim = lab.claim(names.data_claim), lab.claim(names.backup_claim)
    assert data_claim is not None
    assert backup_claim is not None
    assert (data_claim.status.phase, data_claim.spec.volume_name) == ("Bound", names.data_volume)
    assert (backup_claim.status.phase, backup_claim.spec.volume_name) == (
        "Bound",
        names.backup_volume,
    )
    assert (data_claim.spec.resources.requests or {}).get("storage") == "1Gi"
    assert (backup_claim.spec.resources.requests or {}).get("storage") == "2Gi"
    assert owners(data_claim.metadata) == [owner]
    assert owners(backup_claim.metadata) == [], "the dumps must outlive the MySQL object"
    for volume_name in (names.data_volume, names.backup_volume):
        volume = lab.volume(volume_name)
        assert volume is not None
        assert volume.status.phase == "Bound"
        assert volume.spec.persistent_volume_reclaim_policy == "Retain"

    restore = lab.job(names.restore_job)
    assert_job_complete(restore)
    assert restore is not None
    assert owners(restore.metadata) == [owner]
    assert lab.job(names.backup_job) is None, "RUNNING declares no backup Job"

    # `kubectl get all -l app=<name>` finds the workload and the Job.
    selector = f"app={NAME}"
    assert [
        d.metadata.name
        for d in lab.apps.list_namespaced_deployment(ns, label_selector=selector).items
    ] == [names.deployment]
    assert [
        s.metadata.name for s in lab.core.list_namespaced_service(ns, label_selector=selector).items
    ] == [names.service]
    assert [
        j.metadata.name for j in lab.batch.list_namespaced_job(ns, label_selector=selector).items
    ] == [names.restore_job]

    # The password: only through secretKeyRef, in neither the specs nor the state.
    (mysql,) = deployment.spec.template.spec.containers
    assert_password_from_secret(mysql.env, "MYSQL_ROOT_PASSWORD", names.credentials_secret)
    (restorer,) = restore.spec.template.spec.containers
    assert_password_from_secret(restorer.env, "MYSQL_PWD", names.credentials_secret)
    for shown in (lab.serialized(deployment), lab.serialized(restore)):
        assert PASSWORD not in shown
        assert PASSWORD_B64 not in shown
    # export_stack decrypts secrets, so the Secret's data shows there: that proves the
    # search below would find the password if the backend had stored it unencrypted.
    assert PASSWORD_B64 in lab.state_text(lab.stacks[-1])
    stored = lab.stored_state_text()
    assert NAME in stored
    assert "ciphertext" in stored
    assert PASSWORD not in stored
    assert PASSWORD_B64 not in stored


def test_an_image_change_previews_as_one_deployment_update(lab: Lab) -> None:
    instance = lab.create_mysql()
    names = names_for(instance)
    up_running(lab, instance)
    restore_uid = lab.job(names.restore_job).metadata.uid

    changed = lab.set_image("mysql:8.0")
    log = StepLog()
    preview = lab.stack(changed, Phase.RUNNING).preview(on_output=quiet, on_event=log)

    assert preview.change_summary == {"same": RUNNING_RESOURCES - 1, "update": 1}
    changes = [step for step in log.ops() if step[0] != "same"]
    assert changes == [("update", DEPLOYMENT_TYPE, names.deployment)]
    # A preview applies nothing, and the restore Job (ignore_changes on spec) stays as is.
    deployment = lab.apps.read_namespaced_deployment(names.deployment, lab.namespace)
    assert [c.image for c in deployment.spec.template.spec.containers] == ["mysql:5.7"]
    restore = lab.job(names.restore_job)
    assert restore is not None
    assert restore.metadata.uid == restore_uid
    assert [c.image for c in restore.spec.template.spec.containers] == ["mysql:5.7"]


def test_teardown_backs_up_first_and_a_new_instance_takes_the_dumps_over(lab: Lab) -> None:
    instance = lab.create_mysql()
    names: InstanceNames = names_for(instance)
    up_running(lab, instance)
    backup_claim = lab.claim(names.backup_claim)
    assert backup_claim is not None
    backup_claim_uid = backup_claim.metadata.uid

    # 1. up in TEARDOWN: the backup Job is created and awaited; nothing is deleted.
    log = StepLog()
    teardown = lab.stack(instance, Phase.TEARDOWN).up(on_output=quiet, on_event=log)
    assert teardown.summary.result == "succeeded"
    changes = [step for step in log.ops() if step[0] != "same"]
    assert changes == [("create", JOB_TYPE, names.backup_job)]
    backup_job = lab.job(names.backup_job)
    assert_job_complete(backup_job)
    assert backup_job is not None
    (dumper,) = backup_job.spec.template.spec.containers
    assert_password_from_secret(dumper.env, "MYSQL_PWD", names.credentials_secret)
    assert PASSWORD not in lab.serialized(backup_job)
    assert lab.apps.read_namespaced_deployment(names.deployment, lab.namespace) is not None
    assert lab.claim(names.data_claim) is not None
    assert lab.claim(names.backup_claim) is not None
    assert lab.job(names.restore_job) is not None

    # 2. destroy: everything goes but the backup claim and its volume.
    destroy = lab.stacks[-1].destroy(on_output=quiet, on_event=log)
    assert destroy.summary.result == "succeeded"
    deletions = {step[2] for step in log.ops() if step[0] == "delete"}
    assert names.backup_job in deletions
    # The engine finished the backup Job before its first deletion of anything.
    done = log.ops(done=True)
    created_backup = done.index(("create-done", JOB_TYPE, names.backup_job))
    first_delete = min(i for i, step in enumerate(done) if step[0] == "delete-done")
    assert created_backup < first_delete

    ns = lab.namespace
    gone: dict[str, Callable[[], Any]] = {
        "secret": lambda: lab.core.read_namespaced_secret(names.credentials_secret, ns),
        "config map": lambda: lab.core.read_namespaced_config_map(names.scripts_config_map, ns),
        "deployment": lambda: lab.apps.read_namespaced_deployment(names.deployment, ns),
        "service": lambda: lab.core.read_namespaced_service(names.service, ns),
        "restore job": lambda: lab.batch.read_namespaced_job(names.restore_job, ns),
        "backup job": lambda: lab.batch.read_namespaced_job(names.backup_job, ns),
        "data claim": lambda: lab.core.read_namespaced_persistent_volume_claim(
            names.data_claim, ns
        ),
        "data volume": lambda: lab.core.read_persistent_volume(names.data_volume),
    }
    for what, read in gone.items():
        eventually(
            partial(read_or_none, read),
            lambda found: found is None,
            timeout_s=GONE_TIMEOUT_S,
            what=f"{what} deleted by destroy",
        )
    kept_claim = lab.claim(names.backup_claim)
    assert kept_claim is not None
    assert kept_claim.metadata.uid == backup_claim_uid
    assert kept_claim.metadata.deletion_timestamp is None
    kept_volume = lab.volume(names.backup_volume)
    assert kept_volume is not None
    assert kept_volume.metadata.deletion_timestamp is None
    assert names.backup_claim not in lab.state_text(lab.stacks[-1])

    # 3. The object goes; one with the same name comes, with a new uid and a new stack.
    lab.delete_mysql()
    lab.stacks[-1].workspace.remove_stack(lab.stacks[-1].name)
    again = lab.create_mysql()
    assert again.uid != instance.uid
    new_names = names_for(again)
    assert new_names.backup_claim == names.backup_claim
    assert new_names.restore_job != names.restore_job

    up = up_running(lab, again)
    assert up.summary.resource_changes == {"create": RUNNING_RESOURCES}
    taken_over = lab.claim(names.backup_claim)
    assert taken_over is not None
    assert taken_over.metadata.uid == backup_claim_uid, "the same claim, dumps and all"
    assert taken_over.status.phase == "Bound"
    assert taken_over.spec.volume_name == names.backup_volume
    assert names.backup_claim in lab.state_text(lab.stacks[-1])
    assert_job_complete(lab.job(new_names.restore_job))
    deployment = lab.apps.read_namespaced_deployment(new_names.deployment, ns)
    assert [r.uid for r in deployment.metadata.owner_references] == [again.uid]
