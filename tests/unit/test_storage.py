"""Growing the claims (reconciler/storage.py): a growth the cluster cannot apply stops
before any `up`, naming the field and the class or volume; one it can is an ordinary
update, after which the claim's status says how far the resize is, and its end is said
once."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from reconciler.actions import Deploy, MarkReady, Stall, StartBackup, Wait
from reconciler.backup_objects import BackupObjectState
from reconciler.conditions import Reason
from reconciler.lifecycle import decide_lifecycle
from reconciler.live import claim_state
from reconciler.observation import Live
from reconciler.policy import storage_fields
from reconciler.status import InstanceStatus, JobRecord, VolumeRecord
from reconciler.storage import serving_despite
from reconciler.teardown import decide_teardown
from reconciler.transitions import Moment, ready, reconciling
from reconciler.vocabulary import Stage
from tests.unit.builders import (
    BACKUP_CLAIM,
    BACKUP_JOB_1,
    DATA_CLAIM,
    NAME,
    NOW,
    UID,
    claim,
    instance,
    mysql_object,
    observe,
    serving_live,
    synced_status,
)
from tests.unit.test_lifecycle import SERVING
from tests.unit.test_requested_backups import request, with_requests

pytestmark = pytest.mark.unit


def grown_claim(
    *, size: str = "1Gi", capacity: str | None = "1Gi", condition: str | None = None, **kw: Any
) -> dict[str, Any]:
    raw = claim(size=size, **kw)
    raw["status"]["capacity"] = {"storage": capacity} if capacity else None
    if condition is not None:
        raw["status"]["conditions"] = [
            {"type": condition, "status": "True", "message": "waiting for the node"}
        ]
    return raw


def decide(
    status: InstanceStatus = SERVING,
    *,
    live: Live | None = None,
    expansion: tuple[tuple[str, bool | None], ...] = (),
    **spec: Any,
) -> Any:
    live = replace(live or serving_live(), volume_expansion=expansion)
    return decide_lifecycle(
        observe(mysql_object(status=status, **spec), live=live, host_path_root="/srv")
    )


def grown(data_claim: dict[str, Any]) -> Live:
    """After the `up` that grew spec.storage_size to 2Gi: the backup claim, whose size
    follows it, has grown already; the data claim is as given."""
    backup = grown_claim(name=BACKUP_CLAIM, volume="pv-backup", size="2Gi", capacity="2Gi")
    return serving_live(data_claim=data_claim, backup_claim=backup)


def test_the_claim_fields_parse_from_the_api() -> None:
    parsed = claim_state(grown_claim(size="2Gi", capacity="1Gi", condition="Resizing"))
    assert (parsed.storage_class, parsed.requested, parsed.capacity) == ("standard", "2Gi", "1Gi")
    assert (parsed.resize_condition, parsed.resize_message) == ("Resizing", "waiting for the node")


@pytest.mark.parametrize(
    ("expansion", "why"),
    [
        ((("standard", False),), "its StorageClass standard does not set allowVolumeExpansion"),
        ((("standard", None),), "its StorageClass standard does not exist"),
    ],
)
def test_a_class_that_cannot_grow_stalls_before_any_up(
    expansion: tuple[tuple[str, bool | None], ...], why: str
) -> None:
    action = decide(storage_size="2Gi", expansion=expansion)
    assert isinstance(action, Stall)
    assert action.reason is Reason.STORAGE_NOT_EXPANDABLE
    assert action.message.startswith(
        f"spec.storage_size: 2Gi asks claim {DATA_CLAIM} to grow from 1Gi, but {why}. The "
        "claims keep their size, other changes still apply, and the server keeps running; "
        "for more space, "
    )
    assert "delete and re-create the instance" in action.message


def test_a_claim_without_a_class_cannot_grow() -> None:
    live = serving_live(data_claim=claim(storage_class=""))
    action = decide(storage_size="2Gi", live=live)
    assert isinstance(action, Stall)
    assert "it has no StorageClass" in action.message


def test_a_static_host_path_volume_cannot_grow() -> None:
    assert SERVING.volumes is not None
    on_host = {"host_path": "/srv/backups"}
    status = replace(
        SERVING,
        volumes=replace(SERVING.volumes, storage_fields=storage_fields(instance(backup=on_host))),
    )
    status = synced_status(status, Stage.SERVING, backup=on_host)
    live = serving_live(backup_claim=claim(BACKUP_CLAIM, storage_class=""))
    action = decide(status, backup={**on_host, "storage_size": "5Gi"}, live=live)
    assert isinstance(action, Stall), action
    assert isinstance(action, Stall)
    assert action.reason is Reason.STORAGE_NOT_EXPANDABLE
    assert action.message.startswith("spec.backup.storage_size: 5Gi asks claim")
    assert "static hostPath volume shop-mysql-instance-backup" in action.message


def test_an_adopted_volume_keeps_its_size_while_the_other_claim_grows() -> None:
    assert SERVING.volumes is not None
    adopted = replace(
        SERVING,
        volumes=replace(SERVING.volumes, data=VolumeRecord(DATA_CLAIM, adopted_volume="pv-old")),
    )
    adopted = synced_status(adopted, Stage.SERVING)
    expandable = (("standard", True),)
    # The backup claim's size follows storage_size and can grow: that is an update, with
    # the data claim declared at the size it has.
    action = decide(adopted, storage_size="2Gi", expansion=expandable)
    assert isinstance(action, Deploy)
    spec = action.desired.instance.spec
    assert (spec.storage_size, spec.backup.storage_size) == ("1Gi", "2Gi")
    # Once that `up` has run, only the refused growth is left to say.
    grown_backup = grown_claim(name=BACKUP_CLAIM, volume="pv-backup", size="2Gi", capacity="2Gi")
    after = replace(adopted, inputs_fingerprint=action.fingerprint)
    refused = decide(
        after,
        live=serving_live(backup_claim=grown_backup),
        storage_size="2Gi",
        expansion=expandable,
    )
    assert isinstance(refused, Stall)
    assert "bound to volume pv-old, kept from an earlier lifetime" in refused.message


def test_a_growth_is_never_sent_for_an_unbound_claim() -> None:
    live = serving_live(data_claim=claim(phase="Pending", volume=None))
    action = decide(storage_size="2Gi", live=live, expansion=(("standard", True),))
    # The bound backup claim grows; the data claim is declared as it is.
    assert isinstance(action, Deploy)
    spec = action.desired.instance.spec
    assert (spec.storage_size, spec.backup.storage_size) == ("1Gi", "2Gi")


def test_other_changes_still_apply_at_the_claims_sizes() -> None:
    action = decide(storage_size="2Gi", image="mysql:8.0", expansion=(("standard", False),))
    assert isinstance(action, Deploy)
    spec = action.desired.instance.spec
    assert (spec.image, spec.storage_size, spec.backup.storage_size) == ("mysql:8.0", "1Gi", "1Gi")


def test_a_refused_growth_of_a_serving_instance_lets_backups_run() -> None:
    action = decide(storage_size="2Gi", expansion=(("standard", False),))
    assert isinstance(action, Stall)
    assert serving_despite(action)
    assert not serving_despite(Stall(Reason.SPEC_INVALID, "x"))
    assert serving_despite(Wait(Reason.STORAGE_RESIZE_PENDING, "x", 1.0))
    assert not serving_despite(Wait(Reason.VOLUME_PENDING, "x", 1.0))


def test_a_class_that_grows_makes_it_an_update() -> None:
    action = decide(storage_size="2Gi", expansion=(("standard", True),))
    assert isinstance(action, Deploy)
    assert action.desired.instance.spec.storage_size == "2Gi"


def test_the_same_size_written_otherwise_is_no_growth() -> None:
    assert isinstance(decide(), MarkReady)
    # An ordinary update (the spec's text changed), with no class to read.
    assert isinstance(decide(storage_size="1024Mi"), Deploy)


def synced_grown() -> InstanceStatus:
    """The `up` that asked for 2Gi has run."""
    return synced_status(SERVING, Stage.SERVING, storage_size="2Gi")


@pytest.mark.parametrize(
    ("condition", "reason", "words"),
    [
        (None, Reason.STORAGE_RESIZING, "is growing from 1Gi to 2Gi"),
        ("Resizing", Reason.STORAGE_RESIZING, "is growing from 1Gi to 2Gi: waiting for the node"),
        (
            "FileSystemResizePending",
            Reason.STORAGE_RESIZE_PENDING,
            "has grown to 2Gi; its file system grows when the node mounts it again",
        ),
    ],
)
def test_the_resize_under_way_is_reported_from_the_claim(
    condition: str | None, reason: Reason, words: str
) -> None:
    live = grown(grown_claim(size="2Gi", capacity="1Gi", condition=condition))
    action = decide(synced_grown(), live=live, storage_size="2Gi")
    assert isinstance(action, Wait)
    assert action.reason is reason
    assert words in action.message
    assert action.message.startswith("spec.storage_size: ")


def test_a_resize_the_driver_cannot_do_stalls() -> None:
    raw = grown_claim(size="2Gi", capacity="1Gi")
    raw["status"]["allocatedResourceStatuses"] = {"storage": "ControllerResizeInfeasible"}
    action = decide(synced_grown(), live=grown(raw), storage_size="2Gi")
    assert isinstance(action, Stall)
    assert action.reason is Reason.STORAGE_NOT_EXPANDABLE
    assert "ControllerResizeInfeasible" in action.message


def test_the_end_of_a_resize_is_said_once() -> None:
    live = grown(grown_claim(size="2Gi", capacity="2Gi"))
    resizing = reconciling(synced_grown(), Reason.STORAGE_RESIZING, "growing", Moment(1, NOW))
    action = decide(resizing, live=live, storage_size="2Gi")
    assert isinstance(action, MarkReady)
    assert action.notice is not None
    assert action.notice.reason == "StorageResized"
    assert f"claim {DATA_CLAIM} has 2Gi (spec.storage_size)" in action.notice.message
    already = ready(synced_grown(), "serving", Moment(1, NOW))
    again = decide(already, live=live, storage_size="2Gi")
    assert isinstance(again, MarkReady)
    assert again.notice is None


def test_a_teardown_never_resizes_a_claim() -> None:
    """Grown on a class that cannot grow, then deleted: the final backup's `up` declares
    the claims as they are, so the API server does not refuse it."""
    status = replace(SERVING, final_backup=JobRecord(attempt=1, job=BACKUP_JOB_1))
    obj = mysql_object(deleting=True, status=status, storage_size="2Gi")
    recorded = BackupObjectState(f"{NAME}-20260101120000", UID, "Running", 1)
    action = decide_teardown(observe(obj, live=serving_live(backup_object=recorded)))
    assert isinstance(action, Deploy)
    spec = action.desired.instance.spec
    assert (spec.storage_size, spec.backup.storage_size) == ("1Gi", "1Gi")
    assert action.desired.stage is Stage.FINAL_BACKUP


def test_without_a_condition_the_claims_newest_event_says_what_the_resize_waits_for() -> None:
    live = replace(
        grown(grown_claim(size="2Gi", capacity="1Gi")),
        resize_event=(DATA_CLAIM, "waiting for an external controller to expand this PVC"),
    )
    action = decide(synced_grown(), live=live, storage_size="2Gi")
    assert isinstance(action, Wait)
    assert action.message.endswith(
        "is growing from 1Gi to 2Gi: waiting for an external controller to expand this PVC"
    )


def test_a_backup_asked_for_starts_while_the_claims_grow() -> None:
    """A file system that grows only at the next mount can keep the instance un-Ready for
    long; its server serves, so backups must not wait for that."""
    live = with_requests(grown(grown_claim(size="2Gi", capacity="1Gi")), request())
    action = decide(synced_grown(), live=live, storage_size="2Gi")
    assert isinstance(action, StartBackup)
