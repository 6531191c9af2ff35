"""`hack/reliability [--cycles N] [--parallel P] [--kills N] [--faults N]`
`hack/reliability --merge RUN.json... [--out OUT]`

Runs on the local real-node cluster (`hack/up` first; or KUBECONFIG for another real-node
cluster), each trial in namespaces of its own with its own reconciler process, and writes
docs/reliability.json and docs/reliability.md. Runs may go side by side on one cluster
(e.g. `--kills 0 --faults 0` beside `--cycles 0`, each with its own `--out`); `--merge`
then writes their records as one page.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reliability import report, trials
from tests.harness import REPO_ROOT
from tests.support import api_client_for


def kubeconfig() -> Path:
    given = os.environ.get("KUBECONFIG")
    if given:
        return Path(given)
    state = Path(
        os.environ.get("MYSQL_OPERATOR_CLUSTER_DIR")
        or Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        / "mysql-operator"
        / "cluster"
    )
    if (state / "node-kind").read_text().strip() != "real":
        raise SystemExit(f"{state} is not a real-node cluster: run `hack/up` first")
    return state / "kubeconfig"


def code_commit() -> str:
    """The commit under test, marked when tracked files differ from it (a run's own
    output in docs/ does not count); "unknown" without git, so a run is never lost."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit} (modified)" if changed else commit


def write(document: dict[str, Any], out: Path) -> None:
    out.write_text(json.dumps(document, indent=2) + "\n")
    out.with_suffix(".md").write_text(report.render(document, out.name))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/reliability", description=__doc__)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "reliability.json")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="RUN.json")
    args = parser.parse_args(argv)
    if args.merge:
        merged = report.merge([json.loads(path.read_text()) for path in args.merge])
        write(merged, args.out)
        records = [r for group in merged["results"].values() for r in group]
        return 1 if any(not r["ok"] for r in records) else 0
    config = kubeconfig()
    # Before the trials: the tree may move on while they run.
    commit = code_commit()
    started = time.monotonic()
    began = datetime.now(UTC)

    def log(line: str) -> None:
        print(f"[reliability {time.monotonic() - started:7.0f}s] {line}", flush=True)

    with tempfile.TemporaryDirectory(prefix="reliability-") as scratch:
        cluster = trials.Cluster(api_client_for(config), config, Path(scratch))
        results = {
            "cycles": trials.cycles(cluster, args.cycles, args.parallel, log)
            if args.cycles
            else [],
            "kills": trials.kills(cluster, args.kills, log) if args.kills else [],
            "faults": trials.faults(cluster, args.faults, log) if args.faults else [],
        }
    document = {
        "command": " ".join(["hack/reliability", *(argv if argv is not None else sys.argv[1:])]),
        "commit": commit,
        "started": began.isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started),
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "load_end": os.getloadavg(),
        },
        "results": {name: [r.to_dict() for r in records] for name, records in results.items()},
    }
    write(document, args.out)
    failed = [r for records in results.values() for r in records if not r.ok]
    log(f"done: {sum(len(r) for r in results.values())} records, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
