"""The state migration's plan (migrate.py): what is copied, in which order, and what
stops it before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.migrate import (
    Destination,
    MigrationError,
    copy_order,
    migrate,
    source_files,
    stack_names,
)
from reconciler.s3 import Credentials, S3Client

pytestmark = pytest.mark.unit

STACKS = ".pulumi/stacks/mysql-operator"


def backend(tmp_path: Path) -> Path:
    files = {
        ".pulumi/meta.yaml": "version: 1\n",
        f"{STACKS}/ns.a.json": "{}",
        f"{STACKS}/ns.a.json.bak": "{}",
        f"{STACKS}/ns.a.json.attrs": "{}",
        f"{STACKS}/ns.b.json": "{}",
        ".pulumi/history/mysql-operator/ns.a/ns.a-1.history.json": "{}",
        ".pulumi/backups/mysql-operator/ns.a/ns.a.1.json": "{}",
    }
    for relative, text in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_history_goes_first_checkpoints_next_and_the_backends_metadata_last(
    tmp_path: Path,
) -> None:
    files, locks = source_files(backend(tmp_path))
    assert locks == []
    order = [item.relative for item in copy_order(files)]
    assert order == [
        ".pulumi/backups/mysql-operator/ns.a/ns.a.1.json",
        ".pulumi/history/mysql-operator/ns.a/ns.a-1.history.json",
        f"{STACKS}/ns.a.json",
        f"{STACKS}/ns.a.json.bak",
        f"{STACKS}/ns.b.json",
        ".pulumi/meta.yaml",
    ]
    assert stack_names(files) == ["ns.a", "ns.b"]


def nowhere() -> Destination:
    # Port 1 refuses at once: a test that reached the store would fail loudly.
    return Destination(S3Client("http://127.0.0.1:1", Credentials("id", "secret")), "b", "p/")


def test_a_locked_stack_stops_the_migration_before_the_bucket_is_touched(
    tmp_path: Path,
) -> None:
    lock = backend(tmp_path) / ".pulumi/locks/organization/mysql-operator/ns.a/x.json"
    lock.parent.mkdir(parents=True)
    lock.write_text("{}")
    with pytest.raises(MigrationError, match=r"stacks are locked.*ns\.a/x\.json"):
        migrate(tmp_path, nowhere())


def test_a_directory_without_state_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="holds no Pulumi state"):
        migrate(tmp_path, nowhere())


def test_the_destination_is_an_s3_url_with_keys() -> None:
    keys = {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}
    found = Destination.from_url("s3://state/ops?endpoint=http://127.0.0.1:9000", keys)
    assert (found.bucket, found.prefix, found.client.endpoint) == (
        "state",
        "ops/",
        "http://127.0.0.1:9000",
    )
    with pytest.raises(MigrationError, match="an s3:// backend URL"):
        Destination.from_url("file:///var/lib/state", keys)
    with pytest.raises(MigrationError, match="AWS_ACCESS_KEY_ID"):
        Destination.from_url("s3://state", {})
