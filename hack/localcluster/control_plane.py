"""etcd, kube-apiserver, kube-controller-manager and kube-scheduler: argv and health."""

from __future__ import annotations

import dataclasses
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from localcluster.layout import SERVICE_CIDR, Layout, NodeKind, Ports


@dataclasses.dataclass(frozen=True)
class Context:
    """What every component's argv and health check may depend on."""

    layout: Layout
    ports: Ports
    bin_dir: Path
    node: NodeKind
    # Where the API server listens: loopback for kwok; the node bridge's own address on
    # a real node, so that pods reach it through the kubernetes Service.
    api_ip: str

    @property
    def api_url(self) -> str:
        return f"https://{self.api_ip}:{self.ports.apiserver}"

    def binary(self, name: str) -> str:
        return str(self.bin_dir / name)


@dataclasses.dataclass(frozen=True)
class Component:
    name: str
    argv: Callable[[Context], list[str]]
    healthy: Callable[[Context], bool]
    # Extra environment, e.g. credentials that must not show on the command line.
    env: Callable[[Context], Mapping[str, str]] | None = None


def kubectl(ctx: Context, *args: str, stdin: str | None = None) -> str:
    """Runs the toolchain's kubectl as cluster admin; raises RuntimeError with its stderr."""
    result = subprocess.run(
        [ctx.binary("kubectl"), f"--kubeconfig={ctx.layout.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def admin_tls(layout: Layout) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
    context.load_cert_chain(str(layout.pki / "admin.crt"), str(layout.pki / "admin.key"))
    return context


def unverified_tls() -> ssl.SSLContext:
    # Controller-manager and scheduler serve /healthz with certificates they make up.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def etcd_argv(ctx: Context) -> list[str]:
    client = f"http://127.0.0.1:{ctx.ports.etcd_client}"
    peer = f"http://127.0.0.1:{ctx.ports.etcd_peer}"
    return [
        ctx.binary("etcd"),
        "--name=local",
        f"--data-dir={ctx.layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=local={peer}",
        "--listen-metrics-urls=",
        "--log-level=warn",
    ]


def etcd_healthy(ctx: Context) -> bool:
    try:
        url = f"http://127.0.0.1:{ctx.ports.etcd_client}/health"
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(json.load(response).get("health") == "true")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def apiserver_argv(ctx: Context) -> list[str]:
    pki = ctx.layout.pki
    argv = [
        ctx.binary("kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{ctx.ports.etcd_client}",
        f"--bind-address={ctx.api_ip}",
        f"--advertise-address={ctx.api_ip}",
        f"--secure-port={ctx.ports.apiserver}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--allow-privileged=true",
        "--profiling=false",
    ]
    if ctx.node is NodeKind.KWOK:
        # A loopback address is not a valid Endpoints IP, and without a real node nothing
        # in the cluster needs the kubernetes Service.
        argv.append("--endpoint-reconciler-type=none")
    return argv


def apiserver_healthy(ctx: Context) -> bool:
    return http_ok(f"{ctx.api_url}/readyz", admin_tls(ctx.layout))


def controller_manager_argv(ctx: Context) -> list[str]:
    pki, kubeconfig = ctx.layout.pki, ctx.layout.component_kubeconfig("kube-controller-manager")
    return [
        ctx.binary("kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ctx.ports.controller_manager}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        "--use-service-account-credentials=true",
        # Static claims bind to their pre-bound volumes at the binder's periodic sync when
        # the volume was not yet in its cache at the claim's event; the default 15 s period
        # made readiness on kwok a lottery of 1 to 15 s (bench/README.md).
        "--pvclaimbinder-sync-period=2s",
        "--leader-elect=false",
        "--profiling=false",
    ]


def scheduler_argv(ctx: Context) -> list[str]:
    kubeconfig = ctx.layout.component_kubeconfig("kube-scheduler")
    return [
        ctx.binary("kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ctx.ports.scheduler}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def secure_healthz(port_of: Callable[[Ports], int]) -> Callable[[Context], bool]:
    return lambda ctx: http_ok(f"https://127.0.0.1:{port_of(ctx.ports)}/healthz", unverified_tls())


CONTROL_PLANE: tuple[Component, ...] = (
    Component("etcd", etcd_argv, etcd_healthy),
    Component("kube-apiserver", apiserver_argv, apiserver_healthy),
    Component(
        "kube-controller-manager",
        controller_manager_argv,
        secure_healthz(lambda ports: ports.controller_manager),
    ),
    Component("kube-scheduler", scheduler_argv, secure_healthz(lambda ports: ports.scheduler)),
)
