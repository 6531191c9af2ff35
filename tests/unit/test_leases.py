"""The leader election's rules: who writes the Lease, and when a holder counts as gone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.leases import (
    LEASE_DURATION_S,
    LeaseRecord,
    Move,
    Sighting,
    lease_manifest,
    micro_time,
    next_move,
    released_manifest,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 3, 7, 0, 0, 123456, tzinfo=UTC)


def record(holder: str = "other", version: str = "10", duration_s: int = 15) -> LeaseRecord:
    return LeaseRecord(
        holder=holder,
        duration_s=duration_s,
        transitions=4,
        resource_version=version,
        acquired_at="2026-12-03T06:00:00.000000Z",
    )


def test_no_lease_is_created() -> None:
    assert next_move(None, "me", None, 100.0) == (Move.CREATE, None)


def test_the_holder_renews() -> None:
    move, sighting = next_move(record(holder="me"), "me", None, 100.0)
    assert move is Move.RENEW
    assert sighting == Sighting("10", 100.0)


def test_a_released_lease_is_taken_at_once() -> None:
    assert next_move(record(holder=""), "me", None, 100.0)[0] is Move.TAKE


def test_a_candidate_waits_a_whole_duration_from_its_first_sighting() -> None:
    move, first = next_move(record(), "me", None, 100.0)
    assert (move, first) == (Move.WAIT, Sighting("10", 100.0))
    move, kept = next_move(record(), "me", first, 114.9)
    assert (move, kept) == (Move.WAIT, first)
    assert next_move(record(), "me", kept, 115.0)[0] is Move.TAKE


def test_a_renewal_restarts_the_wait() -> None:
    _, first = next_move(record(version="10"), "me", None, 100.0)
    move, second = next_move(record(version="11"), "me", first, 114.0)
    assert (move, second) == (Move.WAIT, Sighting("11", 114.0))
    assert next_move(record(version="11"), "me", second, 128.9)[0] is Move.WAIT
    assert next_move(record(version="11"), "me", second, 129.0)[0] is Move.TAKE


def test_the_holders_clock_is_never_read() -> None:
    """A renewTime far in the past (or future) changes nothing: only versions and the
    candidate's own clock count."""
    stale = LeaseRecord("other", 15, 0, "10", acquired_at="1970-01-01T00:00:00.000000Z")
    assert next_move(stale, "me", None, 100.0)[0] is Move.WAIT


def test_the_lease_says_how_long_to_wait() -> None:
    _, first = next_move(record(duration_s=60), "me", None, 0.0)
    assert next_move(record(duration_s=60), "me", first, 59.0)[0] is Move.WAIT
    assert next_move(record(duration_s=60), "me", first, 60.0)[0] is Move.TAKE


def test_parse_fills_what_a_lease_may_lack() -> None:
    parsed = LeaseRecord.parse({"metadata": {"resourceVersion": "7"}, "spec": {}})
    assert parsed == LeaseRecord("", LEASE_DURATION_S, 0, "7", None)
    parsed = LeaseRecord.parse(
        {
            "metadata": {"resourceVersion": "8"},
            "spec": {
                "holderIdentity": "pod-a_1",
                "leaseDurationSeconds": 30,
                "leaseTransitions": 2,
                "acquireTime": "2026-12-03T06:00:00.000000Z",
            },
        }
    )
    assert parsed == LeaseRecord("pod-a_1", 30, 2, "8", "2026-12-03T06:00:00.000000Z")


def test_a_new_lease() -> None:
    manifest = lease_manifest("lease", "me", NOW, None)
    assert manifest["metadata"] == {"name": "lease"}
    assert manifest["spec"] == {
        "holderIdentity": "me",
        "leaseDurationSeconds": LEASE_DURATION_S,
        "acquireTime": "2026-12-03T07:00:00.123456Z",
        "renewTime": "2026-12-03T07:00:00.123456Z",
        "leaseTransitions": 0,
    }


def test_a_renewal_keeps_the_acquire_time_and_the_transitions() -> None:
    manifest = lease_manifest("lease", "me", NOW, record(holder="me"))
    assert manifest["metadata"] == {"name": "lease", "resourceVersion": "10"}
    assert manifest["spec"]["acquireTime"] == "2026-12-03T06:00:00.000000Z"
    assert manifest["spec"]["renewTime"] == micro_time(NOW)
    assert manifest["spec"]["leaseTransitions"] == 4


def test_a_takeover_is_a_transition_at_the_version_read() -> None:
    manifest = lease_manifest("lease", "me", NOW, record(holder="other"))
    assert manifest["metadata"]["resourceVersion"] == "10"
    assert manifest["spec"]["holderIdentity"] == "me"
    assert manifest["spec"]["acquireTime"] == micro_time(NOW)
    assert manifest["spec"]["leaseTransitions"] == 5


def test_a_released_lease_has_no_holder() -> None:
    manifest = released_manifest("lease", record(holder="me"), NOW)
    assert manifest["metadata"] == {"name": "lease", "resourceVersion": "10"}
    assert manifest["spec"]["holderIdentity"] is None
    assert manifest["spec"]["leaseTransitions"] == 4
    released = LeaseRecord.parse({"metadata": {"resourceVersion": "11"}, **manifest})
    assert next_move(released, "next", None, 0.0)[0] is Move.TAKE
