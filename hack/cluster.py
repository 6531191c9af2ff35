"""A local Kubernetes control plane on loopback, built from the project's own toolchain.

    hack/cluster up [--state-dir DIR]      start what is not running (idempotent)
    hack/cluster down [--state-dir DIR]    stop what `up` started, by PID, and remove the state
    hack/cluster status [--state-dir DIR]  show each component
    hack/cluster env [--state-dir DIR]     print the exports that point tools at this cluster

Components: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok with
one fake node whose pods become Ready (and whose Job pods succeed). Every process listens
on 127.0.0.1 only; certificates and service-account keys are generated here.

Only the Python standard library and openssl are used, so this runs before any venv exists.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLCHAIN_BUILD = REPO_ROOT / "hack" / "toolchain" / "build"
KWOK_STAGES = REPO_ROOT / "hack" / "kwok-stages.yaml"

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
FAKE_NODE = "kwok-node-0"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0


def default_state_dir() -> Path:
    explicit = os.environ.get("MYSQL_OPERATOR_CLUSTER_DIR")
    if explicit:
        return Path(explicit)
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "mysql-operator" / "cluster"


def log(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


@dataclasses.dataclass(frozen=True)
class Started:
    """A process that `up` started: the PID plus its kernel start time, so a reused PID
    is never mistaken for ours."""

    pid: int
    start_ticks: int

    @staticmethod
    def read(path: Path) -> Started | None:
        try:
            pid, ticks = path.read_text().split()
            return Started(int(pid), int(ticks))
        except (OSError, ValueError):
            return None

    def write(self, path: Path) -> None:
        path.write_text(f"{self.pid} {self.start_ticks}\n")

    def alive(self) -> bool:
        return process_start_ticks(self.pid) == self.start_ticks


def process_start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; fields resume after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def stop_process(name: str, started: Started) -> None:
    if not started.alive():
        return
    os.kill(started.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while started.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if started.alive():
        log(f"{name} (pid {started.pid}) ignored SIGTERM; sending SIGKILL")
        os.kill(started.pid, signal.SIGKILL)
        while started.alive():
            time.sleep(0.05)


# --------------------------------------------------------------------------- layout


@dataclasses.dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int


class Layout:
    """Where everything of one cluster lives inside its state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pki = root / "pki"
        self.logs = root / "logs"
        self.pids = root / "pids"
        self.etcd_data = root / "etcd"
        self.kubeconfig = root / "kubeconfig"
        self.ports_file = root / "ports.json"
        self.bin_file = root / "bin-dir"

    def pid_file(self, component: str) -> Path:
        return self.pids / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def component_kubeconfig(self, component: str) -> Path:
        return self.root / f"{component}.kubeconfig"

    def ports(self) -> Ports:
        if self.ports_file.exists():
            return Ports(**json.loads(self.ports_file.read_text()))
        ports = Ports(*free_loopback_ports(len(dataclasses.fields(Ports))))
        self.ports_file.write_text(json.dumps(dataclasses.asdict(ports)))
        return ports


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


# --------------------------------------------------------------------------- pki


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def new_key(path: Path) -> None:
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path))
    path.chmod(0o600)


def issue_certificate(pki: Path, name: str, subject: str, extensions: str) -> None:
    key, cert = pki / f"{name}.key", pki / f"{name}.crt"
    if cert.exists():
        return
    new_key(key)
    with tempfile.TemporaryDirectory() as scratch:
        csr, ext = Path(scratch) / "csr", Path(scratch) / "ext"
        ext.write_text(extensions)
        openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"),
            "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "825",
            "-extfile", str(ext), "-out", str(cert),
        )  # fmt: skip


CLIENT_EXT = "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"


def ensure_pki(pki: Path) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    if not (pki / "ca.crt").exists():
        new_key(pki / "ca.key")
        openssl(
            "req", "-x509", "-new", "-key", str(pki / "ca.key"), "-days", "3650",
            "-subj", "/CN=mysql-operator-local-ca", "-out", str(pki / "ca.crt"),
        )  # fmt: skip
    sans = [
        "IP:127.0.0.1",
        f"IP:{SERVICE_IP}",
        "DNS:localhost",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
    ]
    issue_certificate(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        f"subjectAltName={','.join(sans)}\n",
    )
    # Each component gets the identity that Kubernetes' bootstrap RBAC already grants.
    issue_certificate(pki, "admin", "/O=system:masters/CN=admin", CLIENT_EXT)
    issue_certificate(
        pki, "kube-controller-manager", "/CN=system:kube-controller-manager", CLIENT_EXT
    )
    issue_certificate(pki, "kube-scheduler", "/CN=system:kube-scheduler", CLIENT_EXT)
    issue_certificate(
        pki, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet", CLIENT_EXT
    )
    # kwok plays every kubelet of its fake nodes and edits their pods' status freely.
    issue_certificate(pki, "kwok", "/O=system:masters/CN=kwok", CLIENT_EXT)
    if not (pki / "sa.key").exists():
        new_key(pki / "sa.key")
        openssl("ec", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def write_kubeconfig(path: Path, server: str, pki: Path, user: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(pki / f"{user}.crt"),
                    "client-key": str(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    # JSON is valid YAML, and keeps this script free of third-party imports.
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


# --------------------------------------------------------------------------- health


def https_ok(url: str, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def admin_context(pki: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return context


def self_signed_context() -> ssl.SSLContext:
    # Controller-manager and scheduler serve /healthz with certificates they make up.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def wait_until(what: str, check: Callable[[], bool], log_file: Path | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    tail = ""
    if log_file is not None and log_file.exists():
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-20:])
    raise SystemExit(f"{what} not ready after {START_TIMEOUT_S:.0f}s\n{tail}")


# --------------------------------------------------------------------------- components


@dataclasses.dataclass(frozen=True)
class Component:
    name: str
    argv: Callable[[Layout, Ports, Path], list[str]]
    healthy: Callable[[Layout, Ports], bool]


def etcd_argv(layout: Layout, ports: Ports, bin_dir: Path) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(bin_dir / "etcd"),
        "--name=local",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=local={peer}",
        "--listen-metrics-urls=",
        "--log-level=warn",
    ]


def apiserver_argv(layout: Layout, ports: Ports, bin_dir: Path) -> list[str]:
    pki = layout.pki
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        # A loopback advertise address is not a valid Endpoints IP; nothing in-cluster
        # needs the kubernetes Service on a control plane without a real node.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
    ]


def controller_manager_argv(layout: Layout, ports: Ports, bin_dir: Path) -> list[str]:
    pki, kubeconfig = layout.pki, layout.component_kubeconfig("kube-controller-manager")
    return [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        "--use-service-account-credentials=true",
        "--leader-elect=false",
        "--profiling=false",
    ]


def scheduler_argv(layout: Layout, ports: Ports, bin_dir: Path) -> list[str]:
    kubeconfig = layout.component_kubeconfig("kube-scheduler")
    return [
        str(bin_dir / "kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.scheduler}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def kwok_argv(layout: Layout, ports: Ports, bin_dir: Path) -> list[str]:
    return [
        str(bin_dir / "kwok"),
        f"--kubeconfig={layout.component_kubeconfig('kwok')}",
        f"--config={KWOK_STAGES}",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--node-lease-duration-seconds=40",
        f"--server-address=127.0.0.1:{ports.kwok}",
        "--node-ip=127.0.0.1",
        "--cidr=10.244.0.0/24",
    ]


def secure_healthz(port_of: Callable[[Ports], int]) -> Callable[[Layout, Ports], bool]:
    return lambda _layout, ports: https_ok(
        f"https://127.0.0.1:{port_of(ports)}/healthz", self_signed_context()
    )


def etcd_healthy(_layout: Layout, ports: Ports) -> bool:
    try:
        url = f"http://127.0.0.1:{ports.etcd_client}/health"
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(json.load(response).get("health") == "true")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def apiserver_healthy(layout: Layout, ports: Ports) -> bool:
    return https_ok(f"https://127.0.0.1:{ports.apiserver}/readyz", admin_context(layout.pki))


def kwok_healthy(_layout: Layout, ports: Ports) -> bool:
    try:
        url = f"http://127.0.0.1:{ports.kwok}/healthz"
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


COMPONENTS: Sequence[Component] = (
    Component("etcd", etcd_argv, etcd_healthy),
    Component("kube-apiserver", apiserver_argv, apiserver_healthy),
    Component(
        "kube-controller-manager",
        controller_manager_argv,
        secure_healthz(lambda ports: ports.controller_manager),
    ),
    Component("kube-scheduler", scheduler_argv, secure_healthz(lambda ports: ports.scheduler)),
    Component("kwok", kwok_argv, kwok_healthy),
)


def start(component: Component, layout: Layout, ports: Ports, bin_dir: Path) -> None:
    pid_file = layout.pid_file(component.name)
    previous = Started.read(pid_file)
    if previous is not None and previous.alive():
        log(f"{component.name}: already running (pid {previous.pid})")
        return
    log_file = layout.log_file(component.name)
    with log_file.open("ab") as sink:
        # Its own session, so that a Ctrl-C in the caller's terminal does not reach it.
        process = subprocess.Popen(
            component.argv(layout, ports, bin_dir),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ticks = process_start_ticks(process.pid)
    if ticks is None:
        raise SystemExit(f"{component.name} exited at once; see {log_file}")
    Started(process.pid, ticks).write(pid_file)

    def healthy() -> bool:
        if process.poll() is not None:
            raise SystemExit(
                f"{component.name} exited with {process.returncode}; see {log_file}:\n"
                + "\n".join(log_file.read_text(errors="replace").splitlines()[-20:])
            )
        return component.healthy(layout, ports)

    wait_until(component.name, healthy, log_file)
    log(f"{component.name}: started (pid {process.pid})")


# --------------------------------------------------------------------------- commands


def toolchain_bin_dir() -> Path:
    result = subprocess.run(
        ["bash", str(TOOLCHAIN_BUILD), "--print-bin"], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(result.stdout.strip().splitlines()[-1])


def kubectl(layout: Layout, bin_dir: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(bin_dir / "kubectl"), f"--kubeconfig={layout.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def fake_node_manifest() -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": FAKE_NODE,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {
                    "kubernetes.io/hostname": FAKE_NODE,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
        }
    )


def node_ready(layout: Layout, bin_dir: Path) -> bool:
    try:
        status = kubectl(
            layout,
            bin_dir,
            "get",
            "node",
            FAKE_NODE,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        )
    except RuntimeError:
        return False
    return status == "True"


def default_service_account_exists(layout: Layout, bin_dir: Path) -> bool:
    try:
        kubectl(layout, bin_dir, "get", "serviceaccount", "default", "-n", "default")
    except RuntimeError:
        return False
    return True


def cmd_up(layout: Layout) -> None:
    started_at = time.monotonic()
    bin_dir = toolchain_bin_dir()
    for directory in (layout.root, layout.logs, layout.pids, layout.etcd_data):
        directory.mkdir(parents=True, exist_ok=True)
    layout.etcd_data.chmod(0o700)
    layout.bin_file.write_text(str(bin_dir))
    ports = layout.ports()
    ensure_pki(layout.pki)
    server = f"https://127.0.0.1:{ports.apiserver}"
    write_kubeconfig(layout.kubeconfig, server, layout.pki, "admin")
    for user in ("kube-controller-manager", "kube-scheduler", "kwok"):
        write_kubeconfig(layout.component_kubeconfig(user), server, layout.pki, user)

    for component in COMPONENTS:
        start(component, layout, ports, bin_dir)

    kubectl(layout, bin_dir, "apply", "-f", "-", stdin=fake_node_manifest())
    wait_until(f"node {FAKE_NODE}", lambda: node_ready(layout, bin_dir), layout.log_file("kwok"))
    wait_until(
        "default service account",
        lambda: default_service_account_exists(layout, bin_dir),
        layout.log_file("kube-controller-manager"),
    )
    log(f"cluster up in {time.monotonic() - started_at:.1f}s; KUBECONFIG={layout.kubeconfig}")


def cmd_down(layout: Layout) -> None:
    for component in reversed(COMPONENTS):
        started = Started.read(layout.pid_file(component.name))
        if started is not None:
            stop_process(component.name, started)
            log(f"{component.name}: stopped")
    if layout.root.exists():
        shutil.rmtree(layout.root)
    log(f"removed {layout.root}")


def cmd_status(layout: Layout) -> int:
    if not layout.root.exists():
        print(f"no cluster at {layout.root}")
        return 1
    ports = layout.ports()
    all_ok = True
    for component in COMPONENTS:
        started = Started.read(layout.pid_file(component.name))
        running = started is not None and started.alive()
        healthy = running and component.healthy(layout, ports)
        all_ok = all_ok and healthy
        state = "healthy" if healthy else ("running, not healthy" if running else "stopped")
        pid = f" pid {started.pid}" if started is not None and running else ""
        print(f"{component.name:<24}{state}{pid}")
    print(f"kubeconfig              {layout.kubeconfig}")
    return 0 if all_ok else 1


def cmd_env(layout: Layout) -> None:
    if not layout.bin_file.exists():
        raise SystemExit(f"no cluster at {layout.root}: run `hack/cluster up` first")
    bin_dir = layout.bin_file.read_text().strip()
    print(f"export KUBECONFIG='{layout.kubeconfig}'")
    print(f"export PATH='{bin_dir}':\"$PATH\"")
    print("export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "env"))
    parser.add_argument("--state-dir", type=Path, default=default_state_dir())
    args = parser.parse_args(argv)
    layout = Layout(args.state_dir.resolve())
    if args.command == "up":
        cmd_up(layout)
    elif args.command == "down":
        cmd_down(layout)
    elif args.command == "status":
        return cmd_status(layout)
    else:
        cmd_env(layout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
