"""Backups in S3 on the real node, against the cluster's MinIO: a backup asked for lands in
the bucket with the checksum its MySQLBackup records and holds exactly the rows written
before it; a new instance restores it by name; the same dump truncated in the bucket stops
a new instance with the backup's name in the message, and no server is ever Ready with
an empty database. A schedule into the bucket keeps its newest dumps and fires again
after a failure. The final backup of a delete lands in the bucket too, and a re-created
instance without its claims restores it from there.

The Jobs' transfer container runs the reconciler image, as an installed operator's does
(--transfer-image)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from kubernetes import client
from localcluster import object_store

from reconciler.vocabulary import ANNOTATION_RELEASED, LABEL_S3_CREDENTIALS
from tests.e2e.conftest import RealNode
from tests.e2e.data_story import e2e_harness
from tests.e2e.sql_client import count_rows, sql, write_rows
from tests.e2e.test_local_s3 import host_client
from tests.harness import Harness, condition, has_condition
from tests.support import eventually

pytestmark = pytest.mark.e2e

NAME: Final = "keeper"
DATABASE: Final = "otus-database"
CREDENTIALS: Final = "backup-store"
BUCKET: Final = object_store.BUCKETS[0]


def spec(namespace_prefix: str, **changes: Any) -> dict[str, Any]:
    """The original example's spec, with its backups in the cluster's bucket."""
    return {
        "image": "mysql:5.7",
        "database": DATABASE,
        "password": "otuspassword",
        "storage_size": "1Gi",
        "backup": {
            "s3": {
                "endpoint": object_store.IN_CLUSTER_ENDPOINT,
                "bucket": BUCKET,
                "prefix": namespace_prefix,
                "credentials_secret_ref": {"name": CREDENTIALS},
            }
        },
        **changes,
    }


@pytest.fixture
def harness(real_node: RealNode, reconciler_image: str, tmp_path: Path) -> Iterator[Harness]:
    with e2e_harness(
        real_node, tmp_path, extra_flags=(f"--transfer-image={reconciler_image}",)
    ) as h:
        # The store's credentials, copied into the namespace, and allowed for MySQL objects.
        published = h.core.read_namespaced_secret(object_store.SECRET, object_store.NAMESPACE)
        h.core.create_namespaced_secret(
            h.namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(
                    name=CREDENTIALS, labels={LABEL_S3_CREDENTIALS: "true"}
                ),
                data=published.data,
            ),
        )
        h.start()
        yield h


def test_a_backup_in_s3_is_verified_restored_by_name_and_refused_when_truncated(
    harness: Harness,
) -> None:
    prefix = f"e2e/{uuid.uuid4().hex[:8]}"
    store = host_client(harness.api_client)
    rows = random.randint(20, 200)
    harness.create(NAME, spec(prefix))
    harness.wait_ready(NAME, generation=1)
    write_rows(harness, NAME, DATABASE, rows)

    # The dump is in the bucket, under the documented key, with the recorded size and
    # checksum, and holds exactly the rows written before it.
    status = harness.backup_now("to-s3", NAME, timeout_s=240)
    key = f"{prefix}/{harness.namespace}/{NAME}/to-s3.sql.gz"
    assert status["location"] == f"s3://{BUCKET}/{key}"
    content = store.get_object(BUCKET, key)
    assert (len(content), hashlib.sha256(content).hexdigest()) == (
        status["sizeBytes"],
        status["sha256"],
    )
    assert gzip.decompress(content).count(b"'row-") == rows
    assert has_condition("Ready", "True")(harness.get(NAME))
    # Nothing of the store's secret key in the Job's spec or the MySQLBackup.
    secret_key = base64.b64decode(
        harness.core.read_namespaced_secret(CREDENTIALS, harness.namespace).data[
            "secret_access_key"
        ]
    ).decode()
    jobs = harness.batch.list_namespaced_job(harness.namespace).items
    assert jobs
    assert all(secret_key not in str(job.to_dict()) for job in jobs)
    assert secret_key not in str(harness.backup("to-s3"))

    # Rows written after the backup are not in a new instance restored from it.
    sql(harness, NAME, DATABASE, "INSERT INTO kept VALUES (100000, 'after');")
    harness.create("copy", spec(prefix, restore_from={"backup": "to-s3"}))
    restored = harness.wait_ready("copy", generation=1)
    assert count_rows(harness, "copy", DATABASE) == rows
    assert restored["status"]["restore"]["source"]["url"] == f"s3://{BUCKET}/{key}"
    assert count_rows(harness, NAME, DATABASE) == rows + 1

    # The same dump, truncated in the bucket: a new instance stops, naming the backup,
    # and never serves.
    store.put_object(BUCKET, key, content[: len(content) // 2])
    harness.create("broken", spec(prefix, restore_from={"backup": "to-s3"}))
    stalled = harness.wait_for(
        "broken", has_condition("Stalled", "True"), "the truncated dump reported", 240
    )
    found = condition(stalled, "Stalled") or {}
    assert found["reason"] == "RestoreDumpCorrupt", found
    assert "MySQLBackup to-s3" in found["message"], found
    assert "is corrupt" in found["message"], found
    assert not has_condition("Ready", "True")(harness.get("broken"))


def test_a_schedule_into_s3_keeps_two_dumps_and_fires_again_after_a_failure(
    harness: Harness,
) -> None:
    """Every minute with keep 2: a fire whose store is unusable (the credentials lose their
    consent label) fails at once, the next fire succeeds, and in the end the bucket holds
    exactly the two dumps the two Succeeded scheduled records name, with their checksums."""
    prefix = f"e2e/{uuid.uuid4().hex[:8]}"
    store = host_client(harness.api_client)
    harness.create(
        NAME, spec(prefix, backup={**spec(prefix)["backup"], "schedule": "* * * * *", "keep": 2})
    )
    harness.wait_ready(NAME, generation=1)
    write_rows(harness, NAME, DATABASE, 25)

    def scheduled(phase: str) -> list[dict[str, Any]]:
        return sorted(
            (
                found
                for found in harness.backups()
                if found["metadata"]["labels"].get("otus.homework/backup-trigger") == "schedule"
                and (found.get("status") or {}).get("phase") == phase
            ),
            key=lambda found: str(found["metadata"]["name"]),
        )

    eventually(
        lambda: scheduled("Succeeded"),
        lambda done: len(done) >= 1,
        timeout_s=150,
        interval_s=3,
        what="a first scheduled backup in the bucket",
    )

    def consent(value: str | None) -> None:
        harness.core.patch_namespaced_secret(
            CREDENTIALS,
            harness.namespace,
            {"metadata": {"labels": {LABEL_S3_CREDENTIALS: value}}},
        )

    consent(None)
    failed = eventually(
        lambda: scheduled("Failed"),
        lambda found: len(found) >= 1,
        timeout_s=120,
        interval_s=3,
        what="a scheduled backup failing on the unusable store",
    )[0]
    complete = next(c for c in failed["status"]["conditions"] if c["type"] == "Complete")
    assert complete["reason"] == "BackupStoreUnusable", complete
    assert "spec.backup.s3" in complete["message"], complete
    consent("true")

    def after_failure() -> list[dict[str, Any]]:
        return [
            found
            for found in scheduled("Succeeded")
            if found["metadata"]["name"] > failed["metadata"]["name"]
        ]

    eventually(
        after_failure,
        lambda found: len(found) >= 2,
        timeout_s=200,
        interval_s=5,
        what="two scheduled backups after the failed one",
    )
    instance_prefix = f"{prefix}/{harness.namespace}/{NAME}/"

    def records_and_keys() -> tuple[list[str], list[str], int]:
        """The keys the Succeeded scheduled records name, the dumps in the bucket, and
        how many scheduled backups run right now."""
        named = [
            found["status"]["location"].removeprefix(f"s3://{BUCKET}/")
            for found in scheduled("Succeeded")
        ]
        keys = sorted(
            found.key
            for found in store.list_objects(BUCKET, instance_prefix)
            if found.key.endswith(".sql.gz")
        )
        return sorted(named), keys, len(scheduled("Running"))

    named, keys, _running = eventually(
        records_and_keys,
        lambda seen: len(seen[0]) == 2 and seen[0] == seen[1] and seen[2] == 0,
        timeout_s=120,
        interval_s=2,
        what="two scheduled records and the same two dumps in the bucket",
    )
    assert named == keys
    # The failed fire's record went with retention; each kept dump matches its record.
    assert not scheduled("Failed")
    for found in scheduled("Succeeded"):
        content = store.get_object(
            BUCKET, found["status"]["location"].removeprefix(f"s3://{BUCKET}/")
        )
        assert (len(content), hashlib.sha256(content).hexdigest()) == (
            found["status"]["sizeBytes"],
            found["status"]["sha256"],
        )
        assert gzip.decompress(content).count(b"'row-") == 25
    assert has_condition("Ready", "True")(harness.get(NAME))


def test_the_final_backup_lands_in_the_bucket_and_restores_a_new_instance_without_its_claims(
    harness: Harness,
) -> None:
    """Two lifetimes, each ended by a delete: each final backup is kept on the backup claim
    (which then holds both) and copied into the bucket with the checksum its MySQLBackup
    records. With that claim deleted too (its volume released by hand), a re-created
    instance has nothing of its own to restore: it restores the newest backup of its
    name from the bucket, the second one, before it serves."""
    prefix = f"e2e/{uuid.uuid4().hex[:8]}"
    rows = random.randint(20, 200)
    harness.create(NAME, spec(prefix))
    harness.wait_ready(NAME, generation=1)
    write_rows(harness, NAME, DATABASE, rows)
    first = delete_and_check_the_final_backup(harness, prefix, rows)

    harness.create(NAME, spec(prefix))
    harness.wait_ready(NAME, generation=1)
    assert count_rows(harness, NAME, DATABASE) == rows
    sql(harness, NAME, DATABASE, "INSERT INTO kept VALUES (100000, 'row-second-lifetime');")
    second = delete_and_check_the_final_backup(harness, prefix, rows + 1)
    assert second["metadata"]["name"] != first["metadata"]["name"]

    # The claim copy goes: the claim deleted, its (retained) volume released by hand.
    backup_claim = f"{NAME}-backup"
    volume = str(
        harness.core.read_namespaced_persistent_volume_claim(
            backup_claim, harness.namespace
        ).spec.volume_name
    )
    harness.core.delete_namespaced_persistent_volume_claim(backup_claim, harness.namespace)
    eventually(
        lambda: [
            claim.metadata.name
            for claim in harness.core.list_namespaced_persistent_volume_claim(
                harness.namespace
            ).items
        ],
        lambda claims: not claims,
        timeout_s=60,
        interval_s=1,
        what="both claims gone",
    )
    harness.core.patch_persistent_volume(
        volume, {"metadata": {"annotations": {ANNOTATION_RELEASED: "by-hand"}}}
    )

    harness.create(NAME, spec(prefix))
    restored = harness.wait_ready(NAME, generation=1)
    source = restored["status"]["restore"]["source"]
    assert (source["backup"], source["url"]) == (
        second["metadata"]["name"],
        second["status"]["location"],
    )
    assert not restored["status"]["volumes"]["backup"].get("preexisting")
    assert count_rows(harness, NAME, DATABASE) == rows + 1


def delete_and_check_the_final_backup(harness: Harness, prefix: str, rows: int) -> dict[str, Any]:
    """Deletes the instance; its final backup's MySQLBackup, whose dump in the bucket
    matches the record and holds `rows` rows."""
    before = {found["metadata"]["name"] for found in harness.backups()}
    harness.delete(NAME)
    harness.wait_gone(NAME)
    (final,) = [found for found in harness.backups() if found["metadata"]["name"] not in before]
    status = final["status"]
    assert (status["phase"], status["trigger"]) == ("Succeeded", "delete"), status
    key = f"{prefix}/{harness.namespace}/{NAME}/{final['metadata']['name']}.sql.gz"
    assert status["location"] == f"s3://{BUCKET}/{key}"
    content = host_client(harness.api_client).get_object(BUCKET, key)
    assert (len(content), hashlib.sha256(content).hexdigest()) == (
        status["sizeBytes"],
        status["sha256"],
    )
    assert gzip.decompress(content).count(b"'row-") == rows
    return final
