"""The update messages each engine run records, and how `reconciler history` reads them."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from reconciler.history import (
    MAX_CAUSE,
    ChangeKind,
    entry,
    kind_of,
    render,
    update_message,
)
from reconciler.vocabulary import Stage

pytestmark = pytest.mark.unit

UID = "0f3c2a9e-1111-2222-3333-444455556666"


def at(minute: int) -> datetime:
    return datetime(2026, 12, 2, 10, minute, 0)


def test_the_stage_and_a_refresh_decide_the_kind() -> None:
    assert kind_of(Stage.SERVING, refresh=False) is ChangeKind.UPDATE
    assert kind_of(Stage.RESTORING, refresh=False) is ChangeKind.UPDATE
    assert kind_of(Stage.SERVING, refresh=True) is ChangeKind.HEAL
    assert kind_of(Stage.FINAL_BACKUP, refresh=False) is ChangeKind.TEARDOWN
    assert kind_of(Stage.RELEASING, refresh=False) is ChangeKind.TEARDOWN


def test_a_message_reads_back_as_written() -> None:
    message = update_message(ChangeKind.UPDATE, 7, UID, "Processing: image\nchanged  twice")
    assert message == f"update of generation 7 (uid {UID}): Processing: image changed twice"
    read = entry(
        version=3,
        started=at(1),
        ended=at(2),
        operation="update",
        result="succeeded",
        message=message,
        changes={"update": 1, "same": 6, "create": 0},
    )
    assert (read.kind, read.generation, read.uid) == ("update", 7, UID)
    assert read.cause == "Processing: image changed twice"
    assert read.changes == {"same": 6, "update": 1}


def test_a_long_cause_is_cut() -> None:
    message = update_message(ChangeKind.HEAL, 1, UID, "x" * 1000)
    cause = message.split("): ", 1)[1]
    assert len(cause) == MAX_CAUSE
    assert cause.endswith("…")


def test_a_run_without_the_operators_message_keeps_the_engines_words() -> None:
    read = entry(
        version=None,
        started=at(1),
        ended=None,
        operation="refresh",
        result="failed",
        message="by hand",
        changes=None,
    )
    assert (read.kind, read.generation, read.uid, read.cause) == ("refresh", None, None, "by hand")


def test_both_outputs_list_the_newest_first() -> None:
    older = entry(
        version=None,
        started=at(1),
        ended=at(2),
        operation="update",
        result="succeeded",
        message=update_message(ChangeKind.UPDATE, 1, UID, "Processing: first"),
        changes={"create": 8},
    )
    newer = entry(
        version=None,
        started=at(5),
        ended=at(6),
        operation="destroy",
        result="succeeded",
        message=update_message(ChangeKind.DESTROY, 1, UID, "the MySQL object is being deleted"),
        changes={"delete": 8},
    )
    shown = json.loads(render("ns-db", [older, newer], "json"))
    assert [u["kind"] for u in shown["updates"]] == ["destroy", "update"]
    assert shown["updates"][1] == {
        "version": None,
        "startTime": "2026-12-02T10:01:00",
        "endTime": "2026-12-02T10:02:00",
        "kind": "update",
        "operation": "update",
        "generation": 1,
        "uid": UID,
        "result": "succeeded",
        "cause": "Processing: first",
        "resourceChanges": {"create": 8},
    }
    assert render("ns-db", [older, newer], "text").splitlines() == [
        "stack ns-db",
        "  2026-12-02T10:05:00Z destroy of generation 1 (uid 0f3c2a9e): succeeded; delete 8",
        "      the MySQL object is being deleted",
        "  2026-12-02T10:01:00Z update of generation 1 (uid 0f3c2a9e): succeeded; create 8",
        "      Processing: first",
    ]
    assert render("ns-db", [], "text") == "stack ns-db: no updates"
