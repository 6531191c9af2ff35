"""The holder's side of leader election, with a gateway that answers from memory: it
gives up once, when another holder appears or when its deadline passes, even while a
renewal hangs."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, cast

import pytest

from reconciler.kube import Conflict, Gateway
from reconciler.leader import Elector

pytestmark = pytest.mark.unit


class MemoryLeases:
    """One Lease, versioned like the API server's, behind the gateway's three calls."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.hang = threading.Event()  # set: every call blocks until released
        self.release = threading.Event()

    def _maybe_hang(self) -> None:
        if self.hang.is_set():
            self.release.wait(30)

    def get_lease(self, _namespace: str, _name: str) -> Mapping[str, Any] | None:
        self._maybe_hang()
        return None if self.lease is None else dict(self.lease)

    def create_lease(self, _namespace: str, manifest: Mapping[str, Any]) -> bool:
        if self.lease is not None:
            return False
        self._store(manifest)
        return True

    def replace_lease(self, _namespace: str, _name: str, manifest: Mapping[str, Any]) -> None:
        self._maybe_hang()
        assert self.lease is not None
        if manifest["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise Conflict("changed")
        self._store(manifest)

    def _store(self, manifest: Mapping[str, Any]) -> None:
        self.version += 1
        self.lease = {
            "metadata": {"name": "lease", "resourceVersion": str(self.version)},
            "spec": dict(manifest["spec"]),
        }


def elector(leases: MemoryLeases, identity: str) -> Elector:
    return Elector(
        cast(Gateway, leases),
        "ops",
        "lease",
        identity,
        duration_s=3,
        renew_deadline_s=1.0,
        retry_period_s=0.05,
    )


def test_the_holder_gives_up_once_when_another_holds_the_lease() -> None:
    leases = MemoryLeases()
    holder = elector(leases, "a")
    assert holder.try_once()
    assert holder.leading()
    lost: list[str] = []
    done = threading.Event()
    renewing = holder.keep(done, lost.append)
    # Someone else wrote the Lease (a takeover after a pause of this process).
    assert leases.lease is not None
    leases.replace_lease("ops", "lease", {**leases.lease, "spec": {"holderIdentity": "b"}})
    renewing.join(timeout=5)
    done.set()
    assert lost == ["Lease ops/lease is now held by b"]


def test_a_renewal_that_hangs_cannot_keep_the_holder_leading() -> None:
    leases = MemoryLeases()
    holder = elector(leases, "a")
    assert holder.try_once()
    lost: list[str] = []
    said = threading.Event()
    done = threading.Event()
    leases.hang.set()

    def on_lost(reason: str) -> None:
        lost.append(reason)
        said.set()

    holder.keep(done, on_lost)
    try:
        assert said.wait(5), "the deadline did not fire while the renewal hung"
    finally:
        done.set()
        leases.release.set()
    assert lost == ["Lease ops/lease not renewed for 1s"]
    assert not holder.leading()


def test_the_renew_deadline_must_be_shorter_than_the_lease() -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        Elector(
            cast(Gateway, MemoryLeases()), "ops", "lease", "a", duration_s=5, renew_deadline_s=5
        )
