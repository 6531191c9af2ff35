"""The processes the bench starts (the reconciler, the baseline) and their tree's memory.

Each runs with its output in a log file of the work directory, and is stopped by its own
PID with SIGTERM (SIGKILL only after a grace period).
"""

from __future__ import annotations

import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from bench import procfs
from bench.objects import eventually

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_S: Final = 120.0


def bench_env(kubeconfig: Path) -> dict[str, str]:
    """The environment of both processes; one passphrase per call (keep it for a restart)."""
    return {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PULUMI_CONFIG_PASSPHRASE": f"bench-{secrets.token_hex(16)}",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PYTHONPATH": str(REPO_ROOT),
    }


@dataclass
class Process:
    """A child process with its output in a file."""

    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # epoch seconds, just before the fork
    _log: IO[bytes] | None = None

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.started_at = time.time()
        self.popen = subprocess.Popen(
            self.argv, cwd=REPO_ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def check_running(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            raise RuntimeError(f"{self.argv[2]} is not running; see {self.log_path}")

    def lines(self) -> list[str]:
        return self.log_path.read_text().splitlines() if self.log_path.exists() else []

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


def reconciler_process(
    *,
    state_dir: Path,
    kubeconfig: Path,
    namespace: str,
    workers: int,
    resync_s: float,
    http_port: int,
    env: dict[str, str],
    log_path: Path,
) -> Process:
    return Process(
        [
            sys.executable,
            "-m",
            "reconciler",
            "run",
            f"--state-dir={state_dir}",
            f"--kubeconfig={kubeconfig}",
            f"--namespace={namespace}",
            f"--workers={workers}",
            f"--resync-period={resync_s}",
            f"--http-address=127.0.0.1:{http_port}",
            # in-sync passes are logged at DEBUG only; the no-op and restart counts need them.
            "--log-level=DEBUG",
        ],
        env,
        log_path,
    )


def baseline_process(
    *, kubeconfig: Path, namespace: str, workers: int, env: dict[str, str], log_path: Path
) -> Process:
    return Process(
        [
            sys.executable,
            "-m",
            "bench.baseline",
            f"--namespace={namespace}",
            f"--kubeconfig={kubeconfig}",
            f"--workers={workers}",
        ],
        env,
        log_path,
    )


def healthz_ok(http_port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{http_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_healthy(process: Process, http_port: int, timeout_s: float = 180) -> float:
    """Waits for the reconciler's /healthz; returns when it answered OK (epoch seconds)."""

    def healthy() -> bool:
        process.check_running()
        return healthz_ok(http_port)

    eventually(healthy, bool, timeout_s, "the reconciler's /healthz")
    return time.time()


def wait_baseline_started(process: Process, timeout_s: float = 120) -> None:
    def started() -> bool:
        process.check_running()
        return any('"event": "started"' in line for line in process.lines())

    eventually(started, bool, timeout_s, "the baseline's start")


def rss_sample(pid: int, samples: int = 5, every_s: float = 1.0) -> dict[str, Any]:
    """The tree's RSS `samples` times, `every_s` apart: median, max, processes."""
    values, processes = [], 0
    for index in range(samples):
        kib, processes = procfs.tree_rss_kib(pid)
        values.append(kib)
        if index < samples - 1:
            time.sleep(every_s)
    return {
        "median_mib": round(statistics.median(values) / 1024, 1),
        "max_mib": round(max(values) / 1024, 1),
        "processes": processes,
        "samples": samples,
    }


@dataclass
class PeakRss:
    """Samples a process tree's RSS in a thread; keeps the peak (may miss short spikes)."""

    pid: int
    every_s: float = 0.25
    peak_kib: int = 0
    processes_at_peak: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            kib, processes = procfs.tree_rss_kib(self.pid)
            self.samples += 1
            if kib > self.peak_kib:
                self.peak_kib, self.processes_at_peak = kib, processes
            self._stop.wait(self.every_s)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return {
            "peak_mib": round(self.peak_kib / 1024, 1),
            "processes_at_peak": self.processes_at_peak,
            "samples": self.samples,
            "every_s": self.every_s,
        }
