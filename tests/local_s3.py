"""The local cluster's S3 store as this host reaches it: its endpoint, from `hack/cluster
env`, and the credentials the cluster publishes in its Secret."""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client
from localcluster import object_store

from bench.cluster import exported
from reconciler.s3 import Credentials, S3Client
from tests.conftest import CLUSTER


@dataclass(frozen=True)
class Store:
    endpoint: str
    credentials: Credentials

    @property
    def client(self) -> S3Client:
        return S3Client(self.endpoint, self.credentials)


def local_store(kubeconfig: Path, api_client: client.ApiClient) -> Store:
    """The store of the cluster whose state directory holds `kubeconfig`; fails the test
    when that cluster has none."""
    env = subprocess.run(
        [str(CLUSTER), "env", "--state-dir", str(kubeconfig.parent)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = exported(env.stdout, "AWS_ENDPOINT_URL")
    if env.returncode != 0 or not found:
        pytest.fail(f"this test needs the local cluster's S3 store: {env.stderr.strip()}")
    secret = client.CoreV1Api(api_client).read_namespaced_secret(
        object_store.SECRET, object_store.NAMESPACE
    )
    data = secret.data or {}
    return Store(
        found,
        Credentials(
            base64.b64decode(data["access_key_id"]).decode(),
            base64.b64decode(data["secret_access_key"]).decode(),
        ),
    )


@contextmanager
def prefix_of_its_own(s3: S3Client, bucket: str, topic: str) -> Iterator[str]:
    """A new prefix in `bucket` for one test; everything under it is deleted afterwards."""
    prefix = f"{topic}-{uuid.uuid4().hex[:8]}"
    try:
        yield prefix
    finally:
        for item in list(s3.list_objects(bucket, f"{prefix}/")):
            s3.delete_object(bucket, item.key)


def put_keys_in_environment(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's keys in the AWS variables that the reconciler's processes inherit."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", store.credentials.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", store.credentials.secret_access_key)
