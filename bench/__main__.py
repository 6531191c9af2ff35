"""`python -m bench`: one run, written to JSON and to a Markdown page."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import socket
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench import machine, report
from bench.run import Options, run_with_cluster


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--instances", type=int, default=10, help="objects, one at a time")
    parser.add_argument(
        "--node", choices=["kwok"], default="kwok", help="only kwok for now (no real node)"
    )
    parser.add_argument("--workers", type=int, default=2, help="the reconciler's --workers")
    parser.add_argument("--resync-period", type=float, default=10.0, help="seconds")
    parser.add_argument("--noop-periods", type=int, default=3, help="resync periods to watch")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.json"))
    parser.add_argument("--markdown", type=Path, default=None, help="default: --out with .md")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a new temp dir")
    args = parser.parse_args(argv)
    if args.instances < 1:
        parser.error("--instances: at least 1")
    if shutil.which("pulumi") is None:
        parser.error('pulumi is not on PATH: eval "$(hack/toolchain/build)" first')
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="mysql-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    print(f"work dir (logs, state): {work_dir}", flush=True)
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    results: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "machine": machine.describe(),
        "options": {
            "instances": args.instances,
            "node": args.node,
            "workers": args.workers,
            "resync_s": args.resync_period,
            "noop_periods": args.noop_periods,
        },
    }
    options = Options(
        instances=args.instances,
        resync_s=args.resync_period,
        noop_periods=args.noop_periods,
        workers=args.workers,
        work_dir=work_dir.resolve(),
        http_port=_free_port(),
    )
    results.update(run_with_cluster(options))
    results["load_average_at_end"] = machine.load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    markdown = args.markdown or args.out.with_suffix(".md")
    markdown.write_text(report.render(results))
    print(f"wrote {args.out} and {markdown}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
