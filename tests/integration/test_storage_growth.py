"""Growing storage_size on the local kwok cluster, with the real engine and API server.

- On static hostPath volumes (no class) the growth cannot happen: the instance reports
  `Stalled` (StorageNotExpandable) naming the field and the volume, runs no `up` for it,
  and its server keeps running; an image change still applies, with the claims as they
  are.
- On a StorageClass with allowVolumeExpansion, the `up` asks the claims for more (the API
  server's resize admission lets it through), and the status follows the claims: Ready is
  False (StorageResizing) until their capacity covers the request, then True again with a
  StorageResized Event. kwok runs no storage driver, so the test plays the resizer: it
  grows the volumes and the claims' status capacity, as a CSI resizer would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, Final

import pytest
from kubernetes import client

from tests.harness import Harness, condition, harness_in_new_namespace, has_condition
from tests.support import eventually, read_or_none

pytestmark = pytest.mark.integration

NAME: Final = "grows"


@pytest.fixture
def harness(
    api_client: client.ApiClient, kubeconfig: Path, namespace_name: str, tmp_path: Path
) -> Iterator[Harness]:
    with harness_in_new_namespace(api_client, kubeconfig, namespace_name, tmp_path) as harness:
        harness.start()
        yield harness


def test_a_static_volume_cannot_grow_and_the_server_keeps_running(harness: Harness) -> None:
    harness.create(NAME, harness.host_path_spec())
    harness.wait_ready(NAME, generation=1)
    runs = harness.engine_runs(NAME)
    deployment = harness.apps.read_namespaced_deployment(NAME, harness.namespace).metadata.uid

    harness.patch(NAME, {"spec": {"storage_size": "2Gi"}})
    stalled = harness.wait_for(
        NAME, has_condition("Stalled", "True"), "the growth refused", timeout_s=60
    )
    found = condition(stalled, "Stalled") or {}
    assert found["reason"] == "StorageNotExpandable", found
    assert found["message"].startswith(f"spec.storage_size: 2Gi asks claim {NAME}-data"), found
    assert "static hostPath volume" in found["message"], found
    assert found["observedGeneration"] == 2
    assert (condition(stalled, "Ready") or {}).get("reason") == "StorageNotExpandable"
    assert harness.engine_runs(NAME) == runs, "no `up` for a growth the cluster would refuse"
    assert (
        harness.apps.read_namespaced_deployment(NAME, harness.namespace).metadata.uid == deployment
    )

    # The spec cannot shrink back (admission), and nothing else is held up: an image
    # change applies with the claims at the size they have.
    harness.patch(NAME, {"spec": {"image": "mysql:8.0"}})
    eventually(
        lambda: harness.apps.read_namespaced_deployment(NAME, harness.namespace),
        lambda found: found.spec.template.spec.containers[0].image == "mysql:8.0",
        timeout_s=60,
        interval_s=1,
        what="the image change applied",
    )
    still = harness.wait_for(
        NAME,
        lambda found: (condition(found, "Stalled") or {}).get("observedGeneration") == 3,
        "the refused growth still reported",
        timeout_s=60,
    )
    assert (condition(still, "Stalled") or {}).get("reason") == "StorageNotExpandable"
    for claim in (f"{NAME}-data", f"{NAME}-backup"):
        kept = harness.core.read_namespaced_persistent_volume_claim(claim, harness.namespace)
        assert kept.spec.resources.requests["storage"] == "1Gi", claim


@pytest.fixture
def expandable_class(harness: Harness, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A StorageClass that allows expansion but has no provisioner here, and a volume per
    claim made for it (as a provisioner would have): (class, volume names)."""
    storage = client.StorageV1Api(harness.api_client)
    name = f"expandable-{uuid.uuid4().hex[:6]}"
    storage.create_storage_class(
        client.V1StorageClass(
            metadata=client.V1ObjectMeta(name=name),
            provisioner="example.com/none",
            allow_volume_expansion=True,
            reclaim_policy="Delete",
            volume_binding_mode="Immediate",
        )
    )
    volumes = []
    for claim in (f"{NAME}-data", f"{NAME}-backup"):
        volume = f"{harness.namespace}-{claim}"
        harness.core.create_persistent_volume(
            client.V1PersistentVolume(
                metadata=client.V1ObjectMeta(name=volume),
                spec=client.V1PersistentVolumeSpec(
                    capacity={"storage": "1Gi"},
                    access_modes=["ReadWriteOnce"],
                    storage_class_name=name,
                    persistent_volume_reclaim_policy="Delete",
                    host_path=client.V1HostPathVolumeSource(path=str(tmp_path / volume)),
                    claim_ref=client.V1ObjectReference(namespace=harness.namespace, name=claim),
                ),
            )
        )
        volumes.append(volume)
    try:
        yield name, volumes
    finally:
        for volume in volumes:
            read_or_none(partial(harness.core.delete_persistent_volume, volume))
        read_or_none(partial(storage.delete_storage_class, name))


def test_a_class_that_grows_is_followed_until_the_claims_have_grown(
    harness: Harness, expandable_class: tuple[str, list[str]]
) -> None:
    storage_class, volumes = expandable_class
    spec: dict[str, Any] = {
        "image": "mysql:5.7",
        "database": "otus-database",
        "password": "otuspassword",
        "storage_size": "1Gi",
        "storage_class": storage_class,
        "backup": {"storage_class": storage_class},
    }
    harness.create(NAME, spec)
    harness.wait_ready(NAME, generation=1)

    harness.patch(NAME, {"spec": {"storage_size": "2Gi"}})
    resizing = harness.wait_for(
        NAME,
        lambda found: (condition(found, "Ready") or {}).get("reason") == "StorageResizing",
        "the resize reported",
        timeout_s=90,
    )
    ready = condition(resizing, "Ready") or {}
    assert ready["status"] == "False"
    assert "is growing from 1Gi to 2Gi" in ready["message"], ready
    for claim in (f"{NAME}-data", f"{NAME}-backup"):
        found = harness.core.read_namespaced_persistent_volume_claim(claim, harness.namespace)
        assert found.spec.resources.requests["storage"] == "2Gi", claim

    # The resizer's part: the volumes grow, then the claims' status says so.
    for volume in volumes:
        harness.core.patch_persistent_volume(volume, {"spec": {"capacity": {"storage": "2Gi"}}})
    for claim in (f"{NAME}-data", f"{NAME}-backup"):
        harness.core.patch_namespaced_persistent_volume_claim_status(
            claim, harness.namespace, {"status": {"capacity": {"storage": "2Gi"}}}
        )
    harness.wait_ready(NAME, generation=2)
    eventually(
        lambda: [event for event in harness.events(NAME) if event.reason == "StorageResized"],
        lambda found: len(found) == 1,
        timeout_s=30,
        interval_s=1,
        what="one StorageResized Event",
    )
