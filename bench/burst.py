"""The burst scenario: K objects applied at once, for each K and worker count W of a grid.

One cluster for the whole grid. Each cell (K, W) runs on fresh ground:
1. a new namespace `burst-r-k<K>-w<W>` and a reconciler started for it alone, on a new
   state directory, with `--workers=W`; once /healthz answers, K objects are created in
   a tight loop and the namespace is listed every POLL_S until all are Ready at
   generation 1; meanwhile a thread samples the RSS of the reconciler's process tree
   (python + pulumi + provider) every 0.25 s; then the reconciler is stopped (SIGTERM);
2. the same for the baseline (`python -m bench.baseline --workers=W`) in
   `burst-b-k<K>-w<W>`, with the reconciler already stopped, so the two never share the
   CPU;
3. clean-up: the reconciler's finalizer is dropped from the cell's objects and both
   namespaces and their volumes are deleted, and the next cell waits until they are gone.
   The reconciler's own teardown (a backup Job and a destroy per object) is not run: it
   would cost more than the burst itself, and the next cell's reconciler starts on a new
   state directory anyway, so the abandoned stacks cost nothing. The cluster therefore
   holds only the current cell's objects (the kwok node takes 250 pods).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench import machine, procfs, targets
from bench.objects import Objects, ready_timeout_s
from bench.processes import (
    PeakRss,
    Process,
    baseline_process,
    bench_env,
    reconciler_process,
    wait_baseline_started,
    wait_healthy,
)
from bench.stats import burst_summary, ratio, reconciled_lines, summary

SETTLE_S: Final = 2.0  # after /healthz (or the baseline's start line), before the burst


@dataclass(frozen=True)
class BurstOptions:
    sizes: tuple[int, ...]
    workers: tuple[int, ...]
    resync_s: float
    work_dir: Path
    http_port: int


@dataclass
class Burst:
    options: BurstOptions
    objects: Objects
    kubeconfig: Path

    def side(
        self, process: Process, started: Callable[[], object], namespace: str, size: int
    ) -> dict[str, Any]:
        """Starts `process` for `namespace`, waits for `started`, applies `size` objects at
        once and waits until all are Ready; always stops the process."""
        names = [f"bench-{index}" for index in range(size)]
        try:
            process.start()
            started()
            time.sleep(SETTLE_S)
            cpu_before = procfs.tree_cpu_ms(process.pid)
            peak = PeakRss(process.pid)
            peak.start()
            try:
                applied = [self.objects.create(namespace, name) for name in names]
                seen = self.objects.wait_all_ready(
                    namespace, names, ready_timeout_s(size), process.check_running
                )
            finally:
                peak_rss = peak.stop()
            cpu_s = (procfs.tree_cpu_ms(process.pid) - cpu_before) / 1000
        finally:
            exit_code = process.stop()
        result = burst_summary(applied, seen)
        return {
            **result,
            "peak_rss": peak_rss,
            "cpu_s_process_tree": round(cpu_s, 1),
            "cpu_s_per_instance": round(cpu_s / size, 2),
            "exit_code": exit_code,
        }

    def cell(self, size: int, workers: int) -> dict[str, Any]:
        tag = f"k{size}-w{workers}"
        cell_dir = self.options.work_dir / "burst" / tag
        cell_dir.mkdir(parents=True, exist_ok=True)
        ns_r, ns_b = f"burst-r-{tag}", f"burst-b-{tag}"
        env = bench_env(self.kubeconfig)
        result: dict[str, Any] = {
            "objects": size,
            "workers": workers,
            "load_average_at_start": machine.load_average(),
        }
        reconciler = reconciler_process(
            state_dir=cell_dir / "state",
            kubeconfig=self.kubeconfig,
            namespace=ns_r,
            workers=workers,
            resync_s=self.options.resync_s,
            http_port=self.options.http_port,
            env=env,
            log_path=cell_dir / "reconciler.log",
        )
        baseline = baseline_process(
            kubeconfig=self.kubeconfig,
            namespace=ns_b,
            workers=workers,
            env=env,
            log_path=cell_dir / "baseline.log",
        )
        try:
            for namespace in (ns_r, ns_b):
                self.objects.create_namespace(namespace)
            result["reconciler"] = self.side(
                reconciler, lambda: wait_healthy(reconciler, self.options.http_port), ns_r, size
            )
            result["reconciler"]["reconciles"] = reconcile_lines(reconciler)
            print(f"burst {tag} reconciler: {result['reconciler']}", flush=True)
            result["baseline"] = self.side(
                baseline, lambda: wait_baseline_started(baseline), ns_b, size
            )
            result["baseline"]["reconciles"] = baseline_records(baseline)
            print(f"burst {tag} baseline:   {result['baseline']}", flush=True)
            result["ratio_all_ready_reconciler_over_baseline"] = ratio(
                result["reconciler"]["all_ready_s"], result["baseline"]["all_ready_s"]
            )
        except (TimeoutError, RuntimeError) as error:
            result["error"] = str(error)
            print(f"burst {tag}: {error}", flush=True)
        finally:
            try:
                result["cleanup_s"] = self.objects.remove([ns_r, ns_b])
            except TimeoutError as error:  # recorded; the next cell has its own namespaces
                result["cleanup_error"] = str(error)
        return result

    def run(self, checkpoint: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        self.objects.apply_crd()
        cells: list[dict[str, Any]] = []
        for size in self.options.sizes:
            for workers in self.options.workers:
                cells.append(self.cell(size, workers))
                checkpoint(burst_results(cells))
        return burst_results(cells)


def burst_results(cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {"burst": {"cells": cells, "targets": burst_targets(cells)}}


def burst_targets(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    size = targets.BURST_ALL_READY_S["objects"]
    rows = [
        targets.check(
            f"{size} objects applied at once, {cell['workers']} workers: first apply → all Ready",
            targets.BURST_ALL_READY_S,
            cell.get("reconciler", {}).get("all_ready_s"),
        )
        for cell in cells
        if cell["objects"] == size
    ]
    if not rows:
        rows.append(
            targets.check(
                f"{size} objects applied at once: not in this grid", targets.BURST_ALL_READY_S, None
            )
        )
    peaks = [cell["reconciler"]["peak_rss"]["peak_mib"] for cell in cells if "reconciler" in cell]
    rows.append(
        targets.check(
            "peak RSS of the reconciler's process tree, largest cell",
            targets.PEAK_RSS_MIB,
            max(peaks) if peaks else None,
        )
    )
    return rows


def reconcile_lines(reconciler: Process) -> dict[str, Any]:
    """The reconciler's deploy reconciles: how many, their outcomes, their durations."""
    deploys = [line for line in reconciled_lines(reconciler.lines()) if line.action == "deploy"]
    return {
        "deploy_lines": len(deploys),
        "outcomes": dict(Counter(line.outcome for line in deploys)),
        "deploy_s": summary([line.duration_s for line in deploys]) if deploys else None,
    }


def baseline_records(baseline: Process) -> dict[str, Any]:
    records = [json.loads(line) for line in baseline.lines() if line.startswith("{")]
    done = [record for record in records if record.get("event") == "reconciled"]
    return {
        "reconciles": len(done),
        "failures": sum(record.get("event") == "failed" for record in records),
        "reconcile_s": summary([record["ready"] - record["picked_up"] for record in done])
        if done
        else None,
    }
