"""The one-at-a-time scenario: the reconciler and the baseline side by side.

Order, on the bench's own cluster (`bench.cluster`): CRD, the reconciler and the baseline
started in namespaces of their own; the reconciler's idle RSS with 0 objects; then for
each of N instances, one at a time, a MySQL object for the reconciler and then an
identical one for the baseline, each waited on until Ready; the RSS with N objects Ready;
the no-op window (several resync periods with nothing changed); stop everything.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bench import procfs
from bench.objects import Objects, eventually, ready_at
from bench.processes import (
    PeakRss,
    Process,
    baseline_process,
    bench_env,
    reconciler_process,
    rss_sample,
    wait_healthy,
)
from bench.stats import Reconciled, reconciled_lines, summary
from reconciler.names import names_for
from reconciler.spec import parse_instance

READY_TIMEOUT_S: Final = 600.0
OPERATOR_NS: Final = "bench-reconciler"
BASELINE_NS: Final = "bench-baseline"


@dataclass(frozen=True)
class Options:
    instances: int
    resync_s: float
    noop_periods: int
    workers: int
    work_dir: Path
    http_port: int


def _parse_k8s_time(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _minus(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else round(later - earlier, 3)


@dataclass
class Bench:
    options: Options
    api_client: client.ApiClient
    kubeconfig: Path
    results: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.batch = client.BatchV1Api(self.api_client)
        self.objects = Objects(self.api_client, self.options.work_dir / "host")

    # -- set-up -----------------------------------------------------------------------------

    def apply_crd(self) -> None:
        self.objects.apply_crd()
        for namespace in (OPERATOR_NS, BASELINE_NS):
            self.objects.create_namespace(namespace)

    def reconciler(self) -> Process:
        work = self.options.work_dir
        return reconciler_process(
            state_dir=work / "state",
            kubeconfig=self.kubeconfig,
            namespace=OPERATOR_NS,
            workers=self.options.workers,
            resync_s=self.options.resync_s,
            http_port=self.options.http_port,
            env=bench_env(self.kubeconfig),
            log_path=work / "reconciler.log",
        )

    def baseline(self) -> Process:
        return baseline_process(
            kubeconfig=self.kubeconfig,
            namespace=BASELINE_NS,
            workers=1,
            env=bench_env(self.kubeconfig),
            log_path=self.options.work_dir / "baseline.log",
        )

    # -- objects ----------------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get(namespace, name)

    def apply_and_wait(self, namespace: str, name: str) -> tuple[float, float, dict[str, Any]]:
        """(applied, ready seen) in epoch seconds, and the Ready object."""
        applied = self.objects.create(namespace, name)
        obj = eventually(
            lambda: self.get(namespace, name),
            lambda found: ready_at(found, 1),
            READY_TIMEOUT_S,
            f"{namespace}/{name} Ready",
        )
        assert obj is not None
        return applied, time.time(), obj

    def first_created(self, obj: dict[str, Any]) -> float | None:
        """The earliest creationTimestamp of the instance's namespaced objects (1 s)."""
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        selector = f"app.kubernetes.io/instance={name}"
        listers = (
            self.core.list_namespaced_secret,
            self.core.list_namespaced_config_map,
            self.core.list_namespaced_service,
            self.core.list_namespaced_persistent_volume_claim,
            self.apps.list_namespaced_deployment,
            self.batch.list_namespaced_job,
        )
        times = [
            item.metadata.creation_timestamp.timestamp()
            for lister in listers
            for item in lister(namespace, label_selector=selector).items
            if item.metadata is not None and item.metadata.creation_timestamp is not None
        ]
        return min(times) if times else None

    def job_completed(self, obj: dict[str, Any]) -> float | None:
        job = self._restore_job(obj)
        return _parse_k8s_time(job.status and job.status.completion_time) if job else None

    def _restore_job(self, obj: dict[str, Any]) -> Any:
        """The restore Job of the object's first attempt; None once the operator removed
        it (it does when the instance starts serving)."""
        names = names_for(parse_instance(obj))
        try:
            return self.batch.read_namespaced_job(
                names.restore_job(1), obj["metadata"]["namespace"]
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def cluster_await_s(self, obj: dict[str, Any]) -> float | None:
        """Deployment created -> restore Job complete, from the API server (1 s resolution)."""
        names = names_for(parse_instance(obj))
        namespace = obj["metadata"]["namespace"]
        deployment = self.apps.read_namespaced_deployment(names.deployment, namespace)
        job = self._restore_job(obj)
        if job is None:
            return None
        created = _parse_k8s_time(deployment.metadata and deployment.metadata.creation_timestamp)
        completed = _parse_k8s_time(job.status and job.status.completion_time)
        if created is None or completed is None:
            return None
        return completed - created

    # -- measurements -----------------------------------------------------------------------

    def deploy_line(self, reconciler: Process, name: str) -> Reconciled:
        instance = f"{OPERATOR_NS}/{name}"

        def find() -> Reconciled | None:
            for line in reconciled_lines(reconciler.lines()):
                if line.instance == instance and line.action == "deploy":
                    return line
            return None

        found = eventually(find, lambda line: line is not None, 30, f"{instance} deploy line")
        assert found is not None
        return found

    def baseline_record(self, baseline: Process, name: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for line in baseline.lines():
                if line.startswith("{"):
                    record: dict[str, Any] = json.loads(line)
                    if record.get("event") == "reconciled" and record.get("name") == name:
                        return record
            return None

        found = eventually(find, lambda r: r is not None, 30, f"baseline record for {name}")
        assert found is not None
        return found

    def one_at_a_time(self, reconciler: Process, baseline: Process) -> None:
        rows_r: list[dict[str, Any]] = []
        rows_b: list[dict[str, Any]] = []
        for index in range(self.options.instances):
            name = f"bench-{index}"
            applied, seen, obj = self.apply_and_wait(OPERATOR_NS, name)
            line = self.deploy_line(reconciler, name)
            rows_r.append(
                {
                    "name": name,
                    "total_s": round(seen - applied, 3),
                    "queue_wait_s": round(line.started - applied, 3),
                    "reconcile_s": round(line.duration_s, 3),
                    "engine_s": line.engine_s,
                    "resources_s": line.resources_s,
                    "around_engine_s": _rounded(line.around_engine_s),
                    "ready_seen_after_s": round(seen - line.ended, 3),
                    "cluster_await_s": self.cluster_await_s(obj),
                    "start_to_first_object_s": _minus(self.first_created(obj), line.started),
                    "job_complete_to_end_s": _minus(line.ended, self.job_completed(obj)),
                    "resource_changes": obj["status"].get("lastUpdate", {}).get("resourceChanges"),
                }
            )
            rows_r[-1]["tree_rss_mib_after"] = round(
                procfs.tree_rss_kib(reconciler.pid)[0] / 1024, 1
            )
            print(f"reconciler {name}: {rows_r[-1]}", flush=True)
            applied, seen, obj = self.apply_and_wait(BASELINE_NS, name)
            record = self.baseline_record(baseline, name)
            rows_b.append(
                {
                    "name": name,
                    "total_s": round(seen - applied, 3),
                    "queue_wait_s": round(record["picked_up"] - applied, 3),
                    "render_s": round(record["rendered"] - record["picked_up"], 3),
                    "apply_s": round(record["apply_s"], 3),
                    "readiness_wait_s": round(record["readiness_wait_s"], 3),
                    "ready_seen_after_s": round(seen - record["status_written"], 3),
                    "cluster_await_s": self.cluster_await_s(obj),
                    "start_to_first_object_s": _minus(self.first_created(obj), record["picked_up"]),
                    "job_complete_to_end_s": _minus(
                        record["status_written"], self.job_completed(obj)
                    ),
                }
            )
            print(f"baseline   {name}: {rows_b[-1]}", flush=True)

        def summarize(rows: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
            return {
                key: summary([float(row[key]) for row in rows if row[key] is not None])
                for key in keys
                if any(row[key] is not None for row in rows)
            }

        reconciler_summary = summarize(
            rows_r,
            [
                "total_s",
                "queue_wait_s",
                "reconcile_s",
                "engine_s",
                "resources_s",
                "around_engine_s",
                "ready_seen_after_s",
                "cluster_await_s",
                "start_to_first_object_s",
                "job_complete_to_end_s",
            ],
        )
        baseline_summary = summarize(
            rows_b,
            [
                "total_s",
                "queue_wait_s",
                "render_s",
                "apply_s",
                "readiness_wait_s",
                "ready_seen_after_s",
                "cluster_await_s",
                "start_to_first_object_s",
                "job_complete_to_end_s",
            ],
        )
        r_total, b_total = reconciler_summary["total_s"], baseline_summary["total_s"]
        self.results["apply_to_ready"] = {
            "reconciler": {"instances": rows_r, "summary": reconciler_summary},
            "baseline": {"instances": rows_b, "summary": baseline_summary},
            "ratio_reconciler_over_baseline": {
                "p50": round(r_total["p50"] / b_total["p50"], 2),
                "p95": round(r_total["p95"] / b_total["p95"], 2),
            },
            "overhead_over_baseline_s": {
                "p50": round(r_total["p50"] - b_total["p50"], 3),
                "p95": round(r_total["p95"] - b_total["p95"], 3),
            },
        }

    def idle_cpu(self, reconciler: Process) -> dict[str, Any]:
        """CPU of the tree over the same window as the no-op one, with 0 objects."""
        before = procfs.tree_cpu_ms(reconciler.pid)
        started = time.monotonic()
        time.sleep(self.options.noop_periods * self.options.resync_s)
        cpu_ms = procfs.tree_cpu_ms(reconciler.pid) - before
        window = time.monotonic() - started
        return {
            "window_s": round(window, 1),
            "cpu_ms_process_tree": round(cpu_ms, 1),
            "cpu_ms_per_second": round(cpu_ms / window, 2),
        }

    def noop(self, reconciler: Process, idle: dict[str, Any]) -> None:
        def count(action: str) -> int:
            return sum(line.action == action for line in reconciled_lines(reconciler.lines()))

        ids_before = self.objects.last_update_ids(OPERATOR_NS)
        deploys_before, in_sync_before = count("deploy"), count("in-sync")
        cpu_before = procfs.tree_cpu_ms(reconciler.pid)
        started = time.monotonic()
        time.sleep(self.options.noop_periods * self.options.resync_s)
        cpu_after = procfs.tree_cpu_ms(reconciler.pid)
        window = time.monotonic() - started
        ids_after = self.objects.last_update_ids(OPERATOR_NS)
        in_sync = count("in-sync") - in_sync_before
        cpu_ms = cpu_after - cpu_before
        self.results["noop"] = {
            "window_s": round(window, 1),
            "resync_period_s": self.options.resync_s,
            "in_sync_passes": in_sync,
            "engine_runs_deploy_lines": count("deploy") - deploys_before,
            "last_update_ids_changed": sum(ids_before[k] != ids_after.get(k) for k in ids_before),
            "cpu_ms_process_tree": round(cpu_ms, 1),
            "cpu_ms_per_in_sync_pass": round(cpu_ms / in_sync, 2) if in_sync else None,
            "cpu_ms_per_second": round(cpu_ms / window, 2),
            "zero_objects_same_window": idle,
        }
        print(f"no-op: {self.results['noop']}", flush=True)

    def run(self) -> dict[str, Any]:
        reconciler, baseline = self.reconciler(), self.baseline()
        self.apply_crd()
        try:
            reconciler.start()
            baseline.start()
            wait_healthy(reconciler, self.options.http_port)
            time.sleep(self.options.resync_s)  # settle: start-up work and a first resync
            idle_zero = rss_sample(reconciler.pid)
            print(f"idle RSS, 0 objects: {idle_zero}", flush=True)
            idle_cpu = self.idle_cpu(reconciler)
            print(f"idle CPU, 0 objects: {idle_cpu}", flush=True)
            peak = PeakRss(reconciler.pid)
            peak.start()
            try:
                self.one_at_a_time(reconciler, baseline)
            finally:
                self.results["peak_rss_one_at_a_time"] = peak.stop()
            time.sleep(self.options.resync_s)
            idle_n = rss_sample(reconciler.pid)
            print(f"idle RSS, {self.options.instances} objects: {idle_n}", flush=True)
            self.results["idle_rss"] = {
                "objects_0": idle_zero,
                f"objects_{self.options.instances}": idle_n,
                "baseline_objects_n": rss_sample(baseline.pid, samples=1, every_s=0),
            }
            self.noop(reconciler, idle_cpu)
        finally:
            reconciler.stop()
            baseline.stop()
        return self.results
