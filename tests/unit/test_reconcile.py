"""The top of the pure decision: which half decides (lifecycle or teardown), and what the
executor reads for a pass (`gather_plan`), so that a pass reads only what it needs."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.actions import AddFinalizer, Forget, PatchVolumes, RecordJob, RecordVolumes
from reconciler.observation import parse_object
from reconciler.reconcile import GatherPlan, decide, gather_plan, identity
from reconciler.status import InstanceStatus, JobPhase, JobRecord, VolumeRecord, Volumes
from tests.unit.builders import (
    BACKUP_CLAIM,
    DATA_CLAIM,
    NAME,
    NAMESPACE,
    UID,
    live_of,
    mysql_object,
    observe,
)

pytestmark = pytest.mark.unit

VOLUMES = Volumes(data=VolumeRecord(DATA_CLAIM), backup=VolumeRecord(BACKUP_CLAIM))
RESTORING = InstanceStatus(volumes=VOLUMES, restore=JobRecord(attempt=2, job="restore-2"))


def plan_of(obj: dict[str, Any]) -> GatherPlan:
    return gather_plan(obj, parse_object(obj))


def test_a_living_object_goes_through_the_lifecycle() -> None:
    assert decide(observe(mysql_object(finalizer=False))) == AddFinalizer()
    action = decide(observe(mysql_object(), live=live_of()))
    assert isinstance(action, RecordVolumes)


def test_a_deleted_object_goes_through_the_teardown() -> None:
    assert decide(observe(mysql_object(deleting=True, finalizer=False))) == Forget()
    status = InstanceStatus(volumes=VOLUMES, served=True)
    action = decide(observe(mysql_object(deleting=True, status=status)))
    assert isinstance(action, RecordJob), "a served instance is backed up first"


def test_a_terminating_namespace_is_a_teardown_even_before_the_object_is_deleted() -> None:
    action = decide(observe(mysql_object(), namespace_terminating=True))
    assert isinstance(action, PatchVolumes)
    assert action.notice is not None
    assert action.notice.reason == "VolumeRetained"


def test_a_new_object_looks_for_volumes_to_adopt() -> None:
    assert plan_of(mysql_object()) == GatherPlan(
        deleting=False, adoption_candidates=True, job=None, secret=None
    )


def test_once_the_volumes_are_planned_they_are_not_looked_for_again() -> None:
    plan = plan_of(mysql_object(status=InstanceStatus(volumes=VOLUMES)))
    assert not plan.adoption_candidates


def test_a_running_restore_attempt_reads_its_job() -> None:
    assert plan_of(mysql_object(status=RESTORING)).job == "restore-2"


@pytest.mark.parametrize("phase", [JobPhase.SUCCEEDED, JobPhase.FAILED, JobPhase.REFUSED])
def test_a_finished_attempt_reads_no_job(phase: JobPhase) -> None:
    status = InstanceStatus(restore=JobRecord(attempt=1, job="restore-1", phase=phase))
    assert plan_of(mysql_object(status=status)).job is None


def test_a_deleted_object_without_a_final_backup_reads_its_running_restores_job() -> None:
    plan = plan_of(mysql_object(deleting=True, status=RESTORING))
    assert plan.job == "restore-2"


def test_a_deleted_object_reads_the_final_backups_job_and_nothing_to_adopt() -> None:
    status = InstanceStatus(
        restore=JobRecord(attempt=2, job="restore-2"),
        final_backup=JobRecord(attempt=3, job="backup-3"),
    )
    plan = plan_of(mysql_object(deleting=True, status=status))
    assert plan == GatherPlan(
        deleting=True,
        adoption_candidates=False,
        job="backup-3",
        secret=None,
        # The MySQLBackup of the final backup, named after the deletionTimestamp.
        backup_object=f"{NAME}-20260101120000",
    )


def test_no_backup_record_is_read_before_the_final_backup_is_recorded() -> None:
    status = InstanceStatus(restore=JobRecord(attempt=1, job="restore-1"))
    assert plan_of(mysql_object(deleting=True, status=status)).backup_object is None
    living = InstanceStatus(final_backup=JobRecord(attempt=1, job="backup-1"))
    assert plan_of(mysql_object(status=living)).backup_object is None


def test_a_password_secret_ref_is_read_while_the_object_lives_and_while_it_goes() -> None:
    # The final backup needs the password the server has, which may be the Secret's.
    obj = mysql_object(password=None, passwordSecretRef={"name": "root-pw", "key": "pw"})
    assert plan_of(obj).secret == "root-pw"
    deleting = mysql_object(
        deleting=True, password=None, passwordSecretRef={"name": "root-pw", "key": "pw"}
    )
    assert plan_of(deleting).secret == "root-pw"


def test_an_invalid_spec_checks_no_secret() -> None:
    obj = mysql_object(password=None, passwordSecretRef={"name": "Bad Name"})
    assert plan_of(obj).secret is None


def test_identity() -> None:
    assert identity(mysql_object()) == (NAMESPACE, NAME, UID)
    assert identity({}) == ("", "", "")


def test_a_named_backup_is_read_only_until_the_restore_has_recorded_it() -> None:
    named = {"backup": "before-upgrade"}
    assert plan_of(mysql_object(restore_from=named)).restore_from == "before-upgrade"
    recorded = InstanceStatus(restore=JobRecord(attempt=1, job="restore-1"))
    assert plan_of(mysql_object(status=recorded, restore_from=named)).restore_from is None
    assert plan_of(mysql_object(deleting=True, restore_from=named)).restore_from is None
    assert plan_of(mysql_object()).restore_from is None
