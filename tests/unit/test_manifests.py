"""The manifest builders, as plain dicts: what each stage declares, and the data-safety
properties of each object (no owner references, claim finalizers, Retain, no password)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from reconciler import manifests
from reconciler.desired import ClaimBinding, Desired
from reconciler.job_scripts import job_scripts
from reconciler.manifests import Manifest
from reconciler.vocabulary import CLAIM_FINALIZER, LABEL_CUT_OFF, Stage
from tests.unit.builders import (
    BACKUP_CLAIM,
    BACKUP_JOB_1,
    DATA_CLAIM,
    NAME,
    NAMESPACE,
    PASSWORD,
    RESTORE_JOB_1,
    STATIC_BACKUP_PV,
    STATIC_DATA_PV,
    UID,
    desired,
)

pytestmark = pytest.mark.unit

SERVER_SELECTOR = {"app": NAME, "app.kubernetes.io/component": "database"}


def kinds_and_names(of: Desired) -> set[tuple[str, str]]:
    return {(m["kind"], m["metadata"]["name"]) for m in manifests.rendered(of)}


def keys_anywhere(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from keys_anywhere(item)
    elif isinstance(value, list):
        for item in value:
            yield from keys_anywhere(item)


def strings_anywhere(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings_anywhere(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_anywhere(item)
    elif isinstance(value, str):
        yield value


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {item["name"]: item for item in container["env"]}


def only_container(workload: Manifest) -> Manifest:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


EVERY_STAGE = pytest.mark.parametrize("stage", list(Stage))
HOST_PATHS: dict[str, Any] = {"host_path": "/mnt/mysql", "backup": {"host_path": "/mnt/dumps"}}


# -- what each stage declares ---------------------------------------------------------------


COMMON = {
    ("Secret", "mysql-instance-credentials"),
    ("ConfigMap", "mysql-instance-scripts"),
    ("PersistentVolumeClaim", DATA_CLAIM),
    ("PersistentVolumeClaim", BACKUP_CLAIM),
    ("Deployment", NAME),
    ("Service", "mysql-instance-internal"),
}


def test_restoring_declares_the_server_and_the_restore_job_but_no_client_service() -> None:
    assert kinds_and_names(desired(Stage.RESTORING)) == COMMON | {("Job", RESTORE_JOB_1)}


def test_serving_adds_the_client_service_and_no_job() -> None:
    assert kinds_and_names(desired(Stage.SERVING)) == COMMON | {("Service", NAME)}


def test_final_backup_declares_the_backup_job_and_no_restore_job() -> None:
    assert kinds_and_names(desired(Stage.FINAL_BACKUP)) == COMMON | {
        ("Service", NAME),
        ("Job", BACKUP_JOB_1),
    }


def test_releasing_declares_no_job() -> None:
    assert kinds_and_names(desired(Stage.RELEASING)) == COMMON | {("Service", NAME)}


def gated(stage: Stage) -> Desired:
    return replace(desired(stage), readiness_gated=True)


def test_gated_serving_also_keeps_the_restore_job_so_its_end_needs_no_up() -> None:
    assert kinds_and_names(gated(Stage.SERVING)) == COMMON | {
        ("Service", NAME),
        ("Job", RESTORE_JOB_1),
    }
    assert kinds_and_names(gated(Stage.FINAL_BACKUP)) == kinds_and_names(
        desired(Stage.FINAL_BACKUP)
    )


def probe_of(of: Desired) -> str:
    deployment = manifests.deployment(of)
    command = only_container(deployment)["readinessProbe"]["exec"]["command"]
    assert command[:2] == ["sh", "-c"]
    return str(command[2])


@EVERY_STAGE
def test_a_gated_server_is_ready_only_after_this_lifetimes_restore(stage: Stage) -> None:
    probe = probe_of(gated(stage))
    assert f"uid = '{UID}'" in probe
    assert "event IN ('restored', 'initialized', 'kept')" in probe
    assert PASSWORD not in probe
    assert probe_of(desired(stage)) == manifests.READINESS_COMMAND


def test_the_gated_probe_refuses_a_uid_it_would_have_to_quote() -> None:
    with pytest.raises(ValueError, match="unexpected instance uid"):
        manifests.gated_readiness_command("x' OR '1")


def test_gated_jobs_reach_the_server_before_it_is_ready() -> None:
    assert manifests.internal_service(gated(Stage.SERVING))["spec"]["publishNotReadyAddresses"]
    plain = manifests.internal_service(desired(Stage.SERVING))
    assert "publishNotReadyAddresses" not in plain["spec"]
    client = manifests.client_service(gated(Stage.SERVING))
    assert client is not None
    assert "publishNotReadyAddresses" not in client["spec"], "clients reach ready servers only"


@EVERY_STAGE
def test_no_owner_references_anywhere(stage: Stage) -> None:
    for manifest in manifests.rendered(desired(stage, **HOST_PATHS)):
        assert "ownerReferences" not in set(keys_anywhere(manifest)), manifest["metadata"]


@EVERY_STAGE
def test_every_namespaced_object_is_in_the_instance_namespace(stage: Stage) -> None:
    for manifest in manifests.rendered(desired(stage)):
        assert manifest["metadata"]["namespace"] == NAMESPACE, manifest["metadata"]["name"]
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == NAME
        assert labels["app.kubernetes.io/managed-by"] == "mysql-operator"


# -- claims and volumes ---------------------------------------------------------------------


@pytest.mark.parametrize("builder", [manifests.data_claim, manifests.backup_claim])
def test_claims_carry_the_data_protection_finalizer(builder: Any) -> None:
    claim = builder(desired())
    assert claim["metadata"]["finalizers"] == [CLAIM_FINALIZER]
    assert CLAIM_FINALIZER == "otus.homework/data-protection"


def test_a_provisioned_claim_asks_for_the_spec_size_and_class() -> None:
    claim = manifests.data_claim(desired(storage_size="3Gi", storage_class="fast"))
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "3Gi"}},
        "storageClassName": "fast",
    }


def test_without_a_class_the_claim_takes_the_cluster_default() -> None:
    assert "storageClassName" not in manifests.data_claim(desired())["spec"]


def test_the_backup_claim_has_its_own_size_and_class() -> None:
    claim = manifests.backup_claim(desired(backup={"storage_size": "5Gi", "storage_class": "slow"}))
    assert claim["metadata"]["name"] == BACKUP_CLAIM
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "slow"


def test_an_adopted_binding_names_the_volume_with_its_class_and_size() -> None:
    binding = ClaimBinding(volume_name="pvc-old-data", storage_class="local", size="2Gi")
    claim = manifests.data_claim(desired(data_binding=binding, storage_size="1Gi"))
    assert claim["spec"]["volumeName"] == "pvc-old-data"
    assert claim["spec"]["storageClassName"] == "local"
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"


def test_an_adopted_binding_without_a_size_keeps_the_spec_size() -> None:
    binding = ClaimBinding(volume_name="pvc-old-data", storage_class="", size=None)
    claim = manifests.data_claim(desired(data_binding=binding, storage_size="4Gi"))
    assert claim["spec"]["resources"]["requests"]["storage"] == "4Gi"
    assert claim["spec"]["storageClassName"] == ""


def test_an_adopted_backup_binding_leaves_the_data_claim_alone() -> None:
    binding = ClaimBinding(volume_name="pvc-old-dumps", storage_class="local", size="9Gi")
    of = desired(backup_binding=binding)
    assert manifests.backup_claim(of)["spec"]["volumeName"] == "pvc-old-dumps"
    assert "volumeName" not in manifests.data_claim(of)["spec"]


def test_host_paths_declare_static_volumes_that_kubernetes_never_wipes() -> None:
    of = desired(**HOST_PATHS)
    data, dumps = manifests.data_volume(of), manifests.backup_volume(of)
    assert data is not None
    assert dumps is not None
    assert data["metadata"]["name"] == STATIC_DATA_PV
    assert "namespace" not in data["metadata"], "volumes are cluster-scoped"
    assert data["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert data["spec"]["hostPath"] == {"path": "/mnt/mysql", "type": "DirectoryOrCreate"}
    assert data["spec"]["claimRef"] == {"namespace": NAMESPACE, "name": DATA_CLAIM}
    assert data["spec"]["capacity"] == {"storage": "1Gi"}
    assert dumps["metadata"]["name"] == STATIC_BACKUP_PV
    assert dumps["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert dumps["spec"]["claimRef"] == {"namespace": NAMESPACE, "name": BACKUP_CLAIM}


def test_static_volumes_say_whose_data_they_hold() -> None:
    data = manifests.data_volume(desired(**HOST_PATHS))
    assert data is not None
    assert data["metadata"]["labels"] == {
        "otus.homework/instance-namespace": NAMESPACE,
        "otus.homework/instance-name": NAME,
        "otus.homework/volume-role": "data",
        "app.kubernetes.io/managed-by": "mysql-operator",
    }


def test_a_claim_for_a_static_volume_binds_it_by_name_without_a_class() -> None:
    claim = manifests.data_claim(desired(**HOST_PATHS))
    assert claim["spec"]["volumeName"] == STATIC_DATA_PV
    assert claim["spec"]["storageClassName"] == ""


def test_a_static_volume_keeps_a_class_the_spec_names() -> None:
    of = desired(host_path="/mnt/mysql", storage_class="manual")
    volume = manifests.data_volume(of)
    assert volume is not None
    assert volume["spec"]["storageClassName"] == "manual"
    assert manifests.data_claim(of)["spec"]["storageClassName"] == "manual"


def test_without_host_paths_no_volume_is_declared() -> None:
    assert manifests.data_volume(desired()) is None
    assert manifests.backup_volume(desired()) is None


def test_an_adopted_volume_replaces_the_static_one() -> None:
    binding = ClaimBinding(volume_name="shop-mysql-instance-data", storage_class="", size="1Gi")
    assert manifests.data_volume(desired(data_binding=binding, **HOST_PATHS)) is None
    assert manifests.backup_volume(desired(data_binding=binding, **HOST_PATHS)) is not None


# -- the server and its Services ------------------------------------------------------------


def test_the_deployment_runs_one_pod_at_a_time_on_the_data_claim() -> None:
    deployment = manifests.deployment(desired())
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["selector"] == {"matchLabels": SERVER_SELECTOR}
    assert SERVER_SELECTOR.items() <= spec["template"]["metadata"]["labels"].items()
    (volume,) = spec["template"]["spec"]["volumes"]
    assert volume == {"name": "data", "persistentVolumeClaim": {"claimName": DATA_CLAIM}}
    container = only_container(deployment)
    assert container["image"] == "mysql:5.7"
    assert container["volumeMounts"] == [
        {"name": "data", "mountPath": "/var/lib/mysql", "subPath": "mysql"}
    ]
    assert env_of(container)["MYSQL_DATABASE"] == {
        "name": "MYSQL_DATABASE",
        "value": "otus-database",
    }
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }


def test_resources_reach_the_container_over_the_defaults() -> None:
    of = desired(resources={"requests": {"cpu": "250m"}, "limits": {"memory": "2Gi"}})
    assert only_container(manifests.deployment(of))["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"memory": "2Gi"},
    }


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # A limit below the default request: the request follows the limit.
        (
            {"limits": {"memory": "128Mi", "cpu": "50m"}},
            {
                "requests": {"cpu": "50m", "memory": "128Mi"},
                "limits": {"cpu": "50m", "memory": "128Mi"},
            },
        ),
        # A request above the default limit: the limit follows the request.
        (
            {"requests": {"memory": "4Gi"}},
            {"requests": {"cpu": "100m", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
        ),
    ],
)
def test_a_default_never_contradicts_what_the_user_gave(
    given: dict[str, Any], expected: dict[str, Any]
) -> None:
    container = only_container(manifests.deployment(desired(resources=given)))
    assert container["resources"] == expected


def restricted_violations(pod_spec: Manifest) -> list[str]:
    """What Pod Security "restricted" (v1.34) rejects in a pod spec, for what we set."""
    found: list[str] = []
    pod = pod_spec.get("securityContext") or {}
    if (pod.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        found.append("seccompProfile")
    for container in pod_spec["containers"]:
        own = container.get("securityContext") or {}
        if own.get("allowPrivilegeEscalation") is not False:
            found.append("allowPrivilegeEscalation")
        if (own.get("capabilities") or {}).get("drop") != ["ALL"]:
            found.append("capabilities")
        if own.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
            found.append("runAsNonRoot")
        if own.get("runAsUser", pod.get("runAsUser")) == 0:
            found.append("runAsUser")
    return found


def pod_specs(of: Desired) -> list[Manifest]:
    workloads = [manifests.deployment(of), manifests.restore_job(of), manifests.backup_job(of)]
    return [w["spec"]["template"]["spec"] for w in workloads if w is not None]


@pytest.mark.parametrize("stage", [Stage.RESTORING, Stage.FINAL_BACKUP])
def test_every_pod_passes_the_restricted_pod_security_standard(stage: Stage) -> None:
    for pod_spec in pod_specs(desired(stage)):
        assert restricted_violations(pod_spec) == []
        assert pod_spec["securityContext"]["runAsUser"] == 999
        assert pod_spec["securityContext"]["fsGroup"] == 999
        assert pod_spec["automountServiceAccountToken"] is False
        (container,) = pod_spec["containers"]
        assert container["resources"]["limits"]["memory"]


def test_the_checker_sees_a_pod_that_is_not_restricted() -> None:
    assert restricted_violations({"containers": [{"name": "x"}]}) == [
        "seccompProfile",
        "allowPrivilegeEscalation",
        "capabilities",
        "runAsNonRoot",
    ]


def test_a_pod_on_a_node_directory_starts_as_the_images_user() -> None:
    # A host directory is root's, and fsGroup does not reach it: the image's entrypoint
    # starts as root and hands over to mysql, with no privilege escalation.
    of = desired(Stage.FINAL_BACKUP, host_path="/srv/db/a", backup={"host_path": "/srv/db/b"})
    for pod_spec in pod_specs(of):
        assert pod_spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
        (container,) = pod_spec["containers"]
        assert container["securityContext"] == {"allowPrivilegeEscalation": False}
        assert pod_spec["automountServiceAccountToken"] is False
    # Only the pod that mounts the node directory: here the Jobs' backups are provisioned.
    mixed = desired(Stage.FINAL_BACKUP, host_path="/srv/db/a")
    server, backup = pod_specs(mixed)
    assert restricted_violations(server) == ["capabilities", "runAsNonRoot"]
    assert restricted_violations(backup) == []


def test_the_client_service_selects_the_server_while_serving() -> None:
    service = manifests.client_service(desired(Stage.SERVING))
    assert service is not None
    assert service["metadata"]["name"] == NAME
    assert service["spec"]["selector"] == SERVER_SELECTOR
    assert service["spec"]["ports"] == [{"name": "mysql", "port": 3306, "targetPort": 3306}]


def test_the_client_service_is_absent_while_restoring() -> None:
    assert manifests.client_service(desired(Stage.RESTORING)) is None


@pytest.mark.parametrize("stage", [Stage.FINAL_BACKUP, Stage.RELEASING])
def test_the_client_service_selects_nothing_once_clients_are_cut_off(stage: Stage) -> None:
    of = desired(stage)
    service = manifests.client_service(of)
    assert service is not None
    assert service["metadata"]["name"] == NAME, "it keeps its name (and its address)"
    selector = service["spec"]["selector"]
    assert selector[LABEL_CUT_OFF] == "true"
    server_labels = manifests.deployment(of)["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= server_labels.items(), "the server pod must not match"


@EVERY_STAGE
def test_the_internal_service_always_selects_the_server(stage: Stage) -> None:
    service = manifests.internal_service(desired(stage))
    assert service["metadata"]["name"] == "mysql-instance-internal"
    assert service["spec"]["selector"] == SERVER_SELECTOR


@EVERY_STAGE
def test_only_the_mysql_pod_carries_the_app_label(stage: Stage) -> None:
    pods = [
        (m["kind"], m["spec"]["template"]["metadata"]["labels"])
        for m in manifests.rendered(desired(stage))
        if m["kind"] in ("Deployment", "Job")
    ]
    with_app = [kind for kind, labels in pods if labels.get("app") == NAME]
    assert with_app == ["Deployment"]
    for kind, labels in pods:
        matches_server = SERVER_SELECTOR.items() <= labels.items()
        assert matches_server is (kind == "Deployment"), labels


# -- Jobs -----------------------------------------------------------------------------------


def restore(**changes: Any) -> Manifest:
    job = manifests.restore_job(desired(Stage.RESTORING, **changes))
    assert job is not None
    return job


def backup(**changes: Any) -> Manifest:
    job = manifests.backup_job(desired(Stage.FINAL_BACKUP, **changes))
    assert job is not None
    return job


@pytest.mark.parametrize("stage", [Stage.SERVING, Stage.FINAL_BACKUP, Stage.RELEASING])
def test_the_restore_job_exists_only_while_restoring(stage: Stage) -> None:
    assert manifests.restore_job(desired(stage)) is None


@pytest.mark.parametrize("stage", [Stage.RESTORING, Stage.SERVING, Stage.RELEASING])
def test_the_backup_job_exists_only_for_the_final_backup(stage: Stage) -> None:
    assert manifests.backup_job(desired(stage)) is None


def test_each_attempt_is_a_job_of_its_own_name() -> None:
    first = manifests.restore_job(desired(Stage.RESTORING, restore_attempt=1))
    third = manifests.restore_job(desired(Stage.RESTORING, restore_attempt=3))
    assert first is not None
    assert third is not None
    assert first["metadata"]["name"] == "mysql-instance-restore-0f3c2a9e-1"
    assert third["metadata"]["name"] == "mysql-instance-restore-0f3c2a9e-3"
    second_backup = manifests.backup_job(desired(Stage.FINAL_BACKUP, backup_attempt=2))
    assert second_backup is not None
    assert second_backup["metadata"]["name"] == "mysql-instance-backup-0f3c2a9e-2"


def test_a_job_name_tells_lifetimes_apart() -> None:
    other = restore(uid="77777777-aaaa-bbbb-cccc-dddddddddddd")
    assert other["metadata"]["name"] == "mysql-instance-restore-77777777-1"


@pytest.mark.parametrize("job", [restore, backup])
def test_a_job_runs_one_pod_and_never_restarts_it(job: Any) -> None:
    built = job()
    assert built["spec"]["backoffLimit"] == 0
    assert built["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    container = only_container(built)
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


@pytest.mark.parametrize("job", [restore, backup])
def test_the_deadline_scales_with_the_data_size(job: Any) -> None:
    assert job()["spec"]["activeDeadlineSeconds"] == 3600 + 1800 * 1
    assert job(storage_size="1.5Gi")["spec"]["activeDeadlineSeconds"] == 3600 + 1800 * 2


@pytest.mark.parametrize("job", [restore, backup])
def test_the_deadline_comes_from_the_spec_when_set(job: Any) -> None:
    built = job(backup={"deadline_seconds": 900})
    assert built["spec"]["activeDeadlineSeconds"] == 900


def test_the_restore_job_runs_the_restore_script_against_the_internal_service() -> None:
    container = only_container(restore(backup={"idle_timeout_seconds": 45}))
    assert container["command"] == ["sh", "/scripts/restore.sh"]
    assert container["image"] == "mysql:5.7"
    env = env_of(container)
    assert env["MYSQL_HOST"]["value"] == "mysql-instance-internal"
    assert env["MYSQL_DATABASE"]["value"] == "otus-database"
    assert env["INSTANCE_UID"]["value"] == UID
    assert env["BACKUP_SCOPE"]["value"] == "database"
    assert env["RESTORE_IDLE_TIMEOUT_SECONDS"]["value"] == "45"


def test_the_backup_job_is_final_and_keeps_n_dumps() -> None:
    container = only_container(backup(backup={"keep": 9, "scope": "all"}))
    assert container["command"] == ["sh", "/scripts/backup.sh"]
    env = env_of(container)
    assert env["BACKUP_KEEP"]["value"] == "9"
    assert env["BACKUP_FINAL"]["value"] == "true"
    assert env["BACKUP_SCOPE"]["value"] == "all"
    assert env["BACKUP_IDLE_TIMEOUT_SECONDS"]["value"] == "600"
    assert env["MYSQL_HOST"]["value"] == "mysql-instance-internal"


@pytest.mark.parametrize("job", [restore, backup])
def test_a_job_mounts_the_scripts_and_the_backup_claim(job: Any) -> None:
    volumes = {v["name"]: v for v in job()["spec"]["template"]["spec"]["volumes"]}
    assert volumes["backup"]["persistentVolumeClaim"]["claimName"] == BACKUP_CLAIM
    assert volumes["scripts"]["configMap"]["name"] == "mysql-instance-scripts"


@pytest.mark.parametrize("job", [restore, backup])
def test_a_job_has_no_password_value_in_its_environment(job: Any) -> None:
    env = env_of(only_container(job()))
    assert env["MYSQL_PWD"] == {
        "name": "MYSQL_PWD",
        "valueFrom": {"secretKeyRef": {"name": "mysql-instance-credentials", "key": "password"}},
    }
    for item in env.values():
        assert PASSWORD not in str(item.get("value", "")), item


@pytest.mark.parametrize("job", [restore, backup])
def test_a_password_secret_ref_reaches_the_job_directly(job: Any) -> None:
    built = job(password=None, passwordSecretRef={"name": "root-pw", "key": "pw"})
    env = env_of(only_container(built))
    assert env["MYSQL_PWD"]["valueFrom"]["secretKeyRef"] == {"name": "root-pw", "key": "pw"}


# -- credentials and scripts ----------------------------------------------------------------


@EVERY_STAGE
def test_the_password_is_only_in_the_credentials_secret(stage: Stage) -> None:
    for manifest in manifests.rendered(desired(stage)):
        if manifest["kind"] == "Secret":
            assert manifest["stringData"] == {"password": PASSWORD}
            continue
        leaks = [s for s in strings_anywhere(manifest) if PASSWORD in s]
        assert not leaks, manifest["metadata"]["name"]


def test_the_server_reads_the_password_from_the_secret() -> None:
    env = env_of(only_container(manifests.deployment(desired())))
    assert env["MYSQL_ROOT_PASSWORD"] == {
        "name": "MYSQL_ROOT_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "mysql-instance-credentials", "key": "password"}},
    }


def test_a_password_secret_ref_declares_no_secret_of_ours() -> None:
    of = desired(password=None, passwordSecretRef={"name": "root-pw"})
    assert manifests.credentials_secret(of) is None
    env = env_of(only_container(manifests.deployment(of)))
    assert env["MYSQL_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "root-pw",
        "key": "password",
    }


def test_the_scripts_config_map_carries_the_packaged_scripts() -> None:
    config_map = manifests.scripts_config_map(desired())
    assert config_map["data"] == dict(job_scripts())
    assert set(config_map["data"]) == {"backup.sh", "restore.sh"}
