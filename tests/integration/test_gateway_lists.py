"""The gateway's lists against the real API server: page by page with its continue
tokens, each page reduced to what the caller reads."""

from __future__ import annotations

import pytest
from kubernetes import client

from reconciler import kube
from reconciler.kube import Gateway, Kind
from reconciler.vocabulary import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY
from reconciler.watch import OWNED_SELECTOR, listed_fields

pytestmark = pytest.mark.integration


def test_a_list_of_several_pages_returns_every_object_once(
    api_client: client.ApiClient, namespace_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace_name)))
    try:
        names = [f"claim-{number}" for number in range(5)]
        for name in names:
            labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_INSTANCE: name}
            core.create_namespaced_persistent_volume_claim(
                namespace_name,
                client.V1PersistentVolumeClaim(
                    metadata=client.V1ObjectMeta(name=name, labels=labels),
                    spec=client.V1PersistentVolumeClaimSpec(
                        access_modes=["ReadWriteOnce"],
                        resources=client.V1VolumeResourceRequirements(requests={"storage": "1Mi"}),
                        storage_class_name="not-provisioned",
                    ),
                ),
            )
        monkeypatch.setattr(kube, "LIST_PAGE_SIZE", 2)  # 5 claims: 3 pages

        listing = Gateway(api_client).list(
            Kind.CLAIM, namespace_name, OWNED_SELECTOR, keep=listed_fields(Kind.CLAIM)
        )

        assert sorted(item["metadata"]["name"] for item in listing.items) == names
        assert all(set(item) == {"metadata"} for item in listing.items)
        assert all("managedFields" not in item["metadata"] for item in listing.items)
        assert int(listing.resource_version) > 0
    finally:
        core.delete_namespace(namespace_name)
