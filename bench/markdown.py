"""Markdown pieces that every benchmark page shares: table rows, the machine, the targets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def machine_section(results: dict[str, Any]) -> list[str]:
    machine = results["machine"]
    return [
        "## Machine",
        "",
        row(["what", "value"]),
        row(["---", "---"]),
        row(["CPUs (nproc)", machine["nproc"]]),
        row(["memory", f"{machine['mem_total_mib']} MiB"]),
        row(["CPU model", machine["cpu_model"]]),
        row(["kernel", machine["kernel"]]),
        row(["Python", machine["python"]]),
        row(["Go", machine["go"]]),
        row(["Pulumi CLI", machine["pulumi_cli"]]),
        row(
            [
                "Pulumi SDK / pulumi-kubernetes SDK",
                f"{machine['pulumi_sdk']} / {machine['pulumi_kubernetes_sdk']}",
            ]
        ),
        row(["load average (1/5/15 min) at start", machine["load_average_at_start"]]),
        row(["load average at end", results.get("load_average_at_end", "n/a")]),
        "",
    ]


def _value(value: object, unit: str) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float):
        return f"{value:g} {unit}"
    return f"{value} {unit}"


def targets_section(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, each next to what this run measured."""
    verdict = {True: "met", False: "**missed**", None: "n/a"}
    return [
        "## Targets (from the issue) and what this run measured",
        "",
        row(["target", "limit", "measured", "verdict"]),
        row(["---", "---:", "---:", "---"]),
        *(
            row(
                [
                    target["what"],
                    f"{'=' if target['limit'] == 0 else '≤'}"
                    f" {_value(target['limit'], target['unit'])}",
                    _value(target["measured"], target["unit"]),
                    verdict[target["met"]],
                ]
            )
            for target in rows
        ),
        "",
    ]
