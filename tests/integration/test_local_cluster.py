"""hack/cluster: up is idempotent, the API server tells its real version, the S3 store
serves its buckets, down leaves nothing."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from localcluster import object_store
from localcluster.layout import Layout

from reconciler.s3 import Credentials, S3Client
from tests.conftest import CLUSTER
from tests.support import api_client_for
from tests.toolchain_pins import go_requirement

pytestmark = pytest.mark.integration

COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "minio",
)


def cluster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLUSTER), *args], capture_output=True, text=True, check=False)


def recorded_pids(state_dir: Path) -> dict[str, int]:
    return {
        name: int((state_dir / "pids" / f"{name}.pid").read_text().split()[0])
        for name in COMPONENTS
    }


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.fixture
def private_cluster(tmp_path: Path) -> Iterator[Path]:
    state_dir = tmp_path / "cluster"
    up = cluster("up", "--node=kwok", "--state-dir", str(state_dir))
    assert up.returncode == 0, up.stderr
    try:
        yield state_dir
    finally:
        cluster("down", "--state-dir", str(state_dir))


def test_up_is_idempotent_and_down_leaves_nothing(private_cluster: Path) -> None:
    state_dir = private_cluster
    first = recorded_pids(state_dir)
    assert all(pid_alive(pid) for pid in first.values())

    again = cluster("up", "--node=kwok", "--state-dir", str(state_dir))
    assert again.returncode == 0, again.stderr
    assert recorded_pids(state_dir) == first, "a second up must not restart anything"
    assert "already running" in again.stderr

    status = cluster("status", "--state-dir", str(state_dir))
    assert status.returncode == 0, status.stdout
    for name in COMPONENTS:
        assert f"{name}" in status.stdout

    env = cluster("env", "--state-dir", str(state_dir)).stdout
    assert f"export KUBECONFIG='{state_dir / 'kubeconfig'}'" in env

    api = api_client_for(state_dir / "kubeconfig")
    version = client.VersionApi(api).get_code()
    assert version.git_version == go_requirement("kubernetes", "k8s.io/kubernetes")
    nodes = client.CoreV1Api(api).list_node().items
    assert [n.metadata.name for n in nodes] == ["kwok-node-0"]

    down = cluster("down", "--check", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert "nothing left behind" in down.stderr
    assert not any(pid_alive(pid) for pid in first.values())
    assert not state_dir.exists()
    assert cluster("status", "--state-dir", str(state_dir)).returncode != 0


def test_up_restarts_only_what_died(private_cluster: Path) -> None:
    state_dir = private_cluster
    before = recorded_pids(state_dir)
    os.kill(before["kube-scheduler"], 15)
    stopped = cluster("status", "--state-dir", str(state_dir))
    assert stopped.returncode == 1
    assert "kube-scheduler" in stopped.stdout

    up = cluster("up", "--node=kwok", "--state-dir", str(state_dir))
    assert up.returncode == 0, up.stderr
    after = recorded_pids(state_dir)
    assert after["kube-scheduler"] != before["kube-scheduler"]
    assert {k: v for k, v in after.items() if k != "kube-scheduler"} == {
        k: v for k, v in before.items() if k != "kube-scheduler"
    }
    assert json.loads((state_dir / "ports.json").read_text())["apiserver"] > 0


def test_the_s3_store_serves_its_buckets_to_the_credentials_it_publishes(
    private_cluster: Path,
) -> None:
    state_dir = private_cluster
    layout = Layout(state_dir)
    for path in (layout.s3_access_key_file, layout.s3_secret_key_file):
        assert path.stat().st_mode & 0o777 == 0o600, path
    secret_key = layout.s3_secret_key_file.read_text().strip()

    env = cluster("env", "--state-dir", str(state_dir)).stdout
    assert secret_key not in env, "the secret key must never be printed"
    assert f"export AWS_SECRET_ACCESS_KEY=\"$(cat '{layout.s3_secret_key_file}')\"" in env
    assert "export AWS_REGION='us-east-1'" in env
    endpoint = re.search(r"^export AWS_ENDPOINT_URL='(http://127\.0\.0\.1:\d+)'$", env, re.M)
    access_key = re.search(r"^export AWS_ACCESS_KEY_ID='(\S+)'$", env, re.M)
    assert endpoint is not None, env
    assert access_key is not None, env

    # The Secret that tests and users copy holds the same credentials.
    api = api_client_for(state_dir / "kubeconfig")
    secret = client.CoreV1Api(api).read_namespaced_secret(
        object_store.SECRET, object_store.NAMESPACE
    )
    data = secret.data or {}
    assert base64.b64decode(data["access_key_id"]).decode() == access_key[1]
    assert base64.b64decode(data["secret_access_key"]).decode() == secret_key

    store = S3Client(endpoint[1], Credentials(access_key[1], secret_key))
    for bucket in object_store.BUCKETS:
        assert store.bucket_exists(bucket), bucket
    store.put_object("pulumi-state", "probe/a b.txt", b"stored")
    assert store.get_object("pulumi-state", "probe/a b.txt") == b"stored"
    assert store.request("GET", "/pulumi-state/probe/missing").status == 404

    wrong = S3Client(endpoint[1], Credentials(access_key[1], "not-the-secret-key"))
    assert wrong.request("GET", "/pulumi-state/probe/a b.txt").status == 403

    # A second up keeps the credentials and the data, and re-creating buckets is a no-op.
    again = cluster("up", "--node=kwok", "--state-dir", str(state_dir))
    assert again.returncode == 0, again.stderr
    assert layout.s3_secret_key_file.read_text().strip() == secret_key
    assert store.get_object("pulumi-state", "probe/a b.txt") == b"stored"
    assert store.ensure_bucket("pulumi-state") is False
