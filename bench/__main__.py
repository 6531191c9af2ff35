"""`python -m bench`: one scenario on the bench's own cluster, written to JSON and to a
Markdown page.

- default: N objects one at a time, reconciler vs baseline; no-op cost; idle RSS
  (`--instances`, `--workers`, `--noop-periods`; `--node kwok|real`); docs/benchmarks.json;
- `--burst 10,50,100 --burst-workers 1,2,4`: K objects at once for each K and W;
  docs/benchmarks-burst.json;
- `--restart [M]`: M Ready objects (default 100), the reconciler restarted; idle RSS with
  0 and M objects; docs/benchmarks-restart.json;
- `--backup-restore [MB,MB...]`: on the real node, per size of generated data (default
  100,1000), the operator's backup and restore against `mysqldump | mysql` in the pod;
  docs/benchmarks-backup-restore.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench import machine, report
from bench.backup_restore import BackupRestore, BackupRestoreOptions
from bench.burst import Burst, BurstOptions
from bench.cluster import BenchBusy, Cluster, machine_lock
from bench.objects import Objects, api_client_for
from bench.restart import Restart, RestartOptions
from bench.run import Bench, Options

DEFAULT_OUT = {
    "one-at-a-time": Path("docs/benchmarks.json"),
    "one-at-a-time-real": Path("docs/benchmarks-real-node.json"),
    "burst": Path("docs/benchmarks-burst.json"),
    "restart": Path("docs/benchmarks-restart.json"),
    "backup-restore": Path("docs/benchmarks-backup-restore.json"),
}
DEFAULT_BACKUP_RESTORE_MB = (100, 1000)
REPO_ROOT = Path(__file__).resolve().parent.parent


def _positive_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers of at least 1: {text!r}")
    return values


def _under_docs(path: Path) -> bool:
    resolved = path.resolve()
    return any(
        resolved.is_relative_to(docs.resolve()) for docs in (Path("docs"), REPO_ROOT / "docs")
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scenario = parser.add_mutually_exclusive_group()
    scenario.add_argument(
        "--instances", type=int, default=None, help="one at a time: objects (default 10)"
    )
    scenario.add_argument(
        "--burst", type=_positive_ints, metavar="K,K...", help="burst: objects applied at once"
    )
    scenario.add_argument(
        "--restart", type=int, nargs="?", const=100, metavar="M", help="restart with M Ready"
    )
    scenario.add_argument(
        "--backup-restore",
        type=_positive_ints,
        nargs="?",
        const=DEFAULT_BACKUP_RESTORE_MB,
        metavar="MB,MB...",
        help="backup and restore on the real node, per MB of generated data (default 100,1000)",
    )
    parser.add_argument(
        "--burst-workers",
        type=_positive_ints,
        default=None,
        metavar="W,W...",
        help="burst: the reconciler's and the baseline's workers (default 1,2,4)",
    )
    parser.add_argument(
        "--node",
        choices=["kwok", "real"],
        default="kwok",
        help="one at a time: kwok (default) or the real node; --burst and --restart run on"
        " kwok only, --backup-restore on the real node only",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="the reconciler's --workers (not for --burst)"
    )
    parser.add_argument("--resync-period", type=float, default=10.0, help="seconds")
    parser.add_argument("--noop-periods", type=int, default=3, help="resync periods to watch")
    parser.add_argument("--out", type=Path, default=None, help="default: docs/benchmarks*.json")
    parser.add_argument("--markdown", type=Path, default=None, help="default: --out with .md")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a new temp dir")
    parser.add_argument(
        "--no-lock",
        action="store_true",
        help="development only: run beside another bench run, without the machine-wide lock"
        " (its numbers are not for docs/; needs --out)",
    )
    args = parser.parse_args(argv)
    args.scenario = (
        "burst"
        if args.burst
        else "restart"
        if args.restart is not None
        else "backup-restore"
        if args.backup_restore
        else "one-at-a-time"
    )
    if args.scenario == "backup-restore":
        args.node = "real"
    elif args.node == "real" and args.scenario != "one-at-a-time":
        parser.error(f"--node real: only one at a time ({args.scenario} runs on kwok)")
    if args.no_lock and (args.out is None or _under_docs(args.out)):
        parser.error("--no-lock: give --out outside docs/ (numbers taken beside another run)")
    if args.burst_workers is not None and args.scenario != "burst":
        parser.error("--burst-workers: only with --burst")
    args.burst_workers = args.burst_workers or (1, 2, 4)
    if args.instances is None:
        args.instances = 10
    if min(args.instances, args.restart or 1, args.workers) < 1:
        parser.error("--instances, --restart and --workers: at least 1")
    if shutil.which("pulumi") is None:
        parser.error('pulumi is not on PATH: eval "$(hack/toolchain/build)" first')
    return args


def default_out(args: argparse.Namespace) -> Path:
    """Per scenario; one at a time on the real node has its own, beside kwok's."""
    if args.scenario == "one-at-a-time" and args.node == "real":
        return DEFAULT_OUT["one-at-a-time-real"]
    return DEFAULT_OUT[args.scenario]


def scenario_options(args: argparse.Namespace) -> dict[str, Any]:
    common = {"node": args.node, "resync_s": args.resync_period}
    if args.scenario == "burst":
        return {**common, "sizes": list(args.burst), "workers": list(args.burst_workers)}
    if args.scenario == "restart":
        return {**common, "objects": args.restart, "workers": args.workers}
    if args.scenario == "backup-restore":
        return {**common, "sizes_mb": list(args.backup_restore), "workers": args.workers}
    return {
        **common,
        "instances": args.instances,
        "workers": args.workers,
        "noop_periods": args.noop_periods,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        with nullcontext() if args.no_lock else machine_lock():
            return measure(args, sys.argv[1:] if argv is None else list(argv))
    except BenchBusy as error:
        print(f"python -m bench: {error}", file=sys.stderr)
        return 1


def measure(args: argparse.Namespace, argv: list[str]) -> int:
    """One scenario on a new cluster (always taken down again); call it under the lock."""
    work_dir = (args.work_dir or Path(tempfile.mkdtemp(prefix="mysql-bench-"))).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    print(f"work dir (logs, state): {work_dir}", flush=True)
    out: Path = args.out or default_out(args)
    markdown: Path = args.markdown or out.with_suffix(".md")
    results: dict[str, Any] = {
        "scenario": args.scenario,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + shlex.join(argv),
        "machine": machine.describe(),
        "options": scenario_options(args),
    }

    def write(path: Path, partial: dict[str, Any]) -> None:
        results.update(partial)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
        path.with_suffix(".md").write_text(report.render(results, str(path)))

    cluster = Cluster(work_dir / "cluster", node=args.node)
    http_port = cluster.reserve_ports()["reconciler"]
    try:
        cluster.up()
        results["cluster"] = {
            "pvclaimbinder_sync_period": cluster.controller_manager_flag(
                "--pvclaimbinder-sync-period"
            )
        }
        # After each burst cell, into the work dir: a failed run keeps what it measured
        # (`python -m bench.report` renders it) without overwriting docs/.
        checkpoint = partial(write, work_dir / out.name)
        results.update(run_scenario(args, work_dir, cluster.kubeconfig, http_port, checkpoint))
    finally:
        cluster.down()
    results["load_average_at_end"] = machine.load_average()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    markdown.write_text(report.render(results, str(out)))
    print(f"wrote {out} and {markdown}", flush=True)
    return 0


def run_scenario(
    args: argparse.Namespace,
    work_dir: Path,
    kubeconfig: Path,
    http_port: int,
    checkpoint: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    api_client = api_client_for(kubeconfig)
    objects = Objects(api_client, work_dir / "host")
    if args.scenario == "burst":
        burst = BurstOptions(
            args.burst, args.burst_workers, args.resync_period, work_dir, http_port
        )
        return Burst(burst, objects, kubeconfig).run(checkpoint)
    if args.scenario == "restart":
        restart = RestartOptions(
            args.restart, args.workers, args.resync_period, work_dir, http_port
        )
        return Restart(restart, objects, kubeconfig).run()
    if args.scenario == "backup-restore":
        sizes = BackupRestoreOptions(
            args.backup_restore, args.workers, args.resync_period, work_dir, http_port
        )
        return BackupRestore(sizes, objects, api_client, kubeconfig).run(checkpoint)
    options = Options(
        instances=args.instances,
        resync_s=args.resync_period,
        noop_periods=args.noop_periods,
        workers=args.workers,
        work_dir=work_dir,
        http_port=http_port,
    )
    return Bench(options, api_client, kubeconfig).run()


if __name__ == "__main__":
    sys.exit(main())
