"""The real node: containerd, kubelet, kube-proxy and CoreDNS on a bridge of our own.

Pods get addresses on BRIDGE (POD_CIDR), which exists only on this machine. The API
server, the kubelet and CoreDNS listen on the bridge's own address, NODE_IP, so pods reach
them; nothing listens beyond loopback and this bridge. Everything the node creates on the
host is recorded in the state directory, and `down` takes exactly that away again.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from localcluster.control_plane import Component, Context, http_ok
from localcluster.layout import CLUSTER_DOMAIN, REPO_ROOT, Layout, write_if_changed
from localcluster.processes import log

NODE_NAME = "mysql-operator-node"
BRIDGE = "mysqlop0"
NODE_IP = "10.244.0.1"
POD_CIDR = "10.244.0.0/24"
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
IMAGES_BUILD = REPO_ROOT / "hack" / "images" / "build"
PAUSE_IMAGE = "localhost/mysql-operator/pause:1.0"  # hack/images/build PAUSE_REF

# Host settings that pods need: bridged traffic must pass iptables (Service DNAT), and
# the host must forward between pods once a Service address was rewritten.
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
}

COREDNS_RBAC = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "mysql-operator:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "namespaces", "pods"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "mysql-operator:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "mysql-operator:coredns",
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "User",
                    "name": "mysql-operator:coredns",
                }
            ],
        },
    ],
}


# --------------------------------------------------------------------------- host network


def require_root() -> None:
    if os.geteuid() != 0:
        raise SystemExit("a real node needs root (containerd, kubelet and iptables)")


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def prepare_host(layout: Layout) -> None:
    """Creates the bridge and sets the sysctls, recording what was there before."""
    require_root()
    changes: dict[str, object] = (
        json.loads(layout.host_changes.read_text()) if layout.host_changes.exists() else {}
    )
    if not link_exists(BRIDGE):
        if changes.get("bridge_owner") not in (None, str(layout.root)):
            raise SystemExit(f"bridge {BRIDGE} belongs to another cluster")
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", f"{NODE_IP}/24", "dev", BRIDGE], check=True)
        changes["bridge_owner"] = str(layout.root)
    elif changes.get("bridge_owner") != str(layout.root):
        raise SystemExit(
            f"bridge {BRIDGE} exists and is not this cluster's: is another real-node "
            "cluster up? Only one can run per machine."
        )
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
    # Chains that existed before our first up are someone else's; down leaves them.
    changes.setdefault("chains_before", sorted(kubernetes_chains()))
    previous = changes.setdefault("sysctls", {})
    assert isinstance(previous, dict)
    for key, value in SYSCTLS.items():
        path = Path("/proc/sys") / key
        if not path.exists():
            raise SystemExit(f"{path} is missing: the br_netfilter module must be loaded")
        previous.setdefault(key, path.read_text().strip())
        path.write_text(value)
    layout.host_changes.write_text(json.dumps(changes))


IPTABLES_FAMILIES = ("iptables", "ip6tables")
CHAIN_PREFIXES = ("KUBE-", "CNI-")


def iptables_dump(family: str) -> dict[str, list[str]]:
    """Table name to its lines, from `<family>-save`."""
    tables: dict[str, list[str]] = {}
    current: list[str] = []
    for line in subprocess.run(
        [f"{family}-save"], capture_output=True, text=True, check=True
    ).stdout.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], [])
        elif not line.startswith("#") and line != "COMMIT":
            current.append(line)
    return tables


def kubernetes_chains() -> set[str]:
    """'family table chain' for every KUBE-/CNI- chain on the host now."""
    found = set()
    for family in IPTABLES_FAMILIES:
        for table, lines in iptables_dump(family).items():
            for line in lines:
                chain = line[1:].split()[0] if line.startswith(":") else ""
                if chain.startswith(CHAIN_PREFIXES):
                    found.add(f"{family} {table} {chain}")
    return found


def remove_chains(chains: set[str]) -> None:
    """Deletes the given chains and every rule that jumps to them. The kubelet makes some
    (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT) even with
    makeIPTablesUtilChains off, and kube-proxy --cleanup leaves them."""
    for family in IPTABLES_FAMILIES:
        for table, lines in iptables_dump(family).items():
            ours = {c.split()[2] for c in chains if c.startswith(f"{family} {table} ")}
            if not ours:
                continue
            for line in lines:
                parts = shlex.split(line)
                if (
                    line.startswith("-A ")
                    and "-j" in parts
                    and parts[parts.index("-j") + 1] in ours
                ):
                    argv = [family, "-t", table, "-D", *parts[1:]]
                    subprocess.run(argv, capture_output=True, check=False)
            for flag in ("-F", "-X"):
                for chain in sorted(ours):
                    subprocess.run(
                        [family, "-t", table, flag, chain], capture_output=True, check=False
                    )


def restore_host(layout: Layout) -> None:
    if not layout.host_changes.exists():
        return
    changes = json.loads(layout.host_changes.read_text())
    remove_chains(kubernetes_chains() - set(changes.get("chains_before", [])))
    if changes.get("bridge_owner") == str(layout.root) and link_exists(BRIDGE):
        subprocess.run(["ip", "link", "delete", BRIDGE], check=True)
    for key, value in changes.get("sysctls", {}).items():
        (Path("/proc/sys") / key).write_text(value)


# --------------------------------------------------------------------------- config files


def write_configs(ctx: Context) -> None:
    layout = ctx.layout
    for directory in (layout.containerd, layout.cni_conf, layout.cni_ipam, layout.pod_logs):
        directory.mkdir(parents=True, exist_ok=True)
    write_if_changed(layout.config_file("containerd", "toml"), containerd_config(layout))
    write_if_changed(layout.cni_conf / "10-mysql-operator.conflist", cni_config(layout))
    write_if_changed(layout.config_file("resolv", "conf"), f"nameserver {NODE_IP}\n")
    write_if_changed(layout.config_file("kubelet"), json.dumps(kubelet_config(ctx), indent=2))
    write_if_changed(layout.config_file("kube-proxy"), json.dumps(kube_proxy_config(ctx), indent=2))
    write_if_changed(layout.config_file("Corefile", "conf"), corefile(ctx))


def containerd_config(layout: Layout) -> str:
    state = layout.containerd
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""\
version = 2
root = "{state / "root"}"
state = "{state / "state"}"
# Snapshotters this node does not use, and the plugin that would write to /opt.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.internal.v1.opt",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{layout.containerd_socket}.ttrpc"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # These VMs lack CAP_SYS_RESOURCE: a negative oom_score_adj makes runc fail.
  restrict_oom_score_adj = true
  # Network namespaces under our state, so that down can account for every one.
  netns_mounts_under_state_dir = true
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  # No systemd here, and the machine has cgroup v1.
  SystemdCgroup = false
  Root = "{state / "runc"}"

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{layout.cni_conf}"
"""


def cni_config(layout: Layout) -> str:
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "mysql-operator",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    # Pods talk to each other and to this host, never beyond it.
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(layout.cni_ipam),
                    },
                }
            ],
        },
        indent=2,
    )


def kubelet_config(ctx: Context) -> dict[str, object]:
    layout, pki = ctx.layout, ctx.layout.pki
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": ctx.ports.kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ctx.ports.kubelet_healthz,
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        # cgroup v1 and no systemd on these machines; 1.34 still accepts v1, and saying
        # so keeps a later version bump from failing silently.
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        # The default -999 needs CAP_SYS_RESOURCE, which these VMs lack.
        "oomScoreAdj": 0,
        "failSwapOn": False,
        "clusterDNS": [NODE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(layout.config_file("resolv", "conf")),
        # kube-proxy owns the iptables rules; the kubelet adds none that down must find.
        "makeIPTablesUtilChains": False,
        # Local images cannot be pulled again, so they must never be garbage-collected.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "2%",
            "imagefs.available": "2%",
        },
        "podLogsDir": str(layout.pod_logs),
        "volumePluginDir": str(layout.kubelet_root / "volume-plugins"),
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "registerNode": True,
    }


def kubelet_argv(ctx: Context) -> list[str]:
    return [
        ctx.binary("kubelet"),
        f"--config={ctx.layout.config_file('kubelet')}",
        f"--kubeconfig={ctx.layout.component_kubeconfig('kubelet')}",
        f"--root-dir={ctx.layout.kubelet_root}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        "--v=1",
    ]


def kube_proxy_config(ctx: Context) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(ctx.layout.component_kubeconfig("kube-proxy"))},
        # These kernels have no IPVS.
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "hostnameOverride": NODE_NAME,
        "healthzBindAddress": f"127.0.0.1:{ctx.ports.kube_proxy_healthz}",
        "metricsBindAddress": f"127.0.0.1:{ctx.ports.kube_proxy_metrics}",
        # NodePorts only on our bridge, never on the machine's real interfaces.
        "nodePortAddresses": [f"{NODE_IP}/32"],
        # Zero leaves the host's conntrack settings alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"syncPeriod": "10s", "minSyncPeriod": "1s", "localhostNodePorts": False},
    }


def kube_proxy_argv(ctx: Context) -> list[str]:
    return [ctx.binary("kube-proxy"), f"--config={ctx.layout.config_file('kube-proxy')}"]


def corefile(ctx: Context) -> str:
    kubeconfig = ctx.layout.component_kubeconfig("coredns")
    # Cluster names only: nothing is forwarded beyond this machine. As kubeadm's Corefile
    # does, answers for cluster names are never cached: the kubernetes plugin answers
    # from its watch, and a cached "no such name" from before a Service existed (or an
    # answer cached for A but not AAAA) would make a new Service's name resolve, then
    # fail, for up to 30 s.
    return f"""\
{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{ctx.ports.coredns_health}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} local
        pods insecure
    }}
    cache 30 {{
        disable success {CLUSTER_DOMAIN}
        disable denial {CLUSTER_DOMAIN}
    }}
}}
.:53 {{
    bind {NODE_IP}
    errors
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""


def coredns_argv(ctx: Context) -> list[str]:
    return [ctx.binary("coredns"), "-conf", str(ctx.layout.config_file("Corefile", "conf"))]


def containerd_argv(ctx: Context) -> list[str]:
    return ["containerd", "--config", str(ctx.layout.config_file("containerd", "toml"))]


def containerd_healthy(ctx: Context) -> bool:
    result = subprocess.run(
        ["ctr", "--address", str(ctx.layout.containerd_socket), "version"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def import_images(ctx: Context) -> None:
    """Builds (or reuses) the local images and imports them into the node's containerd."""
    subprocess.run(
        [str(IMAGES_BUILD), "--import", str(ctx.layout.containerd_socket)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


COREDNS = Component(
    "coredns",
    coredns_argv,
    lambda ctx: http_ok(f"http://127.0.0.1:{ctx.ports.coredns_health}/health"),
)
CONTAINERD = Component("containerd", containerd_argv, containerd_healthy)
KUBELET = Component(
    "kubelet",
    kubelet_argv,
    lambda ctx: http_ok(f"http://127.0.0.1:{ctx.ports.kubelet_healthz}/healthz"),
)
KUBE_PROXY = Component(
    "kube-proxy",
    kube_proxy_argv,
    lambda ctx: http_ok(f"http://127.0.0.1:{ctx.ports.kube_proxy_healthz}/healthz"),
)


# --------------------------------------------------------------------------- teardown


def remove_pods(ctx: Context) -> None:
    """Stops and removes every pod sandbox, so that CNI releases addresses and veths."""
    if not ctx.layout.containerd_socket.exists():
        return
    result = subprocess.run(
        [
            ctx.binary("crictl"),
            f"--runtime-endpoint=unix://{ctx.layout.containerd_socket}",
            "--timeout=60s",
            "rmp",
            "--all",
            "--force",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        log(f"crictl rmp: {result.stderr.strip()}")


def processes_naming(text: str) -> list[int]:
    """PIDs whose command line mentions `text` (our containerd's shims name its socket)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


def kill_leftover_shims(layout: Layout) -> None:
    """containerd's shims outlive it by design; ours are the ones started for our socket."""
    runc_root = layout.containerd / "runc"
    if runc_root.exists():
        for namespace in runc_root.iterdir():
            listed = subprocess.run(
                ["runc", "--root", str(namespace), "list", "--quiet"],
                capture_output=True,
                text=True,
                check=False,
            )
            for container in listed.stdout.split():
                subprocess.run(
                    ["runc", "--root", str(namespace), "delete", "--force", container],
                    capture_output=True,
                    check=False,
                )
    for pid in processes_naming(str(layout.containerd_socket)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def clean_iptables(ctx: Context) -> None:
    """Removes the rules kube-proxy made; its own --cleanup knows them all."""
    result = subprocess.run(
        [ctx.binary("kube-proxy"), "--cleanup"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        log(f"kube-proxy --cleanup: {result.stderr.strip()[-500:]}")


def unmount_under(root: Path) -> None:
    """Unmounts everything mounted below `root`, deepest first."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].encode().decode("unicode_escape")
        if mount_point == str(root) or mount_point.startswith(f"{root}/"):
            mounts.append(mount_point)
    for mount_point in sorted(set(mounts), key=len, reverse=True):
        result = subprocess.run(["umount", mount_point], capture_output=True, check=False)
        if result.returncode != 0:
            subprocess.run(["umount", "--lazy", mount_point], capture_output=True, check=False)


def remove_pod_cgroups() -> None:
    """The kubelet makes kubepods cgroups under every v1 controller; empty ones go."""
    for controller in Path("/sys/fs/cgroup").iterdir():
        top = controller / "kubepods"
        if not top.is_dir():
            continue
        directories = sorted(
            (path for path in top.rglob("*") if path.is_dir()),
            key=lambda path: len(path.parts),
            reverse=True,
        )
        for directory in [*directories, top]:
            for attempt in range(20):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05 * (attempt + 1))


def remove_state_tree(root: Path) -> None:
    unmount_under(root)
    shutil.rmtree(root)
