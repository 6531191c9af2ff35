"""Logging, timed steps, and commands run in their own process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn


def log(message: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Logs the start of a step and, when it succeeds, how long it took."""
    started = time.monotonic()
    log(f"{name} ...")
    yield
    log(f"{name} done in {time.monotonic() - started:.1f}s")


def run(
    argv: Sequence[str],
    *,
    capture: bool = False,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Runs a command; its output goes to stderr unless captured."""
    stdout = subprocess.PIPE if capture else sys.stderr
    # Its own process group, so that an interrupted build stops all of it (debootstrap
    # and dpkg too), not just the direct child.
    with subprocess.Popen(
        list(argv), stdout=stdout, text=True, start_new_session=True, cwd=cwd, env=env
    ) as child:
        try:
            out, _ = child.communicate()
        except BaseException:
            kill_group(child)
            raise
    if child.returncode != 0:
        raise SystemExit(f"command failed with exit status {child.returncode}: {' '.join(argv)}")
    return out or ""


def kill_group(child: subprocess.Popen[str]) -> None:
    """SIGTERM to the child's process group, then SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 30)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        try:
            child.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def terminate(signum: int, _frame: FrameType | None) -> NoReturn:
    """A signal handler that unwinds, so that `finally` blocks clean up."""
    raise SystemExit(f"interrupted by signal {signum}")
