"""The bench's pure helpers: percentiles, the reconciler's log lines and what they say
about one object or a whole run, /proc and /metrics parsers, and the issue's targets."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

_PAIR: Final = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')

# The targets; each run writes those it measures next to the measured value.
OVERHEAD_S: Final = {"limit": 1.5, "unit": "s"}  # one at a time, over the baseline, p50
ALL_READY_S: Final = {"limit": 1200.0, "unit": "s"}  # these four: with 1,000 objects
PEAK_RSS_MIB: Final = {"limit": 2048.0, "unit": "MiB"}
IDLE_RSS_MIB: Final = {"limit": 200.0, "unit": "MiB"}
ENGINE_RUNS_UNCHANGED: Final = {"limit": 0, "unit": "runs"}
FIRST_PASS_S: Final = {"limit": 60.0, "unit": "s"}


def check(what: str, target: Mapping[str, Any], measured: float | None) -> dict[str, Any]:
    """One row of a page's targets table; met is None when nothing was measured."""
    limit = target["limit"]
    met = None if measured is None else measured <= limit
    return {"what": what, "limit": limit, "unit": target["unit"], "measured": measured, "met": met}


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


def summary(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, min, max and mean, rounded to milliseconds."""
    return {
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "mean": round(sum(values) / len(values), 3),
    }


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """A summary of every numeric column that has a value in at least one row."""
    keys = [key for key in rows[0] if key != "name"] if rows else []
    columns = {key: [float(row[key]) for row in rows if row.get(key) is not None] for key in keys}
    return {key: summary(values) for key, values in columns.items() if values}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


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
    """One `msg=reconciled` line. The engine fields are on reconciles that ran the engine:
    how many runs, and the last run's split (its own cost; its steps on Kubernetes objects)."""

    instance: str
    action: str  # the line's `phase`: deploy, wait, ready, stall, teardown...
    outcome: str
    ended: float  # epoch seconds
    duration_s: float
    reason: str | None = None
    engine_runs: int = 0
    engine_s: float | None = None
    resources_s: float | None = None

    @property
    def started(self) -> float:
        return self.ended - self.duration_s


def _float(value: str | None) -> float | None:
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
                    reason=fields.get("reason"),
                    engine_runs=int(fields.get("engine_runs", "0")),
                    engine_s=_float(fields.get("engine_s")),
                    resources_s=_float(fields.get("resources_s")),
                )
            )
        except (KeyError, ValueError):
            continue
    return found


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


def _minus(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else round(later - earlier, 3)


def object_split(
    lines: Sequence[Reconciled], instance: str, applied: float, seen: float
) -> dict[str, float | None]:
    """One object's applied → Ready seen, by its reconciles: the queue wait until the
    first; the first reconcile with an engine run (finalizer, records, `up`); the time
    between its end and the start of the reconcile that made it Ready (the cluster's part:
    claims, pod, restore Job, the watch waking the instance, and any passes that waited);
    that reconcile (a second `up` for an instance without the readiness gate); and when
    the bench saw Ready after it. The engine figures add up every engine reconcile (a
    line's split covers its last run only)."""
    mine = [line for line in lines if line.instance == instance and applied <= line.started <= seen]
    engine = [line for line in mine if line.engine_runs]
    deploy = engine[0] if engine else None
    last = mine[-1] if mine else None
    after = last if last is not None and last is not deploy else None
    reconciles_s = sum(line.duration_s for line in engine)
    engine_s = sum(line.engine_s or 0.0 for line in engine)
    resources_s = sum(line.resources_s or 0.0 for line in engine)
    return {
        "total_s": round(seen - applied, 3),
        "queue_wait_s": _minus(mine[0].started, applied) if mine else None,
        "deploy_reconcile_s": round(deploy.duration_s, 3) if deploy else None,
        "between_s": _minus(after.started, deploy.ended) if after and deploy else None,
        "ready_reconcile_s": round(last.duration_s, 3) if last else None,
        "ready_seen_after_s": _minus(seen, last.ended) if last else None,
        "engine_s": round(engine_s, 3) if engine else None,
        "resources_s": round(resources_s, 3) if engine else None,
        "around_engine_s": round(reconciles_s - engine_s - resources_s, 3) if engine else None,
        "engine_runs": sum(line.engine_runs for line in mine),
        "passes": len(mine),
    }


def where_time_went(lines: Iterable[Reconciled]) -> dict[str, Any]:
    """Per action (the line's phase): passes and the seconds they took; engine runs with
    their engine and resource-step seconds; and how often each reason was reported."""
    actions: dict[str, dict[str, float]] = {}
    reasons: Counter[str] = Counter()
    runs, engine_s, resources_s = 0, 0.0, 0.0
    for line in lines:
        found = actions.setdefault(line.action, {"passes": 0, "seconds": 0.0})
        found["passes"] += 1
        found["seconds"] = round(found["seconds"] + line.duration_s, 3)
        runs += line.engine_runs
        engine_s += line.engine_s or 0.0
        resources_s += line.resources_s or 0.0
        if line.reason:
            reasons[line.reason] += 1
    return {
        "actions": actions,
        "engine_runs": runs,
        "engine_s": round(engine_s, 1),
        "resources_s": round(resources_s, 1),
        "reasons": dict(reasons),
    }


def burst_summary(applied: Sequence[float], ready_seen: Mapping[str, float]) -> dict[str, float]:
    """K objects applied at once (epoch seconds each) and when each was first seen Ready:
    the span of the applies, the time from the first apply until the first, half and all
    were Ready, and instances per minute over the whole burst."""
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


def reconcile_order(lines: list[Reconciled], expected: Collection[str]) -> dict[str, float | None]:
    """When the first object was made Ready (a reconcile that ended `ready`, or `deploy`
    for a second `up` that did), and when the last got its first reconcile, in seconds
    after the first reconcile of all: with every new object queued as urgent, all first
    reconciles may go before any second one."""
    mine = [line for line in lines if line.instance in expected]
    if not mine:
        return {"first_ready_reconcile_s": None, "last_first_reconcile_s": None}
    start = min(line.started for line in mine)
    firsts: dict[str, float] = {}
    for line in mine:
        firsts.setdefault(line.instance, line.started)
    readies = [line.ended for line in mine if line.action in ("deploy", "ready")]
    return {
        "first_ready_reconcile_s": round(min(readies) - start, 1) if readies else None,
        "last_first_reconcile_s": round(max(firsts.values()) - start, 1),
    }


@dataclass(frozen=True)
class FirstPass:
    """What a reconciler's log says after a (re)start, for a set of expected instances."""

    passed: frozenset[str]  # expected instances that had a pass that found them Ready
    missing: frozenset[str]
    reached_at: float | None  # ts of the line that completed the set
    actions: Mapping[str, int]  # every reconciled line's action, counted
    engine_runs: int


def first_pass(lines: Iterable[Reconciled], expected: Collection[str]) -> FirstPass:
    """The first pass is done when every expected instance has had a reconcile that ended
    Ready (`phase=ready`: decided from the object, its status and the cluster alone)."""
    wanted, seen = set(expected), set()
    reached_at = None
    actions: Counter[str] = Counter()
    runs = 0
    for line in lines:
        actions[line.action] += 1
        runs += line.engine_runs
        if line.action == "ready" and line.instance in wanted and line.instance not in seen:
            seen.add(line.instance)
            if seen == wanted:
                reached_at = line.ended
    return FirstPass(frozenset(seen), frozenset(wanted - seen), reached_at, dict(actions), runs)


# -- /proc and /metrics -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    own_ticks: int  # utime + stime
    reaped_ticks: int  # cutime + cstime: children that exited and were waited for


def parse_stat(text: str) -> ProcStat:
    """Parses /proc/<pid>/stat; the command name may hold spaces and parentheses."""
    head, _, rest = text.rpartition(")")
    fields = rest.split()
    # fields[0] is field 3 (state) of proc(5): ppid is 4, utime..cstime are 14..17.
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return ProcStat(int(head.split("(", 1)[0]), int(fields[1]), utime + stime, cutime + cstime)


def tree_of(root: int, stats: Mapping[int, ProcStat]) -> list[int]:
    """The root and all its live descendants."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def parse_vm_rss_kib(status_text: str) -> int:
    """VmRSS from /proc/<pid>/status in KiB; 0 for kernel threads and zombies."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def machine_ticks(proc_stat: str) -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine, from /proc/stat's `cpu` line."""
    values = [int(value) for value in proc_stat.splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def parse_metrics(text: str, prefix: str = "mysql_operator_") -> dict[str, float]:
    """Prometheus text lines starting with prefix: `name{labels}` → value."""
    found = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            name, _, value = line.rpartition(" ")
            try:
                found[name[len(prefix) :]] = float(value)
            except ValueError:
                continue
    return found


def cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def mem_total_kib(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


# -- state backends ---------------------------------------------------------------------------

# (what, the scenario's part, the column, its percentile; None: a value of the part itself)
BACKEND_RATIOS: Final = (
    ("one at a time: applied → Ready, p50", "one_at_a_time", "total_s", "p50"),
    ("one at a time: applied → Ready, p95", "one_at_a_time", "total_s", "p95"),
    ("one at a time: the engine's own cost, p50", "one_at_a_time", "engine_s", "p50"),
    ("burst: first apply → all Ready", "burst", "all_ready_s", None),
    ("burst: applied → Ready per object, p50", "burst", "total_s", "p50"),
)


def backend_value(side: Mapping[str, Any], part: str, key: str, pct: str | None) -> float | None:
    """A figure of one backend's results: a percentile of a column's summary, or a value
    of the part itself (None when it was not measured)."""
    found = side.get(part) or {}
    if pct is None:
        value = found.get(key)
    else:
        value = ((found.get("summary") or {}).get(key) or {}).get(pct)
    return None if value is None else float(value)


def backend_ratios(file: Mapping[str, Any], s3: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each of BACKEND_RATIOS on both backends, and S3 / file."""
    rows = []
    for what, part, key, pct in BACKEND_RATIOS:
        on_file, on_s3 = backend_value(file, part, key, pct), backend_value(s3, part, key, pct)
        rows.append({"what": what, "file": on_file, "s3": on_s3, "ratio": ratio(on_s3, on_file)})
    return rows
