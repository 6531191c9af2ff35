"""The stack program under Pulumi's own mocks: what it declares, with which options.

A recording monitor keeps every RegisterResource request, so the tests see exactly what
the engine would receive: inputs as serialized (secrets still wrapped), and resource
options such as protect, retainOnDelete and dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib.metadata import version
from typing import Any

import pulumi
import pytest
from google.protobuf import json_format  # type: ignore[import-untyped]  # no stubs pinned
from pulumi.runtime.mocks import MockMonitor

from reconciler.fingerprint import inputs_fingerprint
from reconciler.job_scripts import job_scripts
from reconciler.program import ClusterAccess, Phase, build_program
from reconciler.spec import (
    BackupSpec,
    DeletionPolicy,
    Instance,
    MySQLSpec,
    SecretKeyRef,
    parse_instance,
)

pytestmark = pytest.mark.unit

PASSWORD = "otuspassword"
UID = "0f3c2a9e-1111-2222-3333-444455556666"
# The wire format that marks a secret value (pulumi/sdk/go/common/resource/sig).
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

PVC = "kubernetes:core/v1:PersistentVolumeClaim"
PV = "kubernetes:core/v1:PersistentVolume"
JOB = "kubernetes:batch/v1:Job"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
PROVIDER = "pulumi:providers:kubernetes"


@dataclass(frozen=True)
class Registration:
    type: str
    name: str
    urn: str
    wire: dict[str, Any]  # the serialized inputs, secrets still wrapped
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    dependencies: tuple[str, ...]
    ignore_changes: tuple[str, ...]
    provider: str

    @property
    def inputs(self) -> dict[str, Any]:
        unwrapped = unwrap_secrets(self.wire)
        assert isinstance(unwrapped, dict)
        return unwrapped


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise AssertionError(f"the program must not invoke functions: {args.token}")


class RecordingMonitor(MockMonitor):
    def __init__(self) -> None:
        super().__init__(Mocks())
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=self.make_urn(request.parent, request.type, request.name),
                    wire=json_format.MessageToDict(request.object),
                    protect=request.protect,
                    retain_on_delete=request.retainOnDelete,
                    delete_before_replace=request.deleteBeforeReplace,
                    dependencies=tuple(request.dependencies),
                    ignore_changes=tuple(request.ignoreChanges),
                    provider=request.provider,
                )
            )
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]


class Rendered:
    def __init__(self, registrations: list[Registration]) -> None:
        self.all = registrations

    def one(self, type_: str, name: str) -> Registration:
        found = [r for r in self.all if r.type == type_ and r.name == name]
        assert len(found) == 1, f"{type_} {name}: {[(r.type, r.name) for r in self.all]}"
        return found[0]

    def kinds(self) -> set[tuple[str, str]]:
        return {(r.type, r.name) for r in self.all}

    def objects(self) -> list[Registration]:
        return [r for r in self.all if r.type != PROVIDER]


def render(instance: Instance, phase: Phase) -> Rendered:
    monitor = RecordingMonitor()
    pulumi.runtime.set_mocks(monitor.mocks, monitor=monitor, preview=False)
    program = build_program(instance, phase, ClusterAccess(kubeconfig="/dev/null/kubeconfig"))

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> None:
        program()

    run()
    return Rendered(monitor.registrations)


def unwrap_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return unwrap_secrets(value.get("value"))
        return {key: unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(item) for item in value]
    return value


def plain_strings(value: Any) -> list[str]:
    """Every string in `value` that is not inside a secret."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return []
        return [s for key, item in value.items() for s in [key, *plain_strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in plain_strings(item)]
    return [value] if isinstance(value, str) else []


def instance_of(**spec_changes: Any) -> Instance:
    spec: dict[str, Any] = {
        "image": "mysql:5.7",
        "database": "otus-database",
        "password": PASSWORD,
        "storage_size": "1Gi",
        **spec_changes,
    }
    return parse_instance(
        {
            "apiVersion": "otus.homework/v1",
            "kind": "MySQL",
            "metadata": {"name": "mysql-instance", "namespace": "shop", "uid": UID},
            "spec": {key: value for key, value in spec.items() if value is not None},
        }
    )


@pytest.fixture(scope="module")
def running() -> Rendered:
    return render(instance_of(), Phase.RUNNING)


@pytest.fixture(scope="module")
def teardown() -> Rendered:
    return render(instance_of(), Phase.TEARDOWN)


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container["env"]}


# -- what is declared ----------------------------------------------------------------------


def test_running_declares_the_instance_and_no_backup_job(running: Rendered) -> None:
    assert running.kinds() == {
        (PROVIDER, "kubernetes"),
        (SECRET, "mysql-instance-credentials"),
        (CONFIG_MAP, "mysql-instance-scripts"),
        (PVC, "mysql-instance-data"),
        (DEPLOYMENT, "mysql-instance"),
        (SERVICE, "mysql-instance"),
        (PVC, "mysql-instance-backup"),
        (JOB, "mysql-instance-restore-0f3c2a9e"),
    }


def test_teardown_adds_the_backup_job(running: Rendered, teardown: Rendered) -> None:
    assert teardown.kinds() == running.kinds() | {(JOB, "mysql-instance-backup-0f3c2a9e")}


@pytest.mark.parametrize(
    "changes",
    [{"deletion_policy": "Delete"}, {"backup": {"on_delete": False}}],
)
def test_teardown_without_backup_declares_no_backup_job(changes: dict[str, Any]) -> None:
    rendered = render(instance_of(**changes), Phase.TEARDOWN)
    assert not [r for r in rendered.all if r.type == JOB and "-backup-" in r.name]


def test_the_provider_applies_server_side(running: Rendered) -> None:
    provider = running.one(PROVIDER, "kubernetes").inputs
    assert provider["enableServerSideApply"] in (True, "true")
    assert provider["kubeconfig"] == "/dev/null/kubeconfig"


def test_every_object_uses_the_provider_and_delete_before_replace(running: Rendered) -> None:
    provider_urn = running.one(PROVIDER, "kubernetes").urn
    for registration in running.objects():
        assert registration.provider.startswith(provider_urn + "::"), registration.name
        assert registration.delete_before_replace, registration.name


def test_everything_is_in_the_namespace_and_labelled_with_the_app(running: Rendered) -> None:
    for registration in running.objects():
        metadata = registration.inputs["metadata"]
        assert metadata["namespace"] == "shop", registration.name
        assert metadata["labels"]["app"] == "mysql-instance", registration.name
        assert metadata["labels"]["app.kubernetes.io/managed-by"] == "mysql-operator"


def test_owner_references_on_everything_but_the_backup_claim(running: Rendered) -> None:
    for registration in running.objects():
        owners = registration.inputs["metadata"].get("ownerReferences")
        if (registration.type, registration.name) == (PVC, "mysql-instance-backup"):
            assert not owners
            continue
        assert owners == [
            {
                "apiVersion": "otus.homework/v1",
                "kind": "MySQL",
                "name": "mysql-instance",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": False,
            }
        ], registration.name


# -- storage ---------------------------------------------------------------------------------


def test_the_data_claim_is_protected_while_running(running: Rendered, teardown: Rendered) -> None:
    claim = running.one(PVC, "mysql-instance-data")
    assert claim.protect
    assert not claim.retain_on_delete
    assert claim.inputs["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert claim.inputs["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim.inputs["spec"]  # the cluster's default class
    # TEARDOWN lifts the protection, or `destroy` would fail on it.
    assert not teardown.one(PVC, "mysql-instance-data").protect


def test_retain_keeps_the_data_claim_out_of_destroy_and_garbage_collection() -> None:
    rendered = render(instance_of(deletion_policy="Retain"), Phase.TEARDOWN)
    claim = rendered.one(PVC, "mysql-instance-data")
    assert claim.retain_on_delete
    assert not claim.inputs["metadata"].get("ownerReferences")


@pytest.mark.parametrize("phase", list(Phase))
def test_the_backup_claim_outlives_the_instance(phase: Phase) -> None:
    instance = instance_of(backup={"storage_size": "3Gi", "storage_class": "slow"})
    claim = render(instance, phase).one(PVC, "mysql-instance-backup")
    assert claim.retain_on_delete
    assert not claim.protect  # protect would make `destroy` fail
    assert claim.inputs["spec"]["resources"]["requests"]["storage"] == "3Gi"
    assert claim.inputs["spec"]["storageClassName"] == "slow"


def test_host_paths_declare_static_volumes_bound_to_the_claims() -> None:
    instance = instance_of(host_path="/mnt/mysql", backup={"host_path": "/mnt/dumps"})
    rendered = render(instance, Phase.RUNNING)
    data_volume = rendered.one(PV, "shop-mysql-instance-data")
    assert data_volume.protect
    spec = data_volume.inputs["spec"]
    assert spec["hostPath"]["path"] == "/mnt/mysql"
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["claimRef"] == {"namespace": "shop", "name": "mysql-instance-data"}
    assert spec["capacity"] == {"storage": "1Gi"}
    assert "namespace" not in data_volume.inputs["metadata"]
    claim = rendered.one(PVC, "mysql-instance-data")
    assert claim.inputs["spec"]["volumeName"] == "shop-mysql-instance-data"
    assert claim.inputs["spec"]["storageClassName"] == ""
    assert data_volume.urn in claim.dependencies

    backup_volume = rendered.one(PV, "shop-mysql-instance-backup")
    assert backup_volume.retain_on_delete
    assert backup_volume.inputs["spec"]["hostPath"]["path"] == "/mnt/dumps"
    backup_claim = rendered.one(PVC, "mysql-instance-backup")
    assert backup_claim.inputs["spec"]["volumeName"] == "shop-mysql-instance-backup"


# -- workload --------------------------------------------------------------------------------


def test_the_deployment(running: Rendered) -> None:
    deployment = running.one(DEPLOYMENT, "mysql-instance")
    spec = deployment.inputs["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    selector = spec["selector"]["matchLabels"]
    assert selector == {"app": "mysql-instance", "app.kubernetes.io/component": "database"}
    pod = spec["template"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "mysql:5.7"
    assert container["ports"] == [{"name": "mysql", "containerPort": 3306}]
    env = env_of(container)
    assert env["MYSQL_DATABASE"] == {"name": "MYSQL_DATABASE", "value": "otus-database"}
    assert env["MYSQL_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mysql-instance-credentials",
        "key": "password",
    }
    assert "value" not in env["MYSQL_ROOT_PASSWORD"]
    probe = container["readinessProbe"]
    assert probe["exec"]["command"][:2] == ["sh", "-c"]
    assert "SELECT 1" in probe["exec"]["command"][2]
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == "/var/lib/mysql"
    (volume,) = pod["spec"]["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == "mysql-instance-data"
    assert "resources" not in container


def test_resources_reach_the_container() -> None:
    instance = instance_of(
        resources={"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
    )
    deployment = render(instance, Phase.RUNNING).one(DEPLOYMENT, "mysql-instance")
    (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "1Gi"},
    }


def test_the_service(running: Rendered) -> None:
    service = running.one(SERVICE, "mysql-instance")
    # Not awaited (the provider sleeps 10 s per Endpoints event); the Deployment is.
    assert service.inputs["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    assert "annotations" not in running.one(DEPLOYMENT, "mysql-instance").inputs["metadata"]
    spec = service.inputs["spec"]
    assert spec["ports"] == [{"name": "mysql", "port": 3306, "targetPort": 3306}]
    assert spec["selector"] == {
        "app": "mysql-instance",
        "app.kubernetes.io/component": "database",
    }


# -- jobs ------------------------------------------------------------------------------------


def test_the_restore_job_runs_once_after_mysql_is_ready(running: Rendered) -> None:
    job = running.one(JOB, "mysql-instance-restore-0f3c2a9e")
    assert running.one(DEPLOYMENT, "mysql-instance").urn in job.dependencies
    assert running.one(PVC, "mysql-instance-backup").urn in job.dependencies
    assert running.one(CONFIG_MAP, "mysql-instance-scripts").urn in job.dependencies
    assert job.ignore_changes == ("spec",)  # never replaced, so never restores twice
    pod = job.inputs["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["sh", "/scripts/restore.sh"]
    assert pod["spec"]["restartPolicy"] == "Never"
    # The Service must not send traffic to the Job's pod.
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "restore"


def test_the_backup_job_has_a_deadline_and_keeps_n_dumps(teardown: Rendered) -> None:
    instance = instance_of(backup={"keep": 9})
    job = render(instance, Phase.TEARDOWN).one(JOB, "mysql-instance-backup-0f3c2a9e")
    assert teardown.one(DEPLOYMENT, "mysql-instance").urn in job.dependencies
    spec = job.inputs["spec"]
    assert spec["activeDeadlineSeconds"] > 0
    assert spec["backoffLimit"] >= 1
    (container,) = spec["template"]["spec"]["containers"]
    assert container["command"] == ["sh", "/scripts/backup.sh"]
    assert container["image"] == "mysql:5.7"
    env = env_of(container)
    assert env["BACKUP_KEEP"]["value"] == "9"
    assert env["MYSQL_HOST"]["value"] == "mysql-instance"
    assert env["MYSQL_DATABASE"]["value"] == "otus-database"
    assert env["MYSQL_PWD"]["valueFrom"]["secretKeyRef"]["name"] == "mysql-instance-credentials"
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert volumes["backup"]["persistentVolumeClaim"]["claimName"] == "mysql-instance-backup"
    assert volumes["scripts"]["configMap"]["name"] == "mysql-instance-scripts"


def test_the_scripts_config_map_carries_the_packaged_scripts(running: Rendered) -> None:
    config_map = running.one(CONFIG_MAP, "mysql-instance-scripts")
    assert config_map.inputs["data"] == dict(job_scripts())
    assert "--single-transaction" in config_map.inputs["data"]["backup.sh"]


# -- the password ----------------------------------------------------------------------------


@pytest.mark.parametrize("phase", list(Phase))
def test_no_plaintext_password_anywhere(phase: Phase) -> None:
    rendered = render(instance_of(), phase)
    for registration in rendered.all:
        leaks = [s for s in plain_strings(registration.wire) if PASSWORD in s]
        assert not leaks, f"{registration.type} {registration.name} has the password in plain"
    secret = rendered.one(SECRET, "mysql-instance-credentials")
    assert secret.inputs["stringData"] == {"password": PASSWORD}
    assert secret.wire["stringData"][SECRET_SIG_KEY] == SECRET_SIG


def test_a_password_secret_ref_is_used_directly() -> None:
    instance = instance_of(password=None, passwordSecretRef={"name": "root-pw", "key": "pw"})
    rendered = render(instance, Phase.TEARDOWN)
    assert not [r for r in rendered.all if r.type == SECRET]
    deployment = rendered.one(DEPLOYMENT, "mysql-instance")
    (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
    ref = env_of(container)["MYSQL_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "root-pw", "key": "pw"}
    job = rendered.one(JOB, "mysql-instance-backup-0f3c2a9e")
    (job_container,) = job.inputs["spec"]["template"]["spec"]["containers"]
    assert env_of(job_container)["MYSQL_PWD"]["valueFrom"]["secretKeyRef"] == ref


# -- the takeover assumption and the fingerprint -------------------------------------------


def test_the_backup_claim_takeover_assumption_still_holds() -> None:
    # reconciler/program.py explains why: from 4.29 the Provider needs upsertExistingObjects.
    major, minor = (int(part) for part in version("pulumi-kubernetes").split(".")[:2])
    assert (major, minor) < (4, 29), "set upsertExistingObjects on the Provider in program.py"


def test_the_fingerprint_is_stable_and_sensitive() -> None:
    instance = instance_of()
    first = inputs_fingerprint(instance, Phase.RUNNING)
    assert first == inputs_fingerprint(instance_of(), Phase.RUNNING)
    assert first.startswith("sha256:")
    assert len(first) == len("sha256:") + 64
    assert first != inputs_fingerprint(instance, Phase.TEARDOWN)
    changed_image = replace(instance, spec=replace(instance.spec, image="mysql:8.0"))
    assert first != inputs_fingerprint(changed_image, Phase.RUNNING)
    changed_password = replace(instance, spec=replace(instance.spec, password="other"))
    assert first != inputs_fingerprint(changed_password, Phase.RUNNING)
    assert PASSWORD not in first


def test_the_fingerprint_ignores_nothing_a_default_could_hide() -> None:
    spec = MySQLSpec(
        image="mysql:5.7",
        database="db",
        storage_size="1Gi",
        backup=BackupSpec(storage_size="1Gi"),
        password_secret_ref=SecretKeyRef(name="s"),
    )
    instance = Instance(name="a", namespace="n", uid="u", spec=spec)
    retained = replace(instance, spec=replace(spec, deletion_policy=DeletionPolicy.RETAIN))
    assert inputs_fingerprint(instance, Phase.RUNNING) != inputs_fingerprint(
        retained, Phase.RUNNING
    )
