"""A real MariaDB server for the data-path tests of the backup and restore scripts.

The server comes from Debian's packages (hack/install-debian-deps installs them). It runs
for the session on 127.0.0.1 with a data directory under pytest's temp dir, and each test
gets its own database, so that tests never see each other's data.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT_PASSWORD = "datapath-root-pw"
START_TIMEOUT_S = 60.0


class SQLError(RuntimeError):
    pass


@dataclass(frozen=True)
class MariaDB:
    host: str
    port: int
    socket: Path
    user: str
    password: str

    def client_env(self, database: str) -> dict[str, str]:
        """The environment the Jobs give the scripts, pointed at this server."""
        return {
            "PATH": os.environ["PATH"],
            "MYSQL_HOST": self.host,
            "MYSQL_PORT": str(self.port),
            "MYSQL_USER": self.user,
            "MYSQL_PWD": self.password,
            "MYSQL_DATABASE": database,
        }

    def client(self, statement: str, database: str | None = None) -> list[str]:
        """The command line that runs SQL as root over the socket (for sessions that a
        test keeps open, such as a sleeping query)."""
        command = ["mariadb", "--no-defaults", f"--socket={self.socket}", "--user=root"]
        command += ["--batch", "--skip-column-names", f"--execute={statement}"]
        if database is not None:
            command.append(f"--database={database}")
        return command

    def sql(self, statement: str, database: str | None = None) -> str:
        """Runs SQL as root over the socket; returns tab-separated rows."""
        command = self.client(statement, database)
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise SQLError(f"{statement!r} failed: {done.stderr.strip()}")
        return done.stdout


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def require(tool: str) -> str:
    found = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/bin")
    if found is None:
        pytest.fail(f"{tool} is missing: run hack/install-debian-deps", pytrace=False)
    return found


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    server, install_db = require("mariadbd"), require("mariadb-install-db")
    for client in ("mariadb", "mysql", "mysqldump"):
        require(client)
    base = tmp_path_factory.mktemp("mariadb")
    datadir, sock, log = base / "data", base / "mysqld.sock", base / "error.log"
    user = getpass.getuser()
    subprocess.run(
        [
            install_db,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--user={user}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_loopback_port()
    process = subprocess.Popen(
        [
            server,
            "--no-defaults",
            f"--datadir={datadir}",
            f"--socket={sock}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            f"--user={user}",
            f"--log-error={log}",
            f"--pid-file={base / 'mysqld.pid'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        instance = MariaDB("127.0.0.1", port, sock, "root", ROOT_PASSWORD)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"mariadbd exited: {log.read_text()[-2000:]}", pytrace=False)
            try:
                instance.sql("SELECT 1")
                break
            except SQLError:
                if time.monotonic() > deadline:
                    pytest.fail(f"mariadbd not up in {START_TIMEOUT_S}s", pytrace=False)
                time.sleep(0.2)
        # The scripts connect over TCP, as the Jobs do, with a password.
        instance.sql(
            f"CREATE OR REPLACE USER 'root'@'127.0.0.1' IDENTIFIED BY '{ROOT_PASSWORD}';"
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
        )
        yield instance
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
def database(mariadb: MariaDB) -> Iterator[str]:
    # '-' on purpose: names like the example's `otus-database` need quoting everywhere.
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    mariadb.sql(f"DROP DATABASE IF EXISTS `{name}`")
