"""Pure helpers: percentiles and the reconciler's logfmt lines."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

_PAIR: Final = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolating linearly between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, not {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def parse_logfmt(line: str) -> dict[str, str]:
    """One `key=value key="json string"` line, as the reconciler's LogfmtFormatter writes."""
    fields: dict[str, str] = {}
    for key, raw in _PAIR.findall(line):
        if raw.startswith('"'):
            try:
                fields[key] = str(json.loads(raw))
            except json.JSONDecodeError:
                fields[key] = raw
        else:
            fields[key] = raw
    return fields


@dataclass(frozen=True)
class Reconciled:
    """One `msg=reconciled` line: which action, for which instance, when it ended, how long."""

    instance: str
    action: str
    outcome: str
    ended: float  # epoch seconds
    duration_s: float

    @property
    def started(self) -> float:
        return self.ended - self.duration_s


def reconciled_lines(lines: Iterable[str]) -> list[Reconciled]:
    found = []
    for line in lines:
        if "msg=reconciled" not in line:
            continue
        fields = parse_logfmt(line)
        try:
            found.append(
                Reconciled(
                    instance=fields["instance"],
                    action=fields["phase"],
                    outcome=fields.get("outcome", ""),
                    ended=datetime.fromisoformat(fields["ts"]).timestamp(),
                    duration_s=float(fields["duration_s"]),
                )
            )
        except (KeyError, ValueError):
            continue
    return found


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, min, max and mean, rounded to milliseconds."""
    return {
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "mean": round(sum(values) / len(values), 3),
    }
