"""The pure reconcile decision, the status model and the driver's pure helpers."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.conditions import ConditionType, Reason, Status, mark_backup, mark_ready
from reconciler.driver import (
    FailureKind,
    Plan,
    classify,
    deployed_kubernetes_objects,
    drop_pending_operations,
    stack_name,
    update_id,
)
from reconciler.fingerprint import inputs_fingerprint
from reconciler.program import Phase
from reconciler.reconcile import (
    FINALIZER,
    AddFinalizer,
    Deploy,
    Forget,
    InSync,
    Observation,
    Stall,
    Teardown,
    decide,
    is_synced,
)
from reconciler.spec import parse_instance
from reconciler.status import (
    Endpoint,
    InstanceStatus,
    ToolchainVersions,
    UpdateRecord,
    parse_status,
)

pytestmark = pytest.mark.unit

TOOLCHAIN = ToolchainVersions("3.274.1", "3.272.0", "4.25.0")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def mysql(
    *,
    generation: int = 1,
    finalizer: bool = True,
    deleting: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": "mysql-instance",
        "namespace": "ns",
        "uid": "0f3c2a8e-1111-2222-3333-444455556666",
        "generation": generation,
        "resourceVersion": "7",
    }
    if finalizer:
        metadata["finalizers"] = [FINALIZER]
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "apiVersion": "otus.homework/v1",
        "kind": "MySQL",
        "metadata": metadata,
        "spec": {
            "image": "mysql:5.7",
            "database": "otus-database",
            "password": "otuspassword",
            "storage_size": "1Gi",
            **spec,
        },
    }


def synced(obj: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """`obj` with the status a successful `up` of its current generation leaves."""
    done = copy.deepcopy(obj)
    generation = done["metadata"]["generation"]
    status = InstanceStatus(
        observed_generation=generation,
        conditions=mark_ready((), "ok", generation=generation, now=NOW),
        inputs_fingerprint=inputs_fingerprint(parse_instance(done), Phase.RUNNING),
        toolchain=TOOLCHAIN,
        last_update=UpdateRecord("update-1", "update", "running", "succeeded", {"create": 11}),
        endpoint=Endpoint("mysql-instance.ns.svc.cluster.local", 3306),
        stack="ns.mysql-instance",
    )
    raw = status.to_patch()["status"]
    raw.update(overrides)
    done["status"] = raw
    return done


def observe(obj: dict[str, Any], **more: Any) -> Observation:
    return Observation(obj=obj, toolchain=TOOLCHAIN, **more)


# -- live objects -----------------------------------------------------------------------


def test_a_new_object_gets_the_finalizer_first() -> None:
    assert decide(observe(mysql(finalizer=False))) == AddFinalizer()


def test_a_new_object_with_the_finalizer_is_deployed_with_its_fingerprint() -> None:
    obj = mysql()
    action = decide(observe(obj))
    assert isinstance(action, Deploy)
    assert action.instance == parse_instance(obj)
    assert action.fingerprint == inputs_fingerprint(action.instance, Phase.RUNNING)


def test_an_unchanged_object_costs_no_engine_run() -> None:
    assert decide(observe(synced(mysql()))) == InSync()


@pytest.mark.parametrize(
    "change",
    ["generation", "fingerprint", "toolchain", "not-ready"],
)
def test_any_mismatch_means_deploy(change: str) -> None:
    obj = synced(mysql())
    if change == "generation":
        obj["metadata"]["generation"] = 2
        obj["spec"]["image"] = "mysql:8.0"
    elif change == "fingerprint":
        obj["status"]["inputsFingerprint"] = "sha256:old"
    elif change == "toolchain":
        obj["status"]["toolchain"]["pulumiCli"] = "3.200.0"
    else:
        obj["status"]["conditions"][0]["status"] = "False"
    assert isinstance(decide(observe(obj)), Deploy)


def test_is_synced_needs_every_part() -> None:
    obj = synced(mysql())
    status = parse_status(obj)
    fingerprint = status.inputs_fingerprint
    assert fingerprint is not None
    assert is_synced(status, 1, fingerprint, TOOLCHAIN)
    assert not is_synced(status, 2, fingerprint, TOOLCHAIN)
    assert not is_synced(status, 1, "sha256:x", TOOLCHAIN)
    assert not is_synced(status, 1, fingerprint, ToolchainVersions("a", "b", "c"))
    assert not is_synced(InstanceStatus(), 1, fingerprint, TOOLCHAIN)


def test_a_spec_error_stalls_with_the_field_named() -> None:
    obj = mysql()
    obj["spec"]["storage_size"] = "0"
    action = decide(observe(obj))
    assert isinstance(action, Stall)
    assert action.reason is Reason.SPEC_INVALID
    assert action.message.startswith("spec.storage_size:")


def test_a_missing_password_secret_stalls() -> None:
    obj = mysql(passwordSecretRef={"name": "nope"})
    del obj["spec"]["password"]
    problem = "spec.passwordSecretRef: Secret 'nope' not found in namespace ns"
    action = decide(observe(obj, secret_problem=problem))
    assert action == Stall(Reason.SECRET_MISSING, problem)


# -- deletion -------------------------------------------------------------------------


def test_a_deleted_object_without_our_finalizer_is_forgotten() -> None:
    assert decide(observe(mysql(deleting=True, finalizer=False))) == Forget()


def test_deletion_backs_up_by_default() -> None:
    obj = synced(mysql(deleting=True))
    action = decide(observe(obj))
    assert action == Teardown("ns", "mysql-instance", parse_instance(obj), backup=True)


@pytest.mark.parametrize(
    "spec",
    [{"deletion_policy": "Delete"}, {"backup": {"on_delete": False}}],
)
def test_deletion_without_a_backup_when_the_policy_says_so(spec: dict[str, Any]) -> None:
    action = decide(observe(synced(mysql(deleting=True, **spec))))
    assert isinstance(action, Teardown)
    assert not action.backup


def test_a_backup_that_already_succeeded_for_this_generation_is_not_repeated() -> None:
    obj = synced(mysql(deleting=True))
    conditions = mark_backup(
        (), Status.TRUE, Reason.BACKUP_SUCCEEDED, "done", generation=1, now=NOW
    )
    obj["status"]["conditions"] += [c.to_dict() for c in conditions]
    action = decide(observe(obj))
    assert isinstance(action, Teardown)
    assert not action.backup
    obj["metadata"]["generation"] = 2  # the spec changed since: back up again
    action = decide(observe(obj))
    assert isinstance(action, Teardown)
    assert action.backup


def test_a_terminating_namespace_is_reported_not_waited_on() -> None:
    action = decide(observe(synced(mysql(deleting=True)), namespace_terminating=True))
    assert isinstance(action, Stall)
    assert action.reason is Reason.NAMESPACE_TERMINATING
    assert FINALIZER in action.message


def test_a_terminating_namespace_does_not_block_a_teardown_without_backup() -> None:
    obj = synced(mysql(deleting=True, deletion_policy="Delete"))
    action = decide(observe(obj, namespace_terminating=True))
    assert isinstance(action, Teardown)
    assert not action.backup


def test_nothing_deployed_means_nothing_to_back_up() -> None:
    obj = mysql(deleting=True)
    action = decide(observe(obj, stack_deployed=False))
    assert action == Teardown("ns", "mysql-instance", parse_instance(obj), backup=False)


def test_an_invalid_spec_blocks_deletion_only_if_something_was_deployed() -> None:
    obj = mysql(deleting=True)
    obj["spec"]["image"] = ""
    stalled = decide(observe(obj, stack_deployed=True))
    assert isinstance(stalled, Stall)
    assert stalled.reason is Reason.SPEC_INVALID
    assert "spec.image" in stalled.message
    assert decide(observe(obj, stack_deployed=False)) == Teardown(
        "ns", "mysql-instance", None, backup=False
    )


# -- status ---------------------------------------------------------------------------


def test_status_round_trips_through_the_patch() -> None:
    obj = synced(mysql())
    status = parse_status(obj)
    assert status.endpoint == Endpoint("mysql-instance.ns.svc.cluster.local", 3306)
    assert status.last_update is not None
    assert status.last_update.resource_changes == {"create": 11}
    assert status.toolchain == TOOLCHAIN
    assert [c.type for c in status.conditions] == [ConditionType.READY]
    assert parse_status({"status": status.to_patch()["status"]}) == status


def test_an_empty_status_parses() -> None:
    assert parse_status({}) == InstanceStatus()
    assert parse_status({"status": {"toolchain": "junk", "endpoint": 3}}) == InstanceStatus()


# -- driver helpers -------------------------------------------------------------------


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
    assert update_id("update", 0, NOW) == f"update-{int(NOW.timestamp())}"


def test_a_plan_with_only_same_steps_has_no_changes() -> None:
    assert not Plan({"same": 11}, (), True).has_changes
    assert Plan({"same": 10, "update": 1}, (), True).has_changes
