"""`reconciler migrate-state`: Ready instances on the file backend move to the local
cluster's S3 store, and the reconciler on the bucket finds them in sync: no engine run,
the same last update, the same history, a preview with no changes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from kubernetes import client
from localcluster import object_store

from reconciler.s3 import S3Client
from tests.harness import Harness, harness_in_new_namespace
from tests.local_s3 import local_store
from tests.support import eventually

pytestmark = pytest.mark.integration

NAMES: Final = ("mysql-instance", "second")
BUCKET: Final = "pulumi-state"


@pytest.fixture
def store(
    kubeconfig: Path, api_client: client.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[S3Client, str]]:
    """The store's client and a URL base of this test's own (emptied afterwards), with
    its keys in the environment the commands inherit."""
    found = local_store(kubeconfig, api_client)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", found.credentials.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", found.credentials.secret_access_key)
    prefix = f"test-migrate-{uuid.uuid4().hex[:8]}"
    yield found.client, f"{prefix}?endpoint={found.endpoint}&region={object_store.REGION}"
    for item in list(found.client.list_objects(BUCKET, f"{prefix}")):
        found.client.delete_object(BUCKET, item.key)


@pytest.fixture
def harness(
    api_client: client.ApiClient, kubeconfig: Path, namespace_name: str, tmp_path: Path
) -> Iterator[Harness]:
    with harness_in_new_namespace(api_client, kubeconfig, namespace_name, tmp_path) as harness:
        yield harness


def url(base: str, path: str) -> str:
    prefix, query = base.split("?", 1)
    return f"s3://{BUCKET}/{prefix}/{path}?{query}&use_path_style=true"


def engine_runs(harness: Harness) -> int:
    return sum(
        int(line.split("engine_runs=")[1].split()[0])
        for line in harness.log_lines()
        if "engine_runs=" in line
    )


def in_sync_passes(harness: Harness, name: str) -> int:
    marker = f"instance={harness.namespace}/{name} phase=ready outcome=done"
    return sum(marker in line for line in harness.log_lines())


def test_ready_instances_move_to_s3_with_no_engine_change(
    harness: Harness, store: tuple[S3Client, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, base = store
    harness.start()
    for name in NAMES:
        harness.create(name, harness.host_path_spec())
    ready = {name: harness.wait_ready(name, generation=1) for name in NAMES}
    history = {name: json.loads(harness.history(name).stdout) for name in NAMES}
    target = url(base, "state")

    # Not while a reconciler runs on the state directory.
    refused = harness.command("migrate-state", "--to", target)
    assert refused.returncode == 1
    assert "another reconciler holds" in refused.stderr
    harness.stop()

    # Never over other content: nothing is written when one key differs.
    taken = url(base, "taken")
    prefix = base.split("?", 1)[0]
    s3.put_object(BUCKET, f"{prefix}/taken/.pulumi/meta.yaml", b"version: 0\n")
    conflict = harness.command("migrate-state", "--to", taken)
    assert conflict.returncode == 1
    assert "refusing to overwrite" in conflict.stderr
    assert [item.key for item in s3.list_objects(BUCKET, f"{prefix}/taken/")] == [
        f"{prefix}/taken/.pulumi/meta.yaml"
    ]

    moved = harness.command("migrate-state", "--to", target)
    assert moved.returncode == 0, moved.stderr
    assert f"the engine lists all {len(NAMES)} stacks in the bucket" in moved.stdout
    again = harness.command("migrate-state", "--to", target)  # idempotent
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("copied 0 files (0 bytes)"), again.stdout

    # The reconciler on the bucket, with a new state directory, as a pod with no claim.
    runs_before = engine_runs(harness)
    passes_before = {name: in_sync_passes(harness, name) for name in NAMES}
    monkeypatch.setenv("MYSQL_OPERATOR_BACKEND_URL", target)
    harness.state_dir = tmp_path / "state-on-s3"
    harness.start()
    eventually(
        lambda: [in_sync_passes(harness, name) - passes_before[name] for name in NAMES],
        lambda new_passes: min(new_passes) >= 2,
        timeout_s=90,
        what="two passes over each instance on the bucket",
    )
    assert engine_runs(harness) == runs_before
    assert not (harness.state_dir / ".pulumi").exists()  # nothing went to a directory
    for name in NAMES:
        now = harness.get(name)
        assert now is not None
        assert now["status"]["lastUpdate"] == ready[name]["status"]["lastUpdate"]
        assert json.loads(harness.history(name).stdout) == history[name]
        manifest = tmp_path / f"{name}.yml"
        manifest.write_text(json.dumps(harness.manifest(name, harness.host_path_spec())))
        preview = harness.preview(manifest)
        assert preview.returncode == 0, preview.stderr
        assert json.loads(preview.stdout)["hasChanges"] is False
