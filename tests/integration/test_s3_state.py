"""The stacks' state on S3 (the local cluster's store) instead of a directory: the
original example from creation to deletion, resyncs without engine runs, a restart, and
a preview from a second process that shares nothing with the reconciler but the bucket
and the passphrase."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import yaml
from kubernetes import client
from localcluster import object_store

from reconciler.s3 import S3Client
from tests.harness import Harness, harness_in_new_namespace
from tests.local_s3 import local_store
from tests.support import eventually

pytestmark = pytest.mark.integration

NAME: Final = "mysql-instance"
BUCKET: Final = "pulumi-state"
PROJECT: Final = "mysql-operator"


@pytest.fixture
def state_url(
    kubeconfig: Path, api_client: client.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, S3Client, str]]:
    """A backend URL under a prefix of this test's own, with the store's credentials in
    the environment every reconciler process of the test inherits; the prefix is emptied
    afterwards."""
    assert BUCKET in object_store.BUCKETS
    store = local_store(kubeconfig, api_client)
    prefix = f"test-state-{uuid.uuid4().hex[:8]}"
    url = (
        f"s3://{BUCKET}/{prefix}?endpoint={store.endpoint}&region={object_store.REGION}"
        "&use_path_style=true"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", store.credentials.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", store.credentials.secret_access_key)
    monkeypatch.setenv("MYSQL_OPERATOR_BACKEND_URL", url)
    yield url, store.client, prefix
    for item in list(store.client.list_objects(BUCKET, f"{prefix}/")):
        store.client.delete_object(BUCKET, item.key)


@pytest.fixture
def harness(
    api_client: client.ApiClient, kubeconfig: Path, namespace_name: str, tmp_path: Path
) -> Iterator[Harness]:
    with harness_in_new_namespace(api_client, kubeconfig, namespace_name, tmp_path) as harness:
        yield harness


def engine_runs(harness: Harness, name: str) -> int:
    marker = f"instance={harness.namespace}/{name} "
    return sum(
        int(line.split("engine_runs=")[1].split()[0])
        for line in harness.log_lines()
        if marker in line and "engine_runs=" in line
    )


def test_the_example_lives_its_whole_life_with_its_state_on_s3(
    state_url: tuple[str, S3Client, str], harness: Harness, tmp_path: Path
) -> None:
    _url, store, prefix = state_url
    ns = harness.namespace
    checkpoint = f"{prefix}/.pulumi/stacks/{PROJECT}/{ns}.{NAME}.json"
    harness.start()
    harness.create(NAME, harness.host_path_spec())
    ready = harness.wait_ready(NAME, generation=1)
    keys = {item.key for item in store.list_objects(BUCKET, f"{prefix}/")}
    assert checkpoint in keys, sorted(keys)
    # Nothing went to the state directory: it holds only the workspace and the lock.
    assert not (harness.state_dir / ".pulumi").exists()
    assert engine_runs(harness, NAME) == 1

    # Resyncs, then a restart: passes without engine runs, the update unchanged.
    in_sync = f"instance={ns}/{NAME} phase=ready outcome=done"
    seen = sum(in_sync in line for line in harness.log_lines())
    harness.stop()
    harness.start()
    eventually(
        lambda: sum(in_sync in line for line in harness.log_lines()),
        lambda count: count >= seen + 2,
        timeout_s=90,
        what="two passes without an engine run after the restart",
    )
    assert engine_runs(harness, NAME) == 1
    again = harness.get(NAME)
    assert again is not None
    assert again["status"]["lastUpdate"]["id"] == ready["status"]["lastUpdate"]["id"]

    # A preview from another process, on its own empty state directory: the bucket is
    # all it shares with the reconciler.
    harness.state_dir = tmp_path / "preview-state"
    same = tmp_path / "same.yml"
    same.write_text(yaml.safe_dump(harness.manifest(NAME, harness.host_path_spec())))
    unchanged = harness.preview(same)
    assert unchanged.returncode == 0, unchanged.stderr
    assert json.loads(unchanged.stdout)["hasChanges"] is False
    changed = tmp_path / "changed.yml"
    changed.write_text(
        yaml.safe_dump(harness.manifest(NAME, {**harness.host_path_spec(), "image": "mysql:8.0"}))
    )
    planned = harness.preview(changed)
    assert planned.returncode == 2, planned.stderr
    assert json.loads(planned.stdout)["steps"] == [
        {"op": "update", "type": "kubernetes:apps/v1:Deployment", "name": NAME}
    ]
    history = harness.history(NAME)
    assert history.returncode == 0, history.stderr
    assert [u["kind"] for u in json.loads(history.stdout)["updates"]] == ["update"]

    # Deleting: the final backup, then the destroy, read and written on S3.
    harness.delete(NAME)
    harness.wait_gone(NAME)
    after = harness.history(NAME)
    assert after.returncode == 0, after.stderr
    kinds = [update["kind"] for update in json.loads(after.stdout)["updates"]]
    assert kinds[0] == "destroy", kinds
