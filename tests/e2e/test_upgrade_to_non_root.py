"""An instance that the previous release ran as root keeps its data when this release
runs its pods as uid 999: the server's files were written by a root-started entrypoint,
and the backup volume already holds a dump that a root Job wrote. After the upgrade the
server restarts as 999 with its rows, the final backup writes beside the root's dump, and
a re-created instance restores every row from it."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Final

import pytest

from tests.e2e.conftest import RealNode
from tests.e2e.data_story import DATABASE, NAME, ORIGINAL_SPEC, claim_host_dir, e2e_harness
from tests.e2e.sql_client import sql
from tests.harness import REPO_ROOT, Harness
from tests.support import eventually

pytestmark = pytest.mark.e2e

# The last commit whose instance pods ran as root (PROGRAM_REVISION 2).
ROOT_RELEASE: Final = "3ce3615981f3a5bcd771f6396adfb409da94282a"


def has_commit(commit: str) -> bool:
    found = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=REPO_ROOT, check=False
    )
    return found.returncode == 0


def checkout(commit: str, into: Path) -> Path:
    """The reconciler package of `commit`, without touching this checkout's files."""
    if not has_commit(commit):
        # A shallow clone: ask its origin for that one commit.
        subprocess.run(
            ["git", "fetch", "--quiet", "--depth=1", "origin", commit], cwd=REPO_ROOT, check=False
        )
    if not has_commit(commit):
        pytest.skip(f"the previous release {commit} is not in this clone's history (shallow)")
    into.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "reconciler"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def server_users(harness: Harness) -> list[int | None]:
    """The uid each live server pod runs as (None: the image's own user)."""
    pods = harness.core.list_namespaced_pod(harness.namespace, label_selector=f"app={NAME}").items
    return [
        pod.spec.security_context.run_as_user if pod.spec.security_context else None
        for pod in pods
        if pod.metadata.deletion_timestamp is None
    ]


def rows(harness: Harness) -> list[str]:
    return sql(harness, NAME, DATABASE, "SELECT v FROM kept ORDER BY v;").split()


def test_an_instance_the_root_release_made_keeps_its_data(
    real_node: RealNode, tmp_path: Path
) -> None:
    previous = checkout(ROOT_RELEASE, tmp_path / "root-release")
    with e2e_harness(real_node, tmp_path) as current:
        old = replace(current, source=previous, process=None)
        old.start()
        try:
            # The previous release: a first lifetime, its final backup by a root Job, and
            # a second lifetime restored from it, all as root.
            current.create(NAME, dict(ORIGINAL_SPEC))
            current.wait_ready(NAME, generation=1)
            assert server_users(current) == [None]
            sql(
                current,
                NAME,
                DATABASE,
                "CREATE TABLE kept (v VARCHAR(16) PRIMARY KEY); INSERT INTO kept VALUES ('a');",
            )
            current.delete(NAME)
            current.wait_gone(NAME)
            current.create(NAME, dict(ORIGINAL_SPEC))
            current.wait_ready(NAME, generation=1)
            sql(current, NAME, DATABASE, "INSERT INTO kept VALUES ('b');")
        finally:
            old.stop()
        backup_dir = claim_host_dir(current, f"{NAME}-backup")
        root_dumps = sorted(backup_dir.rglob("dump-*.sql.gz"))
        assert [dump.stat().st_uid for dump in root_dumps] == [0], root_dumps

        # This release: the server restarts as 999 with its rows.
        current.start()
        eventually(
            lambda: server_users(current),
            lambda users: users == [999],
            timeout_s=300,
            what="the server pod recreated as uid 999",
        )
        assert rows(current) == ["a", "b"]
        sql(current, NAME, DATABASE, "INSERT INTO kept VALUES ('c');")

        # Its final backup goes beside the root's dump; the next lifetime restores it.
        current.delete(NAME)
        current.wait_gone(NAME)
        dumps = sorted(backup_dir.rglob("dump-*.sql.gz"))
        assert len(dumps) == 2, dumps
        assert dumps[-1].stat().st_uid == 999
        current.create(NAME, dict(ORIGINAL_SPEC))
        current.wait_ready(NAME, generation=1)
        assert server_users(current) == [999]
        assert rows(current) == ["a", "b", "c"]
