"""crd/mysql.yaml against the real API server: what admission accepts and what it rejects.

The unit tier checks the OpenAPI part of the schema offline; only the API server
evaluates the CEL rules (exactly one of password and passwordSecretRef, positive
quantities, storage may grow but not shrink, system schemas), so they are checked here,
together with the status subresource and the printer columns.

Rejections are asked for with `dryRun=All` wherever no stored object is needed: admission
runs in full, and nothing is left behind. Each test has its own namespace.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from reconciler.spec import parse_spec
from tests.harness import BACKUP_PLURAL, CRD_NAME, GROUP, PLURAL, VERSION, ensure_crd

pytestmark = pytest.mark.integration

ESTABLISH_TIMEOUT_S: Final = 60.0

# The original example, verbatim.
ORIGINAL_SPEC: Final[dict[str, Any]] = {
    "image": "mysql:5.7",
    "database": "otus-database",
    "password": "otuspassword",
    "storage_size": "1Gi",
}


def mysql_object(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MySQL",
        "metadata": {"name": name},
        "spec": copy.deepcopy(spec),
    }


def as_object(response: object) -> dict[str, Any]:
    """The custom objects API returns untyped JSON; every response here is an object."""
    assert isinstance(response, dict)
    return response


def rejection_message(call: Callable[[], object]) -> str:
    """The API server's message for a call that admission must reject (422 Invalid)."""
    with pytest.raises(ApiException) as raised:
        call()
    body = raised.value.body
    assert raised.value.status == 422, body
    assert body is not None
    message = json.loads(body)["message"]
    assert isinstance(message, str)
    return message


@pytest.fixture(scope="module")
def mysql_crd(api_client: client.ApiClient) -> None:
    ensure_crd(api_client)


@pytest.fixture
def namespace(
    mysql_crd: None,  # noqa: ARG001 (requested for its effect: the CRD is served)
    api_client: client.ApiClient,
    namespace_name: str,
) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace_name)))
    try:
        yield namespace_name
    finally:
        core.delete_namespace(namespace_name)


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def create(
    custom: client.CustomObjectsApi, namespace: str, body: dict[str, Any], *, dry_run: bool
) -> dict[str, Any]:
    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body, dry_run="All" if dry_run else None
    )
    assert isinstance(created, dict)
    return created


S3_STORE: Final = {
    "endpoint": "http://minio.local-s3.svc.cluster.local:9000",
    "bucket": "mysql-backups",
    "credentials_secret_ref": {"name": "backup-store"},
}


def test_the_original_example_is_accepted_unchanged(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    created = create(
        custom, namespace, mysql_object("mysql-instance", ORIGINAL_SPEC), dry_run=False
    )
    stored = as_object(
        custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "mysql-instance")
    )
    for spec in (created["spec"], stored["spec"]):
        # Every field kept as written (nothing pruned or rewritten); the only addition is
        # the schema's default deletion policy.
        assert {key: spec[key] for key in ORIGINAL_SPEC} == ORIGINAL_SPEC
        assert set(spec) - set(ORIGINAL_SPEC) == {"deletion_policy"}
        assert spec["deletion_policy"] == "BackupThenDelete"


def test_resources_within_their_limits_are_accepted(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    resources = {
        "requests": {"cpu": 1, "memory": "1Gi"},
        "limits": {"cpu": "1500m", "memory": "1Gi"},
    }
    spec = {**ORIGINAL_SPEC, "resources": resources}
    created = create(custom, namespace, mysql_object("sized", spec), dry_run=True)
    assert created["spec"]["resources"] == resources


def test_a_password_secret_ref_alone_is_accepted_with_the_default_key(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    spec = {k: v for k, v in ORIGINAL_SPEC.items() if k != "password"}
    spec["passwordSecretRef"] = {"name": "mysql-root"}
    created = create(custom, namespace, mysql_object("by-reference", spec), dry_run=True)
    assert created["spec"]["passwordSecretRef"] == {"name": "mysql-root", "key": "password"}
    assert "password" not in created["spec"]


def test_an_s3_store_is_accepted_with_its_default_region_and_parses_the_same(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    spec = {**ORIGINAL_SPEC, "backup": {"s3": {**S3_STORE, "prefix": "team-a/prod"}}}
    created = create(custom, namespace, mysql_object("to-s3", spec), dry_run=True)
    stored = created["spec"]["backup"]["s3"]
    assert stored == {**S3_STORE, "prefix": "team-a/prod", "region": "us-east-1"}
    # What the API server stored is what the reconciler reads.
    parsed = parse_spec(created["spec"]).backup.s3
    assert parsed is not None
    assert parsed.to_spec() == stored


def test_without_storage_size_it_is_rejected_naming_the_field(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    spec = {k: v for k, v in ORIGINAL_SPEC.items() if k != "storage_size"}
    message = rejection_message(
        lambda: create(custom, namespace, mysql_object("no-size", spec), dry_run=True)
    )
    assert "spec.storage_size: Required value" in message


BOTH_OR_NEITHER: Final = "exactly one of spec.password and spec.passwordSecretRef must be set"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            {"storage_size": "1Gb"}, ['spec.storage_size: Invalid value: "1Gb"'], id="size-unit"
        ),
        pytest.param(
            {"storage_size": "lots"}, ['spec.storage_size: Invalid value: "lots"'], id="size-word"
        ),
        pytest.param(
            {"storage_size": "0"},
            ["spec.storage_size: Invalid value", "must be a positive quantity"],
            id="size-zero",
        ),
        pytest.param(
            {"backup": {"storage_size": "0Mi"}},
            ["spec.backup.storage_size: Invalid value", "must be a positive quantity"],
            id="backup-size-zero",
        ),
        pytest.param(
            {"database": "otus database"},
            ['spec.database: Invalid value: "otus database"'],
            id="database-space",
        ),
        pytest.param(
            {"database": "-otus"}, ['spec.database: Invalid value: "-otus"'], id="database-dash"
        ),
        pytest.param({"database": "d" * 65}, ["spec.database: Too long"], id="database-too-long"),
        pytest.param(
            {"database": "MySQL"},
            ["spec.database: Invalid value", "must not be a MySQL system schema"],
            id="database-system-schema",
        ),
        pytest.param(
            {"passwordSecretRef": {"name": "mysql-root"}}, [BOTH_OR_NEITHER], id="both-passwords"
        ),
        pytest.param({"password": None}, [BOTH_OR_NEITHER], id="neither-password"),
        pytest.param(
            {"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}},
            ["spec.resources.requests.memory: Invalid value", "must not exceed limits.memory"],
            id="memory-request-above-limit",
        ),
        pytest.param(
            {"resources": {"requests": {"cpu": 2}, "limits": {"cpu": "500m"}}},
            ["spec.resources.requests.cpu: Invalid value", "must not exceed limits.cpu"],
            id="cpu-request-above-limit",
        ),
        pytest.param(
            {"deletion_policy": "Shred"},
            ['spec.deletion_policy: Unsupported value: "Shred"'],
            id="deletion-policy",
        ),
        pytest.param(
            {"backup": {"s3": {**S3_STORE, "endpoint": "minio:9000"}}},
            ['spec.backup.s3.endpoint: Invalid value: "minio:9000"'],
            id="s3-endpoint-without-scheme",
        ),
        pytest.param(
            {"backup": {"s3": {**S3_STORE, "bucket": "My_Bucket"}}},
            ['spec.backup.s3.bucket: Invalid value: "My_Bucket"'],
            id="s3-bucket",
        ),
        pytest.param(
            {"backup": {"s3": {key: v for key, v in S3_STORE.items() if key != "bucket"}}},
            ["spec.backup.s3.bucket: Required value"],
            id="s3-no-bucket",
        ),
        pytest.param(
            {"backup": {"s3": {**S3_STORE, "ca_secret_ref": {"name": "ca"}}}},
            ["spec.backup.s3.ca_secret_ref: Invalid value", "needs an https:// endpoint"],
            id="s3-ca-without-https",
        ),
    ],
)
def test_bad_input_is_rejected_naming_the_field(
    custom: client.CustomObjectsApi, namespace: str, change: dict[str, Any], expected: list[str]
) -> None:
    spec = {**ORIGINAL_SPEC, **change}
    spec = {key: value for key, value in spec.items() if value is not None}
    message = rejection_message(
        lambda: create(custom, namespace, mysql_object("bad", spec), dry_run=True)
    )
    for fragment in expected:
        assert fragment in message
    # Nothing was stored (dry run or not, a rejected object never is).
    listed = as_object(custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL))
    assert listed["items"] == []


def test_storage_may_grow_but_not_shrink(custom: client.CustomObjectsApi, namespace: str) -> None:
    create(custom, namespace, mysql_object("growing", ORIGINAL_SPEC), dry_run=False)

    def patch_size(size: str) -> dict[str, Any]:
        patched = custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "growing", {"spec": {"storage_size": size}}
        )
        assert isinstance(patched, dict)
        return patched

    message = rejection_message(lambda: patch_size("512Mi"))
    assert "spec.storage_size: Invalid value" in message
    assert "may grow but not shrink" in message
    stored = as_object(
        custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "growing")
    )
    assert stored["spec"]["storage_size"] == "1Gi"

    assert patch_size("2Gi")["spec"]["storage_size"] == "2Gi"
    # An equal quantity in other units is not a shrink.
    assert patch_size("2048Mi")["spec"]["storage_size"] == "2048Mi"


def test_the_password_may_change_and_switch_to_a_secret(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    # The operator rotates it on the running server (reconciler/passwords.py).
    create(custom, namespace, mysql_object("new-password", ORIGINAL_SPEC), dry_run=False)
    changed = custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "new-password", {"spec": {"password": "other"}}
    )
    assert changed["spec"]["password"] == "other"
    switched = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "new-password",
        {"spec": {"password": None, "passwordSecretRef": {"name": "root-pw"}}},
    )
    assert switched["spec"]["passwordSecretRef"] == {"name": "root-pw", "key": "password"}
    assert "password" not in switched["spec"]


def test_what_to_restore_is_decided_at_creation(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    named = {**ORIGINAL_SPEC, "restore_from": {"backup": "before-upgrade"}}
    create(custom, namespace, mysql_object("named", named), dry_run=False)
    create(custom, namespace, mysql_object("plain", ORIGINAL_SPEC), dry_run=False)
    changed = rejection_message(
        lambda: custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "named", {"spec": {"restore_from": {"backup": "x"}}}
        )
    )
    assert "spec.restore_from: Invalid value" in changed
    assert "is immutable" in changed
    added = rejection_message(
        lambda: custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "plain", {"spec": {"restore_from": {"backup": "x"}}}
        )
    )
    assert "restore_from cannot be set or unset after creation" in added


def test_status_is_a_subresource(custom: client.CustomObjectsApi, namespace: str) -> None:
    created = create(custom, namespace, mysql_object("with-status", ORIGINAL_SPEC), dry_run=False)
    generation = created["metadata"]["generation"]
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "Reconciled",
        "lastTransitionTime": "2024-01-01T00:00:00Z",
    }
    status = {"status": {"observedGeneration": generation, "conditions": [ready]}}

    # Through the main resource, status is ignored...
    through_main = as_object(
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "with-status", status
        )
    )
    assert "status" not in through_main
    # ...and through /status it is stored, without touching the spec's generation.
    through_status = as_object(
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "with-status", status
        )
    )
    assert through_status["status"]["conditions"] == [ready]
    assert through_status["status"]["observedGeneration"] == generation
    assert through_status["metadata"]["generation"] == generation

    # And /status does not change the spec.
    sneaky = {"spec": {"image": "mysql:8.0"}, "status": status["status"]}
    after = as_object(
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, "with-status", sneaky
        )
    )
    assert after["spec"]["image"] == "mysql:5.7"


def test_printer_columns_show_ready_reason_image_storage_age(
    custom: client.CustomObjectsApi,
    namespace: str,
    api_client: client.ApiClient,
    kubeconfig: Path,
) -> None:
    columns = client.ApiextensionsV1Api(api_client).read_custom_resource_definition(CRD_NAME)
    (version,) = columns.spec.versions
    assert [c.name for c in version.additional_printer_columns] == [
        "Ready",
        "Reason",
        "Image",
        "Storage",
        "Age",
    ]

    create(custom, namespace, mysql_object("mysql-instance", ORIGINAL_SPEC), dry_run=False)
    ready = {
        "type": "Ready",
        "status": "False",
        "reason": "BackupRunning",
        "lastTransitionTime": "2024-01-01T00:00:00Z",
    }
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "mysql-instance", {"status": {"conditions": [ready]}}
    )
    # The toolchain's kubectl (on PATH through the kubeconfig fixture) renders the table.
    shown = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "get", "mysql", "-n", namespace, "-o", "wide"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert len(shown) == 2, shown
    header, row = (line.split() for line in shown)
    assert header == ["NAME", "READY", "REASON", "IMAGE", "STORAGE", "AGE"]
    assert row[:5] == ["mysql-instance", "False", "BackupRunning", "mysql:5.7", "1Gi"]


# -- MySQLBackup ----------------------------------------------------------------------------


def backup_request(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MySQLBackup",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_a_backup_request_names_its_instance_and_cannot_move(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    message = rejection_message(
        lambda: custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, BACKUP_PLURAL, backup_request("nameless", {})
        )
    )
    assert "spec.instance: Required value" in message
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, BACKUP_PLURAL, backup_request("now", {"instance": "db"})
    )
    message = rejection_message(
        lambda: custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, BACKUP_PLURAL, "now", {"spec": {"instance": "other"}}
        )
    )
    assert "spec.instance is immutable" in message
    # A status the operator did not write is refused by the schema too.
    message = rejection_message(
        lambda: custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, BACKUP_PLURAL, "now", {"status": {"phase": "Done"}}
        )
    )
    assert "status.phase" in message
