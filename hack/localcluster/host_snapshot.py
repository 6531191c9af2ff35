"""What a real node may leave on the host, captured so that before and after can be compared.

`hack/cluster up` saves one at the first up of a state directory (outside it, see
Layout.host_snapshot), and `hack/cluster down --check` compares the host with it after
cleaning up; the end-to-end tier's teardown test does the same for a node it started.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

SYSCTLS = ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables")
CONTAINER_PROCESSES = ("containerd-shim", "runc", "pause", "mariadbd", "mysqld")


def _run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


# A built-in chain whose policy is ACCEPT is what a table that was never loaded means:
# the kernel keeps a table loaded once anything used it, so such lines are no trace.
_DEFAULT_POLICY = re.compile(r"^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT$")


def _rules(save_command: str) -> frozenset[str]:
    return parse_iptables_save(_run(save_command))


def parse_iptables_save(text: str) -> frozenset[str]:
    """iptables-save output without counters and comments: 'table line' for every rule,
    user chain and changed policy."""
    lines = set()
    table = ""
    for line in text.splitlines():
        if line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            table = line[1:]
            continue
        line = re.sub(r"\s*\[\d+:\d+\]$", "", line)
        if not _DEFAULT_POLICY.match(line):
            lines.add(f"{table} {line}")
    return frozenset(lines)


def _links(kind: str) -> frozenset[str]:
    """Names of the host's links of one kind (bridge, veth)."""
    lines = _run("ip", "-o", "link", "show", "type", kind).splitlines()
    return frozenset(line.split(":")[1].strip().split("@")[0] for line in lines if line)


def _process_names() -> list[str]:
    names = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                names.append((entry / "comm").read_text().strip())
            except OSError:
                continue
    return names


def processes_mentioning(text: str) -> list[str]:
    """'pid: command line' of every live process whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


@dataclasses.dataclass(frozen=True)
class HostSnapshot:
    mounts: frozenset[str]
    netns: frozenset[str]
    bridges: frozenset[str]
    veths: frozenset[str]
    iptables: frozenset[str]
    ip6tables: frozenset[str]
    container_processes: tuple[str, ...]
    sysctls: tuple[tuple[str, str], ...]

    @staticmethod
    def take() -> HostSnapshot:
        mounts = frozenset(
            line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
        )
        netns_dir = Path("/var/run/netns")
        netns = (
            frozenset(p.name for p in netns_dir.iterdir()) if netns_dir.exists() else frozenset()
        )
        return HostSnapshot(
            mounts=mounts,
            netns=netns,
            bridges=_links("bridge"),
            veths=_links("veth"),
            iptables=_rules("iptables-save"),
            ip6tables=_rules("ip6tables-save"),
            container_processes=tuple(
                sorted(n for n in _process_names() if n.startswith(CONTAINER_PROCESSES))
            ),
            sysctls=tuple((k, (Path("/proc/sys") / k).read_text().strip()) for k in SYSCTLS),
        )

    def differences(self, later: HostSnapshot) -> dict[str, object]:
        """Everything in `later` that was not here, or changed, field by field."""
        found: dict[str, object] = {}
        for field in dataclasses.fields(self):
            before, after = getattr(self, field.name), getattr(later, field.name)
            if isinstance(before, frozenset):
                added, removed = after - before, before - after
                if added or removed:
                    found[field.name] = {"added": sorted(added), "removed": sorted(removed)}
            elif before != after:
                found[field.name] = {"before": before, "after": after}
        return found

    def to_json(self) -> str:
        return json.dumps(
            {
                field.name: sorted(value) if isinstance(value, frozenset) else value
                for field in dataclasses.fields(self)
                for value in [getattr(self, field.name)]
            },
            indent=1,
        )

    @staticmethod
    def from_json(text: str) -> HostSnapshot:
        raw = json.loads(text)
        return HostSnapshot(
            mounts=frozenset(raw["mounts"]),
            netns=frozenset(raw["netns"]),
            bridges=frozenset(raw["bridges"]),
            veths=frozenset(raw["veths"]),
            iptables=frozenset(raw["iptables"]),
            ip6tables=frozenset(raw["ip6tables"]),
            container_processes=tuple(raw["container_processes"]),
            sysctls=tuple((key, value) for key, value in raw["sysctls"]),
        )
