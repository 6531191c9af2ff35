"""backup.sh and restore.sh against a real MariaDB server, run by a POSIX shell as the Jobs
run them: over TCP, with the password only in MYSQL_PWD."""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

import pytest

from tests.datapath.conftest import MariaDB

pytestmark = pytest.mark.datapath

SCRIPTS = resources.files("reconciler").joinpath("scripts")

SCHEMA = """
CREATE TABLE orders (
  id INT PRIMARY KEY,
  customer VARCHAR(64) CHARACTER SET utf8mb4,
  payload VARBINARY(16),
  note TEXT NULL
);
CREATE TABLE audit (order_id INT, action VARCHAR(16));
CREATE TRIGGER orders_audit AFTER INSERT ON orders
  FOR EACH ROW INSERT INTO audit VALUES (NEW.id, 'insert');
CREATE PROCEDURE order_count() SELECT COUNT(*) FROM orders;
INSERT INTO orders VALUES
  (1, 'Ада Лавлейс', UNHEX('00FF10'), NULL),
  (2, 'O''Brien; DROP TABLE x', UNHEX(''), 'tab\there');
"""


def run_script(
    name: str, mariadb: MariaDB, database: str, backup_dir: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = {**mariadb.client_env(database), "BACKUP_DIR": str(backup_dir), **extra}
    script = str(SCRIPTS.joinpath(name))
    # dash, not bash: the Jobs' images may only have a POSIX sh.
    return subprocess.run(
        ["dash", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def backup(mariadb: MariaDB, database: str, backup_dir: Path, keep: int = 5) -> None:
    done = run_script("backup.sh", mariadb, database, backup_dir, BACKUP_KEEP=str(keep))
    assert done.returncode == 0, done.stderr


def restore(mariadb: MariaDB, database: str, backup_dir: Path) -> str:
    done = run_script("restore.sh", mariadb, database, backup_dir, RESTORE_WAIT_SECONDS="10")
    assert done.returncode == 0, done.stderr
    return done.stderr


def create_database(mariadb: MariaDB, database: str, sql: str = SCHEMA) -> None:
    mariadb.sql(f"CREATE DATABASE `{database}`")
    mariadb.sql(sql, database=database)


def snapshot(mariadb: MariaDB, database: str) -> dict[str, str]:
    return {
        "orders": mariadb.sql(
            "SELECT id, customer, HEX(payload), note FROM orders ORDER BY id", database
        ),
        "audit": mariadb.sql("SELECT * FROM audit ORDER BY order_id", database),
        "triggers": mariadb.sql(
            "SELECT trigger_name FROM information_schema.triggers "
            "WHERE trigger_schema = DATABASE()",
            database,
        ),
        "routines": mariadb.sql(
            "SELECT routine_name FROM information_schema.routines "
            "WHERE routine_schema = DATABASE()",
            database,
        ),
    }


def dumps(backup_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(backup_dir.iterdir())}


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    path = tmp_path / "backup"
    path.mkdir()
    return path


def test_round_trip(mariadb: MariaDB, database: str, backup_dir: Path) -> None:
    create_database(mariadb, database)
    before = snapshot(mariadb, database)
    assert "orders_audit" in before["triggers"]
    assert "order_count" in before["routines"]

    backup(mariadb, database, backup_dir)
    (dump_name,) = dumps(backup_dir)
    assert dump_name.startswith("dump-")
    assert dump_name.endswith(".sql")

    mariadb.sql(f"DROP DATABASE `{database}`")
    restore(mariadb, database, backup_dir)

    assert snapshot(mariadb, database) == before


def test_restore_applies_the_newest_dump(mariadb: MariaDB, database: str, backup_dir: Path) -> None:
    create_database(mariadb, database)
    backup(mariadb, database, backup_dir)
    mariadb.sql("INSERT INTO orders (id, customer) VALUES (3, 'later')", database)
    backup(mariadb, database, backup_dir)
    assert len(dumps(backup_dir)) == 2
    expected = snapshot(mariadb, database)

    mariadb.sql(f"DROP DATABASE `{database}`")
    restore(mariadb, database, backup_dir)

    assert snapshot(mariadb, database) == expected


def test_a_failed_connection_leaves_the_previous_dump_intact(
    mariadb: MariaDB, database: str, backup_dir: Path
) -> None:
    create_database(mariadb, database)
    backup(mariadb, database, backup_dir)
    previous = dumps(backup_dir)

    failed = run_script("backup.sh", mariadb, database, backup_dir, MYSQL_PWD="wrong-password")

    assert failed.returncode != 0
    assert "previous dumps are untouched" in failed.stderr
    assert dumps(backup_dir) == previous  # no new file, no partial file, nothing changed


def test_a_dump_failing_midway_leaves_the_previous_dump_intact(
    mariadb: MariaDB, database: str, backup_dir: Path
) -> None:
    create_database(mariadb, database)
    backup(mariadb, database, backup_dir)
    previous = dumps(backup_dir)
    # A view over a dropped table: mysqldump writes the tables, then fails on the view.
    mariadb.sql("CREATE TABLE doomed (x INT); CREATE VIEW broken AS SELECT x FROM doomed", database)
    mariadb.sql("DROP TABLE doomed", database)

    failed = run_script("backup.sh", mariadb, database, backup_dir)

    assert failed.returncode != 0, failed.stderr
    assert dumps(backup_dir) == previous
    # And the intact dump still restores.
    expected = snapshot(mariadb, database)
    mariadb.sql(f"DROP DATABASE `{database}`")
    restore(mariadb, database, backup_dir)
    assert snapshot(mariadb, database) == expected


def test_only_the_newest_dumps_are_kept(mariadb: MariaDB, database: str, backup_dir: Path) -> None:
    create_database(mariadb, database)
    created: list[str] = []
    for _ in range(4):
        before = set(dumps(backup_dir))
        backup(mariadb, database, backup_dir, keep=2)
        (new,) = set(dumps(backup_dir)) - before
        created.append(new)
    # Names sort by age, even for backups within the same second (a sequence number).
    assert created == sorted(created)
    assert list(dumps(backup_dir)) == created[-2:]


def test_restore_without_a_dump_is_a_successful_no_op(
    mariadb: MariaDB, database: str, backup_dir: Path
) -> None:
    log = restore(mariadb, database, backup_dir)
    assert "nothing to restore" in log
    assert database not in mariadb.sql("SHOW DATABASES")


def test_restore_keeps_a_database_that_already_has_tables(
    mariadb: MariaDB, database: str, backup_dir: Path
) -> None:
    create_database(mariadb, database)
    backup(mariadb, database, backup_dir)
    mariadb.sql("INSERT INTO orders (id, customer) VALUES (99, 'newer than the dump')", database)
    current = snapshot(mariadb, database)

    log = restore(mariadb, database, backup_dir)

    assert "keeping them" in log
    assert snapshot(mariadb, database) == current


def test_an_interrupted_restore_is_applied_again(
    mariadb: MariaDB, database: str, backup_dir: Path
) -> None:
    create_database(mariadb, database)
    expected = snapshot(mariadb, database)
    backup(mariadb, database, backup_dir)
    # What a restore that died half-way leaves: some tables, and its marker.
    mariadb.sql(f"DROP DATABASE `{database}`")
    mariadb.sql(f"CREATE DATABASE `{database}`")
    mariadb.sql("CREATE TABLE orders (id INT PRIMARY KEY)", database)
    (backup_dir / f".restore-inprogress-{database}").touch()

    restore(mariadb, database, backup_dir)

    assert snapshot(mariadb, database) == expected
    assert not (backup_dir / f".restore-inprogress-{database}").exists()


def test_restore_fails_loudly_when_mysql_never_answers(
    mariadb: MariaDB, database: str, backup_dir: Path
) -> None:
    create_database(mariadb, database)
    backup(mariadb, database, backup_dir)
    failed = run_script(
        "restore.sh", mariadb, database, backup_dir, MYSQL_PORT="1", RESTORE_WAIT_SECONDS="2"
    )
    assert failed.returncode != 0
    assert "did not answer" in failed.stderr


@pytest.mark.parametrize("script", ["backup.sh", "restore.sh"])
def test_scripts_refuse_unsafe_database_names(
    mariadb: MariaDB, backup_dir: Path, script: str
) -> None:
    (backup_dir / "dump-20000101T000000Z-000.sql").write_text("-- Dump completed\n")
    failed = run_script(script, mariadb, "--all-databases", backup_dir)
    assert failed.returncode != 0
    assert "refusing database name" in failed.stderr
