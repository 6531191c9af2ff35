"""The product's promise on a real node, as a story that any way of running the reconciler
must pass: rows written into MySQL survive `kubectl delete mysql`, and come back from the
backup when the object is created again.

The original example is applied unchanged. The node has no storage provisioner, so the
test provides static volumes that the example's claims bind to, as an administrator would;
the re-created instance gets a fresh, empty data volume, so the rows can only come back
through the backup and the restore Job.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from kubernetes import client

from tests.e2e.conftest import RealNode
from tests.integration.test_reconciler import Harness, harness_in_new_namespace
from tests.support import eventually

NAME: Final = "mysql-instance"
DATABASE: Final = "otus-database"
# The original example, unchanged.
ORIGINAL_SPEC: Final = {
    "image": "mysql:5.7",
    "database": DATABASE,
    "password": "otuspassword",
    "storage_size": "1Gi",
}
ROWS: Final = ("first", "second", "third")
JOB_TIMEOUT_S: Final = 300.0


def static_volume(
    name: str, namespace: str, claim: str, host_dir: Path
) -> client.V1PersistentVolume:
    return client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PersistentVolumeSpec(
            capacity={"storage": "1Gi"},
            access_modes=["ReadWriteOnce"],
            storage_class_name="",
            persistent_volume_reclaim_policy="Retain",
            claim_ref=client.V1ObjectReference(namespace=namespace, name=claim),
            host_path=client.V1HostPathVolumeSource(path=str(host_dir), type="DirectoryOrCreate"),
        ),
    )


def sql_job(name: str, statements: str) -> client.V1Job:
    """A client Job that reaches the instance by its Service name as root."""
    script = f'mysql -h {NAME} -uroot "{DATABASE}" --batch --skip-column-names -e "{statements}"'
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=0,
            active_deadline_seconds=int(JOB_TIMEOUT_S),
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[
                        client.V1Container(
                            name="sql",
                            image="mysql:5.7",
                            image_pull_policy="Never",
                            command=["sh", "-c", script],
                            env=[
                                client.V1EnvVar(
                                    name="MYSQL_PWD",
                                    value_from=client.V1EnvVarSource(
                                        secret_key_ref=client.V1SecretKeySelector(
                                            name=f"{NAME}-credentials", key="password"
                                        )
                                    ),
                                )
                            ],
                        )
                    ],
                )
            ),
        ),
    )


def run_sql(harness: Harness, job_name: str, statements: str) -> str:
    """Runs SQL in the cluster and returns the Job's output; fails with the log if it fails."""
    harness.batch.create_namespaced_job(harness.namespace, sql_job(job_name, statements))

    def state() -> str:
        status = harness.batch.read_namespaced_job_status(job_name, harness.namespace).status
        return "succeeded" if status.succeeded else "failed" if status.failed else "running"

    final = eventually(
        state, lambda s: s != "running", timeout_s=JOB_TIMEOUT_S, what=f"Job {job_name}"
    )
    pods = harness.core.list_namespaced_pod(
        harness.namespace, label_selector=f"job-name={job_name}"
    ).items
    assert pods, f"Job {job_name} ended {final} without a pod"
    log: str = harness.core.read_namespaced_pod_log(str(pods[0].metadata.name), harness.namespace)
    assert final == "succeeded", log
    return log


def rows_survive_delete_and_come_back_on_recreate(
    harness: Harness, tmp_path: Path, start_reconciler: Callable[[], None]
) -> None:
    """The story; `start_reconciler` starts whichever reconciler is under test."""
    ns = harness.namespace
    data_dir, backup_dir, fresh_data_dir = (
        tmp_path / "data",
        tmp_path / "backup",
        tmp_path / "fresh-data",
    )
    harness.core.create_persistent_volume(
        static_volume(f"{ns}-first-data", ns, f"{NAME}-data", data_dir)
    )
    harness.core.create_persistent_volume(
        static_volume(f"{ns}-backup", ns, f"{NAME}-backup", backup_dir)
    )

    # The object exists before the reconciler starts, and still gets reconciled.
    harness.create(NAME, dict(ORIGINAL_SPEC))
    start_reconciler()
    first = harness.wait_ready(NAME, generation=1)
    assert first["status"]["endpoint"]["host"] == f"{NAME}.{ns}.svc.cluster.local"

    run_sql(
        harness,
        "write-rows",
        "CREATE TABLE kept (v VARCHAR(16) PRIMARY KEY); "
        "INSERT INTO kept VALUES ('first'), ('second'), ('third');",
    )

    # Deleting backs up first; everything but the backup storage goes; the finalizer last.
    harness.delete(NAME)
    harness.wait_gone(NAME)
    assert harness.apps.list_namespaced_deployment(ns).items == []
    claims = [
        c.metadata.name for c in harness.core.list_namespaced_persistent_volume_claim(ns).items
    ]
    assert claims == [f"{NAME}-backup"]
    dumps = sorted(backup_dir.glob("**/dump-*.sql"))
    assert dumps, f"no dump in {backup_dir}: {sorted(p.name for p in backup_dir.rglob('*'))}"
    assert all(row in dumps[-1].read_text() for row in ROWS)

    # The old data volume stays Released (Retain); the new instance gets an empty one.
    harness.core.create_persistent_volume(
        static_volume(f"{ns}-fresh-data", ns, f"{NAME}-data", fresh_data_dir)
    )
    harness.create(NAME, dict(ORIGINAL_SPEC))
    second: dict[str, Any] = harness.wait_ready(NAME, generation=1)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]

    log = run_sql(harness, "read-rows", "SELECT v FROM kept ORDER BY v;")
    assert log.split() == sorted(ROWS)


@contextlib.contextmanager
def e2e_harness(real_node: RealNode, tmp_path: Path) -> Iterator[Harness]:
    """A Harness on a fresh namespace of the real node; it cleans up after itself."""
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    with harness_in_new_namespace(
        real_node.api(), real_node.kubeconfig, namespace, tmp_path
    ) as harness:
        yield harness
