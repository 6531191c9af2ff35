"""`reconciler migrate-state`: Ready instances on the file backend move to the local
cluster's S3 store, and the reconciler on the bucket finds them in sync: no engine run,
the same last update, the same history, a preview with no changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from kubernetes import client

from bench.cluster import s3_backend_url
from tests.harness import Harness
from tests.local_s3 import (
    Store,
    local_store,
    prefix_of_its_own,
    put_keys_in_environment,
)
from tests.support import eventually

pytestmark = pytest.mark.integration

NAMES: Final = ("mysql-instance", "second")
BUCKET: Final = "pulumi-state"


@pytest.fixture
def store(
    kubeconfig: Path, api_client: client.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Store, str]]:
    """The store, with its keys in the environment the commands inherit, and a prefix of
    this test's own (emptied afterwards)."""
    found = local_store(kubeconfig, api_client)
    put_keys_in_environment(found, monkeypatch)
    with prefix_of_its_own(found.client, BUCKET, "test-migrate") as prefix:
        yield found, prefix


def test_ready_instances_move_to_s3_with_no_engine_change(
    harness: Harness, store: tuple[Store, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found, prefix = store
    s3 = found.client
    harness.start()
    for name in NAMES:
        harness.create(name, harness.host_path_spec())
    ready = {name: harness.wait_ready(name, generation=1) for name in NAMES}
    history = {name: json.loads(harness.history(name).stdout) for name in NAMES}
    target = s3_backend_url(found.endpoint, f"{prefix}/state", BUCKET)

    # Not while a reconciler runs on the state directory.
    refused = harness.command("migrate-state", "--to", target)
    assert refused.returncode == 1
    assert "another reconciler holds" in refused.stderr
    harness.stop()

    # Never over other content: nothing is written when one key differs.
    taken = s3_backend_url(found.endpoint, f"{prefix}/taken", BUCKET)
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
    runs_before = harness.engine_runs()
    passes_before = {name: harness.in_sync_passes(name) for name in NAMES}
    monkeypatch.setenv("MYSQL_OPERATOR_BACKEND_URL", target)
    harness.state_dir = tmp_path / "state-on-s3"
    harness.start()
    eventually(
        lambda: [harness.in_sync_passes(name) - passes_before[name] for name in NAMES],
        lambda new_passes: min(new_passes) >= 2,
        timeout_s=90,
        what="two passes over each instance on the bucket",
    )
    assert harness.engine_runs() == runs_before
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
