"""What the cluster shows of an instance, as small frozen values parsed from the API's
JSON (pure). The gateway reads; these keep only what the decisions look at."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from reconciler.vocabulary import ANNOTATION_RELEASED


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _dict(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(key): str(item) for key, item in value.items()}


@dataclass(frozen=True)
class ClaimState:
    name: str
    phase: str  # Pending, Bound or Lost
    volume: str | None  # the bound (or reserved) volume's name
    deleting: bool
    finalizers: tuple[str, ...]
    resource_version: str = ""
    storage_class: str | None = None  # spec.storageClassName
    requested: str | None = None  # spec.resources.requests.storage
    capacity: str | None = None  # status.capacity.storage: what the volume has now
    # A resize under way: the claim's True condition Resizing or FileSystemResizePending
    # (with its message), and status.allocatedResourceStatuses.storage.
    resize_condition: str | None = None
    resize_message: str | None = None
    resize_status: str | None = None

    @property
    def bound(self) -> bool:
        return self.phase == "Bound" and self.volume is not None


RESIZE_CONDITIONS: Final = ("FileSystemResizePending", "Resizing")


def claim_state(obj: Mapping[str, Any]) -> ClaimState:
    metadata = _metadata(obj)
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    condition = next(
        (
            found
            for kind in RESIZE_CONDITIONS
            for found in status.get("conditions") or ()
            if found.get("type") == kind and found.get("status") == "True"
        ),
        None,
    )
    storage_class = spec.get("storageClassName")
    return ClaimState(
        name=str(metadata.get("name", "")),
        phase=str(status.get("phase", "Pending")),
        volume=spec.get("volumeName") or None,
        deleting=metadata.get("deletionTimestamp") is not None,
        finalizers=tuple(metadata.get("finalizers") or ()),
        resource_version=str(metadata.get("resourceVersion", "")),
        storage_class=storage_class if isinstance(storage_class, str) else None,
        requested=_storage((spec.get("resources") or {}).get("requests")),
        capacity=_storage(status.get("capacity")),
        resize_condition=str(condition["type"]) if condition is not None else None,
        resize_message=str(condition["message"])
        if condition and condition.get("message")
        else None,
        resize_status=_storage(status.get("allocatedResourceStatuses")),
    )


def _storage(amounts: object) -> str | None:
    value = amounts.get("storage") if isinstance(amounts, Mapping) else None
    return str(value) if value is not None else None


@dataclass(frozen=True)
class VolumeState:
    name: str
    phase: str  # Available, Bound, Released or Failed
    reclaim_policy: str
    storage_class: str
    capacity: str | None
    claim_namespace: str | None
    claim_name: str | None
    claim_uid: str | None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def released_on_purpose(self) -> bool:
        return ANNOTATION_RELEASED in self.annotations


def volume_state(obj: Mapping[str, Any]) -> VolumeState:
    metadata = _metadata(obj)
    spec = obj.get("spec") or {}
    claim = spec.get("claimRef") or {}
    return VolumeState(
        name=str(metadata.get("name", "")),
        phase=str((obj.get("status") or {}).get("phase", "")),
        reclaim_policy=str(spec.get("persistentVolumeReclaimPolicy", "Delete")),
        storage_class=str(spec.get("storageClassName") or ""),
        capacity=(spec.get("capacity") or {}).get("storage"),
        claim_namespace=claim.get("namespace"),
        claim_name=claim.get("name"),
        claim_uid=claim.get("uid"),
        labels=_dict(metadata.get("labels")),
        annotations=_dict(metadata.get("annotations")),
    )


@dataclass(frozen=True)
class PodState:
    name: str
    phase: str
    ready: bool
    deleting: bool
    unschedulable: str | None  # the scheduler's message
    waiting_reason: str | None  # the first container that is waiting
    waiting_message: str | None
    # The first container that failed, or else the last that terminated (a Job's upload
    # runs after its dump, and its result line is the one to read).
    terminated_exit_code: int | None
    terminated_message: str | None
    last_termination_reason: str | None  # of a container that restarted
    last_termination_message: str | None
    restarts: int


def pod_state(obj: Mapping[str, Any]) -> PodState:
    metadata = _metadata(obj)
    status = obj.get("status") or {}
    conditions = {
        c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, Mapping)
    }
    scheduled = conditions.get("PodScheduled") or {}
    unschedulable = (
        str(scheduled.get("message") or scheduled.get("reason") or "unschedulable")
        if scheduled.get("status") == "False"
        else None
    )
    statuses: Sequence[Mapping[str, Any]] = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    waiting_reason = waiting_message = None
    terminated_code = terminated_message = None
    last_reason = last_message = None
    restarts = 0
    for container in statuses:
        state = container.get("state") or {}
        restarts += int(container.get("restartCount") or 0)
        waiting = state.get("waiting")
        if waiting and waiting_reason is None:
            waiting_reason = waiting.get("reason")
            waiting_message = waiting.get("message")
        terminated = state.get("terminated")
        if terminated and terminated_code in (None, 0):
            terminated_code = int(terminated.get("exitCode", 0))
            terminated_message = terminated.get("message") or terminated.get("reason")
        last = (container.get("lastState") or {}).get("terminated")
        if last and last_reason is None:
            last_reason = last.get("reason")
            last_message = last.get("message")
    return PodState(
        name=str(metadata.get("name", "")),
        phase=str(status.get("phase", "Pending")),
        ready=(conditions.get("Ready") or {}).get("status") == "True",
        deleting=metadata.get("deletionTimestamp") is not None,
        unschedulable=unschedulable,
        waiting_reason=waiting_reason,
        waiting_message=waiting_message,
        terminated_exit_code=terminated_code,
        terminated_message=_last_line(terminated_message),
        last_termination_reason=last_reason,
        last_termination_message=_last_line(last_message),
        restarts=restarts,
    )


def _last_line(text: str | None) -> str | None:
    if not text:
        return None
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else None


@dataclass(frozen=True)
class JobState:
    name: str
    succeeded: bool
    failed: bool
    failure_reason: str | None  # the Job's Failed condition (BackoffLimitExceeded, ...)
    failure_message: str | None
    pod: PodState | None  # the newest of its pods, if any

    @property
    def exit_code(self) -> int | None:
        return self.pod.terminated_exit_code if self.pod is not None else None

    @property
    def message(self) -> str | None:
        """The script's one-line result (its termination message), or the Job's reason."""
        if self.pod is not None and self.pod.terminated_message:
            return self.pod.terminated_message
        return self.failure_message or self.failure_reason


def job_state(obj: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> JobState:
    status = obj.get("status") or {}
    conditions = {
        c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, Mapping)
    }
    failed = conditions.get("Failed") or {}
    complete = conditions.get("Complete") or {}
    newest = max(pods, key=_created, default=None)
    return JobState(
        name=str(_metadata(obj).get("name", "")),
        succeeded=complete.get("status") == "True",
        failed=failed.get("status") == "True",
        failure_reason=failed.get("reason"),
        failure_message=failed.get("message"),
        pod=pod_state(newest) if newest is not None else None,
    )


def _created(obj: Mapping[str, Any]) -> str:
    return str(_metadata(obj).get("creationTimestamp", ""))


def newest_event_message(events: Sequence[Mapping[str, Any]]) -> str | None:
    """`reason: message` of the newest Event, Warnings before Normal ones."""
    if not events:
        return None

    def order(event: Mapping[str, Any]) -> tuple[int, str]:
        stamp = event.get("lastTimestamp") or event.get("eventTime") or ""
        return (1 if event.get("type") == "Warning" else 0, str(stamp))

    newest = max(events, key=order)
    return f"{newest.get('reason', '')}: {newest.get('message', '')}".strip()[:500]


@dataclass(frozen=True)
class SecretState:
    """A Secret's name, labels and keys; never its values."""

    name: str
    labels: dict[str, str]
    keys: frozenset[str]


def secret_state(obj: Mapping[str, Any]) -> SecretState:
    metadata = _metadata(obj)
    return SecretState(
        name=str(metadata.get("name", "")),
        labels=_dict(metadata.get("labels")),
        keys=frozenset((obj.get("data") or {}).keys()),
    )
