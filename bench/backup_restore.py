"""The backup-and-restore scenario, on the real node: for each size S (MB of generated data)

1. a namespace `bench-br-<S>` and a reconciler for it alone (new state directory); one
   MySQL object `br` with static hostPath volumes for its data and backup claims, waited
   on until Ready (the first create: nothing to restore);
2. a client Job fills table `filler` of its database to S MB of `data_length`
   (bench/dataset.py); the row count and CHECKSUM TABLE are read in the pod;
3. the baseline, in the same MySQL pod: `mysqldump --single-transaction` to `wc -c`
   (dump only), then `mysqldump --single-transaction db | mysql db_copy` into a fresh
   database of the same server (timed in the pod); the copy's rows and checksum must
   equal the original's; the copy is dropped again;
4. through the operator: the object is deleted and polled every POLL_S until it is gone;
   meanwhile the backup Job's times are read (the destroy deletes the Job after the
   backup), and when the BackupReady condition turned True; the reconciler's teardown
   (`phase=teardown`, `duration_s`) from its log; the dump on the backup volume;
5. the object is created again with a fresh, empty data volume and waited on until
   Ready; the restore Job's times and its log (it must say it restored); the restored
   rows and checksum must equal the original's, or the cell fails.

A failed cell records its error and the next size runs. Between sizes the reconciler is
stopped, the namespace and its volumes are deleted (the finalizer dropped: the teardown
would back up again) and, if the cell succeeded, its host directories are removed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kubernetes import client

from bench import machine, targets
from bench.dataset import (
    copy_database,
    drop_database_sql,
    fill_job,
    parse_fill,
    phase_timeout_s,
    storage_size,
)
from bench.jobs import Jobs, JobTimes
from bench.mysql_pod import MysqlPod
from bench.objects import Objects, condition_of, ready_at
from bench.processes import Process, bench_env, reconciler_process, wait_healthy
from bench.stats import ratio, reconciled_lines
from reconciler.names import names_for
from reconciler.spec import Instance, parse_instance
from reconciler.vocabulary import PASSWORD_KEY

NAME: Final = "br"
POLL_S: Final = 0.25
MB: Final = 1024 * 1024


@dataclass(frozen=True)
class BackupRestoreOptions:
    sizes: tuple[int, ...]  # MB of generated data
    workers: int
    resync_s: float
    work_dir: Path
    http_port: int


def _s(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else round(later - earlier, 3)


def stalled_message(obj: dict[str, Any]) -> str | None:
    stalled = condition_of(obj, "Stalled")
    if stalled is None or stalled.get("status") != "True":
        return None
    return f"{stalled.get('reason')}: {stalled.get('message')}"


def newest_dump(backup_dir: Path) -> Path | None:
    dumps = sorted(backup_dir.glob("dump-*.sql"))  # backup.sh's names sort by age
    return dumps[-1] if dumps else None


@dataclass
class BackupRestore:
    options: BackupRestoreOptions
    objects: Objects
    api_client: client.ApiClient
    kubeconfig: Path

    def run(self, checkpoint: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        self.objects.apply_crd()
        cells: list[dict[str, Any]] = []
        for size_mb in self.options.sizes:
            cells.append(self.cell(size_mb))
            checkpoint(backup_restore_results(cells))
        return backup_restore_results(cells)

    def cell(self, size_mb: int) -> dict[str, Any]:
        namespace = f"bench-br-{size_mb}"
        cell_dir = self.options.work_dir / "backup-restore" / f"{size_mb}mb"
        cell_dir.mkdir(parents=True, exist_ok=True)
        result: dict[str, Any] = {
            "size_mb": size_mb,
            "load_average_at_start": machine.load_average(),
        }
        reconciler = reconciler_process(
            state_dir=cell_dir / "state",
            kubeconfig=self.kubeconfig,
            namespace=namespace,
            workers=self.options.workers,
            resync_s=self.options.resync_s,
            http_port=self.options.http_port,
            env=bench_env(self.kubeconfig),
            log_path=cell_dir / "reconciler.log",
        )
        try:
            self.objects.create_namespace(namespace)
            reconciler.start()
            wait_healthy(reconciler, self.options.http_port)
            Cell(self, namespace, size_mb, reconciler, result).measure()
        except (TimeoutError, RuntimeError, ValueError) as error:
            result["error"] = str(error)
            print(f"backup-restore {size_mb} MB: {error}", flush=True)
        finally:
            reconciler.stop()
            try:
                result["cleanup_s"] = self.objects.remove([namespace])
            except TimeoutError as error:
                result["cleanup_error"] = str(error)
        if "error" not in result and "cleanup_error" not in result:
            shutil.rmtree(self.objects.host_root / namespace, ignore_errors=True)
        result["load_average_at_end"] = machine.load_average()
        return result


@dataclass
class Cell:
    bench: BackupRestore
    namespace: str
    size_mb: int
    reconciler: Process
    result: dict[str, Any]

    def __post_init__(self) -> None:
        self.objects = self.bench.objects
        self.jobs = Jobs(self.bench.api_client, self.namespace)
        self.core = client.CoreV1Api(self.bench.api_client)
        self.timeout_s = phase_timeout_s(self.size_mb)
        self.backup_dir = self.objects.host_root / self.namespace / NAME / "backup"

    def create(self, data_dir: str) -> tuple[float, float, Instance]:
        """Creates the object and waits until Ready: (sent, Ready seen, the instance)."""
        sent = self.objects.create(
            self.namespace, NAME, data_dir=data_dir, storage_size=storage_size(self.size_mb)
        )
        deadline = time.monotonic() + self.timeout_s
        while True:
            self.reconciler.check_running()
            obj = self.objects.get(self.namespace, NAME)
            if obj is not None and ready_at(obj, 1):
                return sent, time.time(), parse_instance(obj)
            problem = None if obj is None else stalled_message(obj)
            if problem is not None:
                raise RuntimeError(f"{self.namespace}/{NAME} stalled: {problem}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.namespace}/{NAME} not Ready after {self.timeout_s}s")
            time.sleep(POLL_S)

    def measure(self) -> None:
        sent, seen, instance = self.create("data")
        self.result["first_create_to_ready_s"] = _s(seen, sent)
        pod = MysqlPod(self.core, self.bench.kubeconfig, instance)
        self.result["server_version"] = pod.sql("SELECT VERSION()").strip()
        self.generate(instance, pod)
        self.baseline(instance, pod)
        self.teardown(instance)
        self.recreate()
        backup, restore = self.result["backup"]["job"], self.result["restore"]["job"]
        pipe_s = self.result["baseline"]["pipe_s"]
        both = (
            None
            if None in (backup["job_s"], restore["job_s"])
            else (backup["job_s"] + restore["job_s"])
        )
        self.result["backup_plus_restore_s"] = both
        self.result["ratio_backup_restore_over_pipe"] = ratio(both, pipe_s)

    def generate(self, instance: Instance, pod: MysqlPod) -> None:
        names = names_for(instance)
        job = fill_job(
            name="bench-fill",
            service=names.service,
            database=instance.spec.database,
            secret=names.credentials_secret,
            key=PASSWORD_KEY,
            size_mb=self.size_mb,
        )
        times, log = self.jobs.run(job, self.timeout_s)
        filled = parse_fill(log)
        check = pod.table_check(instance.spec.database, self.timeout_s)
        if check.rows != filled.rows:
            raise RuntimeError(f"the fill Job said {filled.rows} rows, the table has {check.rows}")
        self.original = check
        self.result["generated"] = {
            "rows": filled.rows,
            "data_length_mb": round(filled.data_length / MB, 1),
            "checksum": check.checksum,
            "fill_job": times.to_dict(),
        }
        print(f"backup-restore {self.size_mb} MB: generated {self.result['generated']}", flush=True)

    def baseline(self, instance: Instance, pod: MysqlPod) -> None:
        database = instance.spec.database
        copy = copy_database(database)
        found = pod.baseline(database, copy, self.timeout_s)
        check = pod.table_check(copy, self.timeout_s)
        pod.sql(drop_database_sql(copy), self.timeout_s)
        if check != self.original:
            raise RuntimeError(f"the baseline's copy differs: {check} != {self.original}")
        self.result["baseline"] = {
            "pipe_s": found.pipe_s,
            "dump_only_s": found.dump_only_s,
            "dump_mb": round(found.dump_bytes / MB, 1),
            "copy_matches": True,
        }
        print(f"backup-restore {self.size_mb} MB: baseline {self.result['baseline']}", flush=True)

    def teardown(self, instance: Instance) -> None:
        """Deletes the object and polls until it is gone (module doc, step 4)."""
        job_name = names_for(instance).backup_job(1)
        backup: JobTimes | None = None
        backup_ready_seen = None
        deleted = self.objects.delete(self.namespace, NAME)
        deadline = time.monotonic() + self.timeout_s
        while True:
            self.reconciler.check_running()
            obj = self.objects.get(self.namespace, NAME)
            now = time.time()
            if obj is None:
                break
            done = condition_of(obj, "BackupReady")
            if backup_ready_seen is None and done is not None and done.get("status") == "True":
                backup_ready_seen = now
            problem = stalled_message(obj)
            if problem is not None:
                raise RuntimeError(f"teardown stalled: {problem}")
            if backup is None or backup.completed is None:
                backup = self.jobs.times(job_name) or backup
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.namespace}/{NAME} not gone after {self.timeout_s}s")
            time.sleep(POLL_S)
        if backup is None or backup.completed is None:
            raise RuntimeError(f"backup Job {job_name} was never seen complete")
        dump = newest_dump(self.backup_dir)
        if dump is None:
            raise RuntimeError(f"no dump in {self.backup_dir}")
        self.result["backup"] = {
            "job": backup.to_dict(),
            "dump_mb": round(dump.stat().st_size / MB, 1),
            "delete_to_backup_ready_seen_s": _s(backup_ready_seen, deleted),
            "delete_to_gone_s": _s(now, deleted),
            "teardown_s": self.reconcile_s("teardown"),
        }
        print(f"backup-restore {self.size_mb} MB: backup {self.result['backup']}", flush=True)

    def recreate(self) -> None:
        sent, seen, instance = self.create("data-recreated")
        job_name = names_for(instance).restore_job(1)
        restore = self.jobs.times(job_name)
        log = self.jobs.log(job_name)
        if restore is None or "restore: restored" not in log:
            raise RuntimeError(f"the restore Job {job_name} did not restore: {log[-1000:]}")
        check = MysqlPod(self.core, self.bench.kubeconfig, instance).table_check(
            instance.spec.database, self.timeout_s
        )
        self.result["restore"] = {
            "job": restore.to_dict(),
            "create_to_ready_s": _s(seen, sent),
            "deploy_s": self.reconcile_s("deploy"),
            "rows": check.rows,
            "rows_match": check.rows == self.original.rows,
            "checksum_match": check.checksum == self.original.checksum,
        }
        print(f"backup-restore {self.size_mb} MB: restore {self.result['restore']}", flush=True)
        if check != self.original:
            raise RuntimeError(f"restored {check}, the original was {self.original}")

    def reconcile_s(self, action: str) -> float | None:
        """The `duration_s` of the reconciler's last `phase=<action>` line for the object."""
        instance = f"{self.namespace}/{NAME}"
        lines = [
            line
            for line in reconciled_lines(self.reconciler.lines())
            if line.instance == instance and line.action == action
        ]
        return round(lines[-1].duration_s, 3) if lines else None


def backup_restore_results(cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {"backup_restore": {"cells": cells, "targets": backup_restore_targets(cells)}}


def backup_restore_targets(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        targets.check(
            f"{cell['size_mb']} MB: (backup Job + restore Job) / `mysqldump | mysql` in the pod",
            targets.BACKUP_RESTORE_OVER_PIPE,
            None if "error" in cell else cell.get("ratio_backup_restore_over_pipe"),
        )
        for cell in cells
    ]
