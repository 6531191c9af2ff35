"""The root password: which one the stack declares, and rotating it on a running server
(pure).

MySQL reads MYSQL_ROOT_PASSWORD only when it initializes its data directory, so a new
password in the spec (spec.password, or the value of the Secret spec.passwordSecretRef
names) changes nothing on the server by itself. The operator keeps the password the
server has (the applied one) in its own Secret, `<name>-credentials`, which the server's
environment, the readiness probe and every Job read, and records it in status only as a
keyed digest. A new password is applied by a rotation Job: it connects with the applied
password, runs ALTER USER for every root account, verifies a new connection and rolls
back if that fails (scripts/rotate-password.sh). Only after it succeeded does the stack
declare the new password, and the server's pod restarts to take it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from reconciler.actions import Action, Notice, RecordPassword, Stall, StartRotation, Wait
from reconciler.conditions import Reason, timestamp
from reconciler.live import JobState
from reconciler.manifests import rotation_job, rotation_secret
from reconciler.names import names_for
from reconciler.observation import Passwords
from reconciler.spec import Instance
from reconciler.status import JobPhase, PasswordRecord, Rotation
from reconciler.vocabulary import ANNOTATION_RETRY

DIGEST_PREFIX: Final = "hmac-sha256:"
# A running rotation Job is watched; this is only the latest look.
ROTATION_POLL_S: Final = 10.0


def digest(password: str, key: bytes) -> str:
    """A keyed digest: status is readable by anyone who can read the object, and without
    the operator's passphrase this says nothing about the password. It names which key
    made it, so that a new passphrase is recognized rather than read as a new password."""
    mac = hmac.new(key, password.encode(), hashlib.sha256).hexdigest()
    return f"{DIGEST_PREFIX}{key_id(key)}:{mac}"


def key_id(key: bytes) -> str:
    return hmac.new(key, b"mysql-operator password digest key", hashlib.sha256).hexdigest()[:8]


def current(record: PasswordRecord | None, key: bytes) -> bool:
    """The record's digests were made with this key."""
    return record is not None and record.applied.startswith(f"{DIGEST_PREFIX}{key_id(key)}:")


def wanted_password(instance: Instance, passwords: Passwords) -> str | None:
    """What the spec asks for: spec.password, or the referenced Secret's value."""
    spec = instance.spec
    return spec.password if spec.password is not None else passwords.wanted


def field_name(instance: Instance) -> str:
    return "spec.password" if instance.spec.password is not None else "spec.passwordSecretRef"


def wanted_problem(instance: Instance, passwords: Passwords) -> str | None:
    """Why the referenced Secret's value cannot be a root password (a missing Secret or
    key is reported before this)."""
    ref = instance.spec.password_secret_ref
    if ref is None:
        return None
    where = f"spec.passwordSecretRef: key {ref.key!r} of Secret {ref.name!r}"
    if passwords.unreadable is not None:
        return f"{where} {passwords.unreadable}"
    wanted = passwords.wanted
    if wanted is None:
        return f"{where} cannot be read"
    if not wanted:
        return f"{where} is empty; MySQL needs a root password"
    if len(wanted) > 1024:
        return f"{where} holds {len(wanted)} characters; at most 1024 are allowed"
    if "\0" in wanted:
        return f"{where} holds a NUL character, which no environment variable can carry"
    return None


def needs_applied(record: PasswordRecord | None, wanted: str | None, key: bytes) -> bool:
    """Whether a pass must read the operator's Secret: while nothing is recorded (it is
    what the stack declared), and while the spec asks for another password than the
    server has."""
    if record is None or not current(record, key):
        return True
    return wanted is None or digest(wanted, key) != record.applied


def declared_password(
    instance: Instance, record: PasswordRecord | None, passwords: Passwords, key: bytes
) -> str | None:
    """The password the stack declares: the one the server has, or the rotated one once
    its Job succeeded. None: it cannot be known (the operator's Secret is gone and the
    spec asks for another password); the operator then stops rather than guess."""
    wanted = wanted_password(instance, passwords)
    if record is None or not current(record, key):
        return passwords.applied if passwords.applied is not None else wanted
    rotation = record.rotation
    candidates: tuple[str | None, ...] = (wanted, passwords.applied)
    if rotation is not None and rotation.phase is JobPhase.SUCCEEDED:
        candidates = (passwords.rotated, *candidates)
        target = rotation.target
    else:
        target = record.applied
    return next(
        (value for value in candidates if value is not None and digest(value, key) == target),
        None,
    )


def recorded_again(
    instance: Instance, record: PasswordRecord | None, passwords: Passwords, key: bytes
) -> RecordPassword | None:
    """The record of the password the server has, when there is none yet (a new
    instance, or one an operator without rotations made) or its digest was made with
    another passphrase: the operator's Secret holds that password once the stack made
    it; before that, the server has (or is about to initialize with) the spec's."""
    if current(record, key):
        return None
    known = declared_password(instance, record, passwords, key)
    assert known is not None, "an unreadable password is reported before this"
    applied = digest(known, key)
    if record is None:
        return RecordPassword(PasswordRecord(applied=applied))
    return RecordPassword(replace(record, applied=applied, rotation=None))


def unknown_password(instance: Instance) -> Stall:
    names = names_for(instance)
    return Stall(
        Reason.PASSWORD_UNKNOWN,
        f"{field_name(instance)} changed, and the password the server has cannot be read: "
        f"the operator's Secret {names.credentials_secret} is missing or does not match its "
        "record. Set the password back to the one the server has; the operator will not "
        "guess it",
    )


@dataclass(frozen=True)
class RotationContext:
    instance: Instance
    record: PasswordRecord
    passwords: Passwords
    key: bytes
    retry: str | None  # the retry annotation's value
    job: JobState | None  # the rotation's Job, while it runs
    now: datetime


def rotation_step(context: RotationContext, *, server_problem: Action | None) -> Action | None:
    """The next step of a password change on a serving instance; None when the server
    has what the spec asks for and nothing is under way."""
    record, rotation = context.record, context.record.rotation
    wanted = wanted_password(context.instance, context.passwords)
    assert wanted is not None, "an unreadable password is reported before this"
    want = digest(wanted, context.key)
    if rotation is not None and rotation.phase is JobPhase.RUNNING:
        return _follow(context, rotation, want)
    if rotation is not None and rotation.phase is JobPhase.SUCCEEDED:
        # Runs once the stack declares the new password (the pass is synced).
        return _finish(context, rotation)
    if want == record.applied:
        if rotation is not None:
            # A failed attempt the spec no longer asks for.
            return RecordPassword(replace(record, rotation=None))
        return None
    retry = context.retry
    if server_problem is not None:
        # A Job could not reach the server: the change waits for it.
        if isinstance(server_problem, Stall | Wait):
            return replace(
                server_problem,
                message=f"{server_problem.message}; {field_name(context.instance)} changed: "
                "the new password is applied once the server is ready",
            )
        return server_problem
    if rotation is not None and rotation.target == want and retry == rotation.retry_token:
        return Stall(Reason.PASSWORD_ROTATION_FAILED, _failed_message(context, rotation))
    attempt = record.attempts + 1
    started = Rotation(
        job=names_for(context.instance).password_job(attempt),
        target=want,
        retry_token=retry,
    )
    return RecordPassword(replace(record, attempts=attempt, rotation=started))


def settle_rotation(context: RotationContext) -> Action | None:
    """While the instance is deleted: a rotation whose Job runs is waited for and its end
    recorded (the final backup then uses the password the server has); one whose Job
    never came is dropped."""
    record, rotation = context.record, context.record.rotation
    if rotation is None or rotation.phase is not JobPhase.RUNNING:
        return None
    if context.job is None:
        return RecordPassword(replace(record, rotation=None), delete_secret=rotation.job)
    return _follow(context, rotation, rotation.target)


def dropped_rotation(record: PasswordRecord | None) -> RecordPassword | None:
    """The last step of a teardown: the Secret of a rotation that did not finish goes."""
    if record is None or record.rotation is None or record.rotation.phase is JobPhase.FAILED:
        return None
    return RecordPassword(replace(record, rotation=None), delete_secret=record.rotation.job)


def _follow(context: RotationContext, rotation: Rotation, want: str) -> Action:
    record, job = context.record, context.job
    field = field_name(context.instance)
    if job is None:
        if rotation.target != want:
            # Not started, and the spec asks for yet another password: start that one.
            attempt = record.attempts + 1
            again = replace(
                rotation, job=names_for(context.instance).password_job(attempt), target=want
            )
            return RecordPassword(replace(record, attempts=attempt, rotation=again))
        applied = context.passwords.applied
        wanted = wanted_password(context.instance, context.passwords)
        if applied is None or digest(applied, context.key) != record.applied:
            return unknown_password(context.instance)
        assert wanted is not None
        # Created again if it went: a rotation that already happened is recognized.
        return StartRotation(
            rotation_secret(context.instance, rotation.job, old=applied, new=wanted),
            rotation_job(context.instance, rotation.job),
        )
    if job.succeeded:
        done = replace(rotation, phase=JobPhase.SUCCEEDED, message=job.message)
        return RecordPassword(replace(record, rotation=done))
    if job.failed:
        failed = replace(rotation, phase=JobPhase.FAILED, message=job.message or "the Job failed")
        notice = Notice(
            Reason.PASSWORD_ROTATION_FAILED.value, _failed_message(context, failed), warning=True
        )
        return RecordPassword(
            replace(record, rotation=failed), delete_secret=rotation.job, notice=notice
        )
    return Wait(
        Reason.PASSWORD_ROTATING,
        f"{field} changed: Job {rotation.job} gives root the new password",
        ROTATION_POLL_S,
    )


def _finish(context: RotationContext, rotation: Rotation) -> RecordPassword:
    record = context.record
    count = record.rotations + 1
    done = PasswordRecord(
        applied=rotation.target,
        attempts=record.attempts,
        rotations=count,
        rotated_at=timestamp(context.now),
    )
    field = field_name(context.instance)
    notice = Notice(
        "PasswordRotated",
        f"{field}: every root account has the new password (Job {rotation.job}); the server "
        "restarts to use it",
    )
    return RecordPassword(done, delete_secret=rotation.job, notice=notice)


def _failed_message(context: RotationContext, rotation: Rotation) -> str:
    return (
        f"{field_name(context.instance)} changed, and Job {rotation.job} could not apply it: "
        f"{rotation.message}. The server keeps the password it had. Fix the cause and set "
        f"the annotation {ANNOTATION_RETRY} to a new value, or set the password back"
    )
