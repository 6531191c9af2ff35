"""Dumps in S3 (spec.backup.s3), the pure parts: the spec, the Jobs that stage a dump and
move it, when the operator refuses to start them, and how a named backup in a bucket is
resolved into a restore."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

import pytest

from reconciler.actions import Deploy, JobKind, PatchBackupStatus, RecordJob, Stall, StartBackup
from reconciler.backup_objects import (
    BackupObjectState,
    SourceBackup,
    backup_status,
    newest_in_bucket,
    phase_of,
    source_backup,
)
from reconciler.conditions import Reason
from reconciler.desired import FinalUpload
from reconciler.fingerprint import fingerprint_payload, inputs_fingerprint
from reconciler.lifecycle import decide_lifecycle
from reconciler.live import SecretState, pod_state
from reconciler.manifests import backup_job, restore_job
from reconciler.observation import parse_object
from reconciler.policy import desired_for
from reconciler.reconcile import gather_plan
from reconciler.spec import S3Store, SpecError, parse_s3_store, parse_spec
from reconciler.status import InstanceStatus, JobPhase, JobRecord, RestoreSource, Volumes
from reconciler.teardown import decide_teardown
from reconciler.vocabulary import LABEL_S3_CREDENTIALS, Stage
from tests.unit.builders import (
    BACKUP_CLAIM,
    BACKUP_JOB_1,
    FINGERPRINT_KEY,
    NAME,
    NAMESPACE,
    NOW,
    RESTORE_JOB_1,
    RESTORED,
    UID,
    instance,
    mysql_object,
    observe,
    serving_live,
    synced_status,
)
from tests.unit.test_requested_backups import SERVING, VOLUMES, request, with_requests

pytestmark = pytest.mark.unit

S3_SPEC: Final = {
    "endpoint": "http://minio.local-s3.svc.cluster.local:9000",
    "bucket": "mysql-backups",
    "prefix": "team-a/prod",
    "credentials_secret_ref": {"name": "backup-store"},
}
BACKUP: Final = {"s3": S3_SPEC}
IMAGE: Final = "localhost/mysql-operator/reconciler:dev"
GOOD_SECRET: Final = SecretState(
    "backup-store",
    {LABEL_S3_CREDENTIALS: "true"},
    frozenset({"access_key_id", "secret_access_key"}),
)
SHA: Final = "d" * 64
STORE: Final = S3Store(
    endpoint="http://minio.local-s3.svc.cluster.local:9000",
    bucket="mysql-backups",
    credentials_secret="backup-store",
    prefix="team-a/prod",
)
URL: Final = f"s3://mysql-backups/team-a/prod/{NAMESPACE}/source/nightly.sql.gz"


def spec_with(s3: dict[str, Any]) -> dict[str, Any]:
    return {
        "image": "mysql:5.7",
        "database": "otus-database",
        "password": "otuspassword",
        "storage_size": "1Gi",
        "backup": {"s3": s3},
    }


# -- the spec ----------------------------------------------------------------------------------


def test_the_store_is_parsed_with_its_defaults_and_keys_dumps_by_namespace_and_instance() -> None:
    s3 = parse_spec(spec_with(S3_SPEC)).backup.s3
    assert s3 == STORE
    assert parse_s3_store(STORE.to_spec()) == STORE
    assert (
        s3.key_for("ns", "db", "db-20261201000000") == "team-a/prod/ns/db/db-20261201000000.sql.gz"
    )
    assert replace(s3, prefix="").key_for("ns", "db", "b") == "ns/db/b.sql.gz"
    # Without s3 nothing changes.
    assert parse_spec({**spec_with(S3_SPEC), "backup": {}}).backup.s3 is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"endpoint": "ftp://store"}, "spec.backup.s3.endpoint"),
        ({"endpoint": "http://store/path"}, "spec.backup.s3.endpoint"),
        ({"bucket": "Bad_Bucket"}, "spec.backup.s3.bucket"),
        ({"prefix": "/leading"}, "spec.backup.s3.prefix"),
        ({"prefix": "a//b"}, "spec.backup.s3.prefix"),
        ({"credentials_secret_ref": None}, "spec.backup.s3.credentials_secret_ref"),
        ({"ca_secret_ref": {"name": "ca"}}, "spec.backup.s3.ca_secret_ref"),
        ({"acl": "public"}, "spec.backup.s3.acl"),
    ],
)
def test_a_bad_store_names_its_field(change: dict[str, Any], field: str) -> None:
    s3 = {key: value for key, value in {**S3_SPEC, **change}.items() if value is not None}
    with pytest.raises(SpecError) as raised:
        parse_spec(spec_with(s3))
    assert raised.value.field_path == field


def test_a_ca_bundle_is_accepted_for_an_https_endpoint() -> None:
    s3 = parse_spec(
        spec_with(
            {**S3_SPEC, "endpoint": "https://s3.example:443", "ca_secret_ref": {"name": "ca"}}
        )
    ).backup.s3
    assert s3 is not None
    assert s3.ca_secret_ref is not None
    assert (s3.ca_secret_ref.name, s3.ca_secret_ref.key) == ("ca", "ca.crt")


# -- the backup Job ----------------------------------------------------------------------------


def start(**observed: Any) -> Any:
    status = synced_status(
        InstanceStatus(volumes=VOLUMES, restore=RESTORED, served=True), Stage.SERVING, backup=BACKUP
    )
    obj = mysql_object(status=status, backup=BACKUP)
    live = with_requests(serving_live(), request("nightly"))
    return decide_lifecycle(observe(obj, live=live, **observed))


def test_a_backup_to_s3_dumps_into_a_staging_directory_then_uploads_with_the_secret() -> None:
    action = start(transfer_image=IMAGE, s3_secret=GOOD_SECRET)
    assert isinstance(action, StartBackup)
    pod = action.job["spec"]["template"]["spec"]
    (dump,) = pod["initContainers"]
    (upload,) = pod["containers"]
    # The dump is taken as on a volume, by the instance's image, into an empty directory
    # that only this pod has: the backup claim is not mounted.
    assert dump["image"] == "mysql:5.7"
    assert dump["command"][-1].endswith("backup.sh")
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["backup"] == {"name": "backup", "emptyDir": {}}
    assert not any("persistentVolumeClaim" in volume for volume in pod["volumes"])
    # The upload runs the operator's image, with the Secret's keys by reference only.
    assert upload["image"] == IMAGE
    assert upload["command"] == ["python3", "-m", "reconciler.transfer", "upload"]
    env = {item["name"]: item for item in upload["env"]}
    assert env["S3_KEY"]["value"] == f"team-a/prod/{NAMESPACE}/{NAME}/nightly.sql.gz"
    assert env["S3_ROTATE_PREFIX"]["value"] == f"team-a/prod/{NAMESPACE}/{NAME}/"
    assert env["BACKUP_TRIGGER"]["value"] == "manual"
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "name": "AWS_SECRET_ACCESS_KEY",
        "valueFrom": {"secretKeyRef": {"name": "backup-store", "key": "secret_access_key"}},
    }
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["key"] == "access_key_id"
    # The instance's image never sees the store's credentials.
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & {e["name"] for e in dump["env"]}
    assert upload["securityContext"] == dump["securityContext"]


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        ({"s3_secret": GOOD_SECRET}, "runs without a transfer image (--transfer-image)"),
        ({"transfer_image": IMAGE}, "Secret 'backup-store' not found in namespace"),
        (
            {"transfer_image": IMAGE, "s3_secret": replace(GOOD_SECRET, labels={})},
            f"does not carry the label {LABEL_S3_CREDENTIALS}=true",
        ),
        (
            {"transfer_image": IMAGE, "s3_secret": replace(GOOD_SECRET, keys=frozenset())},
            "has no key access_key_id, secret_access_key",
        ),
    ],
)
def test_a_store_that_cannot_be_used_fails_the_backup_at_once_naming_the_field(
    observed: dict[str, Any], expected: str
) -> None:
    action = start(**observed)
    assert isinstance(action, PatchBackupStatus)
    assert action.status["phase"] == "Failed"
    condition = action.status["conditions"][0]
    assert condition["reason"] == Reason.BACKUP_STORE_UNUSABLE.value
    assert condition["message"].startswith("spec.backup.s3")
    assert expected in condition["message"]


def test_the_upload_result_records_the_object_and_the_staged_file_name() -> None:
    line = (
        f"dump=dump-0000000001.sql.gz sequence=1 size=1234 sha256={SHA} "
        f"server_version=5.7.44 location={URL}"
    )
    record = JobRecord(job="j", phase=JobPhase.SUCCEEDED, message=line)
    status = backup_status(request().trigger, NAME, "uid", "2026-12-01T00:00:00Z", record, NOW)
    assert status["location"] == URL
    assert status["dump"] == "dump-0000000001.sql.gz"
    assert (status["sizeBytes"], status["sha256"]) == (1234, SHA)


def test_a_job_reports_its_upload_after_a_successful_dump_and_its_dump_when_that_failed() -> None:
    def two_containers(first: tuple[int, str], second: tuple[int, str] | None) -> Any:
        def status(name: str, ended: tuple[int, str] | None) -> dict[str, Any]:
            state = (
                {"terminated": {"exitCode": ended[0], "message": ended[1]}}
                if ended
                else {"running": {}}
            )
            return {"name": name, "state": state}

        return pod_state(
            {
                "metadata": {"name": "p"},
                "status": {
                    "phase": "Failed",
                    "initContainerStatuses": [status("backup", first)],
                    "containerStatuses": [status("upload", second)],
                },
            }
        )

    uploaded = two_containers((0, "dump=dump-1"), (0, "dump=dump-1 location=s3://b/k"))
    assert (uploaded.terminated_exit_code, uploaded.terminated_message) == (
        0,
        "dump=dump-1 location=s3://b/k",
    )
    upload_failed = two_containers((0, "dump=dump-1"), (1, "PUT /b/k: 403 AccessDenied"))
    assert (upload_failed.terminated_exit_code, upload_failed.terminated_message) == (
        1,
        "PUT /b/k: 403 AccessDenied",
    )
    dump_failed = two_containers((1, "mysqldump failed"), None)
    assert dump_failed.terminated_exit_code == 1
    # Still running after the dump: the dump's result is what there is so far.
    assert two_containers((0, "dump=dump-1"), None).terminated_exit_code == 0


# -- restoring a named backup from S3 ----------------------------------------------------------


def s3_source(**changes: Any) -> SourceBackup:
    found = source_backup(
        {
            "metadata": {"name": "nightly"},
            "status": {
                "phase": "Succeeded",
                "location": URL,
                "sizeBytes": 1234,
                "sha256": SHA,
                "dump": "dump-0000000001.sql.gz",
            },
        }
    )
    return replace(found, **changes)


def new_instance(found: SourceBackup, backup: Any = BACKUP, **observed: Any) -> Any:
    obj = mysql_object(
        status=InstanceStatus(volumes=VOLUMES), restore_from={"backup": "nightly"}, backup=backup
    )
    return decide_lifecycle(
        observe(obj, live=replace(serving_live(), restore_from=found), **observed)
    )


def test_a_named_backup_in_the_bucket_is_resolved_with_its_checksum_and_downloader() -> None:
    action = new_instance(s3_source(), transfer_image=IMAGE, s3_secret=GOOD_SECRET)
    assert isinstance(action, RecordJob)
    assert action.kind is JobKind.RESTORE
    assert action.record.source == RestoreSource(
        "nightly",
        None,
        "dump-0000000001.sql.gz",
        url=URL,
        size=1234,
        sha256=SHA,
        transfer_image=IMAGE,
        store=STORE,
    )
    # The record survives the status round trip.
    assert RestoreSource.from_dict(action.record.source.to_dict()) == action.record.source


@pytest.mark.parametrize(
    ("found", "backup", "observed", "reason", "expected"),
    [
        (
            s3_source(),
            None,
            {"transfer_image": IMAGE, "s3_secret": GOOD_SECRET},
            Reason.RESTORE_SOURCE_MISSING,
            "is in S3 bucket mysql-backups: set spec.backup.s3",
        ),
        (
            s3_source(),
            {"s3": {**S3_SPEC, "bucket": "other-bucket"}},
            {"transfer_image": IMAGE, "s3_secret": GOOD_SECRET},
            Reason.RESTORE_SOURCE_MISSING,
            "is in S3 bucket mysql-backups",
        ),
        (
            s3_source(sha256=None),
            BACKUP,
            {"transfer_image": IMAGE, "s3_secret": GOOD_SECRET},
            Reason.RESTORE_SOURCE_MISSING,
            "it cannot be verified",
        ),
        (
            s3_source(),
            BACKUP,
            {"transfer_image": IMAGE},
            Reason.BACKUP_STORE_UNUSABLE,
            "Secret 'backup-store' not found",
        ),
    ],
)
def test_a_named_backup_in_s3_that_cannot_be_read_stops_the_instance(
    found: SourceBackup, backup: Any, observed: dict[str, Any], reason: Reason, expected: str
) -> None:
    action = new_instance(found, backup, **observed)
    assert isinstance(action, Stall)
    assert action.reason is reason
    assert expected in action.message


def test_the_restore_job_downloads_and_checks_the_dump_before_restore_sh_reads_it() -> None:
    named = RestoreSource("nightly", None, "dump-0000000001.sql.gz", URL, 1234, SHA, IMAGE, STORE)
    record = JobRecord(attempt=1, job=RESTORE_JOB_1, gates_readiness=True, source=named)
    # The store recorded with the source is used, whatever spec.backup.s3 says now.
    desired = desired_for(
        instance(), Stage.SERVING, InstanceStatus(volumes=VOLUMES, restore=record)
    )
    manifest = restore_job(desired)
    assert manifest is not None
    pod = manifest["spec"]["template"]["spec"]
    (download,) = pod["initContainers"]
    (restore,) = pod["containers"]
    assert download["image"] == IMAGE
    assert download["command"][-1] == "download"
    env = {item["name"]: item.get("value") for item in download["env"]}
    assert (env["S3_BUCKET"], env["S3_KEY"]) == (
        "mysql-backups",
        f"team-a/prod/{NAMESPACE}/source/nightly.sql.gz",
    )
    assert (env["EXPECTED_SIZE"], env["EXPECTED_SHA256"]) == ("1234", SHA)
    assert (env["RESTORE_SOURCE"], env["RESTORE_BACKUP"]) == ("dump-0000000001.sql.gz", "nightly")
    restore_env = {item["name"]: item.get("value") for item in restore["env"]}
    assert restore_env["RESTORE_SOURCE"] == "dump-0000000001.sql.gz"
    # The download decompresses the dump to its trailer; restore.sh does not again.
    assert restore_env["RESTORE_STREAM_CHECKED"] == "true"
    # Both read and write the pod's own staging directory, not a claim.
    assert {"name": "backup", "emptyDir": {}} in pod["volumes"]
    assert all(mount.get("readOnly") is not True for mount in restore["volumeMounts"][1:])


# The keys the fingerprint hashed before spec.backup.s3 existed: an instance that does not
# use S3 hashes exactly these, so an operator upgrade changes its fingerprint only where
# what it declares changed.
BACKUP_KEYS_BEFORE_S3: Final = {
    "storage_size",
    "storage_class",
    "host_path",
    "on_delete",
    "keep",
    "scope",
    "deadline_seconds",
    "idle_timeout_seconds",
    "schedule",
    "time_zone",
}


DESIRED_KEYS_BEFORE_FINAL_UPLOAD: Final = {
    "instance",
    "stage",
    "restore_attempt",
    "backup_attempt",
    "data_binding",
    "backup_binding",
    "readiness_gated",
    "restore_source",
}


def test_instances_without_s3_hash_what_they_hashed_before_it_existed() -> None:
    plain = fingerprint_payload(desired_for(instance(), Stage.SERVING, SERVING), FINGERPRINT_KEY)
    assert set(plain["desired"]["instance"]["spec"]["backup"]) == BACKUP_KEYS_BEFORE_S3
    assert plain["desired"]["restore_source"] is None
    assert set(plain["desired"]) == DESIRED_KEYS_BEFORE_FINAL_UPLOAD
    named = RestoreSource("before-upgrade", "old-db-backup", "dump-0000000007.sql.gz")
    record = JobRecord(attempt=1, job=RESTORE_JOB_1, gates_readiness=True, source=named)
    from_claim = fingerprint_payload(
        desired_for(instance(), Stage.SERVING, InstanceStatus(volumes=VOLUMES, restore=record)),
        FINGERPRINT_KEY,
    )
    assert from_claim["desired"]["restore_source"] == {
        "backup": "before-upgrade",
        "claim": "old-db-backup",
        "dump": "dump-0000000007.sql.gz",
    }
    # The store is an input once it is set.
    with_store = desired_for(instance(backup=BACKUP), Stage.SERVING, SERVING)
    payload = fingerprint_payload(with_store, FINGERPRINT_KEY)
    assert payload["desired"]["instance"]["spec"]["backup"]["s3"]["bucket"] == "mysql-backups"
    assert inputs_fingerprint(with_store, FINGERPRINT_KEY) != inputs_fingerprint(
        desired_for(instance(), Stage.SERVING, SERVING), FINGERPRINT_KEY
    )


def test_an_https_store_with_its_own_ca_gets_the_bundle_mounted_in_the_transfer_only() -> None:
    https = {**S3_SPEC, "endpoint": "https://s3.internal:9443", "ca_secret_ref": {"name": "ca"}}
    status = synced_status(
        InstanceStatus(volumes=VOLUMES, restore=RESTORED, served=True),
        Stage.SERVING,
        backup={"s3": https},
    )
    obj = mysql_object(status=status, backup={"s3": https})
    live = with_requests(serving_live(), request("nightly"))
    action = decide_lifecycle(observe(obj, live=live, transfer_image=IMAGE, s3_secret=GOOD_SECRET))
    assert isinstance(action, StartBackup)
    pod = action.job["spec"]["template"]["spec"]
    (upload,) = pod["containers"]
    env = {item["name"]: item.get("value") for item in upload["env"]}
    assert env["S3_ENDPOINT"] == "https://s3.internal:9443"
    assert env["S3_CA_FILE"] == "/etc/mysql-operator/s3-ca/ca.crt"
    assert {"name": "s3-ca", "mountPath": "/etc/mysql-operator/s3-ca", "readOnly": True} in (
        upload["volumeMounts"]
    )
    assert {
        "name": "s3-ca",
        "secret": {"secretName": "ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]},
    } in pod["volumes"]
    (dump,) = pod["initContainers"]
    assert all(mount["name"] != "s3-ca" for mount in dump["volumeMounts"])


# -- the final backup, before a delete -------------------------------------------------------


def deleting(s3_secret: SecretState | None = GOOD_SECRET, **observed: Any) -> Any:
    """A served instance with spec.backup.s3, deleted, its final backup's attempt 1 recorded
    and its MySQLBackup in step."""
    status = replace(SERVING, final_backup=JobRecord(attempt=1, job=BACKUP_JOB_1))
    obj = mysql_object(deleting=True, status=status, backup=BACKUP)
    record = status.final_backup
    assert record is not None
    in_step = BackupObjectState(f"{NAME}-20260101120000", UID, phase_of(record).value, 1)
    live = serving_live(backup_object=in_step)
    return decide_teardown(observe(obj, live=live, s3_secret=s3_secret, **observed))


def test_the_final_backup_keeps_its_dump_on_the_claim_and_copies_it_to_the_bucket() -> None:
    action = deleting(transfer_image=IMAGE)
    assert isinstance(action, Deploy)
    assert action.reason is Reason.BACKING_UP
    key = f"team-a/prod/{NAMESPACE}/{NAME}/{NAME}-20260101120000.sql.gz"
    assert action.desired.final_upload == FinalUpload(store=STORE, key=key, transfer_image=IMAGE)
    assert action.fingerprint == inputs_fingerprint(action.desired, FINGERPRINT_KEY)
    job = backup_job(action.desired)
    assert job is not None
    pod = job["spec"]["template"]["spec"]
    (dump,) = pod["initContainers"]
    (upload,) = pod["containers"]
    assert {"name": "BACKUP_FINAL", "value": "true"} in dump["env"]
    # The dump is written on the backup claim, which the upload only reads.
    claim = next(volume for volume in pod["volumes"] if volume["name"] == "backup")
    assert claim["persistentVolumeClaim"]["claimName"] == BACKUP_CLAIM
    assert all(mount.get("readOnly") for mount in upload["volumeMounts"])
    env = {item["name"]: item for item in upload["env"]}
    assert upload["image"] == IMAGE
    assert upload["command"][-1] == "upload"
    assert env["FINAL_OF_INSTANCE"]["value"] == UID
    assert env["S3_KEY"]["value"] == key
    assert env["BACKUP_TRIGGER"]["value"] == "delete"
    assert env["AWS_SECRET_ACCESS_KEY"] == {
        "name": "AWS_SECRET_ACCESS_KEY",
        "valueFrom": {"secretKeyRef": {"name": "backup-store", "key": "secret_access_key"}},
    }


def test_without_s3_the_final_backup_is_the_claim_only_as_before() -> None:
    status = replace(SERVING, final_backup=JobRecord(attempt=1, job=BACKUP_JOB_1))
    desired = desired_for(instance(), Stage.FINAL_BACKUP, status)
    job = backup_job(desired)
    assert job is not None
    assert "initContainers" not in job["spec"]["template"]["spec"]
    assert desired.final_upload is None


@pytest.mark.parametrize(
    ("observed", "field"),
    [
        ({"transfer_image": IMAGE, "s3_secret": None}, "Secret 'backup-store' not found"),
        ({"s3_secret": GOOD_SECRET}, "without a transfer image"),
        (
            {"transfer_image": IMAGE, "s3_secret": replace(GOOD_SECRET, keys=frozenset())},
            "has no key access_key_id, secret_access_key",
        ),
    ],
)
def test_a_store_the_final_backup_cannot_use_stops_the_delete_naming_the_field(
    observed: dict[str, Any], field: str
) -> None:
    action = deleting(**observed)
    assert isinstance(action, Stall)
    assert action.reason is Reason.BACKUP_STORE_UNUSABLE
    assert field in action.message
    assert "remove spec.backup.s3 to keep the final backup on the backup claim only" in (
        action.message
    )


def test_the_store_secret_is_read_while_deleting() -> None:
    obj = mysql_object(deleting=True, status=SERVING, backup=BACKUP)
    assert gather_plan(obj, parse_object(obj)).s3_secret == "backup-store"


# -- the same-name restore, from the bucket ----------------------------------------------------


def record(name: str, completed: str, **changes: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": "Succeeded",
        "completedAt": completed,
        "location": f"s3://mysql-backups/team-a/prod/{NAMESPACE}/{NAME}/{name}.sql.gz",
        "sizeBytes": 1234,
        "sha256": SHA,
        "dump": "dump-0000000003.sql.gz",
    }
    status.update(changes.pop("status", {}))
    return {"metadata": {"name": name}, "spec": {"instance": NAME, **changes}, "status": status}


def test_the_newest_verifiable_backup_of_the_name_in_the_bucket_is_found() -> None:
    items = [
        record("older", "2026-11-01T00:00:00Z"),
        record("newest", "2026-11-03T00:00:00Z"),
        record("failed", "2026-11-04T00:00:00Z", status={"phase": "Failed"}),
        record("elsewhere", "2026-11-05T00:00:00Z", status={"location": "s3://other/k.sql.gz"}),
        record("on-a-claim", "2026-11-05T00:00:00Z", status={"location": "pvc://c/dump-1"}),
        record("unverifiable", "2026-11-05T00:00:00Z", status={"sha256": None}),
        record("another-instance", "2026-11-06T00:00:00Z", instance="other"),
    ]
    found = newest_in_bucket(items, NAME, "mysql-backups")
    assert found is not None
    assert found.name == "newest"
    assert newest_in_bucket(items[2:], NAME, "mysql-backups") is None


def created_again(volumes: Volumes, newest: SourceBackup | None, **observed: Any) -> Any:
    obj = mysql_object(status=InstanceStatus(volumes=volumes), backup=BACKUP)
    live = replace(serving_live(), newest_backup=newest)
    return decide_lifecycle(observe(obj, live=live, **observed))


def test_with_both_claims_new_the_newest_backup_in_the_bucket_is_restored() -> None:
    newest = source_backup(record("mysql-instance-20261103000000", "2026-11-03T00:00:00Z"))
    action = created_again(VOLUMES, newest, transfer_image=IMAGE, s3_secret=GOOD_SECRET)
    assert isinstance(action, RecordJob)
    assert action.kind is JobKind.RESTORE
    source = action.record.source
    assert source is not None
    assert (source.backup, source.url, source.sha256) == (newest.name, newest.location, SHA)
    # The plan asks for the bucket's backups only while that choice is open.
    obj = mysql_object(status=InstanceStatus(volumes=VOLUMES), backup=BACKUP)
    assert gather_plan(obj, parse_object(obj)).newest_in_bucket == "mysql-backups"
    restoring = mysql_object(
        status=InstanceStatus(volumes=VOLUMES, restore=RESTORED), backup=BACKUP
    )
    assert gather_plan(restoring, parse_object(restoring)).newest_in_bucket is None


def test_a_claim_that_outlived_the_last_lifetime_is_restored_from_as_before() -> None:
    newest = source_backup(record("mysql-instance-20261103000000", "2026-11-03T00:00:00Z"))
    kept = replace(VOLUMES, backup=replace(VOLUMES.backup, preexisting=True))
    action = created_again(kept, newest, transfer_image=IMAGE, s3_secret=GOOD_SECRET)
    assert isinstance(action, RecordJob)
    assert action.record.source is None
    obj = mysql_object(status=InstanceStatus(volumes=kept), backup=BACKUP)
    assert gather_plan(obj, parse_object(obj)).newest_in_bucket is None


def test_a_backup_in_the_bucket_that_cannot_be_read_stops_the_new_instance() -> None:
    newest = source_backup(record("mysql-instance-20261103000000", "2026-11-03T00:00:00Z"))
    action = created_again(VOLUMES, newest, transfer_image=IMAGE)
    assert isinstance(action, Stall)
    assert action.reason is Reason.BACKUP_STORE_UNUSABLE
    assert "Secret 'backup-store' not found" in action.message
