"""The status the reconciler owns: it survives the round trip through a status patch,
since every record in it (volumes, restore, final backup) is what a restarted reconciler
resumes from; and junk written by hand or by an older version parses to defaults."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.conditions import (
    ConditionType,
    Reason,
    Status,
    mark_reconciling,
    set_condition,
)
from reconciler.status import (
    Endpoint,
    InstanceStatus,
    JobPhase,
    JobRecord,
    UpdateRecord,
    VolumeRecord,
    Volumes,
    parse_status,
)
from tests.unit.builders import NOW, TOOLCHAIN

pytestmark = pytest.mark.unit

FULL = InstanceStatus(
    observed_generation=3,
    conditions=set_condition(
        mark_reconciling((), Reason.BACKING_UP, "final backup", generation=3, now=NOW),
        ConditionType.BACKUP_READY,
        Status.UNKNOWN,
        Reason.BACKUP_RUNNING,
        "attempt 2",
        generation=3,
        now=NOW,
    ),
    inputs_fingerprint="sha256:" + "ab" * 32,
    toolchain=TOOLCHAIN,
    last_update=UpdateRecord(
        "update-1767268800", "update", "final-backup", "succeeded", {"create": 1, "update": 2}
    ),
    endpoint=Endpoint("mysql-instance.shop.svc.cluster.local", 3306),
    stack="shop.mysql-instance",
    volumes=Volumes(
        data=VolumeRecord(
            "mysql-instance-data",
            adopted_volume="pv-old",
            storage_class="",
            size="2Gi",
            adopted_from="uid-0",
        ),
        backup=VolumeRecord("mysql-instance-backup", preexisting=True),
        storage_fields={"spec.storage_class": None, "spec.host_path": "/mnt/mysql"},
    ),
    restore=JobRecord(
        attempt=1, job="r-1", phase=JobPhase.SUCCEEDED, message="restored dump=d-7 sequence=7"
    ),
    served=True,
    final_backup=JobRecord(
        attempt=2,
        job="b-2",
        phase=JobPhase.FAILED,
        message="mysqldump: lost connection",
        reason=Reason.JOB_FAILED.value,
        failed_at="2026-01-01T12:00:00Z",
        retry_token="again",
    ),
)


def round_trip(status: InstanceStatus) -> InstanceStatus:
    return parse_status({"status": status.to_patch()["status"]})


def test_a_full_status_survives_the_round_trip() -> None:
    assert round_trip(FULL) == FULL


def test_an_empty_status_survives_the_round_trip() -> None:
    assert round_trip(InstanceStatus()) == InstanceStatus()


def test_the_patch_removes_what_is_unset() -> None:
    # A merge patch: None deletes, so a record that is gone does not linger.
    patch = InstanceStatus().to_patch()["status"]
    for key in ("inputsFingerprint", "toolchain", "volumes", "restore", "finalBackup"):
        assert key in patch
        assert patch[key] is None
    assert patch["served"] is False


def test_the_patch_uses_the_api_field_names() -> None:
    patch = FULL.to_patch()["status"]
    assert patch["finalBackup"]["failedAt"] == "2026-01-01T12:00:00Z"
    assert patch["finalBackup"]["retryToken"] == "again"
    assert patch["volumes"]["data"]["adoptedVolume"] == "pv-old"
    assert patch["volumes"]["storageFields"] == {
        "spec.storage_class": None,
        "spec.host_path": "/mnt/mysql",
    }
    assert patch["toolchain"] == {
        "pulumiCli": "3.274.1",
        "pulumiSdk": "3.272.0",
        "kubernetesProvider": "4.25.0",
    }


def test_a_missing_or_junk_status_parses_to_defaults() -> None:
    assert parse_status({}) == InstanceStatus()
    assert parse_status({"status": "junk"}) == InstanceStatus()
    junk: dict[str, Any] = {
        "toolchain": "junk",
        "endpoint": 3,
        "volumes": {"data": {"claim": 1}},
        "restore": {"phase": "Exploded"},
        "finalBackup": [],
        "served": "yes",
        "observedGeneration": "3",
    }
    assert parse_status({"status": junk}) == InstanceStatus()


def test_a_job_record_with_a_bad_attempt_starts_at_one() -> None:
    raw = {"status": {"restore": {"phase": "Running", "attempt": 0, "job": "r-1"}}}
    restore = parse_status(raw).restore
    assert restore == JobRecord(attempt=1, job="r-1")


def test_an_older_update_record_reads_its_phase_as_the_stage() -> None:
    raw = {"status": {"lastUpdate": {"id": "7", "kind": "update", "phase": "running"}}}
    last = parse_status(raw).last_update
    assert last is not None
    assert last.stage == "running"


def test_a_job_records_result_fields() -> None:
    assert FULL.restore is not None
    assert FULL.restore.result == {"dump": "d-7", "sequence": "7"}
    assert JobRecord().result == {}


@pytest.mark.parametrize(
    ("record", "carries"),
    [
        (VolumeRecord("c"), False),
        (VolumeRecord("c", adopted_volume="pv"), True),
        (VolumeRecord("c", preexisting=True), True),
    ],
)
def test_a_volume_carries_data_from_before_only_if_adopted_or_preexisting(
    record: VolumeRecord, carries: bool
) -> None:
    assert record.carries_data is carries
