"""The driver's pure helpers: stack names, error classification, pending operations,
what counts as deployed, update ids and plans."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from reconciler import backend_files
from reconciler.backend_files import deployed_kubernetes_objects, drop_pending_operations
from reconciler.cli import without_cluster
from reconciler.driver import Plan, classify, summarize_error, update_id
from reconciler.runs import FailureKind, stack_name

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_stack_names_are_unambiguous() -> None:
    assert stack_name("team-a", "db") == "team-a.db"


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("error: Get https://127.0.0.1:6443: dial tcp: connection refused", FailureKind.TRANSIENT),
        ("the server is currently unable to handle the request", FailureKind.TRANSIENT),
        ("Operation cannot be fulfilled: the object has been modified", FailureKind.TRANSIENT),
        ('Deployment.apps "x" is invalid: spec.template...', FailureKind.SPEC),
        ("error: Job has failed: BackoffLimitExceeded", FailureKind.FAILED),
    ],
)
def test_engine_errors_are_classified(stderr: str, kind: FailureKind) -> None:
    assert classify(stderr) is kind


def test_an_error_summary_keeps_the_error_lines_once() -> None:
    stderr = "Updating (shop.db)\nerror: boom\n\nerror: boom\nwarning: meh\n"
    assert summarize_error(stderr) == "error: boom"
    assert len(summarize_error("error: " + "x" * 2000, limit=100)) == 100


def test_pending_operations_are_dropped_and_counted() -> None:
    deployment = {"resources": [{"urn": "a"}], "pending_operations": [{"type": "creating"}]}
    cleaned, count = drop_pending_operations(deployment)
    assert count == 1
    assert cleaned == {"resources": [{"urn": "a"}]}
    assert "pending_operations" in deployment, "the input is not modified"


def test_only_kubernetes_objects_count_as_deployed() -> None:
    assert deployed_kubernetes_objects(None) == 0
    assert (
        deployed_kubernetes_objects(
            {
                "resources": [
                    {"type": "pulumi:pulumi:Stack"},
                    {"type": "pulumi:providers:kubernetes"},
                    {"type": "kubernetes:core/v1:Service"},
                ]
            }
        )
        == 1
    )


def test_update_ids_fall_back_to_the_start_time_on_diy_backends() -> None:
    assert update_id("update", 12, NOW) == "12"
    assert update_id("update", 0, NOW) == "update-20260101T000000.000000Z"
    assert update_id("destroy", None, NOW) == "destroy-20260101T000000.000000Z"


def test_two_runs_in_one_second_get_different_ids() -> None:
    later = NOW + timedelta(microseconds=1)
    assert update_id("update", 0, NOW) != update_id("update", 0, later)


def test_an_update_id_is_in_utc_whatever_the_zone_of_the_start_time() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert update_id("update", 0, local) == update_id("update", 0, NOW)


def test_a_plan_with_only_same_steps_has_no_changes() -> None:
    assert not Plan({"same": 11}, (), True).has_changes
    assert Plan({"same": 10, "update": 1}, (), True).has_changes


def test_the_one_private_sdk_name_the_driver_uses_still_means_what_it_did() -> None:
    """The driver constructs its own Stack subclass with `StackInitMode`, which the SDK
    does not re-export (driver.py says why). A new SDK that renamed or reshaped it must
    fail here, not in a reconcile."""
    import inspect

    from pulumi import automation as auto
    from pulumi.automation._stack import StackInitMode

    assert {mode.name for mode in StackInitMode} >= {"CREATE", "SELECT", "CREATE_OR_SELECT"}
    parameters = list(inspect.signature(auto.Stack.__init__).parameters)
    assert parameters[:4] == ["self", "name", "workspace", "mode"]


def secret(value: object) -> dict[str, str]:
    """A secret as `pulumi stack export --show-secrets` prints it."""
    return {
        backend_files.SECRET_SIGNATURE_KEY: backend_files.SECRET_SIGNATURE,
        "plaintext": json.dumps(value),
    }


def test_a_preview_reads_the_provider_and_the_password_its_stack_recorded() -> None:
    deployment = {
        "resources": [
            {"type": "pulumi:pulumi:Stack", "inputs": {}},
            {
                "type": "pulumi:providers:kubernetes",
                "inputs": {"kubeconfig": secret("/etc/kube"), "enableServerSideApply": "true"},
            },
            {
                "type": "kubernetes:core/v1:Secret",
                "inputs": {"metadata": {"name": "other"}, "stringData": secret({"password": "x"})},
            },
            {
                "type": "kubernetes:core/v1:Secret",
                "inputs": {
                    "metadata": {"name": "db-credentials"},
                    "stringData": {"password": secret("s3cr3t")},
                },
            },
        ]
    }
    found = backend_files.recorded(deployment, "db-credentials", "password")
    assert found == backend_files.Recorded(kubeconfig="/etc/kube", context=None, password="s3cr3t")
    assert "s3cr3t" not in repr(found)
    # In a pod the provider records no kubeconfig; a stack without its Secret has none.
    bare = backend_files.recorded({"resources": []}, "db-credentials", "password")
    assert bare == backend_files.Recorded(kubeconfig=None, context=None, password=None)


def test_a_preview_hides_every_way_to_a_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/home/ops/.kube/config")
    monkeypatch.setenv("PULUMI_HOME", "/opt/pulumi")
    env = without_cluster(tmp_path)
    assert "KUBECONFIG" not in os.environ
    assert env == {
        "HOME": str(tmp_path / "home"),
        "PULUMI_HOME": "/opt/pulumi",
        "KUBERNETES_SERVICE_HOST": "",
        "KUBERNETES_SERVICE_PORT": "",
    }
    assert list((tmp_path / "home").iterdir()) == []


def test_a_checkpoint_read_from_a_bucket_is_its_latest_deployment() -> None:
    latest = {"resources": [{"type": "kubernetes:core/v1:Secret"}]}
    stored = json.dumps({"version": 3, "checkpoint": {"latest": latest}}).encode()
    assert backend_files.deployment_of(stored) == latest
    never_deployed = json.dumps({"version": 3, "checkpoint": {"latest": None}}).encode()
    assert backend_files.deployment_of(never_deployed) == {}
    assert backend_files.deployment_of(b'{"version": 3, "checkp') is None  # cut short
    assert backend_files.deployment_of(b"\x1f\x8b\x08\x00") is None  # compressed
