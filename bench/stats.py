"""Pure helpers: percentiles, the reconciler's logfmt lines, burst and restart summaries."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
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
    # The engine run's split, on lines of passes that ran the engine (absent before the
    # reconciler logged it): the engine's own cost, and its resource steps with their awaits.
    engine_s: float | None = None
    resources_s: float | None = None

    @property
    def started(self) -> float:
        return self.ended - self.duration_s

    @property
    def around_engine_s(self) -> float | None:
        """The pass's time outside the engine run: status writes, Events, the workspace."""
        if self.engine_s is None or self.resources_s is None:
            return None
        return self.duration_s - self.engine_s - self.resources_s


def _optional_float(value: str | None) -> float | None:
    return None if value is None else float(value)


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
                    engine_s=_optional_float(fields.get("engine_s")),
                    resources_s=_optional_float(fields.get("resources_s")),
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


def burst_summary(applied: Sequence[float], ready_seen: Mapping[str, float]) -> dict[str, float]:
    """K objects applied at once (epoch seconds each) and when each was first seen Ready:
    the span of the applies, the time from the first apply until half and until all were
    Ready, and instances per minute over the whole burst."""
    if not applied or not ready_seen:
        raise ValueError("a burst needs applies and Ready objects")
    first = min(applied)
    after = [seen - first for seen in ready_seen.values()]
    all_ready = max(after)
    return {
        "objects": len(ready_seen),
        "apply_span_s": round(max(applied) - first, 3),
        "first_ready_s": round(min(after), 3),
        "half_ready_s": round(percentile(after, 50), 3),
        "all_ready_s": round(all_ready, 3),
        "instances_per_minute": round(len(ready_seen) * 60 / all_ready, 2),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


@dataclass(frozen=True)
class SteadyState:
    """What a reconciler's log says after a (re)start, for a set of expected instances."""

    in_sync: frozenset[str]  # the expected instances seen in sync at least once
    missing: frozenset[str]
    reached_at: float | None  # ts of the in-sync line that completed the set
    actions: Mapping[str, int]  # every reconciled line's action (phase), counted

    @property
    def deploys(self) -> int:
        return self.actions.get("deploy", 0)


def steady_state(lines: Iterable[str], expected: Collection[str]) -> SteadyState:
    """Steady state = every expected instance has had an in-sync pass (the reconciler
    decided, from the object and its status alone, that no engine run is needed)."""
    wanted = set(expected)
    seen: set[str] = set()
    reached_at = None
    actions: Counter[str] = Counter()
    for line in reconciled_lines(lines):
        actions[line.action] += 1
        if line.action == "in-sync" and line.instance in wanted and line.instance not in seen:
            seen.add(line.instance)
            if seen == wanted:
                reached_at = line.ended
    return SteadyState(
        in_sync=frozenset(seen),
        missing=frozenset(wanted - seen),
        reached_at=reached_at,
        actions=dict(actions),
    )


def first_message_at(lines: Iterable[str], message_part: str) -> float | None:
    """The ts of the first line whose msg contains message_part (e.g. `starting`)."""
    for line in lines:
        fields = parse_logfmt(line)
        if message_part in fields.get("msg", "") and "ts" in fields:
            try:
                return datetime.fromisoformat(fields["ts"]).timestamp()
            except ValueError:
                continue
    return None
