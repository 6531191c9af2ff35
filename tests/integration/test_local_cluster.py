"""hack/cluster: up is idempotent, the API server tells its real version, down leaves nothing."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.conftest import CLUSTER
from tests.support import api_client_for
from tests.unit.test_toolchain_pins import go_requirement

pytestmark = pytest.mark.integration

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


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

    down = cluster("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
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
