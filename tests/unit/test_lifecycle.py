"""The next step for an instance that lives, branch by branch in the order the decision
takes them: finalizer, spec, password Secret, claims deleted by hand, the volume plan
(adoption), immutable storage, the restore, the stack, retention, and readiness."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

import pytest

from reconciler.actions import (
    AddFinalizer,
    Deploy,
    JobKind,
    MarkReady,
    PatchVolumes,
    RecordJob,
    RecordVolumes,
    Stall,
    Wait,
)
from reconciler.conditions import Reason
from reconciler.fingerprint import inputs_fingerprint
from reconciler.lifecycle import decide_lifecycle
from reconciler.live import SecretState, volume_state
from reconciler.observation import Live, StackState
from reconciler.policy import desired_for
from reconciler.status import InstanceStatus, JobPhase, JobRecord, VolumeRecord, Volumes
from reconciler.vocabulary import ANNOTATION_RELEASED, ANNOTATION_RETAINED_REASON, Stage
from reconciler.volumes import adoption_patch
from tests.unit.builders import (
    BACKUP_CLAIM,
    BACKUP_PV,
    DATA_CLAIM,
    DATA_PV,
    DEPLOYED,
    EMPTY_STACK,
    FINGERPRINT_KEY,
    FRESH_VOLUMES,
    NAMESPACE,
    RESTORE_JOB_1,
    RESTORED,
    TOOLCHAIN,
    UID,
    claim,
    instance,
    job,
    job_pod,
    left_volume,
    live_of,
    mysql_object,
    observe,
    password_secret,
    pod,
    serving_live,
    synced_status,
    volume,
)

pytestmark = pytest.mark.unit

RESTORE_RUNNING = JobRecord(attempt=1, job=RESTORE_JOB_1)


def applied(status: InstanceStatus, stage: Stage, **spec: Any) -> InstanceStatus:
    """`status` as it is after a successful `up` of `stage` for the spec: synced."""
    synced = synced_status(status, stage, **spec)
    return replace(synced, served=status.served or stage is Stage.SERVING)


RESTORING = applied(InstanceStatus(volumes=FRESH_VOLUMES, restore=RESTORE_RUNNING), Stage.RESTORING)
SERVING = applied(InstanceStatus(volumes=FRESH_VOLUMES, restore=RESTORED), Stage.SERVING)


def decide(
    status: InstanceStatus | None = None,
    *,
    live: Live | None = None,
    stack: StackState | None = DEPLOYED,
    secret: SecretState | None = None,
    host_path_root: str | None = None,
    finalizer: bool = True,
    **spec: Any,
) -> Any:
    obj = mysql_object(finalizer=finalizer, status=status, **spec)
    return decide_lifecycle(
        observe(obj, live=live, stack=stack, password_secret=secret, host_path_root=host_path_root)
    )


def restoring_live(**changes: Any) -> Live:
    """Serving-ready storage and server, and the first restore Job running."""
    parts: dict[str, Any] = {"job": job(), "job_pods": [job_pod(RESTORE_JOB_1)]}
    parts.update(changes)
    return serving_live(**parts)


# -- before anything else -------------------------------------------------------------------


def test_the_finalizer_comes_first() -> None:
    assert decide(finalizer=False) == AddFinalizer()


def test_the_finalizer_comes_first_even_for_an_invalid_spec() -> None:
    assert decide(finalizer=False, storage_size="0") == AddFinalizer()


def test_an_invalid_spec_stalls_naming_the_field() -> None:
    action = decide(SERVING, storage_size="0")
    assert isinstance(action, Stall)
    assert action.reason is Reason.SPEC_INVALID
    assert action.message.startswith("spec.storage_size: ")


BY_REF: Final[dict[str, Any]] = {"password": None, "passwordSecretRef": {"name": "root-pw"}}


def test_a_missing_password_secret_stalls_naming_it() -> None:
    action = decide(SERVING, secret=None, **BY_REF)
    assert isinstance(action, Stall)
    assert action.reason is Reason.SECRET_MISSING
    assert action.message.startswith("spec.passwordSecretRef: Secret 'root-pw' not found")


def test_a_password_secret_without_its_owners_consent_is_not_used() -> None:
    action = decide(SERVING, secret=password_secret(consent=False), **BY_REF)
    assert isinstance(action, Stall)
    assert action.reason is Reason.SECRET_NOT_ALLOWED
    assert "otus.homework/mysql-password=true" in action.message


def test_a_password_secret_without_the_key_stalls_naming_the_key() -> None:
    action = decide(SERVING, secret=password_secret(keys=("other",)), **BY_REF)
    assert isinstance(action, Stall)
    assert action.reason is Reason.SECRET_MISSING
    assert "has no key 'password'" in action.message


def test_a_consenting_password_secret_goes_on() -> None:
    action = decide(SERVING, secret=password_secret(), **BY_REF)
    assert not isinstance(action, Stall)


@pytest.mark.parametrize(
    ("root", "where", "verdict"),
    [
        (None, {"host_path": "/srv/db"}, "host paths are not allowed"),
        ("/srv/mysql", {"host_path": "/srv/other"}, "is not under the allowed root"),
        ("/srv/mysql", {"host_path": "/srv/mysql"}, "is not under the allowed root"),
        ("/srv/mysql", {"host_path": "/srv/mysqlx/db"}, "is not under the allowed root"),
        ("/srv/mysql", {"backup": {"host_path": "/"}}, "spec.backup.host_path"),
    ],
)
def test_host_paths_outside_the_operators_root_stall(
    root: str | None, where: dict[str, Any], verdict: str
) -> None:
    action = decide(SERVING, host_path_root=root, **where)
    assert isinstance(action, Stall)
    assert action.reason is Reason.HOST_PATH_NOT_ALLOWED
    assert verdict in action.message


def test_a_host_path_under_the_root_goes_on() -> None:
    action = decide(host_path_root="/srv/mysql", host_path="/srv/mysql/db")
    assert not isinstance(action, Stall)


@pytest.mark.parametrize("which", ["data_claim", "backup_claim"])
def test_a_claim_deleted_by_hand_stalls_and_is_kept(which: str) -> None:
    name = DATA_CLAIM if which == "data_claim" else BACKUP_CLAIM
    live = serving_live(**{which: claim(name, deleting=True)})
    action = decide(SERVING, live=live)
    assert isinstance(action, Stall)
    assert action.reason is Reason.CLAIM_DELETED
    assert name in action.message


# -- the volume plan ------------------------------------------------------------------------


def test_a_new_instance_plans_new_volumes_and_records_its_storage_fields() -> None:
    action = decide(live=live_of(), storage_class="fast")
    assert isinstance(action, RecordVolumes)
    assert action.volumes == Volumes(
        data=VolumeRecord(DATA_CLAIM),
        backup=VolumeRecord(BACKUP_CLAIM),
        storage_fields={
            "spec.storage_class": "fast",
            "spec.host_path": None,
            "spec.backup.storage_class": None,
            "spec.backup.host_path": None,
        },
    )
    assert action.adopt == ()
    assert action.notice is None


def test_a_claim_that_outlived_an_earlier_lifetime_is_taken_over() -> None:
    action = decide(live=live_of(data_claim=claim()))
    assert isinstance(action, RecordVolumes)
    assert action.volumes.data == VolumeRecord(DATA_CLAIM, preexisting=True)
    assert action.volumes.data.carries_data
    assert action.volumes.backup == VolumeRecord(BACKUP_CLAIM)
    assert action.notice is not None
    assert DATA_CLAIM in action.notice.message


def test_one_retained_volume_is_adopted_with_its_class_and_size() -> None:
    left = left_volume(
        "pv-old-data",
        storage_class="local",
        capacity="2Gi",
        annotations={ANNOTATION_RETAINED_REASON: "namespace shop was deleted"},
    )
    action = decide(live=live_of(retained_data=[left]))
    assert isinstance(action, RecordVolumes)
    assert action.volumes.data == VolumeRecord(
        DATA_CLAIM,
        adopted_volume="pv-old-data",
        storage_class="local",
        size="2Gi",
        adopted_from="uid-of-the-earlier-lifetime",
    )
    assert action.adopt == (adoption_patch(volume_state(left), NAMESPACE, DATA_CLAIM, UID),)
    assert action.notice is not None
    assert "namespace shop was deleted" in action.notice.message


def test_a_retained_backup_volume_is_adopted_for_the_backup_claim() -> None:
    left = left_volume("pv-old-dumps", storage_class="", capacity="5Gi")
    action = decide(live=live_of(retained_backup=[left]))
    assert isinstance(action, RecordVolumes)
    assert action.volumes.backup.adopted_volume == "pv-old-dumps"
    assert action.volumes.data == VolumeRecord(DATA_CLAIM)
    (patch,) = action.adopt
    assert patch.patch["spec"]["claimRef"]["name"] == BACKUP_CLAIM


def test_two_retained_volumes_stall_rather_than_guess() -> None:
    action = decide(live=live_of(retained_data=[left_volume("pv-b"), left_volume("pv-a")]))
    assert isinstance(action, Stall)
    assert action.reason is Reason.AMBIGUOUS_VOLUMES
    assert "pv-a, pv-b" in action.message
    assert ANNOTATION_RELEASED in action.message


def test_a_volume_released_on_purpose_is_not_adopted() -> None:
    released = left_volume("pv-dumped", annotations={ANNOTATION_RELEASED: "backed up"})
    action = decide(live=live_of(retained_data=[released]))
    assert isinstance(action, RecordVolumes)
    assert action.volumes.data == VolumeRecord(DATA_CLAIM)
    assert action.adopt == ()


def test_the_volume_plan_is_made_once() -> None:
    # Retained volumes turning up later must not change a recorded plan.
    live = serving_live(retained_data=[left_volume("pv-late")])
    assert not isinstance(decide(SERVING, live=live), RecordVolumes)


# -- immutable storage ----------------------------------------------------------------------


def test_a_changed_storage_field_stalls_and_names_it() -> None:
    action = decide(SERVING, storage_class="fast")
    assert isinstance(action, Stall)
    assert action.reason is Reason.IMMUTABLE_FIELD_CHANGED
    assert action.message.startswith("spec.storage_class: was unset, now 'fast'")


def test_a_storage_size_change_is_not_immutable() -> None:
    live = replace(serving_live(), volume_expansion=(("standard", True),))
    action = decide(SERVING, live=live, storage_size="2Gi")
    assert isinstance(action, Deploy), "a bigger claim on a class that grows is an update"


# -- the restore ----------------------------------------------------------------------------


def test_the_first_restore_attempt_is_recorded_before_the_first_up() -> None:
    action = decide(InstanceStatus(volumes=FRESH_VOLUMES))
    assert action == RecordJob(
        JobKind.RESTORE, JobRecord(attempt=1, job=RESTORE_JOB_1, gates_readiness=True)
    )


# Restores recorded since the readiness gate; RESTORE_RUNNING stands for earlier records.
GATED = replace(RESTORE_RUNNING, gates_readiness=True)
GATED_RESTORING = replace(
    applied(InstanceStatus(volumes=FRESH_VOLUMES, restore=GATED), Stage.SERVING), served=False
)


def test_a_gated_restore_declares_the_serving_stage_from_the_first_up() -> None:
    action = decide(InstanceStatus(volumes=FRESH_VOLUMES, restore=GATED))
    assert isinstance(action, Deploy)
    assert action.desired.stage is Stage.SERVING
    assert action.desired.readiness_gated
    assert "opening the Service" not in action.message


def test_the_end_of_a_gated_restore_changes_nothing_the_stack_declares() -> None:
    done = replace(GATED, phase=JobPhase.SUCCEEDED, message="restored")
    before = desired_for(instance(), Stage.SERVING, GATED_RESTORING)
    after = desired_for(instance(), Stage.SERVING, replace(GATED_RESTORING, restore=done))
    assert inputs_fingerprint(before, FINGERPRINT_KEY) == inputs_fingerprint(after, FINGERPRINT_KEY)
    action = decide(replace(GATED_RESTORING, restore=done, served=True))
    assert isinstance(action, MarkReady)


def test_a_gated_server_that_waits_for_its_restore_is_no_problem() -> None:
    live = restoring_live(server_pod=pod(ready=False))
    action = decide(GATED_RESTORING, live=live)
    assert isinstance(action, Wait)
    assert action.reason is Reason.RESTORING


def test_a_gated_server_that_crash_loops_still_stalls_while_restoring() -> None:
    crashing = pod(ready=False, waiting=("CrashLoopBackOff", "back-off"), restarts=4)
    action = decide(GATED_RESTORING, live=restoring_live(server_pod=crashing))
    assert isinstance(action, Stall)
    assert action.reason is Reason.CRASH_LOOPING


def test_an_ungated_restore_still_waits_for_the_server_first() -> None:
    action = decide(RESTORING, live=restoring_live(server_pod=pod(ready=False)))
    assert isinstance(action, Wait)
    assert action.reason is Reason.POD_STARTING


def test_an_unsynced_restoring_instance_is_deployed_with_its_fingerprint() -> None:
    status = InstanceStatus(volumes=FRESH_VOLUMES, restore=RESTORE_RUNNING)
    action = decide(status)
    assert isinstance(action, Deploy)
    assert action.desired == desired_for(instance(), Stage.RESTORING, status)
    assert action.fingerprint == inputs_fingerprint(action.desired, FINGERPRINT_KEY)
    assert action.reason is Reason.PROCESSING
    assert not action.refresh


def test_a_spec_change_is_deployed() -> None:
    action = decide(SERVING, image="mysql:8.0", generation=2)
    assert isinstance(action, Deploy)
    assert action.desired.instance.spec.image == "mysql:8.0"
    assert "generation 2" in action.message


def test_a_toolchain_change_is_deployed() -> None:
    status = replace(SERVING, toolchain=replace(TOOLCHAIN, kubernetes_provider="4.24.0"))
    assert isinstance(decide(status), Deploy)


def test_a_lost_stack_is_rebuilt_by_adoption() -> None:
    action = decide(SERVING, stack=EMPTY_STACK)
    assert isinstance(action, Deploy)
    assert action.reason is Reason.STACK_STATE_LOST
    assert action.desired.stage is Stage.SERVING


def test_a_missing_stack_is_also_lost() -> None:
    action = decide(SERVING, stack=StackState(exists=False, resources=0))
    assert isinstance(action, Deploy)
    assert action.reason is Reason.STACK_STATE_LOST


def test_an_unknown_stack_is_not_read_as_lost() -> None:
    assert isinstance(decide(SERVING, stack=None), MarkReady)


def test_a_deleted_deployment_is_recreated_with_a_refresh() -> None:
    action = decide(SERVING, live=serving_live(deployment_present=False))
    assert isinstance(action, Deploy)
    assert action.refresh
    assert action.reason is Reason.PROCESSING
    assert action.desired.stage is Stage.SERVING


def test_volumes_are_made_retain_before_anything_waits_on_them() -> None:
    live = restoring_live(
        data_volume=volume(reclaim="Delete"),
        backup_volume=volume(BACKUP_PV, reclaim="Delete", claim_name=BACKUP_CLAIM),
        job=job(succeeded=True),
    )
    action = decide(RESTORING, live=live)
    assert isinstance(action, PatchVolumes)
    assert [patch.volume for patch in action.patches] == [DATA_PV, BACKUP_PV]
    for patch in action.patches:
        assert patch.patch["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_an_unbound_claims_volume_is_not_patched() -> None:
    live = restoring_live(
        data_claim=claim(phase="Pending", volume=None), data_volume=None, backup_volume=None
    )
    assert not isinstance(decide(RESTORING, live=live), PatchVolumes)


def test_a_running_restore_waits() -> None:
    action = decide(RESTORING, live=restoring_live())
    assert isinstance(action, Wait)
    assert action.reason is Reason.RESTORING


def test_a_finished_restore_is_recorded() -> None:
    line = "restored dump=dump-0000000003.sql.gz"
    live = restoring_live(
        job=job(succeeded=True), job_pods=[job_pod(RESTORE_JOB_1, exit_code=0, message=line)]
    )
    action = decide(RESTORING, live=live)
    assert isinstance(action, RecordJob)
    assert action.record.phase is JobPhase.SUCCEEDED
    assert action.record.message == line


def test_a_server_that_cannot_start_stalls_before_the_restore_step() -> None:
    broken = pod(phase="Pending", ready=False, waiting=("ErrImagePull", "not found"))
    action = decide(RESTORING, live=restoring_live(server_pod=broken))
    assert isinstance(action, Stall)
    assert action.reason is Reason.IMAGE_PULL_FAILED


def test_while_the_restore_runs_a_server_problem_says_more_than_running() -> None:
    live = restoring_live(
        data_claim=claim(phase="Pending", volume=None),
        data_volume=None,
        claim_event="ProvisioningFailed: no space left",
    )
    action = decide(RESTORING, live=live)
    assert isinstance(action, Wait)
    assert action.reason is Reason.VOLUME_PENDING
    assert "no space left" in action.message


def test_a_finished_restore_is_recorded_whatever_the_server_does_now() -> None:
    live = restoring_live(
        server_pod=pod(ready=False),
        job=job(succeeded=True),
        job_pods=[job_pod(RESTORE_JOB_1, exit_code=0, message="restored")],
    )
    action = decide(RESTORING, live=live)
    assert isinstance(action, RecordJob)
    assert action.record.phase is JobPhase.SUCCEEDED


def test_a_restored_instance_opens_the_service_to_clients() -> None:
    status = replace(RESTORING, restore=RESTORED)
    action = decide(status)
    assert isinstance(action, Deploy)
    assert action.desired.stage is Stage.SERVING
    assert action.message == "restored; opening the Service to clients"


# -- readiness ------------------------------------------------------------------------------


def test_a_pending_claim_waits_for_its_volume() -> None:
    live = serving_live(
        data_claim=claim(phase="Pending", volume=None),
        data_volume=None,
        claim_event="WaitForFirstConsumer: waiting for first consumer to be created",
    )
    action = decide(SERVING, live=live)
    assert isinstance(action, Wait)
    assert action.reason is Reason.VOLUME_PENDING
    assert "waiting for first consumer" in action.message


def test_an_image_that_cannot_be_pulled_stalls() -> None:
    broken = pod(phase="Pending", ready=False, waiting=("ImagePullBackOff", "no such image"))
    action = decide(SERVING, live=serving_live(server_pod=broken))
    assert isinstance(action, Stall)
    assert action.reason is Reason.IMAGE_PULL_FAILED


def test_a_crash_looping_server_stalls() -> None:
    crashing = pod(ready=False, waiting=("CrashLoopBackOff", "back-off"), restarts=4)
    action = decide(SERVING, live=serving_live(server_pod=crashing))
    assert isinstance(action, Stall)
    assert action.reason is Reason.CRASH_LOOPING


def test_a_starting_server_waits() -> None:
    action = decide(SERVING, live=serving_live(server_pod=pod(ready=False)))
    assert isinstance(action, Wait)
    assert action.reason is Reason.POD_STARTING


def test_a_ready_server_is_ready_at_its_service_address() -> None:
    action = decide(SERVING)
    assert action == MarkReady("generation 1 applied; serving at mysql-instance.shop")


# -- precedence --------------------------------------------------------------------------------


def test_each_branch_comes_before_the_later_ones() -> None:
    """Everything wrong at once; putting right one thing at a time reveals the next."""
    by_ref: dict[str, Any] = {"password": None, "passwordSecretRef": {"name": "root-pw"}}
    changed_storage = replace(
        FRESH_VOLUMES, storage_fields={**FRESH_VOLUMES.storage_fields, "spec.host_path": "/mnt"}
    )
    unkept = serving_live(
        data_volume=volume(reclaim="Delete"),
        deployment_present=False,
        server_pod=pod(phase="Pending", ready=False, waiting=("ErrImagePull", "no")),
        job=job(),
        job_pods=[job_pod(RESTORE_JOB_1)],
    )
    assert unkept.data_claim is not None
    deleted_claim = replace(unkept, data_claim=replace(unkept.data_claim, deleting=True))
    restoring = InstanceStatus(volumes=FRESH_VOLUMES, restore=RESTORE_RUNNING)
    synced = applied(restoring, Stage.RESTORING, **by_ref)
    steps: list[tuple[dict[str, Any], type | tuple[type, Reason]]] = [
        (
            {"finalizer": False, "storage_size": "0", "secret": None},
            AddFinalizer,
        ),
        ({"storage_size": "0", "secret": None}, (Stall, Reason.SPEC_INVALID)),
        ({"secret": None}, (Stall, Reason.SECRET_MISSING)),
        ({}, (Stall, Reason.CLAIM_DELETED)),
        ({"live": unkept}, RecordVolumes),
        (
            {"live": unkept, "status": InstanceStatus(volumes=changed_storage)},
            (Stall, Reason.IMMUTABLE_FIELD_CHANGED),
        ),
        ({"live": unkept, "status": InstanceStatus(volumes=FRESH_VOLUMES)}, RecordJob),
        ({"live": unkept, "status": restoring}, (Deploy, Reason.PROCESSING)),
        ({"live": unkept, "status": synced}, (Deploy, Reason.PROCESSING)),
        (
            {"live": replace(unkept, deployment_present=True), "status": synced},
            PatchVolumes,
        ),
        (
            {
                "live": replace(
                    unkept,
                    deployment_present=True,
                    data_volume=serving_live().data_volume,
                ),
                "status": synced,
            },
            (Stall, Reason.IMAGE_PULL_FAILED),
        ),
        (
            {
                "live": replace(
                    unkept,
                    deployment_present=True,
                    data_volume=serving_live().data_volume,
                    server_pod=serving_live().server_pod,
                ),
                "status": synced,
            },
            (Wait, Reason.RESTORING),
        ),
    ]
    for index, (situation, expected) in enumerate(steps):
        arguments = {"live": deleted_claim, "secret": password_secret(), **situation}
        status = arguments.pop("status", None)
        action = decide(status, **arguments, **by_ref)
        kind, reason = expected if isinstance(expected, tuple) else (expected, None)
        assert isinstance(action, kind), (index, action)
        if reason is not None:
            assert getattr(action, "reason", None) is reason, (index, action)
    consent = password_secret()
    assert not decide(restoring, live=unkept, secret=consent, **by_ref).refresh, (
        "an unsynced stack is updated"
    )
    assert decide(synced, live=unkept, secret=consent, **by_ref).refresh, (
        "a synced one, its Deployment gone, refreshed"
    )


def test_a_ready_server_is_not_ready_until_its_service_routes_to_it() -> None:
    unrouted = replace(serving_live(), service_routes=False)
    action = decide(SERVING, live=unrouted)
    assert isinstance(action, Wait)
    assert action.reason is Reason.POD_STARTING
    assert "does not route to the server yet" in action.message
    assert isinstance(decide(SERVING, live=serving_live()), MarkReady)
