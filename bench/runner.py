"""What every scenario shares: MySQL objects on the bench's cluster (create, time to Ready),
the reconciler process, and its process tree's CPU and RSS read from /proc.

The reconciler runs with its output in a log file of the work directory and is stopped
by its own PID with SIGTERM (SIGKILL only after a grace period). CPU of a tree: for every
live process, utime + stime + cutime + cstime; the c-times hold the CPU of children that
exited and were waited for, so a short-lived `pulumi` CLI is counted once, in its parent.
RSS: the sum of VmRSS over the live tree (shared pages counted once per process).
"""

from __future__ import annotations

import base64
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from bench.stats import (
    ProcStat,
    cpu_model,
    machine_ticks,
    mem_total_kib,
    parse_metrics,
    parse_stat,
    parse_vm_rss_kib,
    tree_of,
)
from reconciler.vocabulary import API_GROUP

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
CRD_PATHS: Final = (REPO_ROOT / "crd" / "mysql.yaml", REPO_ROOT / "crd" / "mysqlbackup.yaml")
PROC: Final = Path("/proc")
VERSION: Final = "v1"
PLURAL: Final = "mysqls"
POLL_S: Final = 0.2
STOP_TIMEOUT_S: Final = 120.0
T = TypeVar("T")


def eventually(
    read: Callable[[], T],
    done: Callable[[T], bool],
    timeout_s: float,
    what: str,
    poll_s: float = POLL_S,
) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(poll_s)


def condition_of(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    """The object's condition of type `kind` (Ready, Restored...), if any."""
    for found in ((obj or {}).get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return None


def ready_at(obj: dict[str, Any] | None, generation: int) -> bool:
    ready = condition_of(obj, "Ready")
    return (
        obj is not None
        and (obj.get("status") or {}).get("observedGeneration") == generation
        and ready is not None
        and ready.get("status") == "True"
    )


def manifest(
    namespace: str, name: str, host_root: Path, change: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The MySQL object every scenario applies, on static hostPath volumes under host_root,
    with `change` merged into its spec (a storage class drops the volumes, a
    passwordSecretRef the password)."""
    host = host_root / namespace / name
    spec: dict[str, Any] = {
        "image": "mysql:5.7",
        "database": "bench",
        "password": "benchpassword",
        "storage_size": "1Gi",
        "host_path": str(host / "data"),
        "backup": {"host_path": str(host / "backup")},
    }
    change = change or {}
    if "storage_class" in change:
        del spec["host_path"], spec["backup"]
    if "passwordSecretRef" in change:
        del spec["password"]
    return {
        "apiVersion": f"{API_GROUP}/{VERSION}",
        "kind": "MySQL",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {**spec, **change},
    }


class Objects:
    """MySQL objects (and the nodes and namespaces they need) on the bench's cluster."""

    def __init__(self, api_client: client.ApiClient, host_root: Path) -> None:
        self.api_client = api_client
        self.host_root = host_root
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def apply_crd(self, namespaces: Iterable[str]) -> None:
        extensions = client.ApiextensionsV1Api(self.api_client)
        for path in CRD_PATHS:
            crd = yaml.safe_load(path.read_text())
            extensions.create_custom_resource_definition(crd)
            name = crd["metadata"]["name"]
            eventually(
                partial(extensions.read_custom_resource_definition, name),
                lambda found: any(
                    c.type == "Established" and c.status == "True"
                    for c in ((found.status and found.status.conditions) or [])
                ),
                60,
                f"the CRD {name} established",
                POLL_S,
            )
        for namespace in namespaces:
            self.core.create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
            )

    def add_nodes(self, nodes: list[dict[str, Any]]) -> None:
        """Creates the nodes and waits until kwok made them Ready."""
        for node in nodes:
            self.core.create_node(node)  # type: ignore[arg-type]
        names = {node["metadata"]["name"] for node in nodes}

        def ready() -> set[str]:
            return {
                str(node.metadata.name)
                for node in self.core.list_node().items
                if node.metadata is not None
                and node.status is not None
                and any(
                    c.type == "Ready" and c.status == "True" for c in node.status.conditions or []
                )
            }

        eventually(ready, lambda found: names <= found, 120, f"{len(names)} nodes Ready", 1.0)

    def create(self, namespace: str, name: str, change: dict[str, Any] | None = None) -> float:
        """Creates one object; returns when the request was sent (epoch seconds)."""
        body = manifest(namespace, name, self.host_root, change)
        sent = time.time()
        self.custom.create_namespaced_custom_object(API_GROUP, VERSION, namespace, PLURAL, body)
        return sent

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: Any = self.custom.get_namespaced_custom_object(
                API_GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(found)

    def list(self, namespace: str) -> list[dict[str, Any]]:
        listed: Any = self.custom.list_namespaced_custom_object(
            API_GROUP, VERSION, namespace, PLURAL
        )
        return list(listed["items"])

    def last_update_ids(self, namespace: str) -> dict[str, str]:
        return {
            item["metadata"]["name"]: str(
                ((item.get("status") or {}).get("lastUpdate") or {}).get("id")
            )
            for item in self.list(namespace)
        }

    def wait_ready(
        self, namespace: str, name: str, alive: Callable[[], None], timeout_s: float = 600
    ) -> tuple[float, dict[str, Any]]:
        """Polls every POLL_S until Ready at generation 1: (when seen, the object)."""

        def read() -> dict[str, Any] | None:
            alive()
            return self.get(namespace, name)

        found = eventually(
            read, lambda obj: ready_at(obj, 1), timeout_s, f"{namespace}/{name} Ready", POLL_S
        )
        assert found is not None
        return time.time(), found

    def wait_all_ready(
        self,
        namespace: str,
        names: Iterable[str],
        timeout_s: float,
        alive: Callable[[], None],
        poll_s: float,
        progress: Callable[[int], None] = lambda _ready: None,
    ) -> dict[str, float]:
        """Lists the namespace every poll_s until every name is Ready at generation 1;
        returns when each was first seen Ready (epoch seconds, poll_s resolution)."""
        waiting, seen = set(names), {}
        deadline = time.monotonic() + timeout_s
        while waiting:
            alive()
            now = time.time()
            for item in self.list(namespace):
                name = item["metadata"]["name"]
                if name in waiting and ready_at(item, 1):
                    seen[name] = now
                    waiting.discard(name)
            progress(len(seen))
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(waiting)} objects in {namespace} not Ready after {timeout_s:.0f}s"
                )
            if waiting:
                time.sleep(poll_s)
        return seen

    def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's values, decoded."""
        found = self.core.read_namespaced_secret(name, namespace)
        return {key: base64.b64decode(value).decode() for key, value in (found.data or {}).items()}

    def event_time(self, namespace: str, name: str, reason: str) -> float | None:
        """When the newest Event of `reason` about `name` was last seen (1 s resolution);
        Events outlive their object (a deleted restore Job's `Completed`, say)."""
        events = self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name},reason={reason}"
        ).items
        times = [event.last_timestamp or event.event_time for event in events]
        return max((stamp.timestamp() for stamp in times if stamp is not None), default=None)


def api_client_for(kubeconfig: Path, connections: int = 8) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=configuration
    )
    configuration.connection_pool_maxsize = connections
    return client.ApiClient(configuration)


# -- the reconciler process ---------------------------------------------------------------------


def bench_env(kubeconfig: Path) -> dict[str, str]:
    """The reconciler's environment; one passphrase per call (keep it for a restart)."""
    return {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PULUMI_CONFIG_PASSPHRASE": f"bench-{secrets.token_hex(16)}",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PYTHONPATH": str(REPO_ROOT),
    }


# What could point the reconciler at another backend than the one a scenario chose.
BACKEND_VARIABLES: Final = (
    "MYSQL_OPERATOR_BACKEND_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


def backend_env(
    env: dict[str, str], url: str | None = None, credentials: tuple[str, str] | None = None
) -> dict[str, str]:
    """`env` with its state backend chosen: without a url, the reconciler's default
    (`file://<state-dir>`); with one, `MYSQL_OPERATOR_BACKEND_URL` and the store's
    (access key id, secret access key). Whatever the bench's own environment says about a
    backend is dropped."""
    chosen = {key: value for key, value in env.items() if key not in BACKEND_VARIABLES}
    if url is not None:
        chosen["MYSQL_OPERATOR_BACKEND_URL"] = url
    if credentials is not None:
        chosen["AWS_ACCESS_KEY_ID"], chosen["AWS_SECRET_ACCESS_KEY"] = credentials
    return chosen


@dataclass
class Reconciler:
    """`python -m reconciler run` for some namespaces, with its output in `log_path`."""

    state_dir: Path
    log_path: Path
    kubeconfig: Path
    namespaces: tuple[str, ...]
    workers: int
    resync_s: float
    http_port: int
    env: dict[str, str]
    host_path_root: Path
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # epoch seconds, just before the fork
    _log: IO[bytes] | None = None

    def start(self) -> None:
        flags = {
            "state-dir": self.state_dir,
            "kubeconfig": self.kubeconfig,
            "namespace": ",".join(self.namespaces),
            "workers": self.workers,
            "resync-period": self.resync_s,
            "http-address": f"127.0.0.1:{self.http_port}",
            "host-path-root": self.host_path_root,
            # Passes that change nothing are logged at DEBUG only; the counts need them.
            "log-level": "DEBUG",
        }
        argv = [
            sys.executable,
            "-m",
            "reconciler",
            "run",
            *(f"--{k}={v}" for k, v in flags.items()),
        ]
        self._log = self.log_path.open("ab")
        self.started_at = time.time()
        self.popen = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def check_running(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            raise RuntimeError(f"the reconciler is not running; see {self.log_path}")

    def lines(self) -> list[str]:
        return self.log_path.read_text().splitlines() if self.log_path.exists() else []

    def get(self, path: str) -> str | None:
        try:
            url = f"http://127.0.0.1:{self.http_port}{path}"
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode()) if response.status == 200 else None
        except OSError:
            return None

    def metrics(self) -> dict[str, float]:
        return parse_metrics(self.get("/metrics") or "")

    def wait_healthy(self, timeout_s: float = 180) -> float:
        """Waits for /healthz; returns when it answered OK (epoch seconds)."""

        def healthy() -> bool:
            self.check_running()
            return self.get("/healthz") is not None

        eventually(healthy, bool, timeout_s, "the reconciler's /healthz", POLL_S)
        return time.time()

    def stop(self) -> int | None:
        """SIGTERM by PID, then SIGKILL after STOP_TIMEOUT_S; the exit code (None: never ran)."""
        code = None
        if self.popen is not None:
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait()
            code = self.popen.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


# -- /proc --------------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def all_stats() -> dict[int, ProcStat]:
    stats: dict[int, ProcStat] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            text = _read(entry / "stat")
            if text is not None:
                stat = parse_stat(text)
                stats[stat.pid] = stat
    return stats


@dataclass(frozen=True)
class Cpu:
    """CPU milliseconds at one moment: the reconciler's own (python), its engine
    subprocesses (pulumi CLIs and providers, live or reaped), the cluster's components,
    and the whole machine (busy; all of it)."""

    own_ms: float
    engine_ms: float
    cluster_ms: float
    machine_busy_ms: float
    machine_all_ms: float

    def minus(self, earlier: Cpu) -> dict[str, float]:
        fields = ("own_ms", "engine_ms", "cluster_ms", "machine_busy_ms", "machine_all_ms")
        return {key: round(getattr(self, key) - getattr(earlier, key), 1) for key in fields}


def cpu_now(root: int, cluster_pids: Iterable[int] = ()) -> Cpu:
    stats = all_stats()
    per_tick = 1000.0 / os.sysconf("SC_CLK_TCK")
    tree = tree_of(root, stats)
    own = stats[root].own_ticks if root in stats else 0
    engine = sum(stats[pid].own_ticks + stats[pid].reaped_ticks for pid in tree) - own
    cluster = sum(
        stats[pid].own_ticks + stats[pid].reaped_ticks for pid in cluster_pids if pid in stats
    )
    busy, total = machine_ticks(_read(PROC / "stat") or "cpu 0 0 0 0")
    return Cpu(
        own * per_tick, engine * per_tick, cluster * per_tick, busy * per_tick, total * per_tick
    )


def tree_rss_kib(root: int) -> tuple[int, int]:
    """(sum of VmRSS in KiB, number of processes) over the live tree."""
    pids = tree_of(root, all_stats())
    total = sum(parse_vm_rss_kib(_read(PROC / str(pid) / "status") or "") for pid in pids)
    return total, len(pids)


def rss_sample(pid: int, samples: int = 5, every_s: float = 1.0) -> dict[str, Any]:
    """The tree's RSS `samples` times, `every_s` apart: median, max, processes."""
    values, processes = [], 0
    for index in range(samples):
        kib, processes = tree_rss_kib(pid)
        values.append(kib)
        if index < samples - 1:
            time.sleep(every_s)
    return {
        "median_mib": round(statistics.median(values) / 1024, 1),
        "max_mib": round(max(values) / 1024, 1),
        "processes": processes,
    }


@dataclass
class PeakRss:
    """Samples a process tree's RSS in a thread and keeps the peak (it may miss short
    spikes); `every` more calls `tick` every `tick_s` from the same thread."""

    pid: int
    every_s: float = 0.25
    tick: Callable[[], None] | None = None
    tick_s: float = 30.0
    peak_kib: int = 0
    processes_at_peak: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            kib, processes = tree_rss_kib(self.pid)
            if kib > self.peak_kib:
                self.peak_kib, self.processes_at_peak = kib, processes
            if self.tick is not None and time.monotonic() >= next_tick:
                self.tick()
                next_tick += self.tick_s
            self._stop.wait(self.every_s)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return {
            "peak_mib": round(self.peak_kib / 1024, 1),
            "processes_at_peak": self.processes_at_peak,
            "every_s": self.every_s,
        }


# -- the machine --------------------------------------------------------------------------------


def write_results(out: Path, results: dict[str, Any], page: str) -> Path:
    """The raw results as JSON at `out`, and the page beside it (`.md`); returns the page."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    markdown = out.with_suffix(".md")
    markdown.write_text(page)
    return markdown


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _out(command: list[str]) -> list[str]:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return [f"unavailable ({error})"]
    return (done.stdout or done.stderr).strip().splitlines()


def describe_machine() -> dict[str, Any]:
    git = ["git", "-C", str(REPO_ROOT)]
    # The code measured: the commit, and the files under it that differ from the commit.
    paths = ["reconciler", "crd", "hack/kwok-stages.yaml", "hack/localcluster"]
    return {
        "code": {
            "commit": (_out([*git, "rev-parse", "--short", "HEAD"]) or ["?"])[0],
            "uncommitted": _out([*git, "status", "--short", "--", *paths]),
        },
        "nproc": os.cpu_count(),
        "mem_total_mib": mem_total_kib(Path("/proc/meminfo").read_text()) // 1024,
        "cpu_model": cpu_model(Path("/proc/cpuinfo").read_text()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pulumi_cli": (_out(["pulumi", "version"]) or ["?"])[0],
        "pulumi_sdk": version("pulumi"),
        "pulumi_kubernetes_sdk": version("pulumi-kubernetes"),
        "load_average_at_start": load_average(),
    }
