"""Session fixtures for the test tiers.

The integration and end-to-end tiers need a cluster: the one that KUBECONFIG names, or
else a private control plane that `hack/cluster up` starts for this session alone and
`hack/cluster down` stops when the session ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.support import api_client_for

REPO_ROOT = Path(__file__).resolve().parent.parent
CLUSTER = REPO_ROOT / "hack" / "cluster"
TOOLCHAIN_BUILD = REPO_ROOT / "hack" / "toolchain" / "build"


@pytest.fixture(scope="session")
def toolchain_bin() -> Path:
    """The toolchain's bin dir, built if missing, and put first on PATH for the engine."""
    out = subprocess.run(
        ["bash", str(TOOLCHAIN_BUILD), "--print-bin"], check=True, stdout=subprocess.PIPE, text=True
    )
    bin_dir = Path(out.stdout.strip().splitlines()[-1])
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    os.environ["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "true"
    return bin_dir


@pytest.fixture(scope="session")
def kubeconfig(
    toolchain_bin: Path,  # noqa: ARG001 (requested for its effect: the engine on PATH)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """A kubeconfig for the cluster under test."""
    existing = os.environ.get("KUBECONFIG")
    if existing:
        yield Path(existing)
        return
    state_dir = tmp_path_factory.mktemp("cluster")
    try:
        subprocess.run(
            [str(CLUSTER), "up", "--node=kwok", "--state-dir", str(state_dir)], check=True
        )
        path = state_dir / "kubeconfig"
        # The engine's provider and the kubernetes client both read it from here.
        os.environ["KUBECONFIG"] = str(path)
        yield path
    finally:
        os.environ.pop("KUBECONFIG", None)
        subprocess.run([str(CLUSTER), "down", "--state-dir", str(state_dir)], check=True)


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> client.ApiClient:
    return api_client_for(kubeconfig)


@pytest.fixture
def namespace_name() -> str:
    """A fresh namespace name for one test, so tests never see each other's objects."""
    return f"test-{uuid.uuid4().hex[:10]}"


def pulumi_cli_on_path() -> str:
    found = shutil.which("pulumi")
    if found is None:
        raise RuntimeError("pulumi is not on PATH: the toolchain_bin fixture puts it there")
    return found
