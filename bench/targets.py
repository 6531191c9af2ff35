"""The issue's targets. Each run writes the ones it measures into its JSON next to the
measured value, so a page rendered later shows the target it was measured against."""

from __future__ import annotations

from typing import Any, Final

BURST_ALL_READY_S: Final = {"objects": 100, "limit": 300.0, "unit": "s"}
PEAK_RSS_MIB: Final = {"limit": 1536.0, "unit": "MiB"}
IDLE_RSS_MIB: Final = {"objects": 100, "limit": 150.0, "unit": "MiB"}
ENGINE_RUNS_UNCHANGED: Final = {"limit": 0, "unit": "runs"}
# (backup Job + restore Job) over a plain `mysqldump | mysql` pipe in the MySQL pod.
BACKUP_RESTORE_OVER_PIPE: Final = {"limit": 1.2, "unit": "x"}


def check(what: str, target: dict[str, Any], measured: float | None) -> dict[str, Any]:
    """One row of the targets table: met is None when nothing was measured."""
    limit = target["limit"]
    return {
        "what": what,
        "limit": limit,
        "unit": target["unit"],
        "measured": measured,
        "met": None if measured is None else measured <= limit,
    }
