"""CPU time and resident memory of a process tree, read from /proc (Linux only).

CPU: for every live process in the tree, utime + stime + cutime + cstime. The c-times
hold the CPU of children that exited and were waited for, so a short-lived `pulumi`
subprocess is counted once, in its parent, as long as that parent is alive in the tree.
RSS: the sum of VmRSS over the live tree (shared pages are counted once per process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PROC: Final = Path("/proc")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    cpu_ticks: int  # utime + stime + cutime + cstime


def parse_stat(text: str) -> ProcStat:
    """Parses /proc/<pid>/stat; the command name may hold spaces and parentheses."""
    head, _, rest = text.rpartition(")")
    pid = int(head.split("(", 1)[0])
    fields = rest.split()
    # fields[0] is field 3 (state) of proc(5): ppid is 4, utime..cstime are 14..17.
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return ProcStat(pid, ppid, utime + stime + cutime + cstime)


def parse_vm_rss_kib(status_text: str) -> int:
    """VmRSS from /proc/<pid>/status in KiB; 0 for kernel threads and zombies."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def all_stats(proc: Path = PROC) -> dict[int, ProcStat]:
    stats: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            text = _read(entry / "stat")
            if text is not None:
                stat = parse_stat(text)
                stats[stat.pid] = stat
    return stats


def tree_of(root: int, stats: dict[int, ProcStat]) -> list[int]:
    """The root and all its live descendants."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def tree_cpu_ms(root: int, proc: Path = PROC) -> float:
    stats = all_stats(proc)
    ticks = sum(stats[pid].cpu_ticks for pid in tree_of(root, stats))
    return ticks * 1000.0 / os.sysconf("SC_CLK_TCK")


def tree_rss_kib(root: int, proc: Path = PROC) -> tuple[int, int]:
    """(sum of VmRSS in KiB, number of processes) over the live tree."""
    pids = tree_of(root, all_stats(proc))
    total = 0
    for pid in pids:
        text = _read(proc / str(pid) / "status")
        total += parse_vm_rss_kib(text) if text is not None else 0
    return total, len(pids)
