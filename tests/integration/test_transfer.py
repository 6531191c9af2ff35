"""The Jobs' S3 transfer (reconciler/transfer.py) against the local cluster's real MinIO:
run as the Job runs it, a process reading its environment, on a staging directory laid
out as backup.sh leaves it."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from localcluster import object_store

from tests.conftest import REPO_ROOT
from tests.harness import free_port
from tests.local_s3 import Store, local_store

pytestmark = pytest.mark.integration

BUCKET = object_store.BUCKETS[0]


@pytest.fixture(scope="module")
def store(kubeconfig: Path, api_client: client.ApiClient) -> Store:
    """The store this host reaches, with the credentials the cluster publishes."""
    return local_store(kubeconfig, api_client)


@pytest.fixture
def prefix(store: Store) -> Iterator[str]:
    """A key prefix of this test's own; emptied afterwards."""
    name = f"test-transfer/{uuid.uuid4().hex[:8]}/"
    yield name
    for item in store.client.list_objects(BUCKET, name):
        store.client.delete_object(BUCKET, item.key)


def stage_dump(staging: Path, rows: int, trigger: str = "manual") -> tuple[bytes, str]:
    """A dump and its .meta as backup.sh writes them; (the dump's bytes, its sha256)."""
    staging.mkdir(parents=True, exist_ok=True)
    body = "".join(f"INSERT INTO kept VALUES ({n},'row-{n}');\n" for n in range(rows))
    content = gzip.compress((body + "-- Dump completed on 2026-12-01\n").encode())
    sha256 = hashlib.sha256(content).hexdigest()
    (staging / "dump-0000000001.sql.gz").write_bytes(content)
    (staging / "dump-0000000001.meta").write_text(
        f"sequence=1\nfile=dump-0000000001.sql.gz\nsize={len(content)}\nsha256={sha256}\n"
        f"scope=database\nserver_version=10.11.6\ntrigger={trigger}\n"
    )
    return content, sha256


def transfer(
    verb: str, store: Store, tmp_path: Path, **env: str
) -> tuple[int, str, subprocess.CompletedProcess[str]]:
    """Runs `python3 -m reconciler.transfer <verb>` as the Job does; (exit code, the
    termination message, the process)."""
    log = tmp_path / f"termination-{uuid.uuid4().hex[:6]}"
    done = subprocess.run(
        [sys.executable, "-m", "reconciler.transfer", verb],
        env={
            "PYTHONPATH": str(REPO_ROOT),
            "S3_ENDPOINT": store.endpoint,
            "S3_BUCKET": BUCKET,
            "S3_REGION": store.credentials.region,
            "AWS_ACCESS_KEY_ID": store.credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": store.credentials.secret_access_key,
            "TERMINATION_LOG": str(log),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    message = log.read_text().strip() if log.exists() else ""
    return done.returncode, message, done


def test_an_upload_stores_the_dump_and_its_record_and_says_where(
    store: Store, prefix: str, tmp_path: Path
) -> None:
    content, sha256 = stage_dump(tmp_path / "staging", rows=500)
    key = f"{prefix}db-manual.sql.gz"
    code, message, done = transfer(
        "upload",
        store,
        tmp_path,
        S3_KEY=key,
        S3_ROTATE_PREFIX=prefix,
        STAGING_DIR=str(tmp_path / "staging"),
        BACKUP_TRIGGER="manual",
        BACKUP_KEEP="2",
    )
    assert code == 0, done.stderr
    assert message == (
        f"dump=dump-0000000001.sql.gz sequence=1 size={len(content)} sha256={sha256} "
        f"server_version=10.11.6 location=s3://{BUCKET}/{key}"
    )
    assert store.client.get_object(BUCKET, key) == content
    record = store.client.get_object(BUCKET, f"{prefix}db-manual.meta").decode()
    assert f"sha256={sha256}\n" in record
    assert f"location=s3://{BUCKET}/{key}\n" in record
    # Nothing secret on the process's output.
    assert store.credentials.secret_access_key not in done.stdout + done.stderr


def test_a_staged_dump_that_differs_from_its_record_is_refused_by_the_store(
    store: Store, prefix: str, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    content, _ = stage_dump(staging, rows=50)
    # Same size, other bytes: the record's sha256 no longer describes the file.
    damaged = bytearray(content)
    damaged[len(damaged) // 2] ^= 0xFF
    (staging / "dump-0000000001.sql.gz").write_bytes(bytes(damaged))
    key = f"{prefix}damaged.sql.gz"
    code, message, _ = transfer(
        "upload", store, tmp_path, S3_KEY=key, S3_ROTATE_PREFIX=prefix, STAGING_DIR=str(staging)
    )
    assert code == 1
    assert "SHA256" in message  # the store's own error code, e.g. XAmzContentSHA256Mismatch
    assert store.client.head_object(BUCKET, key) is None


def test_scheduled_uploads_keep_the_newest_and_never_a_manual_dump(
    store: Store, prefix: str, tmp_path: Path
) -> None:
    def upload(name: str, trigger: str) -> None:
        staging = tmp_path / name
        stage_dump(staging, rows=10, trigger=trigger)
        code, _, done = transfer(
            "upload",
            store,
            tmp_path,
            S3_KEY=f"{prefix}{name}.sql.gz",
            S3_ROTATE_PREFIX=prefix,
            STAGING_DIR=str(staging),
            BACKUP_TRIGGER=trigger,
            BACKUP_KEEP="2",
        )
        assert code == 0, done.stderr

    upload("db-manual", "manual")
    for stamp in ("20261201000100", "20261201000200", "20261201000300", "20261201000400"):
        upload(f"db-{stamp}", "schedule")
    keys = sorted(
        item.key.removeprefix(prefix) for item in store.client.list_objects(BUCKET, prefix)
    )
    assert keys == [
        "db-20261201000300.meta",
        "db-20261201000300.sql.gz",
        "db-20261201000400.meta",
        "db-20261201000400.sql.gz",
        "db-manual.meta",
        "db-manual.sql.gz",
    ]


def test_a_download_is_checked_against_the_recorded_checksum(
    store: Store, prefix: str, tmp_path: Path
) -> None:
    content, sha256 = stage_dump(tmp_path / "source", rows=300)
    key = f"{prefix}nightly.sql.gz"
    store.client.put_object(BUCKET, key, content)

    def download(staging: Path, **env: str) -> tuple[int, str]:
        staging.mkdir()
        code, message, _ = transfer(
            "download",
            store,
            tmp_path,
            **{
                "S3_KEY": key,
                "STAGING_DIR": str(staging),
                "RESTORE_SOURCE": "dump-0000000001.sql.gz",
                "RESTORE_BACKUP": "nightly",
                "EXPECTED_SIZE": str(len(content)),
                "EXPECTED_SHA256": sha256,
                **env,
            },
        )
        return code, message

    good = tmp_path / "good"
    assert download(good) == (
        0,
        f"downloaded s3://{BUCKET}/{key} size={len(content)} sha256={sha256}",
    )
    assert (good / "dump-0000000001.sql.gz").read_bytes() == content
    meta = (good / "dump-0000000001.meta").read_text()
    assert f"size={len(content)}\nsha256={sha256}\n" in meta
    assert "file=dump-0000000001.sql.gz\n" in meta
    assert meta.endswith("trailer=-- Dump completed on 2026-12-01\n")

    # The checksum the backup recorded, but a dump that ends early (written by a broken
    # backup): decompressed as it arrives, it is refused before restore.sh reads it.
    early = gzip.compress(b"INSERT INTO kept VALUES (1,'row-1');\n")
    store.client.put_object(BUCKET, key, early)
    code, message = download(
        tmp_path / "early",
        EXPECTED_SIZE=str(len(early)),
        EXPECTED_SHA256=hashlib.sha256(early).hexdigest(),
    )
    assert code == 4
    assert message.endswith("is corrupt: it does not end with the '-- Dump completed' trailer")
    assert list((tmp_path / "early").iterdir()) == []
    store.client.put_object(BUCKET, key, content)

    # Truncated in the bucket: refused as corrupt (exit 4), naming the backup; nothing left.
    store.client.put_object(BUCKET, key, content[: len(content) // 2])
    truncated = tmp_path / "truncated"
    code, message = download(truncated)
    assert code == 4
    assert message.startswith(f"MySQLBackup nightly: s3://{BUCKET}/{key} is corrupt")
    assert list(truncated.iterdir()) == []

    code, message = download(tmp_path / "missing", S3_KEY=f"{prefix}gone.sql.gz")
    assert (code, message) == (
        4,
        f"MySQLBackup nightly: s3://{BUCKET}/{prefix}gone.sql.gz does not exist",
    )

    # Wrong credentials, or no store where the endpoint points, are failures to retry, not
    # a corrupt dump; the message names the field to check.
    code, message = download(tmp_path / "denied", AWS_SECRET_ACCESS_KEY="not-the-key")
    assert code == 1
    assert "403" in message
    closed = f"http://127.0.0.1:{free_port()}"
    code, message = download(tmp_path / "nowhere", S3_ENDPOINT=closed)
    assert code == 1
    assert message.startswith(f"MySQLBackup nightly: s3://{BUCKET}/{key}: ")
    assert f"spec.backup.s3.endpoint {closed}: the store cannot be reached: " in message
