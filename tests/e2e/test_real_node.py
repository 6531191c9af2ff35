"""A real node runs real MySQL: a pod on a local volume, a Service, and a Job that reaches
it by DNS name, writes rows and reads them back. Then `down` leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.conftest import CLUSTER
from tests.e2e.conftest import RealNode
from tests.e2e.host_snapshot import HostSnapshot, processes_mentioning
from tests.support import eventually

pytestmark = pytest.mark.e2e

MARIADB_IMAGE = "localhost/mysql-operator/mariadb:10.11"
ROWS = ("alpha", "beta", "gamma")


def node_conditions(api: client.ApiClient) -> dict[str, str]:
    nodes = client.CoreV1Api(api).list_node().items
    assert len(nodes) == 1, [n.metadata.name for n in nodes]
    return {c.type: c.status for c in nodes[0].status.conditions}


def test_node_is_ready_and_real(real_node: RealNode) -> None:
    api = real_node.api()
    assert node_conditions(api)["Ready"] == "True"
    node = client.CoreV1Api(api).list_node().items[0]
    assert node.status.node_info.container_runtime_version.startswith("containerd://")
    assert node.status.node_info.kubelet_version.startswith("v1.")


def test_a_second_up_restarts_nothing(real_node: RealNode) -> None:
    state_dir = real_node.require_owned()
    pids = {p.name: p.read_text() for p in (state_dir / "pids").glob("*.pid")}
    again = subprocess.run(
        [str(CLUSTER), "up", "--node=real", "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert {p.name: p.read_text() for p in (state_dir / "pids").glob("*.pid")} == pids
    assert node_conditions(real_node.api())["Ready"] == "True"


@pytest.fixture
def namespace(real_node: RealNode) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(real_node.api())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def mysql_workload(namespace: str, volume_dir: Path) -> list[dict[str, object]]:
    labels = {"app": "smoke-mysql"}
    password_env = {
        "valueFrom": {"secretKeyRef": {"name": "smoke-mysql", "key": "password"}},
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "smoke-mysql"},
            "stringData": {"password": f"pw-{uuid.uuid4().hex}"},
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{namespace}-data"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain",
                "claimRef": {"namespace": namespace, "name": "data"},
                "hostPath": {"path": str(volume_dir), "type": "DirectoryOrCreate"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": f"{namespace}-data",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "mysql", "labels": labels},
            "spec": {
                "containers": [
                    {
                        "name": "mysql",
                        "image": MARIADB_IMAGE,
                        "imagePullPolicy": "Never",
                        "env": [
                            {"name": "MYSQL_ROOT_PASSWORD", **password_env},
                            {"name": "MYSQL_DATABASE", "value": "smoke"},
                        ],
                        "ports": [{"containerPort": 3306}],
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/mysql"}],
                    }
                ],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "mysql"},
            "spec": {"selector": labels, "ports": [{"port": 3306, "targetPort": 3306}]},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "write-and-read"},
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": 240,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "client",
                                "image": MARIADB_IMAGE,
                                "imagePullPolicy": "Never",
                                "env": [{"name": "MYSQL_PWD", **password_env}],
                                "command": ["sh", "-c", CLIENT_SCRIPT.format(namespace=namespace)],
                            }
                        ],
                    }
                },
            },
        },
    ]


# The Service is reached by its DNS name, so cluster DNS and kube-proxy are both on the path.
CLIENT_SCRIPT = """\
set -eu
host=mysql.{namespace}.svc.cluster.local
until mysql -h "$host" -uroot -e 'SELECT 1' >/dev/null 2>&1; do sleep 1; done
mysql -h "$host" -uroot smoke -e "CREATE TABLE t (v VARCHAR(16) PRIMARY KEY)"
mysql -h "$host" -uroot smoke -e "INSERT INTO t VALUES ('alpha'), ('beta'), ('gamma')"
mysql -h "$host" -uroot smoke --batch --skip-column-names -e "SELECT v FROM t ORDER BY v"
"""


def apply(kubeconfig: Path, namespace: str, manifests: list[dict[str, object]]) -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": manifests}
    subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", "apply", "-n", namespace, "-f", "-"],
        input=json.dumps(listed),
        text=True,
        check=True,
        capture_output=True,
    )


def job_state(api: client.ApiClient, namespace: str) -> str:
    status = client.BatchV1Api(api).read_namespaced_job_status("write-and-read", namespace).status
    if status.succeeded:
        return "succeeded"
    if status.failed:
        return "failed"
    return "running"


def test_mysql_pod_service_and_job_by_dns_name(
    real_node: RealNode, namespace: str, tmp_path: Path
) -> None:
    api = real_node.api()
    core = client.CoreV1Api(api)
    volume_dir = tmp_path / "mysql-data"
    try:
        apply(real_node.kubeconfig, namespace, mysql_workload(namespace, volume_dir))
        state = eventually(
            lambda: job_state(api, namespace),
            lambda s: s != "running",
            timeout_s=300,
            interval_s=2,
            what="the client Job finishing",
        )
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=write-and-read")
        log = core.read_namespaced_pod_log(str(pods.items[0].metadata.name), namespace)
        assert state == "succeeded", log
        assert log.split() == list(ROWS)
        # The rows are on the host volume, so the data really went through the PVC.
        assert (volume_dir / "smoke").is_dir()
    finally:
        try:
            core.delete_persistent_volume(f"{namespace}-data")
        except ApiException as error:
            if error.status != 404:
                raise


@pytest.mark.teardown_last
def test_down_leaves_nothing_behind(real_node: RealNode) -> None:
    state_dir = real_node.require_owned()
    assert real_node.host_before is not None
    assert processes_mentioning(str(state_dir)), "the node should be running now"

    down = subprocess.run(
        [str(CLUSTER), "down", "--check", "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert down.returncode == 0, down.stderr

    assert not state_dir.exists()
    assert processes_mentioning(str(state_dir)) == []
    assert real_node.host_before.differences(HostSnapshot.take()) == {}
