"""The stacks' state on S3 (the local cluster's store) instead of a directory: the
original example from creation to deletion, resyncs without engine runs, a restart, and
a preview from a second process that shares nothing with the reconciler but the bucket
and the passphrase."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
import yaml
from kubernetes import client
from localcluster import object_store

from bench.cluster import s3_backend_url
from reconciler.s3 import S3Client
from tests.harness import Harness
from tests.local_s3 import local_store, prefix_of_its_own, put_keys_in_environment
from tests.reader_kubeconfig import reader_kubeconfig
from tests.support import api_client_for, eventually

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
    put_keys_in_environment(store, monkeypatch)
    with prefix_of_its_own(store.client, BUCKET, "test-state") as prefix:
        url = s3_backend_url(store.endpoint, prefix, BUCKET)
        monkeypatch.setenv("MYSQL_OPERATOR_BACKEND_URL", url)
        yield url, store.client, prefix


def test_the_example_lives_its_whole_life_with_its_state_on_s3(
    state_url: tuple[str, S3Client, str], harness: Harness, tmp_path: Path
) -> None:
    _url, store, prefix = state_url
    ns = harness.namespace
    # The reconciler's own copy of the kubeconfig: its path is what the stacks' provider
    # records.
    operator_kubeconfig = tmp_path / "operator.kubeconfig"
    operator_kubeconfig.write_bytes(harness.kubeconfig.read_bytes())
    harness.kubeconfig = operator_kubeconfig
    checkpoint = f"{prefix}/.pulumi/stacks/{PROJECT}/{ns}.{NAME}.json"
    harness.start()
    harness.create(NAME, harness.host_path_spec())
    ready = harness.wait_ready(NAME, generation=1)
    keys = {item.key for item in store.list_objects(BUCKET, f"{prefix}/")}
    assert checkpoint in keys, sorted(keys)
    # Nothing went to the state directory: it holds only the workspace and the lock.
    assert not (harness.state_dir / ".pulumi").exists()
    assert harness.engine_runs(NAME) == 1

    # Resyncs, then a restart: passes without engine runs, the update unchanged.
    seen = harness.in_sync_passes(NAME)
    harness.stop()
    harness.start()
    eventually(
        lambda: harness.in_sync_passes(NAME),
        lambda count: count >= seen + 2,
        timeout_s=90,
        what="two passes without an engine run after the restart",
    )
    assert harness.engine_runs(NAME) == 1
    again = harness.get(NAME)
    assert again is not None
    assert again["status"]["lastUpdate"]["id"] == ready["status"]["lastUpdate"]["id"]

    # Previews from another process, on its own empty state directory: the bucket is all
    # it shares with the reconciler.
    harness.stop()
    reconciler_state = harness.state_dir
    harness.state_dir = tmp_path / "preview-state"
    same = tmp_path / "same.yml"
    same.write_text(yaml.safe_dump(harness.manifest(NAME, harness.host_path_spec())))
    changed = tmp_path / "changed.yml"
    changed.write_text(
        yaml.safe_dump(harness.manifest(NAME, {**harness.host_path_spec(), "image": "mysql:8.0"}))
    )
    with_cluster = [harness.preview(same), harness.preview(changed)]
    # And as CI runs them: the reconciler's kubeconfig (which the stack's provider names)
    # is not there, and the preview's own can only read MySQL objects in the namespace.
    harness.kubeconfig = reader_kubeconfig(
        harness.api_client, operator_kubeconfig, ns, tmp_path / "reader.kubeconfig"
    )
    operator_kubeconfig.rename(tmp_path / "kept.kubeconfig")
    from_ci = [harness.preview(same), harness.preview(changed)]
    (tmp_path / "kept.kubeconfig").rename(operator_kubeconfig)
    unchanged, planned = from_ci
    assert unchanged.returncode == 0, unchanged.stderr
    assert json.loads(unchanged.stdout)["hasChanges"] is False
    assert planned.returncode == 2, planned.stderr
    assert json.loads(planned.stdout)["steps"] == [
        {"op": "update", "type": "kubernetes:apps/v1:Deployment", "name": NAME}
    ]
    assert [(run.returncode, json.loads(run.stdout)) for run in with_cluster] == [
        (run.returncode, json.loads(run.stdout)) for run in from_ci
    ]
    # The reader can do nothing else: the credentials Secret is out of its reach.
    reader = client.CoreV1Api(api_client_for(harness.kubeconfig))
    with pytest.raises(client.ApiException) as denied:
        reader.read_namespaced_secret(f"{NAME}-credentials", ns)
    assert denied.value.status == 403
    history = harness.history(NAME)
    assert history.returncode == 0, history.stderr
    assert [u["kind"] for u in json.loads(history.stdout)["updates"]] == ["update"]

    # Deleting: the final backup, then the destroy, read and written on S3.
    harness.kubeconfig, harness.state_dir = operator_kubeconfig, reconciler_state
    harness.start()
    harness.delete(NAME)
    harness.wait_gone(NAME)
    after = harness.history(NAME)
    assert after.returncode == 0, after.stderr
    kinds = [update["kind"] for update in json.loads(after.stdout)["updates"]]
    assert kinds[0] == "destroy", kinds
