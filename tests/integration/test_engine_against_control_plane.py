"""The real Pulumi engine and the real Kubernetes provider against the local API server.

One inline Automation API stack goes through up, preview, up and destroy, and every step
is checked in the API server with the kubernetes client, never through Pulumi's own view.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pytest
from kubernetes import client
from pulumi import automation as auto

from tests.support import eventually, file_backend_stack, read_or_none

pytestmark = pytest.mark.integration

PROVIDER_RELEASE = "4.25.0"


def web_program(namespace: str, kubeconfig: Path, replicas: int) -> Callable[[], None]:
    def program() -> None:
        provider = k8s.Provider("local", kubeconfig=str(kubeconfig))
        opts = pulumi.ResourceOptions(provider=provider)
        ns = k8s.core.v1.Namespace(
            "ns", metadata=k8s.meta.v1.ObjectMetaArgs(name=namespace), opts=opts
        )
        scoped = pulumi.ResourceOptions(provider=provider, depends_on=[ns])
        k8s.core.v1.ConfigMap(
            "settings",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="settings", namespace=namespace),
            data={"greeting": "hello"},
            opts=scoped,
        )
        labels = {"app": "web"}
        k8s.apps.v1.Deployment(
            "web",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="web", namespace=namespace),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        containers=[k8s.core.v1.ContainerArgs(name="web", image="local/web:1")]
                    ),
                ),
            ),
            opts=scoped,
        )

    return program


@pytest.fixture
def stack_factory(
    tmp_path: Path, kubeconfig: Path, namespace_name: str
) -> Iterator[Callable[[int], auto.Stack]]:
    """Selects one stack (file backend, passphrase secrets) with a program for N replicas."""
    created: list[auto.Stack] = []

    def make(replicas: int) -> auto.Stack:
        stack = file_backend_stack(
            tmp_path, "toolchain-it", "it", web_program(namespace_name, kubeconfig, replicas)
        )
        created.append(stack)
        return stack

    yield make
    # A failed assertion must not leave the namespace behind for the next test.
    if created:
        created[-1].destroy(on_output=lambda _line: None)


def test_up_preview_update_destroy(
    stack_factory: Callable[[int], auto.Stack], api_client: client.ApiClient, namespace_name: str
) -> None:
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)

    # 1. up: the objects exist and the Deployment is ready.
    up = stack_factory(1).up(on_output=lambda _line: None)
    assert up.summary.result == "succeeded"
    assert up.summary.resource_changes == {"create": 5}
    assert core.read_namespace(namespace_name).status.phase == "Active"
    assert core.read_namespaced_config_map("settings", namespace_name).data == {"greeting": "hello"}
    deployment = apps.read_namespaced_deployment("web", namespace_name)
    assert deployment.spec.replicas == 1
    assert deployment.status.ready_replicas == 1

    # The engine used the plugin built at the pinned release, not some other provider.
    state = stack_factory(1).export_stack().deployment
    assert state is not None
    providers = [r for r in state["resources"] if r["type"] == "pulumi:providers:kubernetes"]
    assert [p["outputs"]["version"] for p in providers] == [PROVIDER_RELEASE]

    # 2. preview a change: exactly one update, to replicas, and nothing applied yet.
    diff_lines: list[str] = []
    preview = stack_factory(2).preview(diff=True, on_output=diff_lines.append)
    assert preview.change_summary == {"same": 4, "update": 1}
    diff = "\n".join(diff_lines)
    assert "replicas" in diff
    assert "1 => 2" in diff
    assert apps.read_namespaced_deployment("web", namespace_name).spec.replicas == 1

    # 3. update: the API server holds the new spec and both replicas become ready.
    update = stack_factory(2).up(on_output=lambda _line: None)
    assert update.summary.resource_changes == {"same": 4, "update": 1}
    deployment = apps.read_namespaced_deployment("web", namespace_name)
    assert deployment.spec.replicas == 2
    assert deployment.status.ready_replicas == 2
    pods = core.list_namespaced_pod(namespace_name, label_selector="app=web").items
    assert len([p for p in pods if p.status.phase == "Running"]) == 2

    # 4. destroy: everything is gone from the API server.
    destroy = stack_factory(2).destroy(on_output=lambda _line: None)
    assert destroy.summary.resource_changes == {"delete": 5}
    assert read_or_none(lambda: apps.read_namespaced_deployment("web", namespace_name)) is None
    eventually(
        lambda: read_or_none(lambda: core.read_namespace(namespace_name)),
        lambda ns: ns is None,
        timeout_s=60,
        what=f"namespace {namespace_name} deleted",
    )
    state_after = json.dumps(stack_factory(2).export_stack().deployment)
    assert namespace_name not in state_after
