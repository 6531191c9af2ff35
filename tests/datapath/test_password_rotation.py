"""rotate-password.sh against a real MariaDB server, run by dash as the rotation Job runs
it: over TCP, with both passwords only in the environment.

The server is this module's own: the script changes every root account, which the
shared server's socket access relies on. Each test starts from FIRST_PASSWORD.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from bench.mariadb import MariaDB, ServerError, find_tool, free_loopback_port, running_server
from reconciler import manifests

pytestmark = pytest.mark.datapath

FIRST_PASSWORD: Final = "first-password"
# Quotes, backslashes, a dollar sign, a newline (and a trailing one), and non-ASCII.
TRICKY_PASSWORD: Final = "q'uo\"te \\back\\slash $HOME `id`\nnext line é\n"
RUN_TIMEOUT_S: Final = 120.0


@dataclass
class Server:
    mariadb: MariaDB
    password: str  # what root has now
    user: str = "root"

    def accepts(self, password: str) -> bool:
        done = subprocess.run(
            self.mariadb.over_tcp("mariadb", "--batch", "--execute=SELECT 1"),
            env={"PATH": os.environ["PATH"], "MYSQL_PWD": password},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.returncode == 0

    def query(self, statement: str) -> str:
        done = subprocess.run(
            [
                *self.mariadb.over_tcp("mariadb", "--batch", "--skip-column-names"),
                f"--user={self.user}",
            ],
            input=statement,
            env={"PATH": os.environ["PATH"], "MYSQL_PWD": self.password},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, f"{statement!r}: {done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    try:
        with running_server(tmp_path_factory.mktemp("rotation"), FIRST_PASSWORD) as instance:
            # Root over TCP from anywhere, as the images create it.
            instance.sql(
                f"CREATE OR REPLACE USER 'root'@'%' IDENTIFIED BY '{FIRST_PASSWORD}';"
                "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;"
                f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{FIRST_PASSWORD}';"
            )
            yield instance
    except ServerError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def server(mariadb: MariaDB) -> Iterator[Server]:
    found = Server(mariadb, FIRST_PASSWORD)
    assert found.accepts(FIRST_PASSWORD), "every test starts from the first password"
    yield found
    if found.password != FIRST_PASSWORD:
        # Back to the first password, by the script itself.
        back = rotate(found, old=found.password, new=FIRST_PASSWORD, tmp=mariadb.socket.parent)
        assert back.returncode == 0, back.stderr


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stderr: str
    message: str | None


def rotate(
    server: Server,
    *,
    old: str,
    new: str,
    tmp: Path,
    port: int | None = None,
    path_first: Path | None = None,
    wait_s: int = 10,
) -> Outcome:
    log = tmp / "termination-log"
    log.unlink(missing_ok=True)
    path = os.environ["PATH"] if path_first is None else f"{path_first}:{os.environ['PATH']}"
    done = subprocess.run(
        ["dash", "-c", manifests.rotation_script()],
        env={
            "PATH": path,
            "MYSQL_HOST": server.mariadb.host,
            "MYSQL_PORT": str(port or server.mariadb.port),
            "OLD_PASSWORD": old,
            "NEW_PASSWORD": new,
            "TERMINATION_LOG": str(log),
            "ROTATE_WAIT_SECONDS": str(wait_s),
        },
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if done.returncode == 0:
        server.password = new
    message = log.read_text().strip() if log.exists() else None
    return Outcome(done.returncode, done.stderr, message)


def test_every_root_account_gets_a_tricky_password_and_the_data_stays(
    server: Server, tmp_path: Path
) -> None:
    server.query(
        "CREATE DATABASE IF NOT EXISTS shop; CREATE TABLE IF NOT EXISTS shop.orders (id INT);"
        "DELETE FROM shop.orders; INSERT INTO shop.orders VALUES (1), (2), (3);"
    )
    outcome = rotate(server, old=FIRST_PASSWORD, new=TRICKY_PASSWORD, tmp=tmp_path)
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.message is not None
    assert outcome.message.startswith("rotated: ")
    assert not server.accepts(FIRST_PASSWORD)
    assert server.accepts(TRICKY_PASSWORD)
    assert server.query("SELECT id FROM shop.orders ORDER BY id").split() == ["1", "2", "3"]
    # Every account the server uses, not only the one this client matches, has the new
    # password (install-db's root@<host name> is one the server ignores: no plugin).
    hashes = server.query(
        "SELECT COUNT(*), COUNT(DISTINCT authentication_string) FROM mysql.user "
        "WHERE user = 'root' AND plugin <> ''"
    )
    accounts, distinct = hashes.split()
    assert int(accounts) >= 3  # localhost, 127.0.0.1 and %, at least
    assert distinct == "1"
    assert outcome.message.startswith(f"rotated: {accounts} root account(s)")


def test_a_rotation_run_again_after_it_succeeded_succeeds(server: Server, tmp_path: Path) -> None:
    first = rotate(server, old=FIRST_PASSWORD, new="second-password", tmp=tmp_path)
    assert first.returncode == 0, first.stderr
    again = rotate(server, old=FIRST_PASSWORD, new="second-password", tmp=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.message == "rotated: the server already had the new password"
    assert server.accepts("second-password")


def test_a_server_that_refuses_both_passwords_fails_at_once(server: Server, tmp_path: Path) -> None:
    outcome = rotate(server, old="not-this", new="nor-this", tmp=tmp_path, wait_s=600)
    assert outcome.returncode == 3
    assert outcome.message is not None
    assert "accepts neither the applied nor the new root password" in outcome.message
    assert server.accepts(FIRST_PASSWORD)


def test_a_server_that_does_not_answer_fails_after_the_wait(server: Server, tmp_path: Path) -> None:
    outcome = rotate(
        server, old=FIRST_PASSWORD, new="x", tmp=tmp_path, port=free_loopback_port(), wait_s=3
    )
    assert outcome.returncode == 1
    assert outcome.message is not None
    assert outcome.message.startswith("failed: the server at 127.0.0.1:")
    assert "did not answer within 3s" in outcome.message
    assert server.accepts(FIRST_PASSWORD)


def _client_stub(folder: Path, body: str) -> Path:
    """A `mysql` first on the PATH that runs `body`, then the real client."""
    real = find_tool("mariadb")
    assert real is not None
    folder.mkdir()
    stub = folder / "mysql"
    stub.write_text(f'#!/bin/sh\n{body}\nexec {real} "$@"\n')
    stub.chmod(0o755)
    return folder


def test_the_passwords_never_reach_a_command_line(server: Server, tmp_path: Path) -> None:
    argv_log = tmp_path / "argv"
    stubs = _client_stub(tmp_path / "stubs", f'printf "%s\\n" "$*" >> {argv_log}')
    outcome = rotate(
        server, old=FIRST_PASSWORD, new=TRICKY_PASSWORD, tmp=tmp_path, path_first=stubs
    )
    assert outcome.returncode == 0, outcome.stderr
    seen = argv_log.read_text()
    assert "--user=root" in seen  # the stub did see the client's command lines
    for secret in (FIRST_PASSWORD, "back", "uo"):
        assert secret not in seen


def test_a_new_password_that_then_fails_is_rolled_back(server: Server, tmp_path: Path) -> None:
    # After the ALTER USER went through, the verifying connection is refused.
    marker = tmp_path / "altered"
    stubs = _client_stub(
        tmp_path / "stubs",
        f"input=$(cat)\n"
        f'case "$input" in *"ALTER USER"*) touch {marker} ;; esac\n'
        f'if [ -e {marker} ] && [ "$input" = "SELECT 1" ] && [ "$MYSQL_PWD" = "new-one" ]; then\n'
        f'  echo "ERROR 2013 (HY000): Lost connection (stand-in)" >&2; exit 1\nfi\n'
        f'printf "%s\\n" "$input" | {find_tool("mariadb")} "$@"; exit $?',
    )
    outcome = rotate(server, old=FIRST_PASSWORD, new="new-one", tmp=tmp_path, path_first=stubs)
    assert outcome.returncode == 1
    assert outcome.message is not None
    assert "the old password is back" in outcome.message
    assert "Lost connection (stand-in)" in outcome.message
    assert server.accepts(FIRST_PASSWORD)
    assert not server.accepts("new-one")


def test_a_refused_alter_user_puts_the_old_password_back(server: Server, tmp_path: Path) -> None:
    # Without CREATE USER and UPDATE, root may change its own account's password and no
    # other: one ALTER USER goes through, the others are refused, and every account gets
    # the old password back. A helper account takes the privileges away and gives them back.
    helper = "rotation-helper"
    server.query(
        f"CREATE OR REPLACE USER '{helper}'@'127.0.0.1' IDENTIFIED BY '{FIRST_PASSWORD}';"
        f"GRANT ALL ON *.* TO '{helper}'@'127.0.0.1' WITH GRANT OPTION;"
    )
    as_helper = Server(server.mariadb, FIRST_PASSWORD, user=helper)
    as_helper.query("REVOKE CREATE USER, UPDATE ON *.* FROM 'root'@'127.0.0.1'")
    try:
        outcome = rotate(server, old=FIRST_PASSWORD, new="never-applied", tmp=tmp_path)
    finally:
        as_helper.query("GRANT CREATE USER, UPDATE ON *.* TO 'root'@'127.0.0.1'")
    assert outcome.returncode == 1
    assert outcome.message is not None
    assert outcome.message.startswith("failed: ALTER USER failed, the old password is back: ")
    assert "ERROR 1227" in outcome.message
    assert server.accepts(FIRST_PASSWORD)
    assert not server.accepts("never-applied")
    hashes = server.query(
        "SELECT COUNT(DISTINCT authentication_string) FROM mysql.user "
        "WHERE user = 'root' AND plugin <> ''"
    )
    assert hashes.strip() == "1"
    server.query(f"DROP USER '{helper}'@'127.0.0.1'")
