"""The local cluster's S3 store as this host reaches it: its endpoint, from `hack/cluster
env`, and the credentials the cluster publishes in its Secret."""

from __future__ import annotations

import base64
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client
from localcluster import object_store

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
    found = re.search(r"^export AWS_ENDPOINT_URL='(\S+)'$", env.stdout, re.M)
    if env.returncode != 0 or found is None:
        pytest.fail(f"this test needs the local cluster's S3 store: {env.stderr.strip()}")
    secret = client.CoreV1Api(api_client).read_namespaced_secret(
        object_store.SECRET, object_store.NAMESPACE
    )
    data = secret.data or {}
    return Store(
        found.group(1),
        Credentials(
            base64.b64decode(data["access_key_id"]).decode(),
            base64.b64decode(data["secret_access_key"]).decode(),
        ),
    )
