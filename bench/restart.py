"""The restart scenario: M Ready objects, the reconciler stopped and started again.

1. A reconciler starts on a new state directory for namespace `bench-restart`; after
   /healthz and one resync period, the idle RSS of its process tree with 0 objects
   (5 samples, 1 s apart).
2. M objects are applied at once and waited on until all are Ready (the set-up; its
   time and peak RSS are recorded as a by-product); one resync period later, the idle
   RSS with M objects.
3. The reconciler is stopped with SIGTERM (by PID) and started again on the same state
   directory, with the same passphrase, logging to a second file. Steady state is the
   later of: /healthz answering OK, and the in-sync line (`msg=reconciled phase=in-sync`,
   DEBUG) that completes the set of M objects. Its time is measured from the fork of
   the new process, and the CPU of the process tree from the fork until steady state was
   seen (the tree is new, so its whole CPU time).
4. One more resync period, then the engine runs since the restart: `phase=deploy` lines
   in the second log, and `status.lastUpdate.id`s changed since before the stop (both
   must be 0); and the idle RSS with M objects of the restarted process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench import procfs, targets
from bench.objects import Objects, ready_timeout_s
from bench.processes import (
    PeakRss,
    Process,
    bench_env,
    healthz_ok,
    reconciler_process,
    rss_sample,
    wait_healthy,
)
from bench.stats import burst_summary, first_message_at, reconciled_lines, steady_state

NAMESPACE: Final = "bench-restart"
POLL_S: Final = 0.1
STEADY_TIMEOUT_S: Final = 600.0


@dataclass(frozen=True)
class RestartOptions:
    objects: int
    workers: int
    resync_s: float
    work_dir: Path
    http_port: int


@dataclass
class Restart:
    options: RestartOptions
    objects: Objects
    kubeconfig: Path

    def __post_init__(self) -> None:
        self.dir = self.options.work_dir / "restart"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.env = bench_env(self.kubeconfig)  # one passphrase for both processes
        self.names = [f"bench-{index}" for index in range(self.options.objects)]

    def reconciler(self, log_name: str) -> Process:
        return reconciler_process(
            state_dir=self.dir / "state",
            kubeconfig=self.kubeconfig,
            namespace=NAMESPACE,
            workers=self.options.workers,
            resync_s=self.options.resync_s,
            http_port=self.options.http_port,
            env=self.env,
            log_path=self.dir / log_name,
        )

    def run(self) -> dict[str, Any]:
        self.objects.apply_crd()
        self.objects.create_namespace(NAMESPACE)
        result: dict[str, Any] = {"objects": self.options.objects, "workers": self.options.workers}
        first = self.reconciler("reconciler-before-restart.log")
        try:
            first.start()
            wait_healthy(first, self.options.http_port)
            time.sleep(self.options.resync_s)
            result["idle_rss_objects_0"] = rss_sample(first.pid)
            print(f"idle RSS, 0 objects: {result['idle_rss_objects_0']}", flush=True)
            result["setup"] = self.deploy_all(first)
            print(f"set-up: {result['setup']}", flush=True)
            time.sleep(self.options.resync_s)  # settle: the last deploys' aftermath, a resync
            result["idle_rss_objects_m"] = rss_sample(first.pid)
            print(
                f"idle RSS, {self.options.objects} objects: {result['idle_rss_objects_m']}",
                flush=True,
            )
            ids_before = self.objects.last_update_ids(NAMESPACE)
            stopping = time.monotonic()
            result["stop"] = {"exit_code": first.stop()}
            result["stop"]["took_s"] = round(time.monotonic() - stopping, 2)
        finally:
            first.stop()
        second = self.reconciler("reconciler-after-restart.log")
        try:
            second.start()
            result["restart"] = self.until_steady(second)
            print(f"restart: {result['restart']}", flush=True)
            time.sleep(self.options.resync_s)
            state = steady_state(second.lines(), self.expected())
            ids_after = self.objects.last_update_ids(NAMESPACE)
            result["restart"].update(
                {
                    "window_s": round(time.time() - second.started_at, 1),
                    "engine_runs_deploy_lines": state.deploys,
                    "last_update_ids_changed": sum(
                        ids_before[name] != ids_after.get(name) for name in ids_before
                    ),
                    "reconciled_lines_by_action": dict(state.actions),
                }
            )
            result["idle_rss_objects_m_after_restart"] = rss_sample(second.pid)
            print(f"after restart: {result['restart']}", flush=True)
        finally:
            second.stop()
        result["targets"] = restart_targets(result)
        return {"restart": result}

    def expected(self) -> list[str]:
        return [f"{NAMESPACE}/{name}" for name in self.names]

    def deploy_all(self, reconciler: Process) -> dict[str, Any]:
        peak = PeakRss(reconciler.pid)
        peak.start()
        try:
            applied = [self.objects.create(NAMESPACE, name) for name in self.names]
            seen = self.objects.wait_all_ready(
                NAMESPACE,
                self.names,
                ready_timeout_s(len(self.names)),
                reconciler.check_running,
            )
        finally:
            peak_rss = peak.stop()
        lines = reconciled_lines(reconciler.lines())
        deploys = [line for line in lines if line.action == "deploy"]
        return {**burst_summary(applied, seen), "peak_rss": peak_rss, "deploy_lines": len(deploys)}

    def until_steady(self, process: Process) -> dict[str, Any]:
        """Polls /healthz and the log from the fork until steady state (module doc)."""
        start = process.started_at
        healthz_at, cpu_at_healthz = None, 0.0
        deadline = time.monotonic() + STEADY_TIMEOUT_S
        while True:
            process.check_running()
            if healthz_at is None and healthz_ok(self.options.http_port):
                healthz_at = time.time()
                cpu_at_healthz = procfs.tree_cpu_ms(process.pid)
            lines = process.lines()
            state = steady_state(lines, self.expected())
            if healthz_at is not None and state.reached_at is not None:
                cpu_ms = procfs.tree_cpu_ms(process.pid)
                seen_at = time.time()
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no steady state after {STEADY_TIMEOUT_S:.0f}s: healthz at {healthz_at},"
                    f" {len(state.missing)} objects never in sync"
                )
            time.sleep(POLL_S)
        steady_at = max(healthz_at, state.reached_at)

        def since_start(at: float | None) -> float | None:
            return None if at is None else round(at - start, 3)

        return {
            "steady_state_s": since_start(steady_at),
            "healthz_ok_s": since_start(healthz_at),
            "starting_line_s": since_start(first_message_at(lines, "starting")),
            "first_list_s": since_start(first_message_at(lines, "listed")),
            "all_in_sync_s": since_start(state.reached_at),
            "steady_state_seen_s": since_start(seen_at),
            "cpu_ms_process_tree": round(cpu_ms, 1),
            "cpu_ms_until_healthz": round(cpu_at_healthz, 1),
            "in_sync_lines_until_steady": state.actions.get("in-sync", 0),
            "poll_s": POLL_S,
        }


def restart_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    m = result["objects"]
    measured_with = targets.IDLE_RSS_MIB["objects"]
    restart = result.get("restart", {})
    rows = []
    if m == measured_with:
        rows += [
            targets.check(
                f"idle RSS with {m} objects, median: the reconciler that deployed them",
                targets.IDLE_RSS_MIB,
                result.get("idle_rss_objects_m", {}).get("median_mib"),
            ),
            targets.check(
                f"idle RSS with {m} objects, median: after the restart",
                targets.IDLE_RSS_MIB,
                result.get("idle_rss_objects_m_after_restart", {}).get("median_mib"),
            ),
        ]
    else:
        rows.append(
            targets.check(
                f"idle RSS with {measured_with} objects: this run had {m}",
                targets.IDLE_RSS_MIB,
                None,
            )
        )
    rows += [
        targets.check(
            f"engine runs after the restart, {m} unchanged objects (deploy lines)",
            targets.ENGINE_RUNS_UNCHANGED,
            restart.get("engine_runs_deploy_lines"),
        ),
        targets.check(
            "status.lastUpdate ids changed by the restart",
            targets.ENGINE_RUNS_UNCHANGED,
            restart.get("last_update_ids_changed"),
        ),
        targets.check(
            f"peak RSS of the process tree while the {m} objects were deployed",
            targets.PEAK_RSS_MIB,
            result.get("setup", {}).get("peak_rss", {}).get("peak_mib"),
        ),
    ]
    return rows
