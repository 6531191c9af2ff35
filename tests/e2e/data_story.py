"""The product's promise on a real node, as a story that any way of running the reconciler
must pass: rows written into MySQL survive `kubectl delete mysql`, and come back from the
backup when the object is created again.

The original example is applied unchanged, and its claims get volumes from the cluster's
default StorageClass (hack/localcluster/storage.py), as on users' clusters. The backup
claim outlives the instance; the re-created instance's data claim is a new one, so it
gets a fresh, empty volume, and the rows can only come back through the backup and the
restore Job.
"""

from __future__ import annotations

import contextlib
import gzip
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from tests.e2e.conftest import RealNode
from tests.e2e.sql_client import sql
from tests.harness import Harness, harness_in_new_namespace

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


def claim_host_dir(harness: Harness, claim: str) -> Path:
    """The host directory of the volume bound to a claim (the node is this machine)."""
    bound = harness.core.read_namespaced_persistent_volume_claim(claim, harness.namespace)
    assert bound.status.phase == "Bound", f"claim {claim}: {bound.status.phase}"
    volume = harness.core.read_persistent_volume(str(bound.spec.volume_name))
    source = volume.spec.host_path or volume.spec.local
    assert source is not None, f"volume {volume.metadata.name} is not a directory on this host"
    return Path(source.path)


def dump_text(path: Path) -> str:
    """A dump's SQL, whether the backup Job compressed it or not."""
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode()
    return path.read_text()


def rows_survive_delete_and_come_back_on_recreate(
    harness: Harness, start_reconciler: Callable[[], None]
) -> None:
    """The story; `start_reconciler` starts whichever reconciler is under test."""
    ns = harness.namespace

    # The object exists before the reconciler starts, and still gets reconciled.
    harness.create(NAME, dict(ORIGINAL_SPEC))
    start_reconciler()
    first = harness.wait_ready(NAME, generation=1)
    assert first["status"]["endpoint"]["host"] == f"{NAME}.{ns}.svc.cluster.local"

    sql(
        harness,
        NAME,
        DATABASE,
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
    backup_dir = claim_host_dir(harness, f"{NAME}-backup")
    dumps = sorted(
        path
        for pattern in ("**/dump-*.sql", "**/dump-*.sql.gz")
        for path in backup_dir.glob(pattern)
    )
    assert dumps, f"no dump in {backup_dir}: {sorted(p.name for p in backup_dir.rglob('*'))}"
    assert all(row in dump_text(dumps[-1]) for row in ROWS)

    # The new instance's data claim is a new one: it gets a new, empty volume.
    harness.create(NAME, dict(ORIGINAL_SPEC))
    second: dict[str, Any] = harness.wait_ready(NAME, generation=1)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]

    rows = sql(harness, NAME, DATABASE, "SELECT v FROM kept ORDER BY v;")
    assert rows.split() == sorted(ROWS)


@contextlib.contextmanager
def e2e_harness(
    real_node: RealNode,
    tmp_path: Path,
    namespace_labels: Mapping[str, str] | None = None,
    extra_flags: tuple[str, ...] = (),
) -> Iterator[Harness]:
    """A Harness on a fresh namespace of the real node (its reconciler run with
    `extra_flags`); it cleans up after itself."""
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    with harness_in_new_namespace(
        real_node.api(),
        real_node.kubeconfig,
        namespace,
        tmp_path,
        namespace_labels=namespace_labels,
        extra_flags=extra_flags,
    ) as harness:
        yield harness
