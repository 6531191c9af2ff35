"""Pure rules that the lifecycle and the teardown share: reading the object, the synced
check, the desired state of a stage, what a Job's outcome means, and why a server is not
ready yet."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from reconciler.actions import Action, JobKind, Notice, RecordJob, Stall, Wait
from reconciler.conditions import Reason, timestamp
from reconciler.desired import ClaimBinding, Desired
from reconciler.live import ClaimState, JobState, PodState, SecretState
from reconciler.names import names_for
from reconciler.observation import Observation, StackState
from reconciler.spec import Instance
from reconciler.status import (
    InstanceStatus,
    JobPhase,
    JobRecord,
    PasswordRecord,
    ToolchainVersions,
    VolumeRecord,
)
from reconciler.transfer_jobs import CREDENTIAL_KEYS
from reconciler.vocabulary import (
    ANNOTATION_RETRY,
    FINALIZER,
    LABEL_PASSWORD_SECRET,
    LABEL_S3_CREDENTIALS,
    Stage,
)

# A failed Job's next attempt waits 10 s, then 20 s, 40 s ... up to 10 minutes.
RETRY_BASE_S: Final = 10.0
RETRY_CAP_S: Final = 600.0
# How soon to look again while waiting, if no watched object changes first.
POLL_S: Final = 30.0
# Exit codes of the Job scripts that retrying cannot fix (reconciler/scripts/*.sh).
EXIT_BAD_CONFIGURATION: Final = 2
EXIT_TARGET_NOT_EMPTY: Final = 3
EXIT_DUMP_UNUSABLE: Final = 4
IMAGE_PULL_REASONS: Final = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)


def metadata_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def generation_of(obj: Mapping[str, Any]) -> int:
    generation = metadata_of(obj).get("generation", 0)
    return generation if isinstance(generation, int) else 0


def has_finalizer(obj: Mapping[str, Any]) -> bool:
    return FINALIZER in (metadata_of(obj).get("finalizers") or [])


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return metadata_of(obj).get("deletionTimestamp") is not None


def annotation(obj: Mapping[str, Any], key: str) -> str | None:
    value = (metadata_of(obj).get("annotations") or {}).get(key)
    return value if isinstance(value, str) else None


def storage_fields(instance: Instance) -> dict[str, str | None]:
    """The spec's fields that decide which volumes the claims bind; immutable."""
    spec = instance.spec
    return {
        "spec.storage_class": spec.storage_class,
        "spec.host_path": spec.host_path,
        "spec.backup.storage_class": spec.backup.storage_class,
        "spec.backup.host_path": spec.backup.host_path,
    }


def changed_storage_field(recorded: Mapping[str, str | None], instance: Instance) -> str | None:
    """`field: was X, now Y` for the first storage field that differs from the record."""
    for name, value in storage_fields(instance).items():
        if name in recorded and recorded[name] != value:
            return f"{name}: was {_shown(recorded[name])}, now {_shown(value)}"
    return None


def _shown(value: str | None) -> str:
    return "unset" if value is None else repr(value)


def password_secret_problem(
    instance: Instance, secret: SecretState | None
) -> tuple[Reason, str] | None:
    """Why spec.passwordSecretRef cannot be used, or None when it can (or is not set)."""
    ref = instance.spec.password_secret_ref
    if ref is None:
        return None
    field = "spec.passwordSecretRef"
    if secret is None:
        return (
            Reason.SECRET_MISSING,
            f"{field}: Secret {ref.name!r} not found in namespace {instance.namespace}",
        )
    if secret.labels.get(LABEL_PASSWORD_SECRET) != "true":
        return (
            Reason.SECRET_NOT_ALLOWED,
            f"{field}: Secret {ref.name!r} does not carry the label "
            f"{LABEL_PASSWORD_SECRET}=true; its owner adds it to let MySQL objects use it",
        )
    if ref.key not in secret.keys:
        return Reason.SECRET_MISSING, f"{field}: Secret {ref.name!r} has no key {ref.key!r}"
    return None


def s3_problem(instance: Instance, observation: Observation) -> str | None:
    """Why a Job cannot move a dump to or from spec.backup.s3, or None when it can."""
    s3 = instance.spec.backup.s3
    if s3 is None:
        return "spec.backup.s3 is not set"
    if observation.transfer_image is None:
        return (
            "spec.backup.s3: this operator runs without a transfer image (--transfer-image), "
            "so its Jobs cannot reach S3"
        )
    field, secret = "spec.backup.s3.credentials_secret_ref", observation.s3_secret
    if secret is None:
        return (
            f"{field}: Secret {s3.credentials_secret!r} not found in namespace {instance.namespace}"
        )
    if secret.labels.get(LABEL_S3_CREDENTIALS) != "true":
        return (
            f"{field}: Secret {s3.credentials_secret!r} does not carry the label "
            f"{LABEL_S3_CREDENTIALS}=true; its owner adds it to let MySQL objects use it"
        )
    missing = [key for key in CREDENTIAL_KEYS if key not in secret.keys]
    if missing:
        return f"{field}: Secret {s3.credentials_secret!r} has no key {', '.join(missing)}"
    return None


def host_path_problem(instance: Instance, root: str | None) -> str | None:
    """Why a host path in the spec is not allowed, or None. A host path is a directory on
    the node, mounted read-write into pods that run the user's image: the operator allows
    them only under the root it is configured with."""
    spec = instance.spec
    for field, path in (
        ("spec.host_path", spec.host_path),
        ("spec.backup.host_path", spec.backup.host_path),
    ):
        if path is None:
            continue
        if root is None:
            return (
                f"{field}: host paths are not allowed by this operator (it has no "
                "--host-path-root); use a StorageClass"
            )
        base = root.rstrip("/")
        if path.rstrip("/") == base or not path.startswith(base + "/"):
            return f"{field}: {path!r} is not under the allowed root {base!r}"
    return None


def binding(record: VolumeRecord | None) -> ClaimBinding:
    if record is None or record.adopted_volume is None:
        return ClaimBinding()
    return ClaimBinding(record.adopted_volume, record.storage_class, record.size)


def desired_for(
    instance: Instance, stage: Stage, status: InstanceStatus, password: str | None = None
) -> Desired:
    """`password`: the one the stack declares (passwords.declared_password)."""
    volumes = status.volumes
    return Desired(
        instance=instance,
        stage=stage,
        restore_attempt=status.restore.attempt if status.restore else 1,
        backup_attempt=status.final_backup.attempt if status.final_backup else 1,
        data_binding=binding(volumes.data if volumes else None),
        backup_binding=binding(volumes.backup if volumes else None),
        readiness_gated=status.restore is not None and status.restore.gates_readiness,
        restore_finished=status.restore is not None and status.restore.phase is JobPhase.SUCCEEDED,
        restore_source=status.restore.source if status.restore is not None else None,
        # None: the spec's own (the usual case, so a Desired reads the same as before).
        password=None if password == instance.spec.password else password,
        password_rotations=rotations_declared(status.password),
    )


def rotations_declared(record: PasswordRecord | None) -> int | None:
    """The rotation count the server's pod template carries (None before the first):
    one more as soon as a rotation succeeded, so that the pod restarts with it."""
    if record is None:
        return None
    count = record.rotations
    if record.rotation is not None and record.rotation.phase is JobPhase.SUCCEEDED:
        count += 1
    return count or None


def synced(
    status: InstanceStatus, fingerprint: str, toolchain: ToolchainVersions, stack: StackState | None
) -> bool:
    """Only an exact match of the inputs and the toolchain, with the stack still holding
    its objects, skips the engine. An unknown stack (None) is not read as lost."""
    return (
        status.inputs_fingerprint == fingerprint
        and status.toolchain == toolchain
        and (stack is None or stack.deployed)
    )


def deploy_reason(
    status: InstanceStatus, stack: StackState | None, generation: int
) -> tuple[Reason, str]:
    if status.inputs_fingerprint is not None and stack is not None and not stack.deployed:
        return (
            Reason.STACK_STATE_LOST,
            "the stack's state is missing or empty while the instance was deployed: "
            "rebuilding it by adopting the live objects",
        )
    return Reason.PROCESSING, f"running the stack update for generation {generation}"


# -- Jobs ------------------------------------------------------------------------------------


def job_name(instance: Instance, kind: JobKind, attempt: int) -> str:
    names = names_for(instance)
    return names.restore_job(attempt) if kind is JobKind.RESTORE else names.backup_job(attempt)


def retry_delay_s(attempt: int) -> float:
    return min(RETRY_CAP_S, RETRY_BASE_S * 2.0 ** min(attempt - 1, 30))


def new_retry_token(obj: Mapping[str, Any], record: JobRecord) -> str | None:
    """The retry annotation's value when a person set a new one since the record."""
    token = annotation(obj, ANNOTATION_RETRY)
    return token if token is not None and token != record.retry_token else None


def first_attempt(instance: Instance, kind: JobKind, obj: Mapping[str, Any]) -> RecordJob:
    """Recorded before the Job is declared, so a crash never loses which attempt runs.
    Every new restore gates the server's readiness."""
    return RecordJob(
        kind,
        JobRecord(
            attempt=1,
            job=job_name(instance, kind, 1),
            retry_token=annotation(obj, ANNOTATION_RETRY),
            gates_readiness=kind is JobKind.RESTORE,
        ),
    )


def _labels(kind: JobKind) -> tuple[Reason, Reason, str]:
    """(running, retrying) reasons and a noun for a Job of this kind."""
    if kind is JobKind.RESTORE:
        return Reason.RESTORING, Reason.RESTORE_RETRYING, "restore"
    return Reason.BACKING_UP, Reason.BACKUP_RETRYING, "final backup"


def job_step(
    observation: Observation, instance: Instance, kind: JobKind, record: JobRecord
) -> Action | None:
    """The next step for this lifetime's restore or final backup; None once it succeeded."""
    obj, now = observation.obj, observation.now
    running_reason, retrying_reason, noun = _labels(kind)
    if record.phase is JobPhase.SUCCEEDED:
        return None
    token = new_retry_token(obj, record)
    if record.phase in (JobPhase.FAILED, JobPhase.REFUSED):
        next_attempt = record.attempt + 1
        retry = replace(
            record,
            attempt=next_attempt,
            job=job_name(instance, kind, next_attempt),
            phase=JobPhase.RUNNING,
            message=None,
            reason=None,
            failed_at=None,
            retry_token=token or record.retry_token,
        )
        if token is not None:
            return RecordJob(
                kind,
                retry,
                Notice("RetryRequested", f"{noun}: attempt {next_attempt} now, as asked"),
            )
        if record.phase is JobPhase.REFUSED:
            return Stall(
                Reason(record.reason or Reason.JOB_FAILED.value), _refused_message(record, noun)
            )
        remaining = _remaining_backoff(record, now)
        if remaining > 0:
            return Wait(
                retrying_reason,
                f"{noun} Job {record.job} (attempt {record.attempt}) failed: {record.message}; "
                f"attempt {next_attempt} in {remaining:.0f}s",
                remaining,
            )
        return RecordJob(kind, retry)
    job = observation.live.job
    if job is None:
        # The stack is synced, so the Job was created: someone deleted it.
        gone = replace(
            record,
            phase=JobPhase.FAILED,
            message=f"Job {record.job} disappeared (deleted outside the operator?)",
            reason=Reason.JOB_FAILED.value,
            failed_at=timestamp(now),
        )
        return RecordJob(kind, gone, Notice(f"{_title(noun)}Failed", gone.message or "", True))
    if job.succeeded:
        done = replace(record, phase=JobPhase.SUCCEEDED, message=job.message)
        return RecordJob(
            kind, done, Notice(f"{_title(noun)}Succeeded", f"Job {job.name}: {job.message}")
        )
    if job.failed:
        return RecordJob(kind, *_failure(record, job, kind, noun, now))
    pod = job.pod
    if pod is not None:
        problem = _pod_problem(pod, instance)
        if problem is not None:
            reason, message = problem
            return Wait(reason, f"{noun} Job {job.name}: {message}", POLL_S)
    return Wait(running_reason, f"{noun} Job {job.name} running (attempt {record.attempt})", POLL_S)


def _title(noun: str) -> str:
    return "".join(word.capitalize() for word in noun.split())


def _failure(
    record: JobRecord, job: JobState, kind: JobKind, noun: str, now: datetime
) -> tuple[JobRecord, Notice]:
    code, message = job.exit_code, job.message or "no message"
    refused: Reason | None = None
    if code == EXIT_BAD_CONFIGURATION:
        refused = Reason.JOB_FAILED
    elif kind is JobKind.RESTORE and code == EXIT_TARGET_NOT_EMPTY:
        refused = Reason.RESTORE_TARGET_NOT_EMPTY
    elif kind is JobKind.RESTORE and code == EXIT_DUMP_UNUSABLE:
        refused = Reason.RESTORE_DUMP_CORRUPT
    failed = replace(
        record,
        phase=JobPhase.REFUSED if refused is not None else JobPhase.FAILED,
        message=message,
        reason=(refused or Reason.JOB_FAILED).value,
        failed_at=timestamp(now),
    )
    return failed, Notice(
        f"{_title(noun)}Failed",
        f"Job {job.name} (attempt {record.attempt}) failed"
        + (f" with exit code {code}" if code is not None else "")
        + f": {message}",
        warning=True,
    )


def _refused_message(record: JobRecord, noun: str) -> str:
    return (
        f"{noun} Job {record.job} refused: {record.message}. Nothing was changed or "
        f"deleted. Fix the cause, then set the annotation {ANNOTATION_RETRY} to a new value "
        "to try again"
    )


def _remaining_backoff(record: JobRecord, now: datetime) -> float:
    delay = retry_delay_s(record.attempt)
    if record.failed_at is None:
        return 0.0
    try:
        failed_at = datetime.strptime(record.failed_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return 0.0
    elapsed = (now - failed_at).total_seconds()
    # A clock that went back never makes the wait longer than the delay itself.
    return max(0.0, min(delay, delay - elapsed))


# -- the server ---------------------------------------------------------------------------------


def _pod_problem(pod: PodState, instance: Instance) -> tuple[Reason, str] | None:
    if pod.waiting_reason in IMAGE_PULL_REASONS:
        return (
            Reason.IMAGE_PULL_FAILED,
            f"spec.image {instance.spec.image!r} cannot be pulled: "
            f"{pod.waiting_reason}: {pod.waiting_message or 'no message'}",
        )
    if pod.waiting_reason == "CrashLoopBackOff":
        return (
            Reason.CRASH_LOOPING,
            f"pod {pod.name} restarted {pod.restarts} times; last termination: "
            f"{pod.last_termination_reason or 'unknown'}: "
            f"{pod.last_termination_message or 'no message'}",
        )
    if pod.waiting_reason == "CreateContainerConfigError":
        return (
            Reason.SECRET_MISSING,
            f"pod {pod.name} cannot start: {pod.waiting_message or pod.waiting_reason}",
        )
    if pod.unschedulable is not None and "persistentvolumeclaim" not in pod.unschedulable.lower():
        return Reason.POD_UNSCHEDULABLE, f"pod {pod.name} cannot be scheduled: {pod.unschedulable}"
    return None


STALLING: Final = frozenset(
    {
        Reason.IMAGE_PULL_FAILED,
        Reason.CRASH_LOOPING,
        Reason.SECRET_MISSING,
        Reason.POD_UNSCHEDULABLE,
    }
)


def server_problem(observation: Observation, instance: Instance) -> Action | None:
    """Why the MySQL server is not ready yet (Wait or Stall), or None when it is."""
    live = observation.live
    claim = live.data_claim
    if claim is None or not claim.bound:
        return Wait(Reason.VOLUME_PENDING, _claim_message(claim, live.claim_event), POLL_S)
    pod = live.server_pod
    if pod is None:
        return Wait(Reason.POD_STARTING, "the MySQL pod has not been created yet", POLL_S)
    problem = _pod_problem(pod, instance)
    if problem is not None:
        reason, message = problem
        if reason in STALLING:
            return Stall(reason, message)
        return Wait(reason, message, POLL_S)
    if not pod.ready:
        return Wait(
            Reason.POD_STARTING,
            f"MySQL pod {pod.name} is {pod.phase}"
            + (f" ({pod.waiting_reason})" if pod.waiting_reason else "")
            + ", not ready yet",
            POLL_S,
        )
    return None


def _claim_message(claim: ClaimState | None, event: str | None) -> str:
    if claim is None:
        return "the data claim has not been created yet"
    cause = event or "no events yet (a WaitForFirstConsumer class binds when the pod is scheduled)"
    return f"claim {claim.name} is {claim.phase}: {cause}"
