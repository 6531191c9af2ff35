"""Starting and stopping the cluster's processes by PID, and nothing else."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

START_TIMEOUT_S = 120.0
# Written to a component's log before each start, so that a health check that reads the
# log can tell this run's lines from an earlier run's.
START_MARKER = "--- hack/cluster: starting"
STOP_TIMEOUT_S = 20.0


def log(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class Started:
    """A process that `up` started: its PID plus its kernel start time, so that a reused
    PID is never mistaken for ours."""

    pid: int
    start_ticks: int

    @staticmethod
    def read(path: Path) -> Started | None:
        try:
            pid, ticks = path.read_text().split()
            return Started(int(pid), int(ticks))
        except (OSError, ValueError):
            return None

    def write(self, path: Path) -> None:
        path.write_text(f"{self.pid} {self.start_ticks}\n")

    def alive(self) -> bool:
        return process_start_ticks(self.pid) == self.start_ticks


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; fields resume after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def stop(name: str, started: Started) -> None:
    """SIGTERM, then SIGKILL after a grace period; returns once the process is gone."""
    if not started.alive():
        return
    os.kill(started.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while started.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    if started.alive():
        log(f"{name} (pid {started.pid}) ignored SIGTERM; sending SIGKILL")
        os.kill(started.pid, signal.SIGKILL)
        while started.alive():
            time.sleep(0.05)


def tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_until(what: str, check: Callable[[], bool], log_file: Path | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    context = tail(log_file) if log_file is not None else ""
    raise SystemExit(f"{what} not ready after {START_TIMEOUT_S:.0f}s\n{context}")


def start(
    name: str,
    argv: list[str],
    *,
    pid_file: Path,
    log_file: Path,
    healthy: Callable[[], bool],
    env: Mapping[str, str] | None = None,
) -> None:
    """Starts `argv` unless our earlier process still runs, then waits until healthy."""
    previous = Started.read(pid_file)
    if previous is not None and previous.alive():
        log(f"{name}: already running (pid {previous.pid})")
        return
    with log_file.open("ab") as sink:
        sink.write(f"{START_MARKER} {name} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        sink.flush()
        # Its own session, so that a Ctrl-C in the caller's terminal does not reach it.
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else {**os.environ, **env},
        )
    ticks = process_start_ticks(process.pid)
    if ticks is None:
        raise SystemExit(f"{name} exited at once; see {log_file}")
    Started(process.pid, ticks).write(pid_file)

    def running_and_healthy() -> bool:
        if process.poll() is not None:
            raise SystemExit(
                f"{name} exited with {process.returncode}; see {log_file}:\n{tail(log_file)}"
            )
        return healthy()

    wait_until(name, running_and_healthy, log_file)
    log(f"{name}: started (pid {process.pid})")
