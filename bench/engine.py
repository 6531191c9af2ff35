"""`python -m bench.engine`: what one engine run costs, alone and with two at once
(bench/README.md).

The reconciler spends one `up` per new instance; on two cores that run bounds how fast a
burst of objects can become Ready. Here the driver alone (no reconciler, no watches, no
Jobs played) runs `up` for `--runs` new instances of the original example on its own kwok
cluster, first one at a time, then in two threads at once, as the default two workers do.
For each way it reports the wall time per run, the runs per second, and the CPU per run of
the pulumi CLIs, the Kubernetes providers, this process (the inline program and the
Automation API) and the cluster's components. The first `up` of each driver (the one
`stack init`) is not counted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from kubernetes import client

from bench.cluster import Cluster, machine_lock
from bench.runner import api_client_for, describe_machine, load_average, write_results
from reconciler.desired import Desired
from reconciler.driver import Driver, DriverConfig
from reconciler.program import ClusterAccess
from reconciler.spec import Instance, parse_instance
from reconciler.vocabulary import Stage

TICK_MS: Final = 1000.0 / os.sysconf("SC_CLK_TCK")
ENGINE_PROCESSES: Final = {"pulumi": "cli", "pulumi-resource": "provider"}  # comm, 15 chars
SAMPLE_EVERY_S: Final = 0.02
EXTRA_STACKS: Final = 1000


def _cpu_ms(pid: int | str) -> tuple[str, float] | None:
    """(comm, user + system milliseconds) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return comm, (int(fields[11]) + int(fields[12])) * TICK_MS


class EngineSampler:
    """The CPU of every pulumi CLI and provider that lives while it runs, sampled every
    20 ms (a process's last 20 ms are missed); its own CPU is kept apart."""

    def __init__(self) -> None:
        self.last: dict[int, tuple[str, float]] = {}
        self.own_ms = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EngineSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        started = time.thread_time()
        while not self._stop.is_set():
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    found = _cpu_ms(entry)
                    if found is not None and found[0] in ENGINE_PROCESSES:
                        self.last[int(entry)] = found
            time.sleep(SAMPLE_EVERY_S)
        self.own_ms = (time.thread_time() - started) * 1000

    def by_kind(self) -> dict[str, float]:
        totals = dict.fromkeys(ENGINE_PROCESSES.values(), 0.0)
        for comm, ms in self.last.values():
            totals[ENGINE_PROCESSES[comm]] += ms
        return totals


def cluster_ms(pids: dict[str, int]) -> dict[str, float]:
    found = {name: _cpu_ms(pid) for name, pid in pids.items()}
    return {name: cpu[1] for name, cpu in found.items() if cpu is not None}


def instance(namespace: str, name: str, host_root: Path) -> Instance:
    return parse_instance(
        {
            "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())},
            "spec": {
                "image": "mysql:5.7",
                "database": "otus-database",
                "password": "otuspassword",
                "storage_size": "1Gi",
                "host_path": str(host_root / name / "data"),
                "backup": {"host_path": str(host_root / name / "backup")},
            },
        }
    )


def new_driver(kubeconfig: Path, work: Path, passphrase: str) -> Driver:
    return Driver(
        DriverConfig(
            project_name="bench-engine",
            backend_url=f"file://{work / 'state'}",
            work_dir=work / "workspace",
            cluster=ClusterAccess(kubeconfig=str(kubeconfig)),
            passphrase=passphrase,
        )
    )


def measure(
    way: str, batches: Sequence[tuple[Driver, Sequence[Instance]]], cluster_pids: dict[str, int]
) -> dict[str, Any]:
    """Runs each driver's `up`s in a thread of its own, all threads at once."""
    total_runs = sum(len(instances) for _driver, instances in batches)

    def run_batch(driver: Driver, instances: Sequence[Instance]) -> None:
        for each in instances:
            driver.up(Desired(each, Stage.SERVING))

    threads = [
        threading.Thread(target=run_batch, args=(driver, instances))
        for driver, instances in batches
    ]
    before_cluster, before_own = cluster_ms(cluster_pids), os.times()
    started = time.monotonic()
    with EngineSampler() as sampler:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    wall = time.monotonic() - started
    after_cluster, after_own = cluster_ms(cluster_pids), os.times()
    own = (after_own.user + after_own.system - before_own.user - before_own.system) * 1000
    cpu = {
        **sampler.by_kind(),
        "python": own - sampler.own_ms,
        **{name: after_cluster[name] - before_cluster.get(name, 0.0) for name in after_cluster},
    }
    return {
        "way": way,
        "runs": total_runs,
        "wall_s": round(wall, 2),
        "runs_per_s": round(total_runs / wall, 3),
        "cpu_ms_per_run": {name: round(ms / total_runs, 1) for name, ms in cpu.items()},
    }


def add_stacks(driver_work: Path, count: int) -> int:
    """Copies of one stack's files under new names beside it, as the stacks of other
    instances (and the kept stacks of deleted ones) lie in a busy backend."""
    (project,) = (driver_work / "state" / ".pulumi" / "stacks").iterdir()
    source = sorted(project.glob("*.json"))[0]
    stem = source.name.removesuffix(".json")
    files = [path for path in project.iterdir() if path.name.startswith(stem + ".json")]
    for index in range(count):
        for path in files:
            suffix = path.name.removeprefix(stem)
            shutil.copyfile(path, project / f"{stem}-copy-{index}{suffix}")
    return count


def run(runs: int, work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": describe_machine(), "runs": runs}
    cluster = Cluster(work / "cluster")
    with machine_lock():
        cluster.reserve_ports()
        try:
            cluster.up()
            namespace = f"bench-engine-{uuid.uuid4().hex[:6]}"
            client.CoreV1Api(api_client_for(cluster.kubeconfig)).create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
            )
            pids = cluster.component_pids()
            passphrase = uuid.uuid4().hex
            drivers = [
                new_driver(cluster.kubeconfig, work / f"driver-{index}", passphrase)
                for index in range(2)
            ]
            made = iter(range(10 * runs))

            def instances(count: int) -> list[Instance]:
                return [instance(namespace, f"e-{next(made)}", work / "host") for _ in range(count)]

            for driver in drivers:  # each driver's first stack is made by `stack init`
                driver.up(Desired(instances(1)[0], Stage.SERVING))
            half = runs // 2
            results["ways"] = [
                measure("one at a time", [(drivers[0], instances(runs))], pids),
                measure(
                    "two at once",
                    [(drivers[0], instances(half)), (drivers[1], instances(runs - half))],
                    pids,
                ),
            ]
            copied = add_stacks(work / "driver-0", EXTRA_STACKS)
            results["extra_stacks"] = copied
            results["ways"].append(
                measure(
                    f"one at a time, {copied:,} more stacks",
                    [(drivers[0], instances(runs))],
                    pids,
                )
            )
        finally:
            cluster.down()
    results["load_average_at_end"] = load_average()
    return results


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    ways = results["ways"]
    alone = ways[0]
    kinds = list(alone["cpu_ms_per_run"])

    def per_run(way: dict[str, Any]) -> float:
        return float(way["wall_s"]) / int(way["runs"])

    def ratio(value: float, base: float) -> str:
        return f"{value / base:.2f}x" if base else "-"

    header = " | ".join(way["way"] for way in ways)
    ratios = " | ".join(f"{way['way']} / one at a time" for way in ways[1:])
    lines = [
        "# Benchmarks: what one engine run costs",
        "",
        "Generated by `python -m bench.engine` (see bench/README.md); the raw results are in",
        "docs/benchmarks-engine.json. Do not edit by hand: run the command again.",
        "",
        f"- code: commit {machine['code']['commit']}; differing from it: "
        f"{', '.join(machine['code']['uncommitted']) or 'nothing'}",
        f"- machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['mem_total_mib']} MiB, kernel {machine['kernel']}, Python "
        f"{machine['python']}, Pulumi CLI {machine['pulumi_cli']}, SDK "
        f"{machine['pulumi_sdk']}, pulumi-kubernetes {machine['pulumi_kubernetes_sdk']}",
        f"- load average (1/5/15 min): {machine['load_average_at_start']} at the start, "
        f"{results['load_average_at_end']} at the end",
        f"- {results['runs']} `up`s per way, each of a new instance of the original example "
        "(8 objects), by the driver alone on its own kwok cluster; the last way after "
        f"{results['extra_stacks']:,} copies of a stack were put beside it in the backend",
        "",
        f"| | {header} | {ratios} |",
        "| --- |" + " ---: |" * (2 * len(ways) - 1),
    ]

    def row(label: str, values: list[float], digits: int) -> str:
        cells = [f"{value:.{digits}f}" for value in values]
        cells += [ratio(value, values[0]) for value in values[1:]]
        return f"| {label} | " + " | ".join(cells) + " |"

    lines.append(row("wall time per run, s", [per_run(way) for way in ways], 2))
    lines.append(row("runs per second", [float(way["runs_per_s"]) for way in ways], 3))
    for kind in kinds:
        values = [float(way["cpu_ms_per_run"].get(kind, 0.0)) for way in ways]
        lines.append(row(f"CPU per run, {kind}, ms", values, 0))
    totals = [sum(way["cpu_ms_per_run"].values()) for way in ways]
    lines.append(row("**CPU per run, all, ms**", totals, 0))
    fastest = max(float(way["runs_per_s"]) for way in ways[:2])
    lines += [
        "",
        f"At the faster of the first two ways, 1,000 new instances need at least "
        f"{1000 / fastest:.0f} s of engine runs alone on this machine, before any Job, "
        "watch or status write.",
    ]
    return "\n".join(lines) + "\n"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    parser.add_argument("--runs", type=int, default=20, help="runs per way (default 20)")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks-engine.json"))
    parser.add_argument("--work-dir", type=Path, help="default: a new temporary directory")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.runs < 2:
        print("bench.engine: --runs must be at least 2", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as scratch:
        results = run(args.runs, args.work_dir or Path(scratch))
    page = write_results(args.out, results, markdown(results))
    print(f"wrote {args.out} and {page}")
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
