"""The part of a MySQL object's status that the reconciler owns, as a frozen value.

Pure: `parse_status` reads it from the object, `InstanceStatus.to_patch` renders a JSON
merge patch for the status subresource. Besides the conditions it records what the synced
check compares (observedGeneration, the inputs fingerprint, the toolchain versions), the
last stack update and the connection endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.conditions import Condition, parse_conditions


@dataclass(frozen=True)
class ToolchainVersions:
    """What else, besides the inputs, decides what `up` would do."""

    pulumi_cli: str
    pulumi_sdk: str
    kubernetes_provider: str

    def to_dict(self) -> dict[str, str]:
        return {
            "pulumiCli": self.pulumi_cli,
            "pulumiSdk": self.pulumi_sdk,
            "kubernetesProvider": self.kubernetes_provider,
        }

    @staticmethod
    def from_dict(raw: object) -> ToolchainVersions | None:
        if not isinstance(raw, Mapping):
            return None
        values = (raw.get("pulumiCli"), raw.get("pulumiSdk"), raw.get("kubernetesProvider"))
        if not all(isinstance(value, str) for value in values):
            return None
        return ToolchainVersions(*(str(value) for value in values))


@dataclass(frozen=True)
class UpdateRecord:
    """One engine run on the instance's stack."""

    id: str  # the stack's update version in the backend
    kind: str  # update or destroy
    phase: str  # running or teardown
    result: str  # succeeded or failed
    resource_changes: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "phase": self.phase,
            "result": self.result,
            "resourceChanges": dict(self.resource_changes),
        }

    @staticmethod
    def from_dict(raw: object) -> UpdateRecord | None:
        if not isinstance(raw, Mapping):
            return None
        changes = raw.get("resourceChanges")
        return UpdateRecord(
            id=str(raw.get("id", "")),
            kind=str(raw.get("kind", "")),
            phase=str(raw.get("phase", "")),
            result=str(raw.get("result", "")),
            resource_changes={str(k): int(v) for k, v in changes.items()}
            if isinstance(changes, Mapping)
            else {},
        )


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port}


@dataclass(frozen=True)
class InstanceStatus:
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()
    inputs_fingerprint: str | None = None
    toolchain: ToolchainVersions | None = None
    last_update: UpdateRecord | None = None
    endpoint: Endpoint | None = None
    stack: str | None = None

    def to_patch(self) -> dict[str, Any]:
        """A merge patch body for the status subresource; None removes a field."""
        return {
            "status": {
                "observedGeneration": self.observed_generation,
                "conditions": [c.to_dict() for c in self.conditions],
                "inputsFingerprint": self.inputs_fingerprint,
                "toolchain": self.toolchain.to_dict() if self.toolchain else None,
                "lastUpdate": self.last_update.to_dict() if self.last_update else None,
                "endpoint": self.endpoint.to_dict() if self.endpoint else None,
                "stack": self.stack,
            }
        }


def parse_status(obj: Mapping[str, Any]) -> InstanceStatus:
    raw = obj.get("status")
    if not isinstance(raw, Mapping):
        return InstanceStatus()
    generation = raw.get("observedGeneration")
    endpoint = raw.get("endpoint")
    fingerprint = raw.get("inputsFingerprint")
    stack = raw.get("stack")
    return InstanceStatus(
        observed_generation=generation if isinstance(generation, int) else None,
        conditions=parse_conditions(raw.get("conditions")),
        inputs_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
        toolchain=ToolchainVersions.from_dict(raw.get("toolchain")),
        last_update=UpdateRecord.from_dict(raw.get("lastUpdate")),
        endpoint=Endpoint(str(endpoint.get("host")), int(endpoint.get("port", 0)))
        if isinstance(endpoint, Mapping)
        else None,
        stack=stack if isinstance(stack, str) else None,
    )
