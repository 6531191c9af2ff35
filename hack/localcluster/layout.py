"""Where everything of one cluster lives inside its state directory."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from enum import StrEnum
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
CLUSTER_DOMAIN = "cluster.local"


class NodeKind(StrEnum):
    KWOK = "kwok"
    REAL = "real"


def write_if_changed(path: Path, text: str) -> None:
    """Rewrites a config file only when its content changes: kube-proxy exits when its
    config file is written to, even with the same content, and a second `up` must not
    disturb what runs."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def default_state_dir() -> Path:
    explicit = os.environ.get("MYSQL_OPERATOR_CLUSTER_DIR")
    if explicit:
        return Path(explicit)
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "mysql-operator" / "cluster"


@dataclasses.dataclass(frozen=True)
class Ports:
    """Every port the cluster listens on, chosen once at the first `up`."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int
    kubelet: int
    kubelet_healthz: int
    kube_proxy_healthz: int
    kube_proxy_metrics: int
    coredns_health: int
    reconciler: int
    # MinIO's S3 port on a kwok cluster (loopback, shared by every cluster on the
    # machine); a real node's MinIO listens on the bridge's own address, port 9000.
    minio: int


def free_loopback_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.pki = root / "pki"
        self.logs = root / "logs"
        self.pids = root / "pids"
        self.etcd_data = root / "etcd"
        self.kubeconfig = root / "kubeconfig"
        self.ports_file = root / "ports.json"
        self.bin_file = root / "bin-dir"
        self.node_file = root / "node-kind"
        # Real node only.
        self.containerd = root / "containerd"
        self.containerd_socket = self.containerd / "containerd.sock"
        self.cni_conf = root / "cni" / "net.d"
        self.cni_ipam = root / "cni" / "ipam"
        self.kubelet_root = root / "kubelet"
        self.pod_logs = root / "pod-logs"
        self.host_changes = root / "host-changes.json"
        # The default StorageClass's volumes (real node only).
        self.local_path = root / "local-path-provisioner"
        self.provisioned_volumes = root / "volumes" / "provisioned"
        # The S3 store: its data, and its credentials, made once (0600 files).
        self.minio = root / "minio"
        self.minio_data = self.minio / "data"
        self.s3_access_key_file = self.minio / "access-key-id"
        self.s3_secret_key_file = self.minio / "secret-access-key"
        # Outside the state, so that `down --check` can still read it once the state
        # is gone: the host as it was before the first `up`.
        self.host_snapshot = root.parent / f".{root.name}.host-before-up.json"

    def pid_file(self, component: str) -> Path:
        return self.pids / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def config_file(self, component: str, suffix: str = "yaml") -> Path:
        return self.root / f"{component}.{suffix}"

    def component_kubeconfig(self, component: str) -> Path:
        return self.root / f"{component}.kubeconfig"

    def make_dirs(self) -> None:
        for directory in (self.root, self.logs, self.pids, self.etcd_data):
            directory.mkdir(parents=True, exist_ok=True)
        self.etcd_data.chmod(0o700)

    def ports(self) -> Ports:
        fields = [field.name for field in dataclasses.fields(Ports)]
        known: dict[str, int] = (
            json.loads(self.ports_file.read_text()) if self.ports_file.exists() else {}
        )
        missing = [name for name in fields if name not in known]
        if missing:
            known.update(zip(missing, free_loopback_ports(len(missing)), strict=True))
            self.ports_file.write_text(json.dumps(known))
        return Ports(**{name: known[name] for name in fields})

    def node_kind(self) -> NodeKind | None:
        if not self.node_file.exists():
            return None
        return NodeKind(self.node_file.read_text().strip())
