"""`pulumi up` of infra/ with the real CLI, language host and provider, against the cluster.

The project is copied and driven as tests/pulumi_project.py describes. The kwok node
makes pods Ready without running containers, so the image name is never pulled.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from kubernetes import client

from infra.rbac import RULES
from tests.pulumi_project import (
    CRD_NAME,
    Project,
    crd_exists,
    exists,
    new_project,
    remove_installation,
)
from tests.support import eventually

pytestmark = pytest.mark.integration

IMAGE: Final = "local/reconciler:test"
READY_TIMEOUT_S: Final = 120
GONE_TIMEOUT_S: Final = 120


@pytest.fixture
def project(tmp_path: Path, kubeconfig: Path, namespace_name: str) -> Project:
    return new_project(
        tmp_path,
        kubeconfig,
        {
            "namespace": namespace_name,
            "image": IMAGE,
            # kwok has no provisioner; the fake node never touches the path.
            "stateHostPath": str(tmp_path / "host-state"),
        },
    )


@pytest.fixture
def cleanup(api_client: client.ApiClient, namespace_name: str) -> Iterator[None]:
    """Removes what destroy keeps; the CRD only if this test was the one to create it."""
    crd_existed = crd_exists(api_client)
    yield
    remove_installation(api_client, namespace_name, crd=not crd_existed)


def _allowed(
    api_client: client.ApiClient,
    namespace: str,
    group: str,
    resource: str,
    verb: str,
    where: str | None = "somewhere",
    *,
    name: str | None = None,
) -> bool:
    """What the API server answers when the operator's account asks (a SubjectAccessReview);
    `where` is the namespace asked about (None: cluster-wide)."""
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{namespace}:mysql-operator",
            groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
            resource_attributes=client.V1ResourceAttributes(
                group=group, resource=resource, verb=verb, namespace=where, name=name
            ),
        )
    )
    answer = client.AuthorizationV1Api(api_client).create_subject_access_review(review)
    return bool(answer.status.allowed)


def _passphrase(core: client.CoreV1Api, namespace: str) -> str:
    secret = core.read_namespaced_secret("mysql-operator-state-passphrase", namespace)
    return base64.b64decode((secret.data or {})["passphrase"]).decode()


@pytest.mark.usefixtures("cleanup")
def test_up_installs_the_operator_idempotently_and_destroy_keeps_the_state(
    project: Project, api_client: client.ApiClient, namespace_name: str
) -> None:
    core = client.CoreV1Api(api_client)
    apps = client.AppsV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    extensions = client.ApiextensionsV1Api(api_client)
    ns = namespace_name
    role_name = f"mysql-operator:{ns}"

    preview = project.pulumi("preview", "--json")
    planned = json.loads(preview.stdout)["changeSummary"]
    assert planned.get("create", 0) >= 9, planned

    up = project.pulumi("up", "--yes", "--skip-preview")
    assert "keeps: CustomResourceDefinition mysqls.otus.homework" in up.stdout + up.stderr

    # -- every object is there ---------------------------------------------------------
    assert core.read_namespace(ns).status.phase == "Active"
    crd = eventually(
        lambda: extensions.read_custom_resource_definition(CRD_NAME),
        lambda c: any(
            x.type == "Established" and x.status == "True" for x in c.status.conditions or []
        ),
        timeout_s=READY_TIMEOUT_S,
        what="the CRD Established",
    )
    schema = crd.spec.versions[0].schema.open_apiv3_schema
    assert schema.properties is not None
    spec_properties = schema.properties["spec"].properties or {}
    assert "host_path" in spec_properties  # field names kept verbatim
    assert core.read_namespaced_service_account("mysql-operator", ns).metadata.name
    role = rbac.read_cluster_role(role_name)
    rules = role.rules or []
    assert len(rules) == len(RULES)
    for rule in rules:
        assert "*" not in [*(rule.api_groups or []), *(rule.resources or []), *rule.verbs]
    binding = rbac.read_cluster_role_binding(role_name)
    assert binding.role_ref.name == role_name
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [
        ("ServiceAccount", "mysql-operator", ns)
    ]
    claim = eventually(
        lambda: core.read_namespaced_persistent_volume_claim("mysql-operator-state", ns),
        lambda c: c.status.phase == "Bound",
        timeout_s=READY_TIMEOUT_S,
        what="the state claim Bound",
    )
    assert claim.spec.volume_name == f"mysql-operator-state-{ns}"
    passphrase = _passphrase(core, ns)
    assert len(passphrase) >= 32
    deployment = eventually(
        lambda: apps.read_namespaced_deployment("mysql-operator", ns),
        lambda d: d.status.ready_replicas == 1,
        timeout_s=READY_TIMEOUT_S,
        what="the reconciler Deployment ready",
    )
    assert deployment.spec.replicas == 1
    assert deployment.spec.strategy.type == "Recreate"
    pod = deployment.spec.template.spec
    assert pod.service_account_name == "mysql-operator"
    assert pod.security_context.run_as_non_root is True
    (container,) = pod.containers
    assert container.image == IMAGE
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.run_as_non_root is True
    assert container.liveness_probe.http_get.path == "/healthz"
    assert container.readiness_probe.http_get.path == "/healthz"
    assert container.resources.requests
    assert container.resources.limits
    env = {e.name: e for e in container.env}
    assert env["PULUMI_CONFIG_PASSPHRASE"].value is None
    assert env["PULUMI_CONFIG_PASSPHRASE"].value_from.secret_key_ref.key == "passphrase"

    # -- the role, as the API server authorizes it ------------------------------------
    def allowed(group: str, resource: str, verb: str) -> bool:
        return _allowed(api_client, ns, group, resource, verb)

    assert allowed("otus.homework", "mysqls", "watch")
    assert allowed("otus.homework", "mysqls/status", "patch")
    assert allowed("", "events", "create")
    assert allowed("apps", "deployments", "patch")
    assert not allowed("otus.homework", "mysqls", "delete")
    assert not allowed("", "namespaces", "delete")
    assert not allowed("", "nodes", "get")
    assert not allowed("rbac.authorization.k8s.io", "clusterroles", "create")

    # -- the passphrase is nowhere in plain text --------------------------------------
    encoded = base64.b64encode(passphrase.encode()).decode()
    for path in project.backend.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert passphrase not in text, path
            assert encoded not in text, path
    for output in (preview.stdout, preview.stderr, up.stdout, up.stderr):
        assert passphrase not in output

    # -- a second run changes nothing -------------------------------------------------
    again = json.loads(project.pulumi("preview", "--json").stdout)["changeSummary"]
    assert set(again) == {"same"}, again
    project.pulumi("up", "--yes", "--skip-preview", "--expect-no-changes")
    assert _passphrase(core, ns) == passphrase

    # -- destroy removes the operator and keeps the state ----------------------------
    project.pulumi("destroy", "--yes", "--skip-preview")

    def gone(read: Any, what: str) -> None:
        eventually(
            lambda: exists(read),
            lambda found: not found,
            timeout_s=GONE_TIMEOUT_S,
            what=f"{what} deleted",
        )

    gone(lambda: apps.read_namespaced_deployment("mysql-operator", ns), "the Deployment")
    gone(lambda: core.read_namespaced_service_account("mysql-operator", ns), "the account")
    gone(lambda: rbac.read_cluster_role(role_name), "the ClusterRole")
    gone(lambda: rbac.read_cluster_role_binding(role_name), "the ClusterRoleBinding")
    assert extensions.read_custom_resource_definition(CRD_NAME).metadata.deletion_timestamp is None
    assert core.read_namespace(ns).status.phase == "Active"
    assert core.read_namespaced_persistent_volume_claim(
        "mysql-operator-state", ns
    ).status.phase == ("Bound")
    assert _passphrase(core, ns) == passphrase

    # -- a reinstall keeps the passphrase the state is encrypted with -----------------
    project.pulumi("up", "--yes", "--skip-preview")
    assert _passphrase(core, ns) == passphrase
    project.pulumi("destroy", "--yes", "--skip-preview")


@pytest.mark.usefixtures("cleanup")
def test_watching_some_namespaces_grants_nothing_elsewhere(
    tmp_path: Path,
    kubeconfig: Path,
    api_client: client.ApiClient,
    namespace_name: str,
) -> None:
    core = client.CoreV1Api(api_client)
    watched = f"{namespace_name}-w"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=watched)))
    project = new_project(
        tmp_path,
        kubeconfig,
        {
            "namespace": namespace_name,
            "image": IMAGE,
            "stateHostPath": str(tmp_path / "host-state"),
            "watchedNamespaces": watched,
            "hostPathRoot": "/srv/mysql",
        },
    )
    try:
        project.pulumi("up", "--yes", "--skip-preview")

        def allowed(group: str, resource: str, verb: str, where: str | None) -> bool:
            return _allowed(api_client, namespace_name, group, resource, verb, where)

        # In the watched namespace: what the reconciler and the provider need.
        assert allowed("", "secrets", "get", watched)
        assert allowed("apps", "deployments", "patch", watched)
        assert allowed("otus.homework", "mysqls", "watch", watched)
        # Anywhere else: nothing namespaced, not even reading a Secret.
        for where in ("default", "kube-system", None):
            assert not allowed("", "secrets", "get", where), where
            assert not allowed("", "secrets", "list", where), where
            assert not allowed("apps", "deployments", "create", where), where
            assert not allowed("otus.homework", "mysqls", "list", where), where
        # Cluster-scoped: the volumes, and only the watched Namespace.
        assert allowed("", "persistentvolumes", "patch", None)
        assert _allowed(api_client, namespace_name, "", "namespaces", "get", None, name=watched)
        assert not _allowed(
            api_client, namespace_name, "", "namespaces", "get", None, name="kube-system"
        )
        # Host paths outside the root are refused at admission, naming the field.
        custom = client.CustomObjectsApi(api_client)

        def create(name: str, host_path: str) -> tuple[int, str]:
            body = {
                "apiVersion": "otus.homework/v1",
                "kind": "MySQL",
                "metadata": {"name": name},
                "spec": {
                    "image": "mysql:5.7",
                    "database": "db",
                    "password": "pw",
                    "storage_size": "1Gi",
                    "backup": {"host_path": host_path},
                },
            }
            try:
                custom.create_namespaced_custom_object(
                    "otus.homework", "v1", watched, "mysqls", body, dry_run="All"
                )
            except client.ApiException as error:
                return int(error.status), str(error.body)
            return 201, ""

        _, body = eventually(
            lambda: create("outside", "/var/lib/kubelet"),
            lambda answer: answer[0] in (403, 422),
            timeout_s=60,
            what="the admission policy in force",
        )
        assert "spec.backup.host_path: host paths are allowed under /srv/mysql/" in body
        assert create("inside", "/srv/mysql/inside")[0] == 201
        rbac = client.RbacAuthorizationV1Api(api_client)
        roles = (
            rbac.read_cluster_role(f"mysql-operator:{namespace_name}"),
            rbac.read_namespaced_role(f"mysql-operator:{namespace_name}", watched),
        )
        for role in roles:
            for rule in role.rules or []:
                assert "*" not in [*(rule.api_groups or []), *(rule.resources or []), *rule.verbs]
    finally:
        project.pulumi("destroy", "--yes", "--skip-preview")
        core.delete_namespace(watched)
