"""The local cluster's default StorageClass provisions volumes as users' clusters do: a
claim that names no class gets `standard`, waits for its first consumer, binds once a pod
uses it, and its volume (reclaim Delete) goes with it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kubernetes import client
from localcluster import storage
from localcluster.layout import Layout

from tests.e2e.conftest import RealNode
from tests.support import eventually, read_or_none

pytestmark = pytest.mark.e2e

IMAGE = "localhost/mysql-operator/mariadb:10.11"
TIMEOUT_S = 180.0


def claim(name: str) -> client.V1PersistentVolumeClaim:
    return client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "64Mi"}),
        ),
    )


def writer_pod(claim_name: str, text: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="writer"),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[
                client.V1Container(
                    name="writer",
                    image=IMAGE,
                    image_pull_policy="Never",
                    command=["sh", "-c", f"echo {text} > /data/proof && cat /data/proof"],
                    volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")],
                )
            ],
            volumes=[
                client.V1Volume(
                    name="data",
                    persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
                        claim_name=claim_name
                    ),
                )
            ],
        ),
    )


def test_default_class_binds_on_first_consumer_and_deletes_with_the_claim(
    real_node: RealNode, namespace: str
) -> None:
    api = real_node.api()
    core, storage_api = client.CoreV1Api(api), client.StorageV1Api(api)

    defaults = [
        c
        for c in storage_api.list_storage_class().items
        if (c.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class")
        == "true"
    ]
    assert [c.metadata.name for c in defaults] == [storage.STORAGE_CLASS]
    (default,) = defaults
    assert default.provisioner == storage.PROVISIONER
    assert default.volume_binding_mode == "WaitForFirstConsumer"
    assert default.reclaim_policy == "Delete"

    created = core.create_namespaced_persistent_volume_claim(namespace, claim("data"))
    assert created.spec.storage_class_name == storage.STORAGE_CLASS, "the default class"
    # No pod uses it yet, so nothing may be provisioned for it.
    pending = core.read_namespaced_persistent_volume_claim("data", namespace)
    assert pending.status.phase == "Pending"
    assert pending.spec.volume_name is None

    text = f"proof-{uuid.uuid4().hex[:8]}"
    core.create_namespaced_pod(namespace, writer_pod("data", text))
    phase = eventually(
        lambda: core.read_namespaced_pod("writer", namespace).status.phase,
        lambda p: p in ("Succeeded", "Failed"),
        timeout_s=TIMEOUT_S,
        interval_s=1,
        what="the writer pod finishing",
    )
    assert phase == "Succeeded", core.read_namespaced_pod_log("writer", namespace)

    bound = core.read_namespaced_persistent_volume_claim("data", namespace)
    assert bound.status.phase == "Bound"
    volume_name = str(bound.spec.volume_name)
    volume = core.read_persistent_volume(volume_name)
    assert volume.spec.persistent_volume_reclaim_policy == "Delete"
    assert volume.spec.storage_class_name == storage.STORAGE_CLASS
    assert volume.spec.claim_ref.name == "data"
    assert volume.spec.claim_ref.namespace == namespace
    host_dir = Path(volume.spec.host_path.path)
    if real_node.state_dir is not None:
        # Under the cluster's state, so that `down` removes it.
        assert host_dir.is_relative_to(Layout(real_node.state_dir).provisioned_volumes)
        assert (host_dir / "proof").read_text().strip() == text

    core.delete_namespaced_pod("writer", namespace, grace_period_seconds=0)
    core.delete_namespaced_persistent_volume_claim("data", namespace)
    eventually(
        lambda: read_or_none(lambda: core.read_persistent_volume(volume_name)),
        lambda found: found is None,
        timeout_s=TIMEOUT_S,
        interval_s=1,
        what=f"volume {volume_name} deleted with its claim",
    )
    if real_node.state_dir is not None:
        assert not host_dir.exists(), "reclaim Delete removes the directory too"
