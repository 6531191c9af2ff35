"""`python -m bench.dumps`: the backup and restore scripts against a plain dump pipe, on
the same MariaDB server and data, as ratios (bench/README.md).

A throwaway server on loopback (bench/mariadb.py) gets one database of about
`--size-mib` of table data, rows of random text that compress like real ones. Then, in
`--rounds` rounds, alternating which goes first:

- backup: `backup.sh` (run by dash with the Jobs' environment: dump over TCP, compress,
  check the trailer, fsync, sha256, .meta) against `mysqldump | gzip -c > file` with the
  same dump options;
- restore: `restore.sh` of that dump into the emptied database (size, sha256 and trailer
  checked before applying, provenance rows) against `gzip -dc file | mysql`;
- with `--s3`, the same against a MinIO on loopback (bench/minio.py), as the Jobs of an
  instance with spec.backup.s3 run them: backup.sh into a staging directory, then
  `python -m reconciler.transfer upload`; `transfer download` (size and sha256 checked),
  then restore.sh. The plain pipes stay the baseline: what a dump costs without any of it.

Every restore is checked: the table's row count and checksum must equal the original's.
Wall time and the CPU of the processes (the client side; the server's CPU is the same
work for both) are reported per step, and the ratio of medians is the result.
"""

# SQL is built from this module's own constants, against a throwaway server:
# ruff: noqa: S608

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final

from bench.mariadb import MariaDB, running_server
from bench.minio import MinIO, running_store
from bench.runner import describe_machine, load_average, write_results

SCRIPTS: Final = resources.files("reconciler").joinpath("scripts")
REPO_ROOT: Final = Path(__file__).resolve().parents[1]
BACKUP_TO_S3: Final = "backup.sh + transfer upload"
RESTORE_FROM_S3: Final = "transfer download + restore.sh"
DATABASE: Final = "otus-database"
TABLE: Final = "orders"
ROOT_PASSWORD: Final = "bench-dumps-root-pw"  # noqa: S105 (a throwaway loopback server)
TARGET_RATIO: Final = 1.2
RUN_TIMEOUT_S: Final = 3600
# The options backup.sh gives the dump tool for a database that clients keep using.
DUMP_OPTIONS: Final = (
    "--hex-blob",
    "--default-character-set=utf8mb4",
    "--routines",
    "--events",
    "--triggers",
    "--single-transaction",
)
SEED_ROWS: Final = 1024
SCHEMA: Final = f"""
CREATE TABLE `{TABLE}` (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  customer VARCHAR(64) NOT NULL,
  note VARCHAR(512) NOT NULL,
  amount DECIMAL(12, 2) NOT NULL,
  created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
)
"""
# Random hex text: about as compressible as names and notes.
NEW_ROW: Final = (
    "CONCAT('customer-', LEFT(MD5(RAND()), 12)), "
    "CONCAT_WS(' ', MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND())), "
    "ROUND(RAND() * 10000, 2)"
)


@dataclass(frozen=True)
class Step:
    what: str  # backup.sh, plain backup, restore.sh, plain restore
    wall_s: float
    cpu_s: float  # the processes this step ran (client side)
    dump_bytes: int


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dumps", description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024, help="table data (default 1024)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds (default 2)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks-dumps.json"))
    parser.add_argument("--work-dir", type=Path, help="default: a new temp dir")
    parser.add_argument(
        "--s3", action="store_true", help="also back up to and restore from a loopback MinIO"
    )
    return parser.parse_args(argv)


def table_bytes(server: MariaDB) -> int:
    found = server.sql(
        "SELECT data_length + index_length FROM information_schema.tables "
        f"WHERE table_schema = '{DATABASE}' AND table_name = '{TABLE}'"
    )
    return int(found.strip() or 0)


def load(server: MariaDB, size_bytes: int) -> int:
    """Fills the table by doubling it until its data reaches `size_bytes`; its rows."""
    server.sql(f"CREATE DATABASE `{DATABASE}`")
    server.sql(SCHEMA, DATABASE)
    columns = "customer, note, amount"
    # seq_1_to_N: MariaDB's built-in sequence tables.
    server.sql(
        f"INSERT INTO `{TABLE}` ({columns}) SELECT {NEW_ROW} FROM seq_1_to_{SEED_ROWS}", DATABASE
    )
    while True:
        server.sql(f"ANALYZE TABLE `{TABLE}`", DATABASE)
        size = table_bytes(server)
        if size >= size_bytes:
            break
        rows = int(server.sql(f"SELECT COUNT(*) FROM `{TABLE}`", DATABASE))
        per_row = max(1, size // max(1, rows))
        more = min(rows, (size_bytes - size) // per_row + 1)
        server.sql(
            f"INSERT INTO `{TABLE}` ({columns}) SELECT {NEW_ROW} FROM `{TABLE}` LIMIT {more}",
            DATABASE,
            timeout_s=RUN_TIMEOUT_S,
        )
    return int(server.sql(f"SELECT COUNT(*) FROM `{TABLE}`", DATABASE))


def fingerprint(server: MariaDB) -> str:
    """The row count and the table's checksum: equal after a faithful restore."""
    rows = server.sql(f"SELECT COUNT(*) FROM `{TABLE}`", DATABASE, timeout_s=RUN_TIMEOUT_S)
    checksum = server.sql(f"CHECKSUM TABLE `{TABLE}`", DATABASE, timeout_s=RUN_TIMEOUT_S)
    return f"{rows.strip()} {checksum.split()[-1]}"


def timed(what: str, command: list[str], env: Mapping[str, str], dump: Path) -> Step:
    """Runs one step; `dump` is the file it wrote or read."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        command, env=dict(env), capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{what} exited {done.returncode}: {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Step(what, round(wall, 3), round(cpu, 3), _dump_file(dump).stat().st_size)


def _dump_file(path: Path) -> Path:
    """The dump itself; in a backup directory, its one dump."""
    return next(path.glob("dump-*.sql.gz")) if path.is_dir() else path


class Round:
    """One backup and restore each way, into a backup directory of its own."""

    def __init__(self, server: MariaDB, work: Path, store: MinIO | None = None) -> None:
        self.server = server
        self.store = store
        self.work = work
        self.backup_dir = work / "backup"
        self.backup_dir.mkdir(parents=True)
        self.plain = work / "plain.sql.gz"
        self.env = {
            **server.client_env(DATABASE),
            "BACKUP_DIR": str(self.backup_dir),
            "BACKUP_TRIGGER": "manual",
            "TERMINATION_LOG": str(work / "termination-log"),
            "INSTANCE_UID": str(uuid.uuid4()),
        }

    def ours(self) -> Path:
        return _dump_file(self.backup_dir)

    def backup_script(self) -> Step:
        command = ["dash", str(SCRIPTS.joinpath("backup.sh"))]
        return timed("backup.sh", command, self.env, self.backup_dir)

    def backup_plain(self) -> Step:
        dump = shlex.join(self.server.over_tcp("mysqldump", *DUMP_OPTIONS, DATABASE))
        pipe = f"set -e; {dump} | gzip -c > {shlex.quote(str(self.plain))}"
        return timed("mysqldump | gzip", ["dash", "-c", pipe], self.env, self.plain)

    def empty(self) -> None:
        self.server.sql(f"DROP DATABASE `{DATABASE}`")
        self.server.sql("DROP DATABASE IF EXISTS mysql_operator")
        self.server.sql(f"CREATE DATABASE `{DATABASE}`")

    def restore_script(self) -> Step:
        self.empty()
        env = {**self.env, "INSTANCE_UID": str(uuid.uuid4()), "RESTORE_SOURCE": self.ours().name}
        command = ["dash", str(SCRIPTS.joinpath("restore.sh"))]
        return timed("restore.sh", command, env, self.ours())

    def backup_to_s3(self) -> Step:
        assert self.store is not None
        staging = self.work / "s3-staging"
        staging.mkdir()
        env = {
            **self.env,
            **self.store.transfer_env(self.s3_key),
            "PYTHONPATH": str(REPO_ROOT),
            "BACKUP_DIR": str(staging),
            "STAGING_DIR": str(staging),
            "S3_ROTATE_PREFIX": self.s3_key.rpartition("/")[0] + "/",
            "BACKUP_KEEP": "5",
        }
        script = shlex.join(["dash", str(SCRIPTS.joinpath("backup.sh"))])
        upload = shlex.join([sys.executable, "-m", "reconciler.transfer", "upload"])
        return timed(BACKUP_TO_S3, ["dash", "-c", f"{script} && {upload}"], env, staging)

    def restore_from_s3(self) -> Step:
        assert self.store is not None
        self.empty()
        staged = _dump_file(self.work / "s3-staging")
        meta = staged.with_suffix("").with_suffix(".meta").read_text()
        fields = dict(line.split("=", 1) for line in meta.splitlines() if "=" in line)
        target = self.work / "s3-restore"
        target.mkdir()
        env = {
            **self.env,
            **self.store.transfer_env(self.s3_key),
            "PYTHONPATH": str(REPO_ROOT),
            "INSTANCE_UID": str(uuid.uuid4()),
            "BACKUP_DIR": str(target),
            "STAGING_DIR": str(target),
            "RESTORE_SOURCE": staged.name,
            "RESTORE_BACKUP": "bench",
            "EXPECTED_SIZE": fields["size"],
            "EXPECTED_SHA256": fields["sha256"],
            "RESTORE_STREAM_CHECKED": "true",  # as transfer_jobs.downloading sets it
        }
        download = shlex.join([sys.executable, "-m", "reconciler.transfer", "download"])
        script = shlex.join(["dash", str(SCRIPTS.joinpath("restore.sh"))])
        return timed(RESTORE_FROM_S3, ["dash", "-c", f"{download} && {script}"], env, target)

    @property
    def s3_key(self) -> str:
        return f"bench/{self.work.name}/dump.sql.gz"

    def restore_plain(self) -> Step:
        self.empty()
        client = shlex.join(self.server.over_tcp("mysql", DATABASE))
        pipe = f"set -e; gzip -dc {shlex.quote(str(self.plain))} | {client}"
        return timed("gzip -dc | mysql", ["dash", "-c", pipe], self.env, self.plain)


def ratio(steps: list[Step], ours: str, plain: str) -> dict[str, float]:
    def median(what: str, field: str) -> float:
        found = statistics.median(getattr(step, field) for step in steps if step.what == what)
        return round(float(found), 3)

    return {
        "ours_wall_s": median(ours, "wall_s"),
        "plain_wall_s": median(plain, "wall_s"),
        "wall_ratio": round(median(ours, "wall_s") / median(plain, "wall_s"), 3),
        "ours_cpu_s": median(ours, "cpu_s"),
        "plain_cpu_s": median(plain, "cpu_s"),
    }


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    started = datetime.now(UTC)
    load_at_start = load_average()
    steps: list[Step] = []
    with contextlib.ExitStack() as running:
        server = running.enter_context(running_server(work / "server", ROOT_PASSWORD))
        store = running.enter_context(running_store(work / "minio")) if args.s3 else None
        loading = time.monotonic()
        rows = load(server, args.size_mib * 1024 * 1024)
        loaded_s = time.monotonic() - loading
        size = table_bytes(server)
        original = fingerprint(server)
        print(f"loaded {rows} rows, {size / 2**20:.0f} MiB in {loaded_s:.0f}s", flush=True)
        for number in range(args.rounds):
            one = Round(server, work / f"round-{number}", store)
            pairs = [
                (one.backup_script, one.backup_plain),
                (one.restore_script, one.restore_plain),
            ]
            if store is not None:
                pairs += [
                    (one.backup_to_s3, one.backup_plain),
                    (one.restore_from_s3, one.restore_plain),
                ]
            for ours, plain in pairs:
                for step in (ours, plain) if number % 2 == 0 else (plain, ours):
                    done = step()
                    restored = fingerprint(server)
                    if restored != original:
                        raise RuntimeError(f"{done.what}: table {restored}, expected {original}")
                    steps.append(done)
                    print(f"round {number}: {done}", flush=True)
    return {
        "scenario": "dumps",
        "date": started.isoformat(timespec="seconds"),
        "command": "python -m bench.dumps " + shlex.join(sys.argv[1:]),
        "machine": {**describe_machine(), "load_average_at_start": load_at_start},
        "load_average_at_end": load_average(),
        "table": {"rows": rows, "bytes": size, "load_s": round(loaded_s, 1)},
        "rounds": args.rounds,
        "steps": [asdict(step) for step in steps],
        "backup": ratio(steps, "backup.sh", "mysqldump | gzip"),
        "restore": ratio(steps, "restore.sh", "gzip -dc | mysql"),
        **(
            {
                "backup_s3": ratio(steps, BACKUP_TO_S3, "mysqldump | gzip"),
                "restore_s3": ratio(steps, RESTORE_FROM_S3, "gzip -dc | mysql"),
            }
            if args.s3
            else {}
        ),
        "target_ratio": TARGET_RATIO,
    }


def markdown(results: Mapping[str, Any]) -> str:
    machine = results["machine"]
    table = results["table"]
    lines = [
        "# Benchmarks: backup and restore scripts against a plain dump pipe",
        "",
        "Generated by `python -m bench.dumps` (bench/README.md); the raw results are in",
        "docs/benchmarks-dumps.json. Do not edit by hand: run the command again.",
        "",
        f"- date (UTC): {results['date']}; command: `{results['command']}`",
        f"- code: commit {machine['code']['commit']}",
        f"- machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['mem_total_mib']} MiB, kernel {machine['kernel']}",
        "- server: MariaDB from Debian's packages on loopback, the scripts run by dash over TCP",
        *(
            ["- S3: MinIO from the toolchain build on loopback, the transfer run by this Python"]
            if "backup_s3" in results
            else []
        ),
        f"- data: one table, {table['rows']} rows, {table['bytes'] / 2**20:.0f} MiB of table "
        f"data and indexes (loaded in {table['load_s']} s)",
        f"- load average at start {machine['load_average_at_start']}, "
        f"at the end {results['load_average_at_end']}",
        "",
        "| step | ours (median s) | plain (median s) | ours / plain | target "
        "| CPU s ours / plain |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, label in (
        ("backup", "backup to a directory (a claim)"),
        ("restore", "restore from a directory"),
        ("backup_s3", "backup to S3 (MinIO on loopback)"),
        ("restore_s3", "restore from S3"),
    ):
        if name not in results:
            continue
        found = results[name]
        verdict = "met" if found["wall_ratio"] <= results["target_ratio"] else "**missed**"
        lines.append(
            f"| {label} | {found['ours_wall_s']} | {found['plain_wall_s']} | "
            f"**{found['wall_ratio']}x** | ≤ {results['target_ratio']}x ({verdict}) | "
            f"{found['ours_cpu_s']} / {found['plain_cpu_s']} |"
        )
    lines += [
        "",
        "Every restore was checked: row count and `CHECKSUM TABLE` equal to the original.",
        "",
        "| step | wall s | CPU s | dump bytes |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| `{_cell(step['what'])}` | {step['wall_s']} | {step['cpu_s']} | {step['dump_bytes']} |"
        for step in results["steps"]
    ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text for a Markdown table cell: its pipes escaped."""
    return text.replace("|", "\\|")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    with tempfile.TemporaryDirectory(prefix="bench-dumps-") as scratch:
        work = args.work_dir or Path(scratch)
        results = run(args, work)
    page = write_results(args.out, results, markdown(results))
    print(f"wrote {args.out} and {page}")
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
