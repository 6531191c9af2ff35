"""`python -m reconciler run` as a process, against the local cluster, with the real engine.

The story of the original example, in order: objects exist before the reconciler starts;
the valid one is restored before any client Service exists, then served and Ready, its
volume made `Retain` and labelled; the invalid one is Stalled within seconds with no
engine run; an unchanged object costs no engine run across resyncs; `reconciler preview`
tells a changed manifest from an unchanged one; an image change rolls the Deployment;
and deletion cuts clients off and runs the final backup Job before anything is deleted,
then keeps only the backup claim and its volume.

Storage uses static hostPath volumes (in tmp_path) because the kwok cluster has no
provisioner. The reconciler watches only the test's namespace.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from kubernetes import client

from tests.harness import (
    FINALIZER,
    GROUP,
    PLURAL,
    REPO_ROOT,
    VERSION,
    Harness,
    Recorder,
    condition,
    has_condition,
)
from tests.support import eventually, read_or_none

pytestmark = pytest.mark.integration

NAME: Final = "mysql-instance"
BROKEN: Final = "broken-instance"


def deploys_of(harness: Harness, name: str) -> list[str]:
    marker = f"instance={harness.namespace}/{name} "
    return [line for line in harness.log_lines() if marker in line and "engine_runs=" in line]


def test_the_reconciler_drives_the_original_example_from_creation_to_deletion(
    harness: Harness, tmp_path: Path
) -> None:
    ns = harness.namespace
    # 1. Objects exist before the reconciler starts: the original example, and one that
    # passes admission but refers to a Secret that does not exist.
    harness.create(NAME, harness.host_path_spec())
    broken_spec = {k: v for k, v in harness.host_path_spec().items() if k != "password"}
    broken_spec["passwordSecretRef"] = {"name": "no-such-secret"}
    broken_spec["host_path"] = str(tmp_path / "host" / "broken")
    harness.create(BROKEN, broken_spec)
    recorder = Recorder(harness.api_client, ns)
    recorder.start()
    harness.start()

    # 2. The valid object becomes Ready, with the status the issue asks for.
    obj = harness.wait_ready(NAME, generation=1)
    status = obj["status"]
    uid = obj["metadata"]["uid"]
    lifetime = uid.replace("-", "")[:8]
    assert FINALIZER in obj["metadata"]["finalizers"]
    assert status["endpoint"] == {"host": f"{NAME}.{ns}.svc.cluster.local", "port": 3306}
    assert status["lastUpdate"]["result"] == "succeeded"
    assert status["lastUpdate"]["stage"] == "serving"
    assert status["inputsFingerprint"].startswith("sha256:")
    assert set(status["toolchain"]) == {"pulumiCli", "pulumiSdk", "kubernetesProvider"}
    assert status["served"] is True
    assert status["restore"]["phase"] == "Succeeded"
    assert status["restore"]["job"] == f"{NAME}-restore-{lifetime}-1"
    assert {c["type"] for c in status["conditions"]} == {"Ready", "Restored", "DriftDetected"}
    # The objects as they are match what is declared: no false drift from API defaults.
    drift = condition(obj, "DriftDetected") or {}
    assert (drift["status"], drift["reason"]) == ("False", "NoDrift"), drift
    ready = condition(obj, "Ready")
    assert ready is not None
    assert (ready["reason"], ready["observedGeneration"]) == ("UpToDate", 1)
    assert harness.apps.read_namespaced_deployment(NAME, ns).status.ready_replicas == 1
    assert harness.core.read_namespaced_service(NAME, ns).spec.selector == {
        "app": NAME,
        "app.kubernetes.io/component": "database",
    }
    # One `up` declared the client Service with the restore Job: the server's readiness
    # waits for this lifetime's restore (kwok does not run probes; the real node's tests
    # show the Service routing only after the restore).
    probe = harness.apps.read_namespaced_deployment(NAME, ns).spec.template.spec.containers[0]
    assert f"uid = '{uid}'" in probe.readiness_probe._exec.command[2]
    internal = harness.core.read_namespaced_service(f"{NAME}-internal", ns)
    assert internal.spec.publish_not_ready_addresses is True
    recorder.first(lambda what: what == f"MODIFIED Job {NAME}-restore-{lifetime}-1 complete")
    # The claims carry the operator's finalizer, and no object has an owner reference.
    data_claim = harness.core.read_namespaced_persistent_volume_claim(f"{NAME}-data", ns)
    assert "otus.homework/data-protection" in data_claim.metadata.finalizers
    for listed in (
        harness.apps.list_namespaced_deployment(ns).items,
        harness.core.list_namespaced_service(ns).items,
        harness.core.list_namespaced_persistent_volume_claim(ns).items,
    ):
        assert all(item.metadata.owner_references is None for item in listed)
    # The data volume says whose data it holds.
    volume = harness.core.read_persistent_volume(str(data_claim.spec.volume_name))
    assert volume.spec.persistent_volume_reclaim_policy == "Retain"
    assert volume.metadata.labels["otus.homework/instance-namespace"] == ns
    assert volume.metadata.labels["otus.homework/instance-name"] == NAME
    assert volume.metadata.labels["otus.homework/volume-role"] == "data"
    assert volume.metadata.annotations["otus.homework/instance-uid"] == uid

    # 3. The broken one is Stalled with a message naming the field and the Secret, and
    # nothing was deployed for it.
    broken = harness.wait_for(
        BROKEN, has_condition("Stalled", "True", "SecretMissing"), f"{BROKEN} Stalled", 60
    )
    stall = condition(broken, "Stalled")
    assert stall is not None
    assert "spec.passwordSecretRef" in stall["message"]
    assert "no-such-secret" in stall["message"]
    assert has_condition("Ready", "False", "SecretMissing")(broken)
    assert read_or_none(lambda: harness.apps.read_namespaced_deployment(BROKEN, ns)) is None
    assert deploys_of(harness, BROKEN) == []

    # 4. Unchanged: resyncs reconcile it again, but without an engine run.
    first_update = status["lastUpdate"]["id"]
    seen = harness.in_sync_passes(NAME)
    eventually(
        lambda: harness.in_sync_passes(NAME),
        lambda count: count >= seen + 2,
        timeout_s=60,
        what="two more passes without an engine run (resyncs)",
    )
    unchanged = harness.get(NAME)
    assert unchanged is not None
    assert unchanged["status"]["lastUpdate"]["id"] == first_update
    runs = deploys_of(harness, NAME)
    assert sum(int(line.split("engine_runs=")[1].split()[0]) for line in runs) == 1, runs

    # 5. preview: exit 0 for the unchanged manifest, 2 for a changed one; nothing applied.
    same = tmp_path / "same.yml"
    same.write_text(yaml.safe_dump(harness.manifest(NAME, harness.host_path_spec())))
    unchanged_preview = harness.preview(same)
    assert unchanged_preview.returncode == 0, unchanged_preview.stderr
    assert json.loads(unchanged_preview.stdout)["hasChanges"] is False
    changed = tmp_path / "changed.yml"
    changed.write_text(
        yaml.safe_dump(harness.manifest(NAME, {**harness.host_path_spec(), "image": "mysql:8.0"}))
    )
    changed_preview = harness.preview(changed)
    assert changed_preview.returncode == 2, changed_preview.stderr
    plan = json.loads(changed_preview.stdout)
    assert plan["steps"] == [
        {"op": "update", "type": "kubernetes:apps/v1:Deployment", "name": NAME}
    ]
    deployment = harness.apps.read_namespaced_deployment(NAME, ns)
    assert [c.image for c in deployment.spec.template.spec.containers] == ["mysql:5.7"]
    # An object with no stack yet is planned against a throwaway backend.
    fresh = tmp_path / "fresh.yml"
    fresh.write_text(yaml.safe_dump(harness.manifest("not-yet", harness.host_path_spec())))
    fresh_preview = harness.preview(fresh)
    assert fresh_preview.returncode == 2, fresh_preview.stderr
    fresh_plan = json.loads(fresh_preview.stdout)
    assert fresh_plan["stackExists"] is False
    assert {"op": "create", "type": "kubernetes:apps/v1:Deployment", "name": "not-yet"} in (
        fresh_plan["steps"]
    )
    assert harness.get("not-yet") is None
    assert json.loads(harness.preview(same).stdout)["hasChanges"] is False  # backend unmoved
    # A MySQLBackup beside the MySQL objects (as in examples/) changes no stack.
    backup_preview = harness.preview(harness.source / "examples" / "mysqlbackup.yaml")
    assert backup_preview.returncode == 0, backup_preview.stderr
    assert "is a MySQLBackup: it changes no stack" in backup_preview.stderr

    # 6. An image change rolls the Deployment, and status follows the generation.
    harness.patch(NAME, {"spec": {"image": "mysql:8.0"}})
    rolled = harness.wait_ready(NAME, generation=2)
    assert rolled["status"]["lastUpdate"]["id"] != first_update
    assert rolled["status"]["lastUpdate"]["resourceChanges"].get("update") == 1
    deployment = harness.apps.read_namespaced_deployment(NAME, ns)
    assert [c.image for c in deployment.spec.template.spec.containers] == ["mysql:8.0"]

    # 7. /healthz and /metrics.
    assert harness.http_get("/healthz") == (200, "ok\n")
    code, metrics = harness.http_get("/metrics")
    assert code == 200
    assert 'mysql_operator_reconciles_total{action="deploy",outcome="done"}' in metrics
    assert 'mysql_operator_instances{ready="False",reason="SecretMissing"} 1.0' in metrics
    assert "mysql_operator_queue_depth " in metrics

    # 8. Deleting the broken object: nothing was deployed, so nothing to back up; it goes.
    harness.delete(BROKEN)
    harness.wait_gone(BROKEN)

    # 9. Deleting the instance: clients are cut off and the final backup Job completes
    # before anything is deleted; then everything but the backup claim is gone.
    backup_job = f"{NAME}-backup-{lifetime}-1"
    harness.delete(NAME)
    harness.wait_gone(NAME)
    eventually(
        lambda: list(recorder.seen),
        lambda seen: any(what.startswith("DELETED Deployment") for _, what in seen),
        timeout_s=30,
        what="the Deployment's deletion observed",
    )
    recorder.stop.set()
    backup_done = recorder.first(lambda what: what == f"MODIFIED Job {backup_job} complete")
    first_deletion = recorder.first(
        lambda what: (
            (what.startswith("DELETED") or what.endswith(" deleting")) and "restore" not in what
        )
    )
    assert backup_done < first_deletion, recorder.seen

    gone: dict[str, Callable[[], Any]] = {
        "deployment": lambda: harness.apps.read_namespaced_deployment(NAME, ns),
        "service": lambda: harness.core.read_namespaced_service(NAME, ns),
        "internal service": lambda: harness.core.read_namespaced_service(f"{NAME}-internal", ns),
        "secret": lambda: harness.core.read_namespaced_secret(f"{NAME}-credentials", ns),
        "scripts": lambda: harness.core.read_namespaced_config_map(f"{NAME}-scripts", ns),
        "data claim": lambda: harness.core.read_namespaced_persistent_volume_claim(
            f"{NAME}-data", ns
        ),
        "data volume": lambda: harness.core.read_persistent_volume(f"{ns}-{NAME}-data"),
        "backup job": lambda: harness.batch.read_namespaced_job(backup_job, ns),
    }
    for what, read in gone.items():
        eventually(
            partial(read_or_none, read),
            lambda found: found is None,
            timeout_s=60,
            what=f"{what} deleted",
        )
    kept = harness.core.read_namespaced_persistent_volume_claim(f"{NAME}-backup", ns)
    assert kept.metadata.deletion_timestamp is None
    backup_volume = harness.core.read_persistent_volume(str(kept.spec.volume_name))
    assert backup_volume.spec.persistent_volume_reclaim_policy == "Retain"
    assert backup_volume.metadata.labels["otus.homework/volume-role"] == "backup"
    reasons = [event.reason for event in harness.events(NAME)]
    assert reasons.index("FinalBackupSucceeded") < reasons.index("Destroyed")
    assert reasons[-1] == "Deleted"
    # The MySQLBackup record of that backup outlives the MySQL object.
    (record,) = harness.backups()
    assert re.fullmatch(rf"{NAME}-\d{{14}}", record["metadata"]["name"]), record["metadata"]
    assert "ownerReferences" not in record["metadata"]
    assert record["spec"] == {"instance": NAME}
    status = record["status"]
    assert (status["phase"], status["trigger"], status["job"]) == (
        "Succeeded",
        "delete",
        backup_job,
    )
    assert status["instanceUID"] == obj["metadata"]["uid"]
    # The emptied stack stays, and its history tells the instance's life without the
    # MySQL object: newest first, each run with its kind, generation, uid and cause.
    stacks = harness.state_dir / ".pulumi" / "stacks"
    assert [p.name for p in stacks.rglob("*.json")] == [f"{ns}.{NAME}.json"]
    shown = harness.history(NAME)
    assert shown.returncode == 0, shown.stderr
    history = json.loads(shown.stdout)
    assert history["stack"] == f"{ns}.{NAME}"
    updates = history["updates"]
    # The API server counts the deletion as a new generation of a custom object.
    assert [(u["kind"], u["generation"], u["result"]) for u in updates] == [
        ("destroy", 3, "succeeded"),
        ("teardown", 3, "succeeded"),
        ("update", 2, "succeeded"),
        ("update", 1, "succeeded"),
    ], updates
    assert {u["uid"] for u in updates} == {uid}
    assert "otuspassword" not in shown.stdout
    destroyed, teardown, rolled_out, created = updates
    assert destroyed["resourceChanges"].get("delete", 0) > 0
    assert teardown["cause"].startswith("BackingUp: clients cut off; final backup Job")
    assert rolled_out["resourceChanges"].get("update") == 1
    assert rolled_out["cause"] == "Processing: running the stack update for generation 2"
    assert created["resourceChanges"].get("create", 0) > 0
    assert created["startTime"] < rolled_out["startTime"] < destroyed["startTime"]
    never = harness.history(BROKEN)
    assert never.returncode == 1
    assert f"no stack {ns}.{BROKEN}" in never.stderr


def backup_phase(phase: str) -> Callable[[Any], bool]:
    return lambda found: found is not None and (found.get("status") or {}).get("phase") == phase


def test_a_backup_asked_for_with_a_mysqlbackup_runs_once_the_instance_is_ready(
    harness: Harness,
) -> None:
    # Asked for before the instance exists: it says so, naming the field, and waits.
    harness.request_backup("early", NAME)
    harness.start()
    early = harness.wait_for_backup("early", backup_phase("Pending"), "early request Pending")
    condition = early["status"]["conditions"][0]
    assert condition["reason"] == "InstanceNotFound"
    assert condition["message"].startswith("spec.instance:")

    harness.create(NAME, harness.host_path_spec())
    obj = harness.wait_ready(NAME, generation=1)
    done = harness.wait_for_backup("early", backup_phase("Succeeded"), "early request done")
    status = done["status"]
    assert (status["trigger"], status["instanceUID"]) == ("manual", obj["metadata"]["uid"])
    job = harness.batch.read_namespaced_job(status["job"], harness.namespace)
    assert job.spec.ttl_seconds_after_finished > 0
    env = {e.name: e for e in job.spec.template.spec.containers[0].env}
    assert env["BACKUP_TRIGGER"].value == "manual"
    assert env["MYSQL_PWD"].value is None  # a reference to the Secret

    # Asked for while it serves: it runs, the instance stays Ready, and no engine ran.
    engine_lines = len(deploys_of(harness, NAME))
    harness.request_backup("later", NAME)
    harness.wait_for_backup("later", backup_phase("Succeeded"), "later request done")
    assert has_condition("Ready", "True")(harness.get(NAME))
    assert len(deploys_of(harness, NAME)) == engine_lines
    assert "BackupStarted" in [event.reason for event in harness.events(NAME)]


def test_a_schedule_makes_backups_that_run_like_requested_ones(harness: Harness) -> None:
    spec = harness.host_path_spec()
    spec["backup"] = {**spec["backup"], "schedule": "* * * * *", "keep": 1}
    harness.create(NAME, spec)
    harness.start()
    obj = harness.wait_ready(NAME, generation=1)
    assert obj["status"]["lastScheduleTime"]

    # Within a minute or so of the next fire: a MySQLBackup named after it, Succeeded.
    def scheduled_done(found: list[dict[str, Any]]) -> bool:
        return any(
            item["metadata"]["labels"].get("otus.homework/backup-trigger") == "schedule"
            and (item.get("status") or {}).get("phase") == "Succeeded"
            for item in found
        )

    found = eventually(harness.backups, scheduled_done, timeout_s=150, what="a scheduled backup")
    done = next(item for item in found if (item.get("status") or {}).get("phase") == "Succeeded")
    assert re.fullmatch(rf"{NAME}-\d{{12}}00", done["metadata"]["name"])
    assert done["status"]["trigger"] == "schedule"
    assert has_condition("Ready", "True")(harness.get(NAME))
    reasons = [event.reason for event in harness.events(NAME)]
    assert "BackupScheduled" in reasons


def test_an_instance_whose_claim_never_binds_is_deleted_promptly_without_a_backup(
    harness: Harness,
) -> None:
    ns = harness.namespace
    spec = {k: v for k, v in harness.host_path_spec().items() if k not in ("host_path", "backup")}
    spec["storage_class"] = "no-such-class"
    harness.create(NAME, spec)
    harness.start()
    pending = harness.wait_for(
        NAME, has_condition("Ready", "False", "VolumePending"), "VolumePending", 60
    )
    message = (condition(pending, "Ready") or {})["message"]
    assert f"claim {NAME}-data is Pending" in message

    harness.delete(NAME)
    harness.wait_gone(NAME, timeout_s=90)
    reasons = [event.reason for event in harness.events(NAME)]
    assert "BackupSkipped" in reasons
    assert not any(reason.startswith("FinalBackup") for reason in reasons)
    assert read_or_none(lambda: harness.apps.read_namespaced_deployment(NAME, ns)) is None
    claims = [
        c.metadata.name for c in harness.core.list_namespaced_persistent_volume_claim(ns).items
    ]
    assert f"{NAME}-data" not in claims


def test_a_failed_final_backup_keeps_everything_and_a_new_job_retries_it(
    harness: Harness,
) -> None:
    ns = harness.namespace
    harness.create(NAME, harness.host_path_spec())
    harness.start()
    obj = harness.wait_ready(NAME, generation=1)
    lifetime = obj["metadata"]["uid"].replace("-", "")[:8]

    # A quota of one Job makes creating the final backup Job fail while the restore Job
    # still exists... the restore Job is gone in SERVING, so hold the quota at zero.
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="no-jobs"),
        spec=client.V1ResourceQuotaSpec(hard={"count/jobs.batch": "0"}),
    )
    harness.core.create_namespaced_resource_quota(ns, quota)
    eventually(
        lambda: harness.core.read_namespaced_resource_quota("no-jobs", ns).status.hard,
        lambda hard: (hard or {}).get("count/jobs.batch") == "0",
        timeout_s=60,
        what="the quota is in force",
    )
    harness.delete(NAME)
    stalled = harness.wait_for(
        NAME, has_condition("Stalled", "True"), "the final backup cannot start", 120
    )
    assert FINALIZER in stalled["metadata"]["finalizers"]
    # Nothing was deleted: the instance still runs on its data.
    deployment = harness.apps.read_namespaced_deployment(NAME, ns)
    assert deployment.metadata.deletion_timestamp is None
    claim = harness.core.read_namespaced_persistent_volume_claim(f"{NAME}-data", ns)
    assert claim.metadata.deletion_timestamp is None

    # Once the quota goes, the backup runs and the deletion completes.
    harness.core.delete_namespaced_resource_quota("no-jobs", ns)
    harness.wait_gone(NAME)
    assert read_or_none(lambda: harness.apps.read_namespaced_deployment(NAME, ns)) is None
    assert harness.core.read_namespaced_persistent_volume_claim(f"{NAME}-backup", ns)
    reasons = [event.reason for event in harness.events(NAME)]
    assert "FinalBackupSucceeded" in reasons
    assert f"{NAME}-backup-{lifetime}-1" in " ".join(
        str(event.message) for event in harness.events(NAME)
    )
    (record,) = harness.backups()
    assert (record["status"]["phase"], record["status"]["attempt"]) == ("Succeeded", 1)


def test_a_terminating_namespace_keeps_the_volumes_and_lets_the_namespace_go(
    harness: Harness,
) -> None:
    ns = harness.namespace
    harness.create(NAME, harness.host_path_spec())
    harness.start()
    obj = harness.wait_ready(NAME, generation=1)
    uid = obj["metadata"]["uid"]
    data_volume = harness.core.read_namespaced_persistent_volume_claim(
        f"{NAME}-data", ns
    ).spec.volume_name

    lines_before = len(harness.log_lines())
    harness.core.delete_namespace(ns)
    eventually(
        lambda: read_or_none(lambda: harness.core.read_namespace(ns)),
        lambda found: found is None,
        timeout_s=120,
        what=f"namespace {ns} deleted",
    )
    volume = harness.core.read_persistent_volume(str(data_volume))
    assert volume.spec.persistent_volume_reclaim_policy == "Retain"
    annotations = volume.metadata.annotations
    assert annotations["otus.homework/instance-uid"] == uid
    assert annotations["otus.homework/retained-reason"] == f"namespace {ns} was deleted"
    assert "otus.homework/retained-at" in annotations
    assert "otus.homework/released" not in annotations
    # No engine ran for it: no Job can run in a terminating namespace.
    after = harness.log_lines()[lines_before:]
    assert not any("engine_runs=" in line for line in after), after
    assert any("reason=NamespaceDeleted" in line for line in after)


def test_the_spec_of_a_live_instance_cannot_move_its_claims(harness: Harness) -> None:
    harness.create(NAME, harness.host_path_spec())
    with pytest.raises(client.ApiException) as rejected:
        harness.patch(NAME, {"spec": {"storage_class": "fast"}})
    assert rejected.value.status == 422
    assert "storage_class" in str(rejected.value.body)
    with pytest.raises(client.ApiException) as rejected_backup:
        harness.patch(NAME, {"spec": {"backup": {"host_path": None}}})
    assert rejected_backup.value.status == 422
    assert "backup.host_path" in str(rejected_backup.value.body)
    custom = harness.custom
    stored = custom.get_namespaced_custom_object(GROUP, VERSION, harness.namespace, PLURAL, NAME)
    assert "storage_class" not in stored["spec"]


def test_a_password_secret_is_used_only_with_its_owners_consent(harness: Harness) -> None:
    ns = harness.namespace
    harness.core.create_namespaced_secret(
        ns,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="root-pw"), string_data={"password": "s3cret!"}
        ),
    )
    spec = {k: v for k, v in harness.host_path_spec().items() if k != "password"}
    spec["passwordSecretRef"] = {"name": "root-pw"}
    harness.create(NAME, spec)
    harness.start()
    refused = harness.wait_for(
        NAME, has_condition("Stalled", "True", "SecretNotAllowed"), "SecretNotAllowed", 60
    )
    assert "otus.homework/mysql-password=true" in (condition(refused, "Stalled") or {})["message"]
    assert read_or_none(lambda: harness.apps.read_namespaced_deployment(NAME, ns)) is None

    # The Secret's owner consents: the instance goes ahead, and its pods read the Secret.
    harness.core.patch_namespaced_secret(
        "root-pw", ns, {"metadata": {"labels": {"otus.homework/mysql-password": "true"}}}
    )
    harness.patch(NAME, {"metadata": {"annotations": {"otus.homework/retry": "consented"}}})
    harness.wait_ready(NAME, generation=1)
    # The pods read the operator's copy, the password the server has.
    (container,) = harness.apps.read_namespaced_deployment(NAME, ns).spec.template.spec.containers
    (password,) = [e for e in container.env if e.name == "MYSQL_ROOT_PASSWORD"]
    assert password.value_from.secret_key_ref.name == f"{NAME}-credentials"
    assert secret_text(harness, f"{NAME}-credentials") == "s3cret!"

    # A new value is watched and rotated: a Job (its pod succeeds on kwok), then the copy
    # and a restart of the server, and the rotation's own Secret goes.
    harness.core.patch_namespaced_secret("root-pw", ns, {"stringData": {"password": "n3w!"}})
    rotated = harness.wait_for(
        NAME,
        lambda obj: (
            has_condition("Ready", "True")(obj)
            and ((obj or {}).get("status", {}).get("password") or {}).get("rotations") == 1
        ),
        "the new password applied",
        120,
    )
    job_name = f"{NAME}-password-{rotated['metadata']['uid'].replace('-', '')[:8]}-1"
    job = harness.batch.read_namespaced_job(job_name, ns)
    assert job.status.succeeded == 1
    assert secret_text(harness, f"{NAME}-credentials") == "n3w!"
    template = harness.apps.read_namespaced_deployment(NAME, ns).spec.template
    assert template.metadata.annotations == {"otus.homework/password-rotations": "1"}
    assert read_or_none(lambda: harness.core.read_namespaced_secret(job_name, ns)) is None
    assert "PasswordRotated" in [str(event.reason) for event in harness.events(NAME)]
    said = json.dumps(rotated["status"]) + "\n".join(harness.log_lines())
    assert "s3cret!" not in said
    assert "n3w!" not in said


def secret_text(harness: Harness, name: str) -> str:
    data = harness.core.read_namespaced_secret(name, harness.namespace).data or {}
    return base64.b64decode(data["password"]).decode()


def test_host_paths_outside_the_operators_root_are_refused(harness: Harness) -> None:
    spec = harness.host_path_spec()
    spec["backup"] = {"host_path": "/var/lib/kubelet"}
    harness.create(NAME, spec)
    harness.start()
    refused = harness.wait_for(
        NAME, has_condition("Stalled", "True", "HostPathNotAllowed"), "HostPathNotAllowed", 60
    )
    message = (condition(refused, "Stalled") or {})["message"]
    assert message.startswith("spec.backup.host_path: '/var/lib/kubelet' is not under")
    assert (
        read_or_none(
            lambda: harness.core.read_persistent_volume(f"{harness.namespace}-{NAME}-backup")
        )
        is None
    )
    assert deploys_of(harness, NAME) == []


def test_a_passphrase_that_cannot_decrypt_the_state_stops_the_reconciler_at_once(
    harness: Harness,
) -> None:
    harness.create(NAME, harness.host_path_spec())
    harness.start()
    harness.wait_ready(NAME, generation=1)
    harness.stop()

    wrong = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", *harness.common_flags()],
        cwd=REPO_ROOT,
        env={**harness.env(), "PULUMI_CONFIG_PASSPHRASE": "not-the-one"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wrong.returncode == 1
    assert "the state passphrase does not decrypt the existing stacks" in wrong.stderr
    assert f"{harness.namespace}.{NAME}" in wrong.stderr
