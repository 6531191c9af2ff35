"""The instance's change history (pure): what each engine run writes as its update
message, and how `reconciler history` reads the stack's updates back.

Every `up` and `destroy` of an instance's stack carries a message naming its kind, the
MySQL object's generation and uid, and the cause (the reason and message the decision
gave), so that the stack's history answers "what changed, when, and why" without the
MySQL object, which may be long gone. The stack outlives the object (teardown keeps the
emptied stack), so one stack's history spans every lifetime of the same name; the uid
tells them apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from reconciler.vocabulary import Stage

_MESSAGE: Final = re.compile(
    r"^(?P<kind>[a-z-]+) of generation (?P<generation>\d+) \(uid (?P<uid>[^)]*)\): "
    r"(?P<cause>.*)$",
    re.DOTALL,
)
# Pulumi keeps the message whole; a long cause is cut so the history stays readable.
MAX_CAUSE: Final = 300


class ChangeKind(StrEnum):
    UPDATE = "update"  # the instance's declared state applied (serving or restoring)
    TEARDOWN = "teardown"  # the stages of a delete: final backup, or adopting for destroy
    HEAL = "heal"  # objects deleted outside the operator created again (`up --refresh`)
    DESTROY = "destroy"


def kind_of(stage: Stage, *, refresh: bool) -> ChangeKind:
    if stage in (Stage.FINAL_BACKUP, Stage.RELEASING):
        return ChangeKind.TEARDOWN
    return ChangeKind.HEAL if refresh else ChangeKind.UPDATE


def update_message(kind: ChangeKind, generation: int, uid: str, cause: str) -> str:
    """The message an engine run records; it names no secret (causes are the reasons'
    messages, which never do)."""
    flat = " ".join(cause.split())
    if len(flat) > MAX_CAUSE:
        flat = flat[: MAX_CAUSE - 1] + "…"
    return f"{kind.value} of generation {generation} (uid {uid}): {flat}"


@dataclass(frozen=True)
class HistoryEntry:
    version: int | None
    started: datetime
    ended: datetime | None
    operation: str  # the engine's: update, destroy, refresh, ...
    result: str
    kind: str  # a ChangeKind, or the engine's operation for a run without our message
    generation: int | None
    uid: str | None
    cause: str
    changes: Mapping[str, int]


def entry(
    *,
    version: int | None,
    started: datetime,
    ended: datetime | None,
    operation: str,
    result: str,
    message: str,
    changes: Mapping[str, int] | None,
) -> HistoryEntry:
    found = _MESSAGE.match(message)
    return HistoryEntry(
        version=version,
        started=started,
        ended=ended,
        operation=operation,
        result=result,
        kind=found.group("kind") if found else operation,
        generation=int(found.group("generation")) if found else None,
        uid=found.group("uid") if found else None,
        cause=found.group("cause") if found else message,
        changes={op: n for op, n in sorted((changes or {}).items()) if n},
    )


def newest_first(entries: Sequence[HistoryEntry]) -> list[HistoryEntry]:
    return sorted(entries, key=lambda e: (e.version or 0, e.started), reverse=True)


def as_json(stack: str, entries: Sequence[HistoryEntry]) -> dict[str, Any]:
    return {
        "stack": stack,
        "updates": [
            {
                "version": e.version,
                "startTime": e.started.isoformat(),
                "endTime": e.ended.isoformat() if e.ended is not None else None,
                "kind": e.kind,
                "operation": e.operation,
                "generation": e.generation,
                "uid": e.uid,
                "result": e.result,
                "cause": e.cause,
                "resourceChanges": dict(e.changes),
            }
            for e in newest_first(entries)
        ],
    }


def render(stack: str, entries: Sequence[HistoryEntry], output: str) -> str:
    if output == "json":
        return json.dumps(as_json(stack, entries), indent=2)
    if not entries:
        return f"stack {stack}: no updates"
    lines = [f"stack {stack}"]
    for e in newest_first(entries):
        number = f"#{e.version} " if e.version else ""
        generation = f"generation {e.generation}" if e.generation is not None else "generation ?"
        lifetime = f" (uid {e.uid[:8]})" if e.uid else ""
        changes = ", ".join(f"{op} {n}" for op, n in e.changes.items()) or "no changes"
        lines.append(
            f"  {number}{e.started.strftime('%Y-%m-%dT%H:%M:%SZ')} {e.kind} of {generation}"
            f"{lifetime}: {e.result}; {changes}"
        )
        lines.append(f"      {e.cause}")
    return "\n".join(lines)
