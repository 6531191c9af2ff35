"""A Docker engine for image builds: the machine's own, or a private dockerd we start.

`docker_engine()` yields the environment (DOCKER_HOST) under which the `docker` CLI talks
to an engine. When DOCKER_HOST is set, or the standard socket answers, that engine is
used and left alone. Otherwise a private dockerd is started from Debian's docker.io:
- its data root is in the cache, so base images and build layers survive between builds;
- its exec root, socket and pid file are in a fresh temporary directory;
- no bridge, no iptables or NAT rules: builds need no network, since everything they
  install comes from the build context;
- it is stopped by its PID when the block ends, and its own containerd with it.
A lock on the data root keeps two builds from sharing one private engine.

Standard library only: this runs before any venv.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STANDARD_SOCKET = "/var/run/docker.sock"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


def log(message: str) -> None:
    print(f"[docker {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def docker_cli() -> str:
    """Debian's CLI matches Debian's engine; any other `docker` on PATH is the fallback."""
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("the docker CLI is missing: install Debian's docker.io")


def engine_answers(env: dict[str, str]) -> bool:
    result = subprocess.run(
        [docker_cli(), "version", "--format", "{{.Server.Version}}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


def private_dockerd_argv(data_root: Path, exec_root: Path, socket: Path) -> list[str]:
    return [
        "dockerd",
        f"--data-root={data_root}",
        f"--exec-root={exec_root / 'exec'}",
        f"--pidfile={exec_root / 'dockerd.pid'}",
        f"--host=unix://{socket}",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--ip-masq=false",
        "--userland-proxy=false",
        "--log-level=warn",
    ]


@dataclass(frozen=True)
class Engine:
    env: dict[str, str]  # for the docker CLI
    private: bool  # started here, so its images are ours to prune

    def docker(self, *args: str, capture: bool = False) -> str:
        result = subprocess.run(
            [docker_cli(), *args],
            env=self.env,
            stdout=subprocess.PIPE if capture else sys.stderr,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"docker {' '.join(args)} exited {result.returncode}")
        return result.stdout or ""


@contextlib.contextmanager
def docker_engine(cache_root: Path) -> Iterator[Engine]:
    env = dict(os.environ)
    # The classic builder: it needs no buildx plugin and works with Debian's 20.10 engine.
    env["DOCKER_BUILDKIT"] = "0"
    if env.get("DOCKER_HOST") or (Path(STANDARD_SOCKET).exists() and engine_answers(env)):
        log(f"using the existing engine at {env.get('DOCKER_HOST') or STANDARD_SOCKET}")
        yield Engine(env, private=False)
        return
    if not shutil.which("dockerd"):
        raise SystemExit("dockerd is missing: run hack/install-debian-deps (docker.io)")
    if os.geteuid() != 0:
        raise SystemExit("a private dockerd needs root; or set DOCKER_HOST to an engine")
    data_root = cache_root / "docker"
    data_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / ".docker.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Short: containerd's socket path inside it must stay under the 108-byte limit.
        exec_root = Path(tempfile.mkdtemp(prefix="mysqlop-docker-", dir="/tmp"))
        socket = exec_root / "docker.sock"
        log_path = exec_root / "dockerd.log"
        with open(log_path, "wb") as log_file:
            daemon = subprocess.Popen(
                private_dockerd_argv(data_root, exec_root, socket),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        env["DOCKER_HOST"] = f"unix://{socket}"
        try:
            _wait_started(daemon, env, log_path)
            log(f"private dockerd {daemon.pid} on {socket}, data root {data_root}")
            yield Engine(env, private=True)
        finally:
            _stop(daemon, log_path)
            shutil.rmtree(exec_root, ignore_errors=True)


def _wait_started(daemon: subprocess.Popen[bytes], env: dict[str, str], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not engine_answers(env):
        if daemon.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace").splitlines()[-20:]
            raise SystemExit("dockerd did not start:\n" + "\n".join(tail))
        time.sleep(0.5)


def _stop(daemon: subprocess.Popen[bytes], log_path: Path) -> None:
    """SIGTERM to dockerd itself (it stops its containerd), then SIGKILL to its group."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log(f"dockerd {daemon.pid} ignored SIGTERM; killing its process group")
    # Anything still in its session (its containerd, a shim) was started by it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(daemon.pid, signal.SIGKILL)
    daemon.wait()
    if daemon.returncode not in (0, -signal.SIGKILL):
        tail = log_path.read_text(errors="replace").splitlines()[-10:]
        log(f"dockerd exited {daemon.returncode}:\n" + "\n".join(tail))
