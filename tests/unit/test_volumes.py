"""The patches the operator applies to an instance's PersistentVolumes, applied here as
the API server would (a JSON merge patch), and which retained volumes may be adopted."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.live import volume_state
from reconciler.names import volume_labels
from reconciler.vocabulary import (
    ANNOTATION_ADOPTED_BY,
    ANNOTATION_INSTANCE_UID,
    ANNOTATION_ORIGINAL_RECLAIM,
    ANNOTATION_RELEASED,
    ANNOTATION_RETAINED_AT,
    ANNOTATION_RETAINED_REASON,
    VolumeRole,
)
from reconciler.volumes import (
    adoption_candidates,
    adoption_patch,
    release_patch,
    retained_patch,
    retention_patch,
)
from tests.unit.builders import (
    DATA_CLAIM,
    NAME,
    NAMESPACE,
    NOW,
    STAMP,
    UID,
    kept_volume,
    left_volume,
    merge_patch,
    volume,
)

pytestmark = pytest.mark.unit


def retention(raw: dict[str, Any], role: VolumeRole = VolumeRole.DATA) -> dict[str, Any] | None:
    """The volume after its retention patch, or None when it needs none."""
    patch = retention_patch(volume_state(raw), NAMESPACE, NAME, role, UID)
    if patch is None:
        return None
    assert patch.volume == raw["metadata"]["name"]
    patched: dict[str, Any] = merge_patch(raw, patch.patch)
    return patched


# -- retention ------------------------------------------------------------------------------


def test_a_provisioned_volume_is_made_retain_and_remembers_its_policy() -> None:
    patched = retention(volume(reclaim="Delete"))
    assert patched is not None
    assert patched["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert patched["metadata"]["annotations"] == {
        ANNOTATION_INSTANCE_UID: UID,
        ANNOTATION_ORIGINAL_RECLAIM: "Delete",
    }


def test_a_retained_volume_says_whose_data_it_holds() -> None:
    patched = retention(volume(), VolumeRole.BACKUP)
    assert patched is not None
    assert patched["metadata"]["labels"] == volume_labels(NAMESPACE, NAME, VolumeRole.BACKUP)
    assert patched["metadata"]["labels"]["otus.homework/volume-role"] == "backup"


def test_a_volume_already_kept_needs_no_patch() -> None:
    assert retention(kept_volume()) is None


def test_a_volume_that_is_retain_but_unlabelled_is_still_patched() -> None:
    patched = retention(volume(reclaim="Retain"))
    assert patched is not None
    assert patched["metadata"]["labels"] == volume_labels(NAMESPACE, NAME, VolumeRole.DATA)
    assert patched["metadata"]["annotations"][ANNOTATION_ORIGINAL_RECLAIM] == "Retain"


def test_someone_setting_delete_again_is_undone() -> None:
    patched = retention(kept_volume(reclaim="Delete"))
    assert patched is not None
    assert patched["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_the_original_policy_is_never_overwritten() -> None:
    # Adopted by a new lifetime: the uid changes, the policy it came with does not.
    adopted = kept_volume(uid="uid-of-the-earlier-lifetime", original="Delete")
    patch = retention_patch(volume_state(adopted), NAMESPACE, NAME, VolumeRole.DATA, UID)
    assert patch is not None
    assert ANNOTATION_ORIGINAL_RECLAIM not in patch.patch["metadata"]["annotations"]
    patched = merge_patch(adopted, patch.patch)
    assert patched["metadata"]["annotations"][ANNOTATION_INSTANCE_UID] == UID
    assert patched["metadata"]["annotations"][ANNOTATION_ORIGINAL_RECLAIM] == "Delete"


def test_retained_records_when_and_why() -> None:
    patch = retained_patch(volume_state(kept_volume()), "namespace shop was deleted", NOW)
    patched = merge_patch(kept_volume(), patch.patch)
    annotations = patched["metadata"]["annotations"]
    assert annotations[ANNOTATION_RETAINED_AT] == STAMP
    assert annotations[ANNOTATION_RETAINED_REASON] == "namespace shop was deleted"
    assert annotations[ANNOTATION_INSTANCE_UID] == UID, "earlier annotations stay"
    assert patched["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert "namespace shop was deleted" in patch.why


# -- release --------------------------------------------------------------------------------


def test_release_restores_the_original_policy_and_marks_the_volume() -> None:
    kept = kept_volume(original="Delete")
    patch = release_patch(volume_state(kept), "its data is in the verified final backup")
    patched = merge_patch(kept, patch.patch)
    assert patched["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert patched["metadata"]["annotations"][ANNOTATION_RELEASED] == (
        "its data is in the verified final backup"
    )
    assert volume_state(patched).released_on_purpose


def test_release_of_a_volume_without_a_recorded_policy_keeps_it() -> None:
    patch = release_patch(volume_state(volume(reclaim="Retain")), "by policy")
    assert patch.patch["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


# -- adoption -------------------------------------------------------------------------------


def names(found: list[Any]) -> list[str]:
    return [v.name for v in found]


def test_released_volumes_are_candidates() -> None:
    found = adoption_candidates([volume_state(left_volume("pv-old"))], NAMESPACE)
    assert names(found) == ["pv-old"]


def test_available_volumes_reserved_for_this_namespace_or_nobody_are_candidates() -> None:
    candidates = [
        left_volume("pv-reserved-here", phase="Available", claim_uid=None),
        left_volume("pv-unreserved", phase="Available", claim_name=None),
        left_volume("pv-reserved-elsewhere", phase="Available", claim_namespace="other"),
    ]
    found = adoption_candidates([volume_state(v) for v in candidates], NAMESPACE)
    assert names(found) == ["pv-reserved-here", "pv-unreserved"]


def test_bound_volumes_are_not_candidates() -> None:
    found = adoption_candidates([volume_state(left_volume("pv-in-use", phase="Bound"))], NAMESPACE)
    assert found == []


def test_volumes_released_on_purpose_are_never_adopted() -> None:
    released = left_volume("pv-dumped", annotations={ANNOTATION_RELEASED: "backed up"})
    assert adoption_candidates([volume_state(released)], NAMESPACE) == []


def test_candidates_come_sorted_by_name() -> None:
    found = adoption_candidates(
        [volume_state(left_volume("pv-b")), volume_state(left_volume("pv-a"))], NAMESPACE
    )
    assert names(found) == ["pv-a", "pv-b"]


def test_adoption_reserves_the_volume_for_the_new_claim() -> None:
    old = left_volume("pv-old")
    patch = adoption_patch(volume_state(old), NAMESPACE, DATA_CLAIM, UID)
    patched = merge_patch(old, patch.patch)
    assert patched["spec"]["claimRef"] == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": NAMESPACE,
        "name": DATA_CLAIM,
    }, "the old claim's uid is gone, so the volume becomes Available to this claim"
    assert patched["metadata"]["annotations"][ANNOTATION_ADOPTED_BY] == UID
    assert patch.volume == "pv-old"


def test_release_of_a_volume_never_made_retain_keeps_its_own_policy() -> None:
    # A provisioned volume released before the operator ever patched it (an instance
    # deleted between its claim binding and the retention step) came with Delete: letting
    # it go on purpose must hand it back to its provisioner, not leave it behind as Retain.
    patch = release_patch(volume_state(volume(reclaim="Delete")), "never served")
    assert patch.patch["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
