"""Password changes on a running server (reconciler/passwords.py), step by step through
the lifecycle and teardown decisions: what is recorded, which Job runs with which
Secret, what the stack declares meanwhile, and how failures are reported."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Final

import pytest

from reconciler import live as parse
from reconciler.actions import Deploy, RecordPassword, Stall, StartRotation, Wait
from reconciler.backup_objects import BackupObjectState, BackupPhase, final_backup_name
from reconciler.conditions import Reason
from reconciler.fingerprint import fingerprint_key, fingerprint_payload, inputs_fingerprint
from reconciler.lifecycle import decide_lifecycle
from reconciler.manifests import credentials_secret, deployment
from reconciler.observation import Live, Passwords
from reconciler.passwords import digest
from reconciler.policy import desired_for
from reconciler.spec import parse_instance
from reconciler.status import InstanceStatus, JobPhase, JobRecord, PasswordRecord, Rotation
from reconciler.teardown import decide_teardown
from reconciler.vocabulary import ANNOTATION_PASSWORD_ROTATIONS, ANNOTATION_RETRY, Stage
from tests.unit.builders import (
    BACKUP_JOB_1,
    FINGERPRINT_KEY,
    FRESH_VOLUMES,
    NAME,
    PASSWORD,
    RESTORED,
    STAMP,
    UID,
    instance,
    job,
    job_pod,
    mysql_object,
    observe,
    password_secret,
    pod,
    serving_live,
    synced_status,
)

pytestmark = pytest.mark.unit

KEY: Final = FINGERPRINT_KEY
OLD: Final = PASSWORD
NEW: Final = "n3w 'pass\\word' $x\n"
JOB_1: Final = "mysql-instance-password-0f3c2a9e-1"
JOB_2: Final = "mysql-instance-password-0f3c2a9e-2"
AT_OLD: Final = PasswordRecord(applied=digest(OLD, KEY))
AT_OLD_SECRET: Final = Passwords(applied=OLD)  # what the operator's Secret holds
ROTATION_1: Final = Rotation(JOB_1, digest(NEW, KEY))
ROTATING: Final = replace(AT_OLD, attempts=1, rotation=ROTATION_1)


def serving(record: PasswordRecord | None, *, password: str = OLD, **spec: Any) -> InstanceStatus:
    """Served, restored, and synced with the stack declaring `password`."""
    status = InstanceStatus(volumes=FRESH_VOLUMES, restore=RESTORED, served=True, password=record)
    declared = instance(password=password, **spec)
    desired = desired_for(declared, Stage.SERVING, status, password)
    return replace(
        synced_status(status, Stage.SERVING, password=password, **spec),
        inputs_fingerprint=inputs_fingerprint(desired, KEY),
    )


def rotation_job(name: str = JOB_1, *, exit_code: int | None = None, message: str = "") -> Live:
    raw_pods = [job_pod(name, exit_code=exit_code, message=message)]
    done = job(
        name, succeeded=exit_code == 0, failed=("BackoffLimitExceeded", "x") if exit_code else None
    )
    return replace(serving_live(), rotation_job=parse.job_state(done, raw_pods))


def decide(
    status: InstanceStatus,
    *,
    passwords: Passwords = AT_OLD_SECRET,
    live: Live | None = None,
    annotations: dict[str, str] | None = None,
    password_record: bool = True,
    **spec: Any,
) -> Any:
    spec.setdefault("password", NEW)
    obj = mysql_object(
        status=status, annotations=annotations, password_record=password_record, **spec
    )
    return decide_lifecycle(observe(obj, live=live, passwords=passwords))


# -- the record -----------------------------------------------------------------------------


def test_the_digest_is_keyed_and_names_its_key() -> None:
    assert digest(OLD, KEY) == digest(OLD, KEY)
    assert digest(OLD, KEY) != digest(NEW, KEY)
    other = digest(OLD, fingerprint_key("another passphrase"))
    assert other != digest(OLD, KEY)
    assert other.split(":")[1] != digest(OLD, KEY).split(":")[1]  # the key's id differs
    assert OLD not in digest(OLD, KEY)


def test_the_first_pass_records_what_the_operators_secret_holds() -> None:
    # Upgraded together with a new spec.password: the server still has the old one.
    status = replace(serving(None), password=None)
    action = decide(status, password_record=False)
    assert action == RecordPassword(PasswordRecord(applied=digest(OLD, KEY)))


def test_a_new_instance_records_the_spec_password() -> None:
    action = decide(InstanceStatus(), passwords=Passwords(), password_record=False)
    assert action == RecordPassword(PasswordRecord(applied=digest(NEW, KEY)))


def test_a_new_passphrase_is_recorded_again_not_read_as_a_new_password() -> None:
    stale = replace(AT_OLD, applied=digest(OLD, fingerprint_key("before")), rotations=2)
    action = decide(serving(stale), password=OLD)
    assert action == RecordPassword(replace(stale, applied=digest(OLD, KEY)))


# -- a rotation -----------------------------------------------------------------------------


def test_an_unchanged_password_needs_nothing() -> None:
    action = decide(serving(AT_OLD), password=OLD, passwords=Passwords())
    assert type(action).__name__ == "MarkReady"


def test_a_new_password_is_recorded_as_a_rotation_and_costs_no_up() -> None:
    action = decide(serving(AT_OLD))
    assert action == RecordPassword(ROTATING)


def test_the_rotation_job_gets_both_passwords_through_its_secret_only() -> None:
    action = decide(serving(ROTATING))
    assert isinstance(action, StartRotation)
    assert action.secret["metadata"]["name"] == JOB_1
    assert action.secret["stringData"] == {"old": OLD, "new": NEW}
    assert action.job["metadata"]["name"] == JOB_1
    shown = json.dumps(action.job) + repr(action)
    assert OLD not in shown
    assert "n3w" not in shown
    container = action.job["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs == {
        "OLD_PASSWORD": {"name": JOB_1, "key": "old"},
        "NEW_PASSWORD": {"name": JOB_1, "key": "new"},
    }
    assert container["image"] == "mysql:5.7"
    # Not the server's pods: kubectl get pods -l app=<name> lists the server alone.
    assert "app" not in action.job["spec"]["template"]["metadata"]["labels"]


def test_a_running_rotation_is_waited_for() -> None:
    action = decide(serving(ROTATING), live=rotation_job())
    assert isinstance(action, Wait)
    assert action.reason is Reason.PASSWORD_ROTATING
    assert JOB_1 in action.message
    assert "spec.password" in action.message


def test_a_rotation_that_succeeded_is_declared_and_restarts_the_server() -> None:
    done = decide(serving(ROTATING), live=rotation_job(exit_code=0, message="rotated: 2"))
    succeeded = replace(
        ROTATING,
        rotation=replace(ROTATION_1, phase=JobPhase.SUCCEEDED, message="rotated: 2"),
    )
    assert done == RecordPassword(succeeded)
    deploy = decide(serving(succeeded), passwords=Passwords(applied=OLD, rotated=NEW))
    assert isinstance(deploy, Deploy)
    assert deploy.desired.applied_password == NEW
    assert deploy.desired.password_rotations == 1
    template = deployment(deploy.desired)["spec"]["template"]
    assert template["metadata"]["annotations"] == {ANNOTATION_PASSWORD_ROTATIONS: "1"}
    secret = credentials_secret(deploy.desired)
    assert secret is not None
    assert secret["stringData"] == {"password": NEW}


def test_once_declared_the_rotation_ends_with_an_event() -> None:
    succeeded = replace(ROTATING, rotation=replace(ROTATION_1, phase=JobPhase.SUCCEEDED))
    synced = serving(succeeded, password=NEW)
    synced = replace(
        synced,
        inputs_fingerprint=inputs_fingerprint(
            desired_for(instance(password=NEW), Stage.SERVING, synced, NEW), KEY
        ),
    )
    action = decide(synced, passwords=Passwords(rotated=NEW))
    assert isinstance(action, RecordPassword)
    assert action.record == PasswordRecord(
        applied=digest(NEW, KEY), attempts=1, rotations=1, rotated_at="2026-01-01T12:00:00Z"
    )
    assert action.delete_secret == JOB_1
    assert action.notice is not None
    assert action.notice.reason == "PasswordRotated"
    assert "n3w" not in action.notice.message


def test_a_failed_rotation_is_recorded_its_secret_deleted_and_reported() -> None:
    line = "failed: ALTER USER failed, the old password is back: ERROR 1227"
    action = decide(serving(ROTATING), live=rotation_job(exit_code=1, message=line))
    assert isinstance(action, RecordPassword)
    assert action.delete_secret == JOB_1
    assert action.record.rotation is not None
    assert action.record.rotation.phase is JobPhase.FAILED
    assert action.notice is not None
    assert action.notice.warning
    stall = decide(serving(action.record))
    assert isinstance(stall, Stall)
    assert stall.reason is Reason.PASSWORD_ROTATION_FAILED
    assert "spec.password" in stall.message
    assert JOB_1 in stall.message
    assert line in stall.message
    assert ANNOTATION_RETRY in stall.message


def test_a_failed_rotation_is_tried_again_when_asked_or_for_another_password() -> None:
    failed_rotation = replace(ROTATION_1, phase=JobPhase.FAILED, message="failed: x")
    failed = replace(ROTATING, rotation=failed_rotation)
    retried = decide(serving(failed), annotations={ANNOTATION_RETRY: "1"})
    assert retried == RecordPassword(
        replace(failed, attempts=2, rotation=Rotation(JOB_2, digest(NEW, KEY), retry_token="1"))
    )
    another = decide(serving(failed), password="third")
    assert another == RecordPassword(
        replace(failed, attempts=2, rotation=Rotation(JOB_2, digest("third", KEY)))
    )


def test_setting_the_password_back_clears_a_failed_rotation() -> None:
    failed = replace(ROTATING, rotation=replace(ROTATION_1, phase=JobPhase.FAILED))
    assert decide(serving(failed), password=OLD) == RecordPassword(replace(failed, rotation=None))


def test_a_rotation_not_started_follows_a_newer_password() -> None:
    action = decide(serving(ROTATING), password="third")
    assert action == RecordPassword(
        replace(ROTATING, attempts=2, rotation=Rotation(JOB_2, digest("third", KEY)))
    )


def test_a_change_while_the_server_is_down_waits_for_it_saying_so() -> None:
    down = serving_live(server_pod=pod(ready=False))
    action = decide(serving(AT_OLD), live=down)
    assert isinstance(action, Wait)
    assert action.reason is Reason.POD_STARTING
    assert "spec.password changed: the new password is applied once the server is ready" in (
        action.message
    )


def test_a_password_the_server_has_that_cannot_be_read_stops_the_instance() -> None:
    action = decide(serving(AT_OLD), passwords=Passwords(applied="tampered"))
    assert isinstance(action, Stall)
    assert action.reason is Reason.PASSWORD_UNKNOWN
    assert "mysql-instance-credentials" in action.message
    assert "will not guess" in action.message


# -- the referenced Secret ------------------------------------------------------------------

REF: Final = {"name": "root-pw", "key": "password"}


@pytest.mark.parametrize(
    ("passwords", "said"),
    [
        (Passwords(wanted=""), "is empty"),
        (Passwords(wanted="x" * 1025), "holds 1025 characters"),
        (Passwords(unreadable="is not UTF-8 text"), "is not UTF-8 text"),
    ],
)
def test_an_unusable_secret_value_stalls_naming_the_field(passwords: Passwords, said: str) -> None:
    obj = mysql_object(status=serving(AT_OLD), password=None, passwordSecretRef=REF)
    action = decide_lifecycle(observe(obj, passwords=passwords, password_secret=password_secret()))
    assert isinstance(action, Stall)
    assert action.reason is Reason.PASSWORD_INVALID
    assert action.message.startswith("spec.passwordSecretRef: key 'password' of Secret 'root-pw'")
    assert said in action.message


def test_a_new_secret_value_starts_a_rotation_like_spec_password() -> None:
    record = PasswordRecord(applied=digest("secret-one", KEY))
    status = serving(record)
    ref = parse_instance(mysql_object(password=None, passwordSecretRef=REF))
    declared = desired_for(ref, Stage.SERVING, status, "secret-one")
    status = replace(status, inputs_fingerprint=inputs_fingerprint(declared, KEY))
    obj = mysql_object(status=status, password=None, passwordSecretRef=REF)
    action = decide_lifecycle(
        observe(
            obj,
            passwords=Passwords(wanted="secret-two", applied="secret-one"),
            password_secret=password_secret(),
        )
    )
    assert isinstance(action, RecordPassword)
    assert action.record.rotation == Rotation(JOB_1, digest("secret-two", KEY))


def test_the_fingerprint_holds_the_declared_password_only_as_an_hmac() -> None:
    ref = parse_instance(mysql_object(password=None, passwordSecretRef=REF))
    status = InstanceStatus(password=AT_OLD)
    one = desired_for(ref, Stage.SERVING, status, "secret-one")
    two = desired_for(ref, Stage.SERVING, status, "secret-two")
    assert inputs_fingerprint(one, KEY) != inputs_fingerprint(two, KEY)
    assert "secret-one" not in json.dumps(fingerprint_payload(one, KEY))
    # spec.password's own change does not change what is declared until it is applied.
    before = desired_for(instance(password=OLD), Stage.SERVING, status, OLD)
    changed = desired_for(instance(password=NEW), Stage.SERVING, status, OLD)
    assert inputs_fingerprint(before, KEY) == inputs_fingerprint(changed, KEY)


# -- while the instance is deleted ----------------------------------------------------------


def deleting(status: InstanceStatus, live: Live | None = None, **more: Any) -> Any:
    obj = mysql_object(status=status, deleting=True, password=NEW)
    live = live if live is not None else serving_live()
    record = status.final_backup
    if record is not None:
        # The final backup's MySQLBackup says what the status does already.
        name = final_backup_name(NAME, STAMP)
        assert name is not None
        recorded = BackupObjectState(name, UID, BackupPhase.RUNNING.value, record.attempt)
        live = replace(live, backup_object=recorded)
    return decide_teardown(observe(obj, live=live, **more))


def test_a_delete_waits_for_a_running_rotation() -> None:
    action = deleting(serving(ROTATING), rotation_job())
    assert isinstance(action, Wait)
    assert action.reason is Reason.PASSWORD_ROTATING


def test_a_delete_drops_a_rotation_whose_job_never_came() -> None:
    action = deleting(serving(ROTATING))
    assert action == RecordPassword(replace(ROTATING, rotation=None), delete_secret=JOB_1)


def test_the_final_backup_uses_the_rotated_password() -> None:
    succeeded = replace(ROTATING, rotation=replace(ROTATION_1, phase=JobPhase.SUCCEEDED))
    status = replace(serving(succeeded), final_backup=JobRecord(attempt=1, job=BACKUP_JOB_1))
    action = deleting(status, passwords=Passwords(applied=OLD, rotated=NEW))
    assert isinstance(action, Deploy)
    assert action.desired.stage is Stage.FINAL_BACKUP
    assert action.desired.applied_password == NEW
