"""The real-node cluster for the end-to-end tier.

One real node per machine (it owns a fixed bridge), started once per session by
`hack/cluster up --node=real` and stopped at the end. Tests marked `teardown_last` run
after every other test, because they take the node down themselves.
E2E_KUBECONFIG names an existing real-node cluster to use instead; the teardown tests
then fail, because they are only meaningful for a node this session started.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.conftest import CLUSTER
from tests.e2e.host_snapshot import HostSnapshot
from tests.support import api_client_for


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("teardown_last") is not None)


@dataclasses.dataclass(frozen=True)
class RealNode:
    kubeconfig: Path
    state_dir: Path | None  # None when the cluster is not this session's
    host_before: HostSnapshot | None

    def api(self) -> client.ApiClient:
        return api_client_for(self.kubeconfig)


@pytest.fixture(scope="session")
def real_node(
    toolchain_bin: Path,  # noqa: ARG001 (requested for its effect: the tools on PATH)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RealNode]:
    existing = os.environ.get("E2E_KUBECONFIG")
    if existing:
        yield RealNode(Path(existing), None, None)
        return
    host_before = HostSnapshot.take()
    state_dir = tmp_path_factory.mktemp("real-node")
    try:
        subprocess.run(
            [str(CLUSTER), "up", "--node=real", "--state-dir", str(state_dir)], check=True
        )
        yield RealNode(state_dir / "kubeconfig", state_dir, host_before)
    finally:
        # A no-op when a teardown test already took it down.
        subprocess.run([str(CLUSTER), "down", "--state-dir", str(state_dir)], check=True)
