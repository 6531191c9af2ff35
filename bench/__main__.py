"""`python -m bench`: one scenario on the bench's own cluster, written to JSON and to a
Markdown page (bench/README.md says what each measures).

- default, `--instances N`: N objects one at a time, reconciler vs direct-apply baseline;
  the no-op cost; idle RSS (`--node kwok|real`); docs/benchmarks.json;
- `--broken-mix [R]`: a valid object alone and beside ten broken ones, R times each
  (default 5); docs/benchmarks-broken-mix.json;
- `--scale [K]`: K objects at once (default 1000) on several kwok nodes, then a restart;
  docs/benchmarks-scale.json;
- `--backends [N]`: the state on file and on the cluster's S3 store, N objects one at a
  time (default 10) and `--burst B` at once (default N) on each; docs/benchmarks-backends.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import traceback
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bench import report, scenarios
from bench.cluster import BenchBusy, Cluster, machine_lock
from bench.runner import Objects, api_client_for, describe_machine, load_average

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_OUT: Final = {
    "one-at-a-time": Path("docs/benchmarks.json"),
    "one-at-a-time-real": Path("docs/benchmarks-real-node.json"),
    "broken-mix": Path("docs/benchmarks-broken-mix.json"),
    "scale": Path("docs/benchmarks-scale.json"),
    "backends": Path("docs/benchmarks-backends.json"),
}
# Resyncs every 10 s make the no-op windows short; 1,000 objects would never be idle.
DEFAULT_RESYNC_S: Final = {
    "one-at-a-time": 10.0,
    "broken-mix": 10.0,
    "scale": 120.0,
    "backends": 10.0,
}


def _under_docs(path: Path) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(d.resolve()) for d in (Path("docs"), REPO_ROOT / "docs"))


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scenario = parser.add_mutually_exclusive_group()
    scenario.add_argument("--instances", type=int, default=10, help="one at a time (default 10)")
    scenario.add_argument(
        "--broken-mix", type=int, nargs="?", const=5, metavar="R", help="repetitions (default 5)"
    )
    scenario.add_argument(
        "--scale", type=int, nargs="?", const=1000, metavar="K", help="objects (default 1000)"
    )
    scenario.add_argument(
        "--backends",
        type=int,
        nargs="?",
        const=10,
        metavar="N",
        help="file vs S3 state: objects one at a time (default 10)",
    )
    parser.add_argument("--burst", type=int, metavar="B", help="--backends: at once (default N)")
    parser.add_argument("--node", choices=["kwok", "real"], default="kwok", help="one at a time")
    parser.add_argument("--workers", type=int, default=2, help="the reconciler's --workers")
    parser.add_argument("--resync-period", type=float, help="seconds (default 10; scale 120)")
    parser.add_argument("--noop-periods", type=int, default=3, help="resync periods to watch")
    parser.add_argument("--out", type=Path, help="default: docs/benchmarks*.json")
    parser.add_argument("--markdown", type=Path, help="default: --out with .md")
    parser.add_argument("--work-dir", type=Path, help="default: a new temp dir")
    parser.add_argument(
        "--no-lock",
        action="store_true",
        help="development only: skip the machine-wide lock (needs --out outside docs/)",
    )
    args = parser.parse_args(argv)
    args.scenario = (
        "scale"
        if args.scale is not None
        else "broken-mix"
        if args.broken_mix is not None
        else "backends"
        if args.backends is not None
        else "one-at-a-time"
    )
    if args.burst is not None and args.scenario != "backends":
        parser.error("--burst: only with --backends")
    if args.scenario == "backends" and args.burst is None:
        args.burst = args.backends
    if args.node == "real" and args.scenario != "one-at-a-time":
        parser.error(f"--node real: only one at a time ({args.scenario} runs on kwok)")
    if args.no_lock and (args.out is None or _under_docs(args.out)):
        parser.error("--no-lock: give --out outside docs/ (numbers taken beside another run)")
    counts = (args.instances, args.workers, args.broken_mix, args.scale, args.backends, args.burst)
    if min(count for count in counts if count is not None) < 1:
        parser.error(
            "--instances, --broken-mix, --scale, --backends, --burst, --workers: at least 1"
        )
    if args.resync_period is None:
        args.resync_period = DEFAULT_RESYNC_S[args.scenario]
    if shutil.which("pulumi") is None:
        parser.error('pulumi is not on PATH: eval "$(hack/toolchain/build)" first')
    return args


def default_out(args: argparse.Namespace) -> Path:
    if args.scenario == "one-at-a-time" and args.node == "real":
        return DEFAULT_OUT["one-at-a-time-real"]
    return DEFAULT_OUT[args.scenario]


def options(args: argparse.Namespace) -> dict[str, Any]:
    chosen = {"node": args.node, "workers": args.workers, "resync_s": args.resync_period}
    if args.scenario == "scale":
        return {**chosen, "objects": args.scale}
    if args.scenario == "broken-mix":
        return {**chosen, "repetitions": args.broken_mix}
    if args.scenario == "backends":
        return {**chosen, "instances": args.backends, "burst": args.burst}
    return {**chosen, "instances": args.instances, "noop_periods": args.noop_periods}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        with nullcontext() if args.no_lock else machine_lock():
            return measure(args, sys.argv[1:] if argv is None else list(argv))
    except BenchBusy as error:
        print(f"python -m bench: {error}", file=sys.stderr)
        return 1


def write(results: dict[str, Any], out: Path, markdown: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    markdown.write_text(report.render(results, str(out)))


def measure(args: argparse.Namespace, argv: list[str]) -> int:
    """One scenario on a new cluster (always taken down again); call it under the lock.
    A scenario that fails leaves what it measured, with the error, in the work dir."""
    work_dir = (args.work_dir or Path(tempfile.mkdtemp(prefix="mysql-bench-"))).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    print(f"work dir (logs, state): {work_dir}", flush=True)
    out: Path = args.out or default_out(args)
    results: dict[str, Any] = {
        "scenario": args.scenario,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + shlex.join(argv),
        "machine": describe_machine(),
        "options": options(args),
    }
    cluster = Cluster(work_dir / "cluster", node=args.node)
    http_port = cluster.reserve_ports()["reconciler"]
    try:
        cluster.up()
        results["cluster"] = {
            "pvclaimbinder_sync_period": cluster.controller_manager_flag(
                "--pvclaimbinder-sync-period"
            )
        }
        objects = Objects(api_client_for(cluster.kubeconfig), work_dir / "host")
        bench = scenarios.Bench(
            work_dir, cluster, objects, http_port, args.workers, args.resync_period
        )
        if args.scenario == "scale":
            scenarios.scale(bench, results, args.scale)
        elif args.scenario == "broken-mix":
            scenarios.broken_mix(bench, results, args.broken_mix)
        elif args.scenario == "backends":
            scenarios.backends(bench, results, args.backends, args.burst)
        else:
            scenarios.one_at_a_time(bench, results, args.instances, args.noop_periods)
    except Exception:
        results["error"] = traceback.format_exc()
        write(results, work_dir / out.name, work_dir / out.with_suffix(".md").name)
        print(f"failed; what was measured is in {work_dir / out.name}", flush=True)
        raise
    finally:
        cluster.down()
    results["load_average_at_end"] = load_average()
    write(results, out, args.markdown or out.with_suffix(".md"))
    print(f"wrote {out} and {args.markdown or out.with_suffix('.md')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
