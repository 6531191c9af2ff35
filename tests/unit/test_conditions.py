"""The condition setters: closed reasons, polarity, and stable lastTransitionTime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from reconciler.conditions import (
    Condition,
    ConditionType,
    Reason,
    Status,
    find,
    is_true,
    mark_ready,
    mark_reconciling,
    mark_stalled,
    parse_conditions,
    remove_condition,
    set_condition,
    timestamp,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def types(conditions: tuple[Condition, ...]) -> list[str]:
    return [c.type.value for c in conditions]


def test_ready_clears_reconciling_and_stalled() -> None:
    conditions = mark_stalled((), Reason.SPEC_INVALID, "spec.image: bad", generation=1, now=T0)
    conditions = mark_reconciling(conditions, Reason.PROCESSING, "go", generation=2, now=T0)
    conditions = mark_ready(conditions, "done", generation=2, now=T1)
    assert types(conditions) == ["Ready"]
    ready = find(conditions, ConditionType.READY)
    assert ready is not None
    assert (ready.status, ready.reason, ready.observed_generation) == (
        Status.TRUE,
        Reason.UP_TO_DATE,
        2,
    )


def test_stalled_sets_ready_false_with_the_same_reason_and_clears_reconciling() -> None:
    conditions = mark_reconciling((), Reason.PROCESSING, "go", generation=1, now=T0)
    conditions = mark_stalled(
        conditions, Reason.SECRET_MISSING, "Secret 'x' not found", generation=1, now=T1
    )
    assert types(conditions) == ["Ready", "Stalled"]
    ready = find(conditions, ConditionType.READY)
    assert ready is not None
    assert (ready.status, ready.reason, ready.message) == (
        Status.FALSE,
        Reason.SECRET_MISSING,
        "Secret 'x' not found",
    )


def test_reconciling_clears_stalled() -> None:
    conditions = mark_stalled((), Reason.JOB_FAILED, "job failed", generation=3, now=T0)
    conditions = mark_reconciling(conditions, Reason.RETRY, "again", generation=3, now=T1)
    assert types(conditions) == ["Ready", "Reconciling"]


def test_transition_time_moves_only_when_status_changes() -> None:
    first = set_condition(
        (), ConditionType.READY, Status.FALSE, Reason.PROCESSING, "a", generation=1, now=T0
    )
    same_status = set_condition(
        first, ConditionType.READY, Status.FALSE, Reason.RETRY, "b", generation=2, now=T1
    )
    (condition,) = same_status
    assert condition.last_transition_time == "2026-01-01T12:00:00Z"
    assert (condition.reason, condition.message, condition.observed_generation) == (
        Reason.RETRY,
        "b",
        2,
    )
    flipped = set_condition(
        same_status, ConditionType.READY, Status.TRUE, Reason.UP_TO_DATE, "c", generation=2, now=T1
    )
    assert flipped[0].last_transition_time == "2026-01-01T12:05:00Z"


def test_job_conditions_sit_beside_ready_in_a_fixed_order() -> None:
    conditions = set_condition(
        (),
        ConditionType.BACKUP_READY,
        Status.UNKNOWN,
        Reason.BACKUP_RUNNING,
        "1",
        generation=1,
        now=T0,
    )
    conditions = set_condition(
        conditions,
        ConditionType.RESTORED,
        Status.TRUE,
        Reason.RESTORE_SUCCEEDED,
        "ok",
        generation=1,
        now=T0,
    )
    conditions = mark_reconciling(conditions, Reason.BACKING_UP, "b", generation=1, now=T0)
    assert types(conditions) == ["Ready", "Reconciling", "Restored", "BackupReady"]


def test_ready_leaves_the_job_conditions_alone() -> None:
    conditions = set_condition(
        (),
        ConditionType.RESTORED,
        Status.TRUE,
        Reason.RESTORE_SUCCEEDED,
        "ok",
        generation=1,
        now=T0,
    )
    conditions = mark_ready(conditions, "done", generation=1, now=T1)
    assert is_true(conditions, ConditionType.RESTORED)
    assert is_true(conditions, ConditionType.READY)


def test_remove_condition_removes_only_that_type() -> None:
    conditions = mark_stalled((), Reason.SPEC_INVALID, "x", generation=1, now=T0)
    assert types(remove_condition(conditions, ConditionType.STALLED)) == ["Ready"]
    assert remove_condition(conditions, ConditionType.RESTORED) == conditions


def test_round_trip_through_the_api_representation() -> None:
    conditions = mark_stalled((), Reason.AMBIGUOUS_VOLUMES, "pv-a, pv-b", generation=4, now=T0)
    raw = [c.to_dict() for c in conditions]
    assert raw[0] == {
        "type": "Ready",
        "status": "False",
        "reason": "AmbiguousRetainedVolumes",
        "message": "pv-a, pv-b",
        "observedGeneration": 4,
        "lastTransitionTime": "2026-01-01T12:00:00Z",
    }
    assert parse_conditions(raw) == conditions


def test_reasons_carry_no_condition_prefix() -> None:
    # kubectl shows the reason beside the condition's type; the type is not repeated.
    for reason in Reason:
        assert not reason.value.startswith(("Stalled", "Reconciling")), reason
    assert Reason.RETRY.value == "Retrying"
    assert Reason.SPEC_INVALID.value == "SpecInvalid"
    assert Reason.BACKUP_FAILED.value == "BackupFailed"


def test_reason_values_are_unique() -> None:
    values = [reason.value for reason in Reason]
    assert len(values) == len(set(values))


def test_timestamps_are_utc_seconds() -> None:
    local = T0.astimezone(timezone(timedelta(hours=3)))
    assert timestamp(local) == "2026-01-01T12:00:00Z"


def test_unknown_entries_are_dropped_when_parsing() -> None:
    raw = [
        {"type": "Ready", "status": "True", "reason": "UpToDate"},
        {"type": "SomethingElse", "status": "True", "reason": "X"},
        "garbage",
    ]
    assert types(parse_conditions(raw)) == ["Ready"]
    assert parse_conditions(None) == ()
