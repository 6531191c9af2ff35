"""The reconcile decision: from one object, its status and a few cheap observations, the
next action. Pure, so that every branch is unit-tested without a cluster or an engine.

`executor.py` gathers the `Observation`, asks `decide`, and carries the action out.

Deletion is where users lose data (ENGINEERING.md section 8), so the rules are strict:
the finalizer goes only after a `Teardown` whose backup (when the policy asks for one)
and destroy both succeeded; a Terminating namespace, where the backup Job cannot be
created any more, is reported instead of waited on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from reconciler.conditions import ConditionType, Reason, Status, find, is_true
from reconciler.fingerprint import inputs_fingerprint
from reconciler.program import Phase
from reconciler.spec import Instance, SpecError, parse_instance
from reconciler.status import InstanceStatus, ToolchainVersions, parse_status

FINALIZER: Final = "otus.homework/teardown"


@dataclass(frozen=True)
class Observation:
    obj: Mapping[str, Any]  # the object as the API server returned it
    toolchain: ToolchainVersions
    namespace_terminating: bool = False
    # Why the referenced password Secret is unusable, if it is (None: fine or not used).
    secret_problem: str | None = None
    # Whether the stack holds any Kubernetes object; asked of the stack only on deletion.
    stack_deployed: bool = True


@dataclass(frozen=True)
class Forget:
    """Nothing to do: the object is going and is not ours to hold."""


@dataclass(frozen=True)
class AddFinalizer:
    pass


@dataclass(frozen=True)
class Stall:
    """Report and wait for a change from outside; no engine run, no retry storm."""

    reason: Reason
    message: str


@dataclass(frozen=True)
class InSync:
    """Generation, inputs and toolchain all match what was last applied: no engine run."""


@dataclass(frozen=True)
class Deploy:
    instance: Instance
    fingerprint: str


@dataclass(frozen=True)
class Teardown:
    """Back up (a TEARDOWN `up`) if `backup`, then destroy, remove the stack and the finalizer."""

    namespace: str
    name: str
    instance: Instance | None  # None when the spec is invalid and nothing was deployed
    backup: bool


Action = Forget | AddFinalizer | Stall | InSync | Deploy | Teardown


def generation_of(obj: Mapping[str, Any]) -> int:
    generation = obj.get("metadata", {}).get("generation", 0)
    return generation if isinstance(generation, int) else 0


def has_finalizer(obj: Mapping[str, Any]) -> bool:
    return FINALIZER in (obj.get("metadata", {}).get("finalizers") or [])


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return obj.get("metadata", {}).get("deletionTimestamp") is not None


def is_synced(
    status: InstanceStatus, generation: int, fingerprint: str, toolchain: ToolchainVersions
) -> bool:
    """ENGINEERING.md section 3: only an exact match of all three skips the engine."""
    return (
        status.observed_generation == generation
        and status.inputs_fingerprint == fingerprint
        and status.toolchain == toolchain
        and is_true(status.conditions, ConditionType.READY)
    )


def backup_done(obj: Mapping[str, Any]) -> bool:
    """A backup of this generation already succeeded (a retried teardown skips it)."""
    condition = find(parse_status(obj).conditions, ConditionType.BACKUP_READY)
    return (
        condition is not None
        and condition.status is Status.TRUE
        and condition.reason is Reason.BACKUP_SUCCEEDED
        and condition.observed_generation == generation_of(obj)
    )


def decide(observation: Observation) -> Action:
    obj = observation.obj
    metadata = obj.get("metadata", {})
    namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
    if is_deleting(obj):
        if not has_finalizer(obj):
            return Forget()
        return _decide_deletion(observation, namespace, name)
    if not has_finalizer(obj):
        return AddFinalizer()
    try:
        instance = parse_instance(obj)
    except SpecError as error:
        return Stall(Reason.SPEC_INVALID, str(error))
    if observation.secret_problem is not None:
        return Stall(Reason.SECRET_MISSING, observation.secret_problem)
    fingerprint = inputs_fingerprint(instance, Phase.RUNNING)
    if is_synced(parse_status(obj), generation_of(obj), fingerprint, observation.toolchain):
        return InSync()
    return Deploy(instance, fingerprint)


def _decide_deletion(observation: Observation, namespace: str, name: str) -> Action:
    try:
        instance: Instance | None = parse_instance(observation.obj)
    except SpecError as error:
        if observation.stack_deployed:
            return Stall(
                Reason.SPEC_INVALID,
                f"cannot back up before deleting: {error}; fix the spec so the backup can run",
            )
        instance = None
    if not observation.stack_deployed:
        # Nothing was ever created, so there is nothing to back up; the stack may still
        # exist (empty) and is removed like any other.
        return Teardown(namespace, name, instance, backup=False)
    assert instance is not None
    backup = instance.spec.backs_up_on_delete and not backup_done(observation.obj)
    if backup and observation.namespace_terminating:
        return Stall(
            Reason.NAMESPACE_TERMINATING,
            f"namespace {namespace} is terminating, so the backup Job cannot be created; "
            f"the finalizer {FINALIZER} stays until the backup has run or a person removes it",
        )
    return Teardown(namespace, name, instance, backup=backup)
