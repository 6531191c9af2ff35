"""The installation program under Pulumi's mocks: every object, its key fields and options."""

from __future__ import annotations

import runpy
import secrets
from pathlib import Path
from typing import Any, Final

import pulumi
import pytest

from infra import existing
from infra.config import InstallConfig, parse_config
from infra.install import Installed, declare
from infra.rbac import RULES
from infra.resources import (
    BACKUP_CRD_FILE,
    CRD_FILE,
    HTTP_PORT,
    PASSPHRASE_KEY,
    STATE_MOUNT,
    TMP,
    load_crd,
)
from reconciler.settings import DEFAULT_PASSPHRASE_ENV, SecretReference, parse_settings
from tests.unit.pulumi_mocks import RecordingMonitor, Registration, plain_strings

pytestmark = pytest.mark.unit

ROOT: Final = Path(__file__).resolve().parents[2]
GENERATED: Final = "generated-passphrase-0123456789abcdef"
GIVEN: Final = "given-passphrase-fedcba9876543210"

NAMESPACE = "kubernetes:core/v1:Namespace"
CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
PV = "kubernetes:core/v1:PersistentVolume"
SECRET = "kubernetes:core/v1:Secret"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PROVIDER = "pulumi:providers:kubernetes"
POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
POLICY_BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"


class Rendered:
    def __init__(self, registrations: list[Registration], installed: Installed) -> None:
        self.all = registrations
        self.installed = installed

    def one(self, type_: str, name: str | None = None) -> Registration:
        found = [r for r in self.all if r.type == type_ and name in (None, r.name)]
        assert len(found) == 1, f"{type_}: {[(r.type, r.name) for r in self.all]}"
        return found[0]

    def types(self) -> set[str]:
        return {r.type for r in self.all}

    def container(self) -> dict[str, Any]:
        containers = self.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1
        container: dict[str, Any] = containers[0]
        return container


def render(
    config: InstallConfig, monkeypatch: pytest.MonkeyPatch, passphrase: str | None = None
) -> Rendered:
    monkeypatch.setattr(secrets, "token_urlsafe", lambda _n: GENERATED)
    monitor = RecordingMonitor()
    pulumi.runtime.set_mocks(
        monitor.mocks, project="mysql-operator", monitor=monitor, preview=False
    )
    installed: list[Installed] = []

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> None:
        installed.append(declare(config, passphrase))

    run()
    return Rendered(monitor.registrations, installed[0])


def config_of(**raw: str | list[str] | None) -> InstallConfig:
    return parse_config({"image": "local/reconciler:test", "namespace": "ops", **raw})


@pytest.fixture
def default(monkeypatch: pytest.MonkeyPatch) -> Rendered:
    return render(config_of(), monkeypatch)


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container["env"]}


# -- what is declared -----------------------------------------------------------------------


def test_declares_every_object_once(default: Rendered) -> None:
    assert sorted((r.type, r.name) for r in default.all) == sorted(
        [
            (PROVIDER, "kubernetes"),
            (NAMESPACE, "namespace"),
            (CRD, "crd"),
            (CRD, "backup-crd"),
            (SERVICE_ACCOUNT, "service-account"),
            (CLUSTER_ROLE, "cluster-role"),
            (BINDING, "cluster-role-binding"),
            (ROLE, "own-namespace-role"),
            (ROLE_BINDING, "own-namespace-role-binding"),
            (PVC, "state-claim"),
            (SECRET, "state-passphrase"),
            (DEPLOYMENT, "reconciler"),
            (POLICY, "host-path-policy"),
            (POLICY_BINDING, "host-path-policy-binding"),
        ]
    )


def test_every_object_goes_through_the_provider(default: Rendered) -> None:
    provider = default.one(PROVIDER)
    assert provider.inputs["enableServerSideApply"] in (True, "true")
    for registration in default.all:
        if registration.type != PROVIDER:
            assert registration.provider.startswith(provider.urn + "::"), registration.name


def test_the_kubeconfig_and_context_reach_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render(config_of(kubeconfig="/home/ops/kubeconfig", context="kind"), monkeypatch)
    provider = rendered.one(PROVIDER).inputs
    assert (provider["kubeconfig"], provider["context"]) == ("/home/ops/kubeconfig", "kind")


def test_namespaced_objects_are_in_the_configured_namespace(default: Rendered) -> None:
    assert default.one(NAMESPACE).inputs["metadata"]["name"] == "ops"
    for type_ in (SERVICE_ACCOUNT, PVC, SECRET, DEPLOYMENT):
        assert default.one(type_).inputs["metadata"]["namespace"] == "ops", type_


def test_the_crds_are_the_files_verbatim(default: Rendered) -> None:
    assert CRD_FILE == ROOT / "crd" / "mysql.yaml"
    assert BACKUP_CRD_FILE == ROOT / "crd" / "mysqlbackup.yaml"
    for name, path in (("crd", CRD_FILE), ("backup-crd", BACKUP_CRD_FILE)):
        declared = default.one(CRD, name).inputs
        document = load_crd(path)
        assert declared["metadata"] == document["metadata"]
        # snake_case field names such as host_path must not be translated.
        assert declared["spec"] == document["spec"]


def test_the_role_is_the_reviewed_constant_and_is_bound_to_the_account(default: Rendered) -> None:
    rules = default.one(CLUSTER_ROLE).inputs["rules"]
    assert rules == [
        {"apiGroups": list(r.api_groups), "resources": list(r.resources), "verbs": list(r.verbs)}
        for r in RULES
    ]
    assert "*" not in str(rules)
    role_name = default.one(CLUSTER_ROLE).inputs["metadata"]["name"]
    binding = default.one(BINDING).inputs
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role_name,
    }
    account = default.one(SERVICE_ACCOUNT).inputs["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": "ops"}]


# -- what destroy keeps ---------------------------------------------------------------------


def test_destroy_keeps_the_crd_the_state_its_passphrase_and_their_namespace(
    default: Rendered,
) -> None:
    retained = {r.type for r in default.all if r.retain_on_delete}
    assert retained == {CRD, PVC, SECRET, NAMESPACE}
    assert not any(r.protect for r in default.all), "protect would make destroy fail"
    assert len(default.installed.kept_on_destroy) == 5
    kept_crds = {r.name for r in default.all if r.type == CRD and r.retain_on_delete}
    assert kept_crds == {"crd", "backup-crd"}


def test_a_host_path_state_volume_is_kept_and_reserved(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render(config_of(stateHostPath="/srv/op-state"), monkeypatch)
    volume = rendered.one(PV)
    assert volume.retain_on_delete
    spec = volume.inputs["spec"]
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["claimRef"] == {"namespace": "ops", "name": "mysql-operator-state"}
    assert spec["hostPath"]["path"] == "/srv/op-state"
    claim = rendered.one(PVC).inputs["spec"]
    assert (claim["volumeName"], claim["storageClassName"]) == (
        volume.inputs["metadata"]["name"],
        "",
    )


def test_a_remote_backend_needs_no_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render(config_of(backendUrl="s3://bucket/state"), monkeypatch)
    assert PVC not in rendered.types()
    volumes = rendered.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]["volumes"]
    state = next(v for v in volumes if v["name"] == "state")
    assert "emptyDir" in state
    assert (
        env_of(rendered.container())["MYSQL_OPERATOR_BACKEND_URL"]["value"] == "s3://bucket/state"
    )


def test_the_state_claim(default: Rendered) -> None:
    claim = default.one(PVC).inputs
    assert claim["metadata"]["name"] == "mysql-operator-state"
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


# -- the passphrase -------------------------------------------------------------------------


def test_the_generated_passphrase_is_secret_and_kept_from_the_first_run(default: Rendered) -> None:
    secret = default.one(SECRET)
    assert secret.inputs["stringData"] == {PASSPHRASE_KEY: GENERATED}
    assert set(secret.ignore_changes) == {"data", "stringData"}
    for registration in default.all:
        assert GENERATED not in plain_strings(registration.wire), registration.name


def test_a_configured_passphrase_is_used_and_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render(config_of(), monkeypatch, passphrase=GIVEN)
    secret = rendered.one(SECRET)
    assert secret.inputs["stringData"] == {PASSPHRASE_KEY: GIVEN}
    assert not secret.ignore_changes
    for registration in rendered.all:
        assert GIVEN not in plain_strings(registration.wire), registration.name


def test_the_reconciler_reads_the_passphrase_from_the_secret(default: Rendered) -> None:
    env = env_of(default.container())
    assert "value" not in env[DEFAULT_PASSPHRASE_ENV]
    assert env[DEFAULT_PASSPHRASE_ENV]["valueFrom"]["secretKeyRef"] == {
        "name": default.one(SECRET).inputs["metadata"]["name"],
        "key": PASSPHRASE_KEY,
    }
    assert SecretReference("ns", "name").key == PASSPHRASE_KEY


# -- the Deployment -------------------------------------------------------------------------


def test_one_replica_recreated_never_two(default: Rendered) -> None:
    spec = default.one(DEPLOYMENT).inputs["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    template = spec["template"]
    assert spec["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert template["spec"]["serviceAccountName"] == "mysql-operator"


def test_the_deployment_waits_for_what_it_uses(default: Rendered) -> None:
    needs = set(default.one(DEPLOYMENT).dependencies)
    for type_ in (BINDING, SECRET, PVC):
        assert default.one(type_).urn in needs, type_
    for name in ("crd", "backup-crd"):
        assert default.one(CRD, name).urn in needs, name


def test_probes_on_healthz_at_the_port_the_reconciler_listens_on(default: Rendered) -> None:
    container = default.container()
    assert container["ports"] == [{"name": "http", "containerPort": HTTP_PORT}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    settings = parse_settings([], settings_environ(container))
    assert settings.http_address.port == HTTP_PORT
    assert settings.http_address.host == "0.0.0.0"  # noqa: S104 (probes come from the kubelet)


def test_non_root_read_only_and_without_privileges(default: Rendered) -> None:
    pod = default.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = default.container()["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in default.container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts[TMP]]
    assert "emptyDir" in volumes[mounts[env_of(default.container())["PULUMI_HOME"]["value"]]]
    claim = volumes[mounts[STATE_MOUNT]]["persistentVolumeClaim"]["claimName"]
    assert claim == default.one(PVC).inputs["metadata"]["name"]


def test_requests_and_limits(monkeypatch: pytest.MonkeyPatch, default: Rendered) -> None:
    assert default.container()["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    rendered = render(config_of(memoryLimit="4Gi", cpuRequest="500m"), monkeypatch)
    resources = rendered.container()["resources"]
    assert (resources["limits"]["memory"], resources["requests"]["cpu"]) == ("4Gi", "500m")


def settings_environ(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def test_the_environment_is_what_the_reconciler_settings_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rendered = render(
        config_of(watchedNamespaces=["shop", "blog"], workers="4", logLevel="debug"), monkeypatch
    )
    container = rendered.container()
    assert container["image"] == "local/reconciler:test"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"] == ["run"]
    settings = parse_settings([], settings_environ(container))
    assert settings.namespaces == ("shop", "blog")
    assert settings.workers == 4
    assert settings.log_level.value == "DEBUG"
    assert str(settings.state_dir) == STATE_MOUNT
    assert settings.backend_url == f"file://{STATE_MOUNT}"
    assert settings.passphrase.env_var == DEFAULT_PASSPHRASE_ENV


def test_the_operators_namespace_role_reads_its_pods_and_with_election_the_lease(
    monkeypatch: pytest.MonkeyPatch, default: Rendered
) -> None:
    pods = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
    assert default.one(ROLE, "own-namespace-role").inputs["rules"] == [pods]
    assert "MYSQL_OPERATOR_LEADER_ELECT" not in env_of(default.container())
    assert "POD_NAME" in env_of(default.container())
    rendered = render(config_of(leaderElection="true"), monkeypatch)
    role = rendered.one(ROLE, "own-namespace-role").inputs
    assert role["metadata"]["namespace"] == "ops"
    assert role["rules"] == [
        pods,
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        },
    ]
    binding = rendered.one(ROLE_BINDING, "own-namespace-role-binding").inputs
    assert binding["metadata"]["namespace"] == "ops"
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mysql-operator", "namespace": "ops"}
    ]
    env = env_of(rendered.container())
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    election = parse_settings(
        [], {**settings_environ(rendered.container()), "POD_NAMESPACE": "ops", "POD_NAME": "pod"}
    ).leader_election
    assert election is not None
    assert election.namespace == "ops"
    # Still one replica: the file backend has a single writer.
    assert rendered.one(DEPLOYMENT).inputs["spec"]["replicas"] == 1


def test_a_remote_backend_with_leader_election_runs_two_replicas_rolled_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rendered = render(
        config_of(
            backendUrl="s3://state/op?endpoint=http://s3:9000",
            backendCredentialsSecret="state-store",
            leaderElection="true",
        ),
        monkeypatch,
    )
    spec = rendered.one(DEPLOYMENT).inputs["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    env = env_of(rendered.container())
    for name, key in (
        ("AWS_ACCESS_KEY_ID", "access_key_id"),
        ("AWS_SECRET_ACCESS_KEY", "secret_access_key"),
    ):
        assert "value" not in env[name]
        assert env[name]["valueFrom"] == {"secretKeyRef": {"name": "state-store", "key": key}}
    # Without leader election, or on the state claim, one replica, recreated.
    for raw in (
        {"backendUrl": "s3://state/op"},
        {"leaderElection": "true"},
    ):
        single = render(config_of(**raw), monkeypatch).one(DEPLOYMENT).inputs["spec"]
        assert (single["replicas"], single["strategy"]) == (1, {"type": "Recreate"})


def test_watching_every_namespace_sets_no_namespaces(default: Rendered) -> None:
    assert "MYSQL_OPERATOR_NAMESPACES" not in env_of(default.container())


# -- the entry point ------------------------------------------------------------------------


def test_the_entry_point_reads_the_stack_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "token_urlsafe", lambda _n: GENERATED)
    # No cluster here: no passphrase was kept by an earlier installation.
    monkeypatch.setattr(existing, "existing_passphrase", lambda _install: None)
    monitor = RecordingMonitor()
    pulumi.runtime.set_mocks(
        monitor.mocks, project="mysql-operator", monitor=monitor, preview=False
    )
    pulumi.runtime.set_all_config(
        {
            "mysql-operator:image": "local/reconciler:test",
            "mysql-operator:namespace": "from-config",
            "mysql-operator:watchedNamespaces": '["a","b"]',
        }
    )

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> None:
        runpy.run_path(str(ROOT / "infra"), run_name="__main__")

    try:
        run()
    finally:
        pulumi.runtime.set_all_config({})
    namespace = next(r for r in monitor.registrations if r.type == NAMESPACE)
    assert namespace.inputs["metadata"]["name"] == "from-config"
    deployment = next(r for r in monitor.registrations if r.type == DEPLOYMENT)
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    assert env_of(container)["MYSQL_OPERATOR_NAMESPACES"]["value"] == "a,b"


def test_the_host_path_root_and_the_label_selector_reach_the_reconciler() -> None:
    from infra.config import parse_config
    from infra.resources import names_for, operator_env

    config = parse_config(
        {"image": "op:1", "hostPathRoot": "/srv/mysql", "labelSelector": "!shard"}
    )
    env = {var.name: var.value for var in operator_env(config, names_for(config))}
    assert env["MYSQL_OPERATOR_HOST_PATH_ROOT"] == "/srv/mysql"
    assert env["MYSQL_OPERATOR_LABEL_SELECTOR"] == "!shard"
    # Jobs that move dumps to S3 run the operator's own image.
    assert env["MYSQL_OPERATOR_TRANSFER_IMAGE"] == "op:1"
    plain = {var.name for var in operator_env(parse_config({"image": "op:1"}), names_for(config))}
    assert "MYSQL_OPERATOR_HOST_PATH_ROOT" not in plain


ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"


def test_watching_some_namespaces_grants_namespaced_rights_in_those_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rendered = render(config_of(watchedNamespaces=["team-a", "team-b"]), monkeypatch)
    roles = [r for r in rendered.all if r.type == ROLE and r.name != "own-namespace-role"]
    assert sorted(r.inputs["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        resources = {res for rule in role.inputs["rules"] for res in rule["resources"]}
        assert "secrets" in resources
        assert "persistentvolumes" not in resources
    bindings = [
        r for r in rendered.all if r.type == ROLE_BINDING and r.name != "own-namespace-role-binding"
    ]
    assert sorted(b.inputs["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding.inputs["roleRef"]["kind"] == "Role"
        assert binding.inputs["subjects"][0]["namespace"] == "ops"
    # The ClusterRole keeps what has no namespace, and reads only the watched Namespaces.
    cluster_rules = rendered.one(CLUSTER_ROLE).inputs["rules"]
    resources = {res for rule in cluster_rules for res in rule["resources"]}
    assert resources == {"persistentvolumes", "namespaces", "storageclasses"}
    (namespaces,) = [rule for rule in cluster_rules if rule["resources"] == ["namespaces"]]
    assert namespaces["resourceNames"] == ["team-a", "team-b"]
    assert namespaces["verbs"] == ["get"]


def test_watching_every_namespace_needs_no_roles_beyond_the_operators_namespace(
    default: Rendered,
) -> None:
    roles = [r for r in default.all if r.type in (ROLE, ROLE_BINDING)]
    assert sorted(r.name for r in roles) == ["own-namespace-role", "own-namespace-role-binding"]


def test_the_entry_point_keeps_the_passphrase_an_earlier_installation_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(secrets, "token_urlsafe", lambda _n: GENERATED)
    monkeypatch.setattr(existing, "existing_passphrase", lambda _install: "kept-passphrase")
    monitor = RecordingMonitor()
    pulumi.runtime.set_mocks(
        monitor.mocks, project="mysql-operator", monitor=monitor, preview=False
    )
    pulumi.runtime.set_all_config({"mysql-operator:image": "local/reconciler:test"})

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> None:
        runpy.run_path(str(ROOT / "infra"), run_name="__main__")

    try:
        run()
    finally:
        pulumi.runtime.set_all_config({})
    secret = next(r for r in monitor.registrations if r.type == SECRET)
    assert secret.inputs["stringData"] == {PASSPHRASE_KEY: "kept-passphrase"}
    assert not secret.ignore_changes
    for registration in monitor.registrations:
        assert "kept-passphrase" not in plain_strings(registration.wire), registration.name


def test_host_paths_are_refused_at_admission_unless_under_the_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    none_allowed = render(config_of(), monkeypatch).one(POLICY).inputs["spec"]
    expressions = [v["expression"] for v in none_allowed["validations"]]
    assert all("|| false ||" in e for e in expressions), expressions
    rooted = render(config_of(hostPathRoot="/srv/mysql"), monkeypatch)
    spec = rooted.one(POLICY).inputs["spec"]
    (host, backup) = spec["validations"]
    assert "object.spec.host_path.startsWith('/srv/mysql/')" in host["expression"]
    assert "object.spec.backup.host_path.startsWith('/srv/mysql/')" in backup["expression"]
    # An update that keeps an older path passes: the operator can still remove its
    # finalizer from an object created before the rule.
    assert "oldObject.spec.host_path == object.spec.host_path" in host["expression"]
    assert host["message"].startswith("spec.host_path:")
    assert backup["message"].startswith("spec.backup.host_path:")
    assert spec["matchConstraints"]["resourceRules"][0]["resources"] == ["mysqls"]
    binding = rooted.one(POLICY_BINDING).inputs["spec"]
    assert binding["validationActions"] == ["Deny"]
    assert binding["policyName"] == "mysql-operator-host-paths.ops"
    assert "matchResources" not in binding


def test_the_policy_binds_only_to_the_watched_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    binding = render(config_of(watchedNamespaces=["team-a"]), monkeypatch).one(POLICY_BINDING)
    selector = binding.inputs["spec"]["matchResources"]["namespaceSelector"]
    assert selector["matchExpressions"][0]["values"] == ["team-a"]
