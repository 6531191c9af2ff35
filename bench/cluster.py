"""The bench's own cluster (kwok nodes, or the real node) on ports no other local cluster
can take: `hack/cluster up` picks ports by binding port 0 (the ephemeral range, where every
other local cluster picks too), so the bench writes `<state-dir>/ports.json` itself first,
with free ports below that range; one machine-wide lock lets one bench run at a time; and
a real node is refused while another one's bridge exists (bench/README.md).
"""

from __future__ import annotations

import ast
import fcntl
import json
import os
import random
import re
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
CLUSTER: Final = REPO_ROOT / "hack" / "cluster"
LAYOUT_SOURCE: Final = REPO_ROOT / "hack" / "localcluster" / "layout.py"
EPHEMERAL_RANGE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOCK_PATH: Final = Path(tempfile.gettempdir()) / "mysql-operator-bench.lock"
REAL_NODE_BRIDGE: Final = Path("/sys/class/net/mysqlop0")  # hack/localcluster/real_node.py
# The cluster's S3 store, as hack/localcluster/object_store.py names it (NAMESPACE, SECRET,
# REGION, one of BUCKETS; tests/unit/test_bench_backends.py keeps them equal): its
# credentials' Secret, its region, the bucket for Pulumi state.
STORE_NAMESPACE: Final = "local-s3"
STORE_SECRET: Final = "minio-credentials"  # noqa: S105 (its name, not its value)
STORE_REGION: Final = "us-east-1"
STATE_BUCKET: Final = "pulumi-state"
# Ports below this are left to system services.
LOWEST_PORT: Final = 10000
MIN_CHOICES: Final = 1000


class BenchBusy(Exception):
    """Another bench run holds the machine-wide lock, or another real node is up."""


def port_names(layout_source: str) -> tuple[str, ...]:
    """The fields of `Ports` in hack/localcluster/layout.py, read from its source (hack/
    is not an importable package of the project)."""
    for node in ast.parse(layout_source).body:
        if isinstance(node, ast.ClassDef) and node.name == "Ports":
            return tuple(
                stmt.target.id
                for stmt in node.body
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
            )
    raise ValueError("no class Ports in hack/localcluster/layout.py")


def ephemeral_low(range_text: str) -> int:
    """The first port of the kernel's ephemeral range (`ip_local_port_range`)."""
    return int(range_text.split()[0])


def pick_ports(
    count: int, low: int, high: int, is_free: Callable[[int], bool], rng: random.Random
) -> list[int]:
    """`count` distinct free ports in [low, high), in random order."""
    if high - low < max(count, MIN_CHOICES):
        raise ValueError(f"too few ports below the ephemeral range: [{low}, {high})")
    candidates = rng.sample(range(low, high), high - low)
    chosen = [port for port in candidates[: count * 20] if is_free(port)][:count]
    if len(chosen) < count:
        raise RuntimeError(f"found only {len(chosen)} free ports of {count} in [{low}, {high})")
    return chosen


def loopback_port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def machine_lock(path: Path = LOCK_PATH) -> Iterator[None]:
    """One bench run per machine; raises `BenchBusy` naming the holder."""
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise BenchBusy(
                f"another bench run holds {path} (pid {handle.read().strip() or '?'})"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


@dataclass
class Cluster:
    state_dir: Path
    node: str = "kwok"  # or "real"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def reserve_ports(self) -> dict[str, int]:
        """Writes ports.json before `up`; call it under `machine_lock`."""
        names = port_names(LAYOUT_SOURCE.read_text())
        high = ephemeral_low(EPHEMERAL_RANGE.read_text())
        ports = pick_ports(len(names), LOWEST_PORT, high, loopback_port_free, random.SystemRandom())
        chosen = dict(zip(names, ports, strict=True))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "ports.json").write_text(json.dumps(chosen))
        return chosen

    def up(self) -> None:
        if self.node == "real" and REAL_NODE_BRIDGE.exists():
            raise BenchBusy(
                f"{REAL_NODE_BRIDGE.name} exists: another real node is up (one per machine)"
            )
        subprocess.run(
            [str(CLUSTER), "up", f"--node={self.node}", "--state-dir", str(self.state_dir)],
            check=True,
        )

    def down(self) -> None:
        subprocess.run([str(CLUSTER), "down", "--state-dir", str(self.state_dir)], check=False)

    def store_endpoint(self) -> str:
        """The URL this host reaches the cluster's S3 store by (`hack/cluster env`)."""
        done = subprocess.run(
            [str(CLUSTER), "env", "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        found = exported(done.stdout, "AWS_ENDPOINT_URL")
        if found is None:
            raise RuntimeError(f"`hack/cluster env` printed no AWS_ENDPOINT_URL: {done.stderr}")
        return found

    def component_pids(self) -> dict[str, int]:
        """The PID of each component `up` started (etcd, kube-apiserver, kwok...)."""
        pids = {}
        for path in sorted((self.state_dir / "pids").glob("*.pid")):
            try:
                pids[path.stem] = int(path.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        return pids

    def controller_manager_flag(self, flag: str) -> str | None:
        """A flag's value in the running kube-controller-manager's argv (None: not given)."""
        try:
            pid = self.component_pids()["kube-controller-manager"]
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except (OSError, KeyError):
            return None
        return flag_value(argv, flag)


def flag_value(argv: list[str], flag: str) -> str | None:
    for arg in argv:
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def exported(env_text: str, name: str) -> str | None:
    """The value of `export NAME='value'` in `hack/cluster env`'s output (None: absent)."""
    found = re.search(rf"^export {re.escape(name)}='([^']*)'$", env_text, re.M)
    return None if found is None else found.group(1)


def s3_backend_url(endpoint: str, prefix: str, bucket: str = STATE_BUCKET) -> str:
    """A Pulumi DIY backend URL for `prefix` in a bucket of the cluster's store (the
    credentials go in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)."""
    return f"s3://{bucket}/{prefix}?endpoint={endpoint}&region={STORE_REGION}&use_path_style=true"


def kwok_node(index: int) -> dict[str, Any]:
    """One more fake node for the cluster's kwok, which plays every node with this
    annotation (hack/localcluster/kwok_node.py). Each node takes 250 pods; this one gets
    a pod CIDR of its own, since kwok gives the pods of nodes without one their IPs from
    a single /24."""
    name = f"bench-node-{index}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {"podCIDR": f"10.{245 + index // 256}.{index % 256}.0/24"},
    }
