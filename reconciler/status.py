"""The part of a MySQL object's status that the reconciler owns, as a frozen value.

Pure: `parse_status` reads it from the object, `InstanceStatus.to_patch` renders a JSON
merge patch for the status subresource. Besides the conditions it records what the synced
check compares (observedGeneration, the inputs fingerprint, the toolchain versions), the
last stack update, the connection endpoint, and what this lifetime of the instance has
been through: its volumes, its restore, whether it served clients, its final backup.
Those records are what the reconciler resumes from after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.conditions import Condition, parse_conditions
from reconciler.spec import S3Store, parse_s3_store


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
    stage: str  # what the program declared (vocabulary.Stage), or "destroy"
    result: str  # succeeded or failed
    resource_changes: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "stage": self.stage,
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
            stage=str(raw.get("stage", raw.get("phase", ""))),
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


class JobPhase(StrEnum):
    RUNNING = "Running"  # the attempt's Job is declared (or about to be)
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"  # this attempt failed; the next one waits for its backoff
    REFUSED = "Refused"  # failed in a way retrying cannot fix; a person must act
    # The instance was deleted before the attempt's pod could start: it changed nothing.
    ABANDONED = "Abandoned"


@dataclass(frozen=True)
class RestoreSource:
    """The dump a restore applies, resolved once from spec.restore_from: the MySQLBackup
    and either the claim that holds its dump (in the same namespace) and the dump's file
    name, or (`url`) the S3 object it was uploaded to, with the size and SHA-256 the
    backup recorded and the image that downloads it."""

    backup: str
    claim: str | None
    dump: str
    url: str | None = None  # s3://bucket/key
    size: int | None = None
    sha256: str | None = None
    transfer_image: str | None = None
    # The store as the instance named it when the source was resolved: the restore Job
    # does not change when spec.backup.s3 does.
    store: S3Store | None = None

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"backup": self.backup, "dump": self.dump}
        if self.url is None:
            found["claim"] = self.claim
        else:
            found.update(
                url=self.url,
                sizeBytes=self.size,
                sha256=self.sha256,
                transferImage=self.transfer_image,
                store=self.store.to_spec() if self.store is not None else None,
            )
        return found

    @staticmethod
    def from_dict(raw: object) -> RestoreSource | None:
        if not isinstance(raw, Mapping):
            return None
        backup, claim, dump = (_optional_str(raw.get(key)) for key in ("backup", "claim", "dump"))
        url, sha256, image = (
            _optional_str(raw.get(key)) for key in ("url", "sha256", "transferImage")
        )
        size, store = raw.get("sizeBytes"), parse_s3_store(raw.get("store"))
        if backup is None or dump is None:
            return None
        if url is not None:
            if sha256 is None or image is None or store is None or not isinstance(size, int):
                return None
            return RestoreSource(backup, None, dump, url, size, sha256, image, store)
        if claim is None:
            return None
        return RestoreSource(backup, claim, dump)


@dataclass(frozen=True)
class JobRecord:
    """A Job this lifetime needs to succeed (the restore, or the final backup): which
    attempt, its Job, how it ended, and the script's one-line result."""

    attempt: int = 1
    job: str | None = None
    phase: JobPhase = JobPhase.RUNNING
    message: str | None = None
    reason: str | None = None  # why it failed or was refused (a conditions.Reason value)
    failed_at: str | None = None  # RFC 3339; the retry backoff counts from here
    retry_token: str | None = None  # the retry annotation's value this record honoured
    # Restore only: the server's readiness probe waits for this restore (see Desired), so
    # the client Service is declared from the first `up`. Records made before the probe
    # did lack it, and their instances keep the plain probe.
    gates_readiness: bool = False
    # Restore only: the named backup it applies (spec.restore_from); None: the newest dump
    # on the instance's own backup claim.
    source: RestoreSource | None = None

    @property
    def result(self) -> dict[str, str]:
        """`key=value` fields of the script's result line (dump, sequence, sha256...)."""
        fields: dict[str, str] = {}
        for word in (self.message or "").split():
            key, sep, value = word.partition("=")
            if sep:
                fields[key] = value
        return fields

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "job": self.job,
            "phase": self.phase.value,
            "message": self.message,
            "reason": self.reason,
            "failedAt": self.failed_at,
            "retryToken": self.retry_token,
            "gatesReadiness": self.gates_readiness,
            "source": self.source.to_dict() if self.source is not None else None,
        }

    @staticmethod
    def from_dict(raw: object) -> JobRecord | None:
        if not isinstance(raw, Mapping):
            return None
        try:
            phase = JobPhase(str(raw.get("phase")))
        except ValueError:
            return None
        attempt = raw.get("attempt")
        return JobRecord(
            attempt=attempt if isinstance(attempt, int) and attempt > 0 else 1,
            job=_optional_str(raw.get("job")),
            phase=phase,
            message=_optional_str(raw.get("message")),
            reason=_optional_str(raw.get("reason")),
            failed_at=_optional_str(raw.get("failedAt")),
            retry_token=_optional_str(raw.get("retryToken")),
            gates_readiness=raw.get("gatesReadiness") is True,
            source=RestoreSource.from_dict(raw.get("source")),
        )


@dataclass(frozen=True)
class VolumeRecord:
    """How one claim of this lifetime found its volume, decided once, before the first
    `up`, and declared the same way ever after (a claim's binding is immutable)."""

    claim: str
    adopted_volume: str | None = None  # a volume an earlier lifetime left behind
    storage_class: str | None = None  # the adopted volume's class
    size: str | None = None  # the adopted volume's capacity
    adopted_from: str | None = None  # the uid of the lifetime that left it
    preexisting: bool = False  # the claim itself outlived the earlier lifetime

    @property
    def carries_data(self) -> bool:
        """The volume may hold data from before this lifetime."""
        return self.adopted_volume is not None or self.preexisting

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "adoptedVolume": self.adopted_volume,
            "storageClass": self.storage_class,
            "size": self.size,
            "adoptedFrom": self.adopted_from,
            "preexisting": self.preexisting,
        }

    @staticmethod
    def from_dict(raw: object) -> VolumeRecord | None:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("claim"), str):
            return None
        return VolumeRecord(
            claim=str(raw["claim"]),
            adopted_volume=_optional_str(raw.get("adoptedVolume")),
            storage_class=_optional_str(raw.get("storageClass")),
            size=_optional_str(raw.get("size")),
            adopted_from=_optional_str(raw.get("adoptedFrom")),
            preexisting=raw.get("preexisting") is True,
        )


@dataclass(frozen=True)
class Volumes:
    data: VolumeRecord
    backup: VolumeRecord
    # The spec's storage fields when the claims were first declared: they cannot change.
    storage_fields: Mapping[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data.to_dict(),
            "backup": self.backup.to_dict(),
            "storageFields": dict(self.storage_fields),
        }

    @staticmethod
    def from_dict(raw: object) -> Volumes | None:
        if not isinstance(raw, Mapping):
            return None
        data, backup = (
            VolumeRecord.from_dict(raw.get("data")),
            VolumeRecord.from_dict(raw.get("backup")),
        )
        if data is None or backup is None:
            return None
        fields = raw.get("storageFields")
        return Volumes(
            data=data,
            backup=backup,
            storage_fields={str(k): _optional_str(v) for k, v in fields.items()}
            if isinstance(fields, Mapping)
            else {},
        )


@dataclass(frozen=True)
class Rotation:
    """One attempt to give root a new password on the running server: its Job (and the
    Secret of the same name that hands the Job the last applied and the new password),
    the digest of the password it sets, and how it ended."""

    job: str
    target: str  # passwords.digest of the password it sets
    phase: JobPhase = JobPhase.RUNNING
    message: str | None = None
    retry_token: str | None = None  # the retry annotation's value this attempt honoured

    def to_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "target": self.target,
            "phase": self.phase.value,
            "message": self.message,
            "retryToken": self.retry_token,
        }

    @staticmethod
    def from_dict(raw: object) -> Rotation | None:
        if not isinstance(raw, Mapping):
            return None
        job, target = raw.get("job"), raw.get("target")
        try:
            phase = JobPhase(str(raw.get("phase")))
        except ValueError:
            return None
        if not isinstance(job, str) or not isinstance(target, str):
            return None
        return Rotation(
            job=job,
            target=target,
            phase=phase,
            message=_optional_str(raw.get("message")),
            retry_token=_optional_str(raw.get("retryToken")),
        )


@dataclass(frozen=True)
class PasswordRecord:
    """The root password the server has, as a keyed digest (passwords.digest: without the
    operator's passphrase it says nothing about the password), and its rotations."""

    applied: str
    attempts: int = 0  # rotation Jobs started in this lifetime (they are numbered)
    rotations: int = 0  # rotations applied; the server restarts for each
    rotated_at: str | None = None  # RFC 3339, the last one
    rotation: Rotation | None = None  # the attempt under way, or the last failed one

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "attempts": self.attempts,
            "rotations": self.rotations,
            "rotatedAt": self.rotated_at,
            "rotation": self.rotation.to_dict() if self.rotation is not None else None,
        }

    @staticmethod
    def from_dict(raw: object) -> PasswordRecord | None:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("applied"), str):
            return None
        attempts, rotations = raw.get("attempts"), raw.get("rotations")
        return PasswordRecord(
            applied=str(raw["applied"]),
            attempts=attempts if isinstance(attempts, int) and attempts > 0 else 0,
            rotations=rotations if isinstance(rotations, int) and rotations > 0 else 0,
            rotated_at=_optional_str(raw.get("rotatedAt")),
            rotation=Rotation.from_dict(raw.get("rotation")),
        )


@dataclass(frozen=True)
class InstanceStatus:
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()
    inputs_fingerprint: str | None = None
    toolchain: ToolchainVersions | None = None
    last_update: UpdateRecord | None = None
    endpoint: Endpoint | None = None
    stack: str | None = None
    volumes: Volumes | None = None
    restore: JobRecord | None = None
    served: bool = False  # the client Service has selected the server in this lifetime
    final_backup: JobRecord | None = None
    # spec.backup.schedule: the last fire time acted on (a backup created, or skipped), or
    # when the schedule was first seen; no fire at or before it is acted on again.
    last_schedule_time: str | None = None
    # The drift (drift.signature) the last heal reverted: seen again, it is only reported,
    # so a drift an `up --refresh` does not revert costs one run, not one per pass.
    drift_healed: str | None = None
    password: PasswordRecord | None = None

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
                "volumes": self.volumes.to_dict() if self.volumes else None,
                "restore": self.restore.to_dict() if self.restore else None,
                "served": self.served,
                "finalBackup": self.final_backup.to_dict() if self.final_backup else None,
                "lastScheduleTime": self.last_schedule_time,
                "driftHealed": self.drift_healed,
                "password": self.password.to_dict() if self.password else None,
            }
        }


def parse_status(obj: Mapping[str, Any]) -> InstanceStatus:
    raw = obj.get("status")
    if not isinstance(raw, Mapping):
        return InstanceStatus()
    generation = raw.get("observedGeneration")
    endpoint = raw.get("endpoint")
    return InstanceStatus(
        observed_generation=generation if isinstance(generation, int) else None,
        conditions=parse_conditions(raw.get("conditions")),
        inputs_fingerprint=_optional_str(raw.get("inputsFingerprint")),
        toolchain=ToolchainVersions.from_dict(raw.get("toolchain")),
        last_update=UpdateRecord.from_dict(raw.get("lastUpdate")),
        endpoint=Endpoint(str(endpoint.get("host")), int(endpoint.get("port", 0)))
        if isinstance(endpoint, Mapping)
        else None,
        stack=_optional_str(raw.get("stack")),
        volumes=Volumes.from_dict(raw.get("volumes")),
        restore=JobRecord.from_dict(raw.get("restore")),
        served=raw.get("served") is True,
        final_backup=JobRecord.from_dict(raw.get("finalBackup")),
        last_schedule_time=_optional_str(raw.get("lastScheduleTime")),
        drift_healed=_optional_str(raw.get("driftHealed")),
        password=PasswordRecord.from_dict(raw.get("password")),
    )


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
