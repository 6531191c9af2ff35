"""The real-node cluster for the end-to-end tier.

One real node per machine (it owns a fixed bridge). In order of preference:
- E2E_KUBECONFIG names an existing real-node cluster to use;
- the project's own cluster at the default state directory (`hack/up`, `hack/cluster up`)
  is borrowed when `hack/cluster status` says it is healthy and has a real node, so that
  `hack/test` right after `hack/up` works; a kwok or unhealthy one there fails the tier at
  once, saying what to do;
- otherwise `hack/cluster up --node=real` starts a private one for the session, stopped
  at the end.
Tests that can only check a node this session started (`up` restarting nothing, `down`
leaving nothing behind) are skipped on a cluster that is not the session's. Tests
marked `teardown_last` run after every other test, because they take the node down.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from localcluster.layout import Layout, NodeKind, default_state_dir

from tests.conftest import CLUSTER, REPO_ROOT
from tests.e2e.host_snapshot import HostSnapshot
from tests.pulumi_project import crd_exists, remove_installation
from tests.support import api_client_for

STATUS_TIMEOUT_S = 30.0
IMAGES_BUILD = REPO_ROOT / "hack" / "images" / "build"
NOT_THE_SESSIONS = "the cluster is not this session's (borrowed or E2E_KUBECONFIG)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("teardown_last") is not None)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Fails the run before any test when the end-to-end tier is selected and the default
    cluster cannot be borrowed, rather than after the other tiers."""
    if any(item.get_closest_marker("e2e") for item in session.items):
        problem = default_cluster_problem()
        if problem is not None:
            pytest.exit(problem, returncode=pytest.ExitCode.USAGE_ERROR)


@dataclasses.dataclass(frozen=True)
class RealNode:
    kubeconfig: Path
    # The cluster's state directory, when known (not for E2E_KUBECONFIG).
    state_dir: Path | None
    host_before: HostSnapshot | None
    # True when this session started the node, and so may restart or remove it.
    owned: bool

    def api(self) -> client.ApiClient:
        return api_client_for(self.kubeconfig)

    def require_owned(self) -> Path:
        """The state directory of a node this session started; skips the test otherwise."""
        if not self.owned or self.state_dir is None:
            pytest.skip(f"only a node this session started can be checked: {NOT_THE_SESSIONS}")
        return self.state_dir


def default_layout() -> Layout:
    return Layout(default_state_dir().resolve())


def default_cluster_problem() -> str | None:
    """None if there is no cluster at the default state dir, or a healthy real-node one;
    otherwise one line saying what is wrong and what to do."""
    if os.environ.get("E2E_KUBECONFIG"):
        return None
    layout = default_layout()
    node = layout.node_kind()
    if node is None:
        return None
    if node is not NodeKind.REAL:
        return (
            f"the cluster at {layout.root} has a {node} node, and the end-to-end tier needs a "
            "real one: run `hack/cluster down`, then `hack/up` (or let the tier start its own)"
        )
    try:
        status = subprocess.run(
            [str(CLUSTER), "status", "--state-dir", str(layout.root)],
            capture_output=True,
            text=True,
            timeout=STATUS_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"`hack/cluster status` of {layout.root} took over {STATUS_TIMEOUT_S:.0f}s"
    if status.returncode != 0:
        down = [
            line.split()[0]
            for line in status.stdout.splitlines()
            if line[24:].startswith(("stopped", "running, not healthy"))
        ]
        return (
            f"the real-node cluster at {layout.root} is not healthy ({', '.join(down)}): "
            "run `hack/cluster up` to restart what stopped, or `hack/cluster down`"
        )
    return None


@pytest.fixture(scope="session")
def real_node(
    toolchain_bin: Path,  # noqa: ARG001 (requested for its effect: the tools on PATH)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RealNode]:
    existing = os.environ.get("E2E_KUBECONFIG")
    if existing:
        yield RealNode(Path(existing), None, None, owned=False)
        return
    problem = default_cluster_problem()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    layout = default_layout()
    if layout.node_kind() is NodeKind.REAL:
        yield RealNode(layout.kubeconfig, layout.root, None, owned=False)
        return
    host_before = HostSnapshot.take()
    state_dir = tmp_path_factory.mktemp("real-node")
    try:
        subprocess.run(
            [str(CLUSTER), "up", "--node=real", "--state-dir", str(state_dir)], check=True
        )
        yield RealNode(state_dir / "kubeconfig", state_dir, host_before, owned=True)
    finally:
        # A no-op when a teardown test already took it down.
        subprocess.run([str(CLUSTER), "down", "--state-dir", str(state_dir)], check=True)


@pytest.fixture
def namespace(real_node: RealNode, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, empty namespace named after the test module, deleted afterwards."""
    topic = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    name = f"e2e-{topic}-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(real_node.api())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture
def installation_namespace(real_node: RealNode) -> Iterator[str]:
    """A name for an installation of the operator with `pulumi up` of infra/; what
    `pulumi destroy` keeps (and a failed test left) is removed afterwards, and the CRDs
    too when the test created them."""
    namespace = f"mysql-operator-{uuid.uuid4().hex[:8]}"
    api = real_node.api()
    crd_existed = crd_exists(api)
    yield namespace
    remove_installation(api, namespace, crd=not crd_existed)


@pytest.fixture(scope="session")
def reconciler_image(real_node: RealNode) -> str:
    """The reconciler image's reference; built (or taken from the cache) and imported
    into the node. Jobs of instances with spec.backup.s3 run it too."""
    if real_node.state_dir is None:
        given = os.environ.get("E2E_RECONCILER_IMAGE")
        if not given:
            pytest.fail("E2E_KUBECONFIG needs E2E_RECONCILER_IMAGE: an image the node has")
        return given
    socket = Layout(real_node.state_dir).containerd_socket
    built = subprocess.run(
        [str(IMAGES_BUILD), "--import", str(socket), "reconciler"],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return built.stdout.split()[0]
