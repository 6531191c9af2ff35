"""What an engine run gives back: a finished run, or a failure sorted by what fixes it
(pure). The driver produces these; the executor and the status transitions read them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from reconciler.engine_events import RunTimings


class FailureKind(StrEnum):
    SPEC = "spec"  # the API server rejected what the spec declares
    TRANSIENT = "transient"  # retry with backoff
    STUCK = "stuck"  # a lock or pending operations; recovered before the next attempt
    FAILED = "failed"  # a resource failed (a Job, a rollout): retry with backoff, report


class StackError(Exception):
    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class RunResult:
    """One engine run that finished; `result` is the engine's (succeeded or failed)."""

    update_id: str
    kind: str
    result: str
    resource_changes: Mapping[str, int] = field(default_factory=dict)
    timings: RunTimings | None = None


def stack_name(namespace: str, name: str) -> str:
    """An instance's stack: one per MySQL object."""
    return f"{namespace}.{name}"


def describe_changes(run: RunResult) -> str:
    """ "create 3, update 1", or "no changes"."""
    changes = {op: n for op, n in run.resource_changes.items() if op != "same" and n}
    return ", ".join(f"{op} {n}" for op, n in sorted(changes.items())) or "no changes"
