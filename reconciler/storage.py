"""Growing the claims (pure). `spec.storage_size` and `spec.backup.storage_size` may grow
(the CRD refuses a shrink). A claim can grow only when it is bound, was provisioned by
a StorageClass, and that class has `allowVolumeExpansion`; anything else is refused by
the API server, so the operator says so first, naming the field and the class or volume
(StorageNotExpandable), and never asks: its `up`s declare the claims at the sizes they
have, so other changes still apply and the server keeps running.

Once the `up` has asked for more, the claim's own status tells how far the resize is:
the volume grows (Resizing, StorageResizing), then its file system, on the node, at the
next mount (FileSystemResizePending, StorageResizePending); the instance is Ready again
when the claim's capacity covers the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from reconciler.actions import Notice, Stall, Wait
from reconciler.conditions import ConditionType, Reason, find
from reconciler.live import ClaimState
from reconciler.names import names_for
from reconciler.observation import Observation
from reconciler.spec import Instance, quantity_value
from reconciler.status import VolumeRecord

# Claims are watched; this is a fallback while a resize is under way.
RESIZE_POLL_S: Final = 10.0
RESIZE_INFEASIBLE: Final = ("ControllerResizeInfeasible", "NodeResizeInfeasible")


@dataclass(frozen=True)
class ClaimSize:
    """One claim, the spec field that sizes it, and how it found its volume."""

    field: str
    size: str  # what the spec asks for
    claim: ClaimState | None
    static_volume: str | None  # the hostPath volume the operator made for it
    record: VolumeRecord | None


def claim_sizes(observation: Observation, instance: Instance) -> tuple[ClaimSize, ClaimSize]:
    spec, live = instance.spec, observation.live
    names = names_for(instance)
    volumes = observation.parsed_object.status.volumes
    return (
        ClaimSize(
            "spec.storage_size",
            spec.storage_size,
            live.data_claim,
            names.data_volume if spec.host_path is not None else None,
            volumes.data if volumes is not None else None,
        ),
        ClaimSize(
            "spec.backup.storage_size",
            spec.backup.storage_size,
            live.backup_claim,
            names.backup_volume if spec.backup.host_path is not None else None,
            volumes.backup if volumes is not None else None,
        ),
    )


def grows(requested: str | None, size: str) -> bool:
    """Whether `size` is more than the claim asks for now."""
    return requested is not None and quantity_value(size) > quantity_value(requested)


RECREATE: Final = (
    "delete and re-create the instance: its final backup is restored into new claims of "
    "the new size"
)


def resizing_claim(claim: ClaimState | None) -> bool:
    """A bound claim whose volume has less than the claim asks for: a resize under way."""
    return (
        claim is not None
        and claim.bound
        and claim.capacity is not None
        and claim.requested is not None
        and grows(claim.capacity, claim.requested)
    )


def growth_problem(observation: Observation, instance: Instance) -> Stall | None:
    """Why a claim the spec grew cannot grow, before an `up` asks the API server; None
    when every growth can be applied (or there is none). The spec cannot shrink back
    (the CRD refuses it), so the instance goes on with its claims' sizes (as_claimed)
    and reports this instead of Ready."""
    for found in claim_sizes(observation, instance):
        claim = found.claim
        if claim is None or not grows(claim.requested, found.size):
            continue
        why = _not_expandable(found, claim, dict(observation.live.volume_expansion))
        if why is not None:
            remedy = RECREATE
            if claim.storage_class and why.endswith("allowVolumeExpansion"):
                remedy = (
                    "an administrator can set allowVolumeExpansion on StorageClass "
                    f"{claim.storage_class}, or {RECREATE}"
                )
            return Stall(
                Reason.STORAGE_NOT_EXPANDABLE,
                f"{found.field}: {found.size} asks claim {claim.name} to grow from "
                f"{claim.requested}, but {why}. The claims keep their size, other changes "
                f"still apply, and the server keeps running; for more space, {remedy}",
            )
    return None


def _not_expandable(
    found: ClaimSize, claim: ClaimState, expansion: Mapping[str, bool | None]
) -> str | None:
    if not claim.bound:
        return "it is not bound yet, and only a bound claim can grow"
    if found.static_volume is not None:
        return f"it is bound to the static hostPath volume {found.static_volume}, which cannot grow"
    if found.record is not None and found.record.adopted_volume is not None:
        return (
            f"it is bound to volume {found.record.adopted_volume}, kept from an earlier "
            "lifetime, whose size the operator does not change"
        )
    if not claim.storage_class:
        return "it has no StorageClass, and only a provisioned claim can grow"
    allowed = expansion.get(claim.storage_class)
    if allowed is None:
        return f"its StorageClass {claim.storage_class} does not exist"
    if not allowed:
        return f"its StorageClass {claim.storage_class} does not set allowVolumeExpansion"
    return None


def classes_to_read(observation: Observation, instance: Instance) -> tuple[str, ...]:
    """The StorageClasses whose allowVolumeExpansion a pending growth depends on."""
    return tuple(
        sorted(
            {
                found.claim.storage_class
                for found in claim_sizes(observation, instance)
                if found.claim is not None
                and found.claim.storage_class
                and grows(found.claim.requested, found.size)
            }
        )
    )


def resize_progress(observation: Observation, instance: Instance) -> Wait | Stall | None:
    """A resize the claims show under way (Wait), one the cluster cannot do (Stall), or
    None when every bound claim's capacity covers what it asks for."""
    for found in claim_sizes(observation, instance):
        claim = found.claim
        if claim is None or not resizing_claim(claim):
            continue
        event = observation.live.resize_event
        told = claim.resize_message or (event[1] if event and event[0] == claim.name else None)
        said = f": {told}" if told else ""
        if claim.resize_status in RESIZE_INFEASIBLE:
            return Stall(
                Reason.STORAGE_NOT_EXPANDABLE,
                f"{found.field}: the storage driver cannot grow claim {claim.name} to "
                f"{claim.requested} ({claim.resize_status}){said}",
            )
        if claim.resize_condition == "FileSystemResizePending":
            return Wait(
                Reason.STORAGE_RESIZE_PENDING,
                f"{found.field}: the volume of claim {claim.name} has grown to "
                f"{claim.requested}; its file system grows when the node mounts it again{said}",
                RESIZE_POLL_S,
            )
        return Wait(
            Reason.STORAGE_RESIZING,
            f"{found.field}: claim {claim.name} is growing from {claim.capacity} to "
            f"{claim.requested}{said}",
            RESIZE_POLL_S,
        )
    return None


RESIZING_REASONS: Final = frozenset({Reason.STORAGE_RESIZING, Reason.STORAGE_RESIZE_PENDING})


def resized_notice(observation: Observation, instance: Instance) -> Notice | None:
    """The Event of a resize that has just ended: Ready was False for it until now."""
    ready = find(observation.parsed_object.status.conditions, ConditionType.READY)
    if ready is None or ready.reason not in RESIZING_REASONS:
        return None
    grown = ", ".join(
        f"claim {found.claim.name} has {found.claim.capacity} ({found.field})"
        for found in claim_sizes(observation, instance)
        if found.claim is not None and found.claim.capacity is not None
    )
    return Notice("StorageResized", grown or "the claims have grown")


def as_claimed(observation: Observation, instance: Instance, *, every: bool = False) -> Instance:
    """`instance` with the size its claim asks for now wherever the spec asks for more
    than the cluster allows (`every`: for any growth; a teardown never resizes, since a
    growth the cluster refuses would fail the `up` that takes the final backup)."""
    expansion = dict(observation.live.volume_expansion)
    sizes: list[str] = []
    for found in claim_sizes(observation, instance):
        claim = found.claim
        keep = (
            claim is not None
            and claim.requested is not None
            and grows(claim.requested, found.size)
            and (every or _not_expandable(found, claim, expansion) is not None)
        )
        sizes.append(claim.requested if keep and claim and claim.requested else found.size)
    spec = instance.spec
    storage_size, backup_size = sizes
    if (storage_size, backup_size) == (spec.storage_size, spec.backup.storage_size):
        return instance
    return replace(
        instance,
        spec=replace(
            spec, storage_size=storage_size, backup=replace(spec.backup, storage_size=backup_size)
        ),
    )


def serving_despite(action: object) -> bool:
    """The step is about storage only (a refused growth, or a resize under way, which can
    last until the next mount), or a password change that failed (the server keeps the
    password it had, which the Jobs use), and lifecycle reports it only once the server is
    ready: it serves, so requested and scheduled backups go on."""
    if isinstance(action, Stall):
        return action.reason in (Reason.STORAGE_NOT_EXPANDABLE, Reason.PASSWORD_ROTATION_FAILED)
    return isinstance(action, Wait) and action.reason in RESIZING_REASONS
