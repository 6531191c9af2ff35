"""The integration tier's shared fixture: a Harness on a new namespace of the session's
cluster (a module needing another kind defines its own `harness`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.harness import Harness, harness_in_new_namespace


@pytest.fixture
def harness(
    api_client: client.ApiClient, kubeconfig: Path, namespace_name: str, tmp_path: Path
) -> Iterator[Harness]:
    """A Harness on a namespace it creates; its reconciler is not started."""
    with harness_in_new_namespace(api_client, kubeconfig, namespace_name, tmp_path) as harness:
        yield harness
