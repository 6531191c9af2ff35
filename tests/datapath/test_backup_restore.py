"""backup.sh and restore.sh against a real MariaDB server, run by dash as the Jobs run
them: over TCP, with the password only in MYSQL_PWD.

Stand-ins for tools (a stuck mysqldump, a fake `date`, ...) are small scripts put first
on the scripts' PATH. Waits poll for an expected state with a generous deadline; no test
asserts how long anything took.
"""

# SQL is built from the tests' own names and values, against a throwaway server:

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from reconciler import manifests
from tests.datapath.conftest import MariaDB, SQLError

pytestmark = pytest.mark.datapath

SCRIPTS = resources.files("reconciler").joinpath("scripts")
RUN_TIMEOUT_S = 120.0
WAIT_S = 30.0  # a deadline for something a test expects to happen, never an assertion

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

LIFECYCLE_TABLE = """
CREATE DATABASE IF NOT EXISTS mysql_operator;
CREATE TABLE IF NOT EXISTS mysql_operator.lifecycle (
  uid VARCHAR(64), event VARCHAR(32), detail VARCHAR(512),
  at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
"""


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stderr: str
    message: str | None  # the termination log's line; None when it was not written


class Jobs:
    """Runs the scripts as the Jobs do: one instance uid, one backup volume."""

    def __init__(self, mariadb: MariaDB, database: str, tmp_path: Path) -> None:
        self.mariadb = mariadb
        self.database = database
        self.backup_dir = tmp_path / "backup"
        self.backup_dir.mkdir()
        self.termination_log = tmp_path / "termination-log"
        self.stubs = tmp_path / "stubs"
        self.stubs.mkdir()
        self.uid = str(uuid.uuid4())

    def env(self, stubs: bool, extra: dict[str, str]) -> dict[str, str]:
        env = {
            **self.mariadb.client_env(self.database),
            "BACKUP_DIR": str(self.backup_dir),
            "TERMINATION_LOG": str(self.termination_log),
            "INSTANCE_UID": self.uid,
            "RESTORE_WAIT_SECONDS": "10",
            **extra,
        }
        if stubs:
            env["PATH"] = f"{self.stubs}{os.pathsep}{env['PATH']}"
        return env

    def command(self, script: str) -> list[str]:
        # dash, not bash: the Jobs' images may only have a POSIX sh.
        return ["dash", str(SCRIPTS.joinpath(script))]

    def run(
        self,
        script: str,
        *,
        stubs: bool = False,
        env: Mapping[str, str] | None = None,
        **extra: str,
    ) -> Outcome:
        self.termination_log.unlink(missing_ok=True)
        done = subprocess.run(
            self.command(script),
            env=self.env(stubs, {**(env or {}), **extra}),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        return Outcome(done.returncode, done.stderr, self.message())

    def start(self, script: str, **extra: str) -> subprocess.Popen[str]:
        """Starts a script in the background, with the stand-ins on its PATH."""
        self.termination_log.unlink(missing_ok=True)
        return subprocess.Popen(
            self.command(script),
            env=self.env(True, extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def message(self) -> str | None:
        if not self.termination_log.exists():
            return None
        lines = self.termination_log.read_text().splitlines()
        assert len(lines) == 1, lines  # always exactly one line
        return lines[0]

    def backup(
        self,
        expect: int = 0,
        *,
        stubs: bool = False,
        env: Mapping[str, str] | None = None,
        **extra: str,
    ) -> Outcome:
        outcome = self.run("backup.sh", stubs=stubs, env=env, **extra)
        assert outcome.returncode == expect, outcome.stderr
        return outcome

    def restore(
        self,
        expect: int = 0,
        *,
        stubs: bool = False,
        env: Mapping[str, str] | None = None,
        **extra: str,
    ) -> Outcome:
        outcome = self.run("restore.sh", stubs=stubs, env=env, **extra)
        assert outcome.returncode == expect, outcome.stderr
        return outcome

    def stub(self, tool: str, body: str) -> None:
        path = self.stubs / tool
        path.write_text(f"#!/bin/sh\n{body}")
        path.chmod(0o755)


@pytest.fixture(autouse=True)
def no_lifecycle_record(mariadb: MariaDB) -> Iterator[None]:
    """The provenance record is server-wide; the tests share one server."""
    mariadb.sql("DROP DATABASE IF EXISTS mysql_operator")
    yield
    mariadb.sql("DROP DATABASE IF EXISTS mysql_operator")


@pytest.fixture
def jobs(mariadb: MariaDB, database: str, tmp_path: Path) -> Jobs:
    return Jobs(mariadb, database, tmp_path)


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


def table_count(mariadb: MariaDB, database: str) -> int:
    return int(
        mariadb.sql(
            f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{database}'"
        )
    )


def files(backup_dir: Path) -> dict[str, bytes]:
    """Everything in the backup directory, hidden files included."""
    return {path.name: path.read_bytes() for path in sorted(backup_dir.iterdir())}


def dump_name(sequence: int) -> str:
    return f"dump-{sequence:010d}.sql.gz"


def meta_of(backup_dir: Path, dump: str) -> dict[str, str]:
    text = (backup_dir / dump.replace(".sql.gz", ".meta")).read_text()
    return dict(line.split("=", 1) for line in text.splitlines())


def verified_dumps(backup_dir: Path) -> list[str]:
    """The dumps whose .meta names them with their size and sha256 (checked here)."""
    found = []
    for meta in sorted(backup_dir.glob("dump-*.meta")):
        dump = backup_dir / meta.name.replace(".meta", ".sql.gz")
        record = meta_of(backup_dir, dump.name)
        if (
            dump.exists()
            and record.get("file") == dump.name
            and record.get("size") == str(dump.stat().st_size)
            and record.get("sha256") == hashlib.sha256(dump.read_bytes()).hexdigest()
        ):
            found.append(dump.name)
    return found


def lifecycle(mariadb: MariaDB) -> set[tuple[str, ...]]:
    rows = mariadb.sql("SELECT uid, event, detail FROM mysql_operator.lifecycle")
    return {tuple(row.split("\t")) for row in rows.splitlines()}


def leave_half_applied(mariadb: MariaDB, database: str) -> None:
    """The database as a dump applied half-way leaves it: some of its tables, no rows."""
    mariadb.sql(f"DROP DATABASE `{database}`")
    mariadb.sql(f"CREATE DATABASE `{database}`")
    mariadb.sql("CREATE TABLE orders (id INT PRIMARY KEY)", database)


def record(mariadb: MariaDB, uid: str, event: str, detail: str) -> None:
    mariadb.sql(
        LIFECYCLE_TABLE + "INSERT INTO mysql_operator.lifecycle (uid, event, detail) "
        f"VALUES ('{uid}', '{event}', '{detail}')"
    )


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}", pytrace=False)
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processlist(mariadb: MariaDB, where: str) -> list[str]:
    return mariadb.sql(
        f"SELECT id, state FROM information_schema.processlist WHERE {where}"
    ).splitlines()


# -- backup: dumps, records, sequence ------------------------------------------------------


def test_round_trip_of_tricky_data(jobs: Jobs, mariadb: MariaDB, database: str) -> None:
    create_database(mariadb, database)
    before = snapshot(mariadb, database)
    assert "orders_audit" in before["triggers"]
    assert "order_count" in before["routines"]

    backed_up = jobs.backup()

    dump = dump_name(1)
    assert set(files(jobs.backup_dir)) == {dump, "dump-0000000001.meta"}
    assert verified_dumps(jobs.backup_dir) == [dump]
    path = jobs.backup_dir / dump
    size, sha256 = path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()
    version = mariadb.sql("SELECT VERSION()").strip()
    record_ = meta_of(jobs.backup_dir, dump)
    created = record_.pop("created")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created)
    assert record_ == {
        "sequence": "1",
        "file": dump,
        "size": str(size),
        "sha256": sha256,
        "scope": "database",
        "database": database,
        "server_version": version,
        "instance_uid": jobs.uid,
        "final": "false",
        "trigger": "delete",  # the default: what the operator's final backup is
    }
    assert gzip.decompress(path.read_bytes()).splitlines()[-1].startswith(b"-- Dump completed")
    assert backed_up.message == (
        f"dump={dump} sequence=1 size={size} sha256={sha256} server_version={version}"
    )

    mariadb.sql(f"DROP DATABASE `{database}`")
    restored = jobs.restore()

    assert snapshot(mariadb, database) == before
    assert restored.message == f"restored {dump} sequence=1 size={size} sha256={sha256}"
    assert lifecycle(mariadb) == {
        (jobs.uid, "restoring", dump),
        (jobs.uid, "restored", f"{dump} sequence=1 sha256={sha256}"),
    }


def test_the_password_is_only_in_the_environment(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    calls = jobs.stubs / "calls"
    for tool in ("mysql", "mysqldump", "mariadb", "mariadb-dump"):
        real = shutil.which(tool)
        assert real is not None
        # Records each call's command line (on one line), and whether MYSQL_PWD reached it.
        jobs.stub(
            tool,
            f'printf "%s pwd=%s %s" "${{0##*/}}" "${{MYSQL_PWD:+set}}" "$*"'
            f' | tr "\\n" " " >>{calls}\n'
            f"echo >>{calls}\n"
            f'exec {real} "$@"\n',
        )

    jobs.backup(stubs=True, BACKUP_FINAL="true")
    mariadb.sql(f"DROP DATABASE `{database}`")
    jobs.restore(stubs=True)

    lines = calls.read_text().splitlines()
    assert any(line.startswith("mysqldump ") for line in lines)
    assert any(line.startswith("mysql ") and "--execute" not in line for line in lines)
    assert all(" pwd=set " in line for line in lines)
    assert all(mariadb.password not in line for line in lines)


def test_dumps_are_ordered_by_sequence_not_by_the_clock(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    jobs.stub("date", "echo 2099-12-31T23:59:59Z\n")  # a clock far ahead...
    jobs.backup(stubs=True)
    mariadb.sql("INSERT INTO orders (id, customer) VALUES (3, 'newer')", database)
    expected = snapshot(mariadb, database)
    jobs.stub("date", "echo 1999-01-01T00:00:00Z\n")  # ...then far behind
    jobs.backup(stubs=True)

    assert verified_dumps(jobs.backup_dir) == [dump_name(1), dump_name(2)]
    created = [meta_of(jobs.backup_dir, dump_name(n))["created"] for n in (1, 2)]
    assert created == ["2099-12-31T23:59:59Z", "1999-01-01T00:00:00Z"]  # the fakes were used

    mariadb.sql(f"DROP DATABASE `{database}`")
    restored = jobs.restore()

    assert restored.message is not None
    assert restored.message.startswith(f"restored {dump_name(2)} sequence=2 ")
    assert snapshot(mariadb, database) == expected


def test_the_next_sequence_follows_the_largest_existing_one(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    # A record whose dump is gone still holds its sequence; legacy names hold none.
    (jobs.backup_dir / "dump-0000000041.meta").write_text("sequence=41\n")
    legacy = jobs.backup_dir / "dump-20991231T235959Z-999.sql"
    legacy.write_text("-- Dump completed\n")

    backed_up = jobs.backup()

    assert verified_dumps(jobs.backup_dir) == [dump_name(42)]
    assert backed_up.message is not None
    assert backed_up.message.startswith(f"dump={dump_name(42)} sequence=42 ")
    assert legacy.read_text() == "-- Dump completed\n"


# -- backup: rotation ----------------------------------------------------------------------


def test_rotation_keeps_the_newest_verified_dumps(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    legacy = jobs.backup_dir / "dump-20200101T000000Z-000.sql"
    legacy.write_text("-- Dump completed on 2020-01-01\n")

    for _ in range(4):
        jobs.backup(BACKUP_KEEP="2", BACKUP_TRIGGER="schedule")

    assert verified_dumps(jobs.backup_dir) == [dump_name(3), dump_name(4)]
    assert set(files(jobs.backup_dir)) == {
        dump_name(3),
        "dump-0000000003.meta",
        dump_name(4),
        "dump-0000000004.meta",
        legacy.name,  # the previous script's dumps are left alone
    }


def test_only_scheduled_dumps_rotate(jobs: Jobs, mariadb: MariaDB, database: str) -> None:
    create_database(mariadb, database)
    jobs.backup(BACKUP_KEEP="1", BACKUP_TRIGGER="schedule")  # 1
    manual = jobs.backup(BACKUP_KEEP="1", BACKUP_TRIGGER="manual")  # 2
    assert manual.message is not None
    assert manual.message.startswith(f"dump={dump_name(2)} ")
    assert "trigger=manual" in (jobs.backup_dir / "dump-0000000002.meta").read_text()
    jobs.backup(BACKUP_KEEP="1")  # 3: a final dump (trigger delete, the default)
    # Neither the manual nor the final dump removed anything: 1 is still there.
    assert verified_dumps(jobs.backup_dir) == [dump_name(1), dump_name(2), dump_name(3)]
    jobs.backup(BACKUP_KEEP="1", BACKUP_TRIGGER="schedule")  # 4
    # The scheduled rotation counts and removes scheduled dumps only: 1 goes, 2 and 3 stay,
    # and the newest (4) is what a restore reads.
    assert verified_dumps(jobs.backup_dir) == [dump_name(2), dump_name(3), dump_name(4)]
    assert "trigger=delete" in (jobs.backup_dir / "dump-0000000003.meta").read_text()
    assert "trigger=schedule" in (jobs.backup_dir / "dump-0000000004.meta").read_text()


def test_keep_one_keeps_the_dump_just_written(jobs: Jobs, mariadb: MariaDB, database: str) -> None:
    create_database(mariadb, database)
    for n in range(1, 4):
        mariadb.sql(f"INSERT INTO orders (id, customer) VALUES ({10 + n}, 'n')", database)
        backed_up = jobs.backup(BACKUP_KEEP="1", BACKUP_TRIGGER="schedule")
        assert backed_up.message is not None
        assert backed_up.message.startswith(f"dump={dump_name(n)} ")
        assert set(files(jobs.backup_dir)) == {dump_name(n), f"dump-{n:010d}.meta"}
    expected = snapshot(mariadb, database)

    mariadb.sql(f"DROP DATABASE `{database}`")
    jobs.restore()
    assert snapshot(mariadb, database) == expected


def test_unverified_leftovers_are_removed_and_never_counted(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    jobs.backup(BACKUP_TRIGGER="schedule")
    jobs.backup(BACKUP_TRIGGER="schedule")
    # What interrupted runs leave: temporary files, and a dump whose .meta never came.
    (jobs.backup_dir / ".dump-inprogress.3.999").write_bytes(b"partial")
    (jobs.backup_dir / ".meta-inprogress.3.999").write_text("sequence=3\n")
    (jobs.backup_dir / dump_name(3)).write_bytes(gzip.compress(b"-- partial\n"))
    # A .meta that does not match its dump: not verified, so neither counted nor rotated.
    (jobs.backup_dir / dump_name(0)).write_bytes(gzip.compress(b"-- Dump completed\n"))
    (jobs.backup_dir / "dump-0000000000.meta").write_text(f"file={dump_name(0)}\nsize=1\n")

    jobs.backup(BACKUP_KEEP="2", BACKUP_TRIGGER="schedule")

    assert verified_dumps(jobs.backup_dir) == [dump_name(2), dump_name(3)]
    assert set(files(jobs.backup_dir)) == {
        dump_name(0),
        "dump-0000000000.meta",
        dump_name(2),
        "dump-0000000002.meta",
        dump_name(3),
        "dump-0000000003.meta",
    }
    # The new dump 3 is a real one, not the leftover.
    assert b"CREATE TABLE `orders`" in gzip.decompress(
        (jobs.backup_dir / dump_name(3)).read_bytes()
    )


# -- backup: failures ----------------------------------------------------------------------

BROKEN_VIEW = "CREATE TABLE doomed (x INT); CREATE VIEW broken AS SELECT x FROM doomed;"
COMPLETE_LOOKING = "printf -- '-- MySQL dump\\nCREATE TABLE t (x INT);\\n-- Dump completed on x\\n'"


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("wrong password", "cannot query MySQL"),
        ("dump tool exits non-zero", "exited with status 2"),
        ("no trailer", "does not end with the '-- Dump completed' trailer"),
        ("fails midway", "exited with status"),
    ],
)
def test_a_failed_dump_leaves_nothing_verified_and_the_previous_dumps_intact(
    jobs: Jobs, mariadb: MariaDB, database: str, failure: str, reason: str
) -> None:
    create_database(mariadb, database)
    jobs.backup()
    mariadb.sql("INSERT INTO orders (id, customer) VALUES (3, 'second')", database)
    jobs.backup()
    expected = snapshot(mariadb, database)
    previous = files(jobs.backup_dir)
    extra: dict[str, str] = {}
    if failure == "wrong password":
        extra["MYSQL_PWD"] = "wrong-password"
    elif failure == "dump tool exits non-zero":
        jobs.stub("mysqldump", f"{COMPLETE_LOOKING}\nexit 2\n")
    elif failure == "no trailer":
        jobs.stub("mysqldump", "printf -- '-- MySQL dump\\nCREATE TABLE t (x INT);\\n'\n")
    else:
        # A view over a dropped table: mysqldump writes the tables, then fails on the view.
        mariadb.sql(BROKEN_VIEW + "DROP TABLE doomed", database)

    failed = jobs.backup(
        expect=1, stubs=True, env=extra, BACKUP_KEEP="1", BACKUP_TRIGGER="schedule"
    )

    assert failed.message is not None
    assert failed.message.startswith("backup failed: ")
    assert reason in failed.message
    assert "the previous dumps are untouched" in failed.message
    assert f"backup: {failed.message}" in failed.stderr
    # No new file, no temporary file, no rotation: nothing changed.
    assert files(jobs.backup_dir) == previous
    mariadb.sql(f"DROP DATABASE `{database}`")
    restored = jobs.restore()
    assert restored.message is not None
    assert restored.message.startswith(f"restored {dump_name(2)} ")
    assert snapshot(mariadb, database) == expected


def test_a_dump_that_cannot_be_written_fails_saying_why_and_leaves_nothing_verified(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    """A full volume: the tee that writes the file reports the failed write and, as GNU
    tee does, keeps feeding the hash until the end; the backup fails with tee's message,
    not with a broken pipe of the tools upstream."""
    create_database(mariadb, database)
    jobs.backup()
    previous = files(jobs.backup_dir)
    real_tee = shutil.which("tee")
    assert real_tee is not None
    # Only the file's write fails; the tee before gzip is the real one.
    jobs.stub(
        "tee",
        "case $1 in */.dump-inprogress.*) ;; *) exec " + real_tee + ' "$@" ;; esac\n'
        "printf 'tee: %s: No space left on device\\n' \"$1\" >&2\ncat\nexit 1\n",
    )

    failed = jobs.backup(expect=1, stubs=True)

    assert failed.message is not None
    assert failed.message.startswith(
        "backup failed: writing the dump failed (tee exited with status 1): tee: "
    )
    assert failed.message.endswith("No space left on device; the previous dumps are untouched")
    assert files(jobs.backup_dir) == previous


def test_the_idle_watchdog_kills_a_stuck_dump(jobs: Jobs, mariadb: MariaDB, database: str) -> None:
    create_database(mariadb, database)
    jobs.backup()
    previous = files(jobs.backup_dir)
    pid_file = jobs.stubs / "dump.pid"
    # Writes a little, then hangs (like a dump stuck on a lock or a dead connection).
    jobs.stub("mysqldump", f"echo $$ >{pid_file}\nprintf -- '-- MySQL dump\\n'\nexec sleep 300\n")

    failed = jobs.backup(expect=1, stubs=True, BACKUP_IDLE_TIMEOUT_SECONDS="2")

    assert failed.message is not None
    assert failed.message.startswith("backup failed: the dump made no progress for 2s")
    assert "watchdog killed it" in failed.message
    assert files(jobs.backup_dir) == previous
    stuck = int(pid_file.read_text())
    wait_until("the stuck dump to be gone", lambda: not alive(stuck))


def test_a_backup_ended_by_a_signal_leaves_nothing_verified(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    jobs.backup()
    previous = files(jobs.backup_dir)
    pid_file = jobs.stubs / "dump.pid"
    jobs.stub("mysqldump", f"echo $$ >{pid_file}\nprintf -- '-- MySQL dump\\n'\nexec sleep 300\n")
    backup = jobs.start("backup.sh")
    try:
        wait_until("the dump to start", pid_file.exists)
        wait_until("a partial dump", lambda: len(files(jobs.backup_dir)) > len(previous))
        backup.terminate()  # what the Job's deadline does
        _, stderr = backup.communicate(timeout=WAIT_S)
    finally:
        if backup.poll() is None:
            backup.kill()
            backup.communicate()

    assert backup.returncode == 1, stderr
    assert (
        jobs.message() == "backup failed: interrupted by a signal; the previous dumps are untouched"
    )
    assert files(jobs.backup_dir) == previous
    stuck = int(pid_file.read_text())
    wait_until("the dump to be gone", lambda: not alive(stuck))


# -- backup: the final dump ----------------------------------------------------------------


def test_a_final_backup_kills_the_other_client_connections(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    sleeper = subprocess.Popen(
        mariadb.client("SELECT SLEEP(60)"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sleeping = "info = 'SELECT SLEEP(60)'"
        wait_until("the sleeping session", lambda: len(processlist(mariadb, sleeping)) == 1)

        routine = jobs.backup()  # not final: other sessions are left alone
        assert "killed" not in routine.stderr
        assert sleeper.poll() is None
        assert len(processlist(mariadb, sleeping)) == 1

        final = jobs.backup(BACKUP_FINAL="true")

        killed = re.search(r"backup: final dump: killed (\d+) client connections", final.stderr)
        assert killed is not None, final.stderr
        assert int(killed.group(1)) >= 1
        assert sleeper.wait(timeout=WAIT_S) != 0
        assert processlist(mariadb, sleeping) == []
        assert meta_of(jobs.backup_dir, dump_name(2))["final"] == "true"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_write_during_the_final_dump_is_not_acknowledged_before_it_ends(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    # Enough data that mysqldump blocks on its full output pipe while a gate holds it.
    mariadb.sql(
        "CREATE TABLE big (id INT PRIMARY KEY, filler VARCHAR(2000));"
        "INSERT INTO big WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < 1000) SELECT i, REPEAT('x', 2000) FROM n;"
        "CREATE TABLE probe (x INT);",
        database,
    )
    gate = jobs.stubs / "gate"
    gate.mkdir()
    real = shutil.which("mysqldump")
    # The real mysqldump, whose output is held until the test opens the gate.
    jobs.stub(
        "mysqldump",
        f"touch {gate}/started\n"
        f'{{ {real} "$@"; echo $? >{gate}/status; }} |'
        f" {{ while [ ! -e {gate}/open ]; do sleep 0.1; done; cat; }}\n"
        f'exit "$(cat {gate}/status)"\n',
    )
    backup = jobs.start("backup.sh", BACKUP_FINAL="true")
    writer: subprocess.Popen[str] | None = None
    try:
        wait_until("the final dump to start", (gate / "started").exists)

        def writes_blocked() -> bool:
            try:
                mariadb.sql(
                    "SET SESSION lock_wait_timeout = 1; INSERT INTO probe VALUES (1)", database
                )
            except SQLError as error:
                if "Lock wait timeout" not in str(error):
                    raise
                return True
            return False

        wait_until("the dump's global read lock", writes_blocked)
        writer = subprocess.Popen(
            mariadb.client(
                "INSERT INTO orders (id, customer) VALUES (42, 'written during the dump')",
                database,
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        waiting = "info LIKE 'INSERT INTO orders%' AND state LIKE '%lock%'"
        wait_until("the write to wait for the lock", lambda: bool(processlist(mariadb, waiting)))
        assert writer.poll() is None  # not acknowledged while the dump runs
        assert backup.poll() is None

        (gate / "open").touch()
        _, stderr = backup.communicate(timeout=RUN_TIMEOUT_S)
        assert backup.returncode == 0, stderr
        _, writer_error = writer.communicate(timeout=WAIT_S)
        assert writer.returncode == 0, writer_error  # acknowledged only after the dump
    finally:
        (gate / "open").touch()
        for process in (backup, writer):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()

    assert verified_dumps(jobs.backup_dir) == [dump_name(1)]
    dumped = gzip.decompress((jobs.backup_dir / dump_name(1)).read_bytes())
    assert b"written during the dump" not in dumped
    assert "42" in mariadb.sql("SELECT id FROM orders WHERE id = 42", database)


# -- restore -------------------------------------------------------------------------------


def test_restore_applies_the_newest_dump(jobs: Jobs, mariadb: MariaDB, database: str) -> None:
    create_database(mariadb, database)
    jobs.backup()
    mariadb.sql("INSERT INTO orders (id, customer) VALUES (3, 'later')", database)
    jobs.backup()
    expected = snapshot(mariadb, database)
    # A newer dump without its .meta (an interrupted backup) is not a dump to restore.
    (jobs.backup_dir / dump_name(3)).write_bytes(gzip.compress(b"-- Dump completed\n"))

    mariadb.sql(f"DROP DATABASE `{database}`")
    restored = jobs.restore()

    assert restored.message is not None
    assert restored.message.startswith(f"restored {dump_name(2)} sequence=2 ")
    assert snapshot(mariadb, database) == expected


def test_restore_of_a_named_dump(jobs: Jobs, mariadb: MariaDB, database: str) -> None:
    create_database(mariadb, database)
    jobs.backup()
    expected = snapshot(mariadb, database)
    mariadb.sql("INSERT INTO orders (id, customer) VALUES (3, 'later')", database)
    jobs.backup()

    mariadb.sql(f"DROP DATABASE `{database}`")
    restored = jobs.restore(RESTORE_SOURCE=dump_name(1))

    assert restored.message is not None
    assert restored.message.startswith(f"restored {dump_name(1)} sequence=1 ")
    assert snapshot(mariadb, database) == expected


def test_restore_of_a_missing_named_dump_fails(jobs: Jobs, mariadb: MariaDB, database: str) -> None:
    create_database(mariadb, database)
    jobs.backup()
    mariadb.sql(f"DROP DATABASE `{database}`")

    failed = jobs.restore(expect=4, RESTORE_SOURCE=dump_name(9))

    assert failed.message == f"dump {dump_name(9)} not found"
    assert database not in mariadb.sql("SHOW DATABASES")


@pytest.mark.parametrize("scope", ["database", "all"])
def test_restore_refuses_a_target_with_tables_it_did_not_restore(
    jobs: Jobs, mariadb: MariaDB, database: str, scope: str
) -> None:
    create_database(mariadb, database)
    jobs.backup()
    mariadb.sql("INSERT INTO orders (id, customer) VALUES (99, 'not in any dump')", database)
    current = snapshot(mariadb, database)

    refused = jobs.restore(expect=3, BACKUP_SCOPE=scope)

    where = f"database '{database}'" if scope == "database" else f"schemas {database}"
    assert refused.message == (
        f"target not empty: 2 tables in {where} that the operator did not restore; "
        "refusing to overwrite or to serve them"
    )
    assert snapshot(mariadb, database) == current
    assert "mysql_operator" not in mariadb.sql("SHOW DATABASES")


def test_restore_keeps_the_data_of_an_earlier_lifetime(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    jobs.backup()
    mariadb.sql("INSERT INTO orders (id, customer) VALUES (99, 'newer than the dump')", database)
    current = snapshot(mariadb, database)
    # The volume outlived an earlier lifetime of this instance, which left its record.
    record(mariadb, "earlier-uid", "restored", f"{dump_name(1)} sequence=1 sha256=x")

    kept = jobs.restore()

    assert kept.message == "kept existing data of lifetime earlier-uid"
    assert snapshot(mariadb, database) == current
    assert (jobs.uid, "kept", "data from lifetime earlier-uid") in lifecycle(mariadb)
    again = jobs.restore()
    assert again.message == "already done: kept data from lifetime earlier-uid"


def test_an_earlier_lifetime_cut_off_while_restoring_gets_its_dump_applied_again(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    expected = snapshot(mariadb, database)
    jobs.backup()
    # An earlier lifetime's restore of dump 1 died half-way (its namespace was deleted,
    # say) and its volume was adopted: some tables, and that lifetime's `restoring` row.
    leave_half_applied(mariadb, database)
    record(mariadb, "earlier-uid", "restoring", dump_name(1))

    restored = jobs.restore()

    assert restored.message is not None
    assert restored.message.startswith(f"restored {dump_name(1)} sequence=1 "), restored
    assert "lifetime earlier-uid was interrupted" in restored.stderr
    assert snapshot(mariadb, database) == expected
    rows = lifecycle(mariadb)
    assert (jobs.uid, "restoring", dump_name(1)) in rows
    assert not any(row[0] == jobs.uid and row[1] == "kept" for row in rows)
    again = jobs.restore()
    assert again.message is not None
    assert again.message.startswith("already done: restored ")


def test_an_earlier_lifetime_cut_off_while_restoring_a_missing_dump_is_refused(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    mariadb.sql(f"CREATE DATABASE `{database}`")
    mariadb.sql("CREATE TABLE orders (id INT PRIMARY KEY)", database)
    tables = mariadb.sql("SHOW TABLES", database)
    record(mariadb, "earlier-uid", "restoring", dump_name(7))

    refused = jobs.restore(expect=4)

    assert refused.message == f"dump {dump_name(7)} not found"
    assert mariadb.sql("SHOW TABLES", database) == tables
    assert not any(row[0] == jobs.uid for row in lifecycle(mariadb))


def test_the_gated_readiness_probe_passes_only_after_this_lifetimes_restore(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    # The server's own probe (manifests.py), run as the kubelet runs it: `sh -c`, with the
    # root password in the environment; MYSQL_TCP_PORT points the client at this server.
    probe = manifests.gated_readiness_command(jobs.uid)
    env = {
        "PATH": os.environ["PATH"],
        "MYSQL_ROOT_PASSWORD": mariadb.password,
        "MYSQL_TCP_PORT": str(mariadb.port),
    }

    def ready() -> bool:
        done = subprocess.run(["sh", "-c", probe], env=env, capture_output=True, timeout=30)
        return done.returncode == 0

    create_database(mariadb, database)
    jobs.backup()
    mariadb.sql(f"DROP DATABASE `{database}`")
    record(mariadb, "earlier-uid", "restored", f"{dump_name(1)} sequence=1 sha256=x")
    record(mariadb, jobs.uid, "restoring", dump_name(1))
    assert not ready(), "another lifetime's end, or this one's start, is not this restore's end"

    restored = jobs.restore()

    assert restored.message is not None
    assert restored.message.startswith(f"restored {dump_name(1)} ")
    assert ready()
    env["MYSQL_ROOT_PASSWORD"] = "not-the-password"
    assert not ready(), "a server that does not answer is not ready"


def test_a_retried_restore_is_already_done(jobs: Jobs, mariadb: MariaDB, database: str) -> None:
    create_database(mariadb, database)
    jobs.backup()
    mariadb.sql(f"DROP DATABASE `{database}`")
    first = jobs.restore()
    assert first.message is not None
    mariadb.sql(
        "INSERT INTO orders (id, customer) VALUES (99, 'written after the restore')", database
    )
    current = snapshot(mariadb, database)
    rows = lifecycle(mariadb)

    again = jobs.restore()

    sha256 = meta_of(jobs.backup_dir, dump_name(1))["sha256"]
    assert again.message == f"already done: restored {dump_name(1)} sequence=1 sha256={sha256}"
    assert snapshot(mariadb, database) == current
    assert lifecycle(mariadb) == rows


def test_an_interrupted_restore_is_applied_again(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    expected = snapshot(mariadb, database)
    jobs.backup()
    mariadb.sql("INSERT INTO orders (id, customer) VALUES (3, 'later')", database)
    jobs.backup()
    # What a restore of dump 1 that died half-way leaves: some tables, and its record.
    leave_half_applied(mariadb, database)
    record(mariadb, jobs.uid, "restoring", dump_name(1))

    restored = jobs.restore()

    assert restored.message is not None
    assert restored.message.startswith(f"restored {dump_name(1)} sequence=1 ")
    assert snapshot(mariadb, database) == expected


def test_a_stuck_restore_is_killed_and_applied_again_by_the_retry(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    expected = snapshot(mariadb, database)
    jobs.backup()
    mariadb.sql(f"DROP DATABASE `{database}`")
    real = shutil.which("mysql")
    # Queries pass through; the client that applies the dump hangs without reading.
    jobs.stub(
        "mysql",
        f'for arg; do case $arg in --execute=*) exec {real} "$@" ;; esac; done\nexec sleep 300\n',
    )

    stuck = jobs.restore(expect=1, stubs=True, RESTORE_IDLE_TIMEOUT_SECONDS="2")

    assert stuck.message is not None
    assert stuck.message.startswith(f"restore failed: applying {dump_name(1)} made no progress")
    assert "watchdog" in stuck.message
    assert lifecycle(mariadb) == {(jobs.uid, "restoring", dump_name(1))}

    retried = jobs.restore()

    assert retried.message is not None
    assert retried.message.startswith(f"restored {dump_name(1)} sequence=1 ")
    assert snapshot(mariadb, database) == expected


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "no trailer", "no record"])
def test_restore_refuses_a_corrupt_dump(
    jobs: Jobs, mariadb: MariaDB, database: str, damage: str
) -> None:
    create_database(mariadb, database)
    jobs.backup()
    mariadb.sql(f"DROP DATABASE `{database}`")
    dump = jobs.backup_dir / dump_name(1)
    meta = jobs.backup_dir / "dump-0000000001.meta"
    data = dump.read_bytes()
    extra: dict[str, str] = {}
    if damage == "truncated":
        dump.write_bytes(data[: len(data) // 2])
        problem = f"size is {len(data) // 2} bytes, {meta.name} says {len(data)}"
    elif damage == "flipped byte":
        middle = len(data) // 2
        dump.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
        problem = "sha256 is "
    elif damage == "no trailer":
        # Consistent with its .meta, but the dump itself ends early.
        lines = gzip.decompress(data).splitlines(keepends=True)
        damaged = gzip.compress(b"".join(lines[: len(lines) // 2]))
        dump.write_bytes(damaged)
        text = meta.read_text()
        text = text.replace(f"size={len(data)}", f"size={len(damaged)}")
        text = text.replace(hashlib.sha256(data).hexdigest(), hashlib.sha256(damaged).hexdigest())
        meta.write_text(text)
        problem = "it does not end with the '-- Dump completed' trailer"
    else:
        meta.unlink()
        extra["RESTORE_SOURCE"] = dump.name
        problem = f"it has no verification record {meta.name}"

    refused = jobs.restore(expect=4, env=extra)

    assert refused.message is not None
    assert refused.message.startswith(f"dump {dump.name} is corrupt: {problem}")
    assert database not in mariadb.sql("SHOW DATABASES")
    assert "mysql_operator" not in mariadb.sql("SHOW DATABASES")


def test_a_dump_checked_by_the_download_is_applied_without_a_second_decompression(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    """RESTORE_STREAM_CHECKED: the Job's download decompressed the dump and wrote its last
    line into the .meta; size and sha256 are still checked here."""
    create_database(mariadb, database)
    jobs.backup()
    expected = snapshot(mariadb, database)
    mariadb.sql(f"DROP DATABASE `{database}`")
    meta = jobs.backup_dir / "dump-0000000001.meta"
    dump = jobs.backup_dir / dump_name(1)
    last_line = gzip.decompress(dump.read_bytes()).splitlines()[-1].decode()
    text = meta.read_text()
    checked = {"RESTORE_STREAM_CHECKED": "true"}

    # Without the download's record of the trailer, nothing is applied.
    refused = jobs.restore(expect=4, env=checked)
    assert refused.message == (
        f"dump {dump.name} is corrupt: {meta.name} has no trailer from the download's check"
    )
    meta.write_text(text + "trailer=-- not the end\n")
    refused = jobs.restore(expect=4, env=checked)
    assert refused.message is not None
    assert refused.message.endswith("does not end with the '-- Dump completed' trailer")
    # The hash is still checked.
    meta.write_text(text.replace("sha256=", "sha256=0") + f"trailer={last_line}\n")
    refused = jobs.restore(expect=4, env=checked)
    assert refused.message is not None
    assert refused.message.startswith(f"dump {dump.name} is corrupt: sha256 is ")
    assert database not in mariadb.sql("SHOW DATABASES")

    meta.write_text(text + f"trailer={last_line}\n")
    restored = jobs.restore(env=checked)

    assert restored.message is not None
    assert restored.message.startswith(f"restored {dump.name} sequence=1 ")
    assert snapshot(mariadb, database) == expected


def test_restore_stream_checked_must_be_true_or_false(jobs: Jobs) -> None:
    refused = jobs.restore(expect=2, env={"RESTORE_STREAM_CHECKED": "yes"})
    assert refused.message == (
        "restore failed: bad configuration: "
        "RESTORE_STREAM_CHECKED must be 'true' or 'false', got 'yes'"
    )


def test_restore_without_a_dump_starts_empty(jobs: Jobs, mariadb: MariaDB, database: str) -> None:
    started = jobs.restore()

    assert started.message == "no dump; starting empty"
    assert database not in mariadb.sql("SHOW DATABASES")
    assert lifecycle(mariadb) == {(jobs.uid, "initialized", "no dump found")}
    # A dump that appears later is not applied to this lifetime.
    create_database(mariadb, database)
    jobs.backup()
    mariadb.sql(f"DROP DATABASE `{database}`")
    again = jobs.restore()
    assert again.message == "already done: initialized no dump found"
    assert database not in mariadb.sql("SHOW DATABASES")


def test_restore_of_legacy_dumps(jobs: Jobs, mariadb: MariaDB, database: str) -> None:
    older = jobs.backup_dir / "dump-20240101T000000Z-000.sql"
    newer = jobs.backup_dir / "dump-20240101T000000Z-001.sql"
    older.write_text(
        "CREATE TABLE legacy (id INT);\nINSERT INTO legacy VALUES (1);\n-- Dump completed\n"
    )
    newer.write_text(
        "CREATE TABLE legacy (id INT);\nINSERT INTO legacy VALUES (2);\n-- Dump completed\n"
    )

    restored = jobs.restore()

    sha256 = hashlib.sha256(newer.read_bytes()).hexdigest()
    size = newer.stat().st_size
    assert restored.message == f"restored {newer.name} sequence=legacy size={size} sha256={sha256}"
    assert mariadb.sql("SELECT id FROM legacy", database) == "2\n"

    # A verified dump wins over legacy ones; a legacy one without its trailer is refused.
    mariadb.sql(f"DROP DATABASE `{database}`; DROP DATABASE mysql_operator")
    jobs.uid = str(uuid.uuid4())
    create_database(mariadb, database)
    jobs.backup()
    mariadb.sql(f"DROP DATABASE `{database}`")
    restored = jobs.restore()
    assert restored.message is not None
    assert restored.message.startswith(f"restored {dump_name(1)} sequence=1 ")
    assert table_count(mariadb, database) == 2

    (jobs.backup_dir / dump_name(1)).unlink()
    (jobs.backup_dir / "dump-0000000001.meta").unlink()
    newer.write_text("CREATE TABLE legacy (id INT);\n")
    mariadb.sql(f"DROP DATABASE `{database}`; DROP DATABASE mysql_operator")
    jobs.uid = str(uuid.uuid4())
    refused = jobs.restore(expect=4)
    assert refused.message == (
        f"dump {newer.name} is corrupt: it does not end with the '-- Dump completed' trailer"
    )


def test_restore_fails_when_mysql_never_answers(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    jobs.backup()

    failed = jobs.restore(expect=1, MYSQL_PORT="1", RESTORE_WAIT_SECONDS="2")

    assert failed.message is not None
    assert failed.message.startswith(
        f"restore failed: MySQL at {mariadb.host}:1 did not answer in 2s"
    )
    assert f"restore: {failed.message}" in failed.stderr


# -- BACKUP_SCOPE=all ----------------------------------------------------------------------


def test_scope_all_round_trips_schemas_users_and_grants(jobs: Jobs, mariadb: MariaDB) -> None:
    suffix = uuid.uuid4().hex[:8]
    shop, ledger, app = f"shop-{suffix}", f"ledger-{suffix}", f"app_{suffix}"
    try:
        create_database(mariadb, shop)
        mariadb.sql(f"CREATE DATABASE `{ledger}`")
        mariadb.sql(
            "CREATE TABLE entries (id INT PRIMARY KEY, amount DECIMAL(10, 2));"
            "INSERT INTO entries VALUES (1, 12.50), (2, -3.25)",
            ledger,
        )
        mariadb.sql(
            f"CREATE USER '{app}'@'%' IDENTIFIED BY 'app-pw';"
            f"GRANT SELECT ON `{shop}`.* TO '{app}'@'%'"
        )
        # A record of an earlier lifetime: never part of a dump.
        record(mariadb, "earlier-uid", "restored", "whatever")
        shop_before = snapshot(mariadb, shop)
        ledger_before = mariadb.sql("SELECT * FROM entries ORDER BY id", ledger)
        grants_before = mariadb.sql(f"SHOW GRANTS FOR '{app}'@'%'")

        backed_up = jobs.backup(BACKUP_SCOPE="all")
        assert meta_of(jobs.backup_dir, dump_name(1))["scope"] == "all"
        assert backed_up.message is not None

        mariadb.sql(
            f"DROP DATABASE `{shop}`; DROP DATABASE `{ledger}`; DROP USER '{app}'@'%';"
            "DROP DATABASE mysql_operator"
        )
        restored = jobs.restore(BACKUP_SCOPE="all")

        assert restored.message is not None
        assert restored.message.startswith(f"restored {dump_name(1)} sequence=1 ")
        assert snapshot(mariadb, shop) == shop_before
        assert mariadb.sql("SELECT * FROM entries ORDER BY id", ledger) == ledger_before
        assert mariadb.sql(f"SHOW GRANTS FOR '{app}'@'%'") == grants_before
        # The user logs in with its password and uses its grant.
        login = subprocess.run(
            [
                "mariadb",
                "--no-defaults",
                "--protocol=TCP",
                f"--host={mariadb.host}",
                f"--port={mariadb.port}",
                f"--user={app}",
                "--batch",
                "--skip-column-names",
                f"--execute=SELECT COUNT(*) FROM `{shop}`.orders",
            ],
            env={"PATH": os.environ["PATH"], "MYSQL_PWD": "app-pw"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert login.returncode == 0, login.stderr
        assert login.stdout == "2\n"
        assert {row[0] for row in lifecycle(mariadb)} == {jobs.uid}
    finally:
        mariadb.sql(
            f"DROP DATABASE IF EXISTS `{shop}`; DROP DATABASE IF EXISTS `{ledger}`;"
            f"DROP USER IF EXISTS '{app}'@'%'"
        )


# -- configuration and the termination log -------------------------------------------------


@pytest.mark.parametrize(
    ("script", "setting", "reason"),
    [
        ("backup.sh", {"MYSQL_DATABASE": "--all-databases"}, "refusing database name"),
        ("restore.sh", {"MYSQL_DATABASE": "--all-databases"}, "refusing database name"),
        ("backup.sh", {"MYSQL_DATABASE": "a;b"}, "refusing database name"),
        ("backup.sh", {"BACKUP_KEEP": "0"}, "BACKUP_KEEP must be a positive integer"),
        ("backup.sh", {"BACKUP_KEEP": "two"}, "BACKUP_KEEP must be a positive integer"),
        ("backup.sh", {"BACKUP_SCOPE": "everything"}, "BACKUP_SCOPE must be"),
        ("backup.sh", {"BACKUP_TRIGGER": "cron"}, "BACKUP_TRIGGER must be 'delete', 'manual'"),
        ("backup.sh", {"BACKUP_DIR": "/nonexistent"}, "backup directory /nonexistent does not"),
        ("restore.sh", {"INSTANCE_UID": ""}, "INSTANCE_UID is required"),
        ("restore.sh", {"RESTORE_SOURCE": "../dump-1.sql.gz"}, "refusing RESTORE_SOURCE"),
    ],
)
def test_bad_configuration_is_refused(
    jobs: Jobs, mariadb: MariaDB, script: str, setting: dict[str, str], reason: str
) -> None:
    (jobs.backup_dir / "dump-20000101T000000Z-000.sql").write_text("-- Dump completed\n")
    before = files(jobs.backup_dir)

    refused = jobs.run(script, env=setting)

    assert refused.returncode == 2, refused.stderr
    assert refused.message is not None
    prefix = script.removesuffix(".sh")
    assert refused.message.startswith(f"{prefix} failed: bad configuration: {reason}")
    assert f"{prefix}: {refused.message}" in refused.stderr
    assert files(jobs.backup_dir) == before
    assert "mysql_operator" not in mariadb.sql("SHOW DATABASES")


def test_without_a_termination_log_or_tmp_the_scripts_still_work(
    jobs: Jobs, mariadb: MariaDB, database: str
) -> None:
    create_database(mariadb, database)
    # Outside a pod (no /dev/termination-log), or with no writable /tmp: scratch space
    # then comes from the backup volume, and is cleaned up.
    hostile = {"TERMINATION_LOG": "/nonexistent-dir/termination-log", "TMPDIR": "/nonexistent"}

    backed_up = jobs.backup(env=hostile)
    mariadb.sql(f"DROP DATABASE `{database}`")
    restored = jobs.restore(env=hostile)

    assert backed_up.message is None
    assert restored.message is None
    assert "cannot create" not in backed_up.stderr + restored.stderr
    assert set(files(jobs.backup_dir)) == {dump_name(1), "dump-0000000001.meta"}
    assert verified_dumps(jobs.backup_dir) == [dump_name(1)]
    assert table_count(mariadb, database) == 2
