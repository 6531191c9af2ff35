"""spec.backup.schedule: which fire makes a MySQLBackup, which is skipped, when the
instance is looked at again, and which scheduled records retention removes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.actions import MarkReady, ScheduleBackup
from reconciler.backup_objects import RequestedBackup, Trigger, scheduled_records_to_prune
from reconciler.lifecycle import decide_lifecycle
from reconciler.policy import storage_fields
from reconciler.spec import SpecError, parse_spec
from reconciler.status import InstanceStatus, VolumeRecord, Volumes
from reconciler.vocabulary import LABEL_TRIGGER, Stage
from tests.unit.builders import (
    BACKUP_CLAIM,
    DATA_CLAIM,
    NAME,
    NOW,
    RESTORED,
    instance,
    mysql_object,
    observe,
    serving_live,
    synced_status,
)

pytestmark = pytest.mark.unit

NIGHTLY = {"storage_size": "1Gi", "schedule": "0 3 * * *", "time_zone": "UTC"}


def serving(last_schedule_time: str | None, **backup: Any) -> InstanceStatus:
    volumes = Volumes(
        data=VolumeRecord(DATA_CLAIM),
        backup=VolumeRecord(BACKUP_CLAIM),
        storage_fields=storage_fields(instance(backup={**NIGHTLY, **backup})),
    )
    status = InstanceStatus(
        volumes=volumes, restore=RESTORED, served=True, last_schedule_time=last_schedule_time
    )
    return synced_status(status, Stage.SERVING, backup={**NIGHTLY, **backup})


def decide(
    last: str | None,
    *,
    now: datetime = NOW,
    requests: tuple[RequestedBackup, ...] = (),
    **backup: Any,
) -> Any:
    obj = mysql_object(status=serving(last, **backup), backup={**NIGHTLY, **backup})
    live = replace(serving_live(), requested_backups=requests)
    return decide_lifecycle(observe(obj, live=live, now=now))


def scheduled(name: str, phase: str | None) -> RequestedBackup:
    return RequestedBackup(name, f"uid-{name}", "", phase, None, None, None, None, Trigger.SCHEDULE)


# NOW is 2026-01-01T12:00:00Z: the nightly fire at 03:00 UTC is 9 hours back.


def test_a_new_schedule_starts_counting_now_without_backfill() -> None:
    action = decide(None)
    assert action == ScheduleBackup("2026-01-01T12:00:00Z", None)


def test_a_fire_since_the_last_makes_one_mysqlbackup_named_after_it() -> None:
    action = decide("2025-12-30T03:00:00Z")  # two fires were missed: only the latest counts
    assert isinstance(action, ScheduleBackup)
    assert action.fire_time == "2026-01-01T03:00:00Z"
    assert action.backup is not None
    assert action.backup.name == f"{NAME}-20260101030000"
    labels = action.backup.manifest["metadata"]["labels"]
    assert labels[LABEL_TRIGGER] == "schedule"
    assert action.backup.manifest["spec"] == {"instance": NAME}
    assert action.notice is not None
    assert not action.notice.warning


def test_a_fire_while_the_last_scheduled_backup_runs_is_skipped_with_a_warning() -> None:
    running = scheduled(f"{NAME}-20251231030000", "Running")
    action = decide("2025-12-31T03:00:00Z", requests=(running,))
    assert isinstance(action, ScheduleBackup)
    assert (action.fire_time, action.backup) == ("2026-01-01T03:00:00Z", None)
    assert action.notice is not None
    assert action.notice.warning
    assert running.name in action.notice.message


def test_a_failed_scheduled_backup_does_not_stop_the_schedule() -> None:
    failed = scheduled(f"{NAME}-20251231030000", "Failed")
    action = decide("2025-12-31T03:00:00Z", requests=(failed,))
    assert isinstance(action, ScheduleBackup)
    assert action.backup is not None


def test_between_fires_a_ready_instance_is_looked_at_again_at_the_next_one() -> None:
    action = decide("2026-01-01T03:00:00Z")
    assert isinstance(action, MarkReady)
    # The next fire is 2026-01-02T03:00Z, 15 hours on; a look at least every hour.
    assert action.requeue_after_s == 3600.0
    soon = decide("2026-01-01T03:00:00Z", now=datetime(2026, 1, 2, 2, 59, 30, tzinfo=UTC))
    assert isinstance(soon, MarkReady)
    assert soon.requeue_after_s == 31.0


def test_the_schedule_is_read_in_its_time_zone() -> None:
    # 03:00 in Tokyo is 18:00 UTC the day before.
    action = decide("2025-12-30T00:00:00Z", time_zone="Asia/Tokyo")
    assert isinstance(action, ScheduleBackup)
    assert action.fire_time == "2025-12-31T18:00:00Z"


@pytest.mark.parametrize(
    ("backup", "field", "fragment"),
    [
        ({"schedule": "every night"}, "spec.backup.schedule", "5 fields"),
        ({"schedule": "0 25 * * *"}, "spec.backup.schedule", "Bad hour"),
        ({"schedule": "0 0 3 * * *"}, "spec.backup.schedule", "5 fields"),
        (
            {"schedule": "0 3 * * *", "time_zone": "Mars/Olympus"},
            "spec.backup.time_zone",
            "unknown",
        ),
    ],
)
def test_a_bad_schedule_is_an_error_naming_the_field(
    backup: dict[str, str], field: str, fragment: str
) -> None:
    spec = {"image": "mysql:5.7", "database": "db", "password": "pw", "storage_size": "1Gi"}
    with pytest.raises(SpecError) as raised:
        parse_spec({**spec, "backup": backup})
    assert raised.value.field_path == field
    assert fragment in str(raised.value)


def record(
    name: str, phase: str, sequence: int | None, created: str, trigger: str = "schedule"
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if sequence is not None:
        status["location"] = f"pvc://db-backup/dump-{sequence:010d}.sql.gz"
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "labels": {LABEL_TRIGGER: trigger},
        },
        "status": status,
    }


def test_retention_keeps_the_newest_scheduled_dumps_and_no_other_kind() -> None:
    items = [
        record("s1", "Succeeded", 1, "2026-01-01T03:00:00Z"),
        record("f1", "Failed", None, "2026-01-01T04:00:00Z"),
        record("m2", "Succeeded", 2, "2026-01-01T05:00:00Z", trigger="manual"),
        record("s3", "Succeeded", 3, "2026-01-02T03:00:00Z"),
        record("s4", "Succeeded", 4, "2026-01-03T03:00:00Z"),
        record("f5", "Failed", None, "2026-01-04T03:00:00Z"),
        record("r6", "Running", None, "2026-01-05T03:00:00Z"),
    ]
    # keep 2: s3 and s4 stay; s1 goes, and the failure before the oldest kept one.
    assert scheduled_records_to_prune(items, 2) == ["f1", "s1"]
    assert scheduled_records_to_prune(items, 5) == []


def test_retention_of_scheduled_dumps_in_s3_follows_their_fire_times() -> None:
    """In a bucket every staged dump is sequence 1; the keys end in the UTC fire time,
    which is what the upload container rotates by, and the records follow the same order."""

    def in_s3(name: str, created: str) -> dict[str, Any]:
        found = record(name, "Succeeded", None, created)
        found["status"]["location"] = f"s3://mysql-backups/p/ns/{NAME}/{name}.sql.gz"
        return found

    items = [
        in_s3(f"{NAME}-20260101030000", "2026-01-01T03:00:01Z"),
        in_s3(f"{NAME}-20260102030000", "2026-01-02T03:00:01Z"),
        in_s3(f"{NAME}-20260103030000", "2026-01-03T03:00:01Z"),
    ]
    assert scheduled_records_to_prune(items, 2) == [f"{NAME}-20260101030000"]
