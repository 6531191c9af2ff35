"""The stack program (`reconciler.program`) with the real engine and provider on the local
cluster, stage by stage.

Each test creates a real MySQL object first and parses it with `parse_instance`, so the
program sees exactly what the reconciler would, and runs `build_program` in an inline
Automation API stack: file backend in tmp_path, passphrase secrets provider. Every outcome
is checked in the API server with the kubernetes client, not through Pulumi's view of it.

Storage: this cluster has no provisioner, so the spec's `host_path` option gives both
claims a static PV reserved for them, which the controller-manager binds. The fake kwok
node never touches the host path. Nothing in the program waits for readiness, so these
tests wait for what they need themselves.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Final

import pytest
from kubernetes import client
from pulumi import automation as auto

from reconciler.desired import Desired
from reconciler.names import names_for
from reconciler.program import ClusterAccess, build_program
from reconciler.spec import Instance, parse_instance
from reconciler.vocabulary import Stage
from tests.harness import GROUP, PLURAL, VERSION, ensure_crd
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
SERVICE_TYPE: Final = "kubernetes:core/v1:Service"
JOB_TYPE: Final = "kubernetes:batch/v1:Job"
# Stack, provider, Secret, ConfigMap, data PV + PVC, Deployment, internal Service,
# backup PV + PVC, restore Job.
RESTORING_RESOURCES: Final = 11


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

    def changes(self) -> list[tuple[str, str, str]]:
        return [step for step in self.ops() if step[0] != "same"]


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

    def stack(self, desired: Desired, work_dir: Path | None = None) -> auto.Stack:
        """The instance's stack, selected with the program for `desired`."""
        instance = desired.instance
        stack = file_backend_stack(
            work_dir or self.work_dir,
            PROJECT,
            f"{instance.namespace}.{instance.name}",
            build_program(desired, ClusterAccess(kubeconfig=str(self.kubeconfig))),
        )
        self.stacks.append(stack)
        return stack

    def up(self, desired: Desired, work_dir: Path | None = None) -> tuple[auto.UpResult, StepLog]:
        log = StepLog()
        result = self.stack(desired, work_dir).up(on_output=quiet, on_event=log)
        assert result.summary.result == "succeeded"
        return result, log

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
        """Best effort, in order: destroy what the stack may destroy, then release the
        retained claims (no operator runs here), then the namespace and its volumes."""
        if self.stacks:
            try:
                self.stacks[-1].destroy(on_output=quiet)
            except auto.CommandError as error:
                print(f"cleanup: destroy failed, deleting the namespace anyway: {error}")
        for claim in self.core.list_namespaced_persistent_volume_claim(self.namespace).items:
            read_or_none(
                partial(
                    self.core.patch_namespaced_persistent_volume_claim,
                    str(claim.metadata.name),
                    self.namespace,
                    {"metadata": {"finalizers": None}},
                )
            )
        delete_namespace_and_volumes(self.core, self.namespace, GONE_TIMEOUT_S)

    def wait_for_job(self, name: str) -> client.V1Job:
        """Until the Job completed (the kwok node completes Job pods at once)."""

        def complete(job: client.V1Job | None) -> bool:
            conditions = {c.type: c.status for c in (job.status.conditions or [])} if job else {}
            return conditions.get("Complete") == "True"

        found = eventually(
            partial(self.job, name), complete, timeout_s=60, what=f"Job {name} complete"
        )
        assert found is not None
        return found


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


def assert_password_from_secret(
    env: list[client.V1EnvVar] | None, variable: str, secret: str
) -> None:
    (entry,) = [e for e in env or [] if e.name == variable]
    assert entry.value is None
    assert entry.value_from.secret_key_ref.name == secret
    assert entry.value_from.secret_key_ref.key == "password"


def test_the_restoring_stage_creates_the_server_but_no_client_service(lab: Lab) -> None:
    instance = lab.create_mysql()
    names = names_for(instance)
    up, _ = lab.up(Desired(instance, Stage.RESTORING))
    assert up.summary.resource_changes == {"create": RESTORING_RESOURCES}
    ns = lab.namespace

    secret = lab.core.read_namespaced_secret(names.credentials_secret, ns)
    assert base64.b64decode((secret.data or {})["password"]).decode() == PASSWORD
    config_map = lab.core.read_namespaced_config_map(names.scripts_config_map, ns)
    assert set(config_map.data or {}) == {"backup.sh", "restore.sh"}
    deployment = lab.apps.read_namespaced_deployment(names.deployment, ns)
    assert deployment.spec.strategy.type == "Recreate"
    assert deployment.spec.replicas == 1
    assert read_or_none(lambda: lab.core.read_namespaced_service(names.service, ns)) is None
    internal = lab.core.read_namespaced_service(names.internal_service, ns)
    assert internal.spec.selector == deployment.spec.selector.match_labels
    restore = lab.wait_for_job(names.restore_job(1))

    # No object has an owner reference: the garbage collector must never act on them.
    for meta in (
        secret.metadata,
        config_map.metadata,
        deployment.metadata,
        internal.metadata,
        restore.metadata,
    ):
        assert meta.owner_references is None
    data_claim, backup_claim = lab.claim(names.data_claim), lab.claim(names.backup_claim)
    assert data_claim is not None
    assert backup_claim is not None
    for claim in (data_claim, backup_claim):
        assert claim.metadata.owner_references is None
        assert claim.metadata.finalizers is not None
        assert "otus.homework/data-protection" in claim.metadata.finalizers
    eventually(
        lambda: lab.claim(names.data_claim),
        lambda found: found is not None and found.status.phase == "Bound",
        timeout_s=60,
        what="the data claim Bound",
    )
    for volume_name in (names.data_volume, names.backup_volume):
        volume = lab.volume(volume_name)
        assert volume is not None
        assert volume.spec.persistent_volume_reclaim_policy == "Retain"

    # Only the server matches app=<name>: Jobs and their pods carry their own labels.
    assert [
        p.metadata.name
        for p in lab.core.list_namespaced_pod(ns, label_selector=f"app={NAME}").items
        if "restore" in p.metadata.name
    ] == []

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


def test_serving_adds_the_client_service_and_retires_the_restore_job(lab: Lab) -> None:
    instance = lab.create_mysql()
    names = names_for(instance)
    lab.up(Desired(instance, Stage.RESTORING))
    lab.wait_for_job(names.restore_job(1))

    _, log = lab.up(Desired(instance, Stage.SERVING))
    assert sorted(log.changes()) == [
        ("create", SERVICE_TYPE, names.service),
        ("delete", JOB_TYPE, "restore"),
    ]
    service = lab.core.read_namespaced_service(names.service, lab.namespace)
    assert service.spec.selector == {"app": NAME, "app.kubernetes.io/component": "database"}
    eventually(
        partial(lab.job, names.restore_job(1)),
        lambda job: job is None,
        timeout_s=GONE_TIMEOUT_S,
        what="the finished restore Job removed",
    )

    # An image change previews as one Deployment update, and applies nothing.
    changed = lab.set_image("mysql:8.0")
    preview_log = StepLog()
    preview = lab.stack(Desired(changed, Stage.SERVING)).preview(
        on_output=quiet, on_event=preview_log
    )
    assert dict(preview.change_summary).get("update") == 1  # type: ignore[call-overload]
    assert preview_log.changes() == [("update", DEPLOYMENT_TYPE, names.deployment)]
    deployment = lab.apps.read_namespaced_deployment(names.deployment, lab.namespace)
    assert [c.image for c in deployment.spec.template.spec.containers] == ["mysql:5.7"]


def test_gated_the_first_up_declares_everything_and_a_finished_restore_is_left_alone(
    lab: Lab,
) -> None:
    instance = lab.create_mysql()
    names = names_for(instance)
    restoring = Desired(instance, Stage.SERVING, readiness_gated=True)
    up, _ = lab.up(restoring)
    assert up.summary.resource_changes == {"create": RESTORING_RESOURCES + 1}
    ns = lab.namespace
    service = lab.core.read_namespaced_service(names.service, ns)
    assert service.spec.selector == {"app": NAME, "app.kubernetes.io/component": "database"}
    internal = lab.core.read_namespaced_service(names.internal_service, ns)
    assert internal.spec.publish_not_ready_addresses is True
    container = lab.apps.read_namespaced_deployment(names.deployment, ns).spec.template.spec
    probe = container.containers[0].readiness_probe._exec.command
    assert f"uid = '{instance.uid}'" in probe[2]
    first = lab.wait_for_job(names.restore_job(1))

    # The restore's end changes nothing declared; a later image change updates the server
    # and leaves the finished Job as it ran (replacing it would run the restore again).
    finished = replace(restoring, restore_finished=True)
    _, log = lab.up(finished)
    assert log.changes() == []
    newer = replace(finished, instance=lab.set_image("mysql:8.0"))
    _, log = lab.up(newer)
    assert log.changes() == [("update", DEPLOYMENT_TYPE, names.deployment)]
    job = lab.job(names.restore_job(1))
    assert job is not None
    assert job.metadata.uid == first.metadata.uid


def test_a_new_attempt_replaces_the_failed_attempts_job(lab: Lab) -> None:
    instance = lab.create_mysql()
    names = names_for(instance)
    lab.up(Desired(instance, Stage.RESTORING))
    first = lab.wait_for_job(names.restore_job(1))

    _, log = lab.up(Desired(instance, Stage.RESTORING, restore_attempt=2))
    assert {step[1] for step in log.changes()} == {JOB_TYPE}
    second = lab.wait_for_job(names.restore_job(2))
    assert second.metadata.uid != first.metadata.uid
    eventually(
        partial(lab.job, names.restore_job(1)),
        lambda job: job is None,
        timeout_s=GONE_TIMEOUT_S,
        what="the first attempt's Job removed",
    )


def test_the_final_backup_cuts_clients_off_first_and_destroy_keeps_the_claims(
    lab: Lab,
) -> None:
    instance = lab.create_mysql()
    names = names_for(instance)
    lab.up(Desired(instance, Stage.RESTORING))
    lab.up(Desired(instance, Stage.SERVING))

    _, log = lab.up(Desired(instance, Stage.FINAL_BACKUP))
    done = log.ops(done=True)
    cut_off = done.index(("update-done", SERVICE_TYPE, names.service))
    backup_created = done.index(("create-done", JOB_TYPE, "backup"))
    assert cut_off < backup_created, done
    service = lab.core.read_namespaced_service(names.service, lab.namespace)
    assert service.spec.selector["otus.homework/clients-cut-off"] == "true"
    backup = lab.wait_for_job(names.backup_job(1))
    (dumper,) = backup.spec.template.spec.containers
    assert_password_from_secret(dumper.env, "MYSQL_PWD", names.credentials_secret)
    env = {e.name: e.value for e in dumper.env}
    assert env["BACKUP_FINAL"] == "true"
    assert env["MYSQL_HOST"] == names.internal_service
    assert PASSWORD not in lab.serialized(backup)

    # destroy: everything goes but the claims and their volumes (the operator releases
    # a data claim itself, after the backup).
    destroy = lab.stacks[-1].destroy(on_output=quiet)
    assert destroy.summary.result == "succeeded"
    ns = lab.namespace
    gone: dict[str, Callable[[], Any]] = {
        "secret": lambda: lab.core.read_namespaced_secret(names.credentials_secret, ns),
        "config map": lambda: lab.core.read_namespaced_config_map(names.scripts_config_map, ns),
        "deployment": lambda: lab.apps.read_namespaced_deployment(names.deployment, ns),
        "service": lambda: lab.core.read_namespaced_service(names.service, ns),
        "internal service": lambda: lab.core.read_namespaced_service(names.internal_service, ns),
        "backup job": lambda: lab.batch.read_namespaced_job(names.backup_job(1), ns),
    }
    for what, read in gone.items():
        eventually(
            partial(read_or_none, read),
            lambda found: found is None,
            timeout_s=GONE_TIMEOUT_S,
            what=f"{what} deleted by destroy",
        )
    for claim in (names.data_claim, names.backup_claim):
        kept = lab.claim(claim)
        assert kept is not None
        assert kept.metadata.deletion_timestamp is None
    for volume in (names.data_volume, names.backup_volume):
        assert lab.volume(volume) is not None


def test_a_new_stack_adopts_the_live_objects_of_a_lost_one(lab: Lab, tmp_path: Path) -> None:
    instance = lab.create_mysql()
    names = names_for(instance)
    lab.up(Desired(instance, Stage.RESTORING))
    lab.up(Desired(instance, Stage.SERVING))
    deployment_uid = lab.apps.read_namespaced_deployment(
        names.deployment, lab.namespace
    ).metadata.uid

    # The state is gone (another backend, empty): a new stack with its own field
    # managers applies the same objects, and takes them over without replacing any.
    elsewhere = tmp_path / "another-backend"
    elsewhere.mkdir()
    up, _ = lab.up(Desired(instance, Stage.SERVING), work_dir=elsewhere)
    assert set(up.summary.resource_changes or {}) == {"create"}
    deployment = lab.apps.read_namespaced_deployment(names.deployment, lab.namespace)
    assert deployment.metadata.uid == deployment_uid
    claim = lab.claim(names.data_claim)
    assert claim is not None
    assert claim.status.phase == "Bound"
