"""The Pulumi driver against the real engine: recovery of what a crashed run leaves.

A reconciler killed in the middle of an `up` leaves the DIY backend's lock file, and the
checkpoint may hold pending operations. The driver must clear both before its next run
instead of failing forever (pulumi-kubernetes-operator #368, #736). The crash itself is
simulated by writing exactly what it leaves behind.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Final

import pytest
from kubernetes import client

from reconciler.driver import Driver, DriverConfig
from reconciler.program import ClusterAccess, Phase
from reconciler.spec import parse_instance
from tests.integration.test_crd_admission import GROUP, PLURAL, VERSION
from tests.integration.test_reconciler import harness_in_new_namespace

pytestmark = pytest.mark.integration

PROJECT: Final = "mysql-operator"
NAME: Final = "mysql-instance"


def test_a_stale_lock_and_pending_operations_are_recovered(
    api_client: client.ApiClient, kubeconfig: Path, namespace_name: str, tmp_path: Path
) -> None:
    with harness_in_new_namespace(api_client, kubeconfig, namespace_name, tmp_path) as harness:
        harness.create(NAME, harness.spec())
        stored: Any = harness.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace_name, PLURAL, NAME
        )
        instance = parse_instance(stored)
        backend = tmp_path / "state"
        driver = Driver(
            DriverConfig(
                project_name=PROJECT,
                backend_url=f"file://{backend}",
                work_dir=tmp_path / "workspace",
                cluster=ClusterAccess(kubeconfig=str(kubeconfig)),
                passphrase=f"it-{uuid.uuid4().hex}",
            )
        )
        first = driver.up(instance, Phase.RUNNING)
        assert first.result == "succeeded"
        stack = f"{namespace_name}.{NAME}"

        # What a kill -9 in the middle of an update leaves: a lock file, and a pending
        # create in the checkpoint.
        lock_dir = backend / ".pulumi" / "locks" / "organization" / PROJECT / stack
        assert lock_dir.is_dir(), "the DIY backend's lock layout changed"
        lock = lock_dir / f"{uuid.uuid4()}.json"
        lock.write_text(
            json.dumps(
                {
                    "pid": 999999,
                    "username": "crashed",
                    "hostname": "gone",
                    "timestamp": "2026-01-01T00:00:00Z",
                }
            )
        )
        checkpoint = next((backend / ".pulumi" / "stacks" / PROJECT).glob(f"{stack}.json"))
        state = json.loads(checkpoint.read_text())
        urn = state["checkpoint"]["latest"]["resources"][-1]["urn"]
        state["checkpoint"]["latest"]["pending_operations"] = [
            {
                "resource": {"urn": urn, "type": "kubernetes:core/v1:Service", "custom": True},
                "type": "creating",
            }
        ]
        checkpoint.write_text(json.dumps(state))

        second = driver.up(instance, Phase.RUNNING)
        assert second.result == "succeeded"
        assert not any(lock_dir.iterdir()), "the stale lock was cleared"
        state = json.loads(checkpoint.read_text())
        assert not state["checkpoint"]["latest"].get("pending_operations")
        assert driver.deployed_objects(namespace_name, NAME) > 0
