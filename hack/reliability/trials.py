"""The three trials of the reliability run, each against the real node with real rows.

- cycles: create, write, delete, re-create and read, many times, with random row counts
  that add up: every cycle reads back every row ever written to its instance;
- kills: `kill -9` of the whole reconciler process tree at a random moment during an
  `up`, the final backup or the `destroy`, then a new reconciler; the instance must
  converge (or be deleted), with no stale lock, no second restore and no rows lost;
- faults: the final backup fails (its pod killed, its volume full, MySQL restarted under
  it); the finalizer and the data must stay, and the retry must succeed once the fault is
  gone.

Each trial returns plain records; `report.py` turns them into docs/reliability.md.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kubernetes import client

from tests.e2e.sql_client import count_rows, sql
from tests.harness import (
    FINALIZER,
    Harness,
    condition,
    harness_in_new_namespace,
    has_condition,
)
from tests.support import eventually, read_or_none

DATABASE: Final = "otus-database"
PASSWORD: Final = "otuspassword"  # noqa: S105 (the original example's, on a test cluster)
SPEC: Final[dict[str, Any]] = {
    "image": "mysql:5.7",
    "database": DATABASE,
    "password": PASSWORD,
    "storage_size": "1Gi",
}
TABLE: Final = "soak"
READY_S: Final = 600.0
GONE_S: Final = 600.0
STRIKE_S: Final = 300.0


@dataclass
class Record:
    """One cycle or trial: what happened, and the rows before and after."""

    trial: str
    kind: str
    rows_expected: int
    rows_found: int | None = None
    seconds: float = 0.0
    ok: bool = False
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_lost(self) -> int:
        if self.rows_found is None:
            return self.rows_expected
        return max(0, self.rows_expected - self.rows_found)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "kind": self.kind,
            "rows_expected": self.rows_expected,
            "rows_found": self.rows_found,
            "rows_lost": self.rows_lost,
            "seconds": round(self.seconds, 1),
            "ok": self.ok,
            "detail": self.detail,
            **self.extra,
        }


@dataclass(frozen=True)
class Cluster:
    api_client: client.ApiClient
    kubeconfig: Path
    work_dir: Path

    def harness(self, label: str) -> Any:
        namespace = f"rel-{label}-{uuid.uuid4().hex[:6]}"
        work_dir = self.work_dir / namespace
        work_dir.mkdir(parents=True)
        return harness_in_new_namespace(self.api_client, self.kubeconfig, namespace, work_dir)


def name_of(obj: Any) -> str:
    """The name of an object the kubernetes client returned (its metadata is Optional)."""
    return str(obj.metadata.name) if obj.metadata is not None else ""


# -- rows --------------------------------------------------------------------------------------


class Rows:
    """The rows of one instance: ids 1..total, each with a hash of its id (little that
    gzip can squeeze), written in batches."""

    SEED: Final = 500  # rows written literally; more are doubled server-side

    def __init__(self, harness: Harness, name: str) -> None:
        self.harness = harness
        self.name = name
        self.total = 0

    def write(self, count: int) -> None:
        statements = [f"CREATE TABLE IF NOT EXISTS {TABLE} (id INT PRIMARY KEY, v CHAR(32))"]
        total, left = self.total, count
        if total == 0:
            seed = min(left, self.SEED)
            values = ",".join(f"({n},MD5({n}))" for n in range(1, seed + 1))
            statements.append(f"INSERT INTO {TABLE} VALUES {values}")
            total, left = seed, left - seed
        while left > 0:
            # Copies of the rows 1..step, shifted past the last one: a few statements for
            # tens of thousands of rows, and no command line too long.
            step = min(left, total)
            statements.append(
                f"INSERT INTO {TABLE} SELECT id + {total}, MD5(id + {total}) "
                f"FROM {TABLE} WHERE id <= {step}"
            )
            total, left = total + step, left - step
        sql(self.harness, self.name, DATABASE, "; ".join(statements) + ";")
        self.total = total

    def count(self) -> int:
        if self.total == 0:
            return 0
        return count_rows(self.harness, self.name, DATABASE, TABLE)


def create_ready(harness: Harness, name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    harness.create(name, dict(spec or SPEC))
    return harness.wait_for(name, has_condition("Ready", "True"), f"{name} Ready", READY_S)


def delete_gone(harness: Harness, name: str) -> None:
    harness.delete(name)
    harness.wait_gone(name, timeout_s=GONE_S)


# -- 1. cycles -----------------------------------------------------------------------------------


def cycles(cluster: Cluster, count: int, parallel: int, log: Callable[[str], None]) -> list[Record]:
    """`count` cycles spread over `parallel` instances, each in its own namespace."""
    shares = [count // parallel + (1 if i < count % parallel else 0) for i in range(parallel)]
    records: list[Record] = []
    lock = threading.Lock()

    def run(index: int, share: int) -> None:
        with cluster.harness(f"cycles{index}") as harness:
            harness.start()
            name = "cycler"
            create_ready(harness, name)
            rows = Rows(harness, name)
            for cycle in range(share):
                started = time.monotonic()
                record = Record("cycles", f"instance {index} cycle {cycle + 1}", 0)
                try:
                    rows.write(random.randint(1, 2000))
                    record.rows_expected = rows.total
                    delete_gone(harness, name)
                    create_ready(harness, name)
                    record.rows_found = rows.count()
                    record.ok = record.rows_found == rows.total
                except Exception as error:  # a failed cycle is a finding, recorded
                    record.detail = f"{type(error).__name__}: {error}"[:500]
                record.seconds = time.monotonic() - started
                with lock:
                    records.append(record)
                log(f"cycles: {record.kind}: rows {record.rows_found}/{record.rows_expected}")
                if not record.ok:
                    return
            delete_gone(harness, name)

    with ThreadPoolExecutor(parallel) as pool:
        for future in [pool.submit(run, i, share) for i, share in enumerate(shares) if share]:
            future.result()
    return records


# -- 2. kills ------------------------------------------------------------------------------------

PHASES: Final = ("up", "final-backup", "destroy")


def kills(cluster: Cluster, count: int, log: Callable[[str], None]) -> list[Record]:
    records = []
    with cluster.harness("kills") as harness:
        harness.start()
        name = "survivor"
        create_ready(harness, name)
        rows = Rows(harness, name)
        for trial in range(count):
            phase = PHASES[trial % len(PHASES)]
            started = time.monotonic()
            record = Record("kills", phase, 0)
            try:
                rows.write(random.randint(1, 500))
                record.rows_expected = rows.total
                record.extra = _kill_during(harness, name, phase)
                obj = harness.get(name)
                if obj is not None and obj["metadata"].get("deletionTimestamp"):
                    harness.wait_gone(name, timeout_s=GONE_S)
                if harness.get(name) is None:
                    create_ready(harness, name)
                obj = harness.wait_for(name, has_condition("Ready", "True"), "Ready", READY_S)
                record.rows_found = rows.count()
                problems = _after_kill_problems(harness, name, obj)
                record.detail = "; ".join(problems)
                record.ok = record.rows_found == rows.total and not problems
            except Exception as error:
                record.detail = f"{type(error).__name__}: {error}"[:500]
            record.seconds = time.monotonic() - started
            records.append(record)
            log(f"kills: {trial + 1} during {phase}: ok={record.ok} {record.detail}")
            if not record.ok:
                break
        delete_gone(harness, name)
    return records


def _kill_during(harness: Harness, name: str, phase: str) -> dict[str, Any]:
    """Starts the operation, strikes at a random moment of `phase`, restarts the reconciler."""
    if phase == "up":
        delete_gone(harness, name)
        harness.create(name, dict(SPEC))

        def striking() -> bool:
            return harness.engine_running()
    elif phase == "final-backup":
        harness.delete(name)

        def striking() -> bool:
            found = harness.get(name)
            backup = condition(found, "BackupReady")
            return backup is not None and backup["status"] == "Unknown"
    else:
        harness.delete(name)

        def striking() -> bool:
            found = harness.get(name)
            backup = condition(found, "BackupReady")
            done = backup is not None and backup["status"] == "True"
            return done and harness.engine_running()

    eventually(striking, bool, timeout_s=STRIKE_S, interval_s=0.05, what=f"during {phase}")
    time.sleep(random.uniform(0.0, 1.5))
    killed = harness.kill()
    stale_locks = len(harness.lock_files())
    harness.start()
    return {"killed": " ".join(killed), "locks_left_by_kill": stale_locks}


def _after_kill_problems(harness: Harness, name: str, obj: dict[str, Any]) -> list[str]:
    problems = []
    if harness.lock_files():
        problems.append(f"stale locks: {harness.lock_files()}")
    uid = obj["metadata"]["uid"]
    reasons: list[str] = []
    for event in harness.events(name):
        if event.involved_object.uid == uid:
            # Repeats of one Event are one object with a count.
            reasons += [str(event.reason)] * (event.count or 1)
    # Every attempt after the first must follow a failure the operator recorded (a Job
    # that failed, e.g. on a transient error, is retried as a new one); an attempt that
    # follows none means a crash made the operator start a second restore.
    restore = obj["status"].get("restore") or {}
    failed = reasons.count("RestoreFailed")
    if restore.get("attempt") != 1 + failed:
        problems.append(
            f"restore attempt {restore.get('attempt')} after {failed} recorded failures: "
            "a second restore ran"
        )
    if reasons.count("RestoreSucceeded") != 1:
        problems.append(f"{reasons.count('RestoreSucceeded')} RestoreSucceeded events")
    jobs = harness.batch.list_namespaced_job(
        harness.namespace, label_selector="app.kubernetes.io/component in (restore,backup)"
    ).items
    leftovers = [name_of(job) for job in jobs]
    if leftovers:
        problems.append(f"orphaned Jobs: {leftovers}")
    return problems


# -- 3. faults -----------------------------------------------------------------------------------

FAULTS: Final = ("job-killed", "volume-full", "mysql-restarted")
TMPFS_SMALL: Final = "128k"
TMPFS_LARGE: Final = "256m"


def faults(cluster: Cluster, count: int, log: Callable[[str], None]) -> list[Record]:
    records = []
    with cluster.harness("faults") as harness:
        harness.start()
        for trial in range(count):
            fault = FAULTS[trial % len(FAULTS)]
            started = time.monotonic()
            record = Record("faults", fault, 0)
            mount: Path | None = None
            try:
                name = f"fault{trial}"
                spec = dict(SPEC)
                if fault == "volume-full":
                    mount = harness.work_dir / f"backup-{trial}"
                    _tmpfs(mount, TMPFS_SMALL)
                    spec["backup"] = {"host_path": str(mount), "storage_size": "1Gi"}
                create_ready(harness, name, spec)
                rows = Rows(harness, name)
                # Enough rows that the compressed dump outgrows the small volume.
                rows.write(random.randint(8000, 16000) if fault == "volume-full" else 500)
                record.rows_expected = rows.total
                record.extra = _fail_the_backup_once(harness, name, fault, mount)
                harness.wait_gone(name, timeout_s=GONE_S)
                harness.create(name, spec)
                harness.wait_for(name, has_condition("Ready", "True"), "Ready", READY_S)
                record.rows_found = rows.count()
                record.ok = record.rows_found == rows.total and bool(record.extra.get("retried"))
                delete_gone(harness, name)
            except Exception as error:
                record.detail = f"{type(error).__name__}: {error}"[:500]
            finally:
                if mount is not None:
                    subprocess.run(["umount", str(mount)], check=False, capture_output=True)
            record.seconds = time.monotonic() - started
            records.append(record)
            log(f"faults: {trial + 1} {fault}: ok={record.ok} {record.detail}")
            if not record.ok:
                break
    return records


def _tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)


def _fail_the_backup_once(
    harness: Harness, name: str, fault: str, mount: Path | None
) -> dict[str, Any]:
    ns = harness.namespace
    harness.delete(name)

    def backup_pod() -> client.V1Pod | None:
        pods = harness.core.list_namespaced_pod(
            ns,
            label_selector=f"app.kubernetes.io/instance={name},app.kubernetes.io/component=backup",
        ).items
        return pods[0] if pods else None

    if fault == "job-killed":
        pod = eventually(backup_pod, lambda p: p is not None, timeout_s=STRIKE_S, what="backup pod")
        assert pod is not None
        harness.core.delete_namespaced_pod(name_of(pod), ns, grace_period_seconds=0)
    elif fault == "mysql-restarted":
        eventually(backup_pod, lambda p: p is not None, timeout_s=STRIKE_S, what="backup pod")
        servers = harness.core.list_namespaced_pod(
            ns, label_selector=f"app={name},app.kubernetes.io/component=database"
        ).items
        for server in servers:
            harness.core.delete_namespaced_pod(name_of(server), ns, grace_period_seconds=0)
    failed = harness.wait_for(
        name, has_condition("BackupReady", "False"), "the final backup failed", STRIKE_S
    )
    kept = {
        "finalizer_kept": FINALIZER in failed["metadata"]["finalizers"],
        "data_claim_kept": read_or_none(
            lambda: harness.core.read_namespaced_persistent_volume_claim(f"{name}-data", ns)
        )
        is not None,
        "failure": (condition(failed, "BackupReady") or {}).get("message", "")[:300],
    }
    if mount is not None:  # the fault goes: the volume grows
        subprocess.run(["mount", "-o", f"remount,size={TMPFS_LARGE}", str(mount)], check=True)
    harness.patch(name, {"metadata": {"annotations": {"otus.homework/retry": uuid.uuid4().hex}}})
    harness.wait_gone(name, timeout_s=GONE_S)
    succeeded = [e for e in harness.events(name) if e.reason == "FinalBackupSucceeded"]
    return {
        **kept,
        "retried": bool(succeeded) and kept["finalizer_kept"] and kept["data_claim_kept"],
    }
