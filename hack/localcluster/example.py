"""`hack/cluster example`: the operator running on the original example, on this cluster.

It installs the CRDs, starts the reconciler as a process of this cluster (so `down` stops
it by PID), or with `in_cluster` installs the operator's image with `pulumi up`
(hack/operator), applies examples/mysql.yaml unchanged and waits until it is Ready. The
example's claims get volumes from the real node's default StorageClass (storage.py), as
they would on any cluster; `static_volumes` gives them static volumes under the state
directory instead, as an administrator of a cluster without a provisioner would.

The reconciler leaves alone the MySQL objects labelled TEST_SESSION_LABEL: the test
tiers put them on a borrowed cluster, and run reconcilers of their own for them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

from localcluster.control_plane import Context, http_ok, kubectl
from localcluster.layout import REPO_ROOT
from localcluster.processes import log, start, wait_until

EXAMPLE = REPO_ROOT / "examples" / "mysql.yaml"
CRDS = (REPO_ROOT / "crd" / "mysql.yaml", REPO_ROOT / "crd" / "mysqlbackup.yaml")
PYTHON_ENV = REPO_ROOT / "hack" / "python-env"
OPERATOR = REPO_ROOT / "hack" / "operator"
EXAMPLE_NAME = "mysql-instance"
EXAMPLE_NAMESPACE = "default"
RECONCILER = "reconciler"
# Objects that a test session made on this cluster carry this label (with the session's
# id); the cluster's own reconciler must not race the session's.
TEST_SESSION_LABEL = "mysql-operator.dev/test-session"
LABEL_SELECTOR = f"!{TEST_SESSION_LABEL}"


def passphrase_file(ctx: Context) -> Path:
    """The example reconciler's state passphrase: made once, kept with the cluster."""
    path = ctx.layout.root / "reconciler-passphrase"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path


def static_volume_manifests(ctx: Context) -> str:
    volumes = []
    for claim in (f"{EXAMPLE_NAME}-data", f"{EXAMPLE_NAME}-backup"):
        host_dir = ctx.layout.root / "volumes" / claim
        # As the local-path provisioner makes them: writable by the pods' non-root user.
        host_dir.mkdir(parents=True, exist_ok=True)
        host_dir.chmod(0o777)
        volumes.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"example-{claim}"},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "persistentVolumeReclaimPolicy": "Retain",
                    "claimRef": {"namespace": EXAMPLE_NAMESPACE, "name": claim},
                    "hostPath": {"path": str(host_dir), "type": "DirectoryOrCreate"},
                },
            }
        )
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": volumes})


def reconciler_argv(ctx: Context, venv: Path) -> list[str]:
    return [
        str(venv / "bin" / "python"),
        "-m",
        "reconciler",
        "run",
        f"--state-dir={ctx.layout.root / 'reconciler-state'}",
        f"--kubeconfig={ctx.layout.kubeconfig}",
        f"--http-address=127.0.0.1:{ctx.ports.reconciler}",
        f"--label-selector={LABEL_SELECTOR}",
        # Static volumes for MySQL objects on this cluster may live under its state only.
        f"--host-path-root={host_path_root(ctx)}",
    ]


def host_path_root(ctx: Context) -> Path:
    """Where MySQL objects on this cluster may point `host_path` (the state, not /)."""
    return ctx.layout.root / "host-paths"


def run_example(ctx: Context, *, in_cluster: bool = False, static_volumes: bool = False) -> None:
    for crd in CRDS:
        kubectl(ctx, "apply", "--server-side", "-f", str(crd))
    kubectl(
        ctx,
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/mysqls.otus.homework",
        "crd/mysqlbackups.otus.homework",
    )
    if static_volumes:
        kubectl(ctx, "apply", "-f", "-", stdin=static_volume_manifests(ctx))

    if in_cluster:
        subprocess.run([str(OPERATOR), "up", f"--state-dir={ctx.layout.root}"], check=True)
    else:
        start_host_reconciler(ctx)
    kubectl(ctx, "apply", "-n", EXAMPLE_NAMESPACE, "-f", str(EXAMPLE))

    def ready() -> bool:
        try:
            status = kubectl(
                ctx,
                "get",
                "mysql",
                EXAMPLE_NAME,
                "-n",
                EXAMPLE_NAMESPACE,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            )
        except RuntimeError:
            return False
        return status == "True"

    # In the cluster, `kubectl -n mysql-operator logs deploy/mysql-operator` tells why.
    reconciler_log = None if in_cluster else ctx.layout.log_file(RECONCILER)
    wait_until(f"MySQL {EXAMPLE_NAME} Ready", ready, reconciler_log)
    log(f"{EXAMPLE_NAME} is Ready:\n{kubectl(ctx, 'get', 'mysql,all', '-n', EXAMPLE_NAMESPACE)}")


def start_host_reconciler(ctx: Context) -> None:
    venv = Path(
        subprocess.run(
            ["bash", str(PYTHON_ENV)], check=True, stdout=subprocess.PIPE, text=True
        ).stdout.strip()
    )
    start(
        RECONCILER,
        reconciler_argv(ctx, venv),
        pid_file=ctx.layout.pid_file(RECONCILER),
        log_file=ctx.layout.log_file(RECONCILER),
        healthy=lambda: http_ok(f"http://127.0.0.1:{ctx.ports.reconciler}/healthz"),
        # Through the environment, never the command line.
        env={
            "PULUMI_CONFIG_PASSPHRASE": passphrase_file(ctx).read_text(),
            "PYTHONPATH": str(REPO_ROOT),
            # The engine and the provider plugin come from the toolchain.
            "PATH": f"{ctx.bin_dir}{os.pathsep}{os.environ['PATH']}",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        },
    )
