"""docs/reliability.md from the run's JSON document (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

TARGETS = {
    "cycles": "rows lost must be 0 in every cycle",
    "kills": "every instance converges or is cleanly deleted; no orphaned object, no stale "
    "lock, no second restore; rows lost 0",
    "faults": "finalizer kept, data intact, and the retry succeeds once the fault is gone, in "
    "every trial",
}


def merge(documents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One document from runs made side by side on one cluster (e.g. cycles in one
    process, kills and faults in another): their records per trial, every command, the
    wall time from the first start to the last end, and the load at the last end."""
    if not documents:
        raise ValueError("nothing to merge")
    starts = [datetime.fromisoformat(str(d["started"])) for d in documents]
    ends = [
        s + timedelta(seconds=int(d["seconds"])) for s, d in zip(starts, documents, strict=True)
    ]
    commits = sorted({str(d.get("commit", "unknown")) for d in documents})
    results: dict[str, list[Mapping[str, Any]]] = {}
    for document in documents:
        for name, records in document["results"].items():
            results.setdefault(name, []).extend(records)
    last = documents[ends.index(max(ends))]
    return {
        "command": " & ".join(str(d["command"]) for d in documents),
        "commit": ", ".join(commits),
        "started": min(starts).isoformat(timespec="seconds"),
        "seconds": round((max(ends) - min(starts)).total_seconds()),
        "machine": {**documents[0]["machine"], "load_end": last["machine"]["load_end"]},
        "results": {name: results.get(name, []) for name in TARGETS},
    }


def render(document: Mapping[str, Any], json_name: str) -> str:
    results: Mapping[str, Sequence[Mapping[str, Any]]] = document["results"]
    machine = document["machine"]
    lines = [
        "# Reliability: the data promise under cycles, crashes and faults",
        "",
        f"Written by `{document['command']}` on {document['started']} "
        f"({document['seconds'] // 60} min) on commit {document.get('commit', 'unknown')}; "
        f"raw records in [{json_name}]({json_name}).",
        "",
        f"Machine: {machine['cpus']} CPUs, kernel {machine['kernel']}, Python "
        f"{machine['python']}; the local cluster's real node (containerd, MariaDB 10.11 "
        "tagged mysql:5.7), the default StorageClass (reclaim policy Delete). Load average "
        f"(1/5/15 min) at the end: {[round(x, 2) for x in machine['load_end']]}; times are "
        "inflated by whatever ran beside the trials.",
        "",
        "| trial | target | runs | ok | rows written (last) | rows lost | median s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, records in results.items():
        ok = sum(1 for r in records if r["ok"])
        lost = sum(int(r["rows_lost"]) for r in records)
        expected = max((int(r["rows_expected"]) for r in records), default=0)
        seconds = sorted(float(r["seconds"]) for r in records)
        median = f"{seconds[len(seconds) // 2]:.0f}" if seconds else "-"
        lines.append(
            f"| {name} | {TARGETS[name]} | {len(records)} | {ok} | {expected} | {lost} | {median} |"
        )
    for name, records in results.items():
        kinds: dict[str, list[Mapping[str, Any]]] = {}
        for record in records:
            kinds.setdefault(str(record["kind"]).split(" cycle")[0], []).append(record)
        lines += ["", f"## {name}", "", "| kind | runs | ok | rows lost |", "|---|---:|---:|---:|"]
        for kind, group in sorted(kinds.items()):
            lines.append(
                f"| {kind} | {len(group)} | {sum(1 for r in group if r['ok'])} | "
                f"{sum(int(r['rows_lost']) for r in group)} |"
            )
        failures = [r for r in records if not r["ok"]]
        if failures:
            lines += ["", "Failures:", ""]
            lines += [f"- {r['kind']}: {r['detail']}" for r in failures]
    lines += [
        "",
        "How each trial works: see hack/reliability/trials.py. Kills freeze and SIGKILL the "
        "whole reconciler process tree (the pulumi CLI and the provider with it) at a random "
        "moment during an `up`, the final backup or the `destroy`, then start a new "
        "reconciler. Faults: the backup Job's pod deleted while it runs; the backup volume "
        "(a 128 KiB tmpfs) too small for the dump, then grown; the MySQL pod deleted under the "
        "backup. Each fault is followed by a retry (the `otus.homework/retry` annotation).",
        "",
    ]
    return "\n".join(lines)
