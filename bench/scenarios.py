"""The scenarios, each with one reconciler process (`runner.Reconciler`) on the bench's own
cluster, filling the results dict that becomes the JSON and the page (`bench.report`):
`one_at_a_time` (reconciler and direct-apply baseline interleaved; idle RSS; no-op cost),
`broken_mix` (a valid object alone, then beside ten broken ones), `scale` (K objects at
once on several kwok nodes, idle and resync cost, then a restart) and `backends` (one at a
time and a burst, with the state on file and on the cluster's S3 store). bench/README.md.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench import runner, stats
from bench.baseline import DirectApply
from bench.cluster import STORE_NAMESPACE, STORE_SECRET, Cluster, kwok_node, s3_backend_url
from bench.runner import Objects, Reconciler, cpu_now, eventually, load_average, rss_sample
from bench.stats import check, reconciled_lines, summarize
from reconciler.names import names_for
from reconciler.spec import parse_instance

# name -> (what the spec changes, the reason its Ready=False must carry); as in
# tests/integration/test_broken_objects.py, played by hack/kwok-stages.yaml.
BROKEN: Final[dict[str, tuple[dict[str, Any], str]]] = {
    **{f"no-class-{n}": ({"storage_class": "no-such-class"}, "VolumePending") for n in (1, 2, 3)},
    **{
        f"no-image-{n}": ({"image": "kwok.invalid/image-pull-fails:1"}, "ImagePullFailed")
        for n in (1, 2)
    },
    **{f"crashing-{n}": ({"image": "kwok.invalid/crash-loops:1"}, "CrashLooping") for n in (1, 2)},
    **{
        f"no-secret-{n}": ({"passwordSecretRef": {"name": f"missing-{n}"}}, "SecretMissing")
        for n in (1, 2)
    },
    "failing-job": ({"image": "kwok.invalid/job-fails:1"}, "RestoreRetrying"),
}
PODS_PER_NODE: Final = 250  # hack/kwok-stages.yaml


@dataclass
class Bench:
    """What every scenario gets."""

    work_dir: Path
    cluster: Cluster
    objects: Objects
    http_port: int
    workers: int
    resync_s: float

    def reconciler(
        self,
        namespaces: tuple[str, ...],
        log: str,
        env: dict[str, str],
        state_dir: Path | None = None,
    ) -> Reconciler:
        return Reconciler(
            state_dir=state_dir or self.work_dir / "state",
            log_path=self.work_dir / f"{log}.log",
            kubeconfig=self.cluster.kubeconfig,
            namespaces=namespaces,
            workers=self.workers,
            resync_s=self.resync_s,
            http_port=self.http_port,
            env=env,
            host_path_root=self.objects.host_root,
        )

    def env(self) -> dict[str, str]:
        return runner.bench_env(self.cluster.kubeconfig)

    def timed(self, reconciler: Reconciler, namespace: str, name: str) -> dict[str, Any]:
        """Creates one object, waits for Ready, and splits its time by the log."""
        applied = self.objects.create(namespace, name)
        seen, obj = self.objects.wait_ready(namespace, name, reconciler.check_running)
        key = f"{namespace}/{name}"

        def split() -> dict[str, Any]:
            return stats.object_split(reconciled_lines(reconciler.lines()), key, applied, seen)

        found = eventually(split, lambda row: row["ready_seen_after_s"] is not None, 30, key)
        return {"name": name, **found, **self.cluster_times(obj, seen)}

    def cluster_times(self, obj: dict[str, Any], seen: float) -> dict[str, float | None]:
        """From the API server (1 s resolution): Deployment created → restore Job complete
        (its `Completed` Event, which outlives a Job that was deleted), and
        restore Job complete → Ready seen."""
        names = names_for(parse_instance(obj))
        namespace = obj["metadata"]["namespace"]
        created = self.objects.event_time(namespace, names.deployment, "ScalingReplicaSet")
        completed = self.objects.event_time(namespace, names.restore_job(1), "Completed")
        if completed is None:
            return {"cluster_await_s": None, "job_complete_to_ready_s": None}
        return {
            "cluster_await_s": None if created is None else round(completed - created, 3),
            "job_complete_to_ready_s": round(seen - completed, 3),
        }


def _log(what: str, value: object) -> None:
    print(f"{what}: {value}", flush=True)


def window(
    reconciler: Reconciler, objects: Objects, namespace: str, seconds: float
) -> dict[str, Any]:
    """Nothing changed for `seconds`: the passes by action (a `ready` pass found an
    object Ready without an engine run), engine runs, changed `status.lastUpdate` ids,
    and the CPU of the reconciler's process tree."""
    skip = len(reconciler.lines())
    ids = objects.last_update_ids(namespace)
    before, started = cpu_now(reconciler.pid), time.monotonic()
    time.sleep(seconds)
    cpu = cpu_now(reconciler.pid).minus(before)
    elapsed = time.monotonic() - started
    lines = reconciled_lines(reconciler.lines()[skip:])
    passes = sum(line.action == "ready" for line in lines)
    cpu_ms = cpu["own_ms"] + cpu["engine_ms"]
    after = objects.last_update_ids(namespace)
    return {
        "window_s": round(elapsed, 1),
        "objects": len(ids),
        "passes": dict(Counter(line.action for line in lines)),
        "ready_passes": passes,
        "engine_runs": sum(line.engine_runs for line in lines),
        "last_update_ids_changed": sum(ids[name] != after.get(name) for name in ids),
        "cpu_ms": round(cpu_ms, 1),
        "cpu_ms_per_ready_pass": round(cpu_ms / passes, 2) if passes else None,
        "cpu_ms_per_second": round(cpu_ms / elapsed, 2),
    }


# -- one at a time ------------------------------------------------------------------------------


def one_at_a_time(bench: Bench, results: dict[str, Any], instances: int, noop_periods: int) -> None:
    ns_r, ns_b = "bench-reconciler", "bench-baseline"
    bench.objects.apply_crd([ns_r, ns_b])
    baseline = DirectApply(bench.objects.api_client)
    reconciler = bench.reconciler((ns_r,), "reconciler", bench.env())
    rows_r: list[dict[str, Any]] = []
    rows_b: list[dict[str, Any]] = []
    try:
        reconciler.start()
        reconciler.wait_healthy()
        time.sleep(bench.resync_s)  # settle: start-up work and a first resync
        idle_0 = rss_sample(reconciler.pid)
        results["zero_objects"] = window(
            reconciler, bench.objects, ns_r, noop_periods * bench.resync_s
        )
        _log("0 objects", (idle_0, results["zero_objects"]))
        peak = runner.PeakRss(reconciler.pid)
        peak.start()
        try:
            for index in range(instances):
                name = f"bench-{index}"
                row = bench.timed(reconciler, ns_r, name)
                row["tree_rss_mib_after"] = round(runner.tree_rss_kib(reconciler.pid)[0] / 1024, 1)
                rows_r.append(row)
                _log(f"reconciler {name}", row)
                applied = bench.objects.create(ns_b, name)
                obj = bench.objects.get(ns_b, name)
                assert obj is not None
                parts = baseline.deploy(obj)
                seen, obj = bench.objects.wait_ready(ns_b, name, lambda: None)
                rows_b.append(
                    {
                        "name": name,
                        "total_s": round(seen - applied, 3),
                        **parts,
                        **bench.cluster_times(obj, seen),
                    }
                )
                _log(f"baseline   {name}", rows_b[-1])
        finally:
            results["peak_rss"] = peak.stop()
        time.sleep(bench.resync_s)
        results["idle_rss"] = {"objects_0": idle_0, "objects_n": rss_sample(reconciler.pid)}
        results["noop"] = window(reconciler, bench.objects, ns_r, noop_periods * bench.resync_s)
        _log("no-op", results["noop"])
    finally:
        reconciler.stop()
    r, b = summarize(rows_r), summarize(rows_b)
    overhead = round(r["total_s"]["p50"] - b["total_s"]["p50"], 3)
    results["apply_to_ready"] = {
        "reconciler": {"instances": rows_r, "summary": r},
        "baseline": {"instances": rows_b, "summary": b},
        "ratio_p50": stats.ratio(r["total_s"]["p50"], b["total_s"]["p50"]),
        "overhead_p50_s": overhead,
        "overhead_p95_s": round(r["total_s"]["p95"] - b["total_s"]["p95"], 3),
    }
    results["targets"] = [
        check(
            "one at a time: reconciler - baseline, applied → Ready, p50", stats.OVERHEAD_S, overhead
        ),
        check(
            "engine runs over unchanged objects (no-op window)",
            stats.ENGINE_RUNS_UNCHANGED,
            results["noop"]["engine_runs"],
        ),
    ]


# -- broken objects beside a valid one -------------------------------------------------------------


def broken_mix(bench: Bench, results: dict[str, Any], repetitions: int) -> None:
    """`repetitions` valid objects one at a time with nothing else in the reconciler's
    namespaces (`bench-alone`); then the ten BROKEN objects in `bench-broken`, waited on
    until each reports its reason; then as many valid objects there, one at a time. Same
    process, same spec; the broken ones stay broken throughout."""
    alone_ns, mix_ns = "bench-alone", "bench-broken"
    bench.objects.apply_crd([alone_ns, mix_ns])
    reconciler = bench.reconciler((alone_ns, mix_ns), "reconciler", bench.env())
    results["broken"] = {}
    try:
        reconciler.start()
        reconciler.wait_healthy()
        time.sleep(bench.resync_s)
        results["load_average_before_alone"] = load_average()
        alone = [
            bench.timed(reconciler, alone_ns, f"valid-{index}") for index in range(repetitions)
        ]
        _log("alone", [row["total_s"] for row in alone])
        results["load_average_before_broken"] = load_average()
        created = {
            name: bench.objects.create(mix_ns, name, change) for name, (change, _) in BROKEN.items()
        }

        def reasons() -> dict[str, str | None]:
            return {
                name: (runner.condition_of(bench.objects.get(mix_ns, name), "Ready") or {}).get(
                    "reason"
                )
                for name in BROKEN
            }

        try:
            eventually(
                reasons,
                lambda found: all(found[name] == BROKEN[name][1] for name in BROKEN),
                300,
                "every broken object's reason",
                1.0,
            )
        except TimeoutError as error:
            results["broken_error"] = str(error)
        results["broken"]["reasons_before"] = reasons()
        results["broken"]["reported_after_s"] = round(time.time() - min(created.values()), 1)
        skip = len(reconciler.lines())
        started = time.time()
        mixed = [bench.timed(reconciler, mix_ns, f"valid-{index}") for index in range(repetitions)]
        _log("beside the broken ones", [row["total_s"] for row in mixed])
        broken_keys = {f"{mix_ns}/{name}" for name in BROKEN}
        lines = [
            line
            for line in reconciled_lines(reconciler.lines()[skip:])
            if line.instance in broken_keys
        ]
        results["broken"]["during_valid_s"] = round(time.time() - started, 1)
        results["broken"]["reconciles_during_valid"] = stats.where_time_went(lines)
        results["broken"]["reasons_after"] = reasons()
    finally:
        reconciler.stop()
    a, m = summarize(alone), summarize(mixed)
    results.update(
        alone={"instances": alone, "summary": a},
        beside_broken={"instances": mixed, "summary": m},
        ratio_p50=stats.ratio(m["total_s"]["p50"], a["total_s"]["p50"]),
        ratio_p95=stats.ratio(m["total_s"]["p95"], a["total_s"]["p95"]),
    )


# -- scale ---------------------------------------------------------------------------------------


def nodes_for(objects: int) -> int:
    """Extra kwok nodes beside the cluster's own: room for a server pod and a restore Job
    pod per object, and a quarter to spare."""
    return max(0, math.ceil(2 * objects * 1.25 / PODS_PER_NODE) - 1)


@dataclass
class _Timeline:
    """Every tick_s during the burst: objects Ready, the tree's RSS, the queue, the not
    Ready objects by reason (the reconciler's /metrics), engine runs and CPU so far."""

    reconciler: Reconciler
    cluster_pids: list[int]
    first_apply: float
    start_cpu: runner.Cpu
    ready: int = 0
    samples: list[dict[str, Any]] | None = None

    def tick(self) -> None:
        metrics = self.reconciler.metrics()
        cpu = cpu_now(self.reconciler.pid, self.cluster_pids).minus(self.start_cpu)
        waiting = {
            key.split('reason="')[1].rstrip('"}'): int(value)
            for key, value in metrics.items()
            if key.startswith('instances{ready="False"')
            or key.startswith('instances{ready="Unknown"')
        }
        lines = reconciled_lines(self.reconciler.lines())
        sample = {
            "t_s": round(time.time() - self.first_apply, 1),
            "ready": self.ready,
            "rss_mib": round(runner.tree_rss_kib(self.reconciler.pid)[0] / 1024, 1),
            "load1": load_average()[0],
            "queue_depth": metrics.get("queue_depth"),
            "queue_delayed": metrics.get("queue_delayed"),
            "queue_oldest_wait_s": metrics.get("queue_oldest_wait_seconds"),
            "not_ready_by_reason": waiting,
            "engine_runs": sum(line.engine_runs for line in lines),
            "cpu_s": {
                key.removesuffix("_ms"): round(value / 1000, 1) for key, value in cpu.items()
            },
        }
        self.samples = [*(self.samples or []), sample]
        _log("progress", sample)


def scale(bench: Bench, results: dict[str, Any], count: int) -> None:
    namespace = "bench-scale"
    extra = nodes_for(count)
    bench.objects.add_nodes([kwok_node(index) for index in range(extra)])
    bench.objects.apply_crd([namespace])
    env = bench.env()  # one passphrase for both processes
    names = [f"s-{index:04d}" for index in range(count)]
    expected = {f"{namespace}/{name}" for name in names}
    cluster_pids = list(bench.cluster.component_pids().values())
    results.update(objects=count, extra_nodes=extra)
    first = bench.reconciler((namespace,), "reconciler", env)
    try:
        first.start()
        first.wait_healthy()
        time.sleep(min(bench.resync_s, 10.0))
        results["idle_rss_objects_0"] = rss_sample(first.pid)
        start_cpu = cpu_now(first.pid, cluster_pids)
        timeline = _Timeline(first, cluster_pids, time.time(), start_cpu)
        peak = runner.PeakRss(first.pid, every_s=1.0, tick=timeline.tick, tick_s=30.0)
        peak.start()
        try:
            applied = [bench.objects.create(namespace, name) for name in names]
            seen = bench.objects.wait_all_ready(
                namespace,
                names,
                600 + 30.0 * count,
                first.check_running,
                poll_s=max(0.5, count / 200),
                progress=lambda ready: setattr(timeline, "ready", ready),
            )
        finally:
            results["peak_rss"] = peak.stop()
            results["timeline"] = timeline.samples
        lines = reconciled_lines(first.lines())
        burst = stats.burst_summary(applied, seen)
        results["burst"] = {
            **burst,
            "cpu": cpu_now(first.pid, cluster_pids).minus(start_cpu),
            "where_time_went": stats.where_time_went(lines),
            "worker_busy_fraction": round(
                sum(line.duration_s for line in lines) / (bench.workers * burst["all_ready_s"]), 3
            ),
            "first_reconcile_order": stats.reconcile_order(lines, expected),
        }
        _log("burst", results["burst"])
        time.sleep(bench.resync_s)
        results["idle_rss_objects_n"] = rss_sample(first.pid)
        results["resync"] = window(first, bench.objects, namespace, 2 * bench.resync_s)
        _log("idle", (results["idle_rss_objects_n"], results["resync"]))
        ids = bench.objects.last_update_ids(namespace)
        stopping = time.monotonic()
        results["stop"] = {
            "exit_code": first.stop(),
            "took_s": round(time.monotonic() - stopping, 2),
        }
    finally:
        first.stop()
    second = bench.reconciler((namespace,), "reconciler-restarted", env)
    try:
        second.start()
        results["restart"] = _first_pass(second, expected)
        time.sleep(bench.resync_s)
        found = stats.first_pass(reconciled_lines(second.lines()), expected)
        after = bench.objects.last_update_ids(namespace)
        results["restart"].update(
            window_s=round(time.time() - second.started_at, 1),
            engine_runs=found.engine_runs,
            passes_by_action=dict(found.actions),
            last_update_ids_changed=sum(ids[name] != after.get(name) for name in ids),
        )
        results["idle_rss_objects_n_after_restart"] = rss_sample(second.pid)
        _log("restart", results["restart"])
    finally:
        second.stop()
    results["targets"] = scale_targets(results)


def _first_pass(process: Reconciler, expected: set[str], timeout_s: float = 1800) -> dict[str, Any]:
    """Polls /healthz and the log from the fork until every object had a pass."""
    healthz_at = None
    deadline = time.monotonic() + timeout_s
    while True:
        process.check_running()
        if healthz_at is None and process.get("/healthz") is not None:
            healthz_at = time.time()
        found = stats.first_pass(reconciled_lines(process.lines()), expected)
        if found.reached_at is not None:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(found.missing)} objects had no pass after {timeout_s}s")
        time.sleep(1.0)
    cpu = cpu_now(process.pid)
    lines = process.lines()

    def since(at: float | None) -> float | None:
        return None if at is None else round(at - process.started_at, 2)

    return {
        "starting_line_s": since(stats.first_message_at(lines, "starting")),
        "first_list_s": since(stats.first_message_at(lines, "listed")),
        "healthz_ok_s": since(healthz_at),
        "first_pass_s": since(found.reached_at),
        "cpu_ms": round(cpu.own_ms + cpu.engine_ms, 1),
    }


TARGETS: Final = (  # (what, target, where in the results, only for 1,000 objects)
    ("1000 objects at once: all Ready", stats.ALL_READY_S, "burst", "all_ready_s", True),
    ("peak RSS of the process tree, burst", stats.PEAK_RSS_MIB, "peak_rss", "peak_mib", True),
    ("idle RSS, 1000 Ready", stats.IDLE_RSS_MIB, "idle_rss_objects_n", "median_mib", True),
    ("engine runs after a restart", stats.ENGINE_RUNS_UNCHANGED, "restart", "engine_runs", False),
    ("restart: every object had a pass", stats.FIRST_PASS_S, "restart", "first_pass_s", True),
)


def scale_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Targets for 1,000 objects are not claimed for another count."""
    count = results["objects"]
    note = f" (this run: {count}; not comparable)"
    return [
        check(
            what + (note if sized and count != 1000 else ""),
            target,
            None if sized and count != 1000 else (results.get(part) or {}).get(key),
        )
        for what, target, part, key, sized in TARGETS
    ]


# -- state backends ------------------------------------------------------------------------------

BACKENDS: Final = ("file", "s3")


@contextmanager
def _running(
    bench: Bench, namespace: str, log: str, env: dict[str, str], state_dir: Path
) -> Iterator[Reconciler]:
    """A reconciler for `namespace`, healthy and settled for a resync period; stopped after."""
    reconciler = bench.reconciler((namespace,), log, env, state_dir)
    try:
        reconciler.start()
        reconciler.wait_healthy()
        time.sleep(bench.resync_s)
        yield reconciler
    finally:
        reconciler.stop()


def _one_by_one(bench: Bench, reconciler: Reconciler, namespace: str, count: int) -> dict[str, Any]:
    load = load_average()
    rows = [bench.timed(reconciler, namespace, f"one-{index}") for index in range(count)]
    return {"load_average_before": load, "instances": rows, "summary": summarize(rows)}


def _burst(bench: Bench, reconciler: Reconciler, namespace: str, count: int) -> dict[str, Any]:
    """`count` objects created at once; each one's time split by the log as one at a time."""
    load = load_average()
    names = [f"burst-{index}" for index in range(count)]
    applied = {name: bench.objects.create(namespace, name) for name in names}
    seen = bench.objects.wait_all_ready(
        namespace, names, 600 + 30.0 * count, reconciler.check_running, runner.POLL_S
    )

    def split() -> list[dict[str, Any]]:
        lines = reconciled_lines(reconciler.lines())
        return [
            {"name": name, **stats.object_split(lines, f"{namespace}/{name}", at, seen[name])}
            for name, at in applied.items()
        ]

    rows = eventually(
        split, lambda found: all(row["ready_seen_after_s"] is not None for row in found), 30, "log"
    )
    ready = {item["metadata"]["name"]: item for item in bench.objects.list(namespace)}
    rows = [{**row, **bench.cluster_times(ready[row["name"]], seen[row["name"]])} for row in rows]
    return {
        "load_average_before": load,
        **stats.burst_summary(list(applied.values()), seen),
        "instances": rows,
        "summary": summarize(rows),
    }


def backends(bench: Bench, results: dict[str, Any], instances: int, burst: int) -> None:
    """The reconciler with its state on `file://<state dir>` (the default) and under a
    prefix of this run's own in the cluster's S3 store: one at a time on file, then on S3;
    then a burst on file, then on S3. Each of the four gets its own namespace and process
    (one after the other: they share the bench's HTTP port); each backend keeps one state
    directory and one environment (passphrase, credentials) for both its processes."""
    parts = {"one_at_a_time": (instances, _one_by_one), "burst": (burst, _burst)}
    namespaces = {
        (b, part): f"bench-{b}-{part}".replace("_", "-") for b in BACKENDS for part in parts
    }
    bench.objects.apply_crd(namespaces.values())
    prefix = f"bench-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    s3_url = s3_backend_url(bench.cluster.store_endpoint(), prefix)
    keys = bench.objects.secret_data(STORE_NAMESPACE, STORE_SECRET)
    envs = {
        "file": runner.backend_env(bench.env()),
        "s3": runner.backend_env(
            bench.env(), s3_url, (keys["access_key_id"], keys["secret_access_key"])
        ),
    }
    state_dirs = {backend: bench.work_dir / f"state-{backend}" for backend in BACKENDS}
    found: dict[str, dict[str, Any]] = {
        "file": {"backend_url": f"file://{state_dirs['file']}"},
        "s3": {"backend_url": s3_url},
    }
    results["backends"] = found
    for part, (count, measure) in parts.items():
        for backend in BACKENDS:
            namespace = namespaces[(backend, part)]
            log = f"reconciler-{namespace.removeprefix('bench-')}"
            with _running(bench, namespace, log, envs[backend], state_dirs[backend]) as process:
                found[backend][part] = measure(bench, process, namespace, count)
            _log(f"{backend}, {part}", found[backend][part]["summary"]["total_s"])
    results["ratios"] = stats.backend_ratios(found["file"], found["s3"])
    _log("s3 / file", [(row["what"], row["ratio"]) for row in results["ratios"]])
