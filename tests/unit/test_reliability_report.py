"""The reliability page (hack/reliability/report.py): runs made side by side merge into one
page that keeps every record and names every command and commit."""

from __future__ import annotations

from typing import Any

import pytest
from reliability import report

pytestmark = pytest.mark.unit


def record(kind: str, ok: bool = True, lost: int = 0) -> dict[str, Any]:
    return {
        "kind": kind,
        "ok": ok,
        "rows_expected": 100,
        "rows_found": 100 - lost,
        "rows_lost": lost,
        "seconds": 60.0,
        "detail": "" if ok else "rows missing",
    }


def document(command: str, started: str, seconds: int, **results: Any) -> dict[str, Any]:
    return {
        "command": command,
        "commit": "abc1234",
        "started": started,
        "seconds": seconds,
        "machine": {"cpus": 2, "kernel": "6.18", "python": "3.11.7", "load_end": [1, 2, 3]},
        "results": {"cycles": [], "kills": [], "faults": [], **results},
    }


def test_merged_runs_keep_every_record_and_span_the_wall_time() -> None:
    cycles = document(
        "hack/reliability --kills 0 --faults 0",
        "2026-12-01T14:00:00+00:00",
        1800,
        cycles=[record("instance 0 cycle 1"), record("instance 1 cycle 1")],
    )
    kills = document(
        "hack/reliability --cycles 0",
        "2026-12-01T14:05:00+00:00",
        3600,
        kills=[record("up"), record("destroy", ok=False, lost=3)],
        faults=[record("job-killed")],
    )
    kills["machine"]["load_end"] = [4, 5, 6]
    kills["commit"] = "def5678"

    merged = report.merge([cycles, kills])

    assert [len(merged["results"][name]) for name in ("cycles", "kills", "faults")] == [2, 2, 1]
    assert merged["started"] == "2026-12-01T14:00:00+00:00"
    assert merged["seconds"] == 3900  # 14:00 to 15:05
    assert merged["machine"]["load_end"] == [4, 5, 6]
    assert (
        merged["command"] == "hack/reliability --kills 0 --faults 0 & hack/reliability --cycles 0"
    )
    page = report.render(merged, "reliability.json")
    assert "on commit abc1234, def5678" in page
    assert "- destroy: rows missing" in page
    kills_row = next(line for line in page.splitlines() if line.startswith("| kills | "))
    assert kills_row.endswith("| 2 | 1 | 100 | 3 | 60 |")


def test_merging_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="nothing to merge"):
        report.merge([])
