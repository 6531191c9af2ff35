"""What the numbers were measured on: CPU, memory, kernel, load and tool versions."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any


def _first_line(command: list[str]) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else "unavailable"


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def mem_total_kib(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def describe() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "mem_total_mib": mem_total_kib(Path("/proc/meminfo").read_text()) // 1024,
        "cpu_model": cpu_model(Path("/proc/cpuinfo").read_text()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "go": _first_line(["go", "version"]),
        "pulumi_cli": _first_line(["pulumi", "version"]),
        "pulumi_sdk": _package("pulumi"),
        "pulumi_kubernetes_sdk": _package("pulumi-kubernetes"),
        "kubernetes_client": _package("kubernetes"),
        "load_average_at_start": load_average(),
    }
