"""The operator as users install it: the reconciler image, built by a real Docker engine
and imported into the real node's containerd, installed with `pulumi up` of infra/, and
then the same data story as the local process (tests/e2e/data_story.py).

The installation watches only the story's namespace, so that it never races the local
reconcilers of other tests on the same cluster. Its state claim binds to a hostPath
volume (stateHostPath), whose directory the test makes writable by the pod's uid, as an
administrator of a cluster without a provisioner would.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from kubernetes import client

from infra.resources import RUN_AS
from tests.e2e.conftest import RealNode
from tests.e2e.data_story import (
    NAME,
    ORIGINAL_SPEC,
    e2e_harness,
    rows_survive_delete_and_come_back_on_recreate,
)
from tests.harness import Harness
from tests.pulumi_project import Project, new_project
from tests.support import eventually

pytestmark = pytest.mark.e2e

DEPLOYMENT: Final = "mysql-operator"
READY_TIMEOUT_S: Final = 300.0


def preview_in_pod(
    real_node: RealNode, operator_namespace: str, manifest: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """What users' CI runs (.github/workflows/mysql-preview.yml): `reconciler preview`
    inside the operator's pod, the manifest on standard input."""
    exec_in_pod = ["exec", "-i", "-n", operator_namespace, f"deploy/{DEPLOYMENT}", "--"]
    preview = ["mysql-operator-reconciler", "preview", "-f", "-", "--output=json"]
    result = subprocess.run(
        ["kubectl", "--kubeconfig", str(real_node.kubeconfig), *exec_in_pod, *preview],
        input=yaml.safe_dump(manifest),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 2), result.stderr
    plan: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, plan


def operator_log(harness: Harness, namespace: str) -> str:
    pods = harness.core.list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/name=mysql-operator"
    ).items
    logs = []
    for pod in pods:
        try:
            logs.append(harness.core.read_namespaced_pod_log(str(pod.metadata.name), namespace))
        except client.exceptions.ApiException as error:
            logs.append(f"{pod.metadata.name}: no log ({error.status})")
    return "\n".join(logs)


def test_the_installed_operator_keeps_the_data_promise(
    real_node: RealNode, reconciler_image: str, installation_namespace: str, tmp_path: Path
) -> None:
    state_dir = tmp_path / "operator-state"
    state_dir.mkdir()
    os.chown(state_dir, RUN_AS, RUN_AS)
    with e2e_harness(real_node, tmp_path) as harness:
        project: Project = new_project(
            tmp_path / "install",
            real_node.kubeconfig,
            {
                "image": reconciler_image,
                # Only what the node already has: no registry is reachable.
                "imagePullPolicy": "Never",
                "namespace": installation_namespace,
                "watchedNamespaces": harness.namespace,
                "stateHostPath": str(state_dir),
                "workers": "2",
            },
        )

        def install() -> None:
            project.pulumi("up", "--yes", "--skip-preview")
            deployment = eventually(
                lambda: harness.apps.read_namespaced_deployment(DEPLOYMENT, installation_namespace),
                lambda d: d.status.ready_replicas == 1,
                timeout_s=READY_TIMEOUT_S,
                what="the reconciler Deployment ready",
            )
            (container,) = deployment.spec.template.spec.containers
            assert container.image == reconciler_image

        try:
            rows_survive_delete_and_come_back_on_recreate(harness, install)
            # The in-cluster reconciler did the work: its stacks are in the state claim.
            stacks = sorted(p.name for p in state_dir.rglob("*.json") if "stacks" in p.parts)
            assert any(harness.namespace in name for name in stacks), stacks

            # Users' CI previews against the installed operator's state.
            manifest = harness.manifest(NAME, dict(ORIGINAL_SPEC))
            status, plan = preview_in_pod(real_node, installation_namespace, manifest)
            assert (status, plan["hasChanges"]) == (0, False), plan
            changed = harness.manifest(NAME, {**ORIGINAL_SPEC, "image": "mysql:8.0"})
            status, plan = preview_in_pod(real_node, installation_namespace, changed)
            assert status == 2, plan
            updated = [s["type"] for s in plan["steps"] if s["op"] == "update"]
            assert updated == ["kubernetes:apps/v1:Deployment"], plan
        finally:
            lines = operator_log(harness, installation_namespace).splitlines()
            print("--- in-cluster reconciler log: first warnings and errors ---")
            print("\n".join([line for line in lines if "level=info" not in line][:40]))
            print("--- in-cluster reconciler log (tail) ---")
            print("\n".join(lines[-60:]))
            project.pulumi("destroy", "--yes", "--skip-preview")
