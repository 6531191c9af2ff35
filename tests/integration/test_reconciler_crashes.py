"""The reconciler survives crashes: `kill -9` in the middle of an `up`
and in the middle of a `destroy`, and an API server restart under a running watch.

A crash is the whole process tree at once: the reconciler, the pulumi CLI it runs and the
provider plugin the CLI runs are frozen (SIGSTOP, so nothing forks while we collect them)
and then SIGKILLed, so nothing gets to release the stack's lock or finish an operation.
Each crash test first shows the crash left a stale lock in the file backend, then that a
new reconciler converges with no lock left, no pending operations in the checkpoint and
nothing orphaned or duplicated in the cluster.

The API server test restarts the API server of a private cluster that it starts and tears
down itself, so it never disturbs a shared one.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Final

import pytest

from tests.harness import (
    FINALIZER,
    READY_TIMEOUT_S,
    Harness,
    alive,
    condition,
    harness_in_new_namespace,
    send,
)
from tests.support import api_client_for, eventually, read_or_none

pytestmark = pytest.mark.integration

NAME: Final = "mysql-instance"


REPO_ROOT: Final = Path(__file__).resolve().parents[2]
CLUSTER: Final = REPO_ROOT / "hack" / "cluster"
PROJECT: Final = "mysql-operator"
SECOND: Final = "second-instance"
# Polling for the moment to strike must be fine-grained: an engine step lasts seconds.
STRIKE_POLL_S: Final = 0.05
STRIKE_TIMEOUT_S: Final = 180.0
CLUSTER_TIMEOUT_S: Final = 300.0


# -- the file backend ----------------------------------------------------------------------


def engine_running(harness: Harness) -> bool:
    """A pulumi CLI runs below the reconciler while the stack's lock file exists."""
    return harness.engine_running() and bool(harness.lock_files())


def checkpoint(harness: Harness, name: str) -> dict[str, Any] | None:
    """The stack's checkpoint as the file backend stores it (secrets stay encrypted)."""
    stacks = harness.state_dir / ".pulumi" / "stacks" / PROJECT
    found = sorted(stacks.glob(f"{harness.namespace}.{name}.json"))
    if not found:
        return None
    loaded: dict[str, Any] = json.loads(found[0].read_text())["checkpoint"]
    return loaded


def stack_objects(harness: Harness, name: str) -> list[tuple[str, str]]:
    """(type, id) of every Kubernetes object the stack's checkpoint holds, duplicates kept."""
    found = checkpoint(harness, name)
    assert found is not None, f"no checkpoint for {name}"
    resources = (found.get("latest") or {}).get("resources") or []
    return sorted(
        (str(r["type"]), str(r.get("id", "")))
        for r in resources
        if str(r["type"]).startswith("kubernetes:")
        and not str(r["type"]).startswith("pulumi:providers:")
    )


def pending_operations(harness: Harness, name: str) -> list[str]:
    """The checkpoint's pending operations, as `<type> <urn>` lines."""
    found = checkpoint(harness, name)
    if found is None:
        return []
    pending = (found.get("latest") or {}).get("pending_operations") or []
    return [f"{op.get('type')} {op.get('resource', {}).get('urn')}" for op in pending]


# -- the cluster ---------------------------------------------------------------------------


def instance_selector(name: str) -> str:
    return f"app.kubernetes.io/instance={name},app.kubernetes.io/managed-by=mysql-operator"


def names(items: list[Any]) -> list[str]:
    return sorted(str(item.metadata.name) for item in items)


def restore_job_of(obj: dict[str, Any]) -> str:
    """The first attempt's restore Job."""
    return f"{obj['metadata']['name']}-restore-{obj['metadata']['uid'].replace('-', '')[:8]}-1"


def backup_job_of(obj: dict[str, Any]) -> str:
    """The first attempt's final backup Job."""
    return f"{obj['metadata']['name']}-backup-{obj['metadata']['uid'].replace('-', '')[:8]}-1"


def namespace_objects(harness: Harness, name: str) -> dict[str, list[str]]:
    """What exists in the cluster for one instance, by kind; names sorted, duplicates kept."""
    ns, selector = harness.namespace, instance_selector(name)
    volume_selector = f"otus.homework/instance-namespace={ns},otus.homework/instance-name={name}"
    volumes = harness.core.list_persistent_volume(label_selector=volume_selector).items
    return {
        # Everything of the kinds the stack declares, labelled or not: a leftover of an
        # interrupted run would show here even if it lacked the labels.
        "Deployment": names(harness.apps.list_namespaced_deployment(ns).items),
        "Service": names(harness.core.list_namespaced_service(ns).items),
        "PersistentVolumeClaim": names(
            harness.core.list_namespaced_persistent_volume_claim(ns).items
        ),
        "Job": names(harness.batch.list_namespaced_job(ns).items),
        "ReplicaSet": names(harness.apps.list_namespaced_replica_set(ns).items),
        # Secrets and ConfigMaps: namespaces hold others (the root CA), so by label.
        "Secret": names(harness.core.list_namespaced_secret(ns, label_selector=selector).items),
        "ConfigMap": names(
            harness.core.list_namespaced_config_map(ns, label_selector=selector).items
        ),
        "PersistentVolume": names(volumes),
    }


def expected_stack_objects(ns: str, obj: dict[str, Any]) -> list[tuple[str, str]]:
    """What a served, gated instance's stack holds: the finished restore Job stays."""
    name = obj["metadata"]["name"]
    restore_job = obj["status"]["restore"]["job"]
    return sorted(
        [
            ("kubernetes:batch/v1:Job", f"{ns}/{restore_job}"),
            ("kubernetes:apps/v1:Deployment", f"{ns}/{name}"),
            ("kubernetes:core/v1:Service", f"{ns}/{name}"),
            ("kubernetes:core/v1:Service", f"{ns}/{name}-internal"),
            ("kubernetes:core/v1:Secret", f"{ns}/{name}-credentials"),
            ("kubernetes:core/v1:ConfigMap", f"{ns}/{name}-scripts"),
            ("kubernetes:core/v1:PersistentVolumeClaim", f"{ns}/{name}-data"),
            ("kubernetes:core/v1:PersistentVolumeClaim", f"{ns}/{name}-backup"),
            ("kubernetes:core/v1:PersistentVolume", f"{ns}-{name}-data"),
            ("kubernetes:core/v1:PersistentVolume", f"{ns}-{name}-backup"),
        ]
    )


def events(harness: Harness, name: str, reason: str) -> int:
    listed = harness.core.list_namespaced_event(
        harness.namespace, field_selector=f"involvedObject.name={name},reason={reason}"
    ).items
    return sum(event.count or 1 for event in listed)


# -- 1. kill -9 in the middle of an `up` -------------------------------------------------


def test_kill_9_in_the_middle_of_an_up_converges_with_no_stale_lock_and_no_orphans(
    harness: Harness,
) -> None:
    ns = harness.namespace
    harness.create(NAME, harness.host_path_spec())
    harness.start()

    # Strike while the `up` holds the lock and has created part of the stack: the
    # Deployment exists, but the run has not finished (the object is not Ready yet).
    def mid_up() -> bool:
        obj = harness.get(NAME)
        ready = condition(obj, "Ready")
        deployment = read_or_none(lambda: harness.apps.read_namespaced_deployment(NAME, ns))
        return (
            engine_running(harness)
            and deployment is not None
            and (ready is None or ready["status"] != "True")
        )

    eventually(
        mid_up,
        bool,
        timeout_s=STRIKE_TIMEOUT_S,
        interval_s=STRIKE_POLL_S,
        what="an `up` in progress with the Deployment created",
    )
    killed = harness.kill()
    assert "pulumi" in killed, killed  # the CLI died with the reconciler

    # The crash left the stack locked: nobody released it.
    stale = harness.lock_files()
    assert stale, "the `up` finished before the kill: nothing was interrupted"
    print(f"stale lock: {stale}; pending operations: {pending_operations(harness, NAME)}")
    crashed = harness.get(NAME)
    assert crashed is not None
    ready = condition(crashed, "Ready")
    assert ready is None or ready["status"] != "True"

    # A new reconciler recovers the stack and converges.
    harness.start()
    obj = harness.wait_ready(NAME, generation=1)
    assert obj["status"]["lastUpdate"]["result"] == "succeeded"
    assert harness.apps.read_namespaced_deployment(NAME, ns).status.ready_replicas == 1
    assert any(
        "removing the lock of" in line and "has ended" in line for line in harness.log_lines()
    ), "the new reconciler did not report removing the dead process's lock"

    # No stale lock, no pending operations, and the checkpoint holds each object once.
    assert harness.lock_files() == []
    assert pending_operations(harness, NAME) == []
    assert stack_objects(harness, NAME) == expected_stack_objects(ns, obj)

    # The cluster holds exactly the stack's objects: nothing orphaned, nothing twice.
    found = namespace_objects(harness, NAME)
    rollouts = found.pop("ReplicaSet")
    assert len(rollouts) == 1, rollouts  # one rollout: the upsert did not change the pods
    assert found == {
        "Deployment": [NAME],
        "Service": sorted([NAME, f"{NAME}-internal"]),
        "PersistentVolumeClaim": sorted([f"{NAME}-backup", f"{NAME}-data"]),
        "Job": [obj["status"]["restore"]["job"]],
        "Secret": [f"{NAME}-credentials"],
        "ConfigMap": [f"{NAME}-scripts"],
        "PersistentVolume": sorted([f"{ns}-{NAME}-backup", f"{ns}-{NAME}-data"]),
    }


# -- 2. kill -9 in the middle of a `destroy` ---------------------------------------------


def test_kill_9_in_the_middle_of_a_destroy_finishes_the_deletion_after_a_restart(
    harness: Harness,
) -> None:
    ns = harness.namespace
    harness.create(NAME, harness.host_path_spec())
    harness.start()
    obj = harness.wait_ready(NAME, generation=1)
    backup_job = backup_job_of(obj)
    harness.delete(NAME)

    # Strike in the destroy phase: the backup has succeeded (and status says so), a
    # `destroy` holds the lock, and it has begun deleting: the Deployment is going or gone.
    def mid_destroy() -> bool:
        current = harness.get(NAME)
        backup = condition(current, "BackupReady")
        if current is None or backup is None or backup["status"] != "True":
            return False
        deployment = read_or_none(lambda: harness.apps.read_namespaced_deployment(NAME, ns))
        deleting = deployment is None or deployment.metadata.deletion_timestamp is not None
        return deleting and engine_running(harness)

    eventually(
        mid_destroy,
        bool,
        timeout_s=STRIKE_TIMEOUT_S,
        interval_s=STRIKE_POLL_S,
        what="a `destroy` in progress after the backup",
    )
    killed = harness.kill()
    assert "pulumi" in killed, killed

    stale = harness.lock_files()
    assert stale, "the `destroy` finished before the kill: nothing was interrupted"
    print(f"stale lock: {stale}; pending operations: {pending_operations(harness, NAME)}")
    crashed = harness.get(NAME)
    assert crashed is not None, "the finalizer went although the teardown was interrupted"
    assert FINALIZER in crashed["metadata"]["finalizers"]

    # A new reconciler finishes the deletion.
    harness.start()
    harness.wait_gone(NAME)
    assert any(
        "removing the lock of" in line and "has ended" in line for line in harness.log_lines()
    ), "the new reconciler did not report removing the dead process's lock"

    # The final backup had succeeded: it is not run again (clients have been cut off
    # since before it, so nothing changed after it).
    assert events(harness, NAME, "FinalBackupSucceeded") == 1
    assert events(harness, NAME, "Destroyed") >= 1
    assert (
        read_or_none(
            lambda: harness.batch.read_namespaced_job(backup_job.removesuffix("-1") + "-2", ns)
        )
        is None
    )

    # Everything but the backup claim (and its volume) is gone.
    gone: dict[str, Callable[[], Any]] = {
        "deployment": lambda: harness.apps.read_namespaced_deployment(NAME, ns),
        "service": lambda: harness.core.read_namespaced_service(NAME, ns),
        "internal service": lambda: harness.core.read_namespaced_service(f"{NAME}-internal", ns),
        "secret": lambda: harness.core.read_namespaced_secret(f"{NAME}-credentials", ns),
        "scripts": lambda: harness.core.read_namespaced_config_map(f"{NAME}-scripts", ns),
        "data claim": lambda: harness.core.read_namespaced_persistent_volume_claim(
            f"{NAME}-data", ns
        ),
        "data volume": lambda: harness.core.read_persistent_volume(f"{ns}-{NAME}-data"),
        "restore job": lambda: harness.batch.read_namespaced_job(restore_job_of(obj), ns),
        "backup job": lambda: harness.batch.read_namespaced_job(backup_job, ns),
    }
    for what, read in gone.items():
        eventually(
            partial(read_or_none, read),
            lambda found: found is None,
            timeout_s=READY_TIMEOUT_S,
            what=f"{what} deleted",
        )
    found = namespace_objects(harness, NAME)
    assert found["PersistentVolumeClaim"] == [f"{NAME}-backup"]
    assert found["PersistentVolume"] == [f"{ns}-{NAME}-backup"]
    kept = harness.core.read_namespaced_persistent_volume_claim(f"{NAME}-backup", ns)
    assert kept.metadata.deletion_timestamp is None

    # No stale lock, and the stack stays emptied, with its history (docs/design.md).
    assert harness.lock_files() == []
    assert stack_objects(harness, NAME) == []


# -- 3. restarting the API server --------------------------------------------------------


def cluster(*args: str) -> None:
    subprocess.run([str(CLUSTER), *args], check=True, timeout=CLUSTER_TIMEOUT_S)


@pytest.fixture
def private_cluster(
    toolchain_bin: Path,  # noqa: ARG001 (requested for its effect: the toolchain on PATH)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """A kwok cluster of this test's own, whose API server it may stop; its state dir."""
    state_dir = tmp_path_factory.mktemp("restart-cluster")
    try:
        cluster("up", "--node=kwok", "--state-dir", str(state_dir))
        yield state_dir
    finally:
        cluster("down", "--state-dir", str(state_dir))


@pytest.fixture
def private_harness(
    private_cluster: Path, namespace_name: str, tmp_path: Path
) -> Iterator[Harness]:
    kubeconfig = private_cluster / "kubeconfig"
    # clean_up=False: the cluster goes whole, with everything in it.
    with harness_in_new_namespace(
        api_client_for(kubeconfig), kubeconfig, namespace_name, tmp_path, clean_up=False
    ) as harness:
        yield harness


def apiserver_pid(state_dir: Path) -> int:
    return int((state_dir / "pids" / "kube-apiserver.pid").read_text().split()[0])


def test_the_watch_resumes_after_the_api_server_restarts(
    private_cluster: Path, private_harness: Harness
) -> None:
    harness = private_harness
    harness.create(NAME, harness.host_path_spec())
    harness.start()
    first_update = harness.wait_ready(NAME, generation=1)["status"]["lastUpdate"]["id"]
    assert harness.http_get("/healthz") == (200, "ok\n")

    # Stop the API server and wait until it is really down.
    before = apiserver_pid(private_cluster)
    send(before, signal.SIGTERM)
    eventually(
        partial(alive, before),
        lambda running: not running,
        timeout_s=CLUSTER_TIMEOUT_S,
        what=f"kube-apiserver (pid {before}) stopped",
    )

    def api_reachable() -> bool:
        try:
            harness.core.get_api_resources(_request_timeout=5)
        except Exception:  # any failure means unreachable
            return False
        return True

    assert not api_reachable()
    # The reconciler's watch notices the lost connection while the server is down.
    eventually(
        lambda: sum("reconnecting" in line for line in harness.log_lines()),
        lambda count: count >= 1,
        timeout_s=120,
        what="the watch noticed the API server went away",
    )

    # `up` restarts only what is not running: the API server, on the same etcd and ports.
    cluster("up", "--node=kwok", "--state-dir", str(private_cluster))
    assert apiserver_pid(private_cluster) != before
    assert harness.process is not None
    assert harness.process.poll() is None, "the reconciler died with the API server"

    # A new object, created after the restart, is picked up: the watch resumed.
    spec = {
        **harness.host_path_spec(),
        "host_path": str(harness.work_dir / "host" / "second"),
    }
    spec["backup"] = {"host_path": str(harness.work_dir / "host" / "second-backup")}
    harness.create(SECOND, spec)
    second = harness.wait_ready(SECOND, generation=1)
    assert second["status"]["lastUpdate"]["result"] == "succeeded"
    # The first object is untouched: no engine ran for it. (Its Ready condition follows
    # its pod, which the node controller may have marked not ready while the API server
    # was away.)
    first = harness.get(NAME)
    assert first is not None
    assert first["status"]["lastUpdate"]["id"] == first_update
    eventually(
        partial(harness.http_get, "/healthz"),
        lambda reply: reply == (200, "ok\n"),
        timeout_s=60,
        what="/healthz healthy again",
    )
