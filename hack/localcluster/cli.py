"""hack/cluster up|down|status|env: the commands."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from localcluster import kwok_node, object_store, real_node, storage
from localcluster.control_plane import CONTROL_PLANE, Component, Context, kubectl
from localcluster.example import RECONCILER, run_example
from localcluster.host_snapshot import HostSnapshot, processes_mentioning
from localcluster.layout import REPO_ROOT, Layout, NodeKind, default_state_dir
from localcluster.pki import ensure_node_certificates, ensure_pki, write_kubeconfig
from localcluster.processes import Started, log, start, stop, wait_until

TOOLCHAIN_BUILD = REPO_ROOT / "hack" / "toolchain" / "build"

USAGE = """\
hack/cluster up [--node=real|kwok] [--state-dir DIR]
    start what is not running (idempotent); real runs containers, kwok fakes them
hack/cluster down [--check] [--state-dir DIR]
    stop what `up` started, by PID, undo its host changes and remove the state;
    --check: then compare the host with the snapshot taken before the first `up`
    (bridges, iptables rules, mounts, container processes, sysctls) and exit non-zero
    naming whatever was left behind
hack/cluster status [--state-dir DIR]
    show each component; non-zero exit if any is down
hack/cluster env [--state-dir DIR]
    print the exports that point kubectl, pulumi, the tests and S3 clients at this cluster
hack/cluster example [--in-cluster] [--static-volumes] [--state-dir DIR]
    run the reconciler on this cluster and apply the original example (examples/mysql.yaml);
    --in-cluster: install the operator's image with `pulumi up` (hack/operator) instead
    of running the reconciler as a host process (real node only); --static-volumes:
    give the example's claims static volumes instead of the default StorageClass's
"""


def components(node: NodeKind) -> tuple[Component, ...]:
    if node is NodeKind.KWOK:
        return (*CONTROL_PLANE, kwok_node.KWOK, object_store.MINIO)
    return (
        *CONTROL_PLANE,
        real_node.COREDNS,
        object_store.MINIO,
        real_node.CONTAINERD,
        real_node.KUBELET,
        real_node.KUBE_PROXY,
        storage.LOCAL_PATH_PROVISIONER,
    )


def toolchain_bin_dir() -> Path:
    result = subprocess.run(
        ["bash", str(TOOLCHAIN_BUILD), "--print-bin"], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(result.stdout.strip().splitlines()[-1])


def context_for(layout: Layout, node: NodeKind, bin_dir: Path) -> Context:
    api_ip = real_node.NODE_IP if node is NodeKind.REAL else "127.0.0.1"
    return Context(layout=layout, ports=layout.ports(), bin_dir=bin_dir, node=node, api_ip=api_ip)


def succeeds(ctx: Context, *args: str) -> bool:
    try:
        kubectl(ctx, *args)
    except RuntimeError:
        return False
    return True


def node_ready(ctx: Context, name: str) -> bool:
    try:
        status = kubectl(
            ctx,
            "get",
            "node",
            name,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        )
    except RuntimeError:
        return False
    return status == "True"


def write_kubeconfigs(ctx: Context) -> None:
    pki = ctx.layout.pki
    write_kubeconfig(ctx.layout.kubeconfig, ctx.api_url, pki, "admin")
    users = ["kube-controller-manager", "kube-scheduler"]
    if ctx.node is NodeKind.KWOK:
        users += ["kwok"]
    else:
        users += ["kubelet", "kube-proxy", "coredns", storage.NAME]
    for user in users:
        write_kubeconfig(ctx.layout.component_kubeconfig(user), ctx.api_url, pki, user)


def start_component(ctx: Context, component: Component) -> None:
    start(
        component.name,
        component.argv(ctx),
        pid_file=ctx.layout.pid_file(component.name),
        log_file=ctx.layout.log_file(component.name),
        healthy=lambda: component.healthy(ctx),
        env=None if component.env is None else component.env(ctx),
    )


def cmd_up(layout: Layout, requested: NodeKind) -> None:
    started_at = time.monotonic()
    existing = layout.node_kind()
    if existing is not None and existing is not requested:
        raise SystemExit(
            f"{layout.root} holds a cluster with a {existing} node; "
            f"run `hack/cluster down` before asking for a {requested} node"
        )
    bin_dir = toolchain_bin_dir()
    if requested is NodeKind.REAL and existing is None:
        save_host_snapshot(layout)
    layout.make_dirs()
    layout.node_file.write_text(requested.value)
    layout.bin_file.write_text(str(bin_dir))
    ctx = context_for(layout, requested, bin_dir)
    if requested is NodeKind.REAL:
        real_node.prepare_host(layout)
    ensure_pki(layout.pki, ctx.api_ip)
    if requested is NodeKind.REAL:
        ensure_node_certificates(layout.pki, real_node.NODE_NAME, real_node.NODE_IP)
        real_node.write_configs(ctx)
        storage.write_configs(layout)
    object_store.prepare(layout)
    write_kubeconfigs(ctx)

    with ThreadPoolExecutor(max_workers=1) as background:
        # containerd and the image import need nothing from the control plane: on a real
        # node they run while it starts, which takes that long again.
        runtime = background.submit(start_runtime, ctx) if requested is NodeKind.REAL else None
        for component in CONTROL_PLANE:
            start_component(ctx, component)
        if runtime is None:
            start_component(ctx, kwok_node.KWOK)
            kubectl(ctx, "apply", "-f", "-", stdin=kwok_node.fake_node_manifest())
            start_object_store(ctx)
            node_name = kwok_node.FAKE_NODE
        else:
            kubectl(ctx, "apply", "-f", "-", stdin=json.dumps(real_node.COREDNS_RBAC))
            kubectl(ctx, "apply", "-f", "-", stdin=json.dumps(storage.cluster_objects()))
            start_component(ctx, real_node.COREDNS)
            start_object_store(ctx)
            runtime.result()
            start_component(ctx, real_node.KUBELET)
            start_component(ctx, real_node.KUBE_PROXY)
            start_component(ctx, storage.LOCAL_PATH_PROVISIONER)
            node_name = real_node.NODE_NAME
    wait_until(f"node {node_name} Ready", lambda: node_ready(ctx, node_name))
    wait_until(
        "default service account",
        lambda: succeeds(ctx, "get", "serviceaccount", "default", "-n", "default"),
        layout.log_file("kube-controller-manager"),
    )
    log(
        f"cluster up ({requested} node) in {time.monotonic() - started_at:.1f}s; "
        f"KUBECONFIG={layout.kubeconfig}"
    )


def start_runtime(ctx: Context) -> None:
    """containerd, with the node's images imported."""
    start_component(ctx, real_node.CONTAINERD)
    step_started = time.monotonic()
    real_node.import_images(ctx)
    log(f"images imported in {time.monotonic() - step_started:.1f}s")


def start_object_store(ctx: Context) -> None:
    start_component(ctx, object_store.MINIO)
    object_store.publish(ctx)
    log(f"S3 store at {object_store.endpoint(ctx)}, buckets {', '.join(object_store.BUCKETS)}")


def save_host_snapshot(layout: Layout) -> None:
    """The host before the first `up` of a real node, for `down --check`."""
    layout.host_snapshot.parent.mkdir(parents=True, exist_ok=True)
    layout.host_snapshot.write_text(HostSnapshot.take().to_json())


def stop_component(layout: Layout, name: str) -> None:
    started = Started.read(layout.pid_file(name))
    if started is not None:
        stop(name, started)
        log(f"{name}: stopped")


def cmd_down(layout: Layout, check: bool) -> int:
    node = layout.node_kind()
    # The example's reconciler first: it talks to everything else; then the
    # provisioner, so that it starts no helper pod; then the object store.
    stop_component(layout, RECONCILER)
    stop_component(layout, storage.NAME)
    stop_component(layout, object_store.NAME)
    if node is NodeKind.REAL:
        bin_dir = Path(layout.bin_file.read_text().strip())
        ctx = context_for(layout, node, bin_dir)
        # The kubelet first, so that it recreates nothing; then the pods, while
        # containerd still runs CNI for them; then the rules kube-proxy made.
        stop_component(layout, "kubelet")
        real_node.remove_pods(ctx)
        stop_component(layout, "containerd")
        real_node.kill_leftover_shims(layout)
        stop_component(layout, "kube-proxy")
        real_node.clean_iptables(ctx)
        stop_component(layout, "coredns")
    elif node is NodeKind.KWOK:
        stop_component(layout, "kwok")
    for component in reversed(CONTROL_PLANE):
        stop_component(layout, component.name)
    if node is NodeKind.REAL:
        real_node.unmount_under(layout.root)
        real_node.remove_pod_cgroups()
        real_node.restore_host(layout)
    if layout.root.exists():
        real_node.remove_state_tree(layout.root)
    log(f"removed {layout.root}")
    left = leftovers(layout) if check else []
    layout.host_snapshot.unlink(missing_ok=True)
    if not check:
        return 0
    for line in left:
        print(f"left behind: {line}", file=sys.stderr)
    if left:
        return 1
    log("checked: nothing left behind")
    return 0


def leftovers(layout: Layout) -> list[str]:
    """What `down` left: the state, processes naming it, and every difference from the
    host as it was before the first `up` (real node)."""
    found = [f"{layout.root} still exists"] if layout.root.exists() else []
    ours = own_process_tree()
    found += [
        f"process {line}"
        for line in processes_mentioning(str(layout.root))
        if int(line.split(":", 1)[0]) not in ours
    ]
    if layout.host_snapshot.exists():
        before = HostSnapshot.from_json(layout.host_snapshot.read_text())
        for field, difference in before.differences(HostSnapshot.take()).items():
            found.append(f"{field}: {json.dumps(difference)}")
    return found


def own_process_tree() -> set[int]:
    """This process and its ancestors, whose command lines may name the state dir."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat[stat.rindex(")") + 2 :].split()[1])
    return pids


def cmd_status(layout: Layout) -> int:
    node = layout.node_kind()
    if node is None or not layout.bin_file.exists():
        print(f"no cluster at {layout.root}")
        return 1
    ctx = context_for(layout, node, Path(layout.bin_file.read_text().strip()))
    all_ok = True
    for component in components(node):
        started = Started.read(layout.pid_file(component.name))
        running = started is not None and started.alive()
        healthy = running and component.healthy(ctx)
        all_ok = all_ok and healthy
        state = "healthy" if healthy else ("running, not healthy" if running else "stopped")
        pid = f" pid {started.pid}" if started is not None and running else ""
        print(f"{component.name:<24}{state}{pid}")
    print(f"{'node':<24}{node}")
    print(f"{'kubeconfig':<24}{layout.kubeconfig}")
    print(f"{'s3 endpoint':<24}{object_store.endpoint(ctx)}")
    if node is NodeKind.REAL:
        print(f"{'default storage class':<24}{storage.STORAGE_CLASS} ({storage.PROVISIONER})")
    return 0 if all_ok else 1


def cmd_example(layout: Layout, in_cluster: bool, static_volumes: bool) -> None:
    node = layout.node_kind()
    if node is None or not layout.bin_file.exists():
        raise SystemExit(f"no cluster at {layout.root}: run `hack/cluster up` first")
    started_at = time.monotonic()
    if in_cluster and node is not NodeKind.REAL:
        raise SystemExit("--in-cluster needs a real node: the kwok node runs no image")
    ctx = context_for(layout, node, Path(layout.bin_file.read_text().strip()))
    run_example(ctx, in_cluster=in_cluster, static_volumes=static_volumes)
    log(f"example Ready in {time.monotonic() - started_at:.1f}s")


def cmd_env(layout: Layout) -> None:
    if not layout.bin_file.exists():
        raise SystemExit(f"no cluster at {layout.root}: run `hack/cluster up` first")
    bin_dir = layout.bin_file.read_text().strip()
    print(f"export KUBECONFIG='{layout.kubeconfig}'")
    print(f"export PATH='{bin_dir}':\"$PATH\"")
    print("export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true")
    node = layout.node_kind()
    if node is NodeKind.REAL:
        # ctr reads it; `hack/images/build --import "$CONTAINERD_ADDRESS"` loads images.
        print(f"export CONTAINERD_ADDRESS='{layout.containerd_socket}'")
    if node is not None and layout.s3_access_key_file.exists():
        # The S3 store, for the AWS SDKs and CLIs; the secret key is read from its file.
        ctx = context_for(layout, node, Path(bin_dir))
        for line in object_store.env_lines(ctx):
            print(line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hack/cluster", usage=USAGE, description="A local Kubernetes cluster."
    )
    parser.add_argument("command", choices=("up", "down", "status", "env", "example"))
    parser.add_argument("--state-dir", type=Path, default=default_state_dir())
    parser.add_argument(
        "--node", type=NodeKind, choices=list(NodeKind), default=NodeKind.REAL, help="for up"
    )
    parser.add_argument(
        "--in-cluster", action="store_true", help="for example: the operator's image, installed"
    )
    parser.add_argument(
        "--static-volumes",
        action="store_true",
        help="for example: static volumes instead of the default StorageClass",
    )
    parser.add_argument(
        "--check", action="store_true", help="for down: fail if anything was left behind"
    )
    args = parser.parse_args(argv)
    layout = Layout(args.state_dir.resolve())
    if args.command == "up":
        cmd_up(layout, args.node)
    elif args.command == "down":
        return cmd_down(layout, args.check)
    elif args.command == "status":
        return cmd_status(layout)
    elif args.command == "example":
        cmd_example(layout, args.in_cluster, args.static_volumes)
    else:
        cmd_env(layout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
