"""The data promise on the real node, one test per way it used to break: rows are counted
before and after, and every test ends with the rows back, or with the object loudly
Stalled and nothing deleted.

Instances use the original example's spec on the cluster's default StorageClass, whose
volumes are provisioned with reclaim policy Delete: exactly what would lose the data if
the operator did not keep it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import random
import re
import subprocess
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, Final

import pytest
from kubernetes import client

from tests.e2e.conftest import RealNode
from tests.e2e.sql_client import (
    count_rows,
    sql,
    start_job,
    wait_job,
    write_rows,
    writer_script,
)
from tests.harness import (
    CLAIM_FINALIZER,
    FINALIZER,
    SESSION,
    TEST_SESSION_LABEL,
    Harness,
    Recorder,
    condition,
    harness_in_new_namespace,
    has_condition,
)
from tests.support import eventually, read_or_none

pytestmark = pytest.mark.e2e

NAME: Final = "keeper"
DATABASE: Final = "otus-database"
SPEC: Final = {
    "image": "mysql:5.7",
    "database": DATABASE,
    "password": "otuspassword",
    "storage_size": "1Gi",
}
NAMESPACE_GONE_S: Final = 180.0


@pytest.fixture
def harness(real_node: RealNode, tmp_path: Path) -> Iterator[Harness]:
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    with harness_in_new_namespace(real_node.api(), real_node.kubeconfig, namespace, tmp_path) as h:
        h.start()
        yield h


def ready_with_rows(harness: Harness, count: int, name: str = NAME) -> dict[str, Any]:
    harness.create(name, dict(SPEC))
    obj = harness.wait_ready(name, generation=1)
    write_rows(harness, name, DATABASE, count)
    assert count_rows(harness, name, DATABASE) == count
    return obj


def ready_endpoints(harness: Harness, service: str) -> list[str]:
    """The addresses a Service routes clients to now."""
    slices = client.DiscoveryV1Api(harness.api_client).list_namespaced_endpoint_slice(
        harness.namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    return [
        address
        for endpoint_slice in slices.items
        for endpoint in endpoint_slice.endpoints or []
        if endpoint.conditions is not None and endpoint.conditions.ready
        for address in endpoint.addresses
    ]


def volume_of(harness: Harness, claim: str) -> client.V1PersistentVolume:
    bound = harness.core.read_namespaced_persistent_volume_claim(claim, harness.namespace)
    return harness.core.read_persistent_volume(str(bound.spec.volume_name))


def host_dir(volume: client.V1PersistentVolume) -> Path:
    source = volume.spec.host_path or volume.spec.local
    assert source is not None, f"volume {volume.metadata.name} is not a directory on this node"
    return Path(source.path)


def dump_location(status: dict[str, Any]) -> tuple[str, str]:
    """(claim, dump file) of a MySQLBackup's `pvc://<claim>/<file>` location."""
    claim, dump_name = status["location"].removeprefix("pvc://").split("/")
    return claim, dump_name


def reasons(harness: Harness, name: str = NAME) -> list[str]:
    return [str(event.reason) for event in harness.events(name)]


def recreate_namespace(harness: Harness) -> None:
    harness.core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(
                name=harness.namespace, labels={TEST_SESSION_LABEL: SESSION}
            )
        )
    )


# 1 -----------------------------------------------------------------------------------------


def test_deleting_the_namespace_keeps_the_rows_and_the_namespace_goes(harness: Harness) -> None:
    rows = random.randint(50, 500)
    obj = ready_with_rows(harness, rows)
    data_volume = volume_of(harness, f"{NAME}-data")
    backup_volume = volume_of(harness, f"{NAME}-backup")
    assert data_volume.metadata.annotations["otus.homework/original-reclaim-policy"] == "Delete"

    harness.core.delete_namespace(harness.namespace)
    eventually(
        lambda: read_or_none(lambda: harness.core.read_namespace(harness.namespace)),
        lambda found: found is None,
        timeout_s=NAMESPACE_GONE_S,
        what="the namespace deleted",
    )
    for volume in (data_volume, backup_volume):
        kept = harness.core.read_persistent_volume(str(volume.metadata.name))
        assert kept.spec.persistent_volume_reclaim_policy == "Retain"
        assert kept.status.phase == "Released"
        annotations = kept.metadata.annotations
        assert annotations["otus.homework/instance-uid"] == obj["metadata"]["uid"]
        assert annotations["otus.homework/retained-reason"] == (
            f"namespace {harness.namespace} was deleted"
        )
        assert kept.metadata.labels["otus.homework/instance-name"] == NAME
        assert kept.metadata.labels["otus.homework/instance-namespace"] == harness.namespace

    recreate_namespace(harness)
    harness.create(NAME, dict(SPEC))
    again = harness.wait_ready(NAME, generation=1)
    assert again["status"]["volumes"]["data"]["adoptedVolume"] == data_volume.metadata.name
    assert again["status"]["volumes"]["backup"]["adoptedVolume"] == backup_volume.metadata.name
    assert "kept existing data" in again["status"]["restore"]["message"]
    assert count_rows(harness, NAME, DATABASE) == rows
    assert "VolumesAdopted" in reasons(harness)


# 2 -----------------------------------------------------------------------------------------


def test_a_foreground_cascade_cannot_take_the_data_claim_before_the_backup(
    harness: Harness,
) -> None:
    rows = random.randint(50, 500)
    obj = ready_with_rows(harness, rows)
    lifetime = obj["metadata"]["uid"].replace("-", "")[:8]
    recorder = Recorder(harness.api_client, harness.namespace)
    recorder.start()

    harness.delete(NAME, propagation="Foreground")
    harness.wait_gone(NAME)
    recorder.stop.set()
    backup_done = recorder.first(
        lambda what: what == f"MODIFIED Job {NAME}-backup-{lifetime}-1 complete"
    )
    claim_touched = recorder.first(
        lambda what: (
            what.endswith(f"PersistentVolumeClaim {NAME}-data deleting")
            or what == f"DELETED PersistentVolumeClaim {NAME}-data"
        )
    )
    assert backup_done < claim_touched, recorder.seen

    harness.create(NAME, dict(SPEC))
    again = harness.wait_ready(NAME, generation=1)
    assert again["status"]["restore"]["message"].startswith("restored dump-")
    assert count_rows(harness, NAME, DATABASE) == rows


# 3 -----------------------------------------------------------------------------------------


def drop_stack_state(harness: Harness) -> list[Path]:
    found = [p for p in (harness.state_dir / ".pulumi").rglob(f"{harness.namespace}.{NAME}.json*")]
    assert found, "the stack has a checkpoint to lose"
    for path in found:
        path.unlink()
    return found


def test_lost_stack_state_is_rebuilt_and_never_skips_the_final_backup(harness: Harness) -> None:
    rows = random.randint(50, 500)
    obj = ready_with_rows(harness, rows)
    first_update = obj["status"]["lastUpdate"]["id"]
    deployment_uid = harness.apps.read_namespaced_deployment(NAME, harness.namespace).metadata.uid

    # A Ready object: the next resync notices the missing checkpoint and rebuilds the
    # stack from the live objects, without touching them.
    drop_stack_state(harness)
    rebuilt = harness.wait_for(
        NAME,
        lambda found: (
            has_condition("Ready", "True")(found)
            and found["status"]["lastUpdate"]["id"] != first_update
        ),
        "the stack rebuilt",
        timeout_s=120,
    )
    assert "StackStateLost" in reasons(harness)
    assert rebuilt["status"]["lastUpdate"]["resourceChanges"].get("create", 0) > 0
    assert (
        harness.apps.read_namespaced_deployment(NAME, harness.namespace).metadata.uid
        == deployment_uid
    )
    assert count_rows(harness, NAME, DATABASE) == rows

    # Lost again, and deleted at once: the missing state still counts as deployed.
    harness.stop()
    drop_stack_state(harness)
    harness.delete(NAME)
    harness.start()
    harness.wait_gone(NAME)
    assert "FinalBackupSucceeded" in reasons(harness)
    # Its MySQLBackup record outlives the object and describes the dump on the node.
    (record,) = harness.backups()
    status = record["status"]
    assert (status["phase"], status["trigger"]) == ("Succeeded", "delete")
    claim, dump_name = dump_location(status)
    assert claim == f"{NAME}-backup"
    dump = host_dir(volume_of(harness, claim)) / dump_name
    assert dump.stat().st_size == status["sizeBytes"] > 0
    assert hashlib.sha256(dump.read_bytes()).hexdigest() == status["sha256"]
    assert re.match(r"\d+\.\d+\.\d+", status["serverVersion"]), status  # SELECT VERSION()

    harness.create(NAME, dict(SPEC))
    harness.wait_ready(NAME, generation=1)
    assert count_rows(harness, NAME, DATABASE) == rows


# 4 -----------------------------------------------------------------------------------------


# Enough rows that applying their dump takes longer than a server takes to pass a plain
# readiness probe (seconds): a Service that routed before the restore's end would show it.
BULK_DOUBLINGS: Final = 19


def test_clients_reach_the_server_only_after_the_restore(harness: Harness) -> None:
    rows = random.randint(50, 500)
    ready_with_rows(harness, rows)
    doublings = "; ".join(["INSERT INTO bulk (pad) SELECT pad FROM bulk"] * BULK_DOUBLINGS)
    sql(
        harness,
        NAME,
        DATABASE,
        "CREATE TABLE bulk (id INT AUTO_INCREMENT PRIMARY KEY, pad CHAR(200)); "
        f"INSERT INTO bulk (pad) VALUES (REPEAT('x', 200)); {doublings};",
    )
    harness.delete(NAME)
    harness.wait_gone(NAME)

    recorder = Recorder(harness.api_client, harness.namespace)
    recorder.start()
    harness.create(NAME, dict(SPEC))
    again = harness.wait_ready(NAME, generation=1)
    recorder.stop.set()
    uid = again["metadata"]["uid"]
    # The client Service exists from the first `up`, but routes only to a ready server,
    # and the server is ready only once the restore has recorded its end.
    routed = recorder.first(lambda what: what.endswith(f"EndpointSlice {NAME} ready"))
    restored_at = sql(
        harness,
        NAME,
        DATABASE,
        "SELECT UNIX_TIMESTAMP(MIN(at)) FROM mysql_operator.lifecycle "
        f"WHERE uid = '{uid}' AND event = 'restored';",
    ).split()
    assert restored_at, "the restore recorded its end"
    assert recorder.received[routed] >= float(restored_at[0]), recorder.seen
    restore_job = again["status"]["restore"]["job"]
    assert any(what == f"MODIFIED Job {restore_job} complete" for _, what in recorder.seen)
    assert count_rows(harness, NAME, DATABASE) == rows
    assert count_rows(harness, NAME, DATABASE, "bulk") == 2**BULK_DOUBLINGS


def test_a_database_the_operator_did_not_restore_is_never_served(harness: Harness) -> None:
    # A data claim with someone else's tables on it (no provenance record): a plain
    # server writes them, then goes.
    other = "foreign"
    claim = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name=f"{other}-data"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}),
        ),
    )
    harness.core.create_namespaced_persistent_volume_claim(harness.namespace, claim)
    harness.core.create_namespaced_secret(
        harness.namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=f"{other}-credentials"),
            string_data={"password": SPEC["password"]},
        ),
    )
    writer = client.V1Pod(
        metadata=client.V1ObjectMeta(name="plain-mysql", labels={"app": "plain-mysql"}),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[
                client.V1Container(
                    name="mysql",
                    image="mysql:5.7",
                    image_pull_policy="Never",
                    env=[
                        client.V1EnvVar(name="MYSQL_ROOT_PASSWORD", value=SPEC["password"]),
                        client.V1EnvVar(name="MYSQL_DATABASE", value=DATABASE),
                    ],
                    volume_mounts=[
                        client.V1VolumeMount(
                            name="data", mount_path="/var/lib/mysql", sub_path="mysql"
                        )
                    ],
                )
            ],
            volumes=[
                client.V1Volume(
                    name="data",
                    persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
                        claim_name=f"{other}-data"
                    ),
                )
            ],
        ),
    )
    harness.core.create_namespaced_pod(harness.namespace, writer)
    pod_ip = eventually(
        lambda: harness.core.read_namespaced_pod("plain-mysql", harness.namespace).status,
        lambda status: (
            status.pod_ip is not None and any(c.ready for c in status.container_statuses or [])
        ),
        timeout_s=180,
        what="the plain server running",
    ).pod_ip
    script = (
        'for i in $(seq 60); do mysql -h "$MYSQL_HOST" -uroot -e "SELECT 1" && break; '
        "sleep 2; done; "
        f'mysql -h "$MYSQL_HOST" -uroot "{DATABASE}" '
        '-e "CREATE TABLE theirs (id INT); INSERT INTO theirs VALUES (1)"'
    )
    outcome = wait_job(harness, start_job(harness, other, script, host=pod_ip))
    assert outcome.succeeded, outcome.log
    harness.core.delete_namespaced_pod("plain-mysql", harness.namespace)
    eventually(
        lambda: read_or_none(
            lambda: harness.core.read_namespaced_pod("plain-mysql", harness.namespace)
        ),
        lambda found: found is None,
        timeout_s=120,
        what="the plain server gone",
    )

    harness.create(other, dict(SPEC))
    stalled = harness.wait_for(
        other,
        has_condition("Stalled", "True", "RestoreTargetNotEmpty"),
        "the restore refused",
        timeout_s=240,
    )
    message = (condition(stalled, "Stalled") or {})["message"]
    assert "target not empty" in message
    assert "1 tables" in message or "1 table" in message
    # The client Service exists (declared with the server), but routes nowhere: the
    # server is never ready without this lifetime's restore record.
    assert harness.core.read_namespaced_service(other, harness.namespace) is not None
    assert ready_endpoints(harness, other) == [], "no client may reach the foreign tables"
    assert not has_condition("Ready", "True")(stalled)


# 5 -----------------------------------------------------------------------------------------


def immutable(path: Path, on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=True)


def test_a_failed_final_backup_is_retried_as_a_new_job(harness: Harness) -> None:
    rows = random.randint(50, 500)
    obj = ready_with_rows(harness, rows)
    lifetime = obj["metadata"]["uid"].replace("-", "")[:8]
    backup_dir = host_dir(volume_of(harness, f"{NAME}-backup"))
    immutable(backup_dir, True)  # nothing can be written there: the dump fails
    try:
        harness.delete(NAME)
        failed = harness.wait_for(
            NAME, has_condition("BackupReady", "False", "BackupFailed"), "a failed attempt", 240
        )
        assert f"{NAME}-backup-{lifetime}-1" in (condition(failed, "BackupReady") or {})["message"]
        assert FINALIZER in failed["metadata"]["finalizers"]
        data_claim = harness.core.read_namespaced_persistent_volume_claim(
            f"{NAME}-data", harness.namespace
        )
        assert data_claim.metadata.deletion_timestamp is None
        assert CLAIM_FINALIZER in data_claim.metadata.finalizers
    finally:
        immutable(backup_dir, False)
    # A person fixed it and asks for a retry now.
    harness.patch(NAME, {"metadata": {"annotations": {"otus.homework/retry": "fixed"}}})
    harness.wait_gone(NAME)
    gone_reasons = reasons(harness)
    assert "FinalBackupFailed" in gone_reasons
    assert "FinalBackupSucceeded" in gone_reasons
    jobs = " ".join(str(event.message) for event in harness.events(NAME))
    assert re.search(rf"{NAME}-backup-{lifetime}-[2-9]", jobs), jobs

    harness.create(NAME, dict(SPEC))
    harness.wait_ready(NAME, generation=1)
    assert count_rows(harness, NAME, DATABASE) == rows


# 6 -----------------------------------------------------------------------------------------


def test_the_newest_dump_is_the_highest_sequence_whatever_its_date(harness: Harness) -> None:
    rows = random.randint(50, 500)
    ready_with_rows(harness, rows)
    harness.delete(NAME)
    harness.wait_gone(NAME)
    backup_dir = host_dir(volume_of(harness, f"{NAME}-backup"))
    dumps = sorted(backup_dir.rglob("dump-*.sql.gz"))
    assert [dump.name for dump in dumps] == ["dump-0000000001.sql.gz"], dumps
    # A dump dated far in the future by a skewed clock, in the previous naming.
    future = dumps[0].parent / "dump-29991231T235959Z-000.sql"
    future.write_text(
        "CREATE TABLE kept (id INT PRIMARY KEY, v VARCHAR(32));\n"
        "INSERT INTO kept VALUES (1,'from-the-future');\n-- Dump completed\n"
    )

    harness.create(NAME, dict(SPEC))
    again = harness.wait_ready(NAME, generation=1)
    assert "dump-0000000001.sql.gz" in again["status"]["restore"]["message"]
    assert count_rows(harness, NAME, DATABASE) == rows


# 7 -----------------------------------------------------------------------------------------


def test_the_claims_cannot_move_and_deletion_backs_up_before_releasing_them(
    harness: Harness,
) -> None:
    rows = random.randint(50, 500)
    obj = ready_with_rows(harness, rows)
    lifetime = obj["metadata"]["uid"].replace("-", "")[:8]
    for patch, field_name in (
        ({"spec": {"storage_class": "elsewhere"}}, "storage_class"),
        ({"spec": {"host_path": "/tmp/elsewhere"}}, "host_path"),  # noqa: S108 (never used)
        ({"spec": {"backup": {"storage_class": "elsewhere"}}}, "backup.storage_class"),
    ):
        with pytest.raises(client.ApiException) as rejected:
            harness.patch(NAME, patch)
        assert rejected.value.status == 422
        assert field_name in str(rejected.value.body)

    recorder = Recorder(harness.api_client, harness.namespace)
    recorder.start()
    harness.delete(NAME)
    harness.wait_gone(NAME)
    recorder.stop.set()
    backup_done = recorder.first(
        lambda what: what == f"MODIFIED Job {NAME}-backup-{lifetime}-1 complete"
    )
    claim_touched = recorder.first(
        lambda what: (
            f"PersistentVolumeClaim {NAME}-data" in what
            and (what.startswith("DELETED") or what.endswith("deleting"))
        )
    )
    assert backup_done < claim_touched

    harness.create(NAME, dict(SPEC))
    harness.wait_ready(NAME, generation=1)
    assert count_rows(harness, NAME, DATABASE) == rows


# 8 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"image": "localhost/no-such/image:1"}, "ImagePullFailed"),
        ({"storage_class": "no-such-class"}, "VolumePending"),
    ],
)
def test_an_instance_that_never_started_is_deleted_promptly_without_a_backup(
    harness: Harness, change: dict[str, str], reason: str
) -> None:
    harness.create(NAME, {**SPEC, **change})
    waiting = harness.wait_for(
        NAME, has_condition("Ready", "False", reason), f"Ready=False {reason}", 60
    )
    message = (condition(waiting, "Ready") or {})["message"]
    if reason == "ImagePullFailed":
        assert "spec.image" in message
        assert change["image"] in message
    else:
        assert f"claim {NAME}-data" in message

    harness.delete(NAME)
    harness.wait_gone(NAME, timeout_s=90)
    assert "BackupSkipped" in reasons(harness)
    assert not any(reason.startswith("FinalBackup") for reason in reasons(harness))
    assert (
        harness.batch.list_namespaced_job(
            harness.namespace, label_selector="app.kubernetes.io/component=backup"
        ).items
        == []
    )


# 9 -----------------------------------------------------------------------------------------


def test_the_final_dump_holds_every_acknowledged_write(harness: Harness) -> None:
    harness.create(NAME, dict(SPEC))
    harness.wait_ready(NAME, generation=1)
    writer = start_job(harness, NAME, writer_script(DATABASE), deadline_s=600)
    (pod,) = eventually(
        lambda: (
            harness.core.list_namespaced_pod(
                harness.namespace, label_selector=f"job-name={writer}"
            ).items
        ),
        lambda pods: bool(pods) and pods[0].status.phase in ("Running", "Succeeded", "Failed"),
        timeout_s=120,
        what="the writer started",
    )
    if pod.status.phase != "Running":
        log = harness.core.read_namespaced_pod_log(str(pod.metadata.name), harness.namespace)
        raise AssertionError(f"the writer ended at once ({pod.status.phase}): {log}")
    # Let it write a while, then delete the instance under it.
    eventually(
        partial(_acked_so_far, harness, writer),
        lambda acked: acked >= 20,
        timeout_s=120,
        what="the writer acknowledged 20 rows",
    )
    harness.delete(NAME)
    harness.wait_gone(NAME)
    outcome = wait_job(harness, writer, timeout_s=300)
    acked = [int(n) for n in re.findall(r"^acked (\d+)$", outcome.log, re.MULTILINE)]
    assert acked, outcome.log
    last = max(acked)

    harness.create(NAME, dict(SPEC))
    harness.wait_ready(NAME, generation=1)
    present = int(
        sql(harness, NAME, DATABASE, f"SELECT COUNT(*) FROM acked WHERE id <= {last};").split()[0]
    )
    assert present == last, f"acknowledged 1..{last}, found {present}"


def _acked_so_far(harness: Harness, job: str) -> int:
    pods = harness.core.list_namespaced_pod(
        harness.namespace, label_selector=f"job-name={job}"
    ).items
    if not pods:
        return 0
    with contextlib.suppress(client.ApiException):
        log = harness.core.read_namespaced_pod_log(str(pods[0].metadata.name), harness.namespace)
        return len(re.findall(r"^acked \d+$", log, re.MULTILINE))
    return 0


# 9 -----------------------------------------------------------------------------------------


def test_a_backup_asked_for_holds_the_rows_and_outlives_the_next_ones(harness: Harness) -> None:
    rows = random.randint(20, 200)
    ready_with_rows(harness, rows)

    # A backup now, while clients stay connected: its dump holds exactly these rows.
    status = harness.backup_now("before-more", NAME)
    assert has_condition("Ready", "True")(harness.get(NAME))
    claim, dump_name = dump_location(status)
    backup_dir = host_dir(volume_of(harness, claim))
    dump = backup_dir / dump_name
    content = dump.read_bytes()
    assert (len(content), hashlib.sha256(content).hexdigest()) == (
        status["sizeBytes"],
        status["sha256"],
    )
    assert gzip.decompress(content).count(b"'row-") == rows
    meta = (backup_dir / dump_name.replace(".sql.gz", ".meta")).read_text()
    assert "trigger=manual" in meta

    # More rows, then the delete: its final backup is the newest, and the re-created
    # instance gets every row back; the requested dump is still there beside it.
    more = ",".join(f"({n},'row-{n}')" for n in range(rows + 1, rows + 11))
    sql(harness, NAME, DATABASE, f"INSERT INTO kept VALUES {more};")
    harness.delete(NAME)
    harness.wait_gone(NAME)
    triggers = sorted(
        (found["status"]["trigger"], found["status"]["phase"]) for found in harness.backups()
    )
    assert triggers == [("delete", "Succeeded"), ("manual", "Succeeded")]
    harness.create(NAME, dict(SPEC))
    harness.wait_ready(NAME, generation=1)
    assert count_rows(harness, NAME, DATABASE) == rows + 10
    assert dump.read_bytes() == content


def test_a_new_instance_restores_a_named_backup_of_another(harness: Harness) -> None:
    rows = random.randint(20, 200)
    ready_with_rows(harness, rows)
    snapshot = harness.backup_now("snapshot", NAME)
    # Rows written after the snapshot are not in it.
    sql(harness, NAME, DATABASE, "INSERT INTO kept VALUES (100000, 'after');")

    copy = "copy"
    harness.create(copy, {**SPEC, "restore_from": {"backup": "snapshot"}})
    restored = harness.wait_ready(copy, generation=1)
    assert count_rows(harness, copy, DATABASE) == rows
    source = restored["status"]["restore"]["source"]
    claim, dump_name = dump_location(snapshot)
    assert source == {"backup": "snapshot", "claim": claim, "dump": dump_name}
    # The original is untouched, with its later row.
    assert count_rows(harness, NAME, DATABASE) == rows + 1

    # A name that does not exist stops a new instance before any server starts.
    harness.create("nothing", {**SPEC, "restore_from": {"backup": "no-such-backup"}})
    stalled = harness.wait_for(
        "nothing", has_condition("Stalled", "True"), "the missing backup reported", 60
    )
    message = (condition(stalled, "Stalled") or {})["message"]
    assert message.startswith("spec.restore_from.backup: MySQLBackup 'no-such-backup'")
    assert (
        read_or_none(lambda: harness.apps.read_namespaced_deployment("nothing", harness.namespace))
        is None
    )


def test_a_schedule_of_every_minute_keeps_two_scheduled_dumps(harness: Harness) -> None:
    spec = {**SPEC, "backup": {"schedule": "* * * * *", "keep": 2}}
    harness.create(NAME, spec)
    harness.wait_ready(NAME, generation=1)
    write_rows(harness, NAME, DATABASE, 30)

    def scheduled(phase: str) -> list[dict[str, Any]]:
        return [
            found
            for found in harness.backups()
            if found["metadata"]["labels"].get("otus.homework/backup-trigger") == "schedule"
            and (found.get("status") or {}).get("phase") == phase
        ]

    # Three fires: with keep 2, retention has had to remove the first by then.
    eventually(
        lambda: [event.reason for event in harness.events(NAME)].count("BackupScheduled"),
        lambda fired: fired >= 3,
        timeout_s=270,
        interval_s=5,
        what="three scheduled fires",
    )
    backup_dir = host_dir(volume_of(harness, f"{NAME}-backup"))

    def records_and_dumps() -> tuple[list[str], list[str], int]:
        """The dumps the Succeeded scheduled records name, the scheduled dumps on the
        node, and how many scheduled backups run right now."""
        named = sorted(
            found["status"]["location"].rsplit("/", 1)[1] for found in scheduled("Succeeded")
        )
        on_disk = sorted(
            meta.name.replace(".meta", ".sql.gz")
            for meta in backup_dir.glob("dump-*.meta")
            if "trigger=schedule" in meta.read_text()
        )
        return named, on_disk, len(scheduled("Running"))

    # Between two fires (a backup takes seconds of each minute): exactly the newest two
    # scheduled dumps are on the node, and exactly their records are left.
    named, on_disk, _running = eventually(
        records_and_dumps,
        lambda seen: len(seen[0]) == 2 and seen[0] == seen[1] and seen[2] == 0,
        timeout_s=120,
        what="two scheduled records and the same two dumps",
    )
    assert named == on_disk
    assert has_condition("Ready", "True")(harness.get(NAME))
