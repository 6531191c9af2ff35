"""Helpers shared by the test tiers: polling with explicit deadlines, and test stacks."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from pulumi import automation as auto

T = TypeVar("T")


def eventually(
    probe: Callable[[], T],
    until: Callable[[T], bool],
    *,
    timeout_s: float,
    interval_s: float = 0.5,
    what: str,
) -> T:
    """Calls `probe` until `until(result)` holds, or fails naming `what` and the last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if until(result):
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not true after {timeout_s:.0f}s; last seen {result!r}")
        time.sleep(interval_s)


TEST_PASSPHRASE = "integration-test-only"


def file_backend_stack(
    work_dir: Path, project: str, stack_name: str, program: Callable[[], None]
) -> auto.Stack:
    """Selects an inline-program stack whose state lives in work_dir/state, with the
    passphrase secrets provider: the engine for real, and nothing outside the test's dir."""
    backend = work_dir / "state"
    backend.mkdir(exist_ok=True)
    return auto.create_or_select_stack(
        stack_name=stack_name,
        project_name=project,
        program=program,
        opts=auto.LocalWorkspaceOptions(
            work_dir=str(work_dir),
            project_settings=auto.ProjectSettings(
                name=project,
                runtime="python",
                backend=auto.ProjectBackend(url=f"file://{backend}"),
            ),
            secrets_provider="passphrase",
            env_vars={
                "PULUMI_CONFIG_PASSPHRASE": TEST_PASSPHRASE,
                "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            },
        ),
    )


def api_client_for(kubeconfig: Path) -> client.ApiClient:
    """A kubernetes client for one kubeconfig, leaving the process-wide default alone."""
    api: client.ApiClient = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    return api


def read_or_none(read: Callable[[], Any]) -> Any | None:
    """The result of a read, or None where the API server says 404."""
    try:
        return read()
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def delete_namespace_and_volumes(core: client.CoreV1Api, namespace: str, timeout_s: float) -> None:
    """Deletes a test namespace, waits until it is gone, then deletes the cluster-scoped
    volumes reserved for claims in it (retained volumes outlive their namespace)."""
    read_or_none(lambda: core.delete_namespace(namespace))
    eventually(
        lambda: read_or_none(lambda: core.read_namespace(namespace)),
        lambda found: found is None,
        timeout_s=timeout_s,
        what=f"namespace {namespace} deleted",
    )
    for volume in core.list_persistent_volume().items:
        ref = volume.spec.claim_ref
        if ref is not None and ref.namespace == namespace:
            read_or_none(partial(core.delete_persistent_volume, str(volume.metadata.name)))
