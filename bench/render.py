"""The Kubernetes objects the reconciler ends up applying for one instance, from the same
pure builders the stack program registers (`reconciler.manifests`): the baseline applies
exactly these, so both sides deploy identical manifests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler import manifests
from reconciler.desired import Desired
from reconciler.spec import Instance
from reconciler.vocabulary import Stage


@dataclass(frozen=True)
class Manifest:
    """One declared Kubernetes object, in declaration order."""

    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        found = self.body["metadata"].get("namespace")
        return str(found) if found else None


def render_manifests(instance: Instance) -> list[Manifest]:
    """What a created instance gets: the restore stage's objects (with its restore Job),
    plus the client Service that serving adds."""
    restoring = manifests.rendered(Desired(instance, Stage.RESTORING))
    service = manifests.client_service(Desired(instance, Stage.SERVING))
    assert service is not None
    return [Manifest(body) for body in [*restoring, service]]
